import { describeValue, InvalidArgumentError } from '../errors.js';
import { formatOf, type DType, type DTypeName } from './formats.js';
import { isStaleMemoryView, memoryBuffer, view, wasmAlloc, wasmFree } from './wasm.js';

/** Element kinds a WasmArray can hold: float64 input, or any dtype's unpacked codes (float32 as Float32Array). */
export type WasmArrayKind = 'float64' | DTypeName;

/** Live arrays, to tell a view of one from a view of freed (or never allocated) memory. */
const live = new Set<WasmArray>();

/**
 * An array that lives in the WebAssembly module's memory, so encode/decode read and write it in
 * place with no copy between JavaScript and WebAssembly. `array` returns a current typed-array view
 * (views are re-created when the module's memory grows); call `free()` when done. A freed array is
 * refused by every function (its memory may already hold another array).
 */
export class WasmArray {
  /** What it holds: 'float64' values, or the codes of a dtype (canonical name; 'float32' holds float32 values). */
  readonly kind: 'float64' | DType;
  readonly length: number;
  readonly bytesPerElement: 1 | 2 | 4 | 8;
  readonly float: boolean;
  private ptrValue: number;

  constructor(kind: WasmArrayKind, length: number) {
    if (!Number.isSafeInteger(length) || length < 0) throw new InvalidArgumentError(`WasmArray length must be a non-negative integer, got ${describeValue(length)}`);
    if (kind === 'float64') {
      this.kind = 'float64';
      this.bytesPerElement = 8;
      this.float = true;
    } else {
      const f = formatOf(kind);
      this.kind = f.name;
      this.bytesPerElement = f.codeBytes;
      this.float = f.name === 'float32';
    }
    this.length = length;
    // Sizes are checked against what WebAssembly memory can hold before anything is allocated.
    this.ptrValue = wasmAlloc(Math.max(length * this.bytesPerElement, 16), `a WasmArray of ${length} ${kind} elements`);
    live.add(this);
  }

  /** Byte offset in WebAssembly memory (0 after free()). */
  get ptr(): number {
    return this.ptrValue;
  }

  /** Bytes the elements take. */
  get byteLength(): number {
    return this.length * this.bytesPerElement;
  }

  /** True after free(). */
  get freed(): boolean {
    return this.ptrValue === 0;
  }

  /** The pointer, or an InvalidArgumentError naming `what` when the array was freed. */
  livePtr(what = 'WasmArray'): number {
    if (!this.ptrValue) throw new InvalidArgumentError(`${what} is a WasmArray that was freed (free() returned its memory; allocate a new one)`);
    return this.ptrValue;
  }

  /** A typed-array view of the data: Float32Array / Float64Array for float kinds, else the code array type. */
  get array(): Float32Array | Float64Array | Uint8Array | Uint16Array | Uint32Array {
    if (!this.ptrValue) throw new InvalidArgumentError('WasmArray used after free()');
    return view(this.ptrValue, this.length, this.bytesPerElement, this.float);
  }

  /** Returns the memory to the module's allocator (a second call does nothing). */
  free(): void {
    if (this.ptrValue) wasmFree(this.ptrValue);
    this.ptrValue = 0;
    live.delete(this);
  }
}

/** Allocates a WasmArray of `length` elements (float32 values, float64 values, or codes of a dtype). */
export function allocate(kind: WasmArrayKind, length: number): WasmArray {
  return new WasmArray(kind, length);
}

/**
 * Checks a typed-array argument `what` that may view WebAssembly memory (a WasmArray's `.array`):
 * returns true when it is a view of a live WasmArray (the caller may use `a.byteOffset` as a
 * pointer, read before anything is allocated), false for ordinary memory. A view taken before the
 * memory grew (out of date) or of memory no live WasmArray holds (freed) is an InvalidArgumentError.
 */
export function isWasmView(a: ArrayBufferView, what: string): boolean {
  if (isStaleMemoryView(a)) {
    throw new InvalidArgumentError(`${what} is a view of WebAssembly memory taken before the memory grew, so its buffer is out of date (detached, or a shorter view of shared memory): take wasmArray.array again after allocating, or pass the WasmArray itself`);
  }
  if (a.buffer !== memoryBuffer()) return false;
  const start = a.byteOffset, end = start + a.byteLength;
  for (const arr of live) if (start >= arr.ptr && end <= arr.ptr + arr.byteLength) return true;
  throw new InvalidArgumentError(`${what} is a view of WebAssembly memory that no live WasmArray holds (was its WasmArray freed?)`);
}

/** `a` itself, or a copy when it views WebAssembly memory (which any allocation may move); checks it as isWasmView does. */
export function hostCopy<T extends ArrayBufferView & { slice(): T }>(a: T, what: string): T {
  return isWasmView(a, what) ? a.slice() : a;
}
