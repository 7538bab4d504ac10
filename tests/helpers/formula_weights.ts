// Weights and inputs from a formula that scripts/make-model-fixtures.py computes bit for bit
// (formula_values there): value i of tensor `key` is center + bound * (2u - 1) with
// u = (lowbias32(i * 0x9e3779b1 + fnv1a32(key)) >> 8) / 2^24, in float64, rounded once to float32.
// A fixture made this way stores results only, never the weights (the full-size ResNet-18).
import type { Module } from '../../src/nn/module.js';

/** Chris Wellons' lowbias32 integer hash. */
function lowbias32(x: number): number {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** FNV-1a, 32 bits, over the UTF-8 bytes of text. */
function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(text)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

export function formulaValues(key: string, n: number, bound: number, center = 0): Float32Array {
  const salt = fnv1a32(key), out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = (lowbias32((Math.imul(i, 0x9e3779b1) + salt) >>> 0) >>> 8) / 2 ** 24;
    out[i] = center + bound * (2 * u - 1);
  }
  return out;
}

/**
 * Fills every float parameter and buffer of a torchvision-named ResNet as formula_state does:
 * convolutions and fc weights U(+-sqrt(6 / fan_in)), fc bias +-1/sqrt(512), batch-norm weight
 * 1 +- 0.1, bias and running mean +-0.1, running var 1 +- 0.5; int32 buffers (num_batches_tracked) 0.
 */
export function fillResNetFormula(model: Module): void {
  for (const [k, t] of Object.entries(model.stateDict())) {
    const n = t.size;
    if (t.dtype === 'int32') { t.backend.write(t.storage, new Int32Array(n)); continue; }
    let v: Float32Array;
    if (t.rank >= 2) v = formulaValues(k, n, Math.sqrt(6 / (n / t.shape[0])));
    else if (k.startsWith('fc.')) v = formulaValues(k, n, 1 / Math.sqrt(512));
    else if (k.endsWith('running_var')) v = formulaValues(k, n, 0.5, 1);
    else if (k.endsWith('weight')) v = formulaValues(k, n, 0.1, 1);
    else v = formulaValues(k, n, 0.1);
    if (t.dtype !== 'float32' || t.offset !== 0) throw new Error(`${k}: expected a float32 tensor of its own`);
    t.backend.write(t.storage, v);
  }
}
