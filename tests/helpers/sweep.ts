// Compares the WebAssembly encoder with the plain TypeScript reference over runs of consecutive
// float32 bit patterns. Used by the sampled sweep in `npm test` and the full 2^32 sweep in
// `npm run test:exhaustive` (scripts/exhaustive.ts).
import { encode } from '../../src/index.js';
import { ReferenceEncoder, type RefOptions } from './reference.js';

export interface SweepResult {
  checked: number;
  mismatches: number;
  /** The first few mismatches: [input bits, wasm code, reference code]. */
  examples: [number, number, number][];
}

/** Checks `count` consecutive bit patterns from `start` (wrapping at 2^32) in batches. */
export function sweep(dtype: string, opts: RefOptions, start: number, count: number, batch = 1 << 20): SweepResult {
  const ref = new ReferenceEncoder(dtype, opts);
  const bits = new Uint32Array(Math.min(batch, count));
  const result: SweepResult = { checked: 0, mismatches: 0, examples: [] };
  let expected: Uint8Array | Uint16Array | Uint32Array | undefined;
  for (let done = 0; done < count; done += bits.length) {
    const n = Math.min(bits.length, count - done);
    const b = bits.subarray(0, n);
    for (let i = 0; i < n; i++) b[i] = (start + done + i) >>> 0;
    const got = encode(new Float32Array(b.buffer, 0, n), dtype, opts);
    if (!expected || expected.length < n) expected = new (got.constructor as Uint8ArrayConstructor)(bits.length);
    const exp = expected.subarray(0, n);
    ref.encodeBits32(b, exp);
    for (let i = 0; i < n; i++) {
      if (got[i] !== exp[i]) {
        result.mismatches++;
        if (result.examples.length < 5) result.examples.push([b[i], got[i], exp[i]]);
      }
    }
    result.checked += n;
  }
  return result;
}
