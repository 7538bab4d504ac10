// Attention reads its heads in place: q, k, v as [B, H, T, D] views of [B, T, H, D] memory (what
// splitHeads makes) give bit for bit what contiguous copies give, forward and backward, on wasm and
// on WebGPU (both shader layouts); and a Llama attention block, forward and backward, copies no head.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpuBackend, WasmBackend, type WebGPUBackend } from '../helpers/backends.js';
import * as gpuAttention from '../../src/backend/webgpu/attention.js';
import { scaledDotProductAttention } from '../../src/nn/functional.js';
import { CausalSelfAttention, Llama, Tensor, Variable, checkpointModules, manualSeed, permute, saveMatmuls, tidy, withOpObserver, withSavedTensorsHooks, exp, type Backend } from '../../src/index.js';

let g: WebGPUBackend;
const w = new WasmBackend();
test.before(async () => { g = await gpuBackend(); });
test.after(() => g.destroy());

const [B, T, H, D] = [2, 5, 3, 4];
const data = (seed: number) => Float32Array.from({ length: B * T * H * D }, (_, i) => Math.sin(seed * 7.1 + i * 0.37) * 1.5);

type Run = (q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, dout: Tensor, dq: Tensor, dk: Tensor, dv: Tensor) => void;

async function compare(b: Backend, dtype: 'float32' | 'bfloat16', run: Run, what: string): Promise<void> {
  const mem = [1, 2, 3, 4].map((s) => Tensor.from(b, data(s), [B, T, H, D], { dtype })); // q, k, v, dout as [B, T, H, D]
  const views = mem.map((t) => t.permute([0, 2, 1, 3]));
  const copies = views.map((t) => t.contiguous());
  const results: Float32Array[][] = [];
  for (const [q, k, v, dout] of [views, copies]) {
    const inPlace = q === views[0];
    const made = (): Tensor => {
      if (!inPlace) return Tensor.empty(b, [B, H, T, D], { dtype: 'float32' });
      const base = Tensor.empty(b, [B, T, H, D], { dtype: 'float32' });
      const view = base.permute([0, 2, 1, 3]);
      base.dispose();
      return view;
    };
    const [out, dq, dk, dv] = [made(), made(), made(), made()];
    const lse = Tensor.empty(b, [B, H, T], { dtype: 'float32' });
    run(q, k, v, out, lse, dout, dq, dk, dv);
    results.push(await Promise.all([out, lse, dq, dk, dv].map(async (t) => (await t.toArray()) as Float32Array)));
    for (const t of [out, lse, dq, dk, dv]) t.dispose();
  }
  ['out', 'lse', 'dq', 'dk', 'dv'].forEach((name, i) => assert.equal(Array.from(results[0][i]), Array.from(results[1][i]), `${what} ${dtype}: ${name}`));
  for (const t of [...mem, ...views, ...copies]) t.dispose();
}

for (const name of ['wasm', 'webgpu'] as const) {
  test(`${name}: attention on head views equals attention on contiguous copies, bit for bit`, async () => {
    const b: Backend = name === 'wasm' ? w : g;
    for (const dtype of ['float32', 'bfloat16'] as const) {
      for (const causal of [true, false]) {
        await compare(b, dtype, (q, k, v, out, lse, dout, dq, dk, dv) => {
          b.attention(q, k, v, out, lse, null, 0.5, causal);
          b.attentionBackward(dout, q, k, v, out, lse, null, 0.5, dq, dk, dv, causal);
        }, `${name} causal=${causal}`);
      }
    }
  });
}

test('webgpu: the tiled shader layout (hardware GPUs) reads head views too', async () => {
  await compare(g, 'float32', (q, k, v, out, lse, dout, dq, dk, dv) => {
    gpuAttention.attention(g, q, k, v, out, lse, null, 0.5, true, 2);
    gpuAttention.attentionBackward(g, dout, q, k, v, out, lse, null, 0.5, dq, dk, dv, true, 2);
  }, 'tiled');
});

test('attention refuses a mix of layouts', () => {
  const q = Tensor.from(w, data(1), [B, T, H, D]).permute([0, 2, 1, 3]);
  const k = q.contiguous();
  const out = Tensor.empty(w, [B, H, T, D]), lse = Tensor.empty(w, [B, H, T]);
  assert.throws(() => w.attention(q, k, k, out, lse, null, 0.5, true), /must all be contiguous \[B, H, T, D\] or all views/);
  for (const t of [q, k, out, lse]) t.dispose();
});

test('a Llama attention block copies no head: no transpose or contiguous op, forward or backward', () => {
  const attn = new CausalSelfAttention(H * D, H, T, { backend: w });
  const x = new Variable(Tensor.from(w, data(5), [B, T, H * D]), { requiresGrad: true });
  const ops: string[] = [];
  withOpObserver({ begin: (c) => ops.push(c.op) }, () => {
    const y = attn.forward(x);
    y.backward(Tensor.from(w, data(6), [B, T, H * D]));
    y.dispose();
  });
  assert.ok(ops.includes('scaled_dot_product_attention') && ops.includes('scaled_dot_product_attention.backward'), ops.join());
  assert.equal(ops.filter((o) => /^(transpose|contiguous)/.test(o)), [], 'no head copies');
  assert.ok(x.grad, 'x has a gradient');
  x.dispose();
});

test('saved-tensor hooks get head views as they are only when they say they take views', () => {
  const seen: boolean[] = [];
  const hooks = (views: boolean) => ({ views, pack: (t: Tensor) => { seen.push(t.isContiguous); return t.reshape(t.shape); }, unpack: (t: Tensor) => t, release: (t: Tensor) => t.dispose() });
  for (const views of [true, false]) {
    const x = new Variable(Tensor.from(w, data(7), [B, T, H, D]), { requiresGrad: true });
    const y = withSavedTensorsHooks(hooks(views), () => exp(permute(x, [0, 2, 1, 3]))); // exp saves its output, contiguous
    const q = permute(x, [0, 2, 1, 3]);
    const a = withSavedTensorsHooks(hooks(views), () => tidy(() => scaledDotProductAttentionOf(q)));
    assert.ok(seen.length >= 4, `${seen.length} tensors packed`);
    assert.is(seen.some((c) => !c), views, `views: ${views}`);
    seen.length = 0;
    for (const v of [x, y, q, a]) { v.releaseGraph(); v.dispose(); }
  }
});

test("a selective checkpoint (saveMatmuls) keeps attention's output, not copies of its head views", async () => {
  manualSeed(0);
  const model = new Llama({ vocabSize: 64, hiddenSize: H * D, numHiddenLayers: 2, numAttentionHeads: H, intermediateSize: 32, maxPositionEmbeddings: T }, { backend: w });
  const ids = Tensor.from(w, Array.from({ length: B * T }, (_, i) => (i * 5) % 64), [B, T], { dtype: 'int32' });
  const sel = checkpointModules(model, /^layers\.\d+$/, { policy: saveMatmuls });
  w.memory.startTrace();
  const loss = tidy(() => model.loss(ids, ids));
  const live = w.memory.stopTrace().live.filter((e) => e.category === 'activation' && e.label.endsWith('/scaled_dot_product_attention'));
  assert.is(live.reduce((a, e) => a + e.bytes, 0), 2 * B * H * T * D * 4, live.map((e) => `${e.label} ${e.bytes}`).join(', '));
  loss.backward();
  loss.dispose(); sel.undo(); ids.dispose(); model.dispose();
});

function scaledDotProductAttentionOf(q: Variable): Variable {
  return scaledDotProductAttention(q, q, q, { isCausal: true });
}

test.run();
