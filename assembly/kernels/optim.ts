// Optimizer kernels of the wasm backend (the reference for shaders/optim.wgsl): GradScaler's
// unscale-and-check and scale update, the global L2 norm and the AdamW step. float32 throughout.

/**
 * x[i] *= invScale for n float32 at x; if any x[i] (before scaling) is inf or NaN, stores 1.0 to
 * the float32 at `found` (else leaves it). Returns 1 when a non-finite value was seen.
 */
export function unscaleF32(x: usize, n: i32, invScale: f32, found: usize): i32 {
  // four lanes at a time (the same products), the tail one by one
  let badV = i32x4.splat(0);
  const inv = f32x4.splat(invScale), absMask = i32x4.splat(0x7fffffff), infBits = i32x4.splat(0x7f800000);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const p = x + (<usize>i << 2);
    const v = v128.load(p);
    badV = v128.or(badV, i32x4.ge_s(v128.and(v, absMask), infBits));
    v128.store(p, f32x4.mul(v, inv));
  }
  let bad: u32 = v128.any_true(badV) ? 1 : 0;
  for (; i < n; i++) {
    const p = x + (<usize>i << 2);
    const v = load<f32>(p);
    bad |= <u32>((reinterpret<u32>(v) & 0x7fffffff) >= 0x7f800000);
    store<f32>(p, v * invScale);
  }
  if (bad) store<f32>(found, 1.0);
  return <i32>bad;
}

/**
 * GradScaler's scale update (torch._amp_update_scale_) on the float32 at `scale`, the int32 growth
 * tracker at `tracker` and the float32 flag at `found`:
 *   found != 0: scale *= backoff, tracker = 0;
 *   else: tracker + 1 == interval ? (scale *= growth if the product is finite; tracker = 0) : tracker += 1.
 * Then the float32 at `inv` = 1 / scale (correctly rounded).
 */
export function ampUpdateScaleF32(scale: usize, inv: usize, tracker: usize, found: usize, growth: f32, backoff: f32, interval: i32): void {
  let s = load<f32>(scale);
  if (load<f32>(found) != 0) { // NaN counts as set, as PyTorch's `if (*found_inf)`
    s = s * backoff;
    store<i32>(tracker, 0);
  } else {
    const successful = load<i32>(tracker) + 1;
    if (successful == interval) {
      const grown = s * growth;
      if ((reinterpret<u32>(grown) & 0x7fffffff) < 0x7f800000) s = grown;
      store<i32>(tracker, 0);
    } else store<i32>(tracker, successful);
  }
  store<f32>(scale, s);
  store<f32>(inv, <f32>1.0 / s);
}

/** sum(x^2) over n float32 at x: exact float64 squares, float64 accumulation in index order. */
export function sumSquaresF32(x: usize, n: i32): f64 {
  let s: f64 = 0;
  for (let i = 0; i < n; i++) {
    const v = <f64>load<f32>(x + (<usize>i << 2));
    s += v * v;
  }
  return s;
}

/**
 * One AdamW step over n elements (PyTorch's update, float32):
 *   g = grad * gradScale; p *= decay (= 1 - lr * weightDecay);
 *   m = beta1 * m + omb1 * g; v = beta2 * v + omb2 * g * g  (omb = 1 - beta);
 *   p -= stepSize * m / (sqrt(v) / bc2Sqrt + eps)  (stepSize = lr / (1 - beta1^step), bc2Sqrt = sqrt(1 - beta2^step)).
 * p, grad, m, v: float32 arrays.
 */
export function adamwF32(
  p: usize, grad: usize, m: usize, v: usize, n: i32,
  gradScale: f32, decay: f32, beta1: f32, omb1: f32, beta2: f32, omb2: f32, stepSize: f32, bc2Sqrt: f32, eps: f32,
): void {
  // Four lanes at a time: the same operations in the same order as the scalar tail (f32x4 arithmetic
  // and sqrt round as the scalar ones), so every element gets the same bits wherever it falls.
  const gsV = f32x4.splat(gradScale), decayV = f32x4.splat(decay), b1 = f32x4.splat(beta1), o1 = f32x4.splat(omb1);
  const b2 = f32x4.splat(beta2), o2 = f32x4.splat(omb2), stepV = f32x4.splat(stepSize), bcV = f32x4.splat(bc2Sqrt), epsV = f32x4.splat(eps);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const g = f32x4.mul(v128.load(grad + o), gsV);
    const mi = f32x4.add(f32x4.mul(b1, v128.load(m + o)), f32x4.mul(o1, g));
    const vi = f32x4.add(f32x4.mul(b2, v128.load(v + o)), f32x4.mul(o2, f32x4.mul(g, g)));
    v128.store(m + o, mi);
    v128.store(v + o, vi);
    const denom = f32x4.add(f32x4.div(f32x4.sqrt(vi), bcV), epsV);
    const pi = f32x4.mul(v128.load(p + o), decayV);
    v128.store(p + o, f32x4.sub(pi, f32x4.mul(stepV, f32x4.div(mi, denom))));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const g = load<f32>(grad + o) * gradScale;
    const mi = beta1 * load<f32>(m + o) + omb1 * g;
    const vi = beta2 * load<f32>(v + o) + omb2 * (g * g);
    store<f32>(m + o, mi);
    store<f32>(v + o, vi);
    const denom = Mathf.sqrt(vi) / bc2Sqrt + eps;
    const pi = load<f32>(p + o) * decay;
    store<f32>(p + o, pi - stepSize * (mi / denom));
  }
}
