// The meta backend: the same allocations as the wasm backend, by category and label, without
// values (a training step's trace equals wasm's but for the wasm kernels' own scratch, and the peak
// is a lower bound within 3%); that lets the saved-activation ratio of
// bfloat16 autocast be counted for the "small" and "seedlike" configs of
// docs/torch_h100_anchors.md, which are far too large to compute here; bad use is refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  AdamW, InvalidArgumentError, Llama, MetaBackend, Tensor, WasmBackend, autocast, createBackend, manualSeed, tidy,
  type Backend, type LlamaConfig, type MemoryEvent,
} from '../../src/index.js';

const TINY = { vocabSize: 256, hiddenSize: 64, numHiddenLayers: 2, numAttentionHeads: 4, intermediateSize: 176, maxPositionEmbeddings: 64 };

function ids(be: Backend, shape: [number, number], vocab: number): Tensor {
  return Tensor.from(be, Int32Array.from({ length: shape[0] * shape[1] }, (_, i) => (i * 7919) % vocab), shape, { dtype: 'int32', category: 'data' });
}

/** One training step (forward, backward, AdamW), traced: the activation bytes the forward holds, the trace, and the peak. */
function step(be: Backend, cfg: LlamaConfig, batch: number, seq: number, dtype?: 'bfloat16') {
  manualSeed(0);
  const model = new Llama(cfg, { backend: be });
  const opt = new AdamW(model.parameters(), { lr: 1e-3 });
  const x = ids(be, [batch, seq], cfg.vocabSize);
  be.memory.resetPeakMemoryStats();
  be.memory.startTrace();
  const run = () => tidy(() => model.loss(x, x));
  const loss = dtype ? autocast({ dtype }, run) : run();
  const held = be.memory.memoryAllocated('activation');
  loss.backward();
  opt.step();
  opt.zeroGrad();
  loss.dispose();
  const trace = be.memory.stopTrace();
  const peak = be.memory.maxMemoryAllocated();
  x.dispose(); opt.dispose(); model.dispose();
  assert.is(be.memory.memoryAllocated(), 0, 'everything freed');
  const events = trace.events.map((e: MemoryEvent) => `${e.kind} ${e.category} ${e.bytes} ${e.label}`);
  return { held, events, peak };
}

/** The labels the wasm backend's kernels give their own scratch (backend.temp): shape metadata, attention's delta rows, staging copies. */
const KERNEL_SCRATCH = /(^|\/)(meta|attention di|stage-in|stage-in codes|stage-out|stage-out codes|codes in|codes out|scratch)$/;

test('a training step allocates on meta what it allocates on wasm, but for the wasm kernels\' own scratch: the same events, labels and activation bytes', () => {
  for (const dtype of [undefined, 'bfloat16'] as const) {
    const w = step(new WasmBackend(), TINY, 4, 32, dtype);
    const m = step(new MetaBackend(), TINY, 4, 32, dtype);
    assert.is(m.held, w.held);
    const scratch = w.events.filter((e) => KERNEL_SCRATCH.test(e.split(' ').slice(3).join(' ')));
    assert.ok(scratch.every((e) => e.split(' ')[1] === 'temporary'));
    assert.equal(m.events, w.events.filter((e) => !scratch.includes(e)));
    assert.ok(m.peak <= w.peak && m.peak >= 0.97 * w.peak, `${dtype ?? 'float32'}: meta peak ${m.peak} vs wasm ${w.peak}`);
  }
});

test('bfloat16 autocast keeps at most 0.55 of the float32 saved activations on the small and seedlike configs (counted on meta)', () => {
  // docs/torch_h100_anchors.md: PyTorch's bf16 autocast keeps 0.76 on seedlike (3715 -> 2816 MB).
  const configs: [string, LlamaConfig, number, number][] = [
    ['small', { vocabSize: 8192, hiddenSize: 512, numHiddenLayers: 8, numAttentionHeads: 8, intermediateSize: 1408, maxPositionEmbeddings: 256 }, 16, 256],
    ['seedlike', { vocabSize: 32000, hiddenSize: 768, numHiddenLayers: 12, numAttentionHeads: 12, intermediateSize: 2048, maxPositionEmbeddings: 512 }, 8, 512],
  ];
  for (const [name, cfg, batch, seq] of configs) {
    const be = new MetaBackend();
    const f32 = step(be, cfg, batch, seq), bf = step(be, cfg, batch, seq, 'bfloat16');
    const ratio = bf.held / f32.held;
    assert.ok(ratio <= 0.55, `${name}: ${bf.held} / ${f32.held} = ${ratio.toFixed(4)}`);
    assert.ok(f32.held > 1e9 || name === 'small', `${name}: float32 saves ${f32.held} bytes (PyTorch: 3.7 GB on seedlike)`);
  }
});

test('meta tensors read back as zeros; createBackend({ backend: "meta" }); misuse is refused', async () => {
  const be = await createBackend({ backend: 'meta', log: null });
  assert.ok(be instanceof MetaBackend);
  assert.is(be.kind, 'meta');
  const t = Tensor.from(be, [1, 2, 3], [3]);
  assert.equal(Array.from(await t.toArray()), [0, 0, 0]);
  assert.is(be.memory.memoryAllocated('data'), 12);
  const s = t.storage;
  t.dispose();
  assert.throws(() => be.free(s), (e: unknown) => e instanceof InvalidArgumentError && /freed twice/.test((e as Error).message));
  const other = new MetaBackend();
  const u = Tensor.empty(other, [2], { dtype: 'float32' });
  assert.throws(() => be.write(u.storage, new Float32Array(2)), /another backend/);
  assert.throws(() => other.write(u.storage, new Float32Array(3)), /overruns/);
  u.dispose();
  be.destroy();
  assert.throws(() => Tensor.empty(be, [1]), /destroyed/);
});

test.run();
