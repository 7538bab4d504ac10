// 8-bit optimizer state in the training proof: AdamW8bit trains the tiny Llama to within 2% of
// AdamW's final loss (same seed); its optimizer memory is at most 0.27 of AdamW's on the tiny
// Llama and on the anchors' "small" config; a checkpointed AdamW8bit run resumes to exactly the
// losses of an uninterrupted one (codes saved as U8, absmax as F32).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { ByteTextDataset } from '../../src/data/byte_text.js';
import { loadSotuText } from '../../src/data/sotu.js';
import { LanguageModelTrainer, TINY_LLAMA, type TrainConfig } from '../../src/train/language_model.js';
import { loadCheckpoint, saveCheckpoint } from '../../src/io/checkpoint.js';
import { parseSafetensors } from '../../src/io/safetensors.js';
import { Llama } from '../../src/nn/llama.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { AdamW, AdamW8bit } from '../../src/optim/index.js';
import { Generator } from '../../src/random.js';

const dataset = new ByteTextDataset(loadSotuText({ fromYear: 1990 }));

async function finalLoss(config: TrainConfig): Promise<{ last: number; optimizerBytes: number }> {
  const w = new WasmBackend();
  const t = new LanguageModelTrainer(w, dataset, config);
  const losses: number[] = [];
  for (let i = 0; i < config.steps; i++) losses.push((await t.trainStep()).loss);
  const optimizerBytes = w.memory.memoryAllocated('optimizer');
  t.dispose();
  return { last: losses.slice(-20).reduce((p, v) => p + v, 0) / 20, optimizerBytes };
}

test('AdamW8bit trains the tiny Llama to within 2% of AdamW\'s final loss; optimizer memory <= 0.27 of AdamW\'s', async () => {
  const a = await finalLoss(TINY_LLAMA);
  const b = await finalLoss({ ...TINY_LLAMA, optimizer: 'adamw8bit' });
  assert.ok(Math.abs(b.last - a.last) <= 0.02 * a.last, `AdamW8bit final loss ${b.last} vs AdamW ${a.last}`);
  const ratio = b.optimizerBytes / a.optimizerBytes;
  assert.ok(ratio <= 0.27, `optimizer memory ratio ${ratio}`);
  assert.ok(ratio > 0.25, `ratio ${ratio}: codes are 2 bytes of 8 per element, plus absmax and the 32-bit norm weights`);
});

test('the anchors\' "small" Llama (34M parameters): 8-bit AdamW state is <= 0.27 of 32-bit AdamW\'s', () => {
  const w = new WasmBackend();
  const cfg = { vocabSize: 8192, hiddenSize: 512, numHiddenLayers: 8, numAttentionHeads: 8, intermediateSize: 1408, maxPositionEmbeddings: 256, rmsNormEps: 1e-5 };
  const model = new Llama(cfg, { backend: w, generator: new Generator(0) });
  const params = model.parameters();
  for (const p of params) {
    p.grad = Tensor.empty(w, p.shape, { category: 'gradient' });
    w.fill(p.grad, 0);
  }
  const bytes: number[] = [];
  for (const make of [() => new AdamW(params, { lr: 0 }), () => new AdamW8bit(params, { lr: 0 })]) {
    const opt = make();
    opt.step(); // allocates the state
    bytes.push(w.memory.memoryAllocated('optimizer'));
    opt.dispose();
  }
  const ratio = bytes[1] / bytes[0];
  assert.ok(ratio <= 0.27, `small: ${bytes[1]} / ${bytes[0]} = ${ratio}`);
  for (const p of params) p.zeroGrad();
  model.dispose?.();
});

test('an AdamW8bit checkpoint (codes U8, absmax F32) resumes to exactly the losses of an uninterrupted run', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'memfit-ckpt8-'));
  try {
    const small: TrainConfig = { ...TINY_LLAMA, batchSize: 2, seqLen: 16, steps: 8, warmupSteps: 2, optimizer: 'adamw8bit' };
    const run = new LanguageModelTrainer(new WasmBackend(), dataset, small);
    const straight: number[] = [];
    for (let i = 0; i < 8; i++) straight.push((await run.trainStep()).loss);
    run.dispose();
    const path = join(dir, 'ckpt.safetensors');
    const first = new LanguageModelTrainer(new WasmBackend(), dataset, small);
    for (let i = 0; i < 5; i++) await first.trainStep();
    await saveCheckpoint(path, first.trainingState());
    first.dispose();
    const { tensors } = parseSafetensors(readFileSync(path));
    const codes = [...tensors].filter(([n]) => n.endsWith('Codes'));
    assert.ok(codes.length > 0 && codes.every(([, t]) => t.dtype === 'U8'), 'codes stored as U8');
    assert.ok([...tensors].filter(([n]) => n.endsWith('Absmax')).every(([, t]) => t.dtype === 'F32'), 'absmax stored as F32');
    const resumed = new LanguageModelTrainer(new WasmBackend(), dataset, { ...small, seed: 99 });
    resumed.step = (await loadCheckpoint(path, resumed.trainingState())).step;
    const rest: number[] = [];
    for (let i = 5; i < 8; i++) rest.push((await resumed.trainStep()).loss);
    assert.equal(rest, straight.slice(5), 'bit-identical losses after resuming');
    resumed.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
