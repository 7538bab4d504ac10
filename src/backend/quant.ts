// Block-wise dynamic 8-bit quantization (bitsandbytes' quantize_blockwise, as its 8-bit optimizers
// keep their state), shared by the wasm and WebGPU kernels: argument checks and the code tables.
//
// A float32 tensor of n elements is cut into blocks of `blockSize` consecutive elements (the last
// one may be short). Each block keeps absmax = max |x| over the block (float32; a NaN in the block
// makes it NaN, so the whole block dequantizes to NaN, as a NaN state does in 32 bits) and each
// element a uint8 code: the index of the code value (bitsandbytes' dynamic map, signed for first
// moments, unsigned for second moments) nearest to x / absmax. Dequantize: code value * absmax.
//
// To be bit-identical on every backend (WGSL's division is not correctly rounded), the kernels
// never divide: code index = the number of thresholds t_k (the float32 midpoints
// (c_k + c_(k+1)) * 0.5 of neighbouring code values, as bitsandbytes' kernel compares against) with
// t_k * absmax < x, found by binary search; products and comparisons are exact-rounded everywhere.
// Ties: x exactly on a scaled threshold takes the lower code (the smaller value). A block of zeros
// has absmax 0 and dequantizes to zeros. absmax is the largest |x| as bits (NaN's bits are above
// inf's), so the max is exact and independent of the order elements are visited in.
import { InvalidArgumentError, ShapeMismatchError } from '../errors.js';
import { dynamicMap, mapThresholds } from '../optim/dynamic_map.js';
import type { Optim8bitStep, QuantizedStateRef, TensorRef } from './backend.js';
import { numel } from './shape.js';

/** bitsandbytes' optimizer block size (the 8-bit optimizers paper used 2048). */
export const DEFAULT_BLOCK_SIZE = 256;

/** Whether blockSize is one the kernels take: a power of two from 256 to 4096. */
export function isBlockSize(b: unknown): b is number {
  return typeof b === 'number' && Number.isInteger(b) && b >= 256 && b <= 4096 && (b & (b - 1)) === 0;
}

/** Blocks (absmax values) of n elements. */
export function blockCount(n: number, blockSize: number): number {
  return Math.ceil(n / blockSize);
}

/**
 * The 512 float32 a kernel reads for one map: the 256 code values, then the 255 thresholds, then
 * one unused slot.
 */
export function quantTable(signed: boolean): Float32Array {
  let t = tables.get(signed);
  if (!t) {
    t = new Float32Array(512);
    t.set(dynamicMap(signed), 0);
    t.set(mapThresholds(signed), 256);
    tables.set(signed, t);
  }
  return t;
}

const tables = new Map<boolean, Float32Array>();

// The kernel table's layout, shared with assembly/kernels/optim8bit.ts through build/constants.ts
// (scripts/gen-constants.ts): its one source.
/** Buckets per sign of the kernels' fast search: |y| below 2^-23, 256 per binade from 2^-23 to 2, one from 2 up. */
export const QUANT_BUCKETS = 6146;
/** 2^-23 as float32 bits: the start of bucket 1 (no threshold lies below it: the smallest is 1.6e-7). */
export const QUANT_LOW_BITS = 0x34000000;
/** Byte offset of the bucket tables in a kernel table (after quantTable's 512 float32). */
export const QUANT_LUT_OFFSET = 2048;
const BUCKETS = QUANT_BUCKETS, LOW = QUANT_LOW_BITS, LUT = QUANT_LUT_OFFSET;
/** Bytes of a map's table for the wasm kernels (quantKernelTable: 512 float32, then two bucket tables), a multiple of 16. */
export const KERNEL_TABLE_BYTES = (LUT + 2 * BUCKETS + 15) & ~15;

/**
 * A map's table as the wasm kernels read it (assembly/kernels/optim8bit.ts, fastCode): quantTable's
 * 512 float32 with the unused last slot +inf, then a uint8 per bucket of y = x / absmax, buckets of
 * 8 mantissa bits (under 0.4% wide, where the nearest two thresholds are 0.5% apart, so a bucket
 * holds at most one): for y >= 0 the count of thresholds below the bucket, for y < 0 the count at
 * or below its far end; one comparison with the next threshold then gives the count below y.
 */
export function quantKernelTable(signed: boolean): Uint8Array {
  let out = kernelTables.get(signed);
  if (out) return out;
  out = new Uint8Array(KERNEL_TABLE_BYTES);
  const f32 = new Float32Array(out.buffer, 0, 512);
  f32.set(quantTable(signed));
  f32[511] = Infinity;
  const thr = f32.subarray(256, 511);
  const count = (pred: (t: number) => boolean): number => { // thresholds where pred holds (a prefix: they ascend)
    let lo = 0, hi = 255;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (pred(thr[mid])) lo = mid + 1; else hi = mid; }
    return lo;
  };
  const bits = new Uint32Array(1), val = new Float32Array(bits.buffer);
  const start = (b: number): number => { // the smallest |y| of bucket b
    bits[0] = LOW + ((b - 1) << 15);
    return b === 0 ? 0 : b === BUCKETS ? Infinity : val[0];
  };
  for (let b = 0; b < BUCKETS; b++) {
    const s = start(b), e = start(b + 1);
    const pos = count((t) => t < s), neg = count((t) => t <= -e);
    const inside = [count((t) => t < e) - pos, count((t) => t <= -s) - neg]; // thresholds in [s, e) and in (-e, -s]
    if (inside.some((k) => k > (b === 0 ? 0 : 1))) throw new Error(`quantKernelTable: bucket ${b} holds ${inside.join(' and ')} thresholds`);
    out[LUT + b] = pos;
    out[LUT + BUCKETS + b] = neg;
  }
  kernelTables.set(signed, out);
  return out;
}

const kernelTables = new Map<boolean, Uint8Array>();

/** Throws unless codes (uint8, n elements) and absmax (float32, one per block) fit n elements in blocks of blockSize. */
export function checkQuantized(codes: TensorRef, absmax: TensorRef, n: number, blockSize: number, what: string): void {
  if (!isBlockSize(blockSize)) throw new InvalidArgumentError(`${what}: blockSize must be a power of two from 256 to 4096, got ${String(blockSize)}`);
  if (codes.dtype !== 'uint8') throw new InvalidArgumentError(`${what}: codes must be uint8, got ${codes.dtype}`);
  if (absmax.dtype !== 'float32') throw new InvalidArgumentError(`${what}: absmax must be float32, got ${absmax.dtype}`);
  if (codes.offset !== 0 || absmax.offset !== 0) throw new InvalidArgumentError(`${what}: codes and absmax must start at offset 0`);
  if (numel(codes.shape) !== n) throw new ShapeMismatchError(`${what}: codes have ${numel(codes.shape)} elements, expected ${n}`);
  if (numel(absmax.shape) !== blockCount(n, blockSize)) {
    throw new ShapeMismatchError(`${what}: absmax has ${numel(absmax.shape)} elements, expected ${blockCount(n, blockSize)} (one per block of ${blockSize})`);
  }
}

/**
 * Casts involving uint8: only uint8 -> uint8 (a copy of the codes); uint8 codes are no float
 * values. Returns true when both are uint8.
 */
export function checkUint8Cast(x: TensorRef, out: TensorRef): boolean {
  const a = x.dtype === 'uint8', b = out.dtype === 'uint8';
  if (a !== b) throw new InvalidArgumentError(`cannot cast ${x.dtype} to ${out.dtype}: uint8 tensors hold quantization codes (use dequantizeBlockwise for their values)`);
  return a;
}

/** Which update Kernels.optimizer8bit runs. */
export type Optim8bitKind = 'adam' | 'momentum' | 'rmsprop';

/** Kernel ids of the kinds (the same in AssemblyScript and WGSL). */
export const OPTIM8BIT_KIND_IDS: Readonly<Record<Optim8bitKind, number>> = { adam: 0, momentum: 1, rmsprop: 2 };

/** The states a kind keeps and whether each is quantized with the signed map. */
export const OPTIM8BIT_STATES: Readonly<Record<Optim8bitKind, readonly boolean[]>> = {
  adam: [true, false], momentum: [true], rmsprop: [false],
};

/** The checks both backends' optimizer8bit make; returns the element count and the kind's id. */
export function checkOptimizer8bit(param: TensorRef, grad: TensorRef, state1: QuantizedStateRef, state2: QuantizedStateRef | null, step: Optim8bitStep): { n: number; kind: number; signs: readonly boolean[] } {
  const n = numel(param.shape);
  const kind = OPTIM8BIT_KIND_IDS[step.kind];
  if (kind === undefined) throw new InvalidArgumentError(`optimizer8bit: unknown kind ${String(step.kind)}`);
  const signs = OPTIM8BIT_STATES[step.kind];
  if ((signs.length === 2) !== (state2 !== null)) throw new InvalidArgumentError(`optimizer8bit: '${step.kind}' keeps ${signs.length} state(s)`);
  checkQuantized(state1.codes, state1.absmax, n, step.blockSize, 'optimizer8bit state1');
  if (state2) checkQuantized(state2.codes, state2.absmax, n, step.blockSize, 'optimizer8bit state2');
  if (numel(grad.shape) !== n) throw new ShapeMismatchError(`optimizer8bit: grad has ${numel(grad.shape)} elements, the parameter ${n}`);
  if (param.dtype === 'int32' || param.dtype === 'uint8' || grad.dtype === 'int32' || grad.dtype === 'uint8') throw new InvalidArgumentError('optimizer8bit: param and grad must be float dtypes');
  if (step.h.length !== 9) throw new InvalidArgumentError(`optimizer8bit: h must have 9 scalars, got ${step.h.length}`);
  return { n, kind, signs };
}
