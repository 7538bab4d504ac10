// Optimizer kernels (GradScaler unscale and scale update, global norm, AdamW plain and under a
// found-inf flag) and the per-tensor scaled matmul on both backends: wasm against float64
// references and golden data, WebGPU against wasm.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { storageBytes } from '../../src/backend/storage.js';
import { WebGPUBackend } from '../../src/backend/webgpu/backend.js';
import type { AdamWHyper, Backend, TensorDType, TensorRef } from '../../src/backend/backend.js';
import { numel } from '../../src/backend/shape.js';
import { decode } from '../../src/index.js';
import { golden } from '../helpers/golden.js';
import { rand } from '../helpers/values.js';

const w = new WasmBackend();
let g: WebGPUBackend;

test.before(async () => {
  g = await WebGPUBackend.create();
});
test.after(() => g.destroy());

function tensor(b: Backend, shape: number[], dtype: TensorDType, data?: ArrayBufferView): TensorRef {
  const storage = b.alloc(storageBytes(dtype, numel(shape)), 'data', 'test');
  if (data) b.write(storage, data);
  return { storage, offset: 0, shape, dtype };
}

async function readF32(b: Backend, t: TensorRef): Promise<Float32Array> {
  const bytes = await b.read(t.storage, 0, numel(t.shape) * 4);
  return new Float32Array(bytes.buffer, bytes.byteOffset, numel(t.shape)).slice();
}

async function readU16(b: Backend, t: TensorRef): Promise<Uint16Array> {
  const bytes = await b.read(t.storage, 0, numel(t.shape) * 2);
  return new Uint16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + numel(t.shape) * 2));
}

function freeAll(b: Backend, ...ts: TensorRef[]): void {
  for (const t of ts) b.free(t.storage);
}

/** bfloat16 code of a finite float32, nearest-even. */
function bf16(x: number): number {
  const u = new Uint32Array(Float32Array.of(x).buffer)[0];
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

// ---- AdamW ------------------------------------------------------------------------------------

/** PyTorch's AdamW rule in float64, in place. */
function adamwRef(p: Float64Array, grad: Float32Array, m: Float64Array, v: Float64Array, h: AdamWHyper): void {
  for (let i = 0; i < p.length; i++) {
    const gi = grad[i] * (h.gradScale ?? 1);
    p[i] *= 1 - h.lr * h.weightDecay;
    m[i] = h.beta1 * m[i] + (1 - h.beta1) * gi;
    v[i] = h.beta2 * v[i] + (1 - h.beta2) * gi * gi;
    const mhat = m[i] / (1 - h.beta1 ** h.step);
    const vhat = v[i] / (1 - h.beta2 ** h.step);
    p[i] -= h.lr * mhat / (Math.sqrt(vhat) + h.eps);
  }
}

/**
 * max over i of |got - want| / (|want| + floor), floor = floorFrac * max|want|. m and v use a floor of
 * 1/4 (float32 cancellation in beta * m + (1 - beta) * g leaves absolute errors of a few ulps of
 * the largest values, not of each element); params 1e-3.
 */
function relErr(got: ArrayLike<number>, want: ArrayLike<number>, floorFrac = 1e-3): number {
  let big = 0;
  for (let i = 0; i < want.length; i++) big = Math.max(big, Math.abs(want[i]));
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / (Math.abs(want[i]) + floorFrac * big));
  return worst;
}

const MV_FLOOR = 0.25;
const HYPER = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };

test('adamw (float32 param): several steps match a float64 PyTorch reference (wasm, 1e-6 rel) and GPU matches wasm', async () => {
  const n = 1000;
  const p0 = rand(n, 1);
  const ref = { p: Float64Array.from(p0), m: new Float64Array(n), v: new Float64Array(n) };
  const on = (b: Backend) => ({ p: tensor(b, [n], 'float32', p0), m: tensor(b, [n], 'float32', new Float32Array(n)), v: tensor(b, [n], 'float32', new Float32Array(n)), gr: tensor(b, [n], 'float32') });
  const tw = on(w), tg = on(g);
  for (let step = 1; step <= 6; step++) {
    const grad = rand(n, 100 + step, step % 2 ? 0.5 : 4);
    const h: AdamWHyper = { ...HYPER, step, gradScale: step === 3 ? 0.25 : undefined };
    adamwRef(ref.p, grad, ref.m, ref.v, h);
    for (const [b, t] of [[w, tw], [g, tg]] as const) {
      b.write(t.gr.storage, grad);
      b.adamw(t.p, t.gr, t.m, t.v, h);
    }
  }
  const [pw, mw, vw] = await Promise.all([readF32(w, tw.p), readF32(w, tw.m), readF32(w, tw.v)]);
  const [pg, mg, vg] = await Promise.all([readF32(g, tg.p), readF32(g, tg.m), readF32(g, tg.v)]);
  assert.ok(relErr(pw, ref.p) <= 1e-6, `wasm param rel err ${relErr(pw, ref.p)}`);
  assert.ok(relErr(mw, ref.m, MV_FLOOR) <= 1e-6, `wasm m rel err ${relErr(mw, ref.m, MV_FLOOR)}`);
  assert.ok(relErr(vw, ref.v, MV_FLOOR) <= 1e-6, `wasm v rel err ${relErr(vw, ref.v, MV_FLOOR)}`);
  assert.ok(relErr(pg, pw) <= 1e-6, `gpu vs wasm param ${relErr(pg, pw)}`);
  assert.ok(relErr(mg, mw, MV_FLOOR) <= 1e-6, `gpu vs wasm m ${relErr(mg, mw, MV_FLOOR)}`);
  assert.ok(relErr(vg, vw, MV_FLOOR) <= 1e-6, `gpu vs wasm v ${relErr(vg, vw, MV_FLOOR)}`);
  freeAll(w, tw.p, tw.m, tw.v, tw.gr);
  freeAll(g, tg.p, tg.m, tg.v, tg.gr);
});

// The wasm AdamW runs four elements at a time and its tail one by one: the same data as one call
// (the vector body) and as calls of three elements (all tail) must give the same bits (GradScaler's
// unscale too).
test('wasm adamw and unscale: the same bits for an element in the vector body or the scalar tail', async () => {
  const n = 999;
  const data = [rand(n, 7), rand(n, 8, 3), Float32Array.from(rand(n, 9), (x) => x * x), rand(n, 10)]; // p, grad, m, v >= 0
  data[1][500] = 0; data[1][501] = -0; data[1][502] = 1e-40; data[0][503] = 3e38;
  const run = async (from: number, to: number) => {
    const t = data.map((d) => tensor(w, [to - from], 'float32', d.slice(from, to)));
    w.adamw(t[0], t[1], t[2], t[3], { ...HYPER, step: 3, gradScale: 0.5 });
    const found = tensor(w, [1], 'float32', new Float32Array(1)), inv = tensor(w, [1], 'float32', Float32Array.of(0.25));
    w.nonFiniteCheckAndUnscale([t[1]], found, inv);
    const out = await Promise.all(t.map((x) => readF32(w, x)));
    freeAll(w, ...t, found, inv);
    return out;
  };
  const whole = await run(0, n);
  for (let s = 0; s < n; s += 3) {
    const part = await run(s, s + 3);
    part.forEach((x, k) => x.forEach((v, i) => { if (!Object.is(v, whole[k][s + i])) assert.unreachable(`tensor ${k} element ${s + i}: ${v} vs ${whole[k][s + i]}`); }));
  }
});

test('adamw (bfloat16 param): updated in float32 from the decoded param and rounded once', async () => {
  const n = 777;
  const codes = Uint16Array.from(rand(n, 7, 2), (x) => bf16(x));
  const grad = rand(n, 8, 1);
  const m0 = rand(n, 9, 0.1);
  const v0 = Float32Array.from(rand(n, 10, 0.1), (x) => x * x);
  const h: AdamWHyper = { ...HYPER, lr: 0.05, step: 3 };
  const decoded = decode(codes, 'bfloat16');
  const ref = { p: Float64Array.from(decoded), m: Float64Array.from(m0), v: Float64Array.from(v0) };
  adamwRef(ref.p, grad, ref.m, ref.v, h);
  const results: Uint16Array[] = [];
  for (const b of [w, g] as Backend[]) {
    const t = { p: tensor(b, [n], 'bfloat16', codes), gr: tensor(b, [n], 'float32', grad), m: tensor(b, [n], 'float32', m0), v: tensor(b, [n], 'float32', v0) };
    b.adamw(t.p, t.gr, t.m, t.v, h);
    results.push(await readU16(b, t.p));
    assert.ok(relErr(await readF32(b, t.m), ref.m, MV_FLOOR) <= 1e-6, `${b.kind} m`);
    assert.ok(relErr(await readF32(b, t.v), ref.v, MV_FLOOR) <= 1e-6, `${b.kind} v`);
    freeAll(b, t.p, t.gr, t.m, t.v);
  }
  const [cw, cg] = results;
  let changed = 0, gpuOff = 0;
  const bfOf = (c: number) => new Float32Array(new Uint32Array([c << 16]).buffer)[0];
  for (let i = 0; i < n; i++) {
    if (cw[i] !== codes[i]) changed++;
    // wasm: the float32 result rounded once, so within half a bfloat16 ulp (+ float32 slack) of the float64 reference
    const want = ref.p[i];
    const ulp = 2 ** (Math.floor(Math.log2(Math.abs(want) || 1e-30)) - 7);
    assert.ok(Math.abs(bfOf(cw[i]) - want) <= ulp * 0.5 + Math.abs(want) * 1e-6, `wasm bf16 param ${i}: ${bfOf(cw[i])} vs ${want}`);
    if (cg[i] !== cw[i]) {
      gpuOff++;
      assert.ok(Math.abs(cg[i] - cw[i]) === 1, `gpu bf16 param ${i}: code ${cg[i]} vs ${cw[i]}`);
    }
  }
  assert.ok(changed > n / 2, `only ${changed} of ${n} bf16 params changed`);
  assert.ok(gpuOff <= 2, `${gpuOff} GPU bf16 params differ from wasm`);
});

// ---- GradScaler unscale -----------------------------------------------------------------------

test('nonFiniteCheckAndUnscale: scales in place; foundInf stays 0 for finite tensors, becomes 1 with inf or NaN', async () => {
  const a = rand(300, 21, 1000), c = rand(70_000, 22, 50);
  const inv = 1 / 1024 * 3;
  for (const b of [w, g] as Backend[]) {
    // finite: scaled, foundInf left at 0
    const ta = tensor(b, [300], 'float32', a), tc = tensor(b, [70_000], 'float32', c);
    const found = tensor(b, [], 'float32', Float32Array.of(0));
    const tinv = tensor(b, [], 'float32', Float32Array.of(inv)); // the inverse scale lives on the device
    b.nonFiniteCheckAndUnscale([ta, tc], found, tinv);
    assert.equal((await readF32(b, found))[0], 0, `${b.kind}: foundInf stays 0`);
    for (const [t, x] of [[ta, a], [tc, c]] as const) {
      const got = await readF32(b, t);
      const want = Float32Array.from(x, (v) => v * Math.fround(inv));
      assert.equal(Array.from(got), Array.from(want), `${b.kind}: values scaled`);
    }
    // foundInf already 1 is left alone by a finite pass
    const one = tensor(b, [], 'float32', Float32Array.of(1));
    const tone = tensor(b, [1], 'float32', Float32Array.of(1));
    b.nonFiniteCheckAndUnscale([ta], one, tone);
    assert.equal((await readF32(b, one))[0], 1, `${b.kind}: foundInf kept at 1`);
    // inf in one tensor, NaN in another
    for (const bad of [Infinity, -Infinity, NaN]) {
      const x = rand(500, 23), y = rand(40_000, 24);
      (bad !== bad ? y : x)[bad !== bad ? 39_999 : 17] = bad;
      const tx = tensor(b, [500], 'float32', x), ty = tensor(b, [40_000], 'float32', y);
      const f = tensor(b, [], 'float32', Float32Array.of(0));
      const half = tensor(b, [], 'float32', Float32Array.of(0.5));
      b.nonFiniteCheckAndUnscale([tx, ty], f, half);
      assert.equal((await readF32(b, f))[0], 1, `${b.kind}: foundInf set by ${bad}`);
      const gx = await readF32(b, tx);
      assert.equal(gx[3], Math.fround(x[3] * 0.5), `${b.kind}: still scaled`);
      freeAll(b, tx, ty, f, half);
    }
    freeAll(b, ta, tc, found, one, tinv, tone);
  }
});

// ---- GradScaler scale update and AdamW under a found-inf flag ----------------------------------

/** torch._amp_update_scale_ in float32, the reference of ampUpdateScale. */
function updateRef(scale: number, tracker: number, found: number, growth: number, backoff: number, interval: number): [number, number, number] {
  let s = Math.fround(scale), t = tracker;
  if (found !== 0) { s = Math.fround(s * Math.fround(backoff)); t = 0; }
  else if (t + 1 === interval) {
    const grown = Math.fround(s * Math.fround(growth));
    if (Number.isFinite(grown)) s = grown;
    t = 0;
  } else t += 1;
  return [s, t, Math.fround(1 / s)];
}

test('ampUpdateScale: backoff on inf/NaN flags, growth at the interval (kept only if finite), the tracker, and the exact inverse; GPU equals wasm equals the reference', async () => {
  // [scale, tracker, found, growth, backoff, interval]
  const cases: [number, number, number, number, number, number][] = [
    [65536, 0, 1, 2, 0.5, 2000], [65536, 5, NaN, 2, 0.5, 2000], [1024, 1, 0, 2, 0.5, 3], [1024, 2, 0, 2, 0.5, 3],
    [2 ** 127, 2, 0, 2, 0.5, 3], [2 ** -126, 0, 1, 2, 0.5, 3], [2 ** -100, 0, 1, 2, 0.5, 3], [1000, 6, 0, 3, 0.25, 7], [1000, 0, 2, 3, 0.25, 7],
    [3, 0, 0, 2, 0.5, 1], [2 ** 126, 0, 0, 2, 0.5, 1],
  ];
  for (const b of [w, g] as Backend[]) {
    for (const [scale, tracker, found, growth, backoff, interval] of cases) {
      const ts = tensor(b, [], 'float32', Float32Array.of(scale)), ti = tensor(b, [], 'float32', Float32Array.of(123));
      const tt = tensor(b, [], 'int32', Int32Array.of(tracker)), tf = tensor(b, [1], 'float32', Float32Array.of(found));
      b.ampUpdateScale(ts, ti, tt, tf, growth, backoff, interval);
      const [ws, wt, wi] = updateRef(scale, tracker, found, growth, backoff, interval);
      const label = `${b.kind} scale ${scale} tracker ${tracker} found ${found} interval ${interval}`;
      const got = (await readF32(b, ts))[0];
      // WGSL may flush subnormal results: a scale backed off below 2^-126 may become 0 on a GPU (nowhere near real use).
      if (b === g && ws !== 0 && Math.abs(ws) < 2 ** -126) assert.ok(got === ws || got === 0, `${label}: scale ${got}`);
      else assert.is(got, ws, `${label}: scale`);
      const tb = await b.read(tt.storage, 0, 4);
      assert.is(new Int32Array(tb.buffer, tb.byteOffset, 1)[0], wt, `${label}: tracker`);
      const inv = (await readF32(b, ti))[0];
      if (got !== ws) { freeAll(b, ts, ti, tt, tf); continue; }
      // exact for powers of two on both backends; other scales: correctly rounded on wasm, WGSL's division (2.5 ulp) on the GPU
      const pow2 = Number.isInteger(Math.log2(ws));
      if (b === w || pow2) assert.is(inv, wi, `${label}: inverse`);
      else assert.ok(Math.abs(inv - wi) <= 3 * 2 ** (Math.floor(Math.log2(wi)) - 23), `${label}: inverse ${inv} vs ${wi}`);
      const left = (await readF32(b, tf))[0];
      assert.ok(Object.is(left, found), `${label}: the flag is left as it was (${left})`);
      freeAll(b, ts, ti, tt, tf);
    }
  }
});

test('adamw under a found-inf flag: a set flag (1 or NaN) writes nothing, float32 and bfloat16 params, on both backends; device scalars equal the host ones', async () => {
  const n = 600;
  const p0 = rand(n, 41), codes = Uint16Array.from(rand(n, 42, 2), (x) => bf16(x));
  const grad = rand(n, 43), m0 = rand(n, 44, 0.1), v0 = Float32Array.from(rand(n, 45, 0.1), (x) => x * x);
  grad[17] = Infinity;
  const h: AdamWHyper = { ...HYPER, step: 4 };
  for (const b of [w, g] as Backend[]) {
    for (const [dtype, data] of [['float32', p0], ['bfloat16', codes]] as const) {
      for (const flag of [1, NaN]) {
        const t = { p: tensor(b, [n], dtype, data), gr: tensor(b, [n], 'float32', grad), m: tensor(b, [n], 'float32', m0), v: tensor(b, [n], 'float32', v0) };
        const f = tensor(b, [], 'float32', Float32Array.of(flag));
        const before = await Promise.all([b.read(t.p.storage, 0, t.p.storage.byteLength), readF32(b, t.m), readF32(b, t.v)]);
        b.adamw(t.p, t.gr, t.m, t.v, h, { foundInf: f });
        const after = await Promise.all([b.read(t.p.storage, 0, t.p.storage.byteLength), readF32(b, t.m), readF32(b, t.v)]);
        assert.equal(after.map((x) => Array.from(x)), before.map((x) => Array.from(x)), `${b.kind} ${dtype} flag ${flag}: something was written`);
        freeAll(b, t.p, t.gr, t.m, t.v, f);
      }
    }
    // A clear flag, with and without scalars from the device: the same bits as the plain kernel.
    const grad2 = rand(n, 46);
    const results: number[][] = [];
    for (const mode of ['plain', 'flag', 'flag + device scalars']) {
      const t = { p: tensor(b, [n], 'float32', p0), gr: tensor(b, [n], 'float32', grad2), m: tensor(b, [n], 'float32', m0), v: tensor(b, [n], 'float32', v0) };
      const f = tensor(b, [], 'float32', Float32Array.of(0));
      const bc1 = 1 - h.beta1 ** h.step, bc2 = 1 - h.beta2 ** h.step;
      const sc = tensor(b, [2], 'float32', Float32Array.of(h.lr / bc1, Math.sqrt(bc2)));
      if (mode === 'plain') b.adamw(t.p, t.gr, t.m, t.v, h);
      else if (mode === 'flag') b.adamw(t.p, t.gr, t.m, t.v, h, { foundInf: f });
      else b.adamw(t.p, t.gr, t.m, t.v, { ...h, step: 1 }, { foundInf: f, scalars: sc }); // the scalars win over hyper.step
      results.push([...await readF32(b, t.p), ...await readF32(b, t.m), ...await readF32(b, t.v)]);
      freeAll(b, t.p, t.gr, t.m, t.v, f, sc);
    }
    assert.equal(results[1], results[0], `${b.kind}: clear flag`);
    assert.equal(results[2], results[0], `${b.kind}: device scalars`);
  }
});

// ---- global norm ------------------------------------------------------------------------------

test('globalNorm over 3 tensors (float32, bfloat16, 70,000 float32 elements) matches float64 on both backends', async () => {
  const x1 = rand(100, 31, 3);
  const x2codes = Uint16Array.from(rand(3000, 32, 0.5), (v) => bf16(v));
  const x2 = decode(x2codes, 'bfloat16');
  const x3 = rand(70_000, 33, 0.01); // > 256 * 256
  let ss = 0;
  for (const x of [x1, x2, x3]) for (const v of x) ss += v * v;
  const want = Math.sqrt(ss);
  const got: number[] = [];
  for (const b of [w, g] as Backend[]) {
    const ts = [tensor(b, [100], 'float32', x1), tensor(b, [30, 100], 'bfloat16', x2codes), tensor(b, [70_000], 'float32', x3)];
    const out = tensor(b, [], 'float32', Float32Array.of(-1));
    b.globalNorm(ts, out);
    const r = (await readF32(b, out))[0];
    got.push(r);
    assert.ok(Math.abs(r - want) <= 1e-5 * want, `${b.kind}: globalNorm ${r} vs ${want}`);
    freeAll(b, ...ts, out);
  }
  assert.ok(Math.abs(got[0] - got[1]) <= 1e-5 * want, `gpu ${got[1]} vs wasm ${got[0]}`);
});

test('globalNorm over 17 tensors (three seven-tensor dispatches on WebGPU; views, an empty tensor, bfloat16 among them) matches float64 on both backends', async () => {
  const sizes = [5, 300, 0, 1, 70_000, 17, 256, 257, 3, 1000, 9, 64, 2, 513, 40, 7, 600];
  const xs = sizes.map((n, i) => rand(n + 3, 40 + i, 1 + i / 4));
  const bf = 9; // tensor 9 is bfloat16
  const bfCodes = Uint16Array.from(xs[bf], (v) => bf16(v));
  xs[bf] = decode(bfCodes, 'bfloat16');
  let ss = 0;
  xs.forEach((x, i) => { for (const v of (i === bf ? x : x.subarray(3))) ss += v * v; }); // float32 tensors are views at offset 3
  const want = Math.sqrt(ss);
  for (const b of [w, g] as Backend[]) {
    const ts = xs.map((x, i): TensorRef => (i === bf ? tensor(b, [x.length], 'bfloat16', bfCodes)
      : { ...tensor(b, [x.length], 'float32', x), offset: 3, shape: [sizes[i]] }));
    const out = tensor(b, [], 'float32', Float32Array.of(-1));
    b.globalNorm(ts, out);
    const r = (await readF32(b, out))[0];
    assert.ok(Math.abs(r - want) <= 1e-5 * want, `${b.kind}: globalNorm ${r} vs ${want}`);
    freeAll(b, ...ts, out);
  }
});

// ---- scaled matmul ----------------------------------------------------------------------------

interface MmCase {
  M: number; K: number; N: number; a_dtype: string; b_dtype: string; out_dtype: string; scale_a: number; scale_b: number;
  a_codes_rowmajor_MxK: number[]; b_codes_rowmajor_KxN: number[]; exact_f64_rowmajor: number[]; max_abs_err_vs_exact: number;
}

async function runScaledMm(b: Backend, c: MmCase, outDtype: TensorDType): Promise<Float32Array> {
  const a = tensor(b, [c.M, c.K], c.a_dtype as TensorDType, Uint8Array.from(c.a_codes_rowmajor_MxK));
  const bb = tensor(b, [c.K, c.N], c.b_dtype as TensorDType, Uint8Array.from(c.b_codes_rowmajor_KxN));
  const out = tensor(b, [c.M, c.N], outDtype);
  // the scales are device tensors: both in one buffer (scaleB at an offset), read on the device
  const scales = tensor(b, [3], 'float32', Float32Array.of(-7, c.scale_a, c.scale_b));
  b.scaledMatmul(a, bb, out, { ...scales, offset: 1, shape: [1] }, { ...scales, offset: 2, shape: [] });
  let r: Float32Array;
  if (outDtype === 'float32') r = await readF32(b, out);
  else r = decode(await readU16(b, out), outDtype);
  freeAll(b, a, bb, out, scales);
  return r;
}

test('scaledMatmul: wasm within the golden error bound of exact; GPU within 4 K 2^-24 sum|a||b| scales of wasm', async () => {
  const cases = golden<MmCase[]>('scaled_mm.json');
  for (const c of cases) {
    const label = `${c.M}x${c.K}x${c.N} ${c.a_dtype}*${c.b_dtype}->${c.out_dtype}`;
    const rw = await runScaledMm(w, c, c.out_dtype as TensorDType);
    let err = 0;
    for (let i = 0; i < rw.length; i++) err = Math.max(err, Math.abs(rw[i] - c.exact_f64_rowmajor[i]));
    assert.ok(err <= c.max_abs_err_vs_exact, `${label} wasm: ${err} > ${c.max_abs_err_vs_exact}`);
    // GPU vs wasm, float32 output (and the golden output dtype, allowing one rounding of the output format)
    const A = decode(Uint8Array.from(c.a_codes_rowmajor_MxK), c.a_dtype), B = decode(Uint8Array.from(c.b_codes_rowmajor_KxN), c.b_dtype);
    const bound = (i: number, j: number) => {
      let s = 0;
      for (let k = 0; k < c.K; k++) s += Math.abs(A[i * c.K + k] * B[k * c.N + j]);
      return 4 * c.K * 2 ** -24 * s * Math.abs(c.scale_a * c.scale_b);
    };
    for (const od of ['float32', c.out_dtype] as TensorDType[]) {
      const ref = od === c.out_dtype ? rw : await runScaledMm(w, c, od);
      const rg = await runScaledMm(g, c, od);
      for (let i = 0; i < c.M; i++) {
        for (let j = 0; j < c.N; j++) {
          const o = i * c.N + j;
          let tol = bound(i, j);
          if (od === 'bfloat16') tol += 2 ** (Math.floor(Math.log2(Math.abs(ref[o]) || 1e-30)) - 7); // one bf16 ulp: double rounding
          assert.ok(Math.abs(rg[o] - ref[o]) <= tol, `${label} ${od} gpu[${i},${j}] ${rg[o]} vs wasm ${ref[o]} (tol ${tol})`);
        }
      }
      if (od === c.out_dtype) break;
    }
  }
});

test.run();
