// The WebAssembly module's exports. Pointers are byte offsets into the exported memory; the
// TypeScript side (src/dtype/wasm.ts) owns the layout and never calls per element.
export { encodeF32, encodeF64, decode, initTables } from "./convert";
export { firstCodeAbove, pack, unpack } from "./pack";
export { mxQuantize, mxDequantize } from "./mx";
export { scaledMatmul } from "./scaled_mm";

/** Allocates `size` bytes (16-byte aligned) from the module's heap. */
export function alloc(size: usize): usize {
  return heap.alloc(size);
}

/** Frees a block returned by alloc. */
export function free(ptr: usize): void {
  heap.free(ptr);
}
export { unpackRange } from "./pack";
export * from "./kernels/elementwise";
export * from "./kernels/matmul";
export * from "./kernels/nn";
export * from "./kernels/optim";
export * from "./kernels/attention";
export * from "./kernels/vision";
