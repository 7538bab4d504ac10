// The WebAssembly module's exports. Pointers are byte offsets into the exported memory; the
// TypeScript side (src/dtype/wasm.ts) owns the layout and never calls per element.
export { encodeF32, encodeF64, decode, initTables } from "./convert";
export { firstCodeAbove, pack, unpack } from "./pack";
export { mxQuantize, mxDequantize } from "./mx";
export { scaledMatmul } from "./scaled_mm";

export { alloc, free } from "./alloc";
export { unpackRange } from "./pack";
export * from "./kernels/elementwise";
export * from "./kernels/matmul";
export * from "./kernels/nn";
export * from "./kernels/optim";
export * from "./kernels/attention";
export * from "./kernels/vision";
export * from "./kernels/optim8bit";
export { simdExpF32 } from "./kernels/simd_math";
