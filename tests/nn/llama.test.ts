// The Llama-style model: naming, rotary encoding against float64, causality and padding, the
// gradient of the whole model against a finite difference, inference-mode memory, WebGPU vs wasm.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import type { Backend } from '../../src/backend/backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { inferenceMode, savedTensorStats, tidy, withSavedTensorsHooks, type SavedTensorsHooks } from '../../src/autograd/index.js';
import { storageBytes } from '../../src/backend/storage.js';
import { Llama, RotaryEmbedding, SwiGLU, type LlamaConfig } from '../../src/nn/llama.js';
import { Generator } from '../../src/random.js';
import { gradcheck, weighted, weightedSum } from '../helpers/gradcheck.js';
import { gpuBackend } from '../helpers/backends.js';

const w = new WasmBackend();
const cfg: LlamaConfig = { vocabSize: 16, hiddenSize: 8, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 12, maxPositionEmbeddings: 8 };
const model = (b: Backend = w, config = cfg) => new Llama(config, { backend: b, generator: new Generator(1) });
const ids = (b: Backend, v: number[], shape = [1, v.length]) => Tensor.from(b, Int32Array.from(v), shape, { dtype: 'int32' });

test('submodules and parameters are named like PyTorch (camelCase); numParameters matches the formula', () => {
  const data0 = w.memory.memoryAllocated('data');
  const m = model();
  const D = cfg.hiddenSize / cfg.numAttentionHeads, P = cfg.maxPositionEmbeddings;
  assert.is(w.memory.memoryAllocated('data') - data0, (2 * P * D + D * D) * 4, 'one set of rotary tables for all layers');
  const names = m.namedParameters().map(([n]) => n);
  for (const n of ['embedTokens.weight', 'layers.0.selfAttn.qProj.weight', 'layers.1.mlp.downProj.weight', 'layers.1.postAttentionLayernorm.weight', 'norm.weight', 'lmHead.weight']) {
    assert.ok(names.includes(n), n);
  }
  assert.ok(m.getSubmodule('layers.1.mlp') instanceof SwiGLU);
  const { vocabSize: V, hiddenSize: C, intermediateSize: I, numHiddenLayers: L } = cfg;
  assert.is(m.numParameters(), 2 * V * C + L * (4 * C * C + 3 * C * I + 2 * C) + C);
  assert.not.ok(Object.keys(m.stateDict()).some((k) => k.includes('rotary')), 'rope tables are non-persistent buffers');
  const tied = model(w, { ...cfg, tieWordEmbeddings: true });
  assert.is(tied.numParameters(), m.numParameters() - V * C);
  assert.throws(() => model(w, { ...cfg, numAttentionHeads: 3 }), /multiple of numAttentionHeads/);
  assert.throws(() => model(w, { ...cfg, numKeyValueHeads: 1 }), /grouped-query/);
  m.dispose(); tied.dispose();
  assert.is(w.memory.memoryAllocated('parameter'), 0);
});

test('rotary encoding equals the pairwise rotation (x_i, x_i+D/2) by t / theta^(2i/D), with gradient', async () => {
  const D = 4, T = 3, rope = new RotaryEmbedding(D, 8, 10000, { backend: w });
  const ref = (x: Float64Array) => {
    const y = new Float64Array(x.length);
    for (let r = 0; r < x.length / D; r++) {
      const t = r % T;
      for (let i = 0; i < D / 2; i++) {
        const a = t / 10000 ** ((2 * i) / D), c = Math.cos(a), s = Math.sin(a);
        const x1 = x[r * D + i], x2 = x[r * D + i + D / 2];
        y[r * D + i] = x1 * c - x2 * s;
        y[r * D + i + D / 2] = x2 * c + x1 * s;
      }
    }
    return y;
  };
  await gradcheck(w, 'rope', { shapes: [[2, 2, T, D]], run: ([x]) => weighted(rope.forward(x)), ref: ([x]) => weightedSum(ref(x)) });
  rope.dispose();
});

async function logitsOf(m: Llama, tokens: number[], mask?: number[]): Promise<Float32Array> {
  const i = ids(w, tokens);
  const am = mask ? Tensor.from(w, mask, [1, mask.length]) : null;
  const y = inferenceMode(() => m.forward(i, { attentionMask: am }));
  const v = (await y.data.toArray()) as Float32Array;
  y.dispose(); i.dispose(); am?.dispose();
  return v;
}

test('causal: logits at t do not depend on later tokens; padded keys are never attended to', async () => {
  const m = model();
  const V = cfg.vocabSize;
  const a = await logitsOf(m, [1, 2, 3, 4, 5, 6]);
  const b = await logitsOf(m, [1, 2, 3, 4, 9, 0]);
  assert.equal(a.subarray(0, 4 * V), b.subarray(0, 4 * V));
  assert.not.equal(a.subarray(4 * V), b.subarray(4 * V));
  const mask = [1, 1, 0, 1, 1, 1];
  const c = await logitsOf(m, [1, 2, 3, 4, 5, 6], mask);
  const d = await logitsOf(m, [1, 2, 11, 4, 5, 6], mask);
  for (const t of [0, 1, 3, 4, 5]) assert.equal(c.subarray(t * V, (t + 1) * V), d.subarray(t * V, (t + 1) * V), `position ${t}`);
  assert.not.equal(c.subarray(3 * V), a.subarray(3 * V), 'the mask changes what later positions see');
  m.dispose();
});

test('the whole model: loss starts near ln(V); directional derivative matches the gradient', async () => {
  const m = model();
  const x = ids(w, [3, 1, 4, 1, 5, 9, 2, 6], [2, 4]), y = ids(w, [1, 4, 1, 5, 9, 2, 6, 5], [2, 4]);
  const lossAt = async () => {
    const l = inferenceMode(() => m.loss(x, y));
    const v = (await l.data.toArray())[0];
    l.dispose();
    return v;
  };
  const l0 = tidy(() => m.loss(x, y));
  const v0 = (await l0.data.toArray())[0];
  assert.ok(Math.abs(v0 - Math.log(cfg.vocabSize)) < 0.05, `initial loss ${v0} vs ln V ${Math.log(cfg.vocabSize)}`);
  l0.backward();
  l0.dispose();
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
  // Step along the gradient direction: (L(p + e g/|g|) - L(p - e g/|g|)) / 2e ~ |g|.
  const params = m.parameters();
  const gs = await Promise.all(params.map(async (p) => (await p.grad!.toArray()) as Float32Array));
  const ps = await Promise.all(params.map(async (p) => (await p.data.toArray()) as Float32Array));
  const norm = Math.sqrt(gs.reduce((s, g) => s + g.reduce((t, v) => t + v * v, 0), 0));
  assert.ok(gs.every((g) => g.some((v) => v !== 0)), 'every parameter gets a gradient');
  const shift = (e: number) => params.forEach((p, i) => w.write(p.data.storage, ps[i].map((v, j) => v + (e * gs[i][j]) / norm)));
  const e = 1e-2;
  shift(e);
  const up = await lossAt();
  shift(-e);
  const down = await lossAt();
  const fd = (up - down) / (2 * e);
  assert.ok(Math.abs(fd - norm) < 0.02 * norm, `finite difference ${fd} vs |grad| ${norm}`);
  x.dispose(); y.dispose(); m.dispose();
});

test('an inference forward leaves the activation category at zero bytes throughout; a training forward saves activations', async () => {
  const m = model();
  const x = ids(w, [3, 1, 4, 1, 5, 9, 2, 6], [2, 4]);
  const act = () => w.memory.memoryAllocated('activation');
  const logitsBytes = 2 * 4 * cfg.vocabSize * 4;
  assert.is(act(), 0);
  w.memory.resetPeakMemoryStats();
  const yi = inferenceMode(() => m.forward(x));
  assert.is(w.memory.maxMemoryAllocated('activation'), 0, 'zero activation bytes at every point of the inference forward');
  assert.is(w.memory.memoryAllocated('temporary'), logitsBytes, 'the logits are all that is left');
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
  yi.dispose();
  const yt = m.forward(x);
  const saved = act() - logitsBytes;
  assert.ok(saved > 10 * logitsBytes, `training forward saved ${saved} bytes`);
  assert.ok(savedTensorStats().bytes > 0);
  yt.releaseGraph();
  yt.dispose();
  assert.is(act(), 0, 'back to zero once the graph is released');
  x.dispose(); m.dispose();
});

test('saved-tensor hooks offload every saved tensor of a whole Llama (int32 ids, statistics, fused ops) to the host: identical gradients', async () => {
  interface Host { shape: number[]; dtype: string; bytes: Uint8Array }
  let packed = 0;
  const offload: SavedTensorsHooks<Host> = {
    pack: (t) => {
      packed++;
      const width = t.dtype === 'int32' ? 4 : storageBytes(t.dtype, 1);
      return { shape: [...t.shape], dtype: t.dtype, bytes: w.readSync(t.storage, t.offset * width, storageBytes(t.dtype, t.size)).slice() };
    },
    unpack: (h) => {
      const t = Tensor.empty(w, h.shape, { dtype: h.dtype, category: 'activation' });
      w.write(t.storage, h.bytes);
      return t;
    },
  };
  const run = async (hooks: SavedTensorsHooks<Host> | null) => {
    const m = model();
    const x = ids(w, [3, 1, 4, 1, 5, 9, 2, 6], [2, 4]), y = ids(w, [1, 4, 1, 5, 9, 2, 6, -100], [2, 4]);
    const mask = Tensor.from(w, [1, 1, 1, 1, 0, 1, 1, 1], [2, 4]);
    const l = tidy(() => (hooks ? withSavedTensorsHooks(hooks, () => m.loss(x, y, { attentionMask: mask })) : m.loss(x, y, { attentionMask: mask })));
    const held = w.memory.memoryAllocated('activation');
    l.backward();
    const grads = await Promise.all(m.parameters().map((p) => p.grad!.toArray()));
    l.dispose(); x.dispose(); y.dispose(); mask.dispose(); m.dispose();
    return { grads, held };
  };
  const base = await run(null);
  const off = await run(offload);
  assert.ok(packed > 50, `${packed} tensors went through the hooks`);
  assert.ok(base.held > 2000, `on the device: ${base.held} bytes of saved activations`);
  assert.is(off.held, 4, 'offloaded: only the loss stays on the device');
  assert.equal(off.grads, base.grads);
});

test('WebGPU matches wasm: logits, loss and every parameter gradient of a tiny Llama', async () => {
  const g = await gpuBackend();
  const results: Float32Array[][] = [];
  for (const be of [w, g]) {
    const m = model(be);
    const x = ids(be, [3, 1, 4, 1, 5, 9, 2, 6], [2, 4]), y = ids(be, [1, 4, 1, 5, 9, 2, 6, -100], [2, 4]);
    const mask = Tensor.from(be, [1, 1, 1, 1, 0, 1, 1, 1], [2, 4]);
    const l = tidy(() => m.loss(x, y, { attentionMask: mask }));
    const out = [(await l.data.toArray()) as Float32Array];
    l.backward();
    for (const p of m.parameters()) out.push((await p.grad!.toArray()) as Float32Array);
    results.push(out);
    l.dispose(); x.dispose(); y.dispose(); mask.dispose(); m.dispose();
  }
  results[0].forEach((a, i) => {
    const b = results[1][i];
    const scale = Math.max(...a.map(Math.abs));
    for (let j = 0; j < a.length; j++) assert.ok(Math.abs(a[j] - b[j]) <= 1e-4 * scale + 1e-6, `tensor ${i} [${j}]: wasm ${a[j]} webgpu ${b[j]}`);
  });
  g.destroy();
});

test.run();
