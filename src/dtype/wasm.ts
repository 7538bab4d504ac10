// Loads the WebAssembly core the same way in Node and in a browser: the module is embedded as
// base64 (build/wasm_module.ts) and compiled synchronously on first use (it is ~20 KB, well under
// the browsers' main-thread limit), so no API needs `await`.
import { wasmBase64 } from '../../build/wasm_module.js';
import { humanBytes, InvalidArgumentError, OutOfMemoryError } from '../errors.js';

/** The raw exports of build/memfit.wasm. Pointers are byte offsets into `memory`. */
export interface WasmExports {
  readonly memory: WebAssembly.Memory;
  alloc(bytes: number): number;
  free(ptr: number): void;
  initTables(): void;
  encodeF32(fmt: number, src: number, dst: number, n: number, mode: number, saturate: number, seed: bigint, offset: bigint): void;
  encodeF64(fmt: number, src: number, dst: number, n: number, mode: number, saturate: number, seed: bigint, offset: bigint): void;
  decode(fmt: number, src: number, dst: number, n: number): void;
  firstCodeAbove(src: number, n: number, limit: number): number;
  pack(bits: number, src: number, dst: number, n: number): void;
  unpack(bits: number, src: number, dst: number, n: number): void;
  mxQuantize(fmt: number, src: number, scales: number, codes: number, n: number, blockSize: number): void;
  mxDequantize(fmt: number, scales: number, codes: number, dst: number, n: number, blockSize: number): void;
  scaledMatmul(
    fmtA: number, fmtB: number, a: number, b: number, m: number, k: number, n: number,
    scaleA: number, scaleAKind: number, scaleB: number, scaleBKind: number, blockSize: number,
    accF32: number, outFmt: number, dst: number,
  ): void;
}

let exportsCache: WasmExports | undefined;

function base64Bytes(b64: string): Uint8Array<ArrayBuffer> {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The instantiated module (created on first call). */
export function wasm(): WasmExports {
  if (exportsCache) return exportsCache;
  const module = new WebAssembly.Module(base64Bytes(wasmBase64));
  const instance = new WebAssembly.Instance(module, {
    env: {
      abort(_msg: number, _file: number, line: number, column: number): never {
        throw new Error(`memfit WebAssembly abort at ${line}:${column}`);
      },
    },
  });
  exportsCache = instance.exports as unknown as WasmExports;
  exportsCache.initTables();
  return exportsCache;
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

/** Frees a block from wasmAlloc (0 is ignored). */
export function wasmFree(ptr: number): void {
  if (ptr) wasm().free(ptr);
}

/** Every ArrayBuffer the module's memory has had (a view of an old one is detached: the memory grew since). */
const seenBuffers = new WeakSet<ArrayBufferLike>();

/** The module's memory buffer now (remembered, so that views of it can later be told stale). */
export function memoryBuffer(): ArrayBuffer {
  const b = wasm().memory.buffer;
  seenBuffers.add(b);
  return b;
}

/** True when `a` views WebAssembly memory as it was before it grew (its buffer is detached). */
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
