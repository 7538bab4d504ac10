// Pointwise kernels: cast, unary, binary (broadcasting), where. Prepended with dtype.wgsl and the
// generated accessors for bindings a, b, c (inputs) and out. Each invocation produces one output
// group (a whole u32 word of codes, or three words for fp6), so packed outputs need no atomics.
// Twin of assembly/kernels/elementwise.ts.

override KIND: u32 = 0u;      // 0 cast, 1 unary, 2 binary, 3 where
override OP: u32 = 0u;        // unary / binary op id (src/backend/ops.ts)
override FA: u32 = 0u;        // formats of a, b, c and out
override FB: u32 = 0u;
override FC: u32 = 0u;
override FO: u32 = 0u;
override ROUND: u32 = 0u;     // cast rounding: 0 nearest-even, 1 toward zero, 2 stochastic (dtype.wgsl ROUND_*)

struct Params {
  n: u32,
  rank: u32,
  alpha: f32,
  flags: u32,            // bit 0 saturate (cast); bits 4..6: a, b, c are the output's shape
  off: vec4<u32>,        // element offsets of a, b, c; w: the output's offset in words
  shape: array<vec4<u32>, 2>,
  sa: array<vec4<u32>, 2>,
  sb: array<vec4<u32>, 2>,
  sc: array<vec4<u32>, 2>,
  rng: vec4<u32>,        // stochastic cast: seed (lo, hi), stream position of output element 0 (lo, hi)
}
@group(0) @binding(4) var<uniform> params: Params;

fn dim(v: array<vec4<u32>, 2>, d: u32) -> u32 { return v[d / 4u][d % 4u]; }

// Element index into an input with broadcast strides `s`, for output element i.
fn bindex(i: u32, s: array<vec4<u32>, 2>, contiguous: bool, off: u32) -> u32 {
  if (contiguous) { return i + off; }
  var rest = i;
  var idx = off;
  for (var d = i32(params.rank) - 1; d >= 0; d = d - 1) {
    let len = dim(params.shape, u32(d));
    idx = idx + (rest % len) * dim(s, u32(d));
    rest = rest / len;
  }
  return idx;
}

fn erf32(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}

fn tanh32(x: f32) -> f32 {
  let ax = abs(x);
  if (ax < 0.125) { // the series to x^9: 1 - e over 1 + e cancels near 0 (twin of tanh32 in elementwise.ts)
    let x2 = x * x;
    return x + x * x2 * (-0.33333333 + x2 * (0.13333333 + x2 * (-0.053968254 + x2 * 0.021869488)));
  }
  let e = exp(-2.0 * ax);
  let t = (1.0 - e) / (1.0 + e);
  return select(t, -t, x < 0.0);
}

// A quiet NaN built at run time (WGSL rejects NaN and inf constants).
fn qnan() -> f32 { return bitcast<f32>(0x7fc00000u | (params.n & 0u)); }

fn is_nan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }

fn is_inf(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u; }

// +inf, built at run time.
fn pinf() -> f32 { return bitcast<f32>(0x7f800000u | (params.n & 0u)); }

// y as an exponent: 0 not an integer (or not finite), 1 an odd integer, 2 an even one.
fn int_kind(y: f32) -> u32 {
  let ay = abs(y);
  if (is_nan(y) || is_inf(y) || floor(ay) != ay) { return 0u; }
  if (ay >= 16777216.0) { return 2u; } // every float from 2^24 up is even
  return select(2u, 1u, (u32(ay) & 1u) == 1u);
}

// Float-float helpers (hi, lo) for pow_abs: exact sums and products in float32 arithmetic.
fn two_sum(a: f32, b: f32) -> vec2<f32> {
  let s = a + b;
  let bb = s - a;
  return vec2<f32>(s, (a - (s - bb)) + (b - bb));
}
fn split12(a: f32) -> vec2<f32> { // Veltkamp: a = hi + lo, 12 bits each
  let c = a * 4097.0;
  let hi = c - (c - a);
  return vec2<f32>(hi, a - hi);
}
fn two_prod(a: f32, b: f32) -> vec2<f32> {
  let p = a * b;
  let sa = split12(a);
  let sb = split12(b);
  return vec2<f32>(p, ((sa.x * sb.x - p) + sa.x * sb.y + sa.y * sb.x) + sa.y * sb.y);
}

// |x|^y for a finite non-zero |x| = ax and a finite y: 2^(y log2 ax) with ax = m 2^e (m in
// [sqrt(1/2), sqrt(2))), log2 m = (2 / ln 2) atanh(s), s = (m - 1) / (m + 1), and y (e + log2 m)
// carried in float-float, so only the final exp2 of a fraction rounds (WGSL's pow, exp2(y log2 x),
// is tens of ulps off at 1e30^0.5 or 1.5^126). Integer exponents up to 64 by repeated squaring:
// exact where the power is a float32, as powf.
fn pow_abs(ax: f32, y: f32) -> f32 {
  if (y == 0.5) { return sqrt(ax); } // as AssemblyScript's Mathf.pow: correctly rounded
  let ay = abs(y);
  if (ay <= 64.0 && floor(ay) == ay) {
    var r = 1.0;
    var b = ax;
    var n = u32(ay);
    loop {
      if ((n & 1u) != 0u) { r = r * b; }
      n = n >> 1u;
      if (n == 0u) { break; }
      b = b * b;
    }
    if (y > 0.0) { return r; }
    if (r >= 1.17549435e-38 && !is_inf(r)) { return 1.0 / r; } // else ax^-n below
  }
  let t0 = y * log2(ax); // a first guess, for overflow and underflow only
  if (t0 > 192.0) { return pinf(); }
  if (t0 < -192.0) { return 0.0; }
  let fr = frexp(ax);
  var m = fr.fract;
  var e = fr.exp;
  if (m < 0.70710678) { m = m * 2.0; e = e - 1; }
  // s = (m - 1) / (m + 1) as s_hi + s_lo (m - 1 is exact).
  let num = m - 1.0;
  let den = two_sum(m, 1.0);
  let s_hi = num / den.x;
  let q = two_prod(s_hi, den.x);
  let s_lo = (((num - q.x) - q.y) - s_hi * den.y) / den.x;
  // log2 m = C1 s + s^3 (C3 + s^2 (C5 + ...)), C1 = 2 / ln 2 as hi + lo; |s| <= 0.172: to s^13.
  let s2 = s_hi * s_hi;
  let c1_hi = 2.88539004325866699;
  let c1_lo = 3.85192598e-8;
  let main = two_prod(s_hi, c1_hi);
  let poly = s_hi * s2 * (0.9617966939 + s2 * (0.5770780164 + s2 * (0.4121985831 + s2 * (0.3205988980 + s2 * (0.2623081893 + s2 * 0.2219530832)))));
  let l = two_sum(main.x, main.y + s_hi * c1_lo + s_lo * c1_hi + poly);
  // y (e + l): y e exactly as two products of at most 20 bits; y l_hi as a float-float product.
  let ef = f32(e);
  let yh = split12(y);
  let a1 = yh.x * ef;
  let a2 = yh.y * ef;
  let b = two_prod(y, l.x);
  let n1 = round(a1);
  let n2 = round(b.x);
  let n = n1 + n2;
  let f = ((a1 - n1) + (b.x - n2)) + (a2 + b.y + y * l.y);
  if (n > 129.0) { return pinf(); }
  if (n < -152.0) { return 0.0; }
  return ldexp(exp2(f), i32(n));
}

// x^y as C's powf (PyTorch's tensor ** tensor; twin of pow32 in elementwise.ts). WGSL's pow is
// exp2(y log2 x), undefined for x < 0: the signs and special values are explicit here.
fn powf(x: f32, y: f32) -> f32 {
  if (y == 0.0 || x == 1.0) { return 1.0; }           // even for NaN
  if (is_nan(x) || is_nan(y)) { return qnan(); }
  let ax = abs(x);
  if (is_inf(y)) {
    if (ax == 1.0) { return 1.0; }                     // (-1)^inf
    return select(0.0, pinf(), (ax > 1.0) == (y > 0.0));
  }
  let kind = int_kind(y);
  // A negative base to an odd power: the sign bit, set on the bits (SwiftShader folds -0.0 to 0).
  let sign = select(0u, 0x80000000u, (bitcast<u32>(x) & 0x80000000u) != 0u && kind == 1u);
  if (ax == 0.0 || is_inf(ax)) {                       // +-0, +-inf: 0 or inf, signed for odd powers
    let big = (ax == 0.0) == (y < 0.0);
    return bitcast<f32>(select(0u, 0x7f800000u, big) | sign | (params.n & 0u));
  }
  if (x < 0.0 && kind == 0u) { return qnan(); }         // a negative base to a non-integer power
  return bitcast<f32>(bitcast<u32>(pow_abs(ax, y)) | sign);
}

// sqrt with IEEE's edges (WGSL leaves x < 0 undefined): NaN below 0, -0 stays -0, inf stays inf.
fn sqrt_ieee(x: f32) -> f32 {
  if (is_nan(x) || x < 0.0) { return qnan(); }
  if (x == 0.0 || is_inf(x)) { return x; }
  return sqrt(x);
}

// log with IEEE's edges (WGSL leaves x < 0 undefined; SwiftShader gave log |x|): NaN below 0,
// -inf at +-0, inf at inf. Finite x = m 2^e (m in [sqrt(1/2), sqrt(2))): e ln 2 (Cody-Waite) +
// 2 atanh((m - 1) / (m + 1)) by its series, within a few ulps also near 1, where WGSL's log
// only promises an absolute error (2^-21: 40 ulps at 0.9).
fn log_ieee(x: f32) -> f32 {
  if (is_nan(x) || x < 0.0) { return qnan(); }
  if (x == 0.0) { return -pinf(); }
  if (is_inf(x)) { return x; }
  let fr = frexp(x);
  var m = fr.fract;
  var e = fr.exp;
  if (m < 0.70710678) { m = m * 2.0; e = e - 1; }
  let s = (m - 1.0) / (m + 1.0);
  let s2 = s * s;
  let lnm = 2.0 * s + s * s2 * (0.6666666667 + s2 * (0.4 + s2 * (0.2857142857 + s2 * (0.2222222222 + s2 * (0.1818181818 + s2 * 0.1538461538)))));
  let ef = f32(e);
  return ef * 0.693145751953125 + (ef * 1.42860682e-6 + lnm); // ln 2 = hi (16 bits: ef hi exact) + lo
}

// torch.pow(x, number): its fast paths (twin of powScalar32 in elementwise.ts), else powf.
fn pow_scalar(x: f32, y: f32) -> f32 {
  if (y == 2.0) { return x * x; }
  if (y == 3.0) { return x * x * x; }
  if (y == -2.0) { return 1.0 / (x * x); }
  if (y == 0.5) { return sqrt_ieee(x); }
  if (y == -0.5) { return 1.0 / sqrt_ieee(x); }
  if (y == -1.0) { return 1.0 / x; }
  return powf(x, y);
}

fn unary_op(x: f32) -> f32 {
  let alpha = params.alpha;
  switch OP {
    case U_NEG: { return -x; }
    case U_EXP: { return exp(x); }
    case U_LOG: { return log_ieee(x); }
    case U_SQRT: { return sqrt_ieee(x); }
    case U_RSQRT: { return 1.0 / sqrt_ieee(x); }
    case U_RELU: { return select(x, 0.0, x <= 0.0); } // NaN stays NaN
    case U_GELU: { return 0.5 * x * (1.0 + erf32(x * 0.70710678118654752)); }
    case U_SILU: { return x / (1.0 + exp(-x)); }
    case U_SIGMOID: { return 1.0 / (1.0 + exp(-x)); }
    case U_TANH: { return tanh32(x); }
    case U_ABS: { return abs(x); }
    case U_SQUARE: { return x * x; }
    case U_SCALE: { return x * alpha; }
    case U_POW_SCALAR: { return pow_scalar(x, alpha); }
    case U_ADD_SCALAR: { return x + alpha; }
    default: { return 0.0; }
  }
}

fn binary_op(a: f32, b: f32) -> f32 {
  switch OP {
    case B_ADD: { return a + b; }
    case B_SUB: { return a - b; }
    case B_MUL: { return a * b; }
    case B_DIV: { return a / b; }
    case B_POW: { return powf(a, b); }
    case B_MAXIMUM: { return select(max(a, b), qnan(), is_nan(a) || is_nan(b)); }
    case B_MINIMUM: { return select(min(a, b), qnan(), is_nan(a) || is_nan(b)); }
    // Backward ops: a = the output gradient, b = the forward input x (or output y for the _Y ops).
    case B_RELU_BACKWARD: { return select(a, 0.0, b <= 0.0); } // the gradient passes where x is NaN
    case B_GELU_BACKWARD: { return a * (0.5 * (1.0 + erf32(b * 0.70710678118654752)) + b * exp(-0.5 * b * b) * 0.39894228040143268); }
    case B_SILU_BACKWARD: {
      let s = 1.0 / (1.0 + exp(-b));
      return a * (s * (1.0 + b * (1.0 - s)));
    }
    case B_SIGMOID_BACKWARD_Y: { return a * (b * (1.0 - b)); }
    case B_TANH_BACKWARD_Y: { return a * (1.0 - b * b); }
    default: { return 0.0; }
  }
}

// The output code of element i.
fn compute(i: u32) -> u32 {
  let ia = bindex(i, params.sa, (params.flags & 16u) != 0u, params.off.x);
  if (KIND == 0u) {
    // Integer-only path: bit-identical to the WebAssembly encoder. Same format: the code itself.
    let saturate = (params.flags & 1u) != 0u;
    if (FA == FO && !saturate && ROUND == ROUND_NEAREST_EVEN) { return a_code(ia, FA); }
    var rnd = vec2<u32>(0u, 0u);
    if (ROUND == ROUND_STOCHASTIC) {
      // Counter of output element i (as the wasm backend: base + i, whatever the input view's offset).
      rnd = splitmix64(params.rng.xy, u64_add(params.rng.zw, vec2<u32>(i, 0u)));
    }
    return encode_bits_mode(FO, decode_bits(FA, a_code(ia, FA)), saturate, ROUND, rnd);
  }
  var v: f32;
  if (KIND == 1u) {
    v = unary_op(a_f32(ia, FA));
  } else {
    let ib = bindex(i, params.sb, (params.flags & 32u) != 0u, params.off.y);
    if (KIND == 2u) {
      v = binary_op(a_f32(ia, FA), b_f32(ib, FB));
    } else {
      let ic = bindex(i, params.sc, (params.flags & 64u) != 0u, params.off.z);
      // cond != 0 on the bits: NaN selects b, as on wasm (SwiftShader's != is false for NaN)
      v = select(c_f32(ic, FC), b_f32(ib, FB), (bitcast<u32>(a_f32(ia, FA)) & 0x7fffffffu) != 0u);
    }
  }
  return encode_bits(FO, bitcast<u32>(v), false, false);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let g = (wid.y * nwg.x + wid.x) * 256u + lid;
  let ge = group_elems(FO);
  let first = g * ge;
  if (first >= params.n) { return; }
  let b = fmt_bits(FO);
  var words = array<u32, 3>(0u, 0u, 0u);
  for (var j = 0u; j < ge; j = j + 1u) {
    let i = first + j;
    if (i >= params.n) { break; }
    let code = compute(i);
    let bit = j * b;
    let w = bit >> 5u;
    let sh = bit & 31u;
    words[w] = words[w] | (code << sh);
    if (sh + b > 32u) { words[w + 1u] = words[w + 1u] | (code >> (32u - sh)); }
  }
  let gw = group_words(FO);
  for (var k = 0u; k < gw; k = k + 1u) {
    // The last group may cover fewer elements; its words still belong to this tensor only (a view
    // inside a larger storage ends on a group: the backend checks).
    let w = params.off.w + g * gw + k;
    if (w < arrayLength(&out)) { out[w] = words[k]; }
  }
}
