// Format codes <-> float32 bits in integer arithmetic only (no float ops, so no flushing of
// subnormals and no NaN canonicalisation): the WGSL twin of assembly/formats.ts, bit-identical
// to it. Format ids as in src/dtype/formats.ts; 9 is int32.
//   fmt:        f32  f16  bf16 e4m3fn e5m2 e8m0fnu e3m2fn e2m3fn e2m1fn
//   bits        32   16   16   8      8    8       6      6      4
//   exponent    8    5    8    4      5    8       3      2      2
//   mantissa    23   10   7    3      2    0       2      3      1

// Format ids (F32 ... E2M1FN, I32), NAN_*, ROUND_*, op ids and the trait switches fmt_bits,
// fmt_ebits, fmt_mbits, fmt_nan_kind, fmt_has_inf and fmt_is_signed come first, generated from the
// TypeScript table (build/constants.wgsl, by scripts/gen-constants.ts).

fn fmt_bias(f: u32) -> i32 { return (1 << (fmt_ebits(f) - 1u)) - 1; }
fn fmt_sign_bit(f: u32) -> u32 { return select(0u, 1u << (fmt_bits(f) - 1u), fmt_is_signed(f)); }
fn fmt_inf_code(f: u32) -> u32 { return ((1u << fmt_ebits(f)) - 1u) << fmt_mbits(f); }

// Whether the format's NaN is its all-ones code (e4m3fn, e8m0fnu): one code less of finite range.
fn fmt_nan_is_top(f: u32) -> bool { let k = fmt_nan_kind(f); return k == NAN_ALL_ONES || k == NAN_UNSIGNED; }

fn fmt_max_code(f: u32) -> u32 {
  let ones = (1u << (fmt_ebits(f) + fmt_mbits(f))) - 1u;
  if (fmt_has_inf(f)) { return ones - (1u << fmt_mbits(f)); }
  if (fmt_nan_is_top(f)) { return ones - 1u; }
  return ones;
}

fn fmt_overflow_code(f: u32, saturate: bool) -> u32 {
  if (saturate) { return fmt_max_code(f); }
  if (fmt_has_inf(f)) { return fmt_inf_code(f); }
  if (fmt_nan_is_top(f)) { return fmt_max_code(f) + 1u; }
  return fmt_max_code(f);
}

// NaN code for a float32 NaN with fraction bits `frac` (numpy keeps float16 payloads).
fn fmt_nan_code(f: u32, negative: bool, frac: u32) -> u32 {
  let s = select(0u, fmt_sign_bit(f), negative);
  switch fmt_nan_kind(f) {
    case NAN_PAYLOAD: {
      var p = frac >> (23u - fmt_mbits(f));
      if (p == 0u) { p = 1u; }
      return s | fmt_inf_code(f) | p;
    }
    case NAN_IEEE: { return s | fmt_inf_code(f) | (1u << (fmt_mbits(f) - 1u)); }
    case NAN_ALL_ONES: { return s | ((1u << (fmt_ebits(f) + fmt_mbits(f))) - 1u); }
    case NAN_UNSIGNED: { return 0xffu; }
    default: { return select(fmt_sign_bit(f), 0u, negative); } // fp6 / fp4: the zero of the opposite sign (ml_dtypes)
  }
}


// ---- 64-bit unsigned integers as vec2<u32>(lo, hi) (WGSL has no u64) ---------------------------

fn u64_add(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
  let lo = a.x + b.x;
  return vec2<u32>(lo, a.y + b.y + select(0u, 1u, lo < a.x));
}

// High 32 bits of the 64-bit product a * b, from 16-bit limbs (every partial sum fits in a u32).
fn mul_hi32(a: u32, b: u32) -> u32 {
  let a0 = a & 0xffffu;
  let a1 = a >> 16u;
  let b0 = b & 0xffffu;
  let b1 = b >> 16u;
  let p01 = a0 * b1;
  let p10 = a1 * b0;
  let mid = ((a0 * b0) >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
  return a1 * b1 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
}

// a * b mod 2^64.
fn u64_mul(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
  return vec2<u32>(a.x * b.x, mul_hi32(a.x, b.x) + a.x * b.y + a.y * b.x);
}

// z ^ (z >> s), 0 < s < 32.
fn u64_xorshr(z: vec2<u32>, s: u32) -> vec2<u32> {
  return z ^ vec2<u32>((z.x >> s) | (z.y << (32u - s)), z.y >> s);
}

// splitmix64 output number `index` of the stream `seed`: assembly/convert.ts randomBits, bit for bit.
fn splitmix64(seed: vec2<u32>, index: vec2<u32>) -> vec2<u32> {
  var z = u64_add(seed, u64_mul(u64_add(index, vec2<u32>(1u, 0u)), vec2<u32>(0x7f4a7c15u, 0x9e3779b9u)));
  z = u64_mul(u64_xorshr(z, 30u), vec2<u32>(0x1ce4e5b9u, 0xbf58476du));
  z = u64_mul(u64_xorshr(z, 27u), vec2<u32>(0x133111ebu, 0x94d049bbu));
  return u64_xorshr(z, 31u);
}

// Stochastic rounding's decision for `rem`, the dropped low `shift` bits of a float32 significand
// (shift > 0): round up iff rnd < rem * 2^(64 - shift) (floored), a 64-bit compare. This is
// assembly/formats.ts encodeBits64's test on the binary64 significand (sig32 << 29) in both of its
// ranges: (rnd >> (64 - shift64)) < rem64 for shift64 < 64, rnd < sig64 >> (shift64 - 64) below.
fn stochastic_up(rem: u32, shift: u32, rnd: vec2<u32>) -> bool {
  let k = 64 - i32(shift);
  var t = vec2<u32>(0u, 0u);
  if (k >= 32) {
    t = vec2<u32>(0u, rem << u32(k - 32));      // rem < 2^shift: no bits lost
  } else if (k > 0) {
    t = vec2<u32>(rem << u32(k), rem >> u32(32 - k));
  } else if (k > -32) {
    t = vec2<u32>(rem >> u32(-k), 0u);
  }
  return rnd.y < t.y || (rnd.y == t.y && rnd.x < t.x);
}

// float32 bits -> code: nearest-even (ml_dtypes) or toward zero, optionally saturating.
fn encode_bits(f: u32, x: u32, saturate: bool, toward_zero: bool) -> u32 {
  return encode_bits_mode(f, x, saturate, select(ROUND_NEAREST_EVEN, ROUND_TOWARD_ZERO, toward_zero), vec2<u32>(0u, 0u));
}

// float32 bits -> code under rounding `mode` (ROUND_*); `rnd` is 64 uniform random bits
// (splitmix64), used only by stochastic rounding. Bit-identical to assembly/formats.ts encodeBits32.
fn encode_bits_mode(f: u32, x: u32, saturate: bool, mode: u32, rnd: vec2<u32>) -> u32 {
  if (f == F32) {
    if (saturate && (x & 0x7fffffffu) == 0x7f800000u) { return (x & 0x80000000u) | 0x7f7fffffu; }
    return x;
  }
  if (f == I32) { return u32(i32(bitcast<f32>(x))); }
  let toward_zero = mode == ROUND_TOWARD_ZERO;
  let negative = (x >> 31u) != 0u;
  let ax = x & 0x7fffffffu;
  // 1. NaN
  if (ax > 0x7f800000u) { return fmt_nan_code(f, negative, ax & 0x7fffffu); }
  // 2. unsigned formats: zero and negatives
  if (f == E8M0FNU && (negative || ax == 0u)) { return select(0xffu, 0u, saturate); }
  let s = select(0u, fmt_sign_bit(f), negative);
  // 3. infinity
  if (ax == 0x7f800000u) {
    if (fmt_has_inf(f) && !saturate) { return s | fmt_inf_code(f); }
    return s | fmt_overflow_code(f, saturate);
  }
  // 4. zero
  if (ax == 0u) { return s; }
  // 5. unpack
  var e = i32(ax >> 23u);
  var sig = ax & 0x7fffffu;
  if (e == 0) {
    let lz = countLeadingZeros(sig) - 8u;
    sig = sig << lz;
    e = 1 - i32(lz);
  } else {
    sig = sig | 0x800000u;
  }
  e = e - 127;
  // 6. align to the target grid
  let m = fmt_mbits(f);
  let lo = 1 - fmt_bias(f);
  let te = max(e, lo);
  let shift = u32(23 - i32(m) + (te - e));
  // 7. round
  var q = 0u;
  var rem = sig; // shift >= 24: every bit is dropped
  if (shift < 32u) {
    q = sig >> shift;
    rem = sig & ((1u << shift) - 1u);
  }
  if (mode == ROUND_NEAREST_EVEN) {
    if (shift < 32u) {
      let half = 1u << (shift - 1u);
      if (rem > half || (rem == half && (q & 1u) != 0u)) { q = q + 1u; }
    }
  } else if (mode == ROUND_STOCHASTIC) {
    if (stochastic_up(rem, shift, rnd)) { q = q + 1u; }
  }
  // 8. pack
  let code = (u32(te - lo) << m) + q;
  // 9. overflow
  if (code > fmt_max_code(f)) { return s | select(fmt_overflow_code(f, saturate), fmt_max_code(f), toward_zero); }
  return s | code;
}

// code -> float32 bits, exact.
fn decode_bits(f: u32, code: u32) -> u32 {
  switch f {
    case F32: { return code; }
    case I32: { return bitcast<u32>(f32(bitcast<i32>(code))); }
    case BF16: { return code << 16u; }
    case E8M0FNU: {
      if (code == 0xffu) { return 0x7fc00000u; }
      return select(code << 23u, 0x00400000u, code == 0u);
    }
    default: {}
  }
  let m = fmt_mbits(f);
  let sb = fmt_sign_bit(f);
  let sign = select(0u, 0x80000000u, (code & sb) != 0u);
  let mag = code & (sb - 1u);
  let exp_field = mag >> m;
  let frac = mag & ((1u << m) - 1u);
  let exp_ones = (1u << fmt_ebits(f)) - 1u;
  if ((f == F16 || f == E5M2) && exp_field == exp_ones) {
    if (frac == 0u) { return sign | 0x7f800000u; }
    if (f == F16) { return sign | 0x7f800000u | (frac << 13u); }
    return sign | 0x7fc00000u;
  }
  if (f == E4M3FN && mag == 0x7fu) { return sign | 0x7fc00000u; }
  if (exp_field != 0u) {
    return sign | (u32(i32(exp_field) - fmt_bias(f) + 127) << 23u) | (frac << (23u - m));
  }
  if (frac == 0u) { return sign; }
  // format subnormal: frac * 2^(1 - bias - m), a float32 normal for every format here
  let p = 31u - countLeadingZeros(frac);
  let exponent = 1 - fmt_bias(f) - i32(m) + i32(p);
  return sign | (u32(exponent + 127) << 23u) | ((frac << (23u - p)) & 0x7fffffu);
}

// Elements per output group and words per group: one word, except fp6 (16 codes in 3 words).
fn group_elems(f: u32) -> u32 {
  let b = fmt_bits(f);
  return select(32u / b, 16u, b == 6u);
}
fn group_words(f: u32) -> u32 { return select(1u, 3u, fmt_bits(f) == 6u); }
