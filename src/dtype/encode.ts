import { checkOptions, describeValue, InvalidArgumentError } from '../errors.js';
import { formatOf, ROUNDING_IDS, type DTypeName, type FormatTraits } from './formats.js';
import { isWasmView, WasmArray } from './host_array.js';
import { streamKernel, wasmPtr, type Side } from './stream.js';
import { firstCodeAbove, memoryBuffer, view, wasm, type CodeArray } from './wasm.js';

/** Rounding modes: IEEE nearest-even (default, ml_dtypes), toward zero, or unbiased stochastic. */
export type Rounding = 'nearest-even' | 'toward-zero' | 'stochastic';


export interface EncodeOptions {
  /** Clamp finite overflow and ±inf to ±max (the OCP MX conversion rule); NaN stays NaN where the format has one. */
  saturate?: boolean;
  /** Default 'nearest-even'. */
  rounding?: Rounding;
  /** Seed of the stochastic-rounding generator (reproducible); random when omitted. Only with rounding 'stochastic'. */
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

/** Checks an `out` argument: right length and type (a WasmArray must hold codes of this very dtype, not just of its width). */
export function checkOut(f: FormatTraits, out: CodeArray | WasmArray, n: number, what = 'out'): void {
  const ok = out instanceof WasmArray ? out.kind === f.name
    : out !== null && typeof out === 'object' && out.constructor === codeArrayType(f);
  if (!ok) {
    const got = out instanceof WasmArray ? `a WasmArray of ${out.kind}` : describeValue(out);
    throw new InvalidArgumentError(`${what} for ${f.name} must be a ${codeArrayName(f)} (or a WasmArray of ${f.name}), got ${got}`);
  }
  if (!(out instanceof WasmArray)) isWasmView(out, what); // a stale view first: its length reads 0
  if (out.length !== n) throw new InvalidArgumentError(`${what} has length ${out.length}, expected ${n}`);
}

function randomSeed(): bigint {
  const a = new Uint32Array(2);
  globalThis.crypto.getRandomValues(a);
  return (BigInt(a[0]) << 32n) | BigInt(a[1]);
}

function seedOf(seed: unknown): bigint {
  if (seed === undefined) return randomSeed();
  if (typeof seed === 'bigint') return BigInt.asUintN(64, seed);
  if (typeof seed === 'number' && Number.isSafeInteger(seed)) return BigInt.asUintN(64, BigInt(seed));
  throw new InvalidArgumentError(`options.seed must be an integer (a number up to 2^53 or a bigint), got ${describeValue(seed)}`);
}

const ENCODE_OPTIONS = ['saturate', 'rounding', 'seed', 'offset', 'out'] as const;

/**
 * Encodes values to codes of `dtype`, one code per element (Uint32Array for float32 bits,
 * Uint16Array for 16-bit formats, Uint8Array otherwise, fp6/fp4 unpacked: see pack()).
 */
export function encode(values: EncodeInput, dtype: DTypeName, options: EncodeOptions = {}): CodeArray {
  const f = formatOf(dtype);
  const o = checkOptions(options, ENCODE_OPTIONS, 'encode');
  if (o.saturate !== undefined && typeof o.saturate !== 'boolean') throw new InvalidArgumentError(`encode: options.saturate must be a boolean, got ${describeValue(o.saturate)}`);
  const rounding: unknown = o.rounding ?? 'nearest-even';
  // own keys only, so that 'toString' or '__proto__' is no rounding mode
  const mode = typeof rounding === 'string' && Object.hasOwn(ROUNDING_IDS, rounding) ? ROUNDING_IDS[rounding as Rounding] : undefined;
  if (mode === undefined) throw new InvalidArgumentError(`encode: unknown rounding ${describeValue(rounding)}; use 'nearest-even', 'toward-zero' or 'stochastic'`);
  if (o.seed !== undefined) {
    seedOf(o.seed);
    // A seed means nothing to a deterministic rounding: refused rather than silently ignored.
    if (mode !== ROUNDING_IDS.stochastic) throw new InvalidArgumentError(`encode: options.seed only applies to rounding 'stochastic' (rounding is ${JSON.stringify(rounding)})`);
  }
  const seed = mode === 2 ? seedOf(o.seed) : 0n;
  const offset: unknown = o.offset ?? 0;
  if (!(typeof offset === 'number' && Number.isSafeInteger(offset) && offset >= 0)) throw new InvalidArgumentError(`encode: options.offset must be a non-negative integer, got ${describeValue(offset)}`);
  if (o.offset !== undefined && mode !== ROUNDING_IDS.stochastic) throw new InvalidArgumentError(`encode: options.offset only applies to rounding 'stochastic' (its position in the random stream; rounding is ${JSON.stringify(rounding)})`);
  let src: Side;
  if (values instanceof Float32Array) src = { data: values, bytesPer: 4, float: true, what: 'encode values' };
  else if (values instanceof Float64Array) src = { data: values, bytesPer: 8, float: true, what: 'encode values' };
  else if (values instanceof WasmArray) {
    values.livePtr('encode values');
    if (!values.float) throw new InvalidArgumentError('encode values: a WasmArray to encode must hold float32 or float64 values');
    src = { data: values, bytesPer: values.bytesPerElement, float: true, what: 'encode values' };
  } else if (Array.isArray(values)) {
    // Every element checked before anything is allocated (a sparse array of 2^32 - 1 holes is refused
    // at its first hole, not by a failed allocation).
    for (let i = 0; i < values.length; i++) {
      const v: unknown = values[i];
      if (typeof v !== 'number') throw new InvalidArgumentError(`encode values[${i}] is not a number: ${describeValue(v)}`);
    }
    src = { data: Float64Array.from(values as number[]), bytesPer: 8, float: true, what: 'encode values' };
  } else throw new InvalidArgumentError(`encode expects a Float32Array, Float64Array, number[] or WasmArray as values, got ${describeValue(values)}`);
  const n = values.length;
  const out = o.out ?? newCodes(f, n);
  checkOut(f, out, n, 'encode options.out');
  const dst: Side = { data: out, bytesPer: f.codeBytes, float: false, what: 'encode options.out' };
  // Checked (freed or stale arrays refused) and taken before anything is allocated.
  wasmPtr(src);
  const outPtr = wasmPtr(dst);
  const w = wasm();
  const sat = o.saturate ?? false;
  const kernel = src.bytesPer === 4 ? w.encodeF32 : w.encodeF64;
  streamKernel(src, dst, n, (s, d, c, off) =>
    kernel(f.id, s, d, c, mode, sat, seed, BigInt(offset) + BigInt(off))); // exact: offset + off may pass 2^53
  if (out instanceof WasmArray) return out.array as CodeArray;
  // A view of a WasmArray: a fresh view, in case memory grew (detaching the one given) during the call.
  return outPtr !== null ? (view(outPtr, n, f.codeBytes as 1 | 2 | 4) as CodeArray) : out;
}

/** Input codes: the dtype's code array type (or any array of integer codes, validated and copied). */
export type DecodeInput = CodeArray | readonly number[] | WasmArray;

/** Decodes codes of `dtype` to float32 values (exact: every format here is a subset of float32). */
export function decode(codes: DecodeInput, dtype: DTypeName, options: { out?: Float32Array | WasmArray } = {}): Float32Array {
  const f = formatOf(dtype);
  const o = checkOptions(options, ['out'], 'decode');
  let data: CodeArray | WasmArray;
  if (codes instanceof WasmArray) {
    codes.livePtr('decode codes');
    if (codes.kind !== f.name) throw new InvalidArgumentError(`decode codes: the WasmArray holds ${codes.kind === 'float64' ? 'float64 values' : `${codes.kind} codes`}, not ${f.name} codes`);
    data = codes;
  } else if (codes !== null && typeof codes === 'object' && codes.constructor === codeArrayType(f)) {
    data = codes as CodeArray;
  } else if (Array.isArray(codes) || ArrayBuffer.isView(codes) && !(codes instanceof DataView)) {
    const list = codes as ArrayLike<unknown>;
    if (ArrayBuffer.isView(codes)) isWasmView(codes, 'decode codes');
    const copy = newCodes(f, list.length);
    for (let i = 0; i < list.length; i++) {
      const c = list[i];
      if (!(typeof c === 'number' && Number.isInteger(c) && c >= 0 && c < 2 ** f.bits)) {
        throw new InvalidArgumentError(`code ${describeValue(c)} at index ${i} is not a valid ${f.name} code (0..${2 ** f.bits - 1})`);
      }
      copy[i] = c;
    }
    data = copy;
  } else throw new InvalidArgumentError(`decode codes must be a ${codeArrayName(f)}, an array of integer codes or a WasmArray, got ${describeValue(codes)}`);
  const n = data.length;
  const out = o.out ?? new Float32Array(n);
  const outOk = out instanceof WasmArray ? out.kind === 'float32' : out !== null && typeof out === 'object' && out.constructor === Float32Array;
  if (!outOk) throw new InvalidArgumentError(`decode options.out must be a Float32Array (or a float32 WasmArray), got ${describeValue(out)}`);
  if (!(out instanceof WasmArray)) isWasmView(out, 'decode options.out');
  if (out.length !== n) throw new InvalidArgumentError(`decode options.out has length ${out.length}, expected ${n}`);
  const src: Side = { data, bytesPer: f.codeBytes, float: false, what: 'decode codes' };
  const dst: Side = { data: out, bytesPer: 4, float: true, what: 'decode options.out' };
  wasmPtr(src);
  const outPtr = wasmPtr(dst);
  const w = wasm();
  const limit = 2 ** f.bits - 1;
  streamKernel(src, dst, n, (s, d, c, off) => {
    if (f.bits < 8) {
      const bad = firstCodeAbove(s, c, limit);
      if (bad >= 0) {
        const code = new Uint8Array(memoryBuffer(), s + bad, 1)[0];
        throw new InvalidArgumentError(`code ${code} at index ${off + bad} is not a valid ${f.name} code (0..${limit})`);
      }
    }
    w.decode(f.id, s, d, c);
  });
  if (out instanceof WasmArray) return out.array as Float32Array;
  return outPtr !== null ? (view(outPtr, n, 4, true) as Float32Array) : out;
}
