// Llama.loss's recomputeLogits: the head and the cross-entropy run under checkpoint(), so backward
// keeps no logits-sized tensor and computes the logits again. The loss and every gradient are the
// same bits as without it (float32, bfloat16 autocast, tied embeddings, with per-layer checkpoints),
// and the memory the forward leaves for backward is smaller by exactly what the cross-entropy saves
// (less the head's input, which the checkpoint keeps in float32).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend, Llama, Tensor, manualSeed, tidy, autocast, checkpointModules, savedTensorStats, InvalidArgumentError } from '../../src/index.js';
import { floatBits } from '../helpers/values.js';

const be = new WasmBackend();
const CONFIG = { vocabSize: 96, hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 4, intermediateSize: 64, maxPositionEmbeddings: 16 };
const [B, T] = [3, 16];

interface Run { loss: number[]; grads: Record<string, number[]>; saved: number }

async function step(recomputeLogits: boolean, o: { autocast?: boolean; tied?: boolean; layers?: boolean } = {}): Promise<Run> {
  manualSeed(1);
  const model = new Llama({ ...CONFIG, tieWordEmbeddings: o.tied ?? false }, { backend: be });
  if (o.layers) checkpointModules(model, /^layers\.\d+$/);
  const ids = Tensor.from(be, Int32Array.from({ length: B * T }, (_, i) => (i * 29 + 3) % CONFIG.vocabSize), [B, T], { dtype: 'int32' });
  const targets = Tensor.from(be, Int32Array.from({ length: B * T }, (_, i) => (i % 7 === 0 ? -100 : (i * 11 + 5) % CONFIG.vocabSize)), [B, T], { dtype: 'int32' });
  const run = () => model.loss(ids, targets, { recomputeLogits });
  const before = be.memory.memoryAllocated();
  const loss = tidy(() => (o.autocast ? autocast({ dtype: 'bfloat16' }, run) : run()));
  const saved = be.memory.memoryAllocated() - before; // what the forward left alive for backward (and the loss)
  loss.backward();
  const grads: Record<string, number[]> = {};
  for (const [n, p] of model.namedParameters()) grads[n] = await floatBits(p.grad);
  const out = { loss: await floatBits(loss.data), grads, saved };
  loss.dispose(); ids.dispose(); targets.dispose();
  for (const p of model.parameters()) p.dispose();
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 }, 'nothing saved is left after backward');
  return out;
}

for (const o of [{}, { autocast: true }, { tied: true }, { layers: true }, { layers: true, autocast: true }]) {
  test(`recomputeLogits ${JSON.stringify(o)}: the same loss and gradients bit for bit, and neither the logits nor the final norm's output saved`, async () => {
    const plain = await step(false, o), lean = await step(true, o);
    assert.equal(lean.loss, plain.loss);
    assert.equal(Object.keys(lean.grads), Object.keys(plain.grads));
    for (const [n, g] of Object.entries(plain.grads)) assert.equal(lean.grads[n], g, n);
    // Without: cross_entropy saves its [B*T, V] gradient, float32 (bfloat16 under autocast:
    // saveLowerPrecision), the head its input, the final norm's output (a bfloat16 copy under
    // autocast), and the final norm its rstd [B*T] and its input, the last layer's output (as it
    // is; a bfloat16 copy under autocast). With: the checkpoint keeps the last layer's output as it
    // is (float32) and nothing else.
    const [rows, v, c] = [B * T, CONFIG.vocabSize, CONFIG.hiddenSize];
    const expected = o.autocast ? rows * v * 2 + 2 * (rows * c * 2) + rows * 4 - rows * c * 4 : rows * v * 4 + rows * c * 4 + rows * 4;
    assert.is(plain.saved - lean.saved, expected, `saved ${plain.saved} -> ${lean.saved}`);
  });
}

test('recomputeLogits: the targets may be freed before backward (the checkpoint keeps them), as without it', async () => {
  const grads: number[][] = [];
  for (const recomputeLogits of [false, true]) {
    manualSeed(2);
    const model = new Llama(CONFIG, { backend: be });
    const ids = Tensor.from(be, Int32Array.from({ length: T }, (_, i) => (i * 5) % CONFIG.vocabSize), [1, T], { dtype: 'int32' });
    const targets = Tensor.from(be, Int32Array.from({ length: T }, (_, i) => (i * 3 + 1) % CONFIG.vocabSize), [1, T], { dtype: 'int32' });
    const loss = tidy(() => model.loss(ids, targets, { recomputeLogits }));
    targets.dispose();
    ids.dispose();
    loss.backward();
    grads.push(await floatBits(model.getParameter('lmHead.weight').grad));
    loss.dispose();
    for (const p of model.parameters()) p.dispose();
  }
  assert.equal(grads[1], grads[0]);
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
});

test('recomputeLogits must be a boolean', () => {
  const model = new Llama(CONFIG, { backend: be });
  const ids = Tensor.from(be, new Int32Array(T), [1, T], { dtype: 'int32' });
  assert.throws(() => model.loss(ids, ids, { recomputeLogits: 'yes' as never }), (e: unknown) => e instanceof InvalidArgumentError && /recomputeLogits must be a boolean, got "yes"/.test((e as Error).message));
  ids.dispose();
  for (const p of model.parameters()) p.dispose();
});

test.run();
