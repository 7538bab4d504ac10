// Plain-JavaScript peers for the format benchmark: what a competent JS developer writes without
// WebAssembly (and without a decode lookup table). Per element, encode reads the float32 bits
// through a Uint32Array view of the input and rounds to nearest-even with integer bit arithmetic
// in the normal range and the exact-scale-plus-1.5*2^52 trick in the target's subnormal range
// (overflow and NaN handled per format: ml_dtypes / numpy semantics, non-saturating);
// decode composes the float32 bits arithmetically and writes them through a Uint32Array view of
// the output. Every format has its own loop with literal constants. bench/formats.ts checks every
// function here against memfit (bit for bit, NaN payloads included) before timing it.

export type Encoder = (src: Float32Array, dst: Uint8Array | Uint16Array) => void;
export type Decoder = (src: Uint8Array | Uint16Array, dst: Float32Array) => void;

/** 1.5 * 2^52: (v + R) - R rounds a double 0 <= v < 2^51 to the nearest integer, ties to even. */
const R = 6755399441055744;

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
    } else c = (Math.abs(src[i]) * 16777216 + R) - R; // float16 subnormal grid 2^-24 (ties to even)
    dst[i] = s | c;
  }
}

/**
 * float16 -> float32, exact; NaN payloads kept. Branches on the exponent (well predicted on
 * ordinary data, where subnormals and specials are rare); this measured faster here than the
 * multiply-by-2^112 renormalisation the small formats use.
 */
export function decodeF16(src: Uint16Array, dst: Float32Array): void {
  const u = bitsOf(dst);
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const h = src[i];
    const s = (h & 0x8000) << 16;
    const e = h & 0x7c00;
    const f = h & 0x3ff;
    if (e === 0) {
      // zero / subnormal: normalise by counting leading zeros (f * 2^-24 exactly)
      if (f === 0) u[i] = s;
      else {
        const lz = Math.clz32(f) - 21; // shift that brings the top set bit to bit 10
        u[i] = s | ((113 - lz) << 23) | (((f << lz) & 0x3ff) << 13);
      }
    } else if (e === 0x7c00) u[i] = s | 0x7f800000 | (f << 13);
    else u[i] = s | ((h & 0x7fff) + 0x1c000) << 13;
  }
}

// ---- 8-bit and smaller (signed) ---------------------------------------------------------------
//
// One hand-specialised loop per format and direction, every constant a literal (a parametrised
// loop measured ~1.6x slower). Encode: the normal range rounds on the bit pattern (add half-ulp
// minus one plus the kept LSB, shift, rebias), the target-subnormal range scales |x| onto the
// subnormal grid (exact) and rounds it to nearest-even with the 1.5 * 2^52 addition; decode puts
// the sign and magnitude bits into a float32 and multiplies by 2^(127 - bias), which renormalises
// subnormals exactly. Both stay branch-free on ordinary data (NaN / inf / overflow aside).

/** float32 -> e4m3fn: overflow and inf -> NaN (S.1111.111), max 448 = 0x7E. */
export function encodeE4m3(src: Float32Array, dst: Uint8Array): void {
  const u = bitsOf(src);
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const x = u[i];
    const s = (x >>> 24) & 0x80;
    const a = x & 0x7fffffff;
    let c: number;
    if (a >= 0x3c800000) { // |x| >= 2^-6 (normal), inf, NaN
      if (a >= 0x7f800000) c = 0x7f;
      else {
        c = ((a + 0x7ffff + ((a >>> 20) & 1)) >>> 20) - 0x3c0;
        if (c > 0x7e) c = 0x7f;
      }
    } else c = (Math.abs(src[i]) * 512 + R) - R; // subnormal grid 2^-9
    dst[i] = s | c;
  }
}

export function decodeE4m3(src: Uint8Array, dst: Float32Array): void {
  const u = bitsOf(dst);
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const c = src[i];
    if ((c & 0x7f) === 0x7f) u[i] = ((c & 0x80) << 24) | 0x7fc00000;
    else {
      u[i] = ((c & 0x80) << 24) | ((c & 0x7f) << 20);
      dst[i] *= 2 ** 120; // 2^(127 - 7)
    }
  }
}

/** float32 -> e5m2: overflow -> inf, NaN -> S.11111.10. */
export function encodeE5m2(src: Float32Array, dst: Uint8Array): void {
  const u = bitsOf(src);
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const x = u[i];
    const s = (x >>> 24) & 0x80;
    const a = x & 0x7fffffff;
    let c: number;
    if (a >= 0x38800000) { // |x| >= 2^-14
      if (a > 0x7f800000) c = 0x7e;
      else {
        c = ((a + 0xfffff + ((a >>> 21) & 1)) >>> 21) - 0x1c0;
        if (c > 0x7b) c = 0x7c;
      }
    } else c = (Math.abs(src[i]) * 65536 + R) - R; // subnormal grid 2^-16
    dst[i] = s | c;
  }
}

export function decodeE5m2(src: Uint8Array, dst: Float32Array): void {
  const u = bitsOf(dst);
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const c = src[i];
    if ((c & 0x7c) === 0x7c) u[i] = ((c & 0x80) << 24) | ((c & 3) === 0 ? 0x7f800000 : 0x7fc00000);
    else {
      u[i] = ((c & 0x80) << 24) | ((c & 0x7f) << 21);
      dst[i] *= 2 ** 112; // 2^(127 - 15)
    }
  }
}

/** float32 -> e3m2fn (6 bits): saturates to ±28 (no inf/NaN), NaN -> 0x20 (-0). */
export function encodeE3m2(src: Float32Array, dst: Uint8Array): void {
  const u = bitsOf(src);
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const x = u[i];
    const s = (x >>> 26) & 0x20;
    const a = x & 0x7fffffff;
    let c: number;
    if (a >= 0x3e800000) { // |x| >= 2^-2
      if (a > 0x7f800000) { dst[i] = 0x20; continue; }
      c = ((a + 0xfffff + ((a >>> 21) & 1)) >>> 21) - 0x1f0;
      if (c > 0x1f) c = 0x1f;
    } else c = (Math.abs(src[i]) * 16 + R) - R; // subnormal grid 2^-4
    dst[i] = s | c;
  }
}

export function decodeE3m2(src: Uint8Array, dst: Float32Array): void {
  const u = bitsOf(dst);
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const c = src[i];
    u[i] = ((c & 0x20) << 26) | ((c & 0x1f) << 21);
    dst[i] *= 2 ** 124; // 2^(127 - 3)
  }
}

/** float32 -> e2m3fn (6 bits): saturates to ±7.5, NaN -> 0x20. */
export function encodeE2m3(src: Float32Array, dst: Uint8Array): void {
  const u = bitsOf(src);
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const x = u[i];
    const s = (x >>> 26) & 0x20;
    const a = x & 0x7fffffff;
    let c: number;
    if (a >= 0x3f800000) { // |x| >= 1
      if (a > 0x7f800000) { dst[i] = 0x20; continue; }
      c = ((a + 0x7ffff + ((a >>> 20) & 1)) >>> 20) - 0x3f0;
      if (c > 0x1f) c = 0x1f;
    } else c = (Math.abs(src[i]) * 8 + R) - R; // subnormal grid 2^-3
    dst[i] = s | c;
  }
}

export function decodeE2m3(src: Uint8Array, dst: Float32Array): void {
  const u = bitsOf(dst);
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const c = src[i];
    u[i] = ((c & 0x20) << 26) | ((c & 0x1f) << 20);
    dst[i] *= 2 ** 126; // 2^(127 - 1)
  }
}

/** float32 -> e2m1fn (4 bits): saturates to ±6, NaN -> 0x8. */
export function encodeE2m1(src: Float32Array, dst: Uint8Array): void {
  const u = bitsOf(src);
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const x = u[i];
    const s = (x >>> 28) & 0x8;
    const a = x & 0x7fffffff;
    let c: number;
    if (a >= 0x3f800000) { // |x| >= 1
      if (a > 0x7f800000) { dst[i] = 0x8; continue; }
      c = ((a + 0x1fffff + ((a >>> 22) & 1)) >>> 22) - 0xfc;
      if (c > 0x7) c = 0x7;
    } else c = (Math.abs(src[i]) * 2 + R) - R; // subnormal grid 2^-1
    dst[i] = s | c;
  }
}

export function decodeE2m1(src: Uint8Array, dst: Float32Array): void {
  const u = bitsOf(dst);
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const c = src[i];
    u[i] = ((c & 0x8) << 28) | ((c & 0x7) << 22);
    dst[i] *= 2 ** 126; // 2^(127 - 1)
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

const IMPLS: Record<string, { encode: Encoder; decode: Decoder }> = {
  float16: { encode: encodeF16 as Encoder, decode: decodeF16 as Decoder },
  bfloat16: { encode: encodeBf16 as Encoder, decode: decodeBf16 as Decoder },
  float8_e4m3fn: { encode: encodeE4m3 as Encoder, decode: decodeE4m3 as Decoder },
  float8_e5m2: { encode: encodeE5m2 as Encoder, decode: decodeE5m2 as Decoder },
  float8_e8m0fnu: { encode: encodeE8m0 as Encoder, decode: decodeE8m0 as Decoder },
  float6_e3m2fn: { encode: encodeE3m2 as Encoder, decode: decodeE3m2 as Decoder },
  float6_e2m3fn: { encode: encodeE2m3 as Encoder, decode: decodeE2m3 as Decoder },
  float4_e2m1fn: { encode: encodeE2m1 as Encoder, decode: decodeE2m1 as Decoder },
};

/** The plain-JS encoder and decoder of a dtype (canonical name). */
export function plainJs(dtype: string): { encode: Encoder; decode: Decoder } {
  const impl = IMPLS[dtype];
  if (!impl) throw new Error(`no plain-JS implementation of ${dtype}`);
  return impl;
}
