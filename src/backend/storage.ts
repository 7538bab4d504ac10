// Storage sizes: how many bytes a tensor's elements take (sub-byte formats packed), the same on
// every backend and in pack().
import { formatOf } from '../dtype/formats.js';
import type { TensorDType } from './backend.js';

/** Bytes that n elements of a tensor dtype take in storage (packed for sub-byte formats). */
export function storageBytes(dtype: TensorDType, n: number): number {
  if (dtype === 'int32') return n * 4;
  if (dtype === 'uint8') return n;
  return Math.ceil((n * formatOf(dtype).bits) / 8);
}
