import { describeValue, InvalidArgumentError, UnknownDTypeError } from '../errors.js';

/** Canonical dtype names (ml_dtypes / PyTorch spelling). */
export type DType =
  | 'float32'
  | 'float16'
  | 'bfloat16'
  | 'float8_e4m3fn'
  | 'float8_e5m2'
  | 'float8_e8m0fnu'
  | 'float6_e3m2fn'
  | 'float6_e2m3fn'
  | 'float4_e2m1fn';

/** How a format spells NaN. */
export type NanEncoding = 'ieee' | 'all-ones' | 'unsigned-all-ones' | 'none';

/** One trait record per format; everything else (finfo, the table, the reference) derives from it. */
export interface FormatTraits {
  readonly name: DType;
  /** Id shared with assembly/formats.ts. */
  readonly id: number;
  readonly bits: number;
  readonly exponentBits: number;
  readonly mantissaBits: number;
  /** (1 << (exponentBits - 1)) - 1 for every format here. */
  readonly bias: number;
  readonly signed: boolean;
  readonly hasInf: boolean;
  readonly nan: NanEncoding;
  /** A NaN input keeps its top payload bits (numpy's float16 conversion, float32 itself) instead of becoming the canonical NaN. */
  readonly nanKeepsPayload: boolean;
  readonly aliases: readonly DTypeAlias[];
  /** Bytes per code when unpacked: 4, 2 or 1. */
  readonly codeBytes: 1 | 2 | 4;
}

/** Aliases of each format (matched case-insensitively at run time). */
const ALIASES = {
  float32: ['f32', 'fp32', 'float', 'single'],
  float16: ['f16', 'fp16', 'half'],
  bfloat16: ['bf16'],
  float8_e4m3fn: ['e4m3fn', 'e4m3', 'fp8_e4m3', 'fp8_e4m3fn', 'f8e4m3fn', 'f8_e4m3', 'mxfp8_e4m3'],
  float8_e5m2: ['e5m2', 'fp8_e5m2', 'f8e5m2', 'f8_e5m2', 'mxfp8_e5m2'],
  float8_e8m0fnu: ['e8m0fnu', 'e8m0', 'fp8_e8m0', 'f8e8m0fnu', 'mx_scale'],
  float6_e3m2fn: ['e3m2fn', 'e3m2', 'fp6_e3m2', 'f6e3m2fn', 'mxfp6_e3m2'],
  float6_e2m3fn: ['e2m3fn', 'e2m3', 'fp6_e2m3', 'f6e2m3fn', 'mxfp6_e2m3'],
  float4_e2m1fn: ['e2m1fn', 'e2m1', 'fp4', 'fp4_e2m1', 'f4e2m1fn', 'mxfp4', 'nvfp4'],
} as const satisfies Record<DType, readonly string[]>;

/** Every alias, as a type. */
export type DTypeAlias = (typeof ALIASES)[DType][number];

/**
 * A dtype name the library accepts: a canonical name or an alias. Typed so that a typo such as
 * 'float8_e4m3fnn' does not compile; at run time any string is accepted case-insensitively and an
 * unknown one throws UnknownDTypeError (use `isDTypeName` to narrow a string first).
 */
export type DTypeName = DType | DTypeAlias;

function traits(
  name: DType, id: number, bits: number, exponentBits: number, mantissaBits: number,
  signed: boolean, hasInf: boolean, nan: NanEncoding,
): FormatTraits {
  const codeBytes = bits > 16 ? 4 : bits > 8 ? 2 : 1;
  // Frozen, as the whole table: a caller changing a shared trait would change every decode after it.
  return Object.freeze({
    name, id, bits, exponentBits, mantissaBits, bias: (1 << (exponentBits - 1)) - 1,
    signed, hasInf, nan, nanKeepsPayload: name === 'float32' || name === 'float16', aliases: Object.freeze([...ALIASES[name]]), codeBytes,
  });
}

/**
 * Every format, in id order. This table is the one source of the format traits: the
 * AssemblyScript and WGSL constants and trait functions are generated from it at build time
 * (scripts/gen-constants.ts writes build/constants.ts and build/constants.wgsl).
 */
export const FORMATS: readonly FormatTraits[] = Object.freeze([
  traits('float32', 0, 32, 8, 23, true, true, 'ieee'),
  traits('float16', 1, 16, 5, 10, true, true, 'ieee'),
  traits('bfloat16', 2, 16, 8, 7, true, true, 'ieee'),
  traits('float8_e4m3fn', 3, 8, 4, 3, true, false, 'all-ones'),
  traits('float8_e5m2', 4, 8, 5, 2, true, true, 'ieee'),
  traits('float8_e8m0fnu', 5, 8, 8, 0, false, false, 'unsigned-all-ones'),
  traits('float6_e3m2fn', 6, 6, 3, 2, true, false, 'none'),
  traits('float6_e2m3fn', 7, 6, 2, 3, true, false, 'none'),
  traits('float4_e2m1fn', 8, 4, 2, 1, true, false, 'none'),
]);

/** The format id kernels use for int32 tensors (ids, targets), after the float formats. */
export const INT32_FORMAT_ID = 9;

/** The format id of uint8 tensors (the codes of 8-bit optimizer state), after int32. */
export const UINT8_FORMAT_ID = 10;

/** Rounding-mode ids shared with the kernels (generated constants ROUND_*). */
export const ROUNDING_IDS = { 'nearest-even': 0, 'toward-zero': 1, stochastic: 2 } as const;

const BY_NAME = new Map<string, FormatTraits>();
for (const f of FORMATS) {
  BY_NAME.set(f.name, f);
  for (const a of f.aliases) BY_NAME.set(a, f);
}

/** Every accepted name: canonical names first, then aliases. */
export const DTYPE_NAMES: readonly DTypeName[] = Object.freeze([
  ...FORMATS.map((f) => f.name),
  ...FORMATS.flatMap((f) => f.aliases),
]);

/** Whether `name` is a dtype name or alias (case-insensitive): narrows a string from a file or a command line. */
export function isDTypeName(name: unknown): name is DTypeName {
  return typeof name === 'string' && BY_NAME.has(name.toLowerCase());
}

/**
 * Looks a dtype up by canonical name or alias (case-insensitive); throws UnknownDTypeError listing
 * the valid names. It takes any string (names read from files and command lines); the functions
 * that convert data take a `DTypeName`.
 */
export function formatOf(dtype: string): FormatTraits {
  const f = typeof dtype === 'string' ? BY_NAME.get(dtype.toLowerCase()) : undefined;
  if (!f) throw new UnknownDTypeError(dtype, DTYPE_NAMES);
  return f;
}

/** Canonical name of a dtype or alias. */
export function canonicalDType(dtype: string): DType {
  return formatOf(dtype).name;
}

/**
 * The traits of `format`: a FormatTraits (from FORMATS or formatOf) or a dtype name or alias. Any
 * other argument is an InvalidArgumentError naming `fn` (an unknown name an UnknownDTypeError).
 */
export function traitsOf(format: FormatTraits | DTypeName, fn: string): FormatTraits {
  if (typeof format === 'string') return formatOf(format);
  const name: unknown = format !== null && typeof format === 'object' ? (format as { name?: unknown }).name : undefined;
  const f = typeof name === 'string' ? BY_NAME.get(name) : undefined;
  if (!f || f.name !== name) throw new InvalidArgumentError(`${fn} expects a format (an entry of FORMATS, or formatOf(name)) or a dtype name, got ${describeValue(format)}`);
  return f;
}

/** Code of the largest finite magnitude, e.g. float8_e4m3fn 0x7E = (1 + 0b110 * 2^-3) * 2^8 = 448. Takes a format or a dtype name. */
export function maxFiniteCode(format: FormatTraits | DTypeName): number {
  const f = traitsOf(format, 'maxFiniteCode');
  const magnitudeOnes = 2 ** (f.exponentBits + f.mantissaBits) - 1;
  if (f.hasInf) return magnitudeOnes - 2 ** f.mantissaBits; // exponent all ones is inf/NaN
  if (f.nan === 'all-ones' || f.nan === 'unsigned-all-ones') return magnitudeOnes - 1;
  return magnitudeOnes; // fp6 / fp4: every code is finite
}

/**
 * The exact value of a code, from the format definition alone (plain TypeScript, no WebAssembly):
 * the conformance tests' independent reference for decoding, finfo and the formats table. Takes a
 * format or a dtype name; a code that is not an integer in [0, 2^bits) is an InvalidArgumentError.
 */
export function codeValue(format: FormatTraits | DTypeName, code: number): number {
  const f = traitsOf(format, 'codeValue');
  if (!(typeof code === 'number' && Number.isInteger(code) && code >= 0 && code < 2 ** f.bits)) {
    throw new InvalidArgumentError(`codeValue: ${describeValue(code)} is not a ${f.name} code (integers 0..${2 ** f.bits - 1})`);
  }
  if (f.name === 'float8_e8m0fnu') return code === 0xff ? NaN : 2 ** (code - 127);
  const signMask = f.signed ? 2 ** (f.bits - 1) : 0;
  const negative = (code & signMask) !== 0;
  const mag = code & (signMask - 1);
  const expField = Math.floor(mag / 2 ** f.mantissaBits);
  const frac = mag % 2 ** f.mantissaBits;
  const expOnes = 2 ** f.exponentBits - 1;
  let v: number;
  if (f.nan === 'ieee' && expField === expOnes) v = frac === 0 ? Infinity : NaN;
  else if (f.nan === 'all-ones' && mag === 2 ** (f.exponentBits + f.mantissaBits) - 1) v = NaN;
  else if (expField === 0) v = frac * 2 ** (1 - f.bias - f.mantissaBits);
  else v = (2 ** f.mantissaBits + frac) * 2 ** (expField - f.bias - f.mantissaBits);
  return negative ? -v : v;
}
