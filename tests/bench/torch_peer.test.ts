// The same-run PyTorch peer of bench:train (bench/torch_train.py) on CPU with the tiny Llama: its
// JSON has the fields bench/train.ts reads, and its model has exactly as many parameters as
// memfit's Llama of the same config, untied and tied (the peer is the same model). Needs a Python
// with torch ($MEMFIT_PYTHON, python3 or /usr/bin/python3; Debian: apt-get install python3-torch):
// without one the tests are skipped with the reason printed and counted as skipped in `npm test`'s
// summary; MEMFIT_REQUIRE_TORCH=1 turns that into a failure.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { Llama } from '../../src/nn/llama.js';
import { TINY_LLAMA, type TrainConfig } from '../../src/train/language_model.js';
import { findTorchPython, runTorchPeer, torchTrainArgs } from '../../bench/torch_peer.js';

const found = findTorchPython();
const python = 'reasons' in found ? null : found.python;
if (!python) {
  const why = `no Python with torch: ${(found as { reasons: string[] }).reasons.join('; ')}`;
  if (process.env.MEMFIT_REQUIRE_TORCH === '1') test('a Python with torch (MEMFIT_REQUIRE_TORCH=1)', () => assert.unreachable(why));
  else console.log(`  (skipped: the PyTorch peer tests; ${why})`);
}
const torchTest = python ? test : test.skip;
const w = new WasmBackend();
const memfitParameters = (config: TrainConfig) => {
  const m = new Llama(config.model, { backend: w });
  try { return m.numParameters(); } finally { m.dispose(); }
};

test('torchTrainArgs passes the model, batch, optimizer hyperparameters and seed of the config', () => {
  const args = torchTrainArgs({ ...TINY_LLAMA, lr: 1e-3, seed: 7 }, ['32-true', 'fp8'], { steps: 4, warmup: 2, device: 'cpu' });
  const arg = (f: string) => args[args.indexOf(f) + 1];
  assert.equal([arg('--vocab'), arg('--dim'), arg('--layers'), arg('--heads'), arg('--ffn'), arg('--batch'), arg('--seq')], ['256', '64', '2', '4', '176', '8', '64']);
  assert.equal([arg('--rms-eps'), arg('--lr'), arg('--weight-decay'), arg('--max-grad-norm'), arg('--seed')], ['0.00001', '0.001', '0.01', '1', '7']);
  assert.equal([arg('--precision'), arg('--steps'), arg('--warmup'), arg('--device')], ['32-true,fp8', '4', '2', 'cpu']);
  assert.not.ok(args.includes('--tie'));
  assert.ok(torchTrainArgs({ ...TINY_LLAMA, model: { ...TINY_LLAMA.model, tieWordEmbeddings: true } }, ['32-true'], { steps: 1, warmup: 0, device: 'cpu' }).includes('--tie'));
});

torchTest('on CPU: the same parameter count as memfit, the JSON fields bench:train reads, fp8 unavailable with its reason', () => {
  const peer = runTorchPeer(python!, torchTrainArgs(TINY_LLAMA, ['32-true', 'bf16-mixed', 'fp8'], { steps: 2, warmup: 1, device: 'cpu' }), { quiet: true });
  assert.is(peer.deviceType, 'cpu');
  assert.is(peer.mode, 'eager');
  assert.is(peer.tf32, false);
  assert.equal(peer.results.map((r) => r.precision), ['32-true', 'bf16-mixed', 'fp8']);
  const n = memfitParameters(TINY_LLAMA);
  assert.is(n, 133_440);
  for (const r of peer.results.slice(0, 2)) {
    assert.is(r.unavailable, undefined, r.unavailable);
    assert.is(r.optimizer, 'adamw');
    assert.is(r.parameters, n, `${r.precision}: the peer's parameter count is memfit's`);
    assert.is(r.steps, 2);
    assert.ok(r.stepMsMedian! > 0 && r.tokensPerSecond! > 0);
    // Weights normal(0, 0.02): the first loss is close to a uniform guess over 256 tokens.
    assert.ok(Math.abs(r.lossFirst! - Math.log(256)) < 0.1, `${r.precision}: first loss ${r.lossFirst}`);
    assert.ok(Number.isFinite(r.lossLast));
    const c = r.peakBytesByCategory!;
    assert.is(c.parameter, 4 * n);
    assert.is(c.gradient, 4 * n);
    assert.ok(c.optimizer! >= 8 * n && c.optimizer! < 8 * n + 1024, `AdamW's two float32 moments (and its step counters): ${c.optimizer}`);
    // PyTorch measures no allocations on CPU: null, never a made-up number.
    assert.is(r.peakAllocatedBytes, null);
    assert.is(c.activation, null);
    assert.is(r.trainingForwardHeldBytes, null);
  }
  assert.match(peer.results[2].unavailable ?? '', /fp8 needs a CUDA GPU|no float8 dtypes/);
});

torchTest('on CPU, tied embeddings: the parameter count follows memfit (no LM head)', () => {
  const config: TrainConfig = { ...TINY_LLAMA, batchSize: 2, seqLen: 16, model: { ...TINY_LLAMA.model, tieWordEmbeddings: true } };
  const peer = runTorchPeer(python!, torchTrainArgs(config, ['32-true'], { steps: 1, warmup: 0, device: 'cpu' }), { quiet: true });
  const n = memfitParameters(config);
  assert.is(n, 133_440 - 256 * 64);
  assert.is(peer.results[0].parameters, n);
});

torchTest('bad arguments: the script exits non-zero and says which', () => {
  try {
    runTorchPeer(python!, torchTrainArgs(TINY_LLAMA, ['bf16-true'], { steps: 1, warmup: 0, device: 'cpu' }), { quiet: true });
    assert.unreachable('expected a failure');
  } catch (e) {
    assert.match((e as Error).message, /exited with 2: .*--precision takes a comma-separated list of 32-true, bf16-mixed, 16-mixed, fp8; got bf16-true/);
  }
});

test.run();
