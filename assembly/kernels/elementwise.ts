// float32 elementwise kernels of the wasm backend (the reference for shaders/pointwise.wgsl and reduce.wgsl).

// Op ids: generated from src/backend/ops.ts (build/constants.ts). Binary backward ops: a = the
// output gradient, b = the forward input x (or output y where noted).
import {
  U_NEG, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_RELU, U_GELU, U_SILU, U_SIGMOID, U_TANH, U_ABS, U_SQUARE, U_SCALE, U_POW_SCALAR, U_ADD_SCALAR,
  B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MAXIMUM, B_MINIMUM, B_RELU_BACKWARD, B_GELU_BACKWARD, B_SILU_BACKWARD, B_SIGMOID_BACKWARD_Y, B_TANH_BACKWARD_Y,
  R_SUM, R_MEAN, R_MAX, R_AMAX,
} from "../../build/constants";
import { expV } from "./simd_math";

// SiLU, sigmoid, GELU and their backwards run four lanes at a time with expV; their scalar forms (tails,
// strided rows) take lane 0 of the same vector functions, so an element's result does not depend
// on where it falls.

/** sigmoid(x) = 1 / (1 + e^-x) per lane. */
// @ts-ignore: decorator
@inline function sigmoidV(x: v128): v128 {
  return f32x4.div(f32x4.splat(1), f32x4.add(f32x4.splat(1), expV(f32x4.neg(x))));
}

/** silu(x) = x / (1 + e^-x) per lane. */
// @ts-ignore: decorator
@inline function siluV(x: v128): v128 {
  return f32x4.div(x, f32x4.add(f32x4.splat(1), expV(f32x4.neg(x))));
}

/** g silu'(x) = g (s (1 + x (1 - s))), s = sigmoid(x), per lane. */
// @ts-ignore: decorator
@inline function siluBackwardV(g: v128, x: v128): v128 {
  const s = sigmoidV(x), one = f32x4.splat(1);
  return f32x4.mul(g, f32x4.mul(s, f32x4.add(one, f32x4.mul(x, f32x4.sub(one, s)))));
}

/**
 * erf(x) per lane, |error| < 1.2e-7 (Numerical Recipes erfc, Chebyshev fit; its exponential is
 * expV); the WGSL twin uses the same formula.
 */
// @ts-ignore: decorator
@inline function erfV(x: v128): v128 {
  const z = f32x4.abs(x), one = f32x4.splat(1);
  const t = f32x4.div(one, f32x4.add(one, f32x4.mul(f32x4.splat(0.5), z)));
  let p = f32x4.add(f32x4.splat(-0.82215223), f32x4.mul(t, f32x4.splat(0.17087277)));
  p = f32x4.add(f32x4.splat(1.48851587), f32x4.mul(t, p));
  p = f32x4.add(f32x4.splat(-1.13520398), f32x4.mul(t, p));
  p = f32x4.add(f32x4.splat(0.27886807), f32x4.mul(t, p));
  p = f32x4.add(f32x4.splat(-0.18628806), f32x4.mul(t, p));
  p = f32x4.add(f32x4.splat(0.09678418), f32x4.mul(t, p));
  p = f32x4.add(f32x4.splat(0.37409196), f32x4.mul(t, p));
  p = f32x4.add(f32x4.splat(1.00002368), f32x4.mul(t, p));
  const arg = f32x4.add(f32x4.sub(f32x4.mul(f32x4.neg(z), z), f32x4.splat(1.26551223)), f32x4.mul(t, p));
  const r = f32x4.mul(t, expV(arg));
  return v128.bitselect(f32x4.sub(one, r), f32x4.sub(r, one), f32x4.ge(x, f32x4.splat(0)));
}

/** gelu(x) = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) per lane. */
// @ts-ignore: decorator
@inline function geluV(x: v128): v128 {
  return f32x4.mul(f32x4.mul(f32x4.splat(0.5), x), f32x4.add(f32x4.splat(1), erfV(f32x4.mul(x, f32x4.splat(0.70710678118654752)))));
}

/** g gelu'(x) = g (Phi(x) + x phi(x)) per lane. */
// @ts-ignore: decorator
@inline function geluBackwardV(g: v128, x: v128): v128 {
  const cdf = f32x4.mul(f32x4.splat(0.5), f32x4.add(f32x4.splat(1), erfV(f32x4.mul(x, f32x4.splat(0.70710678118654752)))));
  const pdf = f32x4.mul(f32x4.mul(x, expV(f32x4.mul(f32x4.mul(f32x4.splat(-0.5), x), x))), f32x4.splat(0.39894228040143268));
  return f32x4.mul(g, f32x4.add(cdf, pdf));
}

@inline export function unaryScalar(op: i32, x: f32, alpha: f32): f32 {
  switch (op) {
    case U_NEG: return -x;
    case U_EXP: return Mathf.exp(x);
    case U_LOG: return Mathf.log(x);
    case U_SQRT: return Mathf.sqrt(x);
    case U_RSQRT: return 1.0 / Mathf.sqrt(x);
    case U_RELU: return x <= 0 ? 0 : x; // NaN stays NaN, as torch.relu
    case U_GELU: return f32x4.extract_lane(geluV(f32x4.splat(x)), 0);
    case U_SILU: return f32x4.extract_lane(siluV(f32x4.splat(x)), 0);
    case U_SIGMOID: return f32x4.extract_lane(sigmoidV(f32x4.splat(x)), 0);
    case U_TANH: return tanh32(x);
    case U_ABS: return Mathf.abs(x);
    case U_SQUARE: return x * x;
    case U_SCALE: return x * alpha;
    case U_POW_SCALAR: return powScalar32(x, alpha);
    case U_ADD_SCALAR: return x + alpha;
    default: return NaN;
  }
}

/**
 * x^y as C's powf (PyTorch's tensor ** tensor): AssemblyScript's Mathf.pow is musl's powf but for
 * JavaScript's 1^NaN, 1^inf and (-1)^inf (NaN there; 1 in C). A negative base with an integer
 * exponent keeps its sign ((-2)^3 = -8), with any other exponent gives NaN. The WGSL twin is powf.
 */
@inline export function pow32(x: f32, y: f32): f32 {
  if (x == 1 || y == 0) return 1; // even for NaN
  if (x == -1 && Mathf.abs(y) == Infinity) return 1;
  return Mathf.pow(x, y);
}

/**
 * torch.pow(x, number): its fast paths (2: x * x, 3: x * x * x, -2: 1 / (x * x), 0.5: sqrt,
 * -0.5: 1 / sqrt, -1: 1 / x, so (-0)^0.5 = -0 and (-inf)^0.5 = NaN, unlike powf), else pow32.
 */
@inline export function powScalar32(x: f32, y: f32): f32 {
  if (y == 2) return x * x;
  if (y == 3) return x * x * x;
  if (y == -2) return 1.0 / (x * x);
  if (y == 0.5) return Mathf.sqrt(x);
  if (y == -0.5) return 1.0 / Mathf.sqrt(x);
  if (y == -1) return 1.0 / x;
  return pow32(x, y);
}

/**
 * tanh: for |x| < 1/8 its series to x^9 (1 - e over 1 + e cancels there: at 1e-7 it was 11% off,
 * below 1e-8 it gave 0); above, via exp of a non-positive argument (no overflow). The WGSL twin
 * uses the same formulas.
 */
@inline export function tanh32(x: f32): f32 {
  const ax = Mathf.abs(x);
  if (ax < 0.125) {
    const x2 = x * x;
    return x + x * x2 * (<f32>-0.33333333 + x2 * (<f32>0.13333333 + x2 * (<f32>-0.053968254 + x2 * <f32>0.021869488)));
  }
  const e = Mathf.exp(-2.0 * ax);
  const t: f32 = (1.0 - e) / (1.0 + e);
  return x < 0 ? -t : t;
}

@inline export function binaryScalar(op: i32, a: f32, b: f32): f32 {
  switch (op) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    case B_DIV: return a / b;
    case B_POW: return pow32(a, b);
    case B_MAXIMUM: return a != a || b != b ? NaN : Mathf.max(a, b);
    case B_MINIMUM: return a != a || b != b ? NaN : Mathf.min(a, b);
    case B_RELU_BACKWARD: return b <= 0 ? 0 : a; // torch's threshold_backward: the gradient passes where x is NaN
    case B_GELU_BACKWARD: return f32x4.extract_lane(geluBackwardV(f32x4.splat(a), f32x4.splat(b)), 0); // gelu'(x) = Phi(x) + x phi(x)
    case B_SILU_BACKWARD: return f32x4.extract_lane(siluBackwardV(f32x4.splat(a), f32x4.splat(b)), 0); // silu'(x) = s (1 + x (1 - s)), s = sigmoid(x)
    case B_SIGMOID_BACKWARD_Y: return a * (b * (1.0 - b));
    case B_TANH_BACKWARD_Y: return a * (1.0 - b * b);
    default: return NaN;
  }
}

export function unaryF32(op: i32, x: usize, out: usize, n: usize, alpha: f32): void {
  if (op == U_SCALE || op == U_ADD_SCALAR || op == U_NEG || op == U_RELU || op == U_ABS || op == U_SQUARE || op == U_SILU || op == U_SIGMOID || op == U_GELU) {
    // SIMD for the cheap ones, and those with a vector form.
    const al = f32x4.splat(alpha);
    let i: usize = 0;
    for (; i + 4 <= n; i += 4) {
      const v = v128.load(x + (i << 2));
      let r: v128;
      if (op == U_SCALE) r = f32x4.mul(v, al);
      else if (op == U_ADD_SCALAR) r = f32x4.add(v, al);
      else if (op == U_NEG) r = f32x4.neg(v);
      else if (op == U_RELU) r = v128.bitselect(f32x4.splat(0), v, f32x4.le(v, f32x4.splat(0))); // x <= 0 ? +0 : x (NaN stays)
      else if (op == U_ABS) r = f32x4.abs(v);
      else if (op == U_SILU) r = siluV(v);
      else if (op == U_SIGMOID) r = sigmoidV(v);
      else if (op == U_GELU) r = geluV(v);
      else r = f32x4.mul(v, v);
      v128.store(out + (i << 2), r);
    }
    for (; i < n; i++) store<f32>(out + (i << 2), unaryScalar(op, load<f32>(x + (i << 2)), alpha));
    return;
  }
  for (let i: usize = 0; i < n; i++) store<f32>(out + (i << 2), unaryScalar(op, load<f32>(x + (i << 2)), alpha));
}

/**
 * Broadcasting binary op. `meta` holds i32s: rank, then outShape[rank], aStrides[rank],
 * bStrides[rank] (element strides, 0 on broadcast dims). Fast paths: equal shapes; b a scalar.
 */
export function binaryF32(op: i32, a: usize, b: usize, out: usize, n: usize, meta: usize): void {
  const rank = load<i32>(meta);
  if (rank == 0) {
    binaryRow(op, a, 1, b, 1, out, <i32>n);
    return;
  }
  // Walk the output in row-major order with one counter per dim.
  const shape = meta + 4, sa = shape + (<usize>rank << 2), sb = sa + (<usize>rank << 2);
  const idx = heap.alloc(<usize>rank << 2);
  memory.fill(idx, 0, <usize>rank << 2);
  let ia: isize = 0, ib: isize = 0;
  const last = rank - 1;
  const lastLen = load<i32>(shape + (<usize>last << 2));
  const lastA = load<i32>(sa + (<usize>last << 2)), lastB = load<i32>(sb + (<usize>last << 2));
  for (let o: usize = 0; o < n; o += <usize>lastLen) {
    binaryRow(op, a + (<usize>ia << 2), lastA, b + (<usize>ib << 2), lastB, out + (o << 2), lastLen);
    // advance the outer counters
    for (let d = last - 1; d >= 0; d--) {
      const p = idx + (<usize>d << 2);
      const v = load<i32>(p) + 1;
      const len = load<i32>(shape + (<usize>d << 2));
      const stA = load<i32>(sa + (<usize>d << 2)), stB = load<i32>(sb + (<usize>d << 2));
      if (v < len) {
        store<i32>(p, v);
        ia += stA;
        ib += stB;
        break;
      }
      store<i32>(p, 0);
      ia -= (len - 1) * stA;
      ib -= (len - 1) * stB;
    }
  }
  heap.free(idx);
}

/**
 * binaryF32 with broadcasting (rank >= 1) for rows [r0, r1) of the output's last dimension only, for
 * threads: each row's offsets into a and b are computed from its index (no counters, no heap), and
 * each row runs the same binaryRow as in the whole call.
 */
export function binaryF32Rows(op: i32, a: usize, b: usize, out: usize, meta: usize, r0: usize, r1: usize): void {
  const rank = load<i32>(meta);
  const shape = meta + 4, sa = shape + (<usize>rank << 2), sb = sa + (<usize>rank << 2);
  const last = rank - 1;
  const lastLen = load<i32>(shape + (<usize>last << 2));
  const lastA = load<i32>(sa + (<usize>last << 2)), lastB = load<i32>(sb + (<usize>last << 2));
  for (let r = r0; r < r1; r++) {
    let rem = r;
    let ia: isize = 0, ib: isize = 0;
    for (let d = last - 1; d >= 0; d--) {
      const len = <usize>load<i32>(shape + (<usize>d << 2));
      const i = <isize>(rem % len);
      rem /= len;
      ia += i * <isize>load<i32>(sa + (<usize>d << 2));
      ib += i * <isize>load<i32>(sb + (<usize>d << 2));
    }
    binaryRow(op, a + (<usize>ia << 2), lastA, b + (<usize>ib << 2), lastB, out + ((r * <usize>lastLen) << 2), lastLen);
  }
}

/** out = cond != 0 ? a : b over already-broadcast contiguous float32 arrays. */
export function whereF32(cond: usize, a: usize, b: usize, out: usize, n: usize): void {
  for (let i: usize = 0; i < n; i++) {
    const o = i << 2;
    store<f32>(out + o, load<f32>(cond + o) != 0 ? load<f32>(a + o) : load<f32>(b + o));
  }
}

// Reductions over the middle axis of [outer, len, inner].

export function reduceF32(op: i32, x: usize, out: usize, outer: usize, len: usize, inner: usize): void {
  reduceF32Range(op, x, out, len, inner, 0, outer * inner);
}

/**
 * reduceF32 for threads: outputs [start, end) of the outer * inner (each output reduces its own
 * len elements in order, whichever part computes it).
 */
export function reduceF32Range(op: i32, x: usize, out: usize, len: usize, inner: usize, start: usize, end: usize): void {
  for (let i: usize = start; i < end; i++) {
    const o = i / inner, j = i - o * inner;
    const base = x + ((o * len * inner + j) << 2);
    if (op == R_SUM || op == R_MEAN) {
      // float64 accumulation (exact for any 2^29 float32 of one binade), rounded once: a float32
      // running sum drifts (2^24 ones would sum to 2^24).
      let s: f64 = 0;
      for (let k: usize = 0; k < len; k++) s += <f64>load<f32>(base + ((k * inner) << 2));
      store<f32>(out + (i << 2), <f32>(op == R_MEAN ? s / <f64>len : s));
      continue;
    }
    let acc: f32 = op == R_MAX ? -Infinity : 0;
    let nan = false;
    for (let k: usize = 0; k < len; k++) {
      const v = load<f32>(base + ((k * inner) << 2));
      if (op == R_MAX) { if (v != v) nan = true; else if (v > acc) acc = v; }
      else { const av = Mathf.abs(v); if (v != v) nan = true; else if (av > acc) acc = av; }
    }
    store<f32>(out + (i << 2), nan ? NaN : acc);
  }
}

/** Softmax / log-softmax over rows of length `cols`, max subtracted first. */
export function softmaxF32(x: usize, out: usize, rows: usize, cols: usize, log: bool): void {
  for (let r: usize = 0; r < rows; r++) {
    const xi = x + ((r * cols) << 2), oi = out + ((r * cols) << 2);
    let m: f32 = -Infinity;
    for (let c: usize = 0; c < cols; c++) m = Mathf.max(m, load<f32>(xi + (c << 2)));
    let s: f64 = 0; // float64 accumulation of the float32 exps
    for (let c: usize = 0; c < cols; c++) {
      const e = Mathf.exp(load<f32>(xi + (c << 2)) - m);
      s += <f64>e;
      if (!log) store<f32>(oi + (c << 2), e);
    }
    if (log) {
      // (x - max) - log(sum), as PyTorch: x - (log(sum) + max) would round the large sum first and
      // lose the small result's bits when the row shares a large offset.
      const ls = <f32>Math.log(s);
      for (let c: usize = 0; c < cols; c++) store<f32>(oi + (c << 2), (load<f32>(xi + (c << 2)) - m) - ls);
    } else {
      const inv = <f32>(1.0 / s);
      for (let c: usize = 0; c < cols; c++) store<f32>(oi + (c << 2), load<f32>(oi + (c << 2)) * inv);
    }
  }
}

/** int32 -> float32 (exact below 2^24). */
export function i32ToF32(x: usize, out: usize, n: usize): void {
  for (let i: usize = 0; i < n; i++) store<f32>(out + (i << 2), <f32>load<i32>(x + (i << 2)));
}

/** float32 -> int32, truncating (for casts to int32). */
export function f32ToI32(x: usize, out: usize, n: usize): void {
  for (let i: usize = 0; i < n; i++) {
    const v = load<f32>(x + (i << 2));
    store<i32>(out + (i << 2), v != v ? 0 : <i32>v);
  }
}

/**
 * One row of a binary op: out[j] = op(a[j * sa], b[j * sb]) for j < len (element strides 0 or 1
 * take the f32x4 path for add, sub, mul and div, which round exactly as the scalar ops do, and
 * for SiLU's and GELU's backwards, whose scalar forms are the vector ones' lane 0).
 */
@inline
function binaryRow(op: i32, a: usize, sa: i32, b: usize, sb: i32, out: usize, len: i32): void {
  let j = 0;
  if (op <= B_DIV && sa == 1 && (sb == 1 || sb == 0)) {
    const bs = f32x4.splat(load<f32>(b));
    for (; j + 4 <= len; j += 4) {
      const o = <usize>j << 2;
      const x = v128.load(a + o), y = sb == 1 ? v128.load(b + o) : bs;
      let r: v128;
      if (op == B_ADD) r = f32x4.add(x, y);
      else if (op == B_SUB) r = f32x4.sub(x, y);
      else if (op == B_MUL) r = f32x4.mul(x, y);
      else r = f32x4.div(x, y);
      v128.store(out + o, r);
    }
  } else if ((op == B_SILU_BACKWARD || op == B_GELU_BACKWARD) && sa == 1 && sb == 1) {
    for (; j + 4 <= len; j += 4) {
      const o = <usize>j << 2;
      const g = v128.load(a + o), x = v128.load(b + o);
      v128.store(out + o, op == B_SILU_BACKWARD ? siluBackwardV(g, x) : geluBackwardV(g, x));
    }
  }
  for (; j < len; j++) {
    store<f32>(out + (<usize>j << 2), binaryScalar(op, load<f32>(a + (<usize>(j * sa) << 2)), load<f32>(b + (<usize>(j * sb) << 2))));
  }
}

/**
 * Copies the codes (width 1, 2 or 4 bytes) of a strided view into contiguous rows: output rows
 * [r0, r1) of the view's last dimension, in row-major order. meta (i32): rank, shape[rank],
 * strides[rank] (in elements, non-negative). A last dimension of stride 1 is one memory.copy a row.
 */
export function gatherCodes(width: i32, src: usize, dst: usize, meta: usize, r0: usize, r1: usize): void {
  const rank = load<i32>(meta);
  if (rank == 0) {
    if (r0 < r1) memory.copy(dst, src, <usize>width);
    return;
  }
  const shape = meta + 4, strides = meta + 4 + (<usize>rank << 2);
  const cols = <usize>load<i32>(shape + ((<usize>rank - 1) << 2)), cs = <usize>load<i32>(strides + ((<usize>rank - 1) << 2));
  const w = <usize>width;
  for (let r = r0; r < r1; r++) {
    // the offset of row r: its index in each outer dimension times that dimension's stride
    let rest = r, at: usize = 0;
    for (let d = rank - 2; d >= 0; d--) {
      const n = <usize>load<i32>(shape + (<usize>d << 2));
      at += (rest % n) * <usize>load<i32>(strides + (<usize>d << 2));
      rest /= n;
    }
    const from = src + at * w, to = dst + r * cols * w;
    if (cs == 1) { memory.copy(to, from, cols * w); continue; }
    if (width == 4) for (let j: usize = 0; j < cols; j++) store<u32>(to + (j << 2), load<u32>(from + ((j * cs) << 2)));
    else if (width == 2) for (let j: usize = 0; j < cols; j++) store<u16>(to + (j << 1), load<u16>(from + ((j * cs) << 1)));
    else for (let j: usize = 0; j < cols; j++) store<u8>(to + j, load<u8>(from + j * cs));
  }
}

/**
 * dst[m][j][i] = src[m][i][j] for `batch` matrices of rows x cols elements of `width` bytes (1, 2
 * or 4): codes moved as they are. 16 x 16 blocks keep both sides in cache.
 */
export function transposeCodes(width: i32, src: usize, dst: usize, batch: usize, rows: usize, cols: usize): void {
  const B: usize = 16;
  const plane = rows * cols;
  for (let m: usize = 0; m < batch; m++) {
    const s0 = src + m * plane * width, d0 = dst + m * plane * width;
    for (let i0: usize = 0; i0 < rows; i0 += B) {
      const i1 = min(i0 + B, rows);
      for (let j0: usize = 0; j0 < cols; j0 += B) {
        const j1 = min(j0 + B, cols);
        for (let i = i0; i < i1; i++) {
          for (let j = j0; j < j1; j++) {
            const from = i * cols + j, to = j * rows + i;
            if (width == 4) store<u32>(d0 + (to << 2), load<u32>(s0 + (from << 2)));
            else if (width == 2) store<u16>(d0 + (to << 1), load<u16>(s0 + (from << 1)));
            else store<u8>(d0 + to, load<u8>(s0 + from));
          }
        }
      }
    }
  }
}
