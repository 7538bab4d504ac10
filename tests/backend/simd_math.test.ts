// expV (assembly/kernels/simd_math.ts), the f32x4 exponential of the wasm attention, SiLU and sigmoid
// kernels, against float64's exp rounded to float32: every 613th float32 bit pattern in [-104, 89]
// (where results go from 0 through the subnormals to overflow), and the special values; then SiLU,
// sigmoid, GELU and their backwards on the wasm backend against float64.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { wasm } from '../../src/dtype/wasm.js';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import type { BinaryOp, UnaryOp } from '../../src/backend/backend.js';

/** expV over xs, through the module's simdExpF32. */
function simdExp(xs: Float32Array): Float32Array {
  const w = wasm();
  const p = w.alloc(xs.length * 8);
  try {
    new Float32Array(w.memory.buffer, p, xs.length).set(xs);
    w.simdExpF32(p, p + xs.length * 4, xs.length);
    return new Float32Array(w.memory.buffer, p + xs.length * 4, xs.length).slice();
  } finally {
    w.free(p);
  }
}

/** The float32 values of [lo, hi], every `step`-th bit pattern (both signs). */
function sweep(lo: number, hi: number, step: number): Float32Array {
  const out: number[] = [];
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  for (let b = 0; b <= 0x42d00000; b += step) { // up to 104
    u[0] = b;
    if (f[0] <= hi) out.push(f[0]);
    if (-f[0] >= lo) out.push(-f[0]);
  }
  return Float32Array.from(out);
}

/** Distance in float32 steps between two finite non-negative float32 values. */
function ulps(a: number, b: number): number {
  const f = new Float32Array([a, b]), u = new Int32Array(f.buffer);
  return Math.abs(u[0] - u[1]);
}

test('expV: within 2 ulp of exp over the normal results, within 2^-148 below them, overflow at the right place', () => {
  const xs = sweep(-104, 89, 613);
  const got = simdExp(xs);
  let worst = 0, at = 0;
  for (let i = 0; i < xs.length; i++) {
    const want = Math.fround(Math.exp(xs[i]));
    if (want === Infinity || got[i] === Infinity) {
      assert.is(got[i], want, `exp(${xs[i]})`);
    } else if (want < 2 ** -126) {
      assert.ok(Math.abs(got[i] - want) <= 2 ** -148, `exp(${xs[i]}) = ${got[i]}, expected ${want}`);
    } else {
      const e = ulps(got[i], want);
      if (e > worst) { worst = e; at = xs[i]; }
    }
  }
  assert.ok(xs.length > 1_000_000, `${xs.length} values`);
  assert.ok(worst <= 2, `worst ${worst} ulp at x = ${at}`);
});

test('expV: special values and the ends of the range', () => {
  const xs = Float32Array.from([0, -0, 1, -1, -Infinity, Infinity, NaN, -104, -200, 88.72283, 88.7229, 89, 1e30, -1e30, -87.33655, -103.27893]);
  const got = simdExp(xs);
  assert.is(got[0], 1);
  assert.is(got[1], 1);
  assert.is(got[2], Math.fround(Math.E));
  assert.is(got[3], Math.fround(1 / Math.E));
  assert.is(got[4], 0);
  assert.is(got[5], Infinity);
  assert.ok(Number.isNaN(got[6]));
  assert.is(got[7], 0, 'e^-104 is below half the smallest subnormal');
  assert.is(got[8], 0);
  assert.ok(Number.isFinite(got[9]) && got[9] > 3.4e38, `e^88.72283 = ${got[9]}`);
  assert.is(got[10], Infinity);
  assert.is(got[11], Infinity);
  assert.is(got[12], Infinity);
  assert.is(got[13], 0);
  assert.ok(ulps(got[14], Math.fround(Math.exp(xs[14]))) <= 2, `e^-87.33655 = ${got[14]} (about the smallest normal)`);
  assert.ok(got[15] > 0 && got[15] <= 2 ** -148, `e^-103.27893 = ${got[15]} (a subnormal)`);
});

const b = new WasmBackend();

/** The unary ops of x and the backward op of (g, x) on wasm, read back: [...unary, backward]. */
async function activations(ops: readonly UnaryOp[], backward: BinaryOp, x: Float32Array, g: Float32Array): Promise<Float32Array[]> {
  const xt = Tensor.from(b, x, [x.length]), gt = Tensor.from(b, g, [g.length]), back = Tensor.empty(b, [x.length]);
  b.binary(backward, gt, xt, back);
  return Promise.all([...ops.map((op) => xt.unary(op)), back].map(async (t) => (await t.toArray()) as Float32Array));
}

/**
 * The same ops over xs and gs in calls of three elements (all scalar tail) give the bits of `whole`
 * (one call over all of them: the vector body).
 */
async function sameInTail(whole: Float32Array[], ops: readonly UnaryOp[], backward: BinaryOp, xs: Float32Array, gs: Float32Array): Promise<void> {
  for (let s0 = 0; s0 < xs.length; s0 += 3) {
    const part = await activations(ops, backward, xs.slice(s0, s0 + 3), gs.slice(s0, s0 + 3));
    part.forEach((values, k) => values.forEach((v, i) => assert.ok(Object.is(v, whole[k][s0 + i]), `output ${k}, element ${s0 + i}: tail and body differ`)));
  }
}

// 1,001 values in one call (the vector body, and a tail of one), then in calls of three (all tail):
// every element's result is the same wherever it falls.
test('silu, sigmoid and silu backward on wasm: within 3e-7 relative of float64 (backward: of its terms, and the rounding of 1 - s), the same bits in the tail as in the body', async () => {
  const xs = Float32Array.from({ length: 1001 }, (_, i) => (i === 1000 ? 3.25 : -80 + i * 0.17));
  const gs = Float32Array.from(xs, (_, i) => Math.cos(i) * 2);
  const ops = ['silu', 'sigmoid'] as const;
  const whole = await activations(ops, 'siluBackward', xs, gs);
  const [silu, sig, back] = whole;
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i], s = 1 / (1 + Math.exp(-x));
    const what = `x = ${x}`;
    assert.ok(Math.abs(sig[i] - s) <= 3e-7 * s, `sigmoid ${what}: ${sig[i]} vs ${s}`);
    assert.ok(Math.abs(silu[i] - x * s) <= 3e-7 * Math.abs(x * s), `silu ${what}: ${silu[i]} vs ${x * s}`);
    const want = gs[i] * s * (1 + x * (1 - s));
    // 1 - s is a float32 difference: off by up to an ulp of 1 (6e-8), times x
    const bound = Math.abs(gs[i]) * s * (3e-7 * (1 + Math.abs(x) * (1 - s)) + 1.2e-7 * Math.abs(x));
    assert.ok(Math.abs(back[i] - want) <= bound, `silu backward ${what}: ${back[i]} vs ${want}`);
  }
  await sameInTail(whole, ops, 'siluBackward', xs, gs);
});

/** erf in float64: its Taylor series up to |x| = 3, 1 - erfc (a continued fraction) beyond. */
function erf64(x: number): number {
  const a = Math.abs(x);
  if (a <= 3) {
    let term = a, sum = a;
    for (let n = 1; n < 80; n++) {
      term *= (-a * a) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  let f = a;
  for (let k = 80; k >= 1; k--) f = a + k / 2 / f;
  const erfc = Math.exp(-a * a) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

// GELU and its backward on wasm (erf by the Numerical Recipes fit, |error| < 1.2e-7, on expV):
// against float64, and every element the same in the vector body as in the scalar tail.
test('gelu and gelu backward on wasm: within the erf fit and float32 rounding of float64, the same bits in the tail as in the body', async () => {
  const xs = Float32Array.from({ length: 1001 }, (_, i) => (i === 1000 ? 0.37 : -12 + i * 0.025));
  const gs = Float32Array.from(xs, (_, i) => Math.sin(i) * 2);
  const whole = await activations(['gelu'], 'geluBackward', xs, gs);
  const [gelu, back] = whole;
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i], cdf = 0.5 * (1 + erf64(x / Math.SQRT2)), pdf = Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
    // 1 + erf is a float32 sum: off by up to the fit's error and an ulp of 1 (so x Phi(x) is 0 far below 0, as in PyTorch)
    assert.ok(Math.abs(gelu[i] - x * cdf) <= 0.5 * Math.abs(x) * 2.5e-7 + 3e-7 * Math.abs(x * cdf), `gelu x = ${x}: ${gelu[i]} vs ${x * cdf}`);
    const want = gs[i] * (cdf + x * pdf);
    assert.ok(Math.abs(back[i] - want) <= Math.abs(gs[i]) * (1.5e-7 + 3e-7 * (Math.abs(x * pdf) + Math.abs(cdf + x * pdf))), `gelu backward x = ${x}: ${back[i]} vs ${want}`);
  }
  await sameInTail(whole, ['gelu'], 'geluBackward', xs, gs);
});

test.run();
