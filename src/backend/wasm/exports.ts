// The module's raw kernel exports, typed: the wasm backend and its kernel families (their own
// module, so that the families need not import the backend, which imports them).
import { wasm } from '../../dtype/wasm.js';

/** Raw kernel exports of build/memfit.wasm used here (the dtype layer types the format ones). */
export interface WasmKernelExports {
  readonly memory: WebAssembly.Memory;
  alloc(bytes: number): number;
  free(ptr: number): void;
  encodeF32(fmt: number, src: number, dst: number, n: number, mode: number, saturate: number, seed: bigint, offset: bigint): void;
  decode(fmt: number, src: number, dst: number, n: number): void;
  pack(bits: number, src: number, dst: number, n: number): void;
  unpackRange(bits: number, src: number, start: number, dst: number, n: number): void;
  unaryF32(op: number, x: number, out: number, n: number, alpha: number): void;
  binaryF32(op: number, a: number, b: number, out: number, n: number, meta: number): void;
  softmaxF32(x: number, out: number, rows: number, cols: number, log: number): void;
  i32ToF32(x: number, out: number, n: number): void;
  f32ToI32(x: number, out: number, n: number): void;
  transposeCodes(width: number, src: number, dst: number, batch: number, rows: number, cols: number): void;
  matmulF32(a: number, b: number, out: number, batch: number, m: number, k: number, n: number, transA: number, transB: number, alpha: number, strideA: number, strideB: number): void;
  matmulScratchBytes(m: number, k: number, n: number): number;
}


export function kernelExports(): WasmKernelExports {
  return wasm() as unknown as WasmKernelExports;
}
