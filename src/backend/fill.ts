// The fill kernel's plan, shared by both backends: which 32-bit words of a storage a fill touches,
// the masks of its partial first and last words, and the word pattern of the value's code. Storage
// is packed from bit 0 (backend.ts), so element e occupies bits [e * bits, (e + 1) * bits) and the
// pattern of absolute word w is pattern[w % pattern.length] (one word, or three for fp6).
import { InvalidArgumentError } from '../errors.js';
import { encode } from '../dtype/encode.js';
import type { TensorDType } from './backend.js';
import { dtypeBits, storageBytes } from './storage.js';

export interface FillPlan {
  /** First and count of the 32-bit words touched. */
  readonly firstWord: number;
  readonly words: number;
  /** Bits of the first and the last word that belong to the fill (both apply when words is 1). */
  readonly firstMask: number;
  readonly lastMask: number;
  /** Word pattern: absolute word w holds pattern[w % pattern.length] on the filled bits. */
  readonly pattern: Uint32Array;
}

/** The code of `value` in `dtype`: int32 takes integers only; floats round once (nearest-even) from the number given. */
export function fillCode(dtype: TensorDType, value: number): number {
  if (dtype === 'int32') {
    if (!Number.isInteger(value) || value < -(2 ** 31) || value >= 2 ** 31) throw new InvalidArgumentError(`cannot fill an int32 tensor with ${value}: not a 32-bit integer`);
    return value >>> 0;
  }
  if (dtype === 'uint8') {
    if (!(Number.isInteger(value) && value >= 0 && value <= 255)) throw new InvalidArgumentError(`cannot fill a uint8 tensor with ${value}: not an integer in [0, 255]`);
    return value;
  }
  if (typeof value !== 'number') throw new InvalidArgumentError(`fill value must be a number, got ${typeof value}`);
  return encode([value], dtype)[0];
}

/** The plan to fill elements [offset, offset + n) of a `dtype` storage of `byteLength` bytes with `value`; null when n is 0. */
export function fillPlan(dtype: TensorDType, offset: number, n: number, value: number, byteLength: number): FillPlan | null {
  const code = fillCode(dtype, value);
  if (!(Number.isSafeInteger(offset) && offset >= 0 && Number.isSafeInteger(n) && n >= 0)) throw new InvalidArgumentError(`fill range must be non-negative integers, got offset ${offset}, n ${n}`);
  if (storageBytes(dtype, offset + n) > byteLength) throw new InvalidArgumentError(`fill of ${n} ${dtype} elements at offset ${offset} overruns a ${byteLength}-byte storage`);
  if (n === 0) return null;
  const bits = dtypeBits(dtype);
  const period = bits === 6 ? 3 : 1; // 16 fp6 codes in three words; other widths divide 32
  const pattern = new Uint32Array(period);
  for (let b = 0; b < 32 * period; b++) if ((code >>> (b % bits)) & 1) pattern[b >> 5] |= 1 << (b & 31);
  const start = offset * bits, end = (offset + n) * bits;
  const firstWord = Math.floor(start / 32);
  return {
    firstWord,
    words: Math.floor((end - 1) / 32) - firstWord + 1,
    firstMask: (0xffffffff << (start % 32)) >>> 0,
    lastMask: end % 32 === 0 ? 0xffffffff : ((1 << (end % 32)) - 1) >>> 0,
    pattern,
  };
}

/** Applies a plan to 32-bit words (the wasm backend's fill; the WGSL kernel does the same per word). */
export function fillWords(mem: Uint32Array, base: number, plan: FillPlan): void {
  const { firstWord, words, firstMask, lastMask, pattern } = plan;
  const put = (w: number, mask: number) => {
    const i = base + w;
    mem[i] = (mem[i] & ~mask) | (pattern[w % pattern.length] & mask);
  };
  const last = firstWord + words - 1;
  if (words === 1) return put(firstWord, firstMask & lastMask);
  put(firstWord, firstMask);
  put(last, lastMask);
  if (pattern.length === 1) mem.fill(pattern[0], base + firstWord + 1, base + last);
  else for (let w = firstWord + 1; w < last; w++) mem[base + w] = pattern[w % 3];
}
