// pow and LayerNorm / RMSNorm at their edges against PyTorch (tests/fixtures/pow_norm_edges.json,
// written by scripts/make-pow-norm-fixture.py from PyTorch float32 on CPU), on wasm and WebGPU
// (SwiftShader). pow: C's powf for tensor ** tensor (1^NaN = NaN^0 = 1, signed powers of negative
// bases, zeros and infinities as C) and torch.pow(x, number)'s fast paths ((-0)^0.5 = -0), and
// autograd pow's gradients (PyTorch's pow_backward); bit for bit where PyTorch's result is exact,
// within a few ulps elsewhere. Norms: rows holding inf or NaN,
// overflowing moments (NaN), an overflowing variance alone (the bias), all-equal rows.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpuBackend, readF32, tensor, WasmBackend, type WebGPUBackend } from '../helpers/backends.js';
import type { Backend, TensorRef } from '../../src/backend/backend.js';
import { pow, Variable } from '../../src/autograd/index.js';
import { Tensor } from '../../src/tensor/tensor.js';

interface Fixture {
  pow: {
    bases: number[]; exponents: number[];
    tensor: number[]; tensorExact: boolean[];
    tensorGradBase: number[]; tensorGradBaseExact: boolean[]; tensorGradExponent: number[]; tensorGradExponentExact: boolean[];
    scalar: number[]; scalarExact: boolean[]; scalarGradBase: number[]; scalarGradBaseExact: boolean[];
  };
  norm: {
    rows: number; cols: number; eps: number; x: number[]; weight: number[]; bias: number[]; dy: number[];
    layerNorm: { out: number[]; dx: number[]; dweight: number[]; dbias: number[] };
    rmsNorm: { out: number[]; dx: number[]; dweight: number[] };
  };
}
const FIX = JSON.parse(readFileSync(new URL('../fixtures/pow_norm_edges.json', import.meta.url), 'utf8')) as Fixture;
const f32 = (bits: number[]): Float32Array => new Float32Array(Uint32Array.from(bits).buffer);

const w = new WasmBackend();
let g: WebGPUBackend;
test.before(async () => { g = await gpuBackend(); });
test.after(() => g.destroy());
const backends = (): Backend[] => [w, g];

function put(b: Backend, data: Float32Array, shape = [data.length]): TensorRef { return tensor(b, shape, 'float32', data); }
function free(b: Backend, ...ts: TensorRef[]): void { for (const t of ts) b.free(t.storage); }

/** Distance in float32 steps between two finite floats (0 and -0 are one point). */
function ulps(a: number, b: number): number {
  const key = (v: number): number => { const u = new Uint32Array(Float32Array.of(v).buffer)[0]; return u >= 0x80000000 ? 0x80000000 - u : u; };
  return Math.abs(key(a) - key(b));
}
const bitsOf = (v: number): number => new Uint32Array(Float32Array.of(v).buffer)[0];
const show = (v: number): string => Object.is(v, -0) ? '-0' : String(v);

/**
 * got against PyTorch's want: NaN for NaN; bit for bit where exact or infinite (zeros keep their sign); else
 * within maxUlps. `flushes`: a subnormal want may come back as a zero of its sign (WGSL lets an
 * implementation flush subnormals; SwiftShader does).
 */
function checkPow(label: string, got: number, want: number, exact: boolean, maxUlps: number, flushes: boolean): void {
  if (Number.isNaN(want)) { assert.ok(Number.isNaN(got), `${label}: want NaN, got ${show(got)}`); return; }
  if (flushes && want !== 0 && Math.abs(want) < 2 ** -126 && got === 0 && Math.sign(1 / got) === Math.sign(want)) return;
  if (exact || !Number.isFinite(want)) { assert.ok(bitsOf(got) === bitsOf(want), `${label}: want ${show(want)} exactly, got ${show(got)}`); return; }
  assert.ok(Number.isFinite(got) && ulps(got, want) <= maxUlps, `${label}: want ${want}, got ${got} (${ulps(got, want)} ulps)`);
}

// wasm: musl's powf (the same as PyTorch's glibc powf on every point here; Sleef's, on its
// vectorised path, is within an ulp); WebGPU: float32 arithmetic only (powf in pointwise.wgsl,
// float-float inside, the final exp2 WGSL's), 2 ulps at most here on SwiftShader.
const POW_ULPS: Record<string, number> = { wasm: 1, webgpu: 4 };

test('pow(tensor, tensor) is C powf: 1^NaN, NaN^0, (-1)^inf are 1; negative bases keep the sign of odd powers; zeros and infinities as C', async () => {
  const [x, y] = crossProduct();
  const wv = f32(FIX.pow.tensor), tensorExact = FIX.pow.tensorExact;
  for (const b of backends()) {
    const xt = put(b, x), yt = put(b, y), out = put(b, new Float32Array(x.length));
    b.binary('pow', xt, yt, out);
    const r = await readF32(b, out);
    for (let i = 0; i < r.length; i++) checkPow(`${b.kind}: pow(${show(x[i])}, ${show(y[i])})`, r[i], wv[i], tensorExact[i], POW_ULPS[b.kind], b.kind === 'webgpu');
    free(b, xt, yt, out);
  }
});

test('pow(tensor, number) is torch.pow: its x * x, x * x * x, 1 / (x * x), sqrt, rsqrt, reciprocal paths ((-0)^0.5 = -0, (-inf)^0.5 = NaN), C powf elsewhere', async () => {
  const { bases, exponents, scalar: want, scalarExact } = FIX.pow;
  const nb = bases.length;
  const x = f32(bases), ey = f32(exponents), wv = f32(want);
  for (const b of backends()) {
    const xt = put(b, x), out = put(b, new Float32Array(nb));
    for (let j = 0; j < ey.length; j++) {
      b.unary('powScalar', xt, out, ey[j]);
      const r = await readF32(b, out);
      for (let i = 0; i < nb; i++) checkPow(`${b.kind}: pow(${show(x[i])}, number ${show(ey[j])})`, r[i], wv[j * nb + i], scalarExact[j * nb + i], POW_ULPS[b.kind], b.kind === 'webgpu');
    }
    free(b, xt, out);
  }
});

/** The pow fixture's [exponent, base] cross product as flat bases and exponents. */
function crossProduct(): [Float32Array, Float32Array] {
  const bx = f32(FIX.pow.bases), ey = f32(FIX.pow.exponents), nb = bx.length;
  const x = new Float32Array(nb * ey.length), y = new Float32Array(nb * ey.length);
  for (let j = 0; j < ey.length; j++) for (let i = 0; i < nb; i++) { x[j * nb + i] = bx[i]; y[j * nb + i] = ey[j]; }
  return [x, y];
}

// The gradients are products of a power, a factor and (the exponent's) log x: an ulp or two more
// (WebGPU 3 at most here on SwiftShader).
const GRAD_ULPS: Record<string, number> = { wasm: 2, webgpu: 4 };

test('pow backward is PyTorch\'s pow_backward: d/dx (-3)^2 = -6, 0 where the exponent is 0 (0^0 too), d/de 0 where x = 0 and e >= 0', async () => {
  const [x, e] = crossProduct();
  const P = FIX.pow, n = x.length, nb = P.bases.length;
  const [wgx, wge, wgs] = [f32(P.tensorGradBase), f32(P.tensorGradExponent), f32(P.scalarGradBase)];
  for (const b of backends()) {
    const xv = Variable.from(b, x, [n], { requiresGrad: true }), ev = Variable.from(b, e, [n], { requiresGrad: true });
    pow(xv, ev).backward(Tensor.from(b, new Float32Array(n).fill(1), [n]));
    const [gx, ge] = [await xv.grad!.toArray() as Float32Array, await ev.grad!.toArray() as Float32Array];
    for (let i = 0; i < n; i++) {
      checkPow(`${b.kind}: d/dx pow(${show(x[i])}, ${show(e[i])})`, gx[i], wgx[i], P.tensorGradBaseExact[i], GRAD_ULPS[b.kind], b.kind === 'webgpu');
      checkPow(`${b.kind}: d/de pow(${show(x[i])}, ${show(e[i])})`, ge[i], wge[i], P.tensorGradExponentExact[i], GRAD_ULPS[b.kind], b.kind === 'webgpu');
    }
    const ey = f32(P.exponents);
    for (let j = 0; j < ey.length; j++) {
      // PyTorch takes e - 1 in float64: where that is no float32 (1e10 - 1, odd), its vectorised
      // body (float32 exponent, even) and its scalar tail (float64, odd) disagree on the sign.
      if (Math.fround(ey[j] - 1) !== ey[j] - 1 && Number.isFinite(ey[j])) continue;
      const xs = Variable.from(b, x.subarray(0, nb), [nb], { requiresGrad: true });
      pow(xs, ey[j]).backward(Tensor.from(b, new Float32Array(nb).fill(1), [nb]));
      const g = await xs.grad!.toArray() as Float32Array;
      for (let i = 0; i < nb; i++) {
        checkPow(`${b.kind}: d/dx pow(${show(x[i])}, number ${show(ey[j])})`, g[i], wgs[j * nb + i], P.scalarGradBaseExact[j * nb + i], GRAD_ULPS[b.kind], b.kind === 'webgpu');
      }
    }
  }
});

/**
 * got against PyTorch's want for one norm output: NaN where PyTorch gives NaN (and only there), inf
 * exactly, the rest within 2^-20 of `scale` (the magnitude of the terms the value is made of, in
 * float64: float32 rounding of those, not of the result, bounds it; where PyTorch's float32
 * moments overflowed to rstd 0 that bound is tight, so its zeros and biases are asserted there).
 */
function checkNorm(label: string, got: number, want: number, scale: number): void {
  if (Number.isNaN(want)) { assert.ok(Number.isNaN(got), `${label}: want NaN, got ${show(got)}`); return; }
  if (!Number.isFinite(want)) { assert.ok(got === want, `${label}: want ${show(want)} exactly, got ${show(got)}`); return; }
  assert.ok(Math.abs(got - want) <= scale * 2 ** -20, `${label}: want ${want}, got ${got} (scale ${scale})`);
}

const N = FIX.norm;
const X = f32(N.x), W = f32(N.weight), B = f32(N.bias), DY = f32(N.dy), C = N.cols;
const rowOf = (a: Float32Array, r: number): Float32Array => a.slice(r * C, (r + 1) * C);
const mean64 = (a: ArrayLike<number>): number => Array.from(a).reduce((s, v) => s + v, 0) / a.length;

test('layerNorm forward and backward match torch.nn.functional.layer_norm at inf, NaN, overflowing and all-equal rows', async () => {
  const ln = { out: f32(N.layerNorm.out), dx: f32(N.layerNorm.dx), dw: f32(N.layerNorm.dweight), db: f32(N.layerNorm.dbias) };
  for (const b of backends()) {
    const wt = put(b, W), bt = put(b, B);
    for (let r = 0; r < N.rows; r++) {
      const xr = rowOf(X, r), dyr = rowOf(DY, r);
      const xt = put(b, xr, [1, C]), dyt = put(b, dyr, [1, C]);
      const out = put(b, new Float32Array(C), [1, C]), mean = put(b, new Float32Array(1)), rstd = put(b, new Float32Array(1));
      const dx = put(b, new Float32Array(C), [1, C]), dw = put(b, new Float32Array(C)), db = put(b, new Float32Array(C));
      b.layerNorm(xt, wt, bt, out, mean, rstd, N.eps);
      b.layerNormBackward(dyt, xt, wt, mean, rstd, dx, dw, db);
      const [o, gx, gw, gb] = [await readF32(b, out), await readF32(b, dx), await readF32(b, dw), await readF32(b, db)];
      // Error scales in float64: |x - mean| rstd rounds from (|x| + |mean|) rstd.
      const mu = mean64(xr), rs = 1 / Math.sqrt(mean64(Array.from(xr, (v) => (v - mu) ** 2)) + N.eps);
      const xh = Array.from(xr, (v) => (Math.abs(v) + Math.abs(mu)) * rs), xhMax = Math.max(...xh);
      const gAbs = Array.from(xr, (_, c) => Math.abs(dyr[c] * W[c])), gMean = mean64(gAbs);
      const row = `${b.kind} row ${r} [${Array.from(xr, show)}]`;
      for (let c = 0; c < C; c++) {
        checkNorm(`${row} out[${c}]`, o[c], ln.out[r * C + c], xh[c] * Math.abs(W[c]) + Math.abs(B[c]));
        checkNorm(`${row} dx[${c}]`, gx[c], ln.dx[r * C + c], rs * (gAbs[c] + gMean + 2 * xhMax * xhMax * gMean));
        checkNorm(`${row} dweight[${c}]`, gw[c], ln.dw[r * C + c], Math.abs(dyr[c]) * xh[c]);
        assert.ok(bitsOf(gb[c]) === bitsOf(ln.db[r * C + c]), `${row} dbias[${c}]: want ${ln.db[r * C + c]}, got ${gb[c]}`);
      }
      free(b, xt, dyt, out, mean, rstd, dx, dw, db);
    }
    free(b, wt, bt);
  }
});

test('rmsNorm forward and backward match PyTorch\'s float32 RMSNorm (x * rsqrt(mean(x^2) + eps) * w) at the same rows', async () => {
  const rms = { out: f32(N.rmsNorm.out), dx: f32(N.rmsNorm.dx), dw: f32(N.rmsNorm.dweight) };
  for (const b of backends()) {
    const wt = put(b, W);
    for (let r = 0; r < N.rows; r++) {
      const xr = rowOf(X, r), dyr = rowOf(DY, r);
      const xt = put(b, xr, [1, C]), dyt = put(b, dyr, [1, C]);
      const out = put(b, new Float32Array(C), [1, C]), rstd = put(b, new Float32Array(1));
      const dx = put(b, new Float32Array(C), [1, C]), dw = put(b, new Float32Array(C));
      b.rmsNorm(xt, wt, out, rstd, N.eps);
      b.rmsNormBackward(dyt, xt, wt, rstd, dx, dw);
      const [o, gx, gw] = [await readF32(b, out), await readF32(b, dx), await readF32(b, dw)];
      const rs = 1 / Math.sqrt(mean64(Array.from(xr, (v) => v * v)) + N.eps);
      const gx64 = mean64(Array.from(xr, (v, c) => Math.abs(dyr[c] * W[c] * v)));
      const row = `${b.kind} row ${r} [${Array.from(xr, show)}]`;
      for (let c = 0; c < C; c++) {
        const xa = Math.abs(xr[c]);
        checkNorm(`${row} out[${c}]`, o[c], rms.out[r * C + c], xa * rs * Math.abs(W[c]));
        checkNorm(`${row} dx[${c}]`, gx[c], rms.dx[r * C + c], rs * Math.abs(dyr[c] * W[c]) + xa * rs ** 3 * gx64 * 2);
        checkNorm(`${row} dweight[${c}]`, gw[c], rms.dw[r * C + c], Math.abs(dyr[c]) * xa * rs);
      }
      free(b, xt, dyt, out, rstd, dx, dw);
    }
    free(b, wt);
  }
});

test.run();
