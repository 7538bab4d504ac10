// memfit: train neural networks in less memory. Public API.
export { MemfitError, UnknownDTypeError, InvalidArgumentError, ShapeMismatchError } from './errors.js';
export { FORMATS, DTYPE_NAMES, formatOf, canonicalDType, codeValue, maxFiniteCode } from './dtype/formats.js';
export type { DType, FormatTraits, NanEncoding } from './dtype/formats.js';
export { finfo, formatTable } from './dtype/finfo.js';
export type { FInfo } from './dtype/finfo.js';
export { encode, decode } from './dtype/encode.js';
export type { Rounding, EncodeOptions, EncodeInput, DecodeInput } from './dtype/encode.js';
export { WasmArray, allocate } from './dtype/host_array.js';
export type { WasmArrayKind } from './dtype/host_array.js';
export type { CodeArray } from './dtype/wasm.js';
export { pack, unpack, packedByteLength } from './dtype/pack.js';
export { mxQuantize, mxDequantize, MX_ELEMENT_DTYPES, amax, scaleFromAmax, quantizePerTensor, dequantizePerTensor } from './dtype/mx.js';
export type { MxTensor, PerTensorQuantized } from './dtype/mx.js';
export { scaledMatmul } from './dtype/scaled_mm.js';
export type { ScaledMatmulOptions, ScaledMatmulResult, MatmulScale } from './dtype/scaled_mm.js';
