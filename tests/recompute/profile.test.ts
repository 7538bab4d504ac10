// profileMemory (src/recompute/profile.ts) on a small Llama on wasm: the default candidates, the
// held (saved-activation) bytes of each module from the memory tracker's labels, what each
// checkpoint alone changes, combinations against the prediction from their members (separate
// checkpoints are independent and cumulative), and the model left as it was.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { Llama } from '../../src/nn/llama.js';
import { Generator } from '../../src/random.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { TINY_LLAMA } from '../../src/train/language_model.js';
import { forwardWrapper } from '../../src/nn/module.js';
import { defaultCandidateModules, profileMemory, selectModules, type MemoryProfile } from '../../src/recompute/profile.js';
import { InvalidArgumentError } from '../../src/errors.js';

const be = new WasmBackend();
const model = new Llama({ ...TINY_LLAMA.model, numHiddenLayers: 3 }, { backend: be, generator: new Generator(0) });
const B = 2, T = 24, g = new Generator(1);
const tokens = () => Int32Array.from({ length: B * T }, () => Math.floor(g.random() * 256));
const batch = { ids: Tensor.from(be, tokens(), [B, T], { dtype: 'int32' }), targets: Tensor.from(be, tokens(), [B, T], { dtype: 'int32' }) };
let profile: MemoryProfile;

test('the default candidates are the decoder layers and their attention and MLP blocks', async () => {
  assert.equal(defaultCandidateModules(model), [
    'layers.0', 'layers.0.selfAttn', 'layers.0.mlp', 'layers.1', 'layers.1.selfAttn', 'layers.1.mlp', 'layers.2', 'layers.2.selfAttn', 'layers.2.mlp',
  ]);
  const stateKeys = Object.keys(model.stateDict());
  const before = be.memory.memoryAllocated();
  profile = await profileMemory(model, batch, { repeats: 1, forwardRepeats: 1 });
  assert.is(be.memory.memoryAllocated(), before, 'nothing left allocated');
  assert.equal(Object.keys(model.stateDict()), stateKeys);
  for (const [, m] of model.namedModules()) assert.is(forwardWrapper(m), null, 'no checkpoint left in place');
  assert.is(profile.candidates.length, 9 * 2, 'each module plainly and under saveMatmuls');
});

test('held bytes: exact from the memory labels, nested modules within their parents, the baseline within the step', () => {
  const held = new Map(profile.modules.map((m) => [m.name, m.heldBytes]));
  for (let l = 0; l < 3; l++) {
    const layer = held.get(`layers.${l}`)!, attn = held.get(`layers.${l}.selfAttn`)!, mlp = held.get(`layers.${l}.mlp`)!;
    assert.ok(attn > 0 && mlp > 0);
    assert.ok(attn + mlp < layer, 'the layer also holds its norms\' and residuals\' activations');
    assert.is(layer, held.get('layers.0'), 'identical layers hold identical bytes');
  }
  const layers = [0, 1, 2].reduce((a, l) => a + held.get(`layers.${l}`)!, 0);
  assert.ok(layers < profile.baseline.heldBytes, 'the layers hold part of what the forward leaves held');
  assert.ok(profile.baseline.peakBytes > profile.baseline.beforeBytes + profile.baseline.heldBytes);
  for (const m of profile.modules) assert.ok(m.forwardMs > 0 && Number.isFinite(m.forwardMs), `${m.name} forward time`);
  const sum = Object.values(profile.baselineAtPeak).reduce((a, b) => a + b, 0);
  assert.is(sum, profile.baseline.peakBytes, 'the breakdown at the peak sums to the peak');
});

test('each checkpoint alone: held activations removed are those the module held, less what policies keep', () => {
  for (const c of profile.candidates) {
    const own = profile.modules.find((m) => m.name === c.modules[0])!.heldBytes;
    if (c.policy === null) assert.ok(c.heldBytesSaved > 0, `${c.name} removes held bytes`);
    assert.ok(c.heldBytesSaved <= own, `${c.name}: removes ${c.heldBytesSaved}, no more than the ${own} its module held (its output stays held)`);
    assert.is(c.predictedPeakBytes, c.peakBytes, 'alone, the prediction is the measurement');
    assert.ok(c.recomputeMs > 0, `${c.name} recomputes something`);
    if (c.policy === 'saveMatmuls') {
      const plain = profile.candidates.find((x) => x.name === c.modules[0])!;
      assert.ok(c.heldBytesSaved < plain.heldBytesSaved, `${c.name} keeps the matmul outputs`);
    }
  }
  const layer = profile.candidates.find((c) => c.name === 'layers.1')!, own = profile.modules.find((m) => m.name === 'layers.1')!;
  assert.is(layer.heldBytesSaved, own.heldBytes - 2 * 24 * 64 * 4, 'a layer checkpointed keeps only its output [2, 24, 64] of what it held');
  const first = profile.candidates.find((c) => c.name === 'layers.0')!;
  assert.ok(first.bytesSaved > 0, 'checkpointing the first layer lowers the peak');
});

test('combinations (all layers, all attention, all MLP blocks): the measured peak is the predicted one within 5%', () => {
  assert.equal(profile.combinations.map((c) => c.name), [
    'layers.0 + layers.1 + layers.2', 'layers.0.selfAttn + layers.1.selfAttn + layers.2.selfAttn', 'layers.0.mlp + layers.1.mlp + layers.2.mlp',
  ]);
  for (const c of profile.combinations) {
    const err = Math.abs(c.peakBytes / c.predictedPeakBytes - 1);
    assert.ok(err <= 0.05, `${c.name}: measured ${c.peakBytes}, predicted ${c.predictedPeakBytes}`);
    const members = profile.candidates.filter((x) => c.members.includes(x.name));
    assert.is(c.heldBytesSaved, members.reduce((a, x) => a + x.heldBytesSaved, 0), `${c.name}: held bytes removed add up exactly`);
  }
});

test('bad input: a model without loss(), unknown module names, bad counts', async () => {
  await assertRejects(() => profileMemory(model, { ids: 1 } as never), /default loss needs a model with loss\(ids, targets\) and a batch/);
  await assertRejects(() => profileMemory(model, batch, { modules: ['layers.9'] }), /no submodule "layers.9" in the model; its modules are .*layers\.0\.mlp/);
  await assertRejects(() => profileMemory(model, batch, { modules: /nothing/ }), /selects none/);
  await assertRejects(() => profileMemory(model, batch, { repeats: 0 }), /repeats must be an integer >= 1/);
  await assertRejects(() => profileMemory(model, batch, { modules: ['layers.0', 'layers.1'], policies: {}, combinations: [[{ modules: ['layers.0'] }, { modules: ['norm'] }]] }), /combination member "norm" is not a candidate; the candidates are layers.0, layers.1/);
});

async function assertRejects(fn: () => Promise<unknown>, re: RegExp): Promise<void> {
  try {
    await fn();
  } catch (e) {
    assert.instance(e, InvalidArgumentError);
    assert.match((e as Error).message, re);
    return;
  }
  assert.unreachable('expected a rejection');
}

test('selectModules: a RegExp with the g or y flag selects what it selects without them (no lastIndex carried between names)', () => {
  const plain = selectModules(model, /mlp/);
  assert.ok(plain.includes('layers.0.mlp.gateProj') && plain.includes('layers.2.mlp.downProj'), plain.join(', '));
  assert.equal(selectModules(model, /mlp/g), plain);
  assert.equal(selectModules(model, /mlp/gy), selectModules(model, /mlp/y));
  assert.equal(selectModules(model, /^layers\.\d+\.mlp\.\w+$/g), plain.filter((n) => /mlp\.\w+$/.test(n)));
});

test.run();
