import { describeValue, ShapeMismatchError, InvalidArgumentError } from '../errors.js';
import type { Storage, TensorRef } from './backend.js';
import { storageBytes } from './storage.js';

export type Shape = readonly number[];

/** Number of elements of a shape (1 for []). */
export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Checks a shape: non-negative safe integers. */
export function checkShape(shape: Shape, what = 'shape'): void {
  if (!Array.isArray(shape)) throw new InvalidArgumentError(`${what} must be an array of dimensions, got ${describeValue(shape)}`);
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new InvalidArgumentError(`${what} [${shape.map(describeValue).join(', ')}] has an invalid dimension ${describeValue(d)}`);
  }
}

/** NumPy broadcasting of two shapes; throws ShapeMismatchError naming both. */
export function broadcastShapes(a: Shape, b: Shape): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new ShapeMismatchError(`shapes [${a.join(', ')}] and [${b.join(', ')}] cannot be broadcast together (dim ${i}: ${da} vs ${db})`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Element strides of `shape` viewed as `outShape` under broadcasting (0 on broadcast dims). */
export function broadcastStrides(shape: Shape, outShape: Shape): number[] {
  const rank = outShape.length;
  const strides = new Array<number>(rank).fill(0);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const o = rank - shape.length + i;
    strides[o] = shape[i] === 1 && outShape[o] !== 1 ? 0 : s;
    s *= shape[i];
  }
  return strides;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Normalises a possibly negative axis. */
export function normAxis(axis: number, rank: number): number {
  if (typeof axis !== 'number') throw new InvalidArgumentError(`axis must be an integer (or null for every axis), got ${describeValue(axis)}`);
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) throw new InvalidArgumentError(`axis ${axis} is out of range for a tensor of rank ${rank}`);
  return a;
}

/** Row-major strides (in elements) of a contiguous tensor of this shape. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  for (let i = shape.length - 1, acc = 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** True when strides lay a tensor of this shape out row-major without gaps (dims of size 1 may have any stride). */
export function stridesContiguous(shape: readonly number[], strides: readonly number[]): boolean {
  for (let i = shape.length - 1, acc = 1; i >= 0; i--) {
    if (shape[i] !== 1 && strides[i] !== acc) return false;
    acc *= shape[i];
  }
  return true;
}

/** The storage of a tensor reference whether or not it is a strided view: for kernels that read strides. */
export function viewStorage(t: TensorRef): Storage {
  return t.viewStorage ?? t.storage;
}

/**
 * Checks what a kernel that reads strides is given: one non-negative integer stride a dimension,
 * and every element the view reaches inside its storage (a bad view is an error, never a read of
 * another tensor's memory).
 */
export function checkView(t: TensorRef, what: string): void {
  const s = t.strides;
  if (!s) return;
  if (!Array.isArray(s) || s.length !== t.shape.length || s.some((x) => !Number.isSafeInteger(x) || x < 0)) {
    throw new InvalidArgumentError(`${what}: strides must be one non-negative integer a dimension of [${t.shape.join(', ')}], got ${describeValue(s)}`);
  }
  if (t.shape.some((d) => d === 0)) return;
  const last = t.offset + t.shape.reduce((a, d, i) => a + (d - 1) * s[i], 0);
  if (storageBytes(t.dtype, last + 1) > viewStorage(t).byteLength) {
    throw new InvalidArgumentError(`${what}: the view [${t.shape.join(', ')}] with strides [${s.join(', ')}] at offset ${t.offset} reaches element ${last}, beyond its ${viewStorage(t).byteLength}-byte storage`);
  }
}

/** Checks a copy's operands: out contiguous, with x's dtype and number of elements; x a valid view. */
export function checkCopy(x: TensorRef, out: TensorRef): void {
  checkView(x, 'copy');
  if (out.strides) throw new InvalidArgumentError('copy: out must be contiguous');
  if (out.dtype !== x.dtype) throw new InvalidArgumentError(`copy: out is ${out.dtype}, x is ${x.dtype} (copy moves codes; cast converts)`);
  if (numel(out.shape) !== numel(x.shape)) throw new InvalidArgumentError(`copy: x [${x.shape.join(', ')}] and out [${out.shape.join(', ')}] hold different numbers of elements`);
}

/** The layout of a [B, H, T, D] tensor: contiguous ('bhtd'), a view of [B, T, H, D] memory ('bthd', what splitHeads makes), or neither. */
export function headsLayout(x: TensorRef): 'bhtd' | 'bthd' | null {
  if (!x.strides) return 'bhtd';
  const [, h, t, d] = x.shape;
  const bthd = [t * h * d, d, h * d, 1];
  return x.strides.every((s, i) => s === bthd[i] || x.shape[i] === 1) ? 'bthd' : null;
}

/**
 * How attention reads its [B, H, T, D] tensors: as contiguous [B, H, T, D] (head stride T D, row
 * stride D) or as views of [B, T, H, D] memory (head stride D, row stride H D; what splitHeads
 * makes). Every tensor of a call must share the layout. `memory` gives each one as a contiguous
 * reference to the memory it reads ([B, T, H, D] for views), for staging and binding.
 */
export function attentionStrides(q: TensorRef, others: readonly TensorRef[]): { hs: number; ts: number; memory: (t: TensorRef) => TensorRef } {
  const [b, h, t, d] = q.shape;
  for (const x of [q, ...others]) checkView(x, 'attention');
  const layout = headsLayout(q);
  if (!layout || others.some((x) => headsLayout(x) !== layout)) {
    throw new InvalidArgumentError(`attention: q, k, v, out (and the gradients) must all be contiguous [B, H, T, D] or all views of [B, T, H, D] memory (strides [${[t * h * d, d, h * d, 1].join(', ')}])`);
  }
  return layout === 'bhtd'
    ? { hs: t * d, ts: d, memory: (x) => x }
    : { hs: d, ts: h * d, memory: (x) => ({ storage: viewStorage(x), offset: x.offset, shape: [b, t, h, d], dtype: x.dtype }) };
}
