import { InvalidArgumentError } from '../errors.js';
import { formatOf, ROUNDING_IDS, type FormatTraits } from './formats.js';
import { WasmArray } from './host_array.js';
import { streamKernel, type Side } from './stream.js';
import { wasm, type CodeArray } from './wasm.js';

/** Rounding modes: IEEE nearest-even (default, ml_dtypes), toward zero, or unbiased stochastic. */
export type Rounding = 'nearest-even' | 'toward-zero' | 'stochastic';


export interface EncodeOptions {
  /** Clamp finite overflow and ±inf to ±max (the OCP MX conversion rule); NaN stays NaN where the format has one. */
  saturate?: boolean;
  /** Default 'nearest-even'. */
  rounding?: Rounding;
  /** Seed of the stochastic-rounding generator (reproducible); random when omitted. */
  seed?: number | bigint;
  /**
   * Position of values[0] in the stochastic-rounding stream (default 0): encoding a long array in
   * pieces with offsets 0, n0, n0 + n1, ... gives the same codes as one call.
   */
  offset?: number;
  /** Write the codes here instead of a new array (same length; the dtype's code array type, or a WasmArray of the dtype). */
  out?: CodeArray | WasmArray;
}

/** Values to encode: float32 (bit-exact with ml_dtypes), or binary64 (correctly rounded, no double rounding). */
export type EncodeInput = Float32Array | Float64Array | readonly number[] | WasmArray;

function newCodes(f: FormatTraits, n: number): CodeArray {
  return new (codeArrayType(f))(n);
}

function codeArrayType(f: FormatTraits): typeof Uint8Array | typeof Uint16Array | typeof Uint32Array {
  return f.codeBytes === 4 ? Uint32Array : f.codeBytes === 2 ? Uint16Array : Uint8Array;
}

function codeArrayName(f: FormatTraits): string {
  return codeArrayType(f).name;
}

/** Checks an `out` argument: right length and element size. */
export function checkOut(f: FormatTraits, out: CodeArray | WasmArray, n: number, what = 'out'): void {
  if (out.length !== n) throw new InvalidArgumentError(`${what} has length ${out.length}, expected ${n}`);
  const ok = out instanceof WasmArray ? out.bytesPerElement === f.codeBytes && !out.float || f.name === 'float32' && out.bytesPerElement === 4
    : out.constructor === codeArrayType(f);
  if (!ok) {
    throw new InvalidArgumentError(`${what} for ${f.name} must be a ${codeArrayName(f)} (or a WasmArray of ${f.name})`);
  }
}

function randomSeed(): bigint {
  const a = new Uint32Array(2);
  globalThis.crypto.getRandomValues(a);
  return (BigInt(a[0]) << 32n) | BigInt(a[1]);
}

function seedOf(seed: number | bigint | undefined): bigint {
  if (seed === undefined) return randomSeed();
  if (typeof seed === 'number' && !Number.isSafeInteger(seed)) throw new InvalidArgumentError(`seed must be an integer, got ${seed}`);
  return BigInt.asUintN(64, BigInt(seed));
}

/**
 * Encodes values to codes of `dtype`, one code per element (Uint32Array for float32 bits,
 * Uint16Array for 16-bit formats, Uint8Array otherwise, fp6/fp4 unpacked: see pack()).
 */
export function encode(values: EncodeInput, dtype: string, options: EncodeOptions = {}): CodeArray {
  const f = formatOf(dtype);
  const rounding = options.rounding ?? 'nearest-even';
  const mode = ROUNDING_IDS[rounding];
  if (mode === undefined) throw new InvalidArgumentError(`unknown rounding ${JSON.stringify(rounding)}; use 'nearest-even', 'toward-zero' or 'stochastic'`);
  const seed = mode === 2 ? seedOf(options.seed) : 0n;
  const offset = options.offset ?? 0;
  if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidArgumentError(`offset must be a non-negative integer, got ${offset}`);
  let src: Side;
  if (values instanceof Float32Array) src = { data: values, bytesPer: 4, float: true };
  else if (values instanceof Float64Array) src = { data: values, bytesPer: 8, float: true };
  else if (values instanceof WasmArray) {
    if (!values.float) throw new InvalidArgumentError('encode input WasmArray must hold float32 or float64 values');
    src = { data: values, bytesPer: values.bytesPerElement, float: true };
  } else if (Array.isArray(values)) src = { data: Float64Array.from(values as number[]), bytesPer: 8, float: true };
  else throw new InvalidArgumentError('encode expects a Float32Array, Float64Array, number[] or WasmArray');
  const n = values.length;
  const out = options.out ?? newCodes(f, n);
  checkOut(f, out, n);
  const w = wasm();
  const sat = options.saturate ? 1 : 0;
  const kernel = src.bytesPer === 4 ? w.encodeF32 : w.encodeF64;
  streamKernel(src, { data: out, bytesPer: f.codeBytes, float: false }, n, (s, d, c, off) =>
    kernel(f.id, s, d, c, mode, sat, seed, BigInt(offset + off)));
  return out instanceof WasmArray ? (out.array as CodeArray) : out;
}

/** Input codes: the dtype's code array type (or any array of integer codes, validated and copied). */
export type DecodeInput = CodeArray | readonly number[] | WasmArray;

/** Decodes codes of `dtype` to float32 values (exact: every format here is a subset of float32). */
export function decode(codes: DecodeInput, dtype: string, options: { out?: Float32Array | WasmArray } = {}): Float32Array {
  const f = formatOf(dtype);
  const n = codes.length;
  let data: CodeArray | WasmArray;
  if (codes instanceof WasmArray) {
    if (codes.bytesPerElement !== f.codeBytes) throw new InvalidArgumentError(`decode input WasmArray does not hold ${f.name} codes`);
    data = codes;
  } else if (codes.constructor === codeArrayType(f)) {
    data = codes as CodeArray;
  } else {
    const copy = newCodes(f, n);
    for (let i = 0; i < n; i++) {
      const c = (codes as ArrayLike<number>)[i];
      if (!Number.isInteger(c) || c < 0 || c >= 2 ** f.bits) {
        throw new InvalidArgumentError(`code ${c} at index ${i} is not a valid ${f.name} code (0..${2 ** f.bits - 1})`);
      }
      copy[i] = c;
    }
    data = copy;
  }
  const out = options.out ?? new Float32Array(n);
  if (out.length !== n) throw new InvalidArgumentError(`out has length ${out.length}, expected ${n}`);
  const w = wasm();
  const limit = 2 ** f.bits - 1;
  streamKernel({ data, bytesPer: f.codeBytes, float: false }, { data: out, bytesPer: 4, float: true }, n, (s, d, c, off) => {
    if (f.bits < 8) {
      const bad = w.firstCodeAbove(s, c, limit);
      if (bad >= 0) {
        const code = data instanceof WasmArray ? (data.array as Uint8Array)[off + bad] : (data as Uint8Array)[off + bad];
        throw new InvalidArgumentError(`code ${code} at index ${off + bad} is not a valid ${f.name} code (0..${limit})`);
      }
    }
    w.decode(f.id, s, d, c);
  });
  return out instanceof WasmArray ? (out.array as Float32Array) : out;
}
