// The CPU backend: AssemblyScript kernels over WebAssembly memory. It is also the reference that
// every WGSL kernel is tested against. Storage lives in the module's heap; kernels run in float32
// on staged copies of low-precision inputs (decoded exactly) and round once into the output.
import { humanBytes, InvalidArgumentError, MemfitError, OutOfMemoryError } from '../../errors.js';
import { formatOf, ROUNDING_IDS } from '../../dtype/formats.js';
import { allocationLabel } from '../op_context.js';
import { GROW_LIMIT, wasmAlloc, wasmFree, WASM_MEMORY_LIMIT } from '../../dtype/wasm.js';
import { callPart, MAX_PARTS, MAX_WORKERS, splitRange, Threads, type KernelPart } from './threads.js';
import type {
  Backend, BackendStats, BinaryOp, CastOptions, FamilyKernelName, MatmulOptions, ReduceOp, Storage, TensorRef, UnaryOp,
} from '../backend.js';
import { registerFamilies } from '../backend.js';
import { BufferPool, MemoryTracker, type Category } from '../memory.js';
import { BINARY_IDS, REDUCE_IDS, UNARY_IDS } from '../ops.js';
import { broadcastStrides, checkCopy, contiguousStrides, numel, sameShape, viewStorage } from '../shape.js';
import { wasmFamilies } from './families.js';
import { kernelExports } from './exports.js';
import { checkUint8Cast } from '../quant.js';
import { checkCastOptions } from '../cast_options.js';
import { dtypeBits } from '../storage.js';
import { fillPlan, fillWords } from '../fill.js';
import { accumulateViaTemporary, checkAccumulate } from '../matmul_accumulate.js';
import { ELEMENTWISE_BLOCK } from './staging.js';

export { kernelExports, type MemfitWasm } from './exports.js';

/** Options of a wasm backend. */
export interface WasmBackendOptions {
  /**
   * Threads that run kernels (this one included): 1 (the default of the constructor) runs every
   * kernel on the calling thread; more split large kernel calls among worker threads that share the
   * module's memory. Results are bit-identical for every count. Needs shared memory (always in
   * Node; in a browser, a cross-origin isolated page): without it the backend runs on one thread.
   */
  threads?: number;
  /** Where the line saying that threads are not possible goes (default console.warn); null for silence. */
  log?: ((line: string) => void) | null;
  /**
   * Kernel calls with less work than this (multiply-adds or element updates) run on the calling
   * thread only (default PARALLEL_MIN_WORK: below it, waking workers costs more than it saves).
   */
  parallelMinWork?: number;
}

/**
 * Kernel calls with less work than this run on one thread: waking workers costs more. A unit of
 * work is about a nanosecond or two of one thread's time; each kernel states its work in these
 * units (16 multiply-adds of a matmul, one element of a norm, two of AdamW, one element of most
 * elementwise ops, STREAMING_ELEMENTS_PER_WORK of those that only stream memory).
 */
export const PARALLEL_MIN_WORK = 1 << 16;
/**
 * Elements of a streaming elementwise op (an add, a scale: a few instructions an element, bound by
 * memory) per unit of work: such ops split among threads from 128K elements. Measured on 2 cores
 * (2026-11-30, calls 20 us apart, so that the threads spin between them as in a training step): a
 * 64K-element add took 1.2x longer on two threads than on one, 128K 1.35x less time, 256K 1.5x
 * less (the two threads share the memory bandwidth).
 */
const STREAMING_ELEMENTS_PER_WORK = 2;
/** Unary and binary ops that stream (see STREAMING_ELEMENTS_PER_WORK); the others compute enough an element to split from PARALLEL_MIN_WORK elements. */
const STREAMING_UNARY = new Set<UnaryOp>(['neg', 'relu', 'abs', 'square', 'scale', 'addScalar']);
const STREAMING_BINARY = new Set<BinaryOp>(['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'reluBackward', 'sigmoidBackwardY', 'tanhBackwardY']);
/** The work of n elements of an elementwise op. */
function elementwiseWork(n: number, streaming: boolean): number {
  return streaming ? Math.ceil(n / STREAMING_ELEMENTS_PER_WORK) : n;
}
/** Parts per thread of a split call. */
const PARTS_PER_THREAD = 4;
/** Most bytes of a threaded matmul's shared packing of op(B) (module memory outside the accounting, like kernel scratch). */
const SHARED_PACK_BYTES = 16 << 20;



class WasmStorage implements Storage {
  freed = false;
  constructor(
    readonly backend: WasmBackend, readonly ptr: number, readonly size: number, readonly byteLength: number,
    readonly category: Category, readonly label: string, readonly memId: number,
  ) {}
}


/** A float32 view of a tensor for a kernel: a pointer, and a release() for any staging copy. */
export interface Staged {
  readonly ptr: number;
  release(): void;
}

// The kernels of the family modules (families.ts) are methods too, registered at the end of this file.
export interface WasmBackend extends Pick<Backend, FamilyKernelName> {}

export class WasmBackend implements Backend {
  readonly kind = 'wasm' as const;
  readonly memory = new MemoryTracker();
  /**
   * wasm32: 4 GiB of linear memory in all; one buffer may take at most 2 GiB here (the module's
   * allocator gives blocks of 64 MiB and more their own pages, so a 2 GiB buffer is possible
   * whenever the memory can grow by that much; when it cannot, alloc throws OutOfMemoryError).
   */
  readonly maxBufferSize = 2 ** 31;
  readonly description: string;
  private readonly pool: BufferPool<number>;
  private destroyed = false;
  private bytesUploaded = 0;
  private bytesRead = 0;
  /** Worker threads (undefined: one thread). */
  private readonly workers: Threads | undefined;
  /** Threads that run kernels, this one included. */
  readonly threads: number;
  private readonly parallelMinWork: number;

  constructor(reason = 'WebAssembly (CPU)', options: WasmBackendOptions = {}) {
    const want = options.threads ?? 1;
    if (!Number.isInteger(want) || want < 1 || want > MAX_WORKERS + 1) throw new InvalidArgumentError(`threads must be an integer from 1 to ${MAX_WORKERS + 1}, got ${want}`);
    this.workers = want > 1 ? Threads.open(want, kernelExports) : undefined;
    if (want > 1 && !this.workers) {
      const log = options.log === undefined ? (l: string) => console.warn(l) : options.log;
      log?.(`memfit: wasm backend on 1 thread, not ${want}: threads need shared memory, which a browser allows only on a cross-origin isolated page (COOP/COEP headers)`);
    }
    this.threads = this.workers ? want : 1;
    this.parallelMinWork = options.parallelMinWork ?? PARALLEL_MIN_WORK;
    this.description = `wasm backend: ${reason}${this.threads > 1 ? `, ${this.threads} threads` : ''}`;
    this.pool = new BufferPool<number>(this.memory, (size) => wasmAlloc(size, `a ${size}-byte buffer`), wasmFree);
  }

  /** A backend whose worker threads have started (the constructor's start within milliseconds; until then kernels run on this thread). */
  static async create(reason?: string, options: WasmBackendOptions = {}): Promise<WasmBackend> {
    const b = new WasmBackend(reason, options);
    await b.workers?.ready();
    return b;
  }

  // ---- memory -------------------------------------------------------------------------------

  alloc(byteLength: number, category: Category, label = ''): Storage {
    this.check();
    if (byteLength > this.maxBufferSize) {
      throw new MemfitError('BUFFER_TOO_LARGE', `${label || 'tensor'} needs ${byteLength} bytes, more than the wasm backend's maxBufferSize ${this.maxBufferSize}`);
    }
    let got: { buffer: number; size: number };
    try {
      got = this.pool.acquire(byteLength);
    } catch (e) {
      if (!(e instanceof OutOfMemoryError)) throw e;
      // As PyTorch's caching allocator does: give the cached free buffers back, then try once more.
      this.pool.emptyCache();
      try {
        got = this.pool.acquire(byteLength);
      } catch (e2) {
        if (!(e2 instanceof OutOfMemoryError)) throw e2;
        const who = allocationLabel(label); // the module path and op that allocate, as memory traces show them
        const what = who ? `tensor '${who}'` : 'a tensor';
        const now = kernelExports().memory.buffer.byteLength, live = this.memory.memoryAllocated();
        throw new OutOfMemoryError(what, byteLength, WASM_MEMORY_LIMIT, `WebAssembly memory (${humanBytes(now)} now, ${humanBytes(live)} of it live tensors of this backend) could not grow to hold it (${GROW_LIMIT})`);
      }
    }
    const id = this.memory.onAlloc(byteLength, category, label);
    return new WasmStorage(this, got.buffer, got.size, byteLength, category, label, id);
  }

  free(storage: Storage): void {
    const s = this.own(storage);
    if (s.freed) throw new InvalidArgumentError(`storage ${s.label || ''} freed twice`);
    s.freed = true;
    this.pool.release(s.ptr, s.size);
    this.memory.onFree(s.memId);
  }

  write(storage: Storage, data: ArrayBufferView, byteOffset = 0): void {
    const s = this.own(storage);
    if (byteOffset + data.byteLength > s.byteLength) throw new InvalidArgumentError(`write of ${data.byteLength} bytes at ${byteOffset} overruns a ${s.byteLength}-byte storage`);
    new Uint8Array(kernelExports().memory.buffer, s.ptr + byteOffset, data.byteLength).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    this.bytesUploaded += data.byteLength;
  }

  async read(storage: Storage, byteOffset: number, byteLength: number): Promise<Uint8Array> {
    return this.readSync(storage, byteOffset, byteLength);
  }

  readSync(storage: Storage, byteOffset: number, byteLength: number): Uint8Array {
    const s = this.own(storage);
    if (byteOffset + byteLength > s.byteLength) throw new InvalidArgumentError(`read of ${byteLength} bytes at ${byteOffset} overruns a ${s.byteLength}-byte storage`);
    this.bytesRead += byteLength;
    return new Uint8Array(kernelExports().memory.buffer, s.ptr + byteOffset, byteLength).slice();
  }

  async synchronize(): Promise<void> {}

  emptyCache(): void {
    this.pool.emptyCache();
  }

  /** deviceAllocations are pool misses (blocks taken from the module's heap); the WebGPU-only counters are 0. */
  stats(): BackendStats {
    return {
      deviceAllocations: this.memory.deviceAllocations, bytesUploaded: this.bytesUploaded, bytesRead: this.bytesRead,
      dispatches: 0, computePasses: 0, submits: 0, uniformBuffersCreated: 0, bindGroupsCreated: 0, pipelinesCreated: 0,
    };
  }

  /** Frees cached buffers and stops this backend's share of the worker threads. */
  destroy(): void {
    this.emptyCache();
    this.destroyed = true;
    this.workers?.close();
  }

  // ---- threads ------------------------------------------------------------------------------

  /** How many parts a kernel call with `work` units of work is split into now (1: run it here). */
  lanes(work: number): number {
    if (!this.workers || work < this.parallelMinWork) return 1;
    return this.workers.lanes();
  }

  /**
   * Runs kernel parts on this thread and the workers (each takes the next part not yet taken);
   * returns when all are done. With scratchStride, each part's last argument is a scratch pointer
   * that the thread running it offsets by its seat (0 .. threads - 1) times the stride.
   */
  runParts(parts: readonly KernelPart[], scratchStride = 0): void {
    if (parts.length === 1 || !this.workers) {
      const ex = kernelExports();
      for (const p of parts) callPart(ex, p);
    } else this.workers.run(parts, scratchStride);
  }

  /**
   * Splits [0, n) into ranges (boundaries multiples of `align`) when the call has `work` units of
   * work and threads are free (a few ranges per thread, so that a thread slowed by others' work on
   * the machine is made up for), and runs part(start, end) for each.
   */
  parallelFor(n: number, align: number, work: number, part: (start: number, end: number) => KernelPart, scratchStride = 0): void {
    const pieces = this.pieces(this.lanes(work), Math.ceil(n / align));
    if (pieces <= 1) {
      this.runParts([part(0, n)]);
      return;
    }
    this.runParts(splitRange(n, pieces, align).map(([s, e]) => part(s, e)), scratchStride);
  }

  /**
   * Runs fn with scratch for kernel parts: `bytesPerThread` (a multiple of 16) for each thread,
   * 16-aligned, freed afterwards (module memory outside the tensor accounting, like the one-thread
   * kernels' own scratch, which they take from the module's heap for the call).
   */
  withThreadScratch(bytesPerThread: number, fn: (ptr: number) => void): void {
    this.withScratch(bytesPerThread * this.threads, fn);
  }

  /** Runs fn with `bytes` of 16-aligned kernel scratch (module memory outside the tensor accounting), freed afterwards. */
  withScratch(bytes: number, fn: (ptr: number) => void): void {
    const p = wasmAlloc(bytes + 16, 'kernel scratch');
    try {
      fn((p + 15) & ~15);
    } finally {
      wasmFree(p);
    }
  }

  /**
   * How many parts to cut a call into for `lanes` threads, at most `units`: a multiple of lanes
   * where units allow (3 parts on 2 threads take as long as 4; 2 take half as long as 3).
   */
  pieces(lanes: number, units: number): number {
    if (lanes <= 1) return 1;
    const p = Math.min(units, lanes * PARTS_PER_THREAD, MAX_PARTS);
    return p > lanes ? p - (p % lanes) : p;
  }

  /** Pointer of a storage (for kernels in family modules). */
  ptr(storage: Storage): number {
    return this.own(storage).ptr;
  }

  /** The bytes [byteOffset, byteOffset + byteLength) of a storage, as a view of this backend's memory (valid until memory grows). */
  view(storage: Storage, byteOffset: number, byteLength: number): Uint8Array {
    const s = this.own(storage);
    if (byteOffset + byteLength > s.byteLength) throw new InvalidArgumentError(`view of ${byteLength} bytes at ${byteOffset} overruns a ${s.byteLength}-byte storage`);
    return new Uint8Array(kernelExports().memory.buffer, s.ptr + byteOffset, byteLength);
  }

  /** A scratch block accounted as 'temporary'; free with freeTemp. */
  temp(bytes: number, label = 'scratch'): { storage: Storage; ptr: number } {
    const storage = this.alloc(Math.max(bytes, 4), 'temporary', label);
    return { storage, ptr: (storage as WasmStorage).ptr };
  }

  // ---- staging between storage dtypes and float32 --------------------------------------------

  /** A float32 copy (or the tensor itself, when it is float32) of `x`'s elements. */
  stageIn(x: TensorRef): Staged {
    const n = numel(x.shape);
    const base = this.ptr(x.storage);
    if (x.dtype === 'float32') return { ptr: base + x.offset * 4, release() {} };
    const w = kernelExports();
    const f = x.dtype === 'int32' ? null : formatOf(x.dtype); // an unknown dtype throws before anything is allocated
    const t = this.temp(n * 4, 'stage-in');
    if (f === null) w.i32ToF32(base + x.offset * 4, t.ptr, n);
    else {
      if (f.bits >= 8) w.decode(f.id, base + x.offset * f.codeBytes, t.ptr, n);
      else {
        const codes = this.temp(n, 'stage-in codes');
        w.unpackRange(f.bits, base, x.offset, codes.ptr, n);
        w.decode(f.id, codes.ptr, t.ptr, n);
        this.free(codes.storage);
      }
    }
    return { ptr: t.ptr, release: () => this.free(t.storage) };
  }

  /**
   * A float32 buffer for a kernel's result; commit() rounds it into `out` (nearest-even unless
   * options say otherwise) and releases the staging copy; release() frees it unused (after an error).
   */
  stageOut(out: TensorRef, options: CastOptions = {}): { ptr: number; commit(): void; release(): void } {
    const n = numel(out.shape);
    const base = this.ptr(out.storage);
    const byteOffset = this.outputByteOffset(out);
    if (out.dtype === 'float32' && !options.saturate && (options.rounding ?? 'nearest-even') === 'nearest-even') {
      return { ptr: base + byteOffset, commit() {}, release() {} };
    }
    const t = this.temp(n * 4, 'stage-out');
    let held = true;
    const release = () => { if (held) { held = false; this.free(t.storage); } };
    return { ptr: t.ptr, commit: () => { try { this.encodeInto(t.ptr, out, options, byteOffset); } finally { release(); } }, release };
  }

  /** Where out's first element lies in its storage, in bytes: an output may start inside its storage (a slice) when its codes are whole bytes. */
  private outputByteOffset(out: TensorRef): number {
    const bits = dtypeBits(out.dtype);
    if (out.offset !== 0 && bits < 8) throw new InvalidArgumentError('kernel outputs in packed sub-byte formats must start at offset 0');
    return out.offset * (bits / 8);
  }

  /**
   * Rounds numel(out.shape) float32 at src into out (a view at any offset where its codes are whole
   * bytes), with a stochastic stream starting at element `streamOffset` (what the elements'
   * places in a larger cast would give them). For kernels that stage a tensor in pieces.
   */
  encodeFloat32(src: number, out: TensorRef, options: CastOptions, streamOffset = 0n): void {
    this.encodeInto(src, out, options, this.outputByteOffset(out), streamOffset);
  }

  /** Rounds n float32 at src into out's storage. */
  private encodeInto(src: number, out: TensorRef, options: CastOptions, byteOffset = 0, streamOffset = 0n): void {
    const w = kernelExports();
    const n = numel(out.shape);
    const base = this.ptr(out.storage) + byteOffset;
    if (out.dtype === 'int32') return w.f32ToI32(src, base, n);
    const f = formatOf(out.dtype);
    const mode = ROUNDING_IDS[options.rounding ?? 'nearest-even'];
    const seed = options.seed ?? 0n;
    const sat = options.saturate ?? false;
    if (f.bits >= 8) return w.encodeF32(f.id, src, base, n, mode, sat, seed, streamOffset);
    const codes = this.temp(n, 'stage-out codes');
    w.encodeF32(f.id, src, codes.ptr, n, mode, sat, seed, streamOffset);
    w.pack(f.bits, codes.ptr, base, n);
    this.free(codes.storage);
  }

  // ---- kernels: elementwise, reductions, softmax, matmul -------------------------------------

  cast(x: TensorRef, out: TensorRef, options: CastOptions = {}): void {
    options = checkCastOptions(options, 'cast');
    checkUint8Cast(x, out);
    if (x.dtype === out.dtype && !options.saturate && (options.rounding ?? 'nearest-even') === 'nearest-even') {
      return this.moveCodes(x, out, (a, b) => b.set(a)); // same dtype: an exact copy of the codes
    }
    const dst = this.ptr(out.storage) + this.outputByteOffset(out); // checked before staging
    const n = numel(out.shape);
    const toF32 = out.dtype === 'float32' && !options.saturate && (options.rounding ?? 'nearest-even') === 'nearest-even';
    if (toF32 && x.dtype !== 'int32' && x.dtype !== 'uint8' && formatOf(x.dtype).bits >= 8) {
      // Decoded straight into out (exact): no float32 staging copy.
      const f = formatOf(x.dtype);
      kernelExports().decode(f.id, this.ptr(x.storage) + x.offset * f.codeBytes, dst, n);
      return;
    }
    const src = this.stageIn(x); // exact: every format decodes exactly to float32
    try {
      if (toF32) new Uint8Array(kernelExports().memory.buffer).copyWithin(dst, src.ptr, src.ptr + n * 4);
      else this.encodeInto(src.ptr, out, options, this.outputByteOffset(out));
    } finally {
      src.release();
    }
  }

  fill(out: TensorRef, value: number): void {
    const plan = fillPlan(out.dtype, out.offset, numel(out.shape), value, out.storage.byteLength);
    if (plan) fillWords(new Uint32Array(kernelExports().memory.buffer), this.ptr(out.storage) >>> 2, plan); // heap blocks are 16-byte aligned
  }

  transpose(x: TensorRef, out: TensorRef): void {
    const r = x.shape.length;
    const rows = x.shape[r - 2], cols = x.shape[r - 1], batch = numel(x.shape) / (rows * cols || 1);
    const w = kernelExports();
    const bits = dtypeBits(x.dtype);
    if (bits >= 8 && x.storage !== out.storage) {
      // Byte-aligned codes: one pass from x's storage straight into out's.
      const width = bits / 8, src = this.ptr(x.storage) + x.offset * width, dst = this.ptr(out.storage), mat = rows * cols * width;
      // Whole matrices in parallel (head split and merge are batches of transposes).
      this.parallelFor(batch, 1, batch * rows * cols, (b0, b1) => ({ fn: 'transposeCodes', args: [width, src + b0 * mat, dst + b0 * mat, b1 - b0, rows, cols] }));
      return;
    }
    this.moveCodes(x, out, (a, b) => w.transposeCodes(a.BYTES_PER_ELEMENT, a.byteOffset, b.byteOffset, batch, rows, cols));
  }

  copy(x: TensorRef, out: TensorRef): void {
    checkCopy(x, out);
    const n = numel(x.shape);
    if (n === 0) return;
    const bits = dtypeBits(x.dtype);
    const shape = x.shape, strides = x.strides ?? contiguousStrides(shape);
    const src = this.ptr(viewStorage(x)), dst = this.ptr(out.storage);
    const cols = shape[shape.length - 1] ?? 1, rows = n / cols;
    const meta = [shape.length, ...shape, ...strides];
    if (bits >= 8) {
      const width = bits / 8, from = src + x.offset * width;
      this.withMeta(meta, (m) => this.parallelFor(rows, 1, n, (r0, r1) => ({ fn: 'gatherCodes', args: [width, from, dst + out.offset * width, m, r0, r1] })));
      return;
    }
    // Packed sub-byte codes: unpack the span the view reads, gather one byte a code, pack into out.
    if (out.offset !== 0) throw new InvalidArgumentError('copy: a packed sub-byte output must start at offset 0');
    const w = kernelExports();
    const span = 1 + shape.reduce((a, d, i) => a + (d - 1) * strides[i], 0);
    const codes = this.temp(span, 'copy codes in');
    let gathered: { storage: Storage; ptr: number } | undefined;
    try {
      gathered = this.temp(n, 'copy codes out');
      w.unpackRange(bits, src, x.offset, codes.ptr, span);
      const g = gathered.ptr;
      this.withMeta(meta, (m) => w.gatherCodes(1, codes.ptr, g, m, 0, rows));
      w.pack(bits, g, dst, n);
    } finally {
      this.free(codes.storage);
      if (gathered) this.free(gathered.storage);
    }
  }

  /**
   * Copies x's codes (unpacked, one element each) into out (same dtype) through `permute`: moves
   * codes, never values, so every bit (NaN payloads included) is kept.
   */
  private moveCodes(x: TensorRef, out: TensorRef, permute: (src: Uint8Array | Uint16Array | Uint32Array, dst: Uint8Array | Uint16Array | Uint32Array, n: number) => void): void {
    const w = kernelExports();
    const n = numel(x.shape);
    const bits = dtypeBits(x.dtype);
    const width = bits > 16 ? 4 : bits > 8 ? 2 : 1;
    const base = this.ptr(x.storage), o = this.ptr(out.storage); // both checked before any temporary
    const src = this.temp(n * width, 'codes in');
    let dst: { storage: Storage; ptr: number } | undefined;
    try {
      dst = this.temp(n * width, 'codes out');
      if (bits < 8) w.unpackRange(bits, base, x.offset, src.ptr, n);
      else new Uint8Array(w.memory.buffer).copyWithin(src.ptr, base + x.offset * width, base + (x.offset + n) * width);
      const view = (p: number) => (width === 4 ? new Uint32Array(w.memory.buffer, p, n) : width === 2 ? new Uint16Array(w.memory.buffer, p, n) : new Uint8Array(w.memory.buffer, p, n));
      permute(view(src.ptr), view(dst.ptr), n);
      if (bits < 8) w.pack(bits, dst.ptr, o, n);
      else new Uint8Array(w.memory.buffer).copyWithin(o, dst.ptr, dst.ptr + n * width);
    } finally {
      this.free(src.storage);
      if (dst) this.free(dst.storage);
    }
  }

  unary(op: UnaryOp, x: TensorRef, out: TensorRef, alpha = 0): void {
    const id = UNARY_IDS[op];
    if (id === undefined) throw new InvalidArgumentError(`unknown unary op ${JSON.stringify(op)}`);
    const streaming = STREAMING_UNARY.has(op);
    this.runElementwise([x], out, ([p], o, n) => this.parallelFor(n, 16, elementwiseWork(n, streaming), (s, e) => ({ fn: 'unaryF32', args: [id, p + s * 4, o + s * 4, e - s, alpha] })));
  }

  binary(op: BinaryOp, a: TensorRef, b: TensorRef, out: TensorRef): void {
    const id = BINARY_IDS[op];
    if (id === undefined) throw new InvalidArgumentError(`unknown binary op ${JSON.stringify(op)}`);
    const w = kernelExports(), streaming = STREAMING_BINARY.has(op);
    if (sameShape(a.shape, out.shape) && sameShape(b.shape, out.shape)) {
      return this.runElementwise([a, b], out, ([pa, pb], o, n) => this.withMeta([0], (m) => this.parallelFor(n, 16, elementwiseWork(n, streaming), (s, e) => ({ fn: 'binaryF32', args: [id, pa + s * 4, pb + s * 4, o + s * 4, e - s, m] }))));
    }
    this.run([a, b], out, ([pa, pb], o, n) => {
      const shape = out.shape;
      const meta = [shape.length, ...shape, ...broadcastStrides(a.shape, shape), ...broadcastStrides(b.shape, shape)];
      const rowLen = shape[shape.length - 1], rows = rowLen === 0 ? 0 : n / rowLen;
      this.withMeta(meta, (m) => {
        // Rows of the last dimension in parallel; one thread: the whole call as always.
        const work = elementwiseWork(n, streaming);
        if (this.lanes(work) > 1 && rows > 1) this.parallelFor(rows, 1, work, (r0, r1) => ({ fn: 'binaryF32Rows', args: [id, pa, pb, o, m, r0, r1] }));
        else w.binaryF32(id, pa, pb, o, n, m);
      });
    });
  }

  where(cond: TensorRef, a: TensorRef, b: TensorRef, out: TensorRef): void {
    // Broadcast each operand to the output shape with a 0-add, then select.
    const full = (t: TensorRef): TensorRef => {
      if (sameShape(t.shape, out.shape)) return t;
      const s = this.alloc(numel(out.shape) * 4, 'temporary', 'where-broadcast');
      const zero = this.alloc(4, 'temporary', 'zero');
      this.write(zero, new Float32Array(1));
      const ref: TensorRef = { storage: s, offset: 0, shape: out.shape, dtype: 'float32' };
      this.binary('add', t, { storage: zero, offset: 0, shape: [], dtype: 'float32' }, ref);
      this.free(zero);
      return ref;
    };
    for (const t of [cond, a, b, out]) this.ptr(t.storage); // every operand checked before any temporary
    const made: TensorRef[] = [];
    try {
      const [c, x, y] = [cond, a, b].map((t) => { const f = full(t); if (f !== t) made.push(f); return f; });
      this.run([c, x, y], out, ([pc, px, py], o, n) => this.parallelFor(n, 16, elementwiseWork(n, true), (s, e) => ({ fn: 'whereF32', args: [pc + s * 4, px + s * 4, py + s * 4, o + s * 4, e - s] })));
    } finally {
      for (const t of made) this.free(t.storage);
    }
  }

  reduce(op: ReduceOp, x: TensorRef, out: TensorRef, axis: number | null): void {
    const id = REDUCE_IDS[op];
    const n = numel(x.shape);
    const [outer, len, inner] = axis === null ? [1, n, 1]
      : [numel(x.shape.slice(0, axis)), x.shape[axis], numel(x.shape.slice(axis + 1))];
    // Outputs in parallel (each reduces its own elements in order, as on one thread); a reduction to one value runs here.
    this.run([x], out, ([p], o) => this.parallelFor(outer * inner, 1, n, (s, e) => ({ fn: 'reduceF32Range', args: [id, p, o, len, inner, s, e] })));
  }

  softmax(x: TensorRef, out: TensorRef, log: boolean): void {
    const cols = x.shape[x.shape.length - 1] ?? 1;
    const rows = numel(x.shape) / Math.max(cols, 1);
    this.run([x], out, ([p], o) => this.parallelFor(rows, 1, rows * cols * 4, (s, e) => ({ fn: 'softmaxF32', args: [p + s * cols * 4, o + s * cols * 4, e - s, cols, log ? 1 : 0] })));
  }

  matmul(a: TensorRef, b: TensorRef, out: TensorRef, options: MatmulOptions = {}): void {
    const r = out.shape.length;
    const m = out.shape[r - 2], n = out.shape[r - 1];
    const k = options.transA ? a.shape[a.shape.length - 2] : a.shape[a.shape.length - 1];
    // accumulate: the kernel adds its float32 product to out where the product is one K block
    // (rounded once, then added); deeper products go through a temporary and an add.
    const acc = options.accumulate ? checkAccumulate(out, 'wasm') : false;
    if (acc && k > kernelExports().matmulAccumulateMaxK()) return accumulateViaTemporary(this, a, b, out, options);
    const batch = numel(out.shape.slice(0, r - 2));
    const batchOf = (t: TensorRef) => numel(t.shape.slice(0, t.shape.length - 2));
    const strideA = batchOf(a) === 1 ? 0 : m * k, strideB = batchOf(b) === 1 ? 0 : k * n;
    const tA = options.transA ? 1 : 0, tB = options.transB ? 1 : 0, alpha = options.alpha ?? 1;
    const rows = batch * m;
    if (!tA && (batch === 1 || (strideB === 0 && strideA !== 0)) && (a.dtype !== 'float32' || out.dtype !== 'float32') && rows * Math.max(k, n) > 2 * ELEMENTWISE_BLOCK
      && out.offset === 0 && (out.dtype === 'float32' || formatOf(out.dtype).bits >= 8)) {
      // Rows of op(A) and of the output are independent: a staged A and output run in bands of rows,
      // so their float32 staging copies hold one band each (B, the weight, is staged once). The
      // same sums in the same order: the results are the same bit for bit.
      return this.matmulInRowBands(a, b, out, rows, k, n, options);
    }
    // bfloat16 operands are read in place by the kernel's packing (exactly widened): no float32 copy.
    const direct = [a, b].map((t) => (this.bf16InPlace(t) ? this.ptr(t.storage) + t.offset * 2 : 0));
    this.run([direct[0] ? null : a, direct[1] ? null : b], out, ([pa, pb], o) => this.matmulF32(
      direct[0] || pa, direct[1] || pb, o, batch, m, k, n, tA, tB, alpha, strideA, strideB, (direct[0] ? 1 : 0) | (direct[1] ? 2 : 0) | (acc ? 4 : 0),
    ));
  }

  /** Whether the matmul kernel reads t as it is stored (a contiguous bfloat16 tensor). */
  private bf16InPlace(t: TensorRef): boolean {
    return t.dtype === 'bfloat16' && !t.strides;
  }

  /** matmul of A [rows, k] (contiguous, not transposed) by a shared B, in bands of rows (see matmul). */
  private matmulInRowBands(a: TensorRef, b: TensorRef, out: TensorRef, rows: number, k: number, n: number, options: MatmulOptions): void {
    for (const t of [a, b, out]) this.ptr(t.storage); // every operand checked before anything is staged
    const band = Math.max(16, Math.floor((2 * ELEMENTWISE_BLOCK) / Math.max(k, n) / 16) * 16); // 512 KiB of float32: B is packed once a band
    const bShape = b.shape.slice(-2), direct = out.dtype === 'float32', width = direct ? 4 : formatOf(out.dtype).codeBytes;
    const aIn = this.bf16InPlace(a), bIn = this.bf16InPlace(b), bf16 = (aIn ? 1 : 0) | (bIn ? 2 : 0) | (options.accumulate ? 4 : 0);
    const sb = bIn ? { ptr: this.ptr(b.storage) + b.offset * 2, release() {} } : this.stageIn({ storage: b.storage, dtype: b.dtype, offset: b.offset, shape: bShape });
    try {
      for (let r = 0; r < rows; r += band) {
        const len = Math.min(band, rows - r);
        const sa = aIn ? { ptr: this.ptr(a.storage) + (a.offset + r * k) * 2, release() {} } : this.stageIn({ storage: a.storage, dtype: a.dtype, offset: a.offset + r * k, shape: [len, k] });
        let o: { storage: Storage; ptr: number } | undefined;
        try {
          if (!direct) o = this.temp(len * n * 4, 'stage-out');
          this.matmulF32(sa.ptr, sb.ptr, o ? o.ptr : this.ptr(out.storage) + r * n * 4, 1, len, k, n, 0, options.transB ? 1 : 0, options.alpha ?? 1, 0, 0, bf16);
          if (o) this.encodeInto(o.ptr, { storage: out.storage, dtype: out.dtype, offset: 0, shape: [len, n] }, {}, r * n * width);
        } finally {
          if (o) this.free(o.storage);
          sa.release();
        }
      }
    } finally {
      sb.release();
    }
  }

  /** out = op(A) op(B) on float32 pointers (the kernel of matmul, threaded as matmul). */
  // One matrix with enough rows: bands of rows sharing one packing of op(B) (below). Otherwise whole
  // matrices per part when the batch is large enough, else bands of rows (or columns) of each
  // (bands of at least 48 rows or 64 columns: each band packs its own copy of op(B) or op(A)).
  // bf16: which operands are bfloat16 read in place (1: A, 2: B); 4: add the product to out.
  private matmulF32(pa: number, pb: number, o: number, batch: number, m: number, k: number, n: number, tA: number, tB: number, alpha: number, strideA: number, strideB: number, bf16 = 0): void {
    // A unit of work is 16 multiply-adds: splitting starts at 1M (measured on 2 cores: 512K took
    // 1.5x longer on two threads than on one, 2M 1.1x less time, 5.8M 1.3-1.45x less).
    const lanes = this.lanes(Math.ceil((batch * m * n * Math.max(k, 1)) / 16));
    if (lanes <= 1 && bf16 === 0) return kernelExports().matmulF32(pa, pb, o, batch, m, k, n, tA !== 0, tB !== 0, alpha, strideA, strideB);
    const ex = kernelExports(), packedFloats = ex.packedBFloats(k, n);
    if (lanes > 1 && batch === 1 && Math.ceil(m / 48) >= lanes && packedFloats * 4 <= SHARED_PACK_BYTES) {
      // One matrix in bands of rows: op(B) is packed once and every band reads those panels (instead
      // of each band packing all of B again: a tenth of the time at the training step's shapes). The
      // same panels: the same sums. Up to 32K floats the calling thread packs, above that the threads
      // split the columns (at 64K-180K floats, 1024 x 256 x 256 and 1024 x 256 x 704, the two-thread
      // matmul took 0.9x the time with the caller packing alone).
      this.withScratch(packedFloats * 4, (packed) => {
        const parts = packedFloats <= 1 << 15 ? 1 : this.pieces(lanes, Math.ceil(n / 64));
        this.runParts(splitRange(n, parts, 8).map(([j0, j1]) => ({
          fn: 'packBWhole', args: [pb, k, n, tB, bf16 & 2, packed, j0, j1],
        })));
        const bytes = (ex.matmulPackedScratchBytes(m, k) + 15) & ~15;
        this.withThreadScratch(bytes, (scratch) => this.runParts(splitRange(m, this.pieces(lanes, Math.ceil(m / 48)), 4).map(([i0, i1]) => ({
          fn: 'matmulF32PackedPart', args: [pa, packed, o, m, k, n, tA, alpha, i0, i1, bf16 & 5, scratch],
        })), bytes));
      });
      return;
    }
    const [by, ranges] = batch >= lanes ? ['batch', splitRange(batch, this.pieces(lanes, batch))] as const
      : m >= n ? ['rows', splitRange(m, this.pieces(lanes, Math.ceil(m / 48)), 4)] as const
        : ['cols', splitRange(n, this.pieces(lanes, Math.ceil(n / 64)), 8)] as const;
    const bytes = (kernelExports().matmulScratchBytes(m, k, n) + 15) & ~15;
    this.withThreadScratch(bytes, (scratch) => this.runParts(ranges.map(([s, e]) => {
      const [b0, b1, i0, i1, j0, j1] = by === 'batch' ? [s, e, 0, m, 0, n] : by === 'rows' ? [0, batch, s, e, 0, n] : [0, batch, 0, m, s, e];
      return { fn: 'matmulF32Part', args: [pa, pb, o, m, k, n, tA, tB, alpha, strideA, strideB, b0, b1, i0, i1, j0, j1, bf16, scratch] };
    }), bytes));
  }


  // ---- helpers ------------------------------------------------------------------------------

  /**
   * Float32 views of `inputs` (null gives pointer 0). Every operand is checked (live, ours) before
   * anything is staged, and what was staged is released if a later one fails.
   */
  stageAll(inputs: readonly (TensorRef | null)[]): Staged[] {
    for (const t of inputs) if (t) this.ptr(t.storage);
    const staged: Staged[] = [];
    try {
      for (const t of inputs) staged.push(t ? this.stageIn(t) : { ptr: 0, release() {} });
    } catch (e) {
      for (const s of staged) s.release();
      throw e;
    }
    return staged;
  }

  /** Stages inputs to float32, runs fn(inputPtrs, outPtr, n), rounds into out, frees staging (also on error). */
  run(inputs: readonly (TensorRef | null)[], out: TensorRef, fn: (ptrs: number[], out: number, n: number) => void): void {
    this.ptr(out.storage); // checked before anything is staged
    const staged = this.stageAll(inputs);
    let o: ReturnType<WasmBackend['stageOut']> | undefined;
    try {
      o = this.stageOut(out);
      fn(staged.map((s) => s.ptr), o.ptr, numel(out.shape));
      o.commit();
    } finally {
      o?.release();
      for (const s of staged) s.release();
    }
  }

  /**
   * As run, for an elementwise kernel (every input has out's shape, element i of the output depends
   * on element i of each input only): when something must be staged, the call runs in blocks of
   * ELEMENTWISE_BLOCK elements, so the float32 staging copies hold one block each instead of whole
   * tensors (a bfloat16 multiply of 2.75 MiB float32 operands stages 3 x 256 KiB, not 3 x 2.75 MiB).
   * Results are the same bit for bit. Outputs in packed sub-byte formats run whole.
   */
  runElementwise(inputs: readonly TensorRef[], out: TensorRef, fn: (ptrs: number[], out: number, n: number) => void): void {
    const n = numel(out.shape);
    const staged = out.dtype !== 'float32' || inputs.some((t) => t.dtype !== 'float32');
    const width = out.dtype === 'float32' || out.dtype === 'int32' ? 4 : out.dtype === 'uint8' ? 0 : formatOf(out.dtype).bits >= 8 ? formatOf(out.dtype).codeBytes : 0;
    if (!staged || n <= ELEMENTWISE_BLOCK || width === 0 || out.offset !== 0) return this.run(inputs, out, fn);
    this.ptr(out.storage);
    for (const t of inputs) this.ptr(t.storage); // every operand checked before anything is staged
    for (let s = 0; s < n; s += ELEMENTWISE_BLOCK) {
      const len = Math.min(ELEMENTWISE_BLOCK, n - s), shape = [len];
      const part: TensorRef = { storage: out.storage, dtype: out.dtype, shape, offset: 0 };
      const staged = this.stageAll(inputs.map((t): TensorRef => ({ storage: t.storage, dtype: t.dtype, shape, offset: t.offset + s })));
      let o: ReturnType<WasmBackend['stageOut']> | undefined;
      try {
        o = this.stageOut(part);
        fn(staged.map((x) => x.ptr), o.ptr === this.ptr(out.storage) ? o.ptr + s * 4 : o.ptr, len);
        if (o.ptr !== this.ptr(out.storage)) {
          this.encodeInto(o.ptr, part, {}, s * width);
          o.release();
        }
      } finally {
        o?.release();
        for (const x of staged) x.release();
      }
    }
  }

  /** Writes i32 metadata to scratch for the duration of fn. */
  withMeta(values: readonly number[], fn: (ptr: number) => void): void {
    const t = this.temp(values.length * 4, 'meta');
    new Int32Array(kernelExports().memory.buffer, t.ptr, values.length).set(values);
    try {
      fn(t.ptr);
    } finally {
      this.free(t.storage);
    }
  }

  private own(storage: Storage): WasmStorage {
    if (!(storage instanceof WasmStorage) || storage.backend !== this) throw new InvalidArgumentError('storage belongs to another backend');
    if (storage.freed) throw new InvalidArgumentError(`storage ${storage.label || ''} used after it was freed`);
    return storage;
  }

  private check(): void {
    if (this.destroyed) throw new MemfitError('BACKEND_DESTROYED', 'the wasm backend was destroyed');
  }
}

registerFamilies(WasmBackend, wasmFamilies);
