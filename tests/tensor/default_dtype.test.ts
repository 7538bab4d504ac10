// setDefaultDtype (torch.set_default_dtype) on wasm: tensors, parameters and float buffers created
// afterwards take it; memfit's own gradients, temporaries and optimizer state stay float32, so a
// Llama built under bfloat16 trains bit for bit as one built in float32 and cast with to('bfloat16');
// bad dtypes are refused and change nothing.
import { test } from 'uvu';
import { readdirSync, readFileSync } from 'node:fs';
import { join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import {
  AdamW, BatchNorm2d, Embedding, Generator, InvalidArgumentError, Linear, Llama, Module, RMSNorm, SiLU, Tensor, WasmBackend, functional,
  getDefaultDtype, setDefaultDtype, tidy, type Variable,
} from '../../src/index.js';

const be = new WasmBackend();

test.after.each(() => { setDefaultDtype('float32'); });

test('the default is float32; setDefaultDtype returns the previous one and accepts aliases', () => {
  assert.is(getDefaultDtype(), 'float32');
  assert.is(setDefaultDtype('bf16'), 'float32');
  assert.is(getDefaultDtype(), 'bfloat16');
  assert.is(setDefaultDtype('float16'), 'bfloat16');
  assert.is(getDefaultDtype(), 'float16');
});

test('tensors, Linear weights and BatchNorm buffers created afterwards take the default; explicit dtypes and int32 are kept', () => {
  setDefaultDtype('bfloat16');
  const t = Tensor.from(be, [1, 2, 3], [3]);
  const e = Tensor.empty(be, [2]);
  const f = Tensor.from(be, [1, 2, 3], [3], { dtype: 'float32' });
  const i = Tensor.from(be, [1, 2], [2], { dtype: 'int32' });
  assert.equal([t.dtype, e.dtype, f.dtype, i.dtype], ['bfloat16', 'bfloat16', 'float32', 'int32']);
  const lin = new Linear(4, 3, { backend: be });
  assert.equal([lin.weight.data.dtype, lin.bias!.data.dtype], ['bfloat16', 'bfloat16']);
  const bn = new BatchNorm2d(3, { backend: be });
  const buffers = Object.fromEntries(Object.entries(bn.stateDict()).map(([k, v]) => [k, v.dtype]));
  assert.equal(buffers, { weight: 'bfloat16', bias: 'bfloat16', running_mean: 'bfloat16', running_var: 'bfloat16', num_batches_tracked: 'int32' });
  setDefaultDtype('float32');
  assert.is(t.dtype, 'bfloat16', 'existing tensors keep their dtype');
  const after = new Linear(2, 2, { backend: be });
  assert.is(after.weight.data.dtype, 'float32');
  for (const x of [t, e, f, i]) x.dispose();
  for (const m of [lin, bn, after]) m.dispose();
});

/** An embedding MLP language model: Embedding -> RMSNorm -> Linear -> SiLU -> Linear, cross-entropy loss. */
class Mlp extends Module {
  emb: Embedding; norm: RMSNorm; up: Linear; act = new SiLU(); down: Linear;
  constructor(g: Generator) {
    super();
    this.emb = new Embedding(256, 32, { backend: be, generator: g });
    this.norm = new RMSNorm(32, 1e-5, { backend: be });
    this.up = new Linear(32, 64, { backend: be, generator: g });
    this.down = new Linear(64, 256, { backend: be, generator: g });
  }
  loss(ids: Tensor, targets: Tensor): Variable {
    const x = this.act.forward(this.up.forward(this.norm.forward(this.emb.forward(ids))));
    return functional.crossEntropy(this.down.forward(x), targets);
  }
}

const ids = () => Tensor.from(be, Int32Array.from({ length: 16 }, (_, k) => (k * 37) % 256), [16], { dtype: 'int32' });
const targets = () => Tensor.from(be, Int32Array.from({ length: 16 }, (_, k) => (k * 11 + 3) % 256), [16], { dtype: 'int32' });

test('a model built under bfloat16 trains bit for bit as one built in float32 and cast with to(): gradients and optimizer state stay float32', async () => {
  const [x, y] = [ids(), targets()];
  const run = async (underDefault: boolean) => {
    if (underDefault) setDefaultDtype('bfloat16');
    const model = new Mlp(new Generator(4));
    if (!underDefault) model.to('bfloat16');
    const opt = new AdamW(model.parameters(), { lr: 1e-2 });
    const dtypes = new Set<string>();
    for (let s = 0; s < 2; s++) {
      const loss = tidy(() => model.loss(x, y));
      loss.backward();
      for (const p of model.parameters()) dtypes.add(`${p.data.dtype}/grad ${p.grad!.dtype}`);
      opt.step();
      opt.zeroGrad();
      loss.dispose();
    }
    for (const p of model.parameters()) for (const v of Object.values(opt.getState(p)!)) if (v instanceof Tensor) dtypes.add(`state ${v.dtype}`);
    const values = await Promise.all(model.parameters().map(async (p) => Array.from(await p.data.toArray())));
    setDefaultDtype('float32');
    opt.dispose(); model.dispose();
    return { values, dtypes: [...dtypes].sort() };
  };
  const a = await run(true), b = await run(false);
  assert.equal(a.dtypes, ['bfloat16/grad float32', 'state float32']);
  assert.equal(a.values, b.values);
  x.dispose(); y.dispose();
  assert.is(be.memory.memoryAllocated(), 0);
});

test('a Llama built under bfloat16 has bfloat16 weights and float32 rotary tables (as Hugging Face computes them), and trains', async () => {
  setDefaultDtype('bfloat16');
  const model = new Llama({ vocabSize: 256, hiddenSize: 32, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 64, maxPositionEmbeddings: 16, rmsNormEps: 1e-5 }, { backend: be, generator: new Generator(4) });
  setDefaultDtype('float32');
  assert.ok(model.parameters().every((p) => p.data.dtype === 'bfloat16'));
  assert.ok(model.buffers().every((t) => t.dtype === 'float32'));
  const opt = new AdamW(model.parameters(), { lr: 1e-2 });
  const [x, y] = [ids().reshape([2, 8]), targets().reshape([2, 8])];
  const losses: number[] = [];
  for (let s = 0; s < 5; s++) {
    const loss = tidy(() => model.loss(x, y));
    loss.backward();
    opt.step();
    opt.zeroGrad();
    losses.push((await loss.data.toArray())[0]);
    loss.dispose();
  }
  assert.ok(losses[4] < losses[0] - 0.1, `the loss falls: ${losses.join(', ')}`);
  x.dispose(); y.dispose(); opt.dispose(); model.dispose();
});

test('memfit\'s own tensors name their dtype: every Tensor.empty / Tensor.from in src/ without one is a place meant to follow the default', () => {
  // The places that follow getDefaultDtype(): parameters (init, Parameter.from through options),
  // BatchNorm's running statistics, Variable.from, and Tensor.from itself.
  const allowed = [
    'nn/init.ts: Tensor.empty(backend, shape, { category: \'parameter\', label })',
    'nn/init.ts: Tensor.from(backend, values, shape, { category: \'parameter\', label })',
    'nn/vision_layers.ts: Tensor.from(be, new Float32Array(numFeatures), [numFeatures], { category: \'data\', label: \'running_mean\' })',
    'nn/vision_layers.ts: Tensor.from(be, new Float32Array(numFeatures).fill(1), [numFeatures], { category: \'data\', label: \'running_var\' })',
    'autograd/variable.ts: Tensor.from(backend, data, shape, { category: options.category ?? \'data\' })',
    'tensor/tensor.ts: Tensor.empty(backend, shape, { category: \'data\', ...options })',
  ];
  const root = fileURLToPath(new URL('../../src/', import.meta.url));
  const found: string[] = [];
  for (const rel of readdirSync(root, { recursive: true }) as string[]) {
    if (!rel.endsWith('.ts')) continue;
    const src = readFileSync(join(root, rel), 'utf8');
    for (const m of src.matchAll(/Tensor\.(empty|from)\(/g)) {
      let i = m.index! + m[0].length, depth = 1;
      while (depth > 0 && i < src.length) { const c = src[i++]; if ('([{'.includes(c)) depth++; else if (')]}'.includes(c)) depth--; }
      const call = src.slice(m.index, i).replace(/\s+/g, ' ');
      if (!call.includes('dtype')) found.push(`${rel.split(sep).join('/')}: ${call}`);
    }
  }
  assert.equal(found.sort(), [...allowed].sort());
});

test('bad dtypes are InvalidArgumentErrors naming the allowed ones; the default is unchanged', () => {
  setDefaultDtype('bfloat16');
  for (const bad of ['int32', 'float8_e4m3fn', 'float4_e2m1fn', 'nope', 3]) {
    assert.throws(() => setDefaultDtype(bad as 'float32'), (e: unknown) => e instanceof InvalidArgumentError && /float32, bfloat16, float16/.test((e as Error).message), String(bad));
  }
  assert.is(getDefaultDtype(), 'bfloat16');
});

test.run();
