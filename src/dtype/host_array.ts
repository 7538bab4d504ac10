import { InvalidArgumentError } from '../errors.js';
import { formatOf } from './formats.js';
import { view, wasm } from './wasm.js';

/** Element kinds a WasmArray can hold: float64 input, or any dtype's unpacked codes (float32 as Float32Array). */
export type WasmArrayKind = 'float64' | string;

/**
 * An array that lives in the WebAssembly module's memory, so encode/decode read and write it in
 * place with no copy between JavaScript and WebAssembly. `array` returns a current typed-array view
 * (views are re-created when the module's memory grows); call `free()` when done.
 */
export class WasmArray {
  readonly length: number;
  readonly bytesPerElement: 1 | 2 | 4 | 8;
  readonly float: boolean;
  private ptrValue: number;

  constructor(kind: WasmArrayKind, length: number) {
    if (!Number.isSafeInteger(length) || length < 0) throw new InvalidArgumentError(`WasmArray length must be a non-negative integer, got ${length}`);
    if (kind === 'float64') {
      this.bytesPerElement = 8;
      this.float = true;
    } else {
      const f = formatOf(kind);
      this.bytesPerElement = f.codeBytes;
      this.float = f.name === 'float32';
    }
    this.length = length;
    this.ptrValue = wasm().alloc(Math.max(length * this.bytesPerElement, 16));
  }

  /** Byte offset in WebAssembly memory (0 after free()). */
  get ptr(): number {
    return this.ptrValue;
  }

  /** A typed-array view of the data: Float32Array / Float64Array for float kinds, else the code array type. */
  get array(): Float32Array | Float64Array | Uint8Array | Uint16Array | Uint32Array {
    if (!this.ptrValue) throw new InvalidArgumentError('WasmArray used after free()');
    return view(this.ptrValue, this.length, this.bytesPerElement, this.float);
  }

  /** Returns the memory to the module's allocator. */
  free(): void {
    if (this.ptrValue) wasm().free(this.ptrValue);
    this.ptrValue = 0;
  }
}

/** Allocates a WasmArray of `length` elements (float32 values, float64 values, or codes of a dtype). */
export function allocate(kind: WasmArrayKind, length: number): WasmArray {
  return new WasmArray(kind, length);
}
