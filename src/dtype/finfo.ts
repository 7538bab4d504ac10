import { describeValue, InvalidArgumentError } from '../errors.js';
import { FORMATS, codeValue, formatOf, maxFiniteCode, type DType, type DTypeName } from './formats.js';

/** Machine limits of a format, like torch.finfo / ml_dtypes.finfo (same values as ml_dtypes). */
export interface FInfo {
  readonly dtype: DType;
  readonly bits: number;
  readonly exponentBits: number;
  readonly mantissaBits: number;
  readonly bias: number;
  /** Largest finite value. */
  readonly max: number;
  /** Most negative finite value; for the unsigned float8_e8m0fnu, the smallest positive value (as ml_dtypes). */
  readonly min: number;
  /** Distance from 1 to the next larger value. */
  readonly eps: number;
  /** Smallest positive normal value (torch's `tiny`). */
  readonly smallestNormal: number;
  /** Smallest positive value (equals smallestNormal where the format has no subnormals). */
  readonly smallestSubnormal: number;
  /** ml_dtypes `maxexp`: the smallest power of two that overflows is 2^maxExp. */
  readonly maxExp: number;
  /** ml_dtypes `minexp`: smallestNormal = 2^minExp. */
  readonly minExp: number;
  readonly hasInf: boolean;
  readonly hasNaN: boolean;
  readonly hasSubnormals: boolean;
  readonly signed: boolean;
}

const cache = new Map<DType, FInfo>();

/** finfo(dtype): limits derived from the format definition. */
export function finfo(dtype: DTypeName): FInfo {
  const f = formatOf(dtype);
  const hit = cache.get(f.name);
  if (hit) return hit;
  const max = codeValue(f, maxFiniteCode(f));
  const hasSubnormals = f.mantissaBits > 0;
  const smallestSubnormal = codeValue(f, f.signed ? 1 : 0); // e8m0fnu has no zero: its code 0 is 2^-127
  const smallestNormal = hasSubnormals ? 2 ** (1 - f.bias) : smallestSubnormal;
  const info: FInfo = Object.freeze({
    dtype: f.name,
    bits: f.bits,
    exponentBits: f.exponentBits,
    mantissaBits: f.mantissaBits,
    bias: f.bias,
    max,
    min: f.signed ? -max : smallestSubnormal,
    eps: 2 ** -f.mantissaBits,
    smallestNormal,
    smallestSubnormal,
    maxExp: Math.floor(Math.log2(max)) + 1,
    minExp: Math.log2(smallestNormal),
    hasInf: f.hasInf,
    hasNaN: f.nan !== 'none',
    hasSubnormals,
    signed: f.signed,
  });
  cache.set(f.name, info);
  return info;
}

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e-3 && a < 1e6 && Number.isInteger(v * 2 ** 12)) return String(v);
  return v.toExponential(6).replace(/\.?0+e/, 'e');
}

/** A printable table of every format (or the given ones: a list of dtype names, or one name): bits, layout, range and specials. */
export function formatTable(dtypes: DTypeName | readonly DTypeName[] = FORMATS.map((f) => f.name)): string {
  if (typeof dtypes === 'string') dtypes = [dtypes];
  if (!Array.isArray(dtypes)) throw new InvalidArgumentError(`formatTable expects a dtype name or an array of dtype names, got ${describeValue(dtypes)}`);
  const head = ['dtype', 'bits', 'E', 'M', 'bias', 'max', 'min', 'eps', 'smallest normal', 'smallest subnormal', 'inf', 'NaN'];
  const rows = dtypes.map((d) => {
    const i = finfo(d);
    return [i.dtype, String(i.bits), String(i.exponentBits), String(i.mantissaBits), String(i.bias), fmt(i.max), fmt(i.min),
      fmt(i.eps), fmt(i.smallestNormal), fmt(i.smallestSubnormal), i.hasInf ? 'yes' : 'no', i.hasNaN ? 'yes' : 'no'];
  });
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (r: string[]) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
