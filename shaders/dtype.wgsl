// Format codes <-> float32 bits in integer arithmetic only (no float ops, so no flushing of
// subnormals and no NaN canonicalisation): the WGSL twin of assembly/formats.ts, bit-identical
// to it. Format ids as in src/dtype/formats.ts; 9 is int32.
//   fmt:        f32  f16  bf16 e4m3fn e5m2 e8m0fnu e3m2fn e2m3fn e2m1fn
//   bits        32   16   16   8      8    8       6      6      4
//   exponent    8    5    8    4      5    8       3      2      2
//   mantissa    23   10   7    3      2    0       2      3      1

const F32: u32 = 0u;
const F16: u32 = 1u;
const BF16: u32 = 2u;
const E4M3FN: u32 = 3u;
const E5M2: u32 = 4u;
const E8M0FNU: u32 = 5u;
const E3M2FN: u32 = 6u;
const E2M3FN: u32 = 7u;
const E2M1FN: u32 = 8u;
const I32: u32 = 9u;

fn fmt_bits(f: u32) -> u32 {
  switch f {
    case 0u, 9u: { return 32u; }
    case 1u, 2u: { return 16u; }
    case 6u, 7u: { return 6u; }
    case 8u: { return 4u; }
    default: { return 8u; }
  }
}
fn fmt_ebits(f: u32) -> u32 {
  switch f {
    case 1u, 4u: { return 5u; }
    case 3u: { return 4u; }
    case 6u: { return 3u; }
    case 7u, 8u: { return 2u; }
    default: { return 8u; }
  }
}
fn fmt_mbits(f: u32) -> u32 {
  switch f {
    case 0u: { return 23u; }
    case 1u: { return 10u; }
    case 2u: { return 7u; }
    case 3u, 7u: { return 3u; }
    case 4u, 6u: { return 2u; }
    case 8u: { return 1u; }
    default: { return 0u; }
  }
}
fn fmt_has_inf(f: u32) -> bool { return f == F32 || f == F16 || f == BF16 || f == E5M2; }
fn fmt_bias(f: u32) -> i32 { return (1 << (fmt_ebits(f) - 1u)) - 1; }
fn fmt_sign_bit(f: u32) -> u32 { return select(1u << (fmt_bits(f) - 1u), 0u, f == E8M0FNU); }
fn fmt_inf_code(f: u32) -> u32 { return ((1u << fmt_ebits(f)) - 1u) << fmt_mbits(f); }

fn fmt_max_code(f: u32) -> u32 {
  let ones = (1u << (fmt_ebits(f) + fmt_mbits(f))) - 1u;
  if (fmt_has_inf(f)) { return ones - (1u << fmt_mbits(f)); }
  if (f == E4M3FN || f == E8M0FNU) { return ones - 1u; }
  return ones;
}

fn fmt_overflow_code(f: u32, saturate: bool) -> u32 {
  if (saturate) { return fmt_max_code(f); }
  if (fmt_has_inf(f)) { return fmt_inf_code(f); }
  if (f == E4M3FN || f == E8M0FNU) { return fmt_max_code(f) + 1u; }
  return fmt_max_code(f);
}

// NaN code for a float32 NaN with fraction bits `frac` (numpy keeps float16 payloads).
fn fmt_nan_code(f: u32, negative: bool, frac: u32) -> u32 {
  let s = select(0u, fmt_sign_bit(f), negative);
  switch f {
    case 0u, 1u: {
      var p = frac >> (23u - fmt_mbits(f));
      if (p == 0u) { p = 1u; }
      return s | fmt_inf_code(f) | p;
    }
    case 2u, 4u: { return s | fmt_inf_code(f) | (1u << (fmt_mbits(f) - 1u)); }
    case 3u: { return s | 0x7fu; }
    case 5u: { return 0xffu; }
    default: { return fmt_sign_bit(f); } // fp6 / fp4: the code of -0.0
  }
}

// float32 bits -> code: nearest-even (ml_dtypes) or toward zero, optionally saturating.
fn encode_bits(f: u32, x: u32, saturate: bool, toward_zero: bool) -> u32 {
  if (f == F32) {
    if (saturate && (x & 0x7fffffffu) == 0x7f800000u) { return (x & 0x80000000u) | 0x7f7fffffu; }
    return x;
  }
  if (f == I32) { return u32(i32(bitcast<f32>(x))); }
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
  if (shift < 32u) {
    q = sig >> shift;
    let rem = sig & ((1u << shift) - 1u);
    if (!toward_zero) {
      let half = 1u << (shift - 1u);
      if (rem > half || (rem == half && (q & 1u) != 0u)) { q = q + 1u; }
    }
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
    case 0u: { return code; }
    case 9u: { return bitcast<u32>(f32(bitcast<i32>(code))); }
    case 2u: { return code << 16u; }
    case 5u: {
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
