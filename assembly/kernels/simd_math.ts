// Vector math for the kernels: f32x4 versions of scalar functions, for loops that would otherwise
// call the scalar ones lane by lane.

/**
 * e^x per lane (Cephes' expf: x = n ln 2 + r with |r| <= ln 2 / 2, e^r as 1 + r + r^2 P(r), P of
 * degree 5; 2^n applied as two exact powers of two, so that results down into the subnormals and up
 * to overflow are right): within 2 ulp of e^x over float32's normal results (1 ulp in the sweep of
 * tests/backend/simd_math.test.ts), within 2^-148 in the subnormals. e^-inf = 0, e^+inf = +inf, NaN stays NaN.
 */
// @ts-ignore: decorator
@inline
export function expV(x: v128): v128 {
  const xc = f32x4.max(f32x4.min(x, f32x4.splat(89)), f32x4.splat(-104)); // NaN passes through min and max
  const n = f32x4.nearest(f32x4.mul(xc, f32x4.splat(1.44269504088896341)));
  let r = f32x4.sub(xc, f32x4.mul(n, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  let p = f32x4.splat(1.9875691500e-4);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.3981999507e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(8.3334519073e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(4.1665795894e-2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.6666665459e-1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(5.0000001201e-1));
  p = f32x4.add(f32x4.add(f32x4.mul(p, f32x4.mul(r, r)), r), f32x4.splat(1));
  const ni = i32x4.trunc_sat_f32x4_s(n), n1 = i32x4.shr_s(ni, 1);
  const e1 = i32x4.shl(i32x4.add(n1, i32x4.splat(127)), 23), e2 = i32x4.shl(i32x4.add(i32x4.sub(ni, n1), i32x4.splat(127)), 23);
  return f32x4.mul(f32x4.mul(p, e1), e2);
}

/** out[i] = expV(x[i]) for i < n (the tail one lane at a time): for tests of expV. */
export function simdExpF32(x: usize, out: usize, n: usize): void {
  let i: usize = 0;
  for (; i + 4 <= n; i += 4) v128.store(out + (i << 2), expV(v128.load(x + (i << 2))));
  for (; i < n; i++) store<f32>(out + (i << 2), f32x4.extract_lane(expV(f32x4.splat(load<f32>(x + (i << 2)))), 0));
}
