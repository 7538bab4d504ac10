// The PyTorch reference fixtures of tests/fixtures/models (made by scripts/make-model-fixtures.py):
// a model folder (config.json + model.safetensors under PyTorch's names) and reference.safetensors
// (inputs, logits, loss, grad.<name> of every parameter, ...).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseSafetensors } from '../../src/io/safetensors.js';
import type { ModelFolderFiles } from '../../src/io/model_folder.js';

export const MODEL_FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'models');

export interface ModelFixture {
  files: ModelFolderFiles;
  /** Reference tensors by name: float32 values or int32 ids, with shapes. */
  ref: Map<string, { shape: number[]; values: Float32Array | Int32Array }>;
}

export function loadModelFixture(name: string): ModelFixture {
  const dir = join(MODEL_FIXTURES, name);
  const w = readFileSync(join(dir, 'model.safetensors'));
  const files = { config: readFileSync(join(dir, 'config.json'), 'utf8'), weights: new Uint8Array(w.buffer, w.byteOffset, w.length) };
  const r = readFileSync(join(dir, 'reference.safetensors'));
  const parsed = parseSafetensors(new Uint8Array(r.buffer, r.byteOffset, r.length));
  const ref = new Map<string, { shape: number[]; values: Float32Array | Int32Array }>();
  for (const [k, t] of parsed.tensors) {
    const bytes = t.bytes.slice();
    const values = t.dtype === 'I32' ? new Int32Array(bytes.buffer) : t.dtype === 'F32' ? new Float32Array(bytes.buffer) : null;
    if (!values) throw new Error(`${name}/reference.safetensors: ${k} is ${t.dtype}`);
    ref.set(k, { shape: [...t.shape], values });
  }
  return { files, ref };
}

/** The largest |actual - expected| relative to the largest |expected| (the bound's measure). */
export function relMaxError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} vs ${expected.length}`);
  let scale = 0, err = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]));
    const d = Math.abs(actual[i] - expected[i]);
    err = Math.max(err, Number.isNaN(d) ? Infinity : d);
  }
  return scale === 0 ? err : err / scale;
}
