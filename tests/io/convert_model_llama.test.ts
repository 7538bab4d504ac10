// A Llama trained by memfit, saved, converted by convert-model (bfloat16, float8 per tensor and per row,
// MXFP4), loaded back (float8 and MX through `--to float32`): it evaluates within a stated bound of the
// float32 model's loss and trains on.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { ByteTextDataset } from '../../src/data/byte_text.js';
import { loadSotuText } from '../../src/data/sotu.js';
import { LanguageModelTrainer, TINY_LLAMA, type TrainConfig } from '../../src/train/language_model.js';
import { loadSafetensors, saveSafetensors } from '../../src/io/safetensors_file.js';
import { convertSafetensors } from '../../src/io/convert_model_file.js';

const w = new WasmBackend();
const dataset = new ByteTextDataset(loadSotuText({ fromYear: 1990 }));
const config: TrainConfig = { ...TINY_LLAMA, steps: 80 };
const dir = mkdtempSync(join(tmpdir(), 'memfit-convert-llama-'));

/** A trainer whose model holds the weights of `path`. */
async function fromFile(path: string): Promise<LanguageModelTrainer> {
  const t = new LanguageModelTrainer(w, dataset, config);
  const { tensors } = await loadSafetensors(path, w);
  try {
    t.model.loadStateDict(tensors);
  } finally {
    for (const x of Object.values(tensors)) x.dispose();
  }
  return t;
}

// Relative bounds on |loss(converted) - loss(float32)| / loss(float32) (measured here after 80 steps:
// bfloat16 ~2e-5, float8 e4m3 ~2e-4, MXFP4 ~2e-3).
const BOUNDS: Array<[string, { to: string; scale?: 'tensor' | 'row' }, number]> = [
  ['bfloat16', { to: 'bfloat16' }, 0.002],
  ['float8_e4m3fn per tensor', { to: 'float8_e4m3fn', scale: 'tensor' }, 0.01],
  ['float8_e4m3fn per row', { to: 'float8_e4m3fn', scale: 'row' }, 0.01],
  ['mxfp4', { to: 'mxfp4' }, 0.03],
];

test('a converted Llama loads back, evaluates within the stated bound of float32, and still trains', async () => {
  const base = new LanguageModelTrainer(w, dataset, config);
  for (let i = 0; i < config.steps; i++) await base.trainStep();
  const f32 = join(dir, 'llama.safetensors');
  await saveSafetensors(f32, base.model.stateDict(), { format: 'pt' });
  const ref = await base.evaluate(8);
  base.dispose();
  assert.ok(ref < 0.6 * Math.log(256), `the float32 model has learnt something (${ref})`);

  for (const [label, opts, bound] of BOUNDS) {
    const out = join(dir, `llama-${label.replace(/ /g, '-')}.safetensors`);
    const report = await convertSafetensors(f32, out, opts);
    assert.is(report.converted, 16, `${label}: every 2-D weight (embedding, projections, lm head) converted`);
    assert.ok(statSync(out).size < statSync(f32).size, `${label}: smaller`);
    // bfloat16 loads directly (loadStateDict casts to the model's float32); scaled formats are dequantised first.
    let path = out;
    if (opts.to !== 'bfloat16') {
      path = join(dir, `llama-${label.replace(/ /g, '-')}-f32.safetensors`);
      await convertSafetensors(out, path, { to: 'float32' });
    }
    const t = await fromFile(path);
    const loss = await t.evaluate(8);
    assert.ok(Math.abs(loss - ref) <= bound * ref, `${label}: loss ${loss} within ${bound * 100}% of float32's ${ref}`);
    const before = await t.evaluate(4, 7);
    const steps: number[] = [];
    for (let i = 0; i < 15; i++) steps.push((await t.trainStep()).loss);
    assert.ok(steps.every(Number.isFinite), `${label}: finite training losses`);
    const after = await t.evaluate(4, 7);
    assert.ok(after < before, `${label}: training goes on (validation ${before} -> ${after})`);
    t.dispose();
  }
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
