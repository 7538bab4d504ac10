// Tensors: shape, strides, dtype, backend and a reference-counted storage. Views (reshape, slice
// along the first dimension, permute, transpose) share storage; dispose() frees deterministically
// (GPU memory never waits for the garbage collector). Every op goes through dispatch(), the one
// place where autocast policy and autograd recording apply.
//
// Strided views: permute and transpose change only the strides. Kernels take contiguous tensors
// unless they say otherwise (attention reads heads in place): dispatch and autograd's apply copy a
// view to a contiguous tensor before any other kernel sees it, and a kernel that reaches for the
// storage of a strided view anyway (`storage`) gets an error, never a wrong answer.
import type { DTypeName } from '../dtype/formats.js';
import { observeOp } from '../backend/op_context.js';
import { checkOptions, describeValue, InvalidArgumentError, MemfitError, ShapeMismatchError } from '../errors.js';
import { encode, decode } from '../dtype/encode.js';
import { formatOf, canonicalDType } from '../dtype/formats.js';
import { pack, unpack } from '../dtype/pack.js';
import type { Backend, BinaryOp, MatmulOptions, ReduceOp, Storage, TensorDType, TensorRef, UnaryOp } from '../backend/backend.js';
import type { Category } from '../backend/memory.js';
import { broadcastShapes, checkShape, contiguousStrides, normAxis, numel, stridesContiguous } from '../backend/shape.js';
import { storageBytes } from '../backend/storage.js';
import { checkCastOptions, type TensorCastOptions } from '../backend/cast_options.js';
import { getDefaultDtype } from './default_dtype.js';

interface SharedStorage {
  readonly storage: Storage;
  refs: number;
}

export interface TensorOptions {
  /** A dtype name or alias, 'int32' (ids) or 'uint8' (quantization codes); getDefaultDtype() (float32 unless changed) by default. */
  dtype?: DTypeName | 'int32' | 'uint8';
  category?: Category;
  label?: string;
}

const TENSOR_OPTIONS = ['dtype', 'category', 'label'] as const;

function tensorDType(d: string): TensorDType {
  return d === 'int32' || d === 'uint8' ? d : canonicalDType(d);
}

/** Tensors made (allocated, or views taken) inside each open withOutputs call, innermost last. */
const scopes: Tensor[][] = [];

/**
 * Runs `fn` (an op, or a backward function: allocate outputs, run kernels, return the result).
 * When anything in it throws (a disposed input, an unknown op, memory that runs out at the second
 * output), every tensor made inside it, outputs, intermediates and views alike, is disposed before
 * the error goes on: a failed op never leaks memory. On success they are the caller's (and an
 * enclosing withOutputs still frees them if it fails later). `fn` must be synchronous.
 */
export function withOutputs<R>(fn: () => R): R {
  const made: Tensor[] = [];
  scopes.push(made);
  let result: R;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of made) t.dispose();
    throw e;
  }
  scopes.pop();
  scopes[scopes.length - 1]?.push(...made);
  return result;
}

/** Throws (naming `what`) unless `t` is a Tensor that has not been disposed: checked before an op allocates anything. */
export function checkTensor(t: unknown, what: string): asserts t is Tensor {
  if (!(t instanceof Tensor)) throw new InvalidArgumentError(`${what} must be a Tensor, got ${describeValue(t)}`);
  if (t.isDisposed) throw new InvalidArgumentError(`${what}: tensor used after dispose()`);
}

/** checkTensor, and refuses uint8 (raw bytes: only the quantization kernels and copies take them). */
function checkOperand(t: unknown, what: string): asserts t is Tensor {
  checkTensor(t, what);
  if (t.dtype === 'uint8') throw new InvalidArgumentError(`${what}: a uint8 tensor holds raw bytes (quantization codes), not numbers an op computes with; make a float tensor of its values (read with toArray()) first`);
}

export class Tensor implements TensorRef {
  private disposed = false;
  /** Element strides; undefined when contiguous (row-major, no gaps), which is what most kernels take. */
  readonly strides: readonly number[] | undefined;

  private constructor(
    readonly backend: Backend, private readonly shared: SharedStorage, readonly offset: number,
    readonly shape: readonly number[], readonly dtype: TensorDType, strides?: readonly number[],
  ) {
    this.strides = strides && !stridesContiguous(shape, strides) ? strides : undefined;
    scopes[scopes.length - 1]?.push(this);
  }

  /** The storage, for kernels that take contiguous tensors: a strided view (permute, transpose) is an error here. */
  get storage(): Storage {
    if (this.strides) {
      throw new MemfitError('STRIDED_VIEW', `a strided view [${this.shape.join(', ')}] (strides [${this.strides.join(', ')}]) reached a kernel that takes contiguous tensors; call contiguous() first`);
    }
    return this.viewStorage;
  }

  /** The storage whether or not this is a strided view (read it through `strides`). */
  get viewStorage(): Storage {
    if (this.disposed) throw new InvalidArgumentError('tensor used after dispose()');
    return this.shared.storage;
  }

  /** True unless this is a strided view (from permute or transpose) whose elements are not in row-major order. */
  get isContiguous(): boolean { return this.strides === undefined; }

  get size(): number { return numel(this.shape); }
  get rank(): number { return this.shape.length; }
  get category(): Category { return this.shared.storage.category; }

  /** An uninitialised tensor. */
  static empty(backend: Backend, shape: readonly number[], options: TensorOptions = {}): Tensor {
    checkShape(shape);
    checkOptions(options, TENSOR_OPTIONS, 'Tensor.empty');
    const dtype = tensorDType(options.dtype ?? getDefaultDtype());
    const storage = backend.alloc(storageBytes(dtype, numel(shape)), options.category ?? 'activation', options.label ?? '');
    return new Tensor(backend, { storage, refs: 1 }, 0, [...shape], dtype);
  }

  /** A tensor from values (rounded to dtype, nearest-even) or int32 data. */
  static from(backend: Backend, data: ArrayLike<number> | Float32Array | Int32Array, shape: readonly number[], options: TensorOptions = {}): Tensor {
    checkShape(shape);
    checkOptions(options, TENSOR_OPTIONS, 'Tensor.from');
    const typed = ArrayBuffer.isView(data) && !(data instanceof DataView) && !(data instanceof BigInt64Array) && !(data instanceof BigUint64Array);
    if (!typed && !Array.isArray(data)) throw new InvalidArgumentError(`Tensor.from: data must be an array or a typed array of numbers, got ${describeValue(data)}`);
    if (!typed) {
      for (let i = 0; i < data.length; i++) {
        if (typeof data[i] !== 'number') throw new InvalidArgumentError(`Tensor.from: data[${i}] is not a number: ${describeValue(data[i])}`);
      }
    }
    if (data.length !== numel(shape)) throw new ShapeMismatchError(`${data.length} values do not fill shape [${shape.join(', ')}] (${numel(shape)} elements)`);
    return withOutputs(() => {
      const t = Tensor.empty(backend, shape, { category: 'data', ...options });
      if (t.dtype === 'int32') {
        if (!(data instanceof Int32Array)) {
          for (let i = 0; i < data.length; i++) {
            const v = data[i];
            if (!(Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31)) throw new InvalidArgumentError(`Tensor.from: int32 data[${i}] is ${describeValue(v)}, not an integer in [-2^31, 2^31)`);
          }
        }
        backend.write(t.storage, Int32Array.from(data as ArrayLike<number>));
      }
      else if (t.dtype === 'uint8') {
        for (let i = 0; i < data.length; i++) {
          const v = data[i];
          if (!(Number.isInteger(v) && v >= 0 && v <= 255)) throw new InvalidArgumentError(`Tensor.from: uint8 data[${i}] is ${describeValue(v)}, not an integer in [0, 255]`);
        }
        backend.write(t.storage, Uint8Array.from(data as ArrayLike<number>));
      }
      else {
        const f = formatOf(t.dtype);
        const values = data instanceof Float32Array ? data : Float64Array.from(data as ArrayLike<number>);
        const codes = f.name === 'float32' ? Float32Array.from(values) : encode(values, f.name);
        backend.write(t.storage, f.bits < 8 ? pack(codes as Uint8Array, f.name) : codes);
      }
      return t;
    });
  }

  /** The values as float32 (int32 tensors: Int32Array; uint8 tensors: Uint8Array). */
  async toArray(): Promise<Float32Array | Int32Array | Uint8Array> {
    if (this.strides) return onContiguous([this], (c) => c.toArray());
    const n = this.size;
    if (this.dtype === 'uint8') return (await this.backend.read(this.storage, this.offset, n)).slice();
    if (this.dtype === 'int32') {
      const b = await this.backend.read(this.storage, this.offset * 4, n * 4);
      return new Int32Array(b.buffer, b.byteOffset, n).slice();
    }
    const f = formatOf(this.dtype);
    if (f.bits < 8) {
      // Sub-byte codes come in whole-byte groups (fp4: 2 codes in 1 byte, fp6: 4 codes in 3 bytes):
      // read from the start of the group holding our first code.
      const groupCodes = f.bits === 6 ? 4 : 8 / f.bits, groupBytes = (groupCodes * f.bits) / 8;
      const first = Math.floor(this.offset / groupCodes) * groupBytes;
      const bytes = await this.backend.read(this.storage, first, storageBytes(this.dtype, this.offset + n) - first);
      const lead = this.offset % groupCodes; // codes before our first one in that group
      return decode(unpack(bytes, f.name, lead + n).subarray(lead), f.name);
    }
    const b = await this.backend.read(this.storage, this.offset * f.codeBytes, n * f.codeBytes);
    const copy = b.slice();
    const codes = f.codeBytes === 4 ? new Uint32Array(copy.buffer) : f.codeBytes === 2 ? new Uint16Array(copy.buffer) : copy;
    return decode(codes, f.name);
  }

  /** A view with another shape (same number of elements); -1 infers one dimension. */
  reshape(shape: readonly number[]): Tensor {
    const known = shape.filter((d) => d !== -1);
    const infer = shape.length - known.length;
    if (infer > 1) throw new InvalidArgumentError('reshape: only one dimension can be -1');
    const full = infer ? shape.map((d) => (d === -1 ? this.size / numel(known) : d)) : [...shape];
    checkShape(full);
    if (numel(full) !== this.size) throw new ShapeMismatchError(`cannot reshape [${this.shape.join(', ')}] (${this.size} elements) to [${shape.join(', ')}]`);
    if (this.strides && full.join() === this.shape.join()) return this.view(this.offset, full, this.strides); // another reference to the same view
    if (this.strides) return onContiguous([this], (c) => c.reshape(full)); // a copy, as PyTorch's reshape of a view whose strides do not allow another shape
    return this.view(this.offset, full);
  }

  /** Rows start..end of the first dimension, as a view (no copy). */
  slice(start: number, end = this.shape[0]): Tensor {
    if (this.rank === 0) throw new InvalidArgumentError('slice needs a tensor of rank >= 1');
    if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && end <= this.shape[0] && start <= end)) {
      throw new InvalidArgumentError(`slice(${start}, ${end}) is out of range for dimension 0 of size ${this.shape[0]}`);
    }
    const row = this.strides ? this.strides[0] : numel(this.shape.slice(1));
    return this.view(this.offset + start * row, [end - start, ...this.shape.slice(1)], this.strides);
  }

  /** The dimensions in the order `dims` gives (a permutation of 0..rank-1; negative counts from the end), as a view (no copy). */
  permute(dims: readonly number[]): Tensor {
    checkTensor(this, 'permute');
    if (!Array.isArray(dims) || dims.length !== this.rank) throw new InvalidArgumentError(`permute: dims must list each of the ${this.rank} dimensions once, got ${describeValue(dims)}`);
    const order = dims.map((d) => (Number.isInteger(d) && d >= -this.rank && d < this.rank ? normAxis(d, this.rank) : -1));
    if (order.includes(-1) || new Set(order).size !== this.rank) throw new InvalidArgumentError(`permute: dims must list each of the ${this.rank} dimensions once, got [${dims.join(', ')}]`);
    const strides = this.strides ?? contiguousStrides(this.shape);
    return this.view(this.offset, order.map((d) => this.shape[d]), order.map((d) => strides[d]));
  }

  /** This tensor when contiguous (a new view of the same storage), else a contiguous copy (codes copied bit for bit). */
  contiguous(): Tensor {
    checkTensor(this, 'contiguous');
    if (!this.strides) return this.view(this.offset, [...this.shape]);
    return withOutputs(() => {
      const out = Tensor.empty(this.backend, this.shape, { dtype: this.dtype, category: this.category, label: this.shared.storage.label });
      this.backend.copy(this, out);
      return out;
    });
  }

  /** A copy in another dtype (bit-identical to encode/decode). */
  to(dtype: DTypeName | 'int32' | 'uint8', options: TensorCastOptions = {}): Tensor {
    checkTensor(this, 'to');
    const o = checkCastOptions(options, 'Tensor.to');
    if (this.strides) return onContiguous([this], (c) => c.to(dtype, o));
    return withOutputs(() => {
      const out = Tensor.empty(this.backend, this.shape, { dtype, category: this.category, label: this.shared.storage.label });
      this.backend.cast(this, out, o);
      return out;
    });
  }

  /** Dimensions dim0 and dim1 (the last two by default) swapped, as a view (no copy; contiguous() copies). */
  transpose(dim0 = -2, dim1 = -1): Tensor {
    if (this.rank < 2) throw new InvalidArgumentError(`transpose needs a tensor of rank >= 2, got [${this.shape.join(', ')}]`);
    checkTensor(this, 'transpose');
    const dims = [...this.shape.keys()];
    const a = normAxis(dim0, this.rank), b = normAxis(dim1, this.rank);
    [dims[a], dims[b]] = [dims[b], dims[a]];
    return this.permute(dims);
  }

  /** A copy on another backend (same bytes). */
  async toBackend(backend: Backend): Promise<Tensor> {
    if (this.strides) return onContiguous([this], (c) => c.toBackend(backend));
    const bytes = storageBytes(this.dtype, this.size);
    // Byte-aligned elements are read in place; a sub-byte view off a byte boundary is compacted first.
    const aligned = this.offset === 0 || this.dtype === 'int32' || this.dtype === 'uint8' || formatOf(this.dtype).bits >= 8;
    const src = aligned ? this : this.to(this.dtype);
    const start = src.offset === 0 ? 0 : src.offset * (src.dtype === 'int32' ? 4 : src.dtype === 'uint8' ? 1 : formatOf(src.dtype).codeBytes);
    let data: Uint8Array;
    try {
      data = await this.backend.read(src.storage, start, bytes);
    } finally {
      if (src !== this) src.dispose();
    }
    return withOutputs(() => {
      const out = Tensor.empty(backend, this.shape, { dtype: this.dtype, category: this.category, label: this.shared.storage.label });
      backend.write(out.storage, data);
      return out;
    });
  }

  /** Releases this tensor's hold on its storage; the last holder frees it. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (--this.shared.refs === 0) this.backend.free(this.shared.storage);
  }

  get isDisposed(): boolean { return this.disposed; }

  /**
   * Whether this tensor is the only holder of its storage (no view, no saved copy shares it), its
   * one contiguous view covering all of it: what a backward may overwrite in place when autograd owns it.
   */
  get isSoleOwner(): boolean {
    return !this.disposed && !this.strides && this.shared.refs === 1 && this.offset === 0 && storageBytes(this.dtype, this.size) === this.shared.storage.byteLength;
  }

  private view(offset: number, shape: number[], strides?: readonly number[]): Tensor {
    if (this.disposed) throw new InvalidArgumentError('tensor used after dispose()');
    this.shared.refs++;
    return new Tensor(this.backend, this.shared, offset, shape, this.dtype, strides);
  }

  // ---- ops (all through dispatch) -----------------------------------------------------------

  // Each op's allocations are labelled with its name (memory traces say who allocated).
  add(b: Tensor): Tensor { return observeOp('add', () => dispatch.binary('add', this, b)); }
  sub(b: Tensor): Tensor { return observeOp('sub', () => dispatch.binary('sub', this, b)); }
  mul(b: Tensor): Tensor { return observeOp('mul', () => dispatch.binary('mul', this, b)); }
  div(b: Tensor): Tensor { return observeOp('div', () => dispatch.binary('div', this, b)); }
  unary(op: UnaryOp, alpha?: number): Tensor { return observeOp(op, () => dispatch.unary(op, this, alpha)); }
  sum(axis: number | null = null): Tensor { return observeOp('sum', () => dispatch.reduce('sum', this, axis)); }
  mean(axis: number | null = null): Tensor { return observeOp('mean', () => dispatch.reduce('mean', this, axis)); }
  max(axis: number | null = null): Tensor { return observeOp('max', () => dispatch.reduce('max', this, axis)); }
  softmax(): Tensor { return observeOp('softmax', () => dispatch.softmax(this, false)); }
  logSoftmax(): Tensor { return observeOp('logSoftmax', () => dispatch.softmax(this, true)); }
  matmul(b: Tensor, options: MatmulOptions = {}): Tensor { return observeOp('matmul', () => dispatch.matmul(this, b, options)); }
}

function sameBackend(...ts: Tensor[]): Backend {
  const b = ts[0].backend;
  for (const t of ts) if (t.backend !== b) throw new InvalidArgumentError(`tensors are on different backends (${b.kind} and ${t.backend.kind}); move one with toBackend()`);
  return b;
}

/** Result dtype of an elementwise op on inputs of these dtypes: float32 unless every input has the same float dtype (the one rule of every route). */
export function resultDType(...ts: Tensor[]): TensorDType {
  const d = ts[0].dtype;
  return ts.every((t) => t.dtype === d) && d !== 'int32' ? d : 'float32';
}

/**
 * Runs fn on contiguous tensors: strided views among `ts` are copied first (the copies are freed
 * when fn returns, or when the promise it returns settles). Kernels that read strides take views
 * as they are and do not use this.
 */
export function onContiguous<R>(ts: readonly Tensor[], fn: (...cs: Tensor[]) => R): R {
  if (ts.every((t) => t.isContiguous)) return fn(...ts);
  const cs = ts.map((t) => (t.isContiguous ? t : t.contiguous()));
  const free = () => cs.forEach((c, i) => { if (c !== ts[i]) c.dispose(); });
  let r: R;
  try {
    r = fn(...cs);
  } catch (e) {
    free();
    throw e;
  }
  if (r instanceof Promise) return r.finally(free) as R;
  free();
  return r;
}

/** When t is a view of a contiguous tensor with its last two dimensions swapped: that tensor (a new view; matmul reads it transposed). */
function transposedBase(t: Tensor): Tensor | null {
  if (!t.strides || t.rank < 2) return null;
  const base = t.transpose(-2, -1);
  if (base.isContiguous) return base;
  base.dispose();
  return null;
}

/** The single dispatch point of tensor ops. Inputs are checked before, and outputs freed after, a failure. */
export const dispatch = {
  unary(op: UnaryOp, x: Tensor, alpha?: number): Tensor {
    checkOperand(x, op);
    if (!x.isContiguous) return onContiguous([x], (c) => dispatch.unary(op, c, alpha));
    return withOutputs(() => {
      const out = Tensor.empty(x.backend, x.shape, { dtype: resultDType(x), label: op });
      x.backend.unary(op, x, out, alpha);
      return out;
    });
  },
  binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
    checkOperand(a, op);
    checkOperand(b, op);
    const be = sameBackend(a, b);
    if (!a.isContiguous || !b.isContiguous) return onContiguous([a, b], (ca, cb) => dispatch.binary(op, ca, cb));
    return withOutputs(() => {
      const out = Tensor.empty(be, broadcastShapes(a.shape, b.shape), { dtype: resultDType(a, b), label: op });
      be.binary(op, a, b, out);
      return out;
    });
  },
  reduce(op: ReduceOp, x: Tensor, axis: number | null): Tensor {
    checkOperand(x, op);
    if (!x.isContiguous) return onContiguous([x], (c) => dispatch.reduce(op, c, axis));
    const ax = axis === null ? null : normAxis(axis, x.rank);
    const shape = ax === null ? [] : x.shape.filter((_, i) => i !== ax);
    if ((op === 'max' || op === 'amax') && (ax === null ? x.size : x.shape[ax]) === 0) {
      throw new InvalidArgumentError(`${op} over an empty dimension (size 0) has no value, as in PyTorch (shape [${x.shape.join(', ')}], axis ${ax === null ? 'all' : ax})`);
    }
    return withOutputs(() => {
      // accumulated in float32 (wasm: float64) and rounded once: into a bfloat16 or float16 input's
      // dtype, as PyTorch keeps it; float32 otherwise (int32, and the 8-bit and narrower formats,
      // which PyTorch does not sum and whose range a sum leaves at once)
      const out = Tensor.empty(x.backend, shape, { dtype: x.dtype === 'bfloat16' || x.dtype === 'float16' ? x.dtype : 'float32', label: op });
      x.backend.reduce(op, x, out, ax);
      return out;
    });
  },
  softmax(x: Tensor, log: boolean): Tensor {
    checkOperand(x, log ? 'logSoftmax' : 'softmax');
    if (x.rank === 0) throw new InvalidArgumentError('softmax needs a tensor of rank >= 1');
    if (!x.isContiguous) return onContiguous([x], (c) => dispatch.softmax(c, log));
    return withOutputs(() => {
      const out = Tensor.empty(x.backend, x.shape, { dtype: 'float32', label: log ? 'logSoftmax' : 'softmax' });
      x.backend.softmax(x, out, log);
      return out;
    });
  },
  matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
    checkOperand(a, 'matmul');
    checkOperand(b, 'matmul');
    const o = checkOptions(options, ['transA', 'transB', 'alpha'], 'matmul');
    for (const k of ['transA', 'transB'] as const) {
      if (o[k] !== undefined && typeof o[k] !== 'boolean') throw new InvalidArgumentError(`matmul: ${k} must be a boolean, got ${describeValue(o[k])}`);
    }
    if (o.alpha !== undefined && !(typeof o.alpha === 'number' && Number.isFinite(o.alpha))) throw new InvalidArgumentError(`matmul: alpha must be a finite number, got ${describeValue(o.alpha)}`);
    const be = sameBackend(a, b);
    // A transposed view is read as its contiguous base with transA / transB flipped: no copy.
    for (const [t, flag] of [[a, 'transA'], [b, 'transB']] as const) {
      const base = transposedBase(t);
      if (!base) continue;
      try {
        return flag === 'transA' ? dispatch.matmul(base, b, { ...options, transA: !options.transA }) : dispatch.matmul(a, base, { ...options, transB: !options.transB });
      } finally {
        base.dispose();
      }
    }
    if (!a.isContiguous || !b.isContiguous) return onContiguous([a, b], (ca, cb) => dispatch.matmul(ca, cb, options));
    const { batch, m, n } = matmulShape(a, b, options);
    return withOutputs(() => {
      const out = Tensor.empty(be, [...batch, m, n], { dtype: 'float32' });
      be.matmul(a, b, out, options);
      return out;
    });
  },
};

/**
 * The shapes of a [..., M, K] @ b [..., K, N] (either side transposed with transA/transB), checked
 * once for every route: batch dims equal, or one side without batch dims (broadcast); when both
 * have one element, the longer batch shape is kept (PyTorch keeps [1, 1, M, N]).
 */
export function matmulShape(a: Tensor, b: Tensor, options: MatmulOptions = {}): { batch: readonly number[]; m: number; k: number; n: number } {
  if (a.rank < 2 || b.rank < 2) throw new ShapeMismatchError(`matmul needs tensors of rank >= 2, got [${a.shape.join(', ')}] and [${b.shape.join(', ')}]`);
  const [m, ka] = options.transA ? [a.shape[a.rank - 1], a.shape[a.rank - 2]] : [a.shape[a.rank - 2], a.shape[a.rank - 1]];
  const [kb, n] = options.transB ? [b.shape[b.rank - 1], b.shape[b.rank - 2]] : [b.shape[b.rank - 2], b.shape[b.rank - 1]];
  if (ka !== kb) throw new ShapeMismatchError(`matmul inner dimensions differ: [${a.shape.join(', ')}]${options.transA ? '^T' : ''} @ [${b.shape.join(', ')}]${options.transB ? '^T' : ''} (${ka} vs ${kb})`);
  const ba = a.shape.slice(0, -2), bb = b.shape.slice(0, -2);
  if (numel(ba) !== 1 && numel(bb) !== 1 && ba.join() !== bb.join()) throw new ShapeMismatchError(`matmul batch dimensions differ: [${ba.join(', ')}] vs [${bb.join(', ')}]`);
  const batch = numel(ba) !== 1 ? ba : numel(bb) !== 1 ? bb : ba.length >= bb.length ? ba : bb;
  return { batch, m, k: ka, n };
}
