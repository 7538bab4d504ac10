// Loads the WebAssembly core the same way in Node and in a browser: the module is embedded as
// base64 (build/wasm_module.ts) and compiled synchronously on first use (it is ~50 KB, well under
// the browsers' main-thread limit), so no API needs `await`. Where shared memory is possible (Node;
// a cross-origin isolated page) the build for threads is loaded: the same code on a shared,
// imported memory, so that worker threads can run kernels on the same tensors. Elsewhere the build
// with its own memory is, and the wasm backend runs on one thread. Where the engine validates
// relaxed SIMD (Node 22+, Chrome/Edge 114+; Node 20 only with --experimental-wasm-relaxed-simd), the
// relaxed-SIMD twin of that build is loaded (matmul with fused multiply-add); MEMFIT_WASM_SIMD=plain
// (an environment variable, Node) forces the plain SIMD build.
import { wasmBase64, wasmRelaxedBase64, wasmThreadsBase64, wasmThreadsRelaxedBase64 } from '../../build/wasm_module.js';
import { instantiate, type MemfitWasm } from '../../build/wasm_bindings.js';
import { describeValue, humanBytes, InvalidArgumentError, OutOfMemoryError } from '../errors.js';

/** Every export of the module, typed by the AssemblyScript compiler (build/wasm_bindings.ts). Pointers are byte offsets into `memory`. */
export type WasmExports = MemfitWasm;

let exportsCache: WasmExports | undefined;
let sharedMemory: WebAssembly.Memory | undefined;
let moduleBase64 = '';
let build: WasmBuild | undefined;

/** Which build of the module runs. */
export interface WasmBuild {
  /** Shared, imported memory: worker threads possible. */
  readonly sharedMemory: boolean;
  /** Relaxed SIMD (fused multiply-add in matmul). */
  readonly relaxedSimd: boolean;
}

/** The build loaded (loading it if needed). */
export function wasmBuild(): WasmBuild {
  wasm();
  return build!;
}

let simdChoice: 'auto' | 'plain' | undefined;

/**
 * Chooses the build before the module loads: 'auto' (the default: relaxed SIMD where the engine
 * validates it) or 'plain' (plain SIMD everywhere: matmul results bit-identical on every engine, as
 * Node 20 computes them). In Node, MEMFIT_WASM_SIMD=plain does the same. Once the module has loaded,
 * asking for the other build is an InvalidArgumentError.
 */
export function setWasmSimd(choice: 'auto' | 'plain'): void {
  if (choice !== 'auto' && choice !== 'plain') throw new InvalidArgumentError(`setWasmSimd takes 'auto' or 'plain', got ${JSON.stringify(choice)}`);
  if (build && build.relaxedSimd && choice === 'plain') throw new InvalidArgumentError("setWasmSimd('plain'): the relaxed-SIMD module has already loaded (call it before any tensor or backend is made)");
  simdChoice = choice;
}

function relaxedSimdWanted(): boolean {
  const env = typeof process !== 'undefined' ? process.env?.MEMFIT_WASM_SIMD : undefined;
  return (simdChoice ?? (env === 'plain' ? 'plain' : 'auto')) === 'auto';
}

/** Initial pages of the memory (as asconfig.json's initialMemory) and the most a wasm32 memory may have. */
const INITIAL_PAGES = 64, MAX_PAGES = 65536;

/** True where a shared WebAssembly.Memory can be made and sent to workers (Node; a cross-origin isolated page). */
export function sharedMemoryPossible(): boolean {
  const g = globalThis as { crossOriginIsolated?: boolean };
  return typeof SharedArrayBuffer === 'function' && g.crossOriginIsolated !== false;
}

function base64Bytes(b64: string): Uint8Array<ArrayBuffer> {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The instantiated module (created on first call). */
export function wasm(): WasmExports {
  if (exportsCache) return exportsCache;
  let memory: WebAssembly.Memory | undefined;
  if (sharedMemoryPossible()) {
    try {
      memory = new WebAssembly.Memory({ initial: INITIAL_PAGES, maximum: MAX_PAGES, shared: true });
    } catch {
      memory = undefined; // an engine without shared memory: the one-thread build
    }
  }
  const relaxed = relaxedSimdWanted() && WebAssembly.validate(base64Bytes(memory ? wasmThreadsRelaxedBase64 : wasmRelaxedBase64));
  moduleBase64 = memory ? (relaxed ? wasmThreadsRelaxedBase64 : wasmThreadsBase64) : relaxed ? wasmRelaxedBase64 : wasmBase64;
  build = { sharedMemory: !!memory, relaxedSimd: relaxed };
  const module = new WebAssembly.Module(base64Bytes(moduleBase64));
  exportsCache = instantiate(module, { env: memory ? { memory } : {} });
  sharedMemory = memory;
  exportsCache.initTables();
  return exportsCache;
}

let workerModuleCache: WebAssembly.Module | undefined;

/**
 * For worker threads: the shared memory and the threads build without its data section (an
 * instance's active data segments are written into memory when it is created; a worker's would
 * overwrite the tables initTables filled in and the allocator's region table). Undefined when the
 * module loaded has its own memory (no threads possible).
 */
export function wasmForWorkers(): { module: WebAssembly.Module; memory: WebAssembly.Memory } | undefined {
  wasm();
  if (!sharedMemory) return undefined;
  workerModuleCache ??= new WebAssembly.Module(withoutDataSections(base64Bytes(moduleBase64)));
  return { module: workerModuleCache, memory: sharedMemory };
}

/** A copy of a WebAssembly binary without its data (11) and data count (12) sections. */
export function withoutDataSections(bytes: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  const parts: Uint8Array[] = [bytes.subarray(0, 8)]; // magic and version
  let at = 8;
  while (at < bytes.length) {
    const start = at;
    const id = bytes[at++];
    let size = 0, shift = 0, b: number;
    do {
      b = bytes[at++];
      size += (b & 0x7f) * 2 ** shift;
      shift += 7;
    } while (b & 0x80);
    at += size;
    if (id !== 11 && id !== 12) parts.push(bytes.subarray(start, at));
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

/** A wasm32 memory holds at most 2^32 bytes (65536 pages), static data and heap included. */
export const WASM_MEMORY_LIMIT = 2 ** 32;
/** How an out-of-memory message states the limit. */
export const GROW_LIMIT = 'wasm32 memory holds at most 4 GiB, and the engine may allow less';

/**
 * Allocates `bytes` bytes of WebAssembly memory for `what` (named in errors) and returns the pointer
 * (an unsigned byte offset). Sizes are checked here, before the module sees them (its sizes are 32
 * bits: 4 GiB would wrap around to 0); memory that cannot grow is an OutOfMemoryError, never a
 * wrapped size, a WebAssembly trap or an abort.
 */
export function wasmAlloc(bytes: number, what: string): number {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new InvalidArgumentError(`${what}: a size must be a non-negative integer, got ${bytes}`);
  const w = wasm();
  if (bytes > WASM_MEMORY_LIMIT - 65536) throw new OutOfMemoryError(what, bytes, WASM_MEMORY_LIMIT, `more than a WebAssembly memory can hold (${WASM_MEMORY_LIMIT} bytes, 4 GiB, in all)`);
  let p = 0;
  try {
    p = w.alloc(bytes) >>> 0;
  } catch {
    p = 0; // the heap traps when memory cannot grow; its state is unchanged
  }
  if (p === 0) throw new OutOfMemoryError(what, bytes, WASM_MEMORY_LIMIT, `WebAssembly memory (${humanBytes(w.memory.buffer.byteLength)} now) could not grow to hold it (${GROW_LIMIT})`);
  return p;
}

/**
 * The largest integer a kernel takes as a count, size or dimension that is not bounded by the
 * memory it describes (block sizes, matrix dimensions): 2^31 - 1, so that it fits both the kernels'
 * 32-bit signed and unsigned parameters and their sums with a length (a WebAssembly call keeps only
 * the low 32 bits of a larger number: 2^32 would reach the kernel as 0, 2^32 + 1 as 1).
 */
export const MAX_KERNEL_INT = 2 ** 31 - 1;

/**
 * `v` checked as an integer in [min, MAX_KERNEL_INT] (or `max`) before it is passed to a kernel; an
 * InvalidArgumentError naming `what` otherwise.
 */
export function kernelInt(v: unknown, what: string, min = 0, max = MAX_KERNEL_INT): number {
  if (!(typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max)) {
    const range = max === MAX_KERNEL_INT ? `${min} to ${max} (2^31 - 1)` : `${min} to ${max}`;
    throw new InvalidArgumentError(`${what} must be an integer from ${range}, got ${describeValue(v)}`);
  }
  return v;
}

/**
 * Index of the first of `n` byte codes at `ptr` above `limit`, or -1. The kernel returns an i32:
 * an index of 2^31 or more comes back negative and is read unsigned here, so that it is never
 * taken for "none".
 */
export function firstCodeAbove(ptr: number, n: number, limit: number): number {
  const r = wasm().firstCodeAbove(ptr, n, limit);
  return r === -1 ? -1 : r >>> 0;
}

/** Frees a block from wasmAlloc (0 is ignored). */
export function wasmFree(ptr: number): void {
  if (ptr) wasm().free(ptr);
}

/** Every buffer the module's memory has had (a view of an old one is out of date: the memory grew since; an own memory's old buffer is detached, a shared one's is shorter). */
const seenBuffers = new WeakSet<ArrayBufferLike>();

/** The module's memory buffer now (remembered, so that views of it can later be told stale). */
export function memoryBuffer(): ArrayBuffer {
  const b = wasm().memory.buffer as ArrayBuffer; // a SharedArrayBuffer with the threads build
  seenBuffers.add(b);
  return b;
}

/** True when `a` views WebAssembly memory as it was before it grew (its buffer is detached, or shorter when shared). */
export function isStaleMemoryView(a: ArrayBufferView): boolean {
  return seenBuffers.has(a.buffer) && a.buffer !== wasm().memory.buffer;
}

/** A block of WebAssembly memory that grows on demand and is reused between calls. */
export class Scratch {
  private ptr = 0;
  private size = 0;
  /** Returns a pointer to at least `bytes` bytes (contents undefined). */
  ensure(bytes: number): number {
    if (bytes > this.size) {
      const size = Math.max(bytes, this.size * 2, 1024);
      wasmFree(this.ptr);
      this.ptr = 0;
      this.size = 0;
      this.ptr = wasmAlloc(size, 'scratch memory');
      this.size = size;
    }
    return this.ptr;
  }

  /** Frees the block (a later ensure allocates a new one). */
  free(): void {
    wasmFree(this.ptr);
    this.ptr = 0;
    this.size = 0;
  }
}

/** Typed-array constructors by element size, for views of WebAssembly memory. */
export type CodeArray = Uint8Array | Uint16Array | Uint32Array;

/** A fresh view of `length` elements of `bytesPer` bytes at `ptr` (re-create after any allocation). */
export function view(ptr: number, length: number, bytesPer: 1 | 2 | 4 | 8, float = false): Uint8Array | Uint16Array | Uint32Array | Float32Array | Float64Array {
  const buf = memoryBuffer();
  if (bytesPer === 1) return new Uint8Array(buf, ptr, length);
  if (bytesPer === 2) return new Uint16Array(buf, ptr, length);
  if (bytesPer === 4) return float ? new Float32Array(buf, ptr, length) : new Uint32Array(buf, ptr, length);
  return new Float64Array(buf, ptr, length);
}

/** True when `a` is a view of the module's own memory (then it can be passed without a copy). */
export function inWasmMemory(a: ArrayBufferView): boolean {
  return a.buffer === memoryBuffer();
}
