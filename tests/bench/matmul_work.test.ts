// bench/matmul_work.ts: the matmul work of a training step, counted on the backend, equals the
// count predicted from the model's shapes, with and without per-layer checkpointing (in pieces of
// the batch too) and recomputed logits: the recompute stops before each layer's down projection
// and never runs more than one forward. Its ratio is the floor under checkpointing's added time.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { countMatmulMacs, llamaStepMacs, matmulMacs, type RecomputeMode } from '../../bench/matmul_work.js';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { ByteTextDataset } from '../../src/data/byte_text.js';
import { LanguageModelTrainer, MEDIUM_LLAMA, TINY_LLAMA } from '../../src/train/language_model.js';

test('matmulMacs: output elements times the shared dimension, transposes read', () => {
  const ref = (shape: number[]) => ({ shape }) as never;
  assert.is(matmulMacs(ref([5, 3]), ref([5, 7])), 105);
  assert.is(matmulMacs(ref([3, 5]), ref([5, 7]), { transA: true }), 105);
  assert.is(matmulMacs(ref([2, 4, 3]), ref([2, 4, 6]), { transB: true }), 144);
});

test('a training step\'s matmul work is the predicted count: none, per-layer checkpointing (whole and in 4 pieces), and recomputed logits', async () => {
  const text = 'the quick brown fox jumps over the lazy dog. '.repeat(400);
  const counted: Record<string, number> = {};
  const cases: [string, RecomputeMode, object][] = [
    ['none', 'none', {}],
    ['layers', 'layers', { checkpointModules: '^layers\\.\\d+$' }],
    ['chunks', 'layers', { checkpointModules: '^layers\\.\\d+$', checkpointChunks: 4 }],
    ['layers-logits', 'layers-logits', { checkpointModules: '^layers\\.\\d+$', recomputeLogits: true }],
    ['least', 'layers', { memory: 'least' }],
  ];
  for (const [name, mode, extra] of cases) {
    const t = new LanguageModelTrainer(new WasmBackend(), new ByteTextDataset(text), { ...TINY_LLAMA, ...extra, batchSize: 4, seqLen: 32, steps: 4, warmupSteps: 1 });
    try {
      const { macs } = await countMatmulMacs(t.backend, () => t.trainStep());
      counted[name] = macs;
      assert.is(macs, llamaStepMacs(TINY_LLAMA.model, 4 * 32, mode), `${name}: counted ${macs}`);
    } finally {
      t.dispose();
      t.backend.destroy();
    }
  }
  // the floor: per-layer checkpointing does 1.23x the matmul work of the plain step on the tiny
  // Llama (1.26x on the medium one: llamaStepMacs), chunked or not
  assert.is((counted.layers / counted.none).toFixed(4), '1.2286');
  assert.is(counted.chunks, counted.layers);
  assert.is((llamaStepMacs(MEDIUM_LLAMA.model, 1, 'layers') / llamaStepMacs(MEDIUM_LLAMA.model, 1, 'none')).toFixed(4), '1.2566');
  // a product added through a temporary (accumulate deeper than one K block) counts once; the
  // wrapper is gone afterwards
  const be = new WasmBackend();
  const t = (shape: number[]) => ({ storage: be.alloc(shape[0] * shape[1] * 4, 'temporary'), offset: 0, shape, dtype: 'float32' as const });
  const a = t([300, 4]), bb = t([300, 5]), out = t([4, 5]);
  be.fill(a, 1); be.fill(bb, 1); be.fill(out, 0);
  const { macs } = await countMatmulMacs(be, () => be.matmul(a, bb, out, { transA: true, accumulate: true }));
  assert.is(macs, 4 * 5 * 300);
  for (const x of [a, bb, out]) be.free(x.storage);
  assert.not.ok(Object.prototype.hasOwnProperty.call(be, 'matmul'));
  be.destroy();
});

test.run();
