import { checkOptions, describeValue, InvalidArgumentError, ShapeMismatchError } from '../errors.js';
import { decode, encode } from './encode.js';
import { finfo } from './finfo.js';
import { formatOf, type DType, type DTypeName } from './formats.js';
import { hostCopy } from './host_array.js';
import { firstCodeAbove, kernelInt, memoryBuffer, wasm, wasmAlloc, wasmFree } from './wasm.js';

/**
 * Numbers of `values` (a Float32Array, a Float64Array or an array of numbers), checked: an
 * InvalidArgumentError naming `what` otherwise. Integer typed arrays are refused, as encode() refuses
 * them (a Uint16Array of float16 bit patterns would be read as integers).
 */
function numbers(values: unknown, what: string): ArrayLike<number> {
  if (values instanceof Float32Array || values instanceof Float64Array) return hostCopy(values, what);
  if (!Array.isArray(values)) throw new InvalidArgumentError(`${what} must be a Float32Array, a Float64Array or an array of numbers, got ${describeValue(values)}`);
  values.forEach((v: unknown, i) => {
    if (typeof v !== 'number') throw new InvalidArgumentError(`${what}[${i}] is not a number: ${describeValue(v)}`);
  });
  return values as number[];
}

/**
 * `values` as float32 (see numbers()): MX quantises float32 values, so float64 ones are rounded to
 * float32 first; a finite one beyond float32's range (it would become inf and its block NaN) is refused.
 */
function float32Values(values: unknown, what: string): Float32Array {
  const v = numbers(values, what);
  if (v instanceof Float32Array) return v;
  const out = Float32Array.from(v);
  for (let i = 0; i < out.length; i++) {
    if (!Number.isFinite(out[i]) && Number.isFinite(v[i])) throw new InvalidArgumentError(`${what}[${i}] = ${v[i]} is beyond float32's range (MX quantises float32 values)`);
  }
  return out;
}

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

/** A block size from 1 to 2^31 - 1 (the kernels take 32-bit sizes: a larger one would be cut to its low 32 bits). */
function checkBlockSize(blockSize: unknown, what: string): number {
  return kernelInt(blockSize, `${what}: blockSize`, 1);
}

/**
 * OCP MX quantisation (spec v1.0, 6.3): per block, X = 2^(floor(log2(amax)) - emax_elem) as an E8M0
 * code, elements round-to-nearest-even(V / X) with normals clamped to the element max. All-zero
 * blocks get the smallest scale 2^-127; a block holding NaN or ±inf gets the NaN scale.
 */
export function mxQuantize(values: Float32Array | readonly number[], elemDtype: DTypeName, options: { blockSize?: number } = {}): MxTensor {
  const dtype = mxElement(elemDtype);
  const blockSize = checkBlockSize(checkOptions(options, ['blockSize'], 'mxQuantize').blockSize ?? 32, 'mxQuantize');
  const src = float32Values(values, 'mxQuantize values');
  const n = src.length;
  const nScales = Math.ceil(n / blockSize);
  const w = wasm();
  let pSrc = 0, pScales = 0, pCodes = 0;
  try {
    pSrc = wasmAlloc(Math.max(n * 4, 16), 'mxQuantize values');
    pScales = wasmAlloc(Math.max(nScales, 16), 'mxQuantize scales');
    pCodes = wasmAlloc(Math.max(n, 16), 'mxQuantize codes');
    new Float32Array(memoryBuffer(), pSrc, n).set(src);
    w.mxQuantize(formatOf(dtype).id, pSrc, pScales, pCodes, n, blockSize);
    return {
      elemDtype: dtype, blockSize, length: n,
      scales: new Uint8Array(memoryBuffer(), pScales, nScales).slice(),
      codes: new Uint8Array(memoryBuffer(), pCodes, n).slice(),
    };
  } finally {
    wasmFree(pSrc);
    wasmFree(pScales);
    wasmFree(pCodes);
  }
}

/** Inverse of mxQuantize: element value times 2^(scale - 127), rounded once to float32; NaN scale -> NaN block. */
export function mxDequantize(mx: MxTensor): Float32Array {
  if (mx === null || typeof mx !== 'object') throw new InvalidArgumentError(`mxDequantize expects an MxTensor (from mxQuantize), got ${describeValue(mx)}`);
  const dtype = mxElement(mx.elemDtype);
  const blockSize = checkBlockSize(mx.blockSize, 'mxDequantize');
  const n: unknown = mx.length;
  if (!(typeof n === 'number' && Number.isSafeInteger(n) && n >= 0)) throw new InvalidArgumentError(`mxDequantize: length must be a non-negative integer, got ${describeValue(n)}`);
  for (const k of ['scales', 'codes'] as const) {
    if (!(mx[k] instanceof Uint8Array)) throw new InvalidArgumentError(`mxDequantize: ${k} must be a Uint8Array, got ${describeValue(mx[k])}`);
  }
  const scales = hostCopy(mx.scales, 'mxDequantize scales'), codes = hostCopy(mx.codes, 'mxDequantize codes');
  if (codes.length !== n) throw new ShapeMismatchError(`MX tensor has ${codes.length} element codes, expected length ${n}`);
  const nScales = Math.ceil(n / blockSize);
  if (scales.length !== nScales) throw new ShapeMismatchError(`MX tensor has ${scales.length} scales, expected ceil(${n} / ${blockSize}) = ${nScales}`);
  const w = wasm();
  let pScales = 0, pCodes = 0, pDst = 0;
  try {
    pScales = wasmAlloc(Math.max(nScales, 16), 'mxDequantize scales');
    pCodes = wasmAlloc(Math.max(n, 16), 'mxDequantize codes');
    pDst = wasmAlloc(Math.max(n * 4, 16), 'mxDequantize values');
    new Uint8Array(memoryBuffer(), pScales, nScales).set(scales);
    new Uint8Array(memoryBuffer(), pCodes, n).set(codes);
    const limit = 2 ** formatOf(dtype).bits - 1;
    const bad = firstCodeAbove(pCodes, n, limit);
    if (bad >= 0) throw new InvalidArgumentError(`code ${codes[bad]} at index ${bad} is not a valid ${dtype} code`);
    w.mxDequantize(formatOf(dtype).id, pScales, pCodes, pDst, n, blockSize);
    return new Float32Array(memoryBuffer(), pDst, n).slice();
  } finally {
    wasmFree(pScales);
    wasmFree(pCodes);
    wasmFree(pDst);
  }
}

/** Largest |x| (NaN if any element is NaN), as torch.amax(abs(x)). */
export function amax(values: ArrayLike<number>): number {
  values = numbers(values, 'amax values');
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
 * format's max (x * scale is what gets encoded; divide by scale to dequantise). amax 0 (or +inf)
 * gives 1. A margin above log2(max / smallestSubnormal) (amax would map below the smallest
 * subnormal: all zeros), or one or an amax that makes the scale 0 or inf (margin -2000, amax
 * 1e-310), is an InvalidArgumentError; the scale returned is always positive and finite.
 */
export function scaleFromAmax(amaxValue: number, dtype: DTypeName, options: { margin?: number } = {}): number {
  return scaleFor(amaxValue, dtype, checkOptions(options, ['margin'], 'scaleFromAmax').margin, 'scaleFromAmax');
}

function scaleFor(amaxValue: unknown, dtype: DTypeName, marginOption: unknown, fn: string): number {
  const { max, smallestSubnormal, dtype: name } = finfo(dtype);
  const margin = marginOption ?? 0;
  if (!(typeof margin === 'number' && Number.isFinite(margin))) throw new InvalidArgumentError(`${fn}: options.margin must be a finite number, got ${describeValue(margin)}`);
  // Beyond this, amax maps below the smallest subnormal: every value would encode to zero.
  const maxMargin = Math.log2(max / smallestSubnormal);
  if (margin > maxMargin) throw new InvalidArgumentError(`${fn}: options.margin ${margin} maps amax to ${name}'s max / 2^${margin}, below its smallest subnormal (every value would be 0); it must be at most log2(max / smallestSubnormal) = ${+maxMargin.toFixed(4)}`);
  if (!(typeof amaxValue === 'number' && amaxValue >= 0)) throw new InvalidArgumentError(`${fn}: amax must be a non-negative number, got ${describeValue(amaxValue)}`);
  if (amaxValue === 0 || !Number.isFinite(amaxValue)) return 1;
  const scale = max / amaxValue / 2 ** margin;
  if (!(scale > 0 && Number.isFinite(scale))) {
    throw new InvalidArgumentError(`${fn}: scale = max / amax / 2^margin = ${max} / ${amaxValue} / 2^${margin} is ${scale}, not a positive finite number; use a margin (and data) that keep it in range`);
  }
  return scale;
}

/** A per-tensor scaled quantisation: codes of x * scale, and the scale. */
export interface PerTensorQuantized {
  readonly dtype: DType;
  readonly codes: Uint8Array | Uint16Array | Uint32Array;
  readonly scale: number;
}

/** Quantises with one scale from the tensor's amax; saturating by default, as fp8 training recipes do. */
export function quantizePerTensor(values: Float32Array | readonly number[], dtype: DTypeName, options: { margin?: number; saturate?: boolean } = {}): PerTensorQuantized {
  const { margin, saturate } = checkOptions(options, ['margin', 'saturate'], 'quantizePerTensor');
  const v = numbers(values, 'quantizePerTensor values');
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i])) throw new InvalidArgumentError(`quantizePerTensor values[${i}] is ${v[i]}: per-tensor scaling needs finite values (the scale comes from their amax)`);
  }
  const scale = scaleFor(amax(v), dtype, margin, 'quantizePerTensor');
  const scaled = Float64Array.from(v, (x) => x * scale);
  return { dtype: formatOf(dtype).name, scale, codes: encode(scaled, dtype, { saturate: saturate ?? true }) };
}

/** Inverse of quantizePerTensor: decode(codes) / scale, rounded once to float32. */
export function dequantizePerTensor(q: PerTensorQuantized): Float32Array {
  if (q === null || typeof q !== 'object') throw new InvalidArgumentError(`dequantizePerTensor expects the result of quantizePerTensor, got ${describeValue(q)}`);
  if (!(typeof q.scale === 'number' && Number.isFinite(q.scale) && q.scale > 0)) throw new InvalidArgumentError(`dequantizePerTensor: scale must be a positive finite number, got ${describeValue(q.scale)}`);
  const v = decode(q.codes, q.dtype);
  for (let i = 0; i < v.length; i++) v[i] = v[i] / q.scale;
  return v;
}
