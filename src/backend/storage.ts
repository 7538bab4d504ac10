// Storage sizes: how many bytes a tensor's elements take (sub-byte formats packed), the same on
// every backend and in pack().
import { formatOf } from '../dtype/formats.js';
import type { TensorDType } from './backend.js';

/** Bits an element of a tensor dtype takes (a code; int32 32, uint8 8). */
export function dtypeBits(dtype: TensorDType): number {
  return dtype === 'int32' ? 32 : dtype === 'uint8' ? 8 : formatOf(dtype).bits;
}

/** Bytes that n elements of a tensor dtype take in storage (packed for sub-byte formats). */
export function storageBytes(dtype: TensorDType, n: number): number {
  return Math.ceil((n * dtypeBits(dtype)) / 8);
}
