import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import type { Backend } from '../../src/backend/backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Variable, add, matmul, noGrad, relu, sum } from '../../src/autograd/index.js';
import { InvalidArgumentError, MemfitError, ShapeMismatchError, UnknownDTypeError } from '../../src/errors.js';
import { Parameter } from '../../src/nn/parameter.js';
import { Module, type ForwardArgs, type ForwardResult } from '../../src/nn/module.js';
import { ModuleList, Sequential } from '../../src/nn/container.js';
import { gpuBackend } from '../helpers/backends.js';

// ---- small test modules -------------------------------------------------------------------------

const values = (n: number, seed: number): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 7.3 + i * 1.7) * 0.5);

/** y = x W^T + b, like torch.nn.Linear. */
class Lin extends Module {
  weight: Parameter;
  bias: Parameter | null;
  constructor(be: Backend, inF: number, outF: number, options: { bias?: boolean; seed?: number } = {}) {
    super();
    const seed = options.seed ?? 0;
    this.weight = Parameter.from(be, values(inF * outF, seed), [outF, inF]);
    this.bias = options.bias === false ? null : Parameter.from(be, values(outF, seed + 100), [outF]);
  }
  forward(x: Variable): Variable {
    const y = matmul(x, this.weight, { transB: true });
    return this.bias ? add(y, this.bias) : y;
  }
}

/** fc2(relu(fc1(x))) with a persistent and a non-persistent buffer. */
class Block extends Module {
  fc1: Lin;
  fc2: Lin;
  constructor(be: Backend, d: number, seed: number) {
    super();
    this.fc1 = new Lin(be, d, 2 * d, { seed });
    this.fc2 = new Lin(be, 2 * d, d, { bias: false, seed: seed + 1 });
    this.registerBuffer('steps', Tensor.from(be, [seed], [1], { dtype: 'int32', category: 'parameter' }));
    this.registerBuffer('table', Tensor.from(be, values(d, seed + 2), [d], { category: 'parameter' }), { persistent: false });
  }
  forward(x: Variable): Variable {
    return this.fc2.forward(relu(this.fc1.forward(x)));
  }
}

class Net extends Module {
  embed: Lin;
  layers: ModuleList<Block>;
  head: Lin;
  constructor(be: Backend, seed = 0, d = 3) {
    super();
    this.embed = new Lin(be, 4, d, { seed });
    this.layers = new ModuleList([new Block(be, d, seed + 10), new Block(be, d, seed + 20)]);
    this.head = new Lin(be, d, 2, { seed: seed + 30 });
  }
  forward(x: Variable): Variable {
    let h = this.embed.forward(x);
    for (const layer of this.layers) h = layer.forward(h);
    return this.head.forward(h);
  }
}

/** A wrapper that counts calls; typed after the module it wraps; keeps stateDict keys unchanged. */
class Counting<M extends Module> extends Module {
  calls = 0;
  constructor(readonly inner: M) {
    super();
  }
  forward(...args: ForwardArgs<M>): ForwardResult<M> {
    this.calls++;
    return this.inner.callForward(...args) as ForwardResult<M>;
  }
  protected override stateDictTransparentChildren(): readonly string[] {
    return ['inner'];
  }
}

const arr = async (t: Tensor): Promise<number[]> => Array.from(await t.toArray());
const input = (be: Backend, d = 4): Variable => Variable.from(be, values(2 * d, 99), [2, d]);
/** Output values of a forward run without recording (no graph keeps the parameters alive). */
async function run(f: () => Variable): Promise<number[]> {
  const y = noGrad(f);
  const v = await arr(y.data);
  y.dispose();
  return v;
}
const paramBytes = (be: Backend): number => be.memory.memoryAllocated('parameter');

async function throwsAsync(fn: () => unknown, cls: new (...a: never[]) => Error, re: RegExp): Promise<void> {
  try {
    await fn();
  } catch (e) {
    assert.instance(e, cls);
    assert.match((e as Error).message, re);
    return;
  }
  assert.unreachable(`expected ${cls.name} matching ${re}`);
}

function throws(fn: () => unknown, cls: new (...a: never[]) => Error, re: RegExp): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, cls);
    assert.match((e as Error).message, re);
    return;
  }
  assert.unreachable(`expected ${cls.name} matching ${re}`);
}

// ---- Parameter -------------------------------------------------------------------------------------

test('Parameter: a leaf requiring grad, its storage in the parameter category', () => {
  const be = new WasmBackend();
  const p = Parameter.from(be, [1, 2, 3], [3]);
  assert.ok(p.requiresGrad);
  assert.ok(p.isLeaf);
  assert.instance(p, Variable);
  assert.is(p.data.category, 'parameter');
  assert.is(paramBytes(be), 12);
  const frozen = Parameter.from(be, [1, 2], [2], { dtype: 'bfloat16', requiresGrad: false });
  assert.not.ok(frozen.requiresGrad);
  assert.is(frozen.data.dtype, 'bfloat16');
  assert.is(paramBytes(be), 16);
  const t = Tensor.from(be, [1], [1]); // 'data' category
  throws(() => new Parameter(t), InvalidArgumentError, /'data' memory category.*Parameter\.from/);
  t.dispose();
  const q = new Parameter(Tensor.from(be, [5], [1], { category: 'parameter' }));
  assert.ok(q.requiresGrad);
  throws(() => Parameter.from(be, [1], [1], { dtype: 'int32' }), InvalidArgumentError, /int32/);
  p.dispose(); frozen.dispose(); q.dispose();
  assert.is(paramBytes(be), 0); // the failed int32 parameter freed its tensor too
});

// ---- structure and naming ------------------------------------------------------------------------

test('namedModules / namedChildren / namedParameters: dotted names, definition order, null absent', () => {
  const be = new WasmBackend();
  const net = new Net(be);
  assert.equal(net.namedChildren().map(([n]) => n), ['embed', 'layers', 'head']);
  assert.equal(net.children(), [net.embed, net.layers, net.head]);
  assert.equal(net.namedModules().map(([n]) => n), [
    '', 'embed', 'layers', 'layers.0', 'layers.0.fc1', 'layers.0.fc2', 'layers.1', 'layers.1.fc1', 'layers.1.fc2', 'head',
  ]);
  assert.is(net.namedModules()[0][1], net);
  assert.equal(net.namedModules('model').slice(0, 3).map(([n]) => n), ['model', 'model.embed', 'model.layers']);
  assert.is(net.modules().length, 10);
  assert.equal(net.namedParameters().map(([n]) => n), [
    'embed.weight', 'embed.bias',
    'layers.0.fc1.weight', 'layers.0.fc1.bias', 'layers.0.fc2.weight',
    'layers.1.fc1.weight', 'layers.1.fc1.bias', 'layers.1.fc2.weight',
    'head.weight', 'head.bias',
  ]);
  assert.is(net.parameters()[0], net.embed.weight);
  assert.equal(net.embed.namedParameters('embed', false).map(([n]) => n), ['embed.weight', 'embed.bias']);
  assert.equal(net.namedParameters('', false), []); // Net has no parameters of its own
  // 4*3+3 + 2*(3*6+6 + 6*3) + 3*2+2
  assert.is(net.numParameters(), 15 + 2 * 42 + 8);
  net.embed.weight.requiresGrad = false;
  assert.is(net.numParameters(true), 15 + 2 * 42 + 8 - 12);
  net.dispose();
  assert.is(paramBytes(be), 0);
});

test('discovery follows property-definition order, not names; non-Module values are ignored', () => {
  const be = new WasmBackend();
  class Odd extends Module {
    zeta = Parameter.from(be, [1], [1]);
    note = 'text';
    alpha = new Lin(be, 1, 1);
    plain = Tensor.from(be, [1], [1]); // a plain Tensor is not state
    list = [new Lin(be, 1, 1)]; // arrays are not containers: use ModuleList
    gone: Lin | null = null;
    #hidden = new Lin(be, 1, 1); // #private: referenced, not owned
    get hidden(): Lin { return this.#hidden; }
  }
  const m = new Odd();
  assert.equal(m.namedParameters().map(([n]) => n), ['zeta', 'alpha.weight', 'alpha.bias']);
  assert.equal(m.namedModules().map(([n]) => n), ['', 'alpha']);
  assert.equal(Object.keys(m.stateDict()), ['zeta', 'alpha.weight', 'alpha.bias']);
  m.dispose();
  m.plain.dispose(); m.list[0].dispose(); m.hidden.dispose();
  assert.is(be.memory.memoryAllocated(), 0);
});

test('shared parameters and modules: once in namedParameters/namedModules, every key in stateDict', async () => {
  const be = new WasmBackend();
  class Tied extends Module {
    a = new Lin(be, 3, 3, { seed: 3 });
    b = new Lin(be, 3, 3, { bias: false, seed: 4 });
    constructor() {
      super();
      this.b.weight.dispose();
      this.b.weight = this.a.weight; // tied weights
    }
  }
  const m = new Tied();
  assert.equal(m.namedParameters().map(([n]) => n), ['a.weight', 'a.bias']);
  assert.equal(Object.keys(m.stateDict()), ['a.weight', 'a.bias', 'b.weight']);
  assert.is(m.stateDict()['b.weight'], m.a.weight.data);
  assert.is(m.numParameters(), 12);
  // loading: both keys are present; each is copied in order (PyTorch does the same)
  const src = Tensor.from(be, values(9, 42), [3, 3]);
  assert.equal(m.loadStateDict({ 'a.weight': src, 'a.bias': m.a.bias!.data, 'b.weight': src }), { missingKeys: [], unexpectedKeys: [] });
  assert.equal(await arr(m.b.weight.data), await arr(src));
  // non-strict with only one alias: the other is reported missing
  assert.equal(m.loadStateDict({ 'a.weight': src, 'a.bias': m.a.bias!.data }, { strict: false }).missingKeys, ['b.weight']);
  src.dispose();

  class Shared extends Module {
    embed = new Lin(be, 3, 4, { seed: 1 });
    head = new Lin(be, 4, 3, { seed: 2 });
    again = this.embed; // the same module under a second name
  }
  const s = new Shared();
  assert.equal(s.namedModules().map(([n]) => n), ['', 'embed', 'head']);
  assert.equal(s.namedChildren().map(([n]) => n), ['embed', 'head']);
  assert.equal(s.namedParameters().map(([n]) => n), ['embed.weight', 'embed.bias', 'head.weight', 'head.bias']);
  assert.equal(Object.keys(s.stateDict()), ['embed.weight', 'embed.bias', 'head.weight', 'head.bias', 'again.weight', 'again.bias']);
  assert.is(s.getSubmodule('again'), s.embed);
  s.loadStateDict(s.stateDict()); // loading a module's own state dict is a no-op
  m.dispose(); s.dispose();
  assert.is(paramBytes(be), 0);
});

test('buffers: persistent ones in stateDict, non-persistent only in namedBuffers; replacing disposes', () => {
  const be = new WasmBackend();
  const net = new Net(be);
  assert.equal(net.namedBuffers().map(([n]) => n), ['layers.0.steps', 'layers.0.table', 'layers.1.steps', 'layers.1.table']);
  assert.is(net.buffers().length, 4);
  assert.equal(Object.keys(net.stateDict()), [
    'embed.weight', 'embed.bias',
    'layers.0.steps', 'layers.0.fc1.weight', 'layers.0.fc1.bias', 'layers.0.fc2.weight', // buffers before children, as PyTorch
    'layers.1.steps', 'layers.1.fc1.weight', 'layers.1.fc1.bias', 'layers.1.fc2.weight',
    'head.weight', 'head.bias',
  ]);
  const block = net.layers.at(0);
  assert.is(net.getBuffer('layers.0.table'), block.namedBuffers('', false)[1][1]);
  const before = paramBytes(be);
  block.registerBuffer('table', Tensor.from(be, [1, 2, 3, 4, 5], [5], { category: 'parameter' }), { persistent: false });
  assert.is(paramBytes(be), before - 12 + 20);
  throws(() => block.registerBuffer('fc1', Tensor.from(be, [1], [1])), InvalidArgumentError, /Block already has a Lin named so/);
  throws(() => block.registerBuffer('a.b', Tensor.from(be, [1], [1])), InvalidArgumentError, /invalid name "a\.b"/);
  throws(() => net.getBuffer('layers.0.nope'), InvalidArgumentError, /Block has no buffer "nope"/);
  net.dispose();
  assert.is(paramBytes(be), 0);
});

// ---- paths ---------------------------------------------------------------------------------------

test('getSubmodule / getParameter: paths through ModuleList, errors naming the path', () => {
  const be = new WasmBackend();
  const net = new Net(be);
  assert.is(net.getSubmodule(''), net);
  assert.is(net.getSubmodule('layers.1.fc2'), net.layers.at(1).fc2);
  assert.is(net.getSubmodule('layers.1', Block), net.layers.at(1));
  assert.is(net.getParameter('layers.0.fc1.bias'), net.layers.at(0).fc1.bias);
  throws(() => net.getSubmodule('layers.7.fc1'), InvalidArgumentError, /"layers\.7" does not exist \(ModuleList at "layers" has children: 0, 1\)/);
  throws(() => net.getSubmodule('nope'), InvalidArgumentError, /"nope" does not exist \(Net has children: embed, layers, head\)/);
  throws(() => net.getSubmodule('embed.weight'), InvalidArgumentError, /"embed\.weight" is a Parameter, not a Module/);
  throws(() => net.getSubmodule('layers.0', Lin), InvalidArgumentError, /is a Block, not a Lin/);
  throws(() => net.getParameter('layers.0.fc2.bias'), InvalidArgumentError, /Lin has no parameter "bias" \(it is null\)/);
  throws(() => net.getParameter('layers.0.fc3.bias'), InvalidArgumentError, /"layers\.0\.fc3" does not exist/);
  throws(() => net.getParameter('layers'), InvalidArgumentError, /Net has no parameter "layers" \(it is a ModuleList\)/);
  net.dispose();
});

test('setSubmodule replaces layers.1 with a wrapper that the parent forward calls; stateDict keys unchanged', async () => {
  const be = new WasmBackend();
  const net = new Net(be);
  const keys = Object.keys(net.stateDict());
  const expected = await run(() => net.forward(input(be)));

  const old = net.getSubmodule('layers.1', Block);
  const wrapper = new Counting(old);
  assert.is(net.setSubmodule('layers.1', wrapper), old);
  assert.is(net.getSubmodule('layers.1'), wrapper);
  assert.is(net.layers.at(1) as Module, wrapper);
  assert.equal(await run(() => net.forward(input(be))), expected);
  assert.is(wrapper.calls, 1);
  // typed: Counting<Block>.forward takes Block's arguments and returns its result
  const direct: Variable = noGrad(() => wrapper.forward(input(be, 3)));
  assert.is(wrapper.calls, 2);
  assert.equal(Array.from(direct.shape), [2, 3]);

  assert.equal(Object.keys(net.stateDict()), keys); // the wrapper is transparent in state-dict keys
  assert.ok(net.namedParameters().some(([n]) => n === 'layers.1.inner.fc1.weight')); // but paths are real
  assert.is(net.getParameter('layers.1.inner.fc1.weight'), old.fc1.weight);
  assert.is(net.numParameters(), 15 + 2 * 42 + 8);
  const r = net.loadStateDict(net.stateDict());
  assert.equal(r, { missingKeys: [], unexpectedKeys: [] });

  // a property child too, and wrapping by pattern over namedModules() (a snapshot, safe to mutate)
  net.setSubmodule('head', new Counting(net.head));
  for (const [name, m] of net.namedModules()) if (/^layers\.\d+$/.test(name) && !(m instanceof Counting)) net.setSubmodule(name, new Counting(m));
  assert.ok([...net.layers].every((m) => m instanceof Counting));
  await run(() => net.forward(input(be)));
  assert.is(wrapper.calls, 3);
  assert.is((net.head as Module as Counting<Lin>).calls, 1);

  throws(() => net.setSubmodule('layers.2', wrapper), InvalidArgumentError, /"layers\.2" does not exist/);
  throws(() => net.setSubmodule('embed.weight', wrapper), InvalidArgumentError, /is a Parameter, not a Module/);
  throws(() => net.setSubmodule('layers.0', net), InvalidArgumentError, /cycle/);
  throws(() => net.setSubmodule('', wrapper), InvalidArgumentError, /must name a submodule/);
  throws(() => new ModuleList().callForward(), MemfitError, /ModuleList does not define forward/);
  net.dispose();
});

// ---- state dict ------------------------------------------------------------------------------------

test('stateDict / loadStateDict round trip: values copied into the existing storage', async () => {
  const be = new WasmBackend();
  const a = new Net(be, 1), b = new Net(be, 2);
  const w = b.getParameter('layers.1.fc1.weight');
  const storage = w.data.storage;
  const before = paramBytes(be);
  assert.not.equal(await arr(w.data), await arr(a.getParameter('layers.1.fc1.weight').data));
  const sd = a.stateDict();
  assert.is(sd['head.weight'], a.head.weight.data); // the module's own tensors, not copies
  assert.equal(b.loadStateDict(sd), { missingKeys: [], unexpectedKeys: [] });
  for (const [k, t] of Object.entries(b.stateDict())) assert.equal(await arr(t), await arr(sd[k]), k);
  assert.is(b.getParameter('layers.1.fc1.weight'), w);
  assert.is(w.data.storage, storage); // same storage: an optimizer holding w (or w.data) still sees it
  assert.is(paramBytes(be), before); // nothing allocated for good
  assert.equal(await run(() => b.forward(input(be))), await run(() => a.forward(input(be))));
  // int32 buffers are copied exactly
  assert.equal(await arr(b.getBuffer('layers.1.steps')), [21]);
  a.dispose(); b.dispose();
  assert.is(paramBytes(be), 0);
});

test('loadStateDict converts to the module dtype with the backend cast', async () => {
  const be = new WasmBackend();
  const a = new Net(be, 1), b = new Net(be, 2).to('bfloat16');
  b.loadStateDict(a.stateDict());
  for (const [k, t] of Object.entries(a.stateDict())) {
    const got = b.stateDict()[k];
    assert.is(got.dtype, t.dtype === 'int32' ? 'int32' : 'bfloat16', k);
    const want = t.to(got.dtype);
    assert.equal(await arr(got), await arr(want), k);
    want.dispose();
  }
  a.dispose(); b.dispose();
});

test('loadStateDict errors: missing, unexpected, shape, backend, dtype kind; failed validation changes nothing', async () => {
  const be = new WasmBackend();
  const a = new Net(be, 1), b = new Net(be, 2);
  const snapshot = async (): Promise<number[][]> => Promise.all(Object.values(b.stateDict()).map(arr));
  const original = await snapshot();
  const sd = { ...a.stateDict() };

  const noHead = { ...sd };
  delete noHead['head.bias'];
  delete noHead['layers.0.steps'];
  throws(() => b.loadStateDict(noHead), InvalidArgumentError, /missing keys: "layers\.0\.steps", "head\.bias"$/);
  const extra = { ...sd, 'layers.2.fc1.weight': sd['head.weight'], 'layers.0.table': sd['head.bias'] };
  throws(() => b.loadStateDict(extra), InvalidArgumentError, /unexpected keys: "layers\.2\.fc1\.weight", "layers\.0\.table"$/);
  const both = { ...noHead, 'extra.weight': sd['head.weight'] };
  throws(() => b.loadStateDict(both), InvalidArgumentError, /does not match Net: missing keys: "layers\.0\.steps", "head\.bias"; unexpected keys: "extra\.weight"$/);
  assert.equal(await snapshot(), original);

  const wrongShape = { ...sd, 'layers.1.fc2.weight': sd['layers.1.fc1.weight'] };
  throws(() => b.loadStateDict(wrongShape), ShapeMismatchError, /"layers\.1\.fc2\.weight" has shape \[6, 3\] in the state dict but \[3, 6\] in the module/);
  assert.equal(await snapshot(), original); // keys before it were not written either

  const other = new WasmBackend('another');
  const elsewhere = await sd['head.bias'].toBackend(other);
  throws(() => b.loadStateDict({ ...sd, 'head.bias': elsewhere }), InvalidArgumentError, /"head\.bias" is on another backend \(wasm backend: another\)/);
  elsewhere.dispose();
  const ints = Tensor.from(be, [1, 2], [2], { dtype: 'int32' });
  throws(() => b.loadStateDict({ ...sd, 'head.bias': ints }), InvalidArgumentError, /"head\.bias" is int32 in the state dict but float32/);
  ints.dispose();
  assert.equal(await snapshot(), original);

  // non-strict: loads what matches, reports the rest
  const r = b.loadStateDict(both, { strict: false });
  assert.equal(r, { missingKeys: ['layers.0.steps', 'head.bias'], unexpectedKeys: ['extra.weight'] });
  assert.equal(await arr(b.head.weight.data), await arr(a.head.weight.data));
  assert.equal(await arr(b.head.bias!.data), original[original.length - 1]);
  // non-strict still refuses shape mismatches
  throws(() => b.loadStateDict(wrongShape, { strict: false }), ShapeMismatchError, /layers\.1\.fc2\.weight/);
  a.dispose(); b.dispose();
});

// ---- dtype, backend, lifetime ------------------------------------------------------------------

test("to('bfloat16'): values exactly as Tensor.to, parameter bytes halve, int32 buffers untouched, grads dropped", async () => {
  const be = new WasmBackend();
  const net = new Net(be, 3);
  const params = net.parameters();
  const n = net.numParameters();
  const bufBytes = 2 * (4 + 3 * 4); // per block: int32 steps [1] + float32 table [3]
  assert.is(paramBytes(be), n * 4 + bufBytes);
  const want = await Promise.all(params.map(async (p) => { const t = p.data.to('bfloat16'); const v = await arr(t); t.dispose(); return v; }));
  sum(net.forward(input(be))).backward();
  assert.ok(be.memory.memoryAllocated('gradient') > 0);

  assert.is(net.to('bf16'), net); // aliases accepted
  assert.equal(net.parameters(), params); // the same Parameter objects
  for (const [i, p] of params.entries()) {
    assert.is(p.data.dtype, 'bfloat16');
    assert.is(p.data.category, 'parameter');
    assert.is(p.grad, null);
    assert.equal(await arr(p.data), want[i]);
  }
  assert.is(be.memory.memoryAllocated('gradient'), 0);
  assert.is(net.getBuffer('layers.0.steps').dtype, 'int32');
  assert.is(net.getBuffer('layers.0.table').dtype, 'bfloat16');
  assert.is(paramBytes(be), n * 2 + 2 * (4 + 3 * 2));
  assert.is(net.to('bfloat16'), net); // same dtype: nothing changes
  assert.is(paramBytes(be), n * 2 + 2 * (4 + 3 * 2));
  net.to('float8_e4m3fn');
  assert.is(paramBytes(be), n + 2 * (4 + 3));
  // the model still runs and trains in low precision (kernels compute in float32)
  sum(net.forward(input(be))).backward();
  assert.ok(net.parameters().every((p) => p.grad !== null));
  throws(() => net.to('int32'), InvalidArgumentError, /float dtypes only/);
  throws(() => net.to('float13'), UnknownDTypeError, /float13/);
  net.dispose();
  assert.is(paramBytes(be), 0);
  assert.is(be.memory.memoryAllocated('gradient'), 0);
});

test('to(backend) moves parameters, grads and buffers to a second WasmBackend', async () => {
  const be1 = new WasmBackend('first'), be2 = new WasmBackend('second');
  const net = new Net(be1, 4);
  const bytes = paramBytes(be1);
  const sdBefore = await Promise.all(Object.values(net.stateDict()).map(arr));
  const out1 = await run(() => net.forward(input(be1)));
  sum(net.forward(input(be1))).backward();
  const gradBytes = be1.memory.memoryAllocated('gradient');
  const g = await arr(net.head.weight.grad!);
  const w = net.head.weight;

  assert.is(await net.to(be2), net);
  assert.is(paramBytes(be1), 0);
  assert.is(be1.memory.memoryAllocated('gradient'), 0);
  assert.is(paramBytes(be2), bytes);
  assert.is(be2.memory.memoryAllocated('gradient'), gradBytes);
  assert.is(net.head.weight, w);
  assert.is(w.data.backend, be2);
  assert.is(w.grad!.backend, be2);
  assert.equal(await arr(w.grad!), g);
  assert.is(net.getBuffer('layers.1.table').backend, be2);
  assert.equal(await Promise.all(Object.values(net.stateDict()).map(arr)), sdBefore);
  assert.equal(await run(() => net.forward(input(be2))), out1);
  assert.is(await net.to(be2), net); // already there
  assert.is(paramBytes(be2), bytes);
  net.dispose();
  assert.is(paramBytes(be2), 0);
});

test('webgpu: to(gpu) and back keeps every value; loadStateDict casts on the GPU', async () => {
  const w = new WasmBackend(), g = await gpuBackend();
  const net = new Net(w, 6), other = new Net(w, 7);
  const sd = await Promise.all(Object.values(net.stateDict()).map(arr));
  const out = await run(() => net.forward(input(w)));
  const gpuParams = g.memory.memoryAllocated('parameter');
  const both = paramBytes(w);
  await net.to(g);
  assert.is(paramBytes(w), both / 2); // only `other` is left on wasm
  assert.is(g.memory.memoryAllocated('parameter') - gpuParams, (net.numParameters() * 4) + 2 * (4 + 3 * 4));
  assert.equal(await Promise.all(Object.values(net.stateDict()).map(arr)), sd);
  const gout = await run(() => net.forward(input(g)));
  gout.forEach((v, i) => assert.ok(Math.abs(v - out[i]) < 1e-5, `output ${i}`));
  net.to('bfloat16'); // cast kernel on the GPU
  const again = new Net(w, 6).to('bfloat16');
  assert.equal(await Promise.all(Object.values(net.stateDict()).map(arr)), await Promise.all(Object.values(again.stateDict()).map(arr)));
  await other.to('bfloat16').to(g);
  other.loadStateDict(net.stateDict()); // same dtype: codes copied exactly, on the GPU
  assert.equal(await Promise.all(Object.values(other.stateDict()).map(arr)), await Promise.all(Object.values(again.stateDict()).map(arr)));
  await net.to(w);
  assert.equal(await Promise.all(Object.values(net.stateDict()).map(arr)), await Promise.all(Object.values(again.stateDict()).map(arr)));
  net.dispose(); other.dispose(); again.dispose();
  assert.is(g.memory.memoryAllocated('parameter'), gpuParams);
  assert.is(paramBytes(w), 0);
  g.destroy();
});

test('train / eval set the flag recursively (through overridden train)', () => {
  const be = new WasmBackend();
  const seen: boolean[] = [];
  class Spy extends Module {
    override train(mode = true): this {
      seen.push(mode);
      return super.train(mode);
    }
  }
  class Outer extends Module {
    net = new Net(be);
    spy = new Spy();
  }
  const m = new Outer();
  assert.ok(m.modules().every((x) => x.training));
  assert.is(m.eval(), m);
  assert.ok(m.modules().every((x) => !x.training));
  assert.equal(seen, [false]);
  m.net.train();
  assert.ok(m.net.modules().every((x) => x.training));
  assert.not.ok(m.training);
  m.train();
  assert.equal(seen, [false, true]);
  m.dispose();
});

test('zeroGrad frees gradient bytes (or zeroes them in place)', async () => {
  const be = new WasmBackend();
  const net = new Net(be);
  const grads = () => be.memory.memoryAllocated('gradient');
  sum(net.forward(input(be))).backward();
  assert.is(grads(), net.numParameters() * 4);
  net.zeroGrad({ setToNone: false });
  assert.is(grads(), net.numParameters() * 4);
  for (const p of net.parameters()) assert.ok((await arr(p.grad!)).every((v) => v === 0));
  net.zeroGrad();
  assert.is(grads(), 0);
  assert.ok(net.parameters().every((p) => p.grad === null));
  net.dispose();
});

test('apply visits children before parents, each module once', () => {
  const be = new WasmBackend();
  const net = new Net(be);
  const names = new Map(net.namedModules().map(([n, m]) => [m, n]));
  const order: string[] = [];
  assert.is(net.apply((m) => order.push(names.get(m)!)), net);
  assert.equal(order, ['embed', 'layers.0.fc1', 'layers.0.fc2', 'layers.0', 'layers.1.fc1', 'layers.1.fc2', 'layers.1', 'layers', 'head', '']);
  net.dispose();
});

// ---- containers ----------------------------------------------------------------------------------

test('ModuleList: at, length, iteration, push; Sequential chains forward', async () => {
  const be = new WasmBackend();
  const a = new Lin(be, 4, 3, { seed: 1 }), b = new Lin(be, 3, 2, { seed: 2 });
  const list = new ModuleList<Lin>([a]);
  assert.is(list.push(b), list);
  assert.is(list.length, 2);
  assert.is(list.at(0), a);
  assert.is(list.at(-1), b);
  assert.equal([...list], [a, b]);
  throws(() => list.at(2), InvalidArgumentError, /index out of range for length 2/);
  throws(() => list.push(null as unknown as Lin), InvalidArgumentError, /expected Modules/);
  assert.equal(list.namedParameters().map(([n]) => n), ['0.weight', '0.bias', '1.weight', '1.bias']);

  const seq = new Sequential([a, new Lin(be, 3, 3, { seed: 5 }), b]);
  const x = input(be);
  const manual = await run(() => b.forward(seq.at(1).forward(a.forward(x))));
  assert.equal(await run(() => seq.forward(x)), manual);
  assert.equal(seq.namedModules().map(([n]) => n), ['', '0', '1', '2']);
  seq.setSubmodule('1', new Counting(seq.at(1)));
  assert.equal(await run(() => seq.forward(x)), manual);
  assert.equal(Object.keys(seq.stateDict()), ['0.weight', '0.bias', '1.weight', '1.bias', '2.weight', '2.bias']);
  seq.dispose();
  assert.is(paramBytes(be), 0);

  // a ModuleList subclass may also hold children in properties: they follow the items
  class Stack extends ModuleList<Lin> {
    norm = new Lin(be, 2, 2, { bias: false });
  }
  const st = new Stack([new Lin(be, 2, 2)]);
  assert.equal(st.namedParameters().map(([n]) => n), ['0.weight', '0.bias', 'norm.weight']);
  const norm = st.norm;
  assert.is(st.setSubmodule('norm', new Counting(norm)), norm);
  assert.instance(st.getSubmodule('norm'), Counting);
  throws(() => st.setSubmodule('01', norm), InvalidArgumentError, /"01" does not exist/);
  st.dispose();
  norm.dispose();
  assert.is(paramBytes(be), 0);
});

test('loadStateDict copies strided views (transpose) and stays all-or-nothing', async () => {
  const be = new WasmBackend();
  const s = new Sequential([new Lin(be, 2, 2, { seed: 1 }), new Lin(be, 2, 2, { seed: 2 })]);
  const t = (v: number[], shape: number[]) => Tensor.from(be, v, shape);
  const sd = { '0.weight': t([9, 9, 9, 9], [2, 2]), '0.bias': t([1, 1], [2]), '1.weight': t([1, 2, 3, 4], [2, 2]).transpose(), '1.bias': t([5, 6], [2]) };
  assert.equal(s.loadStateDict(sd), { missingKeys: [], unexpectedKeys: [] });
  assert.equal(Array.from(await s.at(0).weight.data.toArray()), [9, 9, 9, 9]);
  assert.equal(Array.from(await s.at(1).weight.data.toArray()), [1, 3, 2, 4]);
  // A module tensor that is itself a strided view cannot be written in place: refused before anything is written.
  const before = Array.from(await s.at(0).weight.data.toArray());
  const p = s.at(1).weight;
  const old = p.data;
  p.data = t([1, 2, 3, 4], [2, 2]).transpose();
  throws(() => s.loadStateDict({ ...sd, '0.weight': t([7, 7, 7, 7], [2, 2]) }), InvalidArgumentError, /"1\.weight" is a view \(element offset 0, strides \[1, 2\]\)/);
  assert.equal(Array.from(await s.at(0).weight.data.toArray()), before);
  p.data.dispose();
  p.data = old;
});

test('Sequential takes its modules as arguments too (torch.nn.Sequential(a, b)); a non-iterable ModuleList argument is a clear error', async () => {
  const be = new WasmBackend();
  const a = new Lin(be, 2, 2, { seed: 1 }), b = new Lin(be, 2, 2, { seed: 2 });
  const s1 = new Sequential(a, b), s2 = new Sequential([a, b]), s3 = new Sequential(a);
  assert.equal(Object.keys(s1.stateDict()), ['0.weight', '0.bias', '1.weight', '1.bias']);
  assert.is(s1.at(1), b); assert.is(s2.at(1), b); assert.is(s3.length, 1); assert.is(new Sequential().length, 0);
  throws(() => new ModuleList(a as never), InvalidArgumentError, /ModuleList: expected an iterable of Modules \(an array\), got a Lin/);
  throws(() => new Sequential(a, 3 as never), InvalidArgumentError, /Sequential: expected Modules, got 3/);
  throws(() => new ModuleList(null as never), InvalidArgumentError, /got null/);
  a.dispose(); b.dispose();
});

test.run();
