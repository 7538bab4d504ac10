// expV (assembly/kernels/simd_math.ts), the f32x4 exponential of the wasm attention kernels, against
// float64's exp rounded to float32: every 613th float32 bit pattern in [-104, 89] (where results go from 0 through
// the subnormals to overflow), and the special values.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { wasm } from '../../src/dtype/wasm.js';

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

test.run();
