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

fn unary_op(x: f32) -> f32 {
  let alpha = params.alpha;
  switch OP {
    case U_NEG: { return -x; }
    case U_EXP: { return exp(x); }
    case U_LOG: { return log(x); }
    case U_SQRT: { return sqrt(x); }
    case U_RSQRT: { return 1.0 / sqrt(x); }
    case U_RELU: { return select(x, 0.0, x <= 0.0); } // NaN stays NaN
    case U_GELU: { return 0.5 * x * (1.0 + erf32(x * 0.70710678118654752)); }
    case U_SILU: { return x / (1.0 + exp(-x)); }
    case U_SIGMOID: { return 1.0 / (1.0 + exp(-x)); }
    case U_TANH: { return tanh32(x); }
    case U_ABS: { return abs(x); }
    case U_SQUARE: { return x * x; }
    case U_SCALE: { return x * alpha; }
    case U_POW_SCALAR: { return pow(x, alpha); }
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
    case B_POW: { return pow(a, b); }
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
      v = select(c_f32(ic, FC), b_f32(ib, FB), a_f32(ia, FA) != 0.0);
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
