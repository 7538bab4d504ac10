// The module's exports as the AssemblyScript compiler types them (build/wasm_bindings.ts, generated
// from the bindings asc emits): the wasm backend and its kernel families import this module, not
// the backend, which imports them.
import { wasm } from '../../dtype/wasm.js';
import type { MemfitWasm } from '../../../build/wasm_bindings.js';

export type { MemfitWasm, MemfitWasmFunction } from '../../../build/wasm_bindings.js';

/** The module's exports, typed by the compiler. */
export function kernelExports(): MemfitWasm {
  return wasm();
}
