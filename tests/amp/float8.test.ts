// fp8 training of Linear layers: the device scale update against a hand-computed Transformer Engine
// trace (wasm, and WebGPU bit for bit); one fp8 linear forward and backward against a float64
// reference of the same quantize-then-matmul algorithm; delayed scaling through a Float8Linear
// step by step; convertToFloat8Training's filter and errors; fp8 state in the state dict and a
// bit-identical resume from a checkpoint.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import type { Backend, Float8ScaleOptions } from '../../src/backend/backend.js';
import {
  AdamW, autocast, Float8Linear, InvalidArgumentError, Linear, MemfitError, Module, Tensor, Variable,
  convertToFloat8Training, decode, encode, type Float8Recipe,
} from '../../src/index.js';
import { loadCheckpoint, saveCheckpoint } from '../../src/io/checkpoint.js';
import { gpuBackend } from '../helpers/backends.js';
import { rand } from '../helpers/values.js';
import { Generator } from '../../src/random.js';

const f = Math.fround;

/** Mean squared difference. */
function mse(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return s / a.length;
}
const w = new WasmBackend();

// ---- the scale update kernel ------------------------------------------------------------------

/** Runs float8ScaleUpdate after writing each amax to history[0]; returns history, scale and scaleInv after every step. */
async function scaleTrace(b: Backend, len: number, amaxes: number[], options: Float8ScaleOptions): Promise<{ history: number[]; scale: number; inv: number }[]> {
  const h = Tensor.from(b, new Float32Array(len), [len]);
  const s = Tensor.from(b, [1], [1]), inv = Tensor.from(b, [1], [1]);
  const out = [];
  for (const a of amaxes) {
    const h0 = Tensor.from(b, [a], [1], { category: 'temporary' });
    b.cast(h0, { storage: h.storage, offset: 0, shape: [1], dtype: 'float32' }); // history[0] = this step's amax
    h0.dispose();
    b.float8ScaleUpdate(h, s, inv, options);
    out.push({ history: Array.from(await h.toArray()), scale: (await s.toArray())[0], inv: (await inv.toArray())[0] });
  }
  h.dispose(); s.dispose(); inv.dispose();
  return out;
}

const AMAXES = [2, 4, 1, 0, 0.5, NaN, 3, 2, 1, Infinity];

test("delayed scaling ('max', history 3): Transformer Engine's amax_and_scale_update step by step, computed by hand", async () => {
  // history[0] = amax; amax = the largest entry (NaN entries skipped, as TE's fmaxf); roll by one
  // (i + 1 -> i, 0 -> last); history[0] = 0; scale = 448 / amax if amax is finite and > 0, else kept.
  const want: [number[], number][] = [
    [[0, 0, 2], 224], // [2,0,0]: max 2
    [[0, 2, 4], 112], // [4,0,2]: max 4
    [[0, 4, 1], 112], // [1,2,4]: max 4; the roll drops the 2 (TE keeps L - 1 older amaxes and the newest)
    [[0, 1, 0], 112], // [0,4,1]: max 4
    [[0, 0, 0.5], 448], // [0.5,1,0]: max 1
    [[0, 0.5, NaN], 896], // [NaN,0,0.5]: the NaN is skipped, max 0.5
    [[0, NaN, 3], f(448 / 3)], // [3,0.5,NaN]: max 3
    [[0, 3, 2], f(448 / 3)], // [2,NaN,3]: max 3
    [[0, 2, 1], f(448 / 3)], // [1,3,2]: max 3
    [[0, 1, Infinity], f(448 / 3)], // [inf,2,1]: inf keeps the scale
  ];
  const got = await scaleTrace(w, 3, AMAXES, { fp8Max: 448, algorithm: 'max' });
  got.forEach((g, i) => {
    assert.equal(g.history, want[i][0], `step ${i + 1}: history`);
    assert.is(g.scale, want[i][1], `step ${i + 1}: scale`);
    assert.is(g.inv, f(1 / want[i][1]), `step ${i + 1}: scaleInv = 1 / scale`);
  });
  const nan = await scaleTrace(w, 2, [NaN, NaN], { fp8Max: 448, algorithm: 'max' });
  assert.equal(nan.map((r) => r.scale), [1, 1], 'only NaN seen: the initial scale is kept');
});

test("delayed scaling ('mostRecent', margin 1), history of 1, and current scaling: by hand", async () => {
  const recent = await scaleTrace(w, 3, AMAXES, { fp8Max: 57344, algorithm: 'mostRecent', margin: 1 });
  const scales = [14336, 7168, 28672, 28672, 57344, 57344, f(28672 / 3), 14336, 28672, 28672]; // (57344 / 2) / amax; 0, NaN, inf keep it
  assert.equal(recent.map((r) => r.scale), scales.map(f));
  const one = await scaleTrace(w, 1, [2, 0, 8], { fp8Max: 448, algorithm: 'max' });
  assert.equal(one.map((r) => [r.history[0], r.scale]), [[0, 224], [0, 224], [0, 56]], 'L = 1: the history is always zeroed');
  const cur = await scaleTrace(w, 1, [2, 0, 3, NaN], { fp8Max: 448, algorithm: 'current' });
  assert.equal(cur.map((r) => r.scale), [224, f(448 / f(1e-12)), f(448 / 3), NaN], 'current: 448 / max(amax, 1e-12); NaN stays NaN');
  assert.equal(cur.map((r) => r.history[0]), [2, 0, 3, NaN], 'current: the history is not touched');
});

test('the scale update on WebGPU (SwiftShader) equals wasm bit for bit', async () => {
  const g = await gpuBackend();
  for (const o of [{ fp8Max: 448, algorithm: 'max' }, { fp8Max: 57344, algorithm: 'mostRecent', margin: 2 }, { fp8Max: 448, algorithm: 'current' }] as Float8ScaleOptions[]) {
    const amaxes = [...AMAXES, 0.3, 7.25, 1e-3, 65000];
    const a = await scaleTrace(w, 4, amaxes, o), b = await scaleTrace(g, 4, amaxes, o);
    assert.equal(b, a, `${o.algorithm}`);
  }
});

// ---- one fp8 linear against a float64 reference -------------------------------------------------

/** Host reference of quantization: q = saturate(fp8(fround(x * scale))), decoded. */
function quantizeRef(x: Float32Array, scale: number, dtype: 'float8_e4m3fn' | 'float8_e5m2'): Float32Array {
  return decode(encode(Float64Array.from(x, (v) => f(v * scale)), dtype, { saturate: true }), dtype);
}

const amaxOf = (x: Float32Array): number => x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/** C[M, N] = sum_k A(i, k) B(k, j) * sA * sB in float64; and sum_k |A B| (the float32 accumulation bound). */
function mmRef(m: number, k: number, n: number, a: (i: number, kk: number) => number, b: (kk: number, j: number) => number, s: number): { c: Float64Array; abs: Float64Array } {
  const c = new Float64Array(m * n), abs = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let t = 0, u = 0;
    for (let kk = 0; kk < k; kk++) { const p = a(i, kk) * b(kk, j); t += p; u += Math.abs(p); }
    c[i * n + j] = t * s;
    abs[i * n + j] = u * Math.abs(s);
  }
  return { c, abs };
}

function near(what: string, got: Float32Array, ref: { c: Float64Array; abs: Float64Array }, k: number): void {
  for (let i = 0; i < got.length; i++) {
    const tol = k * 2 ** -24 * ref.abs[i] + 2 ** -24 * Math.abs(ref.c[i]) + 1e-30; // float32 adds in increasing k, one rounding of the result
    assert.ok(Math.abs(got[i] - ref.c[i]) <= tol, `${what}[${i}]: ${got[i]} vs float64 ${ref.c[i]} (tol ${tol})`);
  }
}

class One extends Module {
  fc: Linear;
  constructor(b: Backend, inF: number, outF: number, bias = true) { super(); this.fc = new Linear(inF, outF, { backend: b, bias }); }
  forward(x: Variable): Variable { return this.fc.forward(x); }
}

/** Forward and backward of one fp8 linear (gradient gy), values read back. */
async function runLinear(b: Backend, m: One, x: Float32Array, xShape: number[], gy: Float32Array) {
  const xv = new Variable(Tensor.from(b, x, xShape), { requiresGrad: true });
  const y = m.forward(xv);
  const g = Tensor.from(b, gy, y.shape, { category: 'temporary' });
  y.backward(g);
  const r = {
    y: await y.data.toArray() as Float32Array, gx: await xv.grad!.toArray() as Float32Array,
    gw: await m.fc.weight.grad!.toArray() as Float32Array, gb: m.fc.bias ? await m.fc.bias.grad!.toArray() as Float32Array : null,
  };
  g.dispose(); y.dispose(); xv.data.dispose(); xv.grad?.dispose();
  m.zeroGrad();
  return r;
}

test('one fp8 linear (current scaling), forward and backward, agrees with a float64 reference of quantize-then-matmul', async () => {
  const M = 6, K = 20, N = 5; // x [2, 3, 20]: the batch dims are flattened
  const m = new One(w, K, N);
  const W = await m.fc.weight.data.toArray() as Float32Array, bias = await m.fc.bias!.data.toArray() as Float32Array;
  const x = rand(M * K, 1, 3), gy = rand(M * N, 2, 1e-3); // small gradients: scaling keeps them out of e5m2's subnormals
  x[7] = 900; // beyond e4m3's 448 before scaling: the scale brings it in
  convertToFloat8Training(m, { recipe: { scaling: 'current' } });
  assert.ok(m.fc instanceof Float8Linear);
  const r = await runLinear(w, m, x, [2, 3, K], gy);

  const sx = f(448 / amaxOf(x)), sw = f(448 / amaxOf(W)), sg = f(57344 / amaxOf(gy));
  const ix = f(1 / sx), iw = f(1 / sw), ig = f(1 / sg);
  const qx = quantizeRef(x, sx, 'float8_e4m3fn'), qw = quantizeRef(W, sw, 'float8_e4m3fn'), qg = quantizeRef(gy, sg, 'float8_e5m2');
  const y = mmRef(M, K, N, (i, k) => qx[i * K + k], (k, j) => qw[j * K + k], ix * iw);
  const yb = new Float32Array(M * N).map((_, o) => f(f(y.c[o]) + bias[o % N])); // the float32 result, then the bias added in float32
  near('y (before the bias)', r.y.map((v, o) => v - bias[o % N]), y, K);
  for (let o = 0; o < M * N; o++) assert.ok(Math.abs(r.y[o] - yb[o]) <= 2 ** -22 * (Math.abs(yb[o]) + y.abs[o]), `y[${o}]`);
  near('dx = dy W', r.gx, mmRef(M, N, K, (i, j) => qg[i * N + j], (j, k) => qw[j * K + k], ig * iw), N);
  near('dW = dy^T x', r.gw, mmRef(N, M, K, (j, i) => qg[i * N + j], (i, k) => qx[i * K + k], ig * ix), M);
  for (let j = 0; j < N; j++) {
    let s = 0;
    for (let i = 0; i < M; i++) s += gy[i * N + j];
    assert.ok(Math.abs(r.gb![j] - s) <= 1e-6 * Math.abs(s) + 1e-9, `db[${j}] is the high-precision sum`);
  }
  // and the fp8 result is near the float32 linear's
  const exact = mmRef(M, K, N, (i, k) => x[i * K + k], (k, j) => W[j * K + k], 1);
  assert.ok(mse(r.y.map((v, o) => v - bias[o % N]), exact.c) < 1e-3 * mse(new Float32Array(M * N), exact.c), 'fp8 error is small against the signal');
  m.dispose();
});

test('delayed scaling through a Float8Linear, step by step: each call quantizes with the scale of the steps before, then records its amax', async () => {
  const K = 8, N = 3, M = 4, L = 4;
  const m = new One(w, K, N, false);
  const W = await m.fc.weight.data.toArray() as Float32Array;
  convertToFloat8Training(m, { recipe: { scaling: 'delayed', amaxHistoryLen: L } });
  const hist = { input: [0, 0, 0, 0], weight: [0, 0, 0, 0], grad_output: [0, 0, 0, 0] };
  const scale = { input: 1, weight: 1, grad_output: 1 };
  const update = (role: keyof typeof hist, amax: number, fp8Max: number): void => { // TE, written out
    const h = hist[role];
    h[0] = amax;
    const a = Math.max(...h);
    hist[role] = [0, ...h.slice(2), h[0]];
    if (a > 0 && Number.isFinite(a)) scale[role] = f(fp8Max / a);
  };
  for (let step = 0; step < 6; step++) {
    const x = rand(M * K, 10 + step, 2 ** (step - 2)), gy = rand(M * N, 20 + step, 0.01 * (step + 1));
    const used = { ...scale };
    const r = await runLinear(w, m, x, [M, K], gy);
    // the output was computed with the scales from before this step
    const qx = quantizeRef(x, used.input, 'float8_e4m3fn'), qw = quantizeRef(W, used.weight, 'float8_e4m3fn');
    near(`step ${step + 1} y`, r.y, mmRef(M, K, N, (i, k) => qx[i * K + k], (k, j) => qw[j * K + k], f(1 / used.input) * f(1 / used.weight)), K);
    const qg = quantizeRef(gy, used.grad_output, 'float8_e5m2');
    near(`step ${step + 1} dx`, r.gx, mmRef(M, N, K, (i, j) => qg[i * N + j], (j, k) => qw[j * K + k], f(1 / used.grad_output) * f(1 / used.weight)), N);
    update('input', amaxOf(x), 448);
    update('weight', amaxOf(W), 448);
    update('grad_output', amaxOf(gy), 57344);
    const sd = m.stateDict();
    for (const role of ['input', 'weight', 'grad_output'] as const) {
      assert.equal(Array.from(await sd[`fc.fp8_amax_history_${role}`].toArray()), hist[role], `step ${step + 1}: ${role} history`);
      assert.is((await sd[`fc.fp8_scale_${role}`].toArray())[0], scale[role], `step ${step + 1}: ${role} scale`);
      assert.is((await sd[`fc.fp8_scale_inv_${role}`].toArray())[0], f(1 / scale[role]), `step ${step + 1}: ${role} scaleInv`);
    }
  }
  assert.equal(hist.input.slice(1).map((v) => v > 0), [true, true, true], 'the history holds the last three amaxes');
  m.dispose();
});

test('fp8 saves its quantized input and weight (1 byte an element) for backward, labelled, and frees them after backward', async () => {
  const b = new WasmBackend();
  const m = new One(b, 64, 32, false);
  convertToFloat8Training(m);
  const x = new Variable(Tensor.from(b, rand(16 * 64, 3), [16, 64]), { requiresGrad: true });
  const before = b.memory.memoryAllocated('activation');
  const y = m.forward(x);
  const held = b.memory.memoryAllocated('activation') - before;
  assert.is(held, 16 * 32 * 4 + 16 * 64 + 32 * 64 + 2 * 4, 'output float32 + input fp8 + weight fp8 + two inverse scales');
  const g = Tensor.from(b, new Float32Array(16 * 32).fill(1), [16, 32]);
  y.backward(g);
  y.dispose();
  assert.is(b.memory.memoryAllocated('activation'), before, 'nothing left after backward');
  g.dispose(); x.data.dispose(); x.grad?.dispose(); m.zeroGrad(); m.dispose();
});

test('under autocast the fp8 linear outputs the autocast dtype (its gradients stay float32); outside, its input\'s dtype', () => {
  const m = new One(w, 16, 8);
  convertToFloat8Training(m);
  const x = new Variable(Tensor.from(w, rand(4 * 16, 5), [4, 16]), { requiresGrad: true });
  const y = m.forward(x);
  assert.is(y.data.dtype, 'float32');
  const yb = autocast({ dtype: 'bfloat16' }, () => m.forward(x));
  assert.is(yb.data.dtype, 'bfloat16');
  yb.backward(Tensor.from(w, new Float32Array(4 * 8).fill(0.5), [4, 8], { dtype: 'bfloat16' }));
  assert.is(x.grad!.dtype, 'float32');
  assert.is(m.fc.weight.grad!.dtype, 'float32');
  for (const t of [y, yb]) t.dispose();
  x.grad!.dispose(); x.data.dispose(); m.zeroGrad(); m.dispose();
});

// ---- MXFP8 -------------------------------------------------------------------------------------

/** Host OCP MX quantization of x [R, C] in blocks of 32 along rows or columns, dequantized: q * 2^(floor(log2 amax) - 8). */
function mxRef(x: Float32Array, r: number, c: number, along: 'rows' | 'columns'): Float64Array {
  const out = new Float64Array(r * c);
  const idx = (b: number, i: number): number => (along === 'rows' ? Math.floor(b / (c / 32)) * c + (b % (c / 32)) * 32 + i : (Math.floor(b / c) * 32 + i) * c + (b % c));
  for (let b = 0; b < (r * c) / 32; b++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[idx(b, i)]));
    let e = amax > 0 ? Math.floor(Math.log2(amax)) : -127;
    if (amax > 0 && 2 ** e > amax) e--;
    if (amax > 0 && 2 ** (e + 1) <= amax) e++;
    const scale = 2 ** Math.min(127, Math.max(-127, e - 8));
    const block = Float32Array.from({ length: 32 }, (_, i) => x[idx(b, i)] / scale);
    const q = decode(encode(Float64Array.from(block), 'float8_e4m3fn', { saturate: true }), 'float8_e4m3fn');
    for (let i = 0; i < 32; i++) out[idx(b, i)] = q[i] * scale;
  }
  return out;
}

test('fp8 and MXFP8 linears with a bias round a bfloat16 output once: the product and the bias summed in float32, then rounded', async () => {
  const M = 32, K = 32, N = 32; // MXFP8 blocks: multiples of 32
  const bf = (a: Float32Array) => decode(encode(a, 'bfloat16'), 'bfloat16') as Float32Array;
  for (const scaling of ['current', 'mx'] as const) {
    const m = new One(w, K, N);
    m.to('bfloat16');
    m.to('float32'); // bfloat16-exact float32 weights and bias: the bfloat16 run below reads the same values
    convertToFloat8Training(m, { recipe: { scaling } });
    const x = bf(rand(M * K, 71, 3));
    const y32 = await m.forward(new Variable(Tensor.from(w, x, [M, K]))).data.toArray() as Float32Array;
    m.to('bfloat16');
    const y16 = m.forward(new Variable(Tensor.from(w, x, [M, K], { dtype: 'bfloat16' })));
    assert.is(y16.data.dtype, 'bfloat16');
    assert.equal([...await y16.data.toArray()], [...bf(y32)], `${scaling}: one rounding of the float32 result`);
    m.dispose();
  }
});

test('MXFP8 (emulated): one linear forward and backward agrees with a float64 reference of OCP block quantization, each matmul quantized along its reduction axis', async () => {
  const M = 64, K = 32, N = 64;
  const m = new One(w, K, N, false);
  const W = await m.fc.weight.data.toArray() as Float32Array;
  const x = rand(M * K, 61, 3).map((v, i) => v * 2 ** ((Math.floor(i / K) % 7) - 3)), gy = rand(M * N, 62, 1e-2); // rows of different magnitudes
  x[5] = 0; for (let i = 32; i < 64; i++) x[i] = 0; // a zero block: scale 2^-127, zeros
  convertToFloat8Training(m, { recipe: { scaling: 'mx' } });
  assert.equal(Object.keys(m.stateDict()), ['fc.weight'], 'no state');
  const r = await runLinear(w, m, x, [M, K], gy);
  const xr = mxRef(x, M, K, 'rows'), wr = mxRef(W, N, K, 'rows');
  near('y', r.y, mmRef(M, K, N, (i, k) => xr[i * K + k], (k, j) => wr[j * K + k], 1), K);
  const gr = mxRef(gy, M, N, 'rows'), wc = mxRef(W, N, K, 'columns');
  near('dx', r.gx, mmRef(M, N, K, (i, j) => gr[i * N + j], (j, k) => wc[j * K + k], 1), N);
  const gc = mxRef(gy, M, N, 'columns'), xc = mxRef(x, M, K, 'columns');
  near('dW', r.gw, mmRef(N, M, K, (j, i) => gc[i * N + j], (i, k) => xc[i * K + k], 1), M);
  // the values quantized along rows and along columns differ: the test would see a wrong axis
  assert.ok(xr.some((v, i) => v !== xc[i]));
  const bad = new One(w, 48, 32);
  assert.throws(() => convertToFloat8Training(bad, { recipe: { scaling: 'mx' } }), /MXFP8 needs in and out features that are multiples of 32; not: "fc" \[32, 48\]/);
  assert.ok(!(bad.fc instanceof Float8Linear), 'nothing changed');
  const xv = new Variable(Tensor.from(w, rand(10 * K, 3), [10, K]));
  assert.throws(() => m.forward(xv), /rows \(tokens\) \(10\) to be a multiple of 32/);
  xv.data.dispose(); m.dispose(); bad.dispose();
});

test('MXFP8 on WebGPU (SwiftShader) agrees with wasm: within float32 matmul error', async () => {
  const g = await gpuBackend();
  const M = 32, K = 64, N = 32;
  const src = new One(w, K, N);
  const x = rand(M * K, 71, 2), gy = rand(M * N, 72, 0.1);
  const rs = [];
  for (const b of [w, g]) {
    const m = new One(b, K, N);
    for (const k of ['weight', 'bias'] as const) b.write(m.fc[k]!.data.storage, await src.fc[k]!.data.toArray());
    convertToFloat8Training(m, { recipe: { scaling: 'mx' } });
    rs.push(await runLinear(b, m, x, [M, K], gy));
    m.dispose();
  }
  for (const k of ['y', 'gx', 'gw', 'gb'] as const) {
    const p = rs[0][k]!, q = rs[1][k]!;
    const scale = p.reduce((s, v) => Math.max(s, Math.abs(v)), 0);
    p.forEach((v, i) => assert.ok(Math.abs(v - q[i]) <= 1e-5 * scale, `${k}[${i}]: wasm ${v} webgpu ${q[i]}`));
  }
});

// ---- convertToFloat8Training -------------------------------------------------------------------

class Net extends Module {
  up: Linear; down: Linear; head: Linear;
  constructor(b: Backend, generator = new Generator(7)) {
    super();
    const o = { backend: b, generator };
    this.up = new Linear(8, 16, o); this.down = new Linear(16, 8, o); this.head = new Linear(8, 4, o);
  }
  forward(x: Variable): Variable { return this.head.forward(this.down.forward(this.up.forward(x))); }
}

test('convertToFloat8Training: a RegExp or a predicate on dotted names; shared parameters; a filter matching nothing is a MemfitError listing the Linear names, nothing changed', () => {
  const n = new Net(w);
  const params = n.parameters();
  const keys = Object.keys(n.stateDict());
  assert.throws(() => convertToFloat8Training(n, { filter: /^lm_head$/ }),
    (e: Error) => e instanceof InvalidArgumentError && e instanceof MemfitError && /matches no Linear layer.*"up", "down", "head"/.test(e.message));
  assert.throws(() => convertToFloat8Training(n, { recipe: { scaling: 'delayed', amaxHistoryLen: 0 } }), /amaxHistoryLen must be a positive integer/);
  assert.throws(() => convertToFloat8Training(n, { recipe: { scaling: 'sometimes' } as unknown as Float8Recipe }), /'delayed', 'current' or 'mx'/);
  assert.throws(() => convertToFloat8Training(n, { filter: 'up' as never }), /filter must be a RegExp or a function/);
  assert.equal(Object.keys(n.stateDict()), keys, 'nothing changed');
  assert.ok(!(n.up instanceof Float8Linear));

  convertToFloat8Training(n, { filter: /^(up|down)$/, recipe: { scaling: 'delayed', amaxHistoryLen: 16 } });
  assert.ok(n.up instanceof Float8Linear && n.down instanceof Float8Linear && !(n.head instanceof Float8Linear));
  assert.equal(n.parameters(), params, 'the same Parameter objects (an optimizer built before still holds them)');
  assert.equal(n.up.getBuffer('fp8_amax_history_input').shape, [16]);
  convertToFloat8Training(n, { filter: (name, m) => m.outFeatures === 4, recipe: { scaling: 'current' } });
  assert.ok(n.head instanceof Float8Linear);
  assert.equal(Object.keys(n.stateDict()).filter((k) => k.startsWith('head.')), ['head.weight', 'head.bias'], 'current scaling has no state');
  assert.throws(() => convertToFloat8Training(n), (e: Error) => e instanceof InvalidArgumentError && /no unconverted Linear layer/.test(e.message), 'converted layers are not converted again');
  n.dispose();
});

test('fp8 state is in the state dict and the checkpoint: a resumed run is bit-identical to an uninterrupted one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'memfit-fp8-'));
  const data = Array.from({ length: 8 }, (_, i) => [rand(4 * 8, 100 + i, 2), rand(4 * 4, 200 + i)] as const);
  const make = (b: Backend, seedShift: number) => {
    const n = new Net(b);
    if (seedShift) for (const p of n.parameters()) b.fill(p.data, 0.01 * seedShift); // another start: nothing matches until the load
    convertToFloat8Training(n, { recipe: { scaling: 'delayed', amaxHistoryLen: 5 } });
    return { n, opt: new AdamW(n.parameters(), { lr: 1e-2 }) };
  };
  const steps = async (b: Backend, s: { n: Net; opt: AdamW }, from: number, to: number): Promise<void> => {
    for (let i = from; i < to; i++) {
      const x = new Variable(Tensor.from(b, data[i][0], [4, 8]));
      const y = s.n.forward(x);
      y.backward(Tensor.from(b, data[i][1], [4, 4], { category: 'temporary' }));
      s.opt.step(); s.opt.zeroGrad(); y.dispose(); x.data.dispose();
    }
  };
  const snapshot = async (n: Net) => Object.fromEntries(await Promise.all(Object.entries(n.stateDict()).map(async ([k, t]) => [k, Array.from(await t.toArray())])));
  try {
    const path = join(dir, 'fp8.safetensors');
    const b1 = new WasmBackend();
    const straight = make(b1, 0);
    await steps(b1, straight, 0, 8);
    const b2 = new WasmBackend();
    const first = make(b2, 0);
    await steps(b2, first, 0, 5);
    await saveCheckpoint(path, { model: first.n, optimizer: first.opt, step: 5 });
    assert.ok(Object.keys(first.n.stateDict()).includes('up.fp8_amax_history_grad_output'));
    const b3 = new WasmBackend();
    const resumed = make(b3, 3);
    await loadCheckpoint(path, { model: resumed.n, optimizer: resumed.opt });
    assert.equal(await snapshot(resumed.n), await snapshot(first.n), 'loaded: parameters, amax histories and scales');
    await steps(b3, resumed, 5, 8);
    assert.equal(await snapshot(resumed.n), await snapshot(straight.n), 'bit-identical after resuming');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the fp8 linear on WebGPU (SwiftShader) equals wasm: amax histories, scales, output and matmul gradients bit for bit', async () => {
  const g = await gpuBackend();
  const K = 24, N = 6, M = 5;
  const x = rand(M * K, 41, 4), gy = rand(M * N, 42, 0.1);
  const results = [];
  const src = new One(w, K, N);
  for (const b of [w, g]) {
    const m = new One(b, K, N);
    for (const k of ['weight', 'bias'] as const) b.write(m.fc[k]!.data.storage, await src.fc[k]!.data.toArray()); // the same weights on both
    convertToFloat8Training(m, { recipe: { scaling: 'delayed', amaxHistoryLen: 3 } });
    for (let i = 0; i < 2; i++) await runLinear(b, m, x.map((v) => v * (i + 1)), [M, K], gy);
    const r = await runLinear(b, m, x, [M, K], gy);
    const sd = Object.fromEntries(await Promise.all(Object.entries(m.stateDict()).filter(([k]) => k.includes('fp8')).map(async ([k, t]) => [k, Array.from(await t.toArray())])));
    results.push({ r, sd });
    m.dispose();
  }
  const [a, b] = results;
  assert.equal(b.sd, a.sd, 'amax histories and scales');
  // K <= 256: both sum in float32 in increasing k and scale the sum by scaleA then scaleB in float32
  for (const k of ['y', 'gx', 'gw'] as const) assert.equal(Array.from(b.r[k]), Array.from(a.r[k]), `${k}: bit for bit`);
  const p = a.r.gb!, q = b.r.gb!; // the bias gradient: each backend's float32 sum
  p.forEach((v, i) => assert.ok(Math.abs(v - q[i]) <= 1e-6 * Math.abs(v) + 1e-9, `gb[${i}]: wasm ${v} webgpu ${q[i]}`));
});

test.run();
