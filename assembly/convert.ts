// Bulk conversions over WebAssembly memory: SIMD for float32 -> code under nearest-even (the hot
// path), the generic scalar converter of formats.ts for every other mode and for binary64 input,
// table lookups (8-bit and smaller) or SIMD bit arithmetic (16-bit) for decoding.
import {
  F32, F16, BF16, E4M3FN, E5M2, E8M0FNU, E3M2FN, E2M3FN, E2M1FN, FORMAT_COUNT, ROUND_NEAREST_EVEN, ROUND_STOCHASTIC,
  bits, mbits, bias, emin, overflowCode, nanCode, encodeBits32, encodeBits64, decodeBits32,
} from "./formats";

/** splitmix64 output number `index` of the stream `seed`: counter-based, so chunking never changes results. */
@inline export function randomBits(seed: u64, index: u64): u64 {
  let z = seed + (index + 1) * 0x9e3779b97f4a7c15;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  return z ^ (z >> 31);
}

/** Stores one code of `width` bytes as element i of dst. */
@inline export function storeCode(dst: usize, i: usize, width: i32, code: u32): void {
  if (width == 4) store<u32>(dst + (i << 2), code);
  else if (width == 2) store<u16>(dst + (i << 1), <u16>code);
  else store<u8>(dst + i, <u8>code);
}

/** Bytes per code in unpacked form: 4, 2 or 1. */
@inline export function codeWidth(fmt: i32): i32 {
  const b = bits(fmt);
  return b > 16 ? 4 : b > 8 ? 2 : 1;
}

// ---- float32 -> code, nearest-even, SIMD ------------------------------------------------------

/**
 * Four lanes of float32 bits -> four codes (as i32 lanes), nearest-even, ml_dtypes semantics.
 * Normal range: integer rounding on the bit pattern (add half-ulp-minus-one plus the kept LSB).
 * Subnormal range: one float add of 2^(emin - m + 23), whose ulp is the target's subnormal step,
 * makes the FPU round (wasm never flushes subnormals).
 */
@inline function encodeLanes(
  x: v128, shift: i32, roundBias: v128, rebias: v128, subThresh: v128, magic: v128,
  ovf: v128, nanC: v128, signShift: i32,
): v128 {
  const sign = v128.and(x, i32x4.splat(0x80000000));
  const a = v128.and(x, i32x4.splat(0x7fffffff)); // non-negative: signed compares below are exact
  const lsb = v128.and(i32x4.shr_u(a, shift), i32x4.splat(1));
  const rn = i32x4.sub(i32x4.shr_u(i32x4.add(i32x4.add(a, roundBias), lsb), shift), rebias);
  const cs = i32x4.sub(f32x4.add(a, magic), magic); // integer difference of the float bit patterns
  let code = v128.bitselect(cs, rn, i32x4.lt_s(a, subThresh));
  // Every overflow code is >= maxCode, every in-range code <= maxCode: one min clamps (inf, NaN or max).
  code = i32x4.min_s(code, ovf);
  code = v128.bitselect(nanC, code, i32x4.gt_s(a, i32x4.splat(0x7f800000)));
  return v128.xor(code, i32x4.shr_u(sign, signShift));
}

/**
 * Converts n float32 at src to one-byte codes (8-bit and smaller formats but e8m0fnu) under
 * nearest-even; returns how many it converted (a multiple of 16). Inlined once per format with a constant `fmt`, so every parameter is a constant.
 */
@inline function encodeF32NearestSimd(fmt: i32, src: usize, dst: usize, n: usize, saturate: bool): usize {
  const m = mbits(fmt);
  const shift = 23 - m;
  const b = bias(fmt);
  const roundBias = i32x4.splat((1 << (shift - 1)) - 1);
  const rebias = i32x4.splat((127 - b) << m);
  const subThresh = i32x4.splat((127 + emin(fmt)) << 23); // below 2^emin: target subnormal
  const magic = i32x4.splat((127 + emin(fmt) - m + 23) << 23); // 2^(emin - m + 23)
  const ovf = i32x4.splat(overflowCode(fmt, saturate));
  // Positive NaN code; the input's sign is XORed in below (codes have a clear sign bit but fp6/fp4's
  // NaN code, -0.0, whose sign a negative NaN flips to +0.0, as ml_dtypes does).
  const nanC = i32x4.splat(nanCode(fmt, false, 0));
  const signShift = 32 - bits(fmt);
  const blocks = n >> 4;
  for (let k: usize = 0; k < blocks; k++) {
    const s = src + (k << 6);
    const c0 = encodeLanes(v128.load(s), shift, roundBias, rebias, subThresh, magic, ovf, nanC, signShift);
    const c1 = encodeLanes(v128.load(s, 16), shift, roundBias, rebias, subThresh, magic, ovf, nanC, signShift);
    const c2 = encodeLanes(v128.load(s, 32), shift, roundBias, rebias, subThresh, magic, ovf, nanC, signShift);
    const c3 = encodeLanes(v128.load(s, 48), shift, roundBias, rebias, subThresh, magic, ovf, nanC, signShift);
    v128.store(dst + (k << 4), i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_u(c0, c1), i16x8.narrow_i32x4_u(c2, c3)));
  }
  return blocks << 4;
}

/**
 * bfloat16 has float32's exponent range: only the fraction is rounded, and a round-up past max
 * carries into the exponent and gives exactly inf (0x7f80); saturation is one min.
 */
function encodeBf16NearestSimd(src: usize, dst: usize, n: usize, saturate: bool): usize {
  const blocks = n >> 4;
  const ovf = i32x4.splat(saturate ? 0x7f7f : 0x7f80);
  for (let k: usize = 0; k < blocks; k++) {
    const s = src + (k << 6);
    const d = dst + (k << 5);
    v128.store(d, i16x8.narrow_i32x4_u(bf16Lanes(v128.load(s), ovf), bf16Lanes(v128.load(s, 16), ovf)));
    v128.store(d, i16x8.narrow_i32x4_u(bf16Lanes(v128.load(s, 32), ovf), bf16Lanes(v128.load(s, 48), ovf)), 16);
  }
  return blocks << 4;
}

@inline function bf16Lanes(x: v128, ovf: v128): v128 {
  const a = v128.and(x, i32x4.splat(0x7fffffff));
  const lsb = v128.and(i32x4.shr_u(a, 16), i32x4.splat(1));
  let code = i32x4.min_s(i32x4.shr_u(i32x4.add(i32x4.add(a, i32x4.splat(0x7fff)), lsb), 16), ovf);
  code = v128.bitselect(i32x4.splat(0x7fc0), code, i32x4.gt_s(a, i32x4.splat(0x7f800000)));
  return v128.or(code, i32x4.shr_u(v128.and(x, i32x4.splat(0x80000000)), 16));
}

/**
 * float16 by float arithmetic (the method of Maratyszcza's FP16 library): scaling by 2^112 then
 * 2^-110 sends everything at or beyond 65520 to inf, and one float add of a power of two chosen
 * from the input's exponent makes the FPU round the fraction to 10 bits, nearest-even, subnormals
 * included. NaN keeps numpy's payload rule. About two thirds of the integer method's instructions.
 */
function encodeF16NearestSimd(src: usize, dst: usize, n: usize, saturate: bool): usize {
  const blocks = n >> 4;
  const clamp = i32x4.splat(saturate ? 0x7bff : 0x7c00);
  for (let k: usize = 0; k < blocks; k++) {
    const s = src + (k << 6);
    const d = dst + (k << 5);
    v128.store(d, i16x8.narrow_i32x4_u(f16EncodeLanes(v128.load(s), clamp), f16EncodeLanes(v128.load(s, 16), clamp)));
    v128.store(d, i16x8.narrow_i32x4_u(f16EncodeLanes(v128.load(s, 32), clamp), f16EncodeLanes(v128.load(s, 48), clamp)), 16);
  }
  return blocks << 4;
}

@inline function f16EncodeLanes(w: v128, clamp: v128): v128 {
  const a = v128.and(w, i32x4.splat(0x7fffffff));
  const base = f32x4.mul(f32x4.mul(a, i32x4.splat(0x77800000)), i32x4.splat(0x08800000)); // * 2^112 * 2^-110
  // 2^(max(e, -14) + 13 - 10 + ...): the addend whose ulp is float16's ulp at this exponent.
  const bias = i32x4.max_u(v128.and(i32x4.shl(a, 1), i32x4.splat(0xff000000)), i32x4.splat(0x71000000));
  const r = f32x4.add(i32x4.add(i32x4.shr_u(bias, 1), i32x4.splat(0x07800000)), base);
  const code = i32x4.min_s(i32x4.add(v128.and(i32x4.shr_u(r, 13), i32x4.splat(0x7c00)), v128.and(r, i32x4.splat(0x0fff))), clamp);
  // numpy NaN: 0x7c00 + (fraction >> 13), at least 1.
  const nan = v128.or(i32x4.max_s(v128.and(i32x4.shr_u(a, 13), i32x4.splat(0x3ff)), i32x4.splat(1)), i32x4.splat(0x7c00));
  const out = v128.bitselect(nan, code, i32x4.gt_s(a, i32x4.splat(0x7f800000)));
  return v128.or(out, i32x4.shr_u(v128.and(w, i32x4.splat(0x80000000)), 16));
}

/**
 * e8m0fnu: the nearest power of two with ties up; inputs in (2^-127, 2^-126) go to 2^-126 and
 * anything at or below 2^-127 to code 0 (ml_dtypes); zero, negatives, NaN -> 0xFF (NaN).
 */
function encodeE8m0NearestSimd(src: usize, dst: usize, n: usize, saturate: bool): usize {
  const blocks = n >> 4;
  const bad = saturate ? 0 : 0xff; // zero / negative
  const over = saturate ? 0xfe : 0xff; // finite overflow and +inf
  for (let k: usize = 0; k < blocks; k++) {
    const s = src + (k << 6);
    const c0 = e8m0Lanes(v128.load(s), bad, over), c1 = e8m0Lanes(v128.load(s, 16), bad, over);
    const c2 = e8m0Lanes(v128.load(s, 32), bad, over), c3 = e8m0Lanes(v128.load(s, 48), bad, over);
    v128.store(dst + (k << 4), i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_u(c0, c1), i16x8.narrow_i32x4_u(c2, c3)));
  }
  return blocks << 4;
}

@inline function e8m0Lanes(x: v128, bad: i32, over: i32): v128 {
  const normal = i32x4.shr_u(i32x4.add(x, i32x4.splat(0x00400000)), 23);
  const sub = v128.and(i32x4.gt_s(x, i32x4.splat(0x00400000)), i32x4.splat(1));
  let code = v128.bitselect(sub, normal, i32x4.lt_s(x, i32x4.splat(0x00800000)));
  code = i32x4.min_s(code, i32x4.splat(over));
  // x <= 0 as a signed integer: +0, and every negative (sign bit set) input.
  code = v128.bitselect(i32x4.splat(bad), code, i32x4.le_s(x, i32x4.splat(0)));
  return v128.bitselect(i32x4.splat(0xff), code, i32x4.gt_s(v128.and(x, i32x4.splat(0x7fffffff)), i32x4.splat(0x7f800000)));
}

/**
 * float32 -> bfloat16 with stochastic rounding, the same codes as encodeBits32: bfloat16 keeps
 * float32's exponent range, so for a finite input the dropped bits are its low 16 and the code is
 * its high 16 plus one with probability low16 / 2^16, i.e. when the top 16 random bits are below
 * low16 (what encodeBits64's comparison of rnd >> (64 - shift) with the remainder reduces to, for
 * normal and subnormal inputs alike). Inf, NaN and a carry past the largest finite code take the
 * generic path.
 */
function encodeBf16Stochastic(src: usize, dst: usize, n: usize, saturate: bool, seed: u64, offset: u64): void {
  for (let i: usize = 0; i < n; i++) {
    const x = load<u32>(src + (i << 2));
    const ax = x & 0x7fffffff;
    const r = randomBits(seed, offset + <u64>i);
    const mag = (ax >> 16) + select<u32>(1, 0, <u32>(r >> 48) < (ax & 0xffff));
    const code = mag > 0x7f7f ? encodeBits32(BF16, x, ROUND_STOCHASTIC, saturate, r) : ((x >> 16) & 0x8000) | mag;
    store<u16>(dst + (i << 1), <u16>code);
  }
}

/** float32[n] at src -> codes at dst (u32 / u16 / u8 per element). `offset` is the stream position of src[0]. */
export function encodeF32(fmt: i32, src: usize, dst: usize, n: usize, mode: i32, saturate: bool, seed: u64, offset: u64): void {
  let done: usize = 0;
  if (mode == ROUND_STOCHASTIC && fmt == BF16) return encodeBf16Stochastic(src, dst, n, saturate, seed, offset);
  if (mode == ROUND_NEAREST_EVEN) {
    if (fmt == F32) {
      if (!saturate) { memory.copy(dst, src, n << 2); return; }
    } else if (fmt == BF16) done = encodeBf16NearestSimd(src, dst, n, saturate);
    else if (fmt == E8M0FNU) done = encodeE8m0NearestSimd(src, dst, n, saturate);
    else if (fmt == F16) done = encodeF16NearestSimd(src, dst, n, saturate);
    else if (fmt == E4M3FN) done = encodeF32NearestSimd(E4M3FN, src, dst, n, saturate);
    else if (fmt == E5M2) done = encodeF32NearestSimd(E5M2, src, dst, n, saturate);
    else if (fmt == E3M2FN) done = encodeF32NearestSimd(E3M2FN, src, dst, n, saturate);
    else if (fmt == E2M3FN) done = encodeF32NearestSimd(E2M3FN, src, dst, n, saturate);
    else if (fmt == E2M1FN) done = encodeF32NearestSimd(E2M1FN, src, dst, n, saturate);
  }
  const width = codeWidth(fmt);
  const stochastic = mode == ROUND_STOCHASTIC;
  for (let i = done; i < n; i++) {
    const r = stochastic ? randomBits(seed, offset + <u64>i) : 0;
    storeCode(dst, i, width, encodeBits32(fmt, load<u32>(src + (i << 2)), mode, saturate, r));
  }
}

/** float64[n] at src -> codes, correctly rounded from the exact binary64 value. */
export function encodeF64(fmt: i32, src: usize, dst: usize, n: usize, mode: i32, saturate: bool, seed: u64, offset: u64): void {
  const width = codeWidth(fmt);
  const stochastic = mode == ROUND_STOCHASTIC;
  for (let i: usize = 0; i < n; i++) {
    const r = stochastic ? randomBits(seed, offset + <u64>i) : 0;
    storeCode(dst, i, width, encodeBits64(fmt, load<u64>(src + (i << 3)), mode, saturate, r));
  }
}

// ---- code -> float32 ---------------------------------------------------------------------------

// 256 float32 bit patterns per 8-bit-or-smaller format, filled once by initTables().
const LUT: usize = memory.data(256 * 4 * FORMAT_COUNT, 16);

/** Builds the decode tables from the generic decoder. Called once at instantiation. */
export function initTables(): void {
  for (let fmt = 0; fmt < FORMAT_COUNT; fmt++) {
    if (bits(fmt) > 8) continue;
    const codes = 1 << bits(fmt);
    for (let c = 0; c < 256; c++) {
      // Codes beyond the format's width decode as their low bits would (callers pass valid codes).
      store<u32>(LUT + ((<usize>(fmt * 256 + c)) << 2), decodeBits32(fmt, <u32>(c & (codes - 1))));
    }
  }
}

/** n codes at src -> float32 at dst. */
export function decode(fmt: i32, src: usize, dst: usize, n: usize): void {
  if (fmt == F32) { memory.copy(dst, src, n << 2); return; }
  let i: usize = 0;
  if (fmt == BF16) {
    // bfloat16 is the top half of a float32: widen and shift, payloads included.
    for (; i + 8 <= n; i += 8) {
      const h = v128.load(src + (i << 1));
      v128.store(dst + (i << 2), i32x4.shl(i32x4.extend_low_i16x8_u(h), 16));
      v128.store(dst + (i << 2), i32x4.shl(i32x4.extend_high_i16x8_u(h), 16), 16);
    }
    for (; i < n; i++) store<u32>(dst + (i << 2), (<u32>load<u16>(src + (i << 1))) << 16);
    return;
  }
  if (fmt == F16) {
    for (; i + 8 <= n; i += 8) {
      const h = v128.load(src + (i << 1));
      v128.store(dst + (i << 2), f16Lanes(i32x4.extend_low_i16x8_u(h)));
      v128.store(dst + (i << 2), f16Lanes(i32x4.extend_high_i16x8_u(h)), 16);
    }
    for (; i < n; i++) store<u32>(dst + (i << 2), decodeBits32(F16, load<u16>(src + (i << 1))));
    return;
  }
  const table = LUT + (<usize>(fmt * 256) << 2);
  for (; i + 4 <= n; i += 4) {
    const c = load<u32>(src + i);
    store<u32>(dst + (i << 2), load<u32>(table + ((c & 0xff) << 2)));
    store<u32>(dst + (i << 2), load<u32>(table + (((c >> 8) & 0xff) << 2)), 4);
    store<u32>(dst + (i << 2), load<u32>(table + (((c >> 16) & 0xff) << 2)), 8);
    store<u32>(dst + (i << 2), load<u32>(table + ((c >> 24) << 2)), 12);
  }
  for (; i < n; i++) store<u32>(dst + (i << 2), load<u32>(table + ((<usize>load<u8>(src + i)) << 2)));
}

/** float16 lanes (zero-extended to i32) -> float32 bits; exact, NaN payloads kept (numpy). */
@inline function f16Lanes(h: v128): v128 {
  const o = i32x4.shl(v128.and(h, i32x4.splat(0x7fff)), 13);
  const e = v128.and(o, i32x4.splat(0x0f800000));
  let r = i32x4.add(o, i32x4.splat((127 - 15) << 23));
  // inf / NaN: push the exponent to all ones
  r = i32x4.add(r, v128.and(i32x4.eq(e, i32x4.splat(0x0f800000)), i32x4.splat((128 - 16) << 23)));
  // zero / subnormal: renormalise with one float subtraction (exact)
  const sub = f32x4.sub(i32x4.add(r, i32x4.splat(1 << 23)), i32x4.splat(113 << 23));
  r = v128.bitselect(sub, r, i32x4.eq(e, i32x4.splat(0)));
  return v128.or(r, i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16));
}
