// checkpoint(): PyTorch's non-reentrant activation checkpointing on the saved-tensor hooks.
// Gradients are bit-identical with and without it (plain, dropout, autocast, nested), only the
// inputs are kept through the forward, the recompute runs fn once at most and stops early, and
// nothing leaks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  WasmBackend, Llama, BertModel, Module, Linear, RMSNorm, Dropout, Tensor, Variable, Generator, manualSeed, defaultGenerator, tidy, autocast,
  checkpoint, checkpointModules, saveMatmuls, matmul, add, mul, exp, relu, silu, sum, scale, savedTensorStats, withOpObserver,
  CheckpointError, InvalidArgumentError, functional, noGrad, type CheckpointPolicy, type PolicyContext,
} from '../../src/index.js';
import { floatBits, randVariable } from '../helpers/values.js';

const be = new WasmBackend();

const rand = (shape: number[], seed: number, requiresGrad = true): Variable => randVariable(be, shape, seed, requiresGrad);
const bits = floatBits;

/** A small block with every kind of saved tensor: matmuls, a norm (statistic), pointwise ops, dropout. */
class Block extends Module {
  norm: RMSNorm;
  up: Linear;
  down: Linear;
  drop: Dropout;
  constructor(dim: number, hidden: number, generator?: Generator) {
    super();
    this.norm = new RMSNorm(dim, 1e-5, { backend: be });
    this.up = new Linear(dim, hidden, { backend: be });
    this.down = new Linear(hidden, dim, { backend: be });
    this.drop = new Dropout(0.3, generator);
  }
  forward(x: Variable): Variable {
    return tidy(() => add(x, this.drop.forward(this.down.forward(silu(this.up.forward(this.norm.forward(x)))))));
  }
}

class Net extends Module {
  b0: Block;
  b1: Block;
  constructor(generator?: Generator) {
    super();
    manualSeed(3);
    this.b0 = new Block(8, 24, generator);
    this.b1 = new Block(8, 24, generator);
  }
  forward(x: Variable): Variable {
    return tidy(() => this.b1.forward(this.b0.forward(x)));
  }
}

/** Grads (as bits) of the net's parameters and of x after sum(run(x)).backward(), from a fixed generator state. */
async function grads(net: Module, run: (x: Variable) => Variable, seed = 11): Promise<Record<string, number[]>> {
  manualSeed(seed);
  const x = rand([2, 5, 8], 7);
  const loss = tidy(() => sum(run(x)));
  loss.backward();
  const out: Record<string, number[]> = { x: await bits(x.grad) };
  for (const [n, p] of net.namedParameters()) out[n] = await bits(p.grad);
  net.zeroGrad();
  loss.dispose();
  x.dispose();
  return out;
}

test('gradients through checkpoint are bit-identical (with dropout); fn runs twice; nothing leaks', async () => {
  const net = new Net();
  const before = be.memory.memoryAllocated('activation');
  const ref = await grads(net, (x) => net.forward(x));
  let calls = 0;
  const got = await grads(net, (x) => checkpoint((h: Variable) => { calls++; return net.forward(h); }, x));
  assert.equal(got, ref);
  assert.is(calls, 2, 'the forward once, the recompute once');
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
  assert.is(be.memory.memoryAllocated('activation'), before);
  assert.is(defaultGenerator.getState().words.length, 4);
});

test('during the forward only the inputs are kept; the generator is left where the plain run leaves it', async () => {
  const net = new Net();
  manualSeed(5);
  const x = rand([2, 5, 8], 7);
  const plain = tidy(() => sum(net.forward(x)));
  const full = savedTensorStats();
  const afterPlain = defaultGenerator.getState();
  plain.releaseGraph();
  plain.dispose();
  manualSeed(5);
  const ck = tidy(() => sum(checkpoint((h: Variable) => net.forward(h), x)));
  const kept = savedTensorStats();
  assert.equal(defaultGenerator.getState(), afterPlain);
  // sum saves nothing: the checkpoint's input x (5*2*8 floats) is all that is held
  assert.is(kept.bytes, 2 * 5 * 8 * 4, `checkpoint keeps ${kept.bytes} bytes; without it ${full.bytes}`);
  assert.ok(full.bytes > 10 * kept.bytes);
  ck.backward();
  assert.equal(defaultGenerator.getState(), afterPlain, 'the recompute puts the generator back');
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
  ck.dispose(); x.dispose(); net.zeroGrad();
});

test('a non-default generator is replayed too; preserveRngState: false draws new masks', async () => {
  const g = new Generator(42);
  const net = new Net(g);
  g.manualSeed(1);
  const ref = await grads(net, (x) => net.forward(x));
  g.manualSeed(1);
  const same = await grads(net, (x) => checkpoint((h: Variable) => net.forward(h), x));
  assert.equal(same, ref);
  g.manualSeed(1);
  const other = await grads(net, (x) => checkpoint((h: Variable) => net.forward(h), x, { preserveRngState: false }));
  assert.not.equal(other.x, ref.x, 'the recompute drew other dropout masks');
});

test('bit-identical under bfloat16 autocast (backward outside the region) and with the checkpoint inside a module path', async () => {
  const net = new Net();
  const ref = await grads(net, (x) => autocast({ dtype: 'bfloat16' }, () => net.forward(x)));
  const got = await grads(net, (x) => autocast({ dtype: 'bfloat16' }, () => checkpoint((h: Variable) => net.forward(h), x)));
  assert.equal(got, ref);
  const ref16 = await grads(net, (x) => autocast({ dtype: 'float16', saveLowerPrecision: false }, () => net.forward(x)));
  const got16 = await grads(net, (x) => autocast({ dtype: 'float16', saveLowerPrecision: false }, () => checkpoint((h: Variable) => net.forward(h), x)));
  assert.equal(got16, ref16);
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
});

test('nested checkpoints: identical gradients, the inner inputs are saved by the outer checkpoint', async () => {
  const net = new Net();
  const ref = await grads(net, (x) => net.forward(x));
  let inner = 0, outer = 0;
  const got = await grads(net, (x) => checkpoint((h: Variable) => {
    outer++;
    const a = net.b0.forward(h);
    return checkpoint((y: Variable) => { inner++; return net.b1.forward(y); }, a);
  }, x));
  assert.equal(got, ref);
  assert.is(outer, 2);
  assert.ok(inner >= 2 && inner <= 3, `inner fn ran ${inner} times`);
  manualSeed(0);
  const x = rand([2, 5, 8], 7);
  const l = tidy(() => sum(checkpoint((h: Variable) => checkpoint((y: Variable) => net.b1.forward(net.b0.forward(y)), h), x)));
  assert.is(savedTensorStats().bytes, 2 * 5 * 8 * 4, 'only the outer input is held');
  l.backward();
  l.dispose(); x.dispose(); net.zeroGrad();
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
});

test('early stop: the recompute ends at the last tensor backward needs (ops after it do not run again)', () => {
  const x = rand([4, 6], 1), w = rand([6, 6], 2);
  const ops: string[] = [];
  let inBackward = false;
  const loss = tidy(() => sum(checkpoint((a: Variable) => scale(add(relu(matmul(a, w)), a), 2), x)));
  inBackward = true;
  withOpObserver({ begin: (c) => { if (inBackward) ops.push(c.op); } }, () => loss.backward());
  const forward = ops.filter((o) => !o.endsWith('.backward'));
  assert.equal(forward, ['matmul', 'relu'], `recomputed: ${forward.join(', ')}`);
  loss.dispose(); x.dispose(); w.dispose();
});

/** How many matrix products the backend runs inside fn. */
function matmulsIn(fn: () => void): number {
  const orig = be.matmul;
  let n = 0;
  be.matmul = (...a: Parameters<typeof orig>) => { n++; return orig.apply(be, a); };
  try { fn(); } finally { be.matmul = orig; }
  return n;
}

test('early stop before the last op when backward needs only its inputs (the down projection is not run again); grads identical', async () => {
  const x = rand([4, 6], 1), w = rand([6, 6], 2), w2 = rand([6, 6], 3);
  const fn = (a: Variable) => add(matmul(relu(matmul(a, w)), w2), a);
  const plain = tidy(() => sum(fn(x)));
  plain.backward();
  const ref = await Promise.all([x, w, w2].map((v) => bits(v.grad)));
  for (const v of [x, w, w2]) v.zeroGrad();
  plain.dispose();
  const loss = tidy(() => sum(checkpoint(fn, x)));
  // Backward: two products for each matmul's gradients, one to recompute the first matmul.
  assert.is(matmulsIn(() => loss.backward()), 2 * 2 + 1);
  assert.equal(await Promise.all([x, w, w2].map((v) => bits(v.grad))), ref);
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
  loss.dispose(); x.dispose(); w.dispose(); w2.dispose();
});

test('without a policy the recompute runs the linears again (the count the policy test relies on)', () => {
  const net = new Net();
  const x = rand([2, 5, 8], 7);
  const loss = tidy(() => sum(checkpoint((h: Variable) => net.forward(h), x)));
  assert.is(matmulsIn(() => loss.backward()), 4 * 2 + 4);
  net.zeroGrad(); loss.dispose(); x.dispose();
});

test('selective checkpointing: saveMatmuls keeps matmul/linear outputs, the recompute skips them, grads identical', async () => {
  const net = new Net();
  const ref = await grads(net, (x) => net.forward(x));
  const seen: PolicyContext[] = [];
  const policy: CheckpointPolicy = (ctx) => { seen.push(ctx); return saveMatmuls(ctx); };
  manualSeed(11);
  const x = rand([2, 5, 8], 7);
  const loss = tidy(() => sum(checkpoint((h: Variable) => net.forward(h), x, { policy })));
  const held = savedTensorStats().bytes;
  // backward runs two products per linear (dx, dW); the recompute runs none (their outputs are kept)
  assert.is(matmulsIn(() => loss.backward()), 4 * 2);
  assert.ok(seen.some((c) => c.isRecompute) && seen.some((c) => !c.isRecompute));
  assert.ok(seen.some((c) => c.op === 'linear' && c.module === 'b0.up'), JSON.stringify(seen.slice(0, 4)));
  // the four linear outputs ([10, 24] x2 and [10, 8] x2) plus the input are held
  assert.is(held, (2 * 10 * 24 + 2 * 10 * 8 + 10 * 8) * 4);
  const got: Record<string, number[]> = { x: await bits(x.grad) };
  for (const [n, p] of net.namedParameters()) got[n] = await bits(p.grad);
  assert.equal(got, ref);
  net.zeroGrad(); loss.dispose(); x.dispose();
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
});

test('a policy that answers otherwise in the recompute, or with a bad value, is an error', () => {
  const x = rand([4, 6], 1), w = rand([6, 6], 2);
  const l = tidy(() => sum(checkpoint((a: Variable) => relu(matmul(a, w)), x, { policy: (c) => (c.isRecompute ? 'mustSave' : 'mustRecompute') })));
  assert.throws(() => l.backward(), (e: unknown) => e instanceof CheckpointError && /policy decided/.test((e as Error).message));
  assert.throws(() => checkpoint((a: Variable) => relu(a), x, { policy: () => 'save' as never }), (e: unknown) => e instanceof InvalidArgumentError && /mustSave/.test((e as Error).message));
  l.releaseGraph(); l.dispose();
  x.dispose(); w.dispose();
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
});

test('a fn that runs other ops the second time is a CheckpointError; releaseGraph frees the inputs', () => {
  const x = rand([4, 6], 1), w = rand([6, 6], 2), w2 = rand([6, 3], 3);
  let n = 0;
  const l = tidy(() => sum(checkpoint((a: Variable) => relu(matmul(a, n++ === 0 ? w : w2)), x)));
  assert.throws(() => l.backward(), (e: unknown) => e instanceof CheckpointError && /saved float32 \[6, 3\] where the forward saved float32 \[6, 6\]/.test((e as Error).message));
  l.dispose();
  const m = tidy(() => sum(checkpoint((a: Variable) => relu(matmul(a, w)), x)));
  assert.ok(savedTensorStats().count > 0);
  m.releaseGraph();
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
  m.dispose(); x.dispose(); w.dispose(); w2.dispose();
});

test('a recompute that runs other ops (not only other shapes) is a CheckpointError naming both ops, never a TypeError', () => {
  const x = rand([2], 1);
  const fns: ((a: Variable, n: number) => Variable)[] = [
    (a, n) => (n ? mul(exp(a), exp(a)) : mul(exp(a), a)), // exp where the forward ran mul
    (a, n) => (n ? exp(exp(a)) : mul(exp(a), a)), // fewer inputs, one op fewer
  ];
  for (const f of fns) {
    let n = 0;
    const l = tidy(() => sum(checkpoint((a: Variable) => f(a, n++), x)));
    assert.throws(() => l.backward(), (e: unknown) => e instanceof CheckpointError && /checkpoint: the recompute (ran \w+ \(\d inputs?\) as op \d+ where the forward ran \w+|ended before|ran more ops)/.test((e as Error).message) && /same ops/.test((e as Error).message));
    l.releaseGraph(); l.dispose();
  }
  x.dispose();
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
});

test('options: the last argument is taken as options only when all its keys are option names; async fn refused', () => {
  const x = rand([2, 3], 1);
  assert.throws(() => checkpoint((a: Variable) => a, x, { preserveRngState: 'yes' as never }), /preserveRngState must be a boolean/);
  const r = checkpoint((a: Variable, o: { k: number }) => scale(a, o.k), x, { k: 3 });
  assert.equal(r.shape, [2, 3]);
  assert.throws(() => checkpoint((async (a: Variable) => a) as never, x), /synchronous/);
  r.dispose(); x.dispose();
});

test('checkpointModules on Llama: the layers named, state-dict keys unchanged, gradients bit-identical, less held; undo', async () => {
  manualSeed(0);
  const model = new Llama({ vocabSize: 64, hiddenSize: 16, numHiddenLayers: 3, numAttentionHeads: 2, intermediateSize: 40, maxPositionEmbeddings: 8 }, { backend: be });
  const ids = Tensor.from(be, Int32Array.from({ length: 16 }, (_, i) => (i * 7) % 64), [2, 8], { dtype: 'int32' });
  const keys = Object.keys(model.stateDict());
  const run = async (): Promise<{ held: number; g: Record<string, number[]> }> => {
    const loss = tidy(() => model.loss(ids, ids));
    const held = savedTensorStats().bytes;
    loss.backward();
    const g: Record<string, number[]> = {};
    for (const [n, p] of model.namedParameters()) g[n] = await bits(p.grad);
    model.zeroGrad(); loss.dispose();
    return { held, g };
  };
  const ref = await run();
  const ck = checkpointModules(model, /^layers\.\d+$/);
  assert.equal(ck.wrapped, ['layers.0', 'layers.1', 'layers.2']);
  assert.equal(Object.keys(model.stateDict()), keys);
  const got = await run();
  assert.equal(got.g, ref.g);
  assert.ok(got.held < ref.held / 2, `held ${got.held} vs ${ref.held}`);
  ck.undo();
  ck.undo();
  const again = await run();
  assert.is(again.held, ref.held);
  ids.dispose();
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
});

test('checkpointModules: a predicate and options; outermost matches only; no match lists the names; twice is refused', async () => {
  manualSeed(0);
  const model = new Llama({ vocabSize: 64, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 40, maxPositionEmbeddings: 8 }, { backend: be });
  const mlp = checkpointModules(model, (name) => /mlp/.test(name), { policy: saveMatmuls });
  assert.equal(mlp.wrapped, ['layers.0.mlp', 'layers.1.mlp'], 'gateProj etc. inside are not wrapped again');
  assert.throws(() => checkpointModules(model, /mlp$/), /layers\.0\.mlp is already checkpointed/);
  mlp.undo();
  assert.throws(() => checkpointModules(model, /^blocks\.\d+$/), (e: unknown) => e instanceof InvalidArgumentError
    && /matches none of Llama's submodules: embedTokens, rotaryEmb, layers, layers\.0, /.test((e as Error).message));
  assert.throws(() => checkpointModules(model, 'layers' as never), /RegExp or a function/);
  assert.throws(() => checkpointModules(model, /layers/, { polic: 1 } as never), /options must be an object with keys/);
});

test('BERT with attention and hidden dropout (its own generator): checkpointed encoder layers give bit-identical gradients', async () => {
  const g = new Generator(1);
  manualSeed(0);
  const model = new BertModel({ vocabSize: 32, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 32, maxPositionEmbeddings: 16 }, { backend: be, generator: g });
  const ids = Tensor.from(be, Int32Array.from({ length: 16 }, (_, i) => (i * 5) % 32), [2, 8], { dtype: 'int32' });
  const run = async (): Promise<Record<string, number[]>> => {
    g.manualSeed(9);
    const loss = tidy(() => sum(model.forward(ids)));
    loss.backward();
    const out: Record<string, number[]> = {};
    for (const [n, p] of model.namedParameters()) if (p.grad) out[n] = await bits(p.grad);
    model.zeroGrad(); loss.dispose();
    return out;
  };
  const ref = await run();
  const ck = checkpointModules(model, /^encoder\.layer\.\d+$/);
  assert.equal(ck.wrapped, ['encoder.layer.0', 'encoder.layer.1']);
  assert.equal(await run(), ref);
  ck.undo();
  const sel = checkpointModules(model, /^encoder\.layer\.\d+$/, { policy: saveMatmuls });
  assert.equal(await run(), ref);
  sel.undo();
  const fresh = checkpointModules(model, /^encoder\.layer\.\d+$/, { preserveRngState: false });
  assert.not.equal(await run(), ref, 'dropout is on: masks drawn anew change the gradients');
  fresh.undo();
  ids.dispose();
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
});

/** A two-layer Llama, and the bits of its gradients after one loss under bfloat16 autocast. */
function autocastLlama(idsStep: number): { model: Llama; ids: Tensor; grads: () => Promise<Record<string, number[]>> } {
  manualSeed(0);
  const model = new Llama({ vocabSize: 64, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 40, maxPositionEmbeddings: 8 }, { backend: be });
  const ids = Tensor.from(be, Int32Array.from({ length: 16 }, (_, i) => (i * idsStep) % 64), [2, 8], { dtype: 'int32' });
  const grads = async (): Promise<Record<string, number[]>> => {
    const loss = autocast({ dtype: 'bfloat16' }, () => tidy(() => model.loss(ids, ids)));
    loss.backward();
    const out: Record<string, number[]> = {};
    for (const [n, p] of model.namedParameters()) out[n] = await bits(p.grad);
    model.zeroGrad(); loss.dispose();
    return out;
  };
  return { model, ids, grads };
}

test('Llama under bfloat16 autocast with saveMatmuls on each layer (attention kept, norms recomputed): bit-identical', async () => {
  const { model, ids, grads } = autocastLlama(3);
  const ref = await grads();
  const ck = checkpointModules(model, /^layers\.\d+$/, { policy: saveMatmuls });
  assert.equal(await grads(), ref);
  ck.undo();
  ids.dispose();
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
});

test('Llama under bfloat16 autocast with the attention and MLP blocks checkpointed apart (inputs that are op outputs): bit-identical', async () => {
  // The blocks' inputs are outputs of the norms; the recompute's copies of them must not be leaves,
  // or autocast casts them as parameters and the recompute saves other tensors than the forward.
  const { model, ids, grads } = autocastLlama(5);
  const ref = await grads();
  const ck = checkpointModules(model, /^layers\.\d+\.(mlp|selfAttn)$/);
  assert.equal(ck.wrapped, ['layers.0.selfAttn', 'layers.0.mlp', 'layers.1.selfAttn', 'layers.1.mlp']);
  assert.equal(await grads(), ref);
  ck.undo();
  ids.dispose();
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
});

test('without grad (noGrad, evaluation) checkpoint just runs fn once and keeps nothing', () => {
  const x = rand([3, 4], 5), w = rand([4, 4], 6);
  let calls = 0;
  const y = noGrad(() => checkpoint((h: Variable) => { calls++; return matmul(h, w); }, x));
  assert.is(calls, 1);
  assert.not.ok(y.requiresGrad);
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
  for (const v of [x, w, y]) v.dispose();
});

test('gradients w.r.t. a functional op chain: checkpoint returns what fn returns (arrays too)', async () => {
  const x = rand([3, 4], 5), w = rand([4, 4], 6);
  const [a, b] = checkpoint((h: Variable) => [mul(h, h), functional.linear(h, w)] as const, x);
  const l = add(sum(a), sum(b));
  l.backward();
  const gx = await x.grad!.toArray();
  const x2 = rand([3, 4], 5);
  const l2 = add(sum(mul(x2, x2)), sum(functional.linear(x2, w)));
  l2.backward();
  assert.equal([...gx], [...await x2.grad!.toArray()]);
  for (const v of [x, w, a, b, l, x2, l2]) v.dispose();
});

test.run();
