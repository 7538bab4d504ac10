// Plain-JavaScript peers for the format benchmark: what a competent JS developer writes without
// WebAssembly. Per element, encode reads the float32 bits through a Uint32Array view of the input
// and rounds to nearest-even with integer bit arithmetic (subnormals, overflow and NaN handled per
// format, ml_dtypes / numpy semantics, non-saturating); decode composes the float32 bits
// arithmetically (no lookup table) and writes them through a Uint32Array view of the output.
//
// The 16-bit formats get hand-specialised loops; the 8-bit-and-smaller formats share one
// parametrised loop per direction (format constants passed as arguments, so they sit in registers
// for the whole loop), plus a dedicated loop for e8m0fnu, whose rules differ. bench/formats.ts
// checks every function here against memfit before timing it.

export type Encoder = (src: Float32Array, dst: Uint8Array | Uint16Array) => void;
export type Decoder = (src: Uint8Array | Uint16Array, dst: Float32Array) => void;

function bitsOf(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

// ---- bfloat16 ---------------------------------------------------------------------------------

/** float32 -> bfloat16, nearest-even; overflow carries into inf by itself; NaN -> canonical quiet NaN. */
export function encodeBf16(src: Float32Array, dst: Uint16Array): void {
  const u = bitsOf(src);
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const x = u[i];
    if ((x & 0x7fffffff) > 0x7f800000) dst[i] = ((x >>> 16) & 0x8000) | 0x7fc0;
    else dst[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
}

export function decodeBf16(src: Uint16Array, dst: Float32Array): void {
  const u = bitsOf(dst);
  const n = src.length;
  for (let i = 0; i < n; i++) u[i] = src[i] << 16;
}

// ---- float16 ----------------------------------------------------------------------------------

/** float32 -> float16, nearest-even (numpy: inf on overflow, NaN payload = top fraction bits, at least 1). */
export function encodeF16(src: Float32Array, dst: Uint16Array): void {
  const u = bitsOf(src);
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const x = u[i];
    const s = (x >>> 16) & 0x8000;
    const a = x & 0x7fffffff;
    let c: number;
    if (a >= 0x47800000) {
      // |x| >= 65536 (rounds to inf), inf or NaN
      if (a > 0x7f800000) {
        const p = (a & 0x7fffff) >>> 13;
        c = 0x7c00 | (p === 0 ? 1 : p);
      } else c = 0x7c00;
    } else if (a >= 0x38800000) {
      // normal float16 range: round the 13 dropped bits, rebias 127 -> 15 (carry may reach inf)
      c = ((a + 0xfff + ((a >>> 13) & 1)) >>> 13) - 0x1c000;
      if (c > 0x7bff) c = 0x7c00;
    } else if (a >= 0x33000000) {
      // float16 subnormal: shift the significand (implicit bit included) onto the 2^-24 grid
      const e = a >>> 23;
      const sig = (a & 0x7fffff) | 0x800000;
      const shift = 126 - e; // 14..24
      const q = sig >>> shift;
      const rem = sig & ((1 << shift) - 1);
      const half = 1 << (shift - 1);
      c = rem > half || (rem === half && (q & 1) !== 0) ? q + 1 : q;
    } else c = 0; // below 2^-25 (ties at 2^-25 go to even 0)
    dst[i] = s | c;
  }
}

/** float16 -> float32, exact; NaN payloads kept. */
export function decodeF16(src: Uint16Array, dst: Float32Array): void {
  const u = bitsOf(dst);
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const h = src[i];
    const s = (h & 0x8000) << 16;
    const e = (h >>> 10) & 0x1f;
    const f = h & 0x3ff;
    if (e === 0) {
      // zero / subnormal: f * 2^-24 is exact in float32; normalise by counting leading zeros
      if (f === 0) u[i] = s;
      else {
        const lz = Math.clz32(f) - 21; // shift that brings the top set bit to bit 10
        u[i] = s | ((113 - lz) << 23) | (((f << lz) & 0x3ff) << 13);
      }
    } else if (e === 31) u[i] = s | 0x7f800000 | (f << 13);
    else u[i] = s | ((e + 112) << 23) | (f << 13);
  }
}

// ---- 8-bit and smaller (signed) ---------------------------------------------------------------

/** How a small signed format spells NaN: IEEE (e5m2), all-ones S.1111.111 (e4m3fn), none (fp6/fp4). */
export const NAN_IEEE = 0;
export const NAN_ALL_ONES = 1;
export const NAN_NONE = 2;

export interface MiniFormat {
  readonly bits: number;
  readonly ebits: number;
  readonly mbits: number;
  readonly hasInf: boolean;
  readonly nan: 0 | 1 | 2;
}

/**
 * float32 -> code of a signed format of at most 8 bits (one code per byte), nearest-even,
 * ml_dtypes semantics: overflow -> inf (e5m2), NaN (e4m3fn) or ±max (fp6/fp4, no inf/NaN);
 * NaN -> canonical NaN (e5m2: S.11111.10, e4m3fn: S.1111.111, fp6/fp4: the code of -0).
 */
export function encodeMini(
  src: Float32Array, dst: Uint8Array,
  bits: number, ebits: number, mbits: number, hasInf: boolean, nanKind: number,
): void {
  const u = bitsOf(src);
  const n = src.length;
  const bias = (1 << (ebits - 1)) - 1;
  const shift = 23 - mbits; // dropped fraction bits in the normal range
  const roundBias = (1 << (shift - 1)) - 1;
  const rebias = (127 - bias) << mbits;
  const minNormal = (128 - bias) << 23; // float32 bits of 2^emin
  const signShift = 32 - bits;
  const magBits = bits - 1;
  const allOnes = (1 << magBits) - 1;
  const infCode = ((1 << ebits) - 1) << mbits;
  const maxCode = hasInf ? infCode - 1 : nanKind === NAN_ALL_ONES ? allOnes - 1 : allOnes;
  const ovfCode = hasInf ? infCode : nanKind === NAN_ALL_ONES ? allOnes : maxCode;
  const signBit = 1 << magBits;
  const nanCode = nanKind === NAN_IEEE ? infCode | (1 << (mbits - 1)) : nanKind === NAN_ALL_ONES ? allOnes : 0;
  const nanSigned = nanKind !== NAN_NONE; // fp6/fp4: NaN -> -0 whatever its sign
  const subBase = 127 - bias + 1 + (23 - mbits); // shift = subBase - e for a float32 exponent field e
  for (let i = 0; i < n; i++) {
    const x = u[i];
    const s = (x >>> signShift) & signBit;
    const a = x & 0x7fffffff;
    let c: number;
    if (a >= 0x7f800000) {
      if (a > 0x7f800000) c = nanSigned ? s | nanCode : signBit;
      else c = s | ovfCode;
    } else if (a >= minNormal) {
      c = ((a + roundBias + ((a >>> shift) & 1)) >>> shift) - rebias;
      c = s | (c > maxCode ? ovfCode : c);
    } else {
      // target subnormal (or zero): significand onto the 2^(emin - m) grid
      const e = a >>> 23;
      const sh = subBase - e;
      let q = 0;
      if (sh <= 24 && e !== 0) {
        const sig = (a & 0x7fffff) | 0x800000;
        q = sig >>> sh;
        const rem = sig & ((1 << sh) - 1);
        const half = 1 << (sh - 1);
        if (rem > half || (rem === half && (q & 1) !== 0)) q++;
      }
      c = s | q;
    }
    dst[i] = c;
  }
}

/** code of a signed format of at most 8 bits -> float32, exact; NaN -> canonical quiet NaN (sign kept). */
export function decodeMini(
  src: Uint8Array, dst: Float32Array,
  bits: number, ebits: number, mbits: number, _hasInf: boolean, nanKind: number,
): void {
  const u = bitsOf(dst);
  const n = src.length;
  const bias = (1 << (ebits - 1)) - 1;
  const signShift = 32 - bits;
  const magMask = (1 << (bits - 1)) - 1;
  const fracMask = (1 << mbits) - 1;
  const expAll = (1 << ebits) - 1;
  const fracShift = 23 - mbits;
  const rebias = 127 - bias;
  const ieee = nanKind === NAN_IEEE;
  const allOnesNan = nanKind === NAN_ALL_ONES ? magMask : -1;
  const subScale = 2 ** (1 - bias - mbits); // value of the smallest subnormal
  for (let i = 0; i < n; i++) {
    const c = src[i];
    const s = (c << signShift) & 0x80000000;
    const mag = c & magMask;
    const e = mag >>> mbits;
    const f = mag & fracMask;
    if (e === 0) {
      // zero / subnormal: f * 2^(emin - m) is exact in float32
      const v = f * subScale;
      dst[i] = s !== 0 ? -v : v;
    } else if ((ieee && e === expAll) || mag === allOnesNan) {
      u[i] = s | (ieee && f === 0 ? 0x7f800000 : 0x7fc00000);
    } else u[i] = s | ((e + rebias) << 23) | (f << fracShift);
  }
}

// ---- float8_e8m0fnu (unsigned powers of two) --------------------------------------------------

/**
 * float32 -> e8m0fnu, ml_dtypes nearest: the mantissa rounds half up into the exponent; float32
 * subnormals above 2^-127 go to 2^-126 (code 1), the rest to 2^-127 (code 0); zero, negatives, NaN,
 * +inf and overflow -> 0xFF (NaN).
 */
export function encodeE8m0(src: Float32Array, dst: Uint8Array): void {
  const u = bitsOf(src);
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const x = u[i];
    let c: number;
    if (x === 0 || x >= 0x7f800000) c = 0xff; // zero, negative (sign bit set), inf, NaN
    else if (x < 0x00800000) c = x > 0x00400000 ? 1 : 0;
    else {
      c = (x + 0x00400000) >>> 23;
      if (c > 0xfe) c = 0xff;
    }
    dst[i] = c;
  }
}

export function decodeE8m0(src: Uint8Array, dst: Float32Array): void {
  const u = bitsOf(dst);
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const c = src[i];
    u[i] = c === 0xff ? 0x7fc00000 : c === 0 ? 0x00400000 : c << 23;
  }
}

// ---- by dtype name ----------------------------------------------------------------------------

const MINI: Record<string, MiniFormat> = {
  float8_e4m3fn: { bits: 8, ebits: 4, mbits: 3, hasInf: false, nan: NAN_ALL_ONES },
  float8_e5m2: { bits: 8, ebits: 5, mbits: 2, hasInf: true, nan: NAN_IEEE },
  float6_e3m2fn: { bits: 6, ebits: 3, mbits: 2, hasInf: false, nan: NAN_NONE },
  float6_e2m3fn: { bits: 6, ebits: 2, mbits: 3, hasInf: false, nan: NAN_NONE },
  float4_e2m1fn: { bits: 4, ebits: 2, mbits: 1, hasInf: false, nan: NAN_NONE },
};

/** The plain-JS encoder and decoder of a dtype (canonical name). */
export function plainJs(dtype: string): { encode: Encoder; decode: Decoder } {
  if (dtype === 'float16') return { encode: encodeF16 as Encoder, decode: decodeF16 as Decoder };
  if (dtype === 'bfloat16') return { encode: encodeBf16 as Encoder, decode: decodeBf16 as Decoder };
  if (dtype === 'float8_e8m0fnu') return { encode: encodeE8m0 as Encoder, decode: decodeE8m0 as Decoder };
  const m = MINI[dtype];
  if (!m) throw new Error(`no plain-JS implementation of ${dtype}`);
  return {
    encode: (src, dst) => encodeMini(src, dst as Uint8Array, m.bits, m.ebits, m.mbits, m.hasInf, m.nan),
    decode: (src, dst) => decodeMini(src as Uint8Array, dst, m.bits, m.ebits, m.mbits, m.hasInf, m.nan),
  };
}
