// One table of format traits drives every encoder and decoder (layer 1 of ARCHITECTURE.md).
//
// The format ids, NaN kinds, rounding-mode ids and the trait switches (bits, ebits, mbits,
// nanKind, hasInf, isSigned) are generated from the TypeScript table (src/dtype/formats.ts) by
// scripts/gen-constants.ts into build/constants.ts, so the three languages cannot disagree. They
// are switches rather than arrays so that a call with a constant format folds to a constant: the
// SIMD kernels are instantiated per format (convert.ts) with every shift and mask known at compile time.
//   fmt:        f32  f16  bf16 e4m3fn e5m2 e8m0fnu e3m2fn e2m3fn e2m1fn
//   bits        32   16   16   8      8    8       6      6      4
//   exponent    8    5    8    4      5    8       3      2      2
//   mantissa    23   10   7    3      2    0       2      3      1
import {
  F32, F16, BF16, E4M3FN, E5M2, E8M0FNU, E3M2FN, E2M3FN, E2M1FN, FORMAT_COUNT,
  NAN_NONE, NAN_IEEE, NAN_PAYLOAD, NAN_ALL_ONES, NAN_UNSIGNED, ROUND_NEAREST_EVEN, ROUND_TOWARD_ZERO, ROUND_STOCHASTIC,
  bits, ebits, mbits, nanKind, hasInf, isSigned,
} from "../build/constants";
export {
  F32, F16, BF16, E4M3FN, E5M2, E8M0FNU, E3M2FN, E2M3FN, E2M1FN, FORMAT_COUNT,
  NAN_NONE, NAN_IEEE, NAN_PAYLOAD, NAN_ALL_ONES, NAN_UNSIGNED, ROUND_NEAREST_EVEN, ROUND_TOWARD_ZERO, ROUND_STOCHASTIC,
  bits, ebits, mbits, nanKind, hasInf, isSigned,
};

/** IEEE-style bias (1 << (E-1)) - 1; no format here overrides it. */
@inline export function bias(fmt: i32): i32 { return (1 << (ebits(fmt) - 1)) - 1; }
/** Smallest normal exponent; e8m0fnu reuses it for its quirky code 0 (see encodeBits64). */
@inline export function emin(fmt: i32): i32 { return 1 - bias(fmt); }
/** The sign bit of a code, 0 for unsigned formats. */
@inline export function signBit(fmt: i32): u32 { return isSigned(fmt) ? (<u32>1) << (bits(fmt) - 1) : 0; }

/** Largest finite magnitude code, e.g. e4m3fn: 0x7E = (1 + 0b110 * 2^-3) * 2^8 = 448. */
@inline export function maxCode(fmt: i32): u32 {
  const e = ebits(fmt), m = mbits(fmt);
  const allOnes: u32 = ((<u32>1) << (e + m)) - 1; // magnitude bits all set
  if (hasInf(fmt)) return allOnes - ((<u32>1) << m) ; // exponent all ones is inf/NaN: one binade lower, mantissa all ones
  const k = nanKind(fmt);
  if (k == NAN_ALL_ONES || k == NAN_UNSIGNED) return allOnes - 1;
  return allOnes; // fp6 / fp4: every code is finite
}

/** Code of +infinity (formats with inf only). */
@inline export function infCode(fmt: i32): u32 { return (((<u32>1) << ebits(fmt)) - 1) << mbits(fmt); }

/** What a finite overflow (or an infinity) becomes under round-to-nearest, before the sign is applied. */
@inline export function overflowCode(fmt: i32, saturate: bool): u32 {
  if (saturate) return maxCode(fmt);
  if (hasInf(fmt)) return infCode(fmt);
  const k = nanKind(fmt);
  if (k == NAN_ALL_ONES || k == NAN_UNSIGNED) return maxCode(fmt) + 1; // the NaN code
  return maxCode(fmt); // fp6 / fp4 have neither inf nor NaN: ml_dtypes saturates
}

/** NaN code for a NaN input whose payload (fraction bits, left-aligned to bit 63 excluded) is `frac52` of a binary64. */
@inline export function nanCode(fmt: i32, negative: bool, frac52: u64): u32 {
  const k = nanKind(fmt);
  const s: u32 = negative ? signBit(fmt) : 0;
  const m = mbits(fmt);
  // ml_dtypes (fp6/fp4 have no NaN): a NaN with its sign bit clear gives the code of -0.0, one with
  // it set gives +0.0: the code's sign is the NaN's sign flipped.
  if (k == NAN_NONE) return negative ? 0 : signBit(fmt);
  if (k == NAN_UNSIGNED) return 0xff;
  if (k == NAN_ALL_ONES) return s | (((<u32>1) << (ebits(fmt) + m)) - 1);
  if (k == NAN_IEEE) return s | infCode(fmt) | ((<u32>1) << (m - 1));
  // NAN_PAYLOAD (numpy npy_floatbits_to_halfbits): keep the top payload bits; if none survive, set the lowest.
  let payload = <u32>(frac52 >> (52 - m));
  if (payload == 0) payload = 1;
  return s | infCode(fmt) | payload;
}

/**
 * The one generic converter: binary64 bits -> code, with ml_dtypes' semantics under nearest-even.
 * Every finite binary32 is exactly a binary64, so the float32 path calls this too; for binary64
 * inputs the result is correctly rounded from the exact value (no double rounding).
 * `rnd` is 64 uniform random bits, used only by stochastic rounding.
 */
export function encodeBits64(fmt: i32, x: u64, mode: i32, saturate: bool, rnd: u64): u32 {
  const negative = (x >> 63) != 0;
  const ax = x & 0x7fffffffffffffff;
  const m = mbits(fmt);

  // 1. NaN.
  if (ax > 0x7ff0000000000000) return nanCode(fmt, negative, ax & 0x000fffffffffffff);

  // 2. Unsigned formats (e8m0fnu): no zero, no negatives. NaN, or the smallest code when saturating.
  if (!isSigned(fmt) && (negative || ax == 0)) return saturate ? 0 : nanCode(fmt, negative, 0);
  const s: u32 = negative ? signBit(fmt) : 0;

  // 3. Infinity: inf where the format has one (max when saturating), else the overflow rule.
  if (ax == 0x7ff0000000000000) {
    return s | (hasInf(fmt) && !saturate ? infCode(fmt) : overflowCode(fmt, saturate));
  }

  // 4. Zero keeps its sign.
  if (ax == 0) return s;

  // 5. Unpack to significand `sig` (implicit bit at 52) and unbiased exponent `e`.
  let e = <i32>(ax >> 52);
  let sig = ax & 0x000fffffffffffff;
  if (e == 0) {
    const lz = <i32>clz(sig) - 11; // binary64 subnormal: normalise
    sig <<= lz;
    e = 1 - lz;
  } else {
    sig |= 0x0010000000000000;
  }
  e -= 1023;

  // 6. Align to the target grid: below emin the grid spacing stays 2^(emin - m) (subnormals).
  const lo = emin(fmt);
  const te = e > lo ? e : lo;
  const shift = 52 - m + (te - e); // >= 29: every format here is narrower than binary64

  // 7. Round the dropped bits.
  let q: u64 = 0;
  if (shift < 64) {
    q = sig >> shift;
    const rem = sig & (((<u64>1) << shift) - 1);
    if (mode == ROUND_NEAREST_EVEN) {
      const half = (<u64>1) << (shift - 1);
      if (rem > half || (rem == half && (q & 1) != 0)) q++;
    } else if (mode == ROUND_STOCHASTIC) {
      // Round up with probability rem / 2^shift: compare with a uniform integer in [0, 2^shift).
      if ((rnd >> (64 - shift)) < rem) q++;
    }
  } else if (mode == ROUND_STOCHASTIC && shift < 117) {
    // Value below 2^-64 of one grid step; probability sig / 2^shift, exact to 2^-64.
    if (rnd < (sig >> (shift - 64))) q = 1;
  }

  // 8. Pack: (te - emin) << m plus q (q carries the implicit bit, so a carry moves into the exponent).
  //    e8m0fnu (m = 0) follows ml_dtypes here too: its code 0 (2^-127) acts as the format's "zero"
  //    bucket, so inputs in (2^-127, 2^-126) round up to 2^-126, and ties between powers of two go up.
  const code = ((<u64>(te - lo)) << m) + q;

  // 9. Overflow. Round-toward-zero never leaves the finite range from a finite input (IEEE 754).
  const max = maxCode(fmt);
  if (code > <u64>max) return s | (mode == ROUND_TOWARD_ZERO ? max : overflowCode(fmt, saturate));

  // 10. Apply the sign.
  return s | <u32>code;
}

/** float32 bits -> code via the generic converter (NaN payloads are taken from the float32 bits). */
export function encodeBits32(fmt: i32, x: u32, mode: i32, saturate: bool, rnd: u64): u32 {
  if ((x & 0x7fffffff) > 0x7f800000) {
    return nanCode(fmt, (x >> 31) != 0, (<u64>(x & 0x007fffff)) << 29);
  }
  return encodeBits64(fmt, reinterpret<u64>(<f64>reinterpret<f32>(x)), mode, saturate, rnd);
}

/** code -> float32 bits, exact (every format here is a subset of binary32). NaNs as ml_dtypes decodes them. */
export function decodeBits32(fmt: i32, code: u32): u32 {
  const m = mbits(fmt);
  const k = nanKind(fmt);
  if (fmt == E8M0FNU) {
    // 2^(code - 127); 0xFF is NaN. Code 0 is 2^-127, a binary32 subnormal.
    if (code == 0xff) return 0x7fc00000;
    return code == 0 ? 0x00400000 : code << 23;
  }
  const sb = signBit(fmt);
  const sign: u32 = (code & sb) != 0 ? 0x80000000 : 0;
  const mag = code & (sb - 1);
  const expField = <i32>(mag >> m);
  const frac = mag & (((<u32>1) << m) - 1);
  const expAll = (1 << ebits(fmt)) - 1;
  if ((k == NAN_IEEE || k == NAN_PAYLOAD) && expField == expAll) {
    // inf, or NaN: float16 / bfloat16 keep the payload (numpy, Eigen); fp8 gives the canonical quiet NaN.
    if (frac == 0) return sign | 0x7f800000;
    if (k == NAN_PAYLOAD) return sign | 0x7f800000 | (frac << (23 - m));
    return fmt == BF16 ? sign | 0x7f800000 | (frac << 16) : sign | 0x7fc00000;
  }
  if (k == NAN_ALL_ONES && mag == (((<u32>1) << (ebits(fmt) + m)) - 1)) return sign | 0x7fc00000;
  // value = (expField ? 2^m + frac : frac) * 2^(max(expField, 1) - bias - m), exact in binary64.
  const significand = expField == 0 ? frac : frac | ((<u32>1) << m);
  const scale = (expField == 0 ? 1 : expField) - bias(fmt) - m;
  const v = <f64>significand * Math.pow(2.0, <f64>scale);
  return sign | reinterpret<u32>(<f32>v);
}
