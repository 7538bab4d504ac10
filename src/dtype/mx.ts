import { InvalidArgumentError, ShapeMismatchError } from '../errors.js';
import { decode, encode } from './encode.js';
import { finfo } from './finfo.js';
import { formatOf, type DType, type DTypeName } from './formats.js';
import { wasm } from './wasm.js';

/** Element formats of the OCP MX v1.0 concrete formats: MXFP8 (E4M3, E5M2), MXFP6 (E3M2, E2M3), MXFP4 (E2M1). */
export const MX_ELEMENT_DTYPES: readonly DType[] = ['float8_e4m3fn', 'float8_e5m2', 'float6_e3m2fn', 'float6_e2m3fn', 'float4_e2m1fn'];

/** An MX-quantised vector: one E8M0 scale per block of `blockSize` elements, element codes unpacked one a byte. */
export interface MxTensor {
  readonly elemDtype: DType;
  readonly blockSize: number;
  readonly length: number;
  /** float8_e8m0fnu codes, ceil(length / blockSize) of them; 0xFF (NaN) marks a block that held NaN or ±inf. */
  readonly scales: Uint8Array;
  /** Element codes (use pack() to store fp4/fp6 densely). */
  readonly codes: Uint8Array;
}

function mxElement(elemDtype: string): DType {
  const f = formatOf(elemDtype);
  if (!MX_ELEMENT_DTYPES.includes(f.name)) {
    throw new InvalidArgumentError(`${f.name} is not an MX element type; use one of ${MX_ELEMENT_DTYPES.join(', ')}`);
  }
  return f.name;
}

function checkBlockSize(blockSize: number): void {
  if (!Number.isSafeInteger(blockSize) || blockSize < 1) throw new InvalidArgumentError(`blockSize must be a positive integer, got ${blockSize}`);
}

/**
 * OCP MX quantisation (spec v1.0, 6.3): per block, X = 2^(floor(log2(amax)) - emax_elem) as an E8M0
 * code, elements round-to-nearest-even(V / X) with normals clamped to the element max. All-zero
 * blocks get the smallest scale 2^-127; a block holding NaN or ±inf gets the NaN scale.
 */
export function mxQuantize(values: Float32Array | readonly number[], elemDtype: DTypeName, options: { blockSize?: number } = {}): MxTensor {
  const dtype = mxElement(elemDtype);
  const blockSize = options.blockSize ?? 32;
  checkBlockSize(blockSize);
  const src = values instanceof Float32Array ? values : Float32Array.from(values);
  const n = src.length;
  const nScales = Math.ceil(n / blockSize);
  const w = wasm();
  const pSrc = w.alloc(Math.max(n * 4, 16));
  const pScales = w.alloc(Math.max(nScales, 16));
  const pCodes = w.alloc(Math.max(n, 16));
  try {
    new Float32Array(w.memory.buffer, pSrc, n).set(src);
    w.mxQuantize(formatOf(dtype).id, pSrc, pScales, pCodes, n, blockSize);
    return {
      elemDtype: dtype, blockSize, length: n,
      scales: new Uint8Array(w.memory.buffer, pScales, nScales).slice(),
      codes: new Uint8Array(w.memory.buffer, pCodes, n).slice(),
    };
  } finally {
    w.free(pSrc);
    w.free(pScales);
    w.free(pCodes);
  }
}

/** Inverse of mxQuantize: element value times 2^(scale - 127), rounded once to float32; NaN scale -> NaN block. */
export function mxDequantize(mx: MxTensor): Float32Array {
  const dtype = mxElement(mx.elemDtype);
  checkBlockSize(mx.blockSize);
  const n = mx.length;
  if (mx.codes.length !== n) throw new ShapeMismatchError(`MX tensor has ${mx.codes.length} element codes, expected length ${n}`);
  const nScales = Math.ceil(n / mx.blockSize);
  if (mx.scales.length !== nScales) throw new ShapeMismatchError(`MX tensor has ${mx.scales.length} scales, expected ceil(${n} / ${mx.blockSize}) = ${nScales}`);
  const w = wasm();
  const pScales = w.alloc(Math.max(nScales, 16));
  const pCodes = w.alloc(Math.max(n, 16));
  const pDst = w.alloc(Math.max(n * 4, 16));
  try {
    new Uint8Array(w.memory.buffer, pScales, nScales).set(mx.scales);
    new Uint8Array(w.memory.buffer, pCodes, n).set(mx.codes);
    const limit = 2 ** formatOf(dtype).bits - 1;
    const bad = w.firstCodeAbove(pCodes, n, limit);
    if (bad >= 0) throw new InvalidArgumentError(`code ${mx.codes[bad]} at index ${bad} is not a valid ${dtype} code`);
    w.mxDequantize(formatOf(dtype).id, pScales, pCodes, pDst, n, mx.blockSize);
    return new Float32Array(w.memory.buffer, pDst, n).slice();
  } finally {
    w.free(pScales);
    w.free(pCodes);
    w.free(pDst);
  }
}

/** Largest |x| (NaN if any element is NaN), as torch.amax(abs(x)). */
export function amax(values: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < values.length; i++) {
    const a = Math.abs(values[i]);
    if (a > m) m = a;
    else if (a !== a) return NaN;
  }
  return m;
}

/**
 * Per-tensor scale for fp8 training: scale = max(dtype) / amax / 2^margin, so that amax maps to the
 * format's max (x * scale is what gets encoded; divide by scale to dequantise). amax 0 gives 1.
 */
export function scaleFromAmax(amaxValue: number, dtype: DTypeName, options: { margin?: number } = {}): number {
  if (!(amaxValue >= 0)) throw new InvalidArgumentError(`amax must be a non-negative number, got ${amaxValue}`);
  if (amaxValue === 0 || !Number.isFinite(amaxValue)) return 1;
  return finfo(dtype).max / amaxValue / 2 ** (options.margin ?? 0);
}

/** A per-tensor scaled quantisation: codes of x * scale, and the scale. */
export interface PerTensorQuantized {
  readonly dtype: DType;
  readonly codes: Uint8Array | Uint16Array | Uint32Array;
  readonly scale: number;
}

/** Quantises with one scale from the tensor's amax; saturating by default, as fp8 training recipes do. */
export function quantizePerTensor(values: Float32Array | readonly number[], dtype: DTypeName, options: { margin?: number; saturate?: boolean } = {}): PerTensorQuantized {
  const scale = scaleFromAmax(amax(values), dtype, options);
  const scaled = Float64Array.from(values as ArrayLike<number>, (v) => v * scale);
  return { dtype: formatOf(dtype).name, scale, codes: encode(scaled, dtype, { saturate: options.saturate ?? true }) };
}

/** Inverse of quantizePerTensor: decode(codes) / scale, rounded once to float32. */
export function dequantizePerTensor(q: PerTensorQuantized): Float32Array {
  const v = decode(q.codes, q.dtype);
  for (let i = 0; i < v.length; i++) v[i] = v[i] / q.scale;
  return v;
}
