// The nn kernel family (rmsNorm, layerNorm, embedding, crossEntropy, forward and backward): the
// wasm backend against float64 references written here, and the WebGPU backend against wasm.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { WebGPUBackend } from '../../src/backend/webgpu/backend.js';
import type { Backend, TensorDType, TensorRef } from '../../src/backend/backend.js';
import * as gpuNorms from '../../src/backend/webgpu/norms.js';
import * as gpuLoss from '../../src/backend/webgpu/loss.js';
import { rowThreads } from '../../src/backend/webgpu/stages.js';

const w = new WasmBackend();
let g: WebGPUBackend;

test.before(async () => {
  g = await WebGPUBackend.create();
});
test.after(() => g.destroy());

// ---- helpers ------------------------------------------------------------------------------------

type Outs = Record<string, Float32Array>;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 * 2 - 1;
  };
}

function randn(n: number, seed: number, scale = 1, shift = 0): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r() * scale + shift);
}

/** bfloat16 codes (nearest-even) of float32 values. */
function bf16Codes(x: Float32Array): Uint16Array {
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  return Uint16Array.from(bits, (b) => (b + 0x7fff + ((b >>> 16) & 1)) >>> 16);
}
function bf16Values(codes: Uint16Array): Float32Array {
  return new Float32Array(Uint32Array.from(codes, (c) => c << 16).buffer);
}

/** Data of a tensor: float32 values (encoded as bf16 when dtype is bfloat16) or int32 ids. */
type Data = Float32Array | Int32Array;

function bytesOf(dtype: TensorDType, n: number): number {
  return dtype === 'bfloat16' ? n * 2 : n * 4;
}

function mk(b: Backend, shape: number[], dtype: TensorDType, data?: Data): TensorRef {
  const n = shape.reduce((a, d) => a * d, 1);
  const storage = b.alloc(bytesOf(dtype, n), 'data', 'nn test');
  if (data) b.write(storage, dtype === 'bfloat16' ? bf16Codes(data as Float32Array) : data);
  else b.write(storage, new Uint8Array(bytesOf(dtype, n)));
  return { storage, offset: 0, shape, dtype };
}

async function rd(b: Backend, t: TensorRef): Promise<Float32Array> {
  const n = t.shape.reduce((a, d) => a * d, 1);
  const bytes = await b.read(t.storage, 0, bytesOf(t.dtype, n));
  if (t.dtype === 'bfloat16') return bf16Values(new Uint16Array(bytes.buffer, bytes.byteOffset, n));
  return new Float32Array(bytes.buffer, bytes.byteOffset, n).slice();
}

/** Values a kernel sees of `data` stored as `dtype`. */
function seen(data: Float32Array, dtype: TensorDType): Float32Array {
  return dtype === 'bfloat16' ? bf16Values(bf16Codes(data)) : data;
}

function close(what: string, actual: ArrayLike<number>, expected: ArrayLike<number>, rel = 1e-5, absScale = 1e-5): void {
  assert.is(actual.length, expected.length, `${what}: length`);
  let scale = 1;
  for (let i = 0; i < expected.length; i++) if (Number.isFinite(expected[i])) scale = Math.max(scale, Math.abs(expected[i]));
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i], e = expected[i];
    if (Number.isNaN(e)) {
      assert.ok(Number.isNaN(a), `${what}[${i}]: ${a} vs NaN`);
      continue;
    }
    const ok = Math.abs(a - e) <= rel * Math.abs(e) + absScale * scale;
    if (!ok) assert.unreachable(`${what}[${i}]: got ${a}, expected ${e}`);
  }
}

/** Runs `body` on both backends (frees their storages afterwards): [wasm results, gpu results]. */
async function both(body: (b: Backend, mk: (shape: number[], dtype: TensorDType, data?: Data) => TensorRef) => Promise<Outs>): Promise<[Outs, Outs]> {
  const run = async (b: Backend) => {
    const made: TensorRef[] = [];
    const res = await body(b, (s, d, x) => { const t = mk(b, s, d, x); made.push(t); return t; });
    for (const t of made) b.free(t.storage);
    return res;
  };
  return [await run(w), await run(g)];
}

function compareBackends(wr: Outs, gr: Outs, rel = 1e-5, abs = 1e-6): void {
  for (const k of Object.keys(wr)) close(`gpu vs wasm ${k}`, gr[k], wr[k], rel, abs);
}

// ---- float64 references -------------------------------------------------------------------------

function refRms(x: Float32Array, wt: Float32Array, rows: number, cols: number, eps: number, dy: Float32Array) {
  const out = new Float64Array(rows * cols), rstd = new Float64Array(rows), dx = new Float64Array(rows * cols), dw = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let c = 0; c < cols; c++) ss += x[r * cols + c] ** 2;
    const rs = 1 / Math.sqrt(ss / cols + eps);
    rstd[r] = rs;
    let s = 0;
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      out[i] = x[i] * rs * wt[c];
      s += dy[i] * wt[c] * x[i];
      dw[c] += dy[i] * x[i] * rs;
    }
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      dx[i] = rs * dy[i] * wt[c] - x[i] * rs ** 3 * s / cols;
    }
  }
  return { out, rstd, dx, dw };
}

function refLn(x: Float32Array, wt: Float32Array, bs: Float32Array, rows: number, cols: number, eps: number, dy: Float32Array) {
  const out = new Float64Array(rows * cols), mean = new Float64Array(rows), rstd = new Float64Array(rows);
  const dx = new Float64Array(rows * cols), dw = new Float64Array(cols), db = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    let mu = 0;
    for (let c = 0; c < cols; c++) mu += x[r * cols + c];
    mu /= cols;
    let v = 0;
    for (let c = 0; c < cols; c++) v += (x[r * cols + c] - mu) ** 2;
    const rs = 1 / Math.sqrt(v / cols + eps);
    mean[r] = mu;
    rstd[r] = rs;
    let sg = 0, sgx = 0;
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c, xh = (x[i] - mu) * rs, gg = dy[i] * wt[c];
      out[i] = xh * wt[c] + bs[c];
      sg += gg;
      sgx += gg * xh;
      dw[c] += dy[i] * xh;
      db[c] += dy[i];
    }
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c, xh = (x[i] - mu) * rs;
      dx[i] = rs * (dy[i] * wt[c] - sg / cols - xh * sgx / cols);
    }
  }
  return { out, mean, rstd, dx, dw, db };
}

function refCe(x: Float32Array, t: Int32Array, rows: number, cols: number, ignore: number, scale: number) {
  let total = 0, count = 0;
  const lse = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, x[r * cols + c]);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(x[r * cols + c] - m);
    lse[r] = Math.log(s) + m;
    if (t[r] === ignore) continue;
    count++;
    total += lse[r] - x[r * cols + t[r]];
  }
  const d = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    if (t[r] === ignore) continue;
    for (let c = 0; c < cols; c++) d[r * cols + c] = (Math.exp(x[r * cols + c] - lse[r]) - (c === t[r] ? 1 : 0)) * scale / count;
  }
  return { loss: count === 0 ? NaN : total / count, dlogits: d };
}

// ---- tests --------------------------------------------------------------------------------------

const N = 6, C = 10, D = 16, V = 7;

for (const [xd, od] of [['float32', 'float32'], ['bfloat16', 'float32'], ['float32', 'bfloat16']] as [TensorDType, TensorDType][]) {
  test(`rmsNorm forward/backward (x ${xd}, out/dx ${od})`, async () => {
    const x = randn(N * D, 1, 2), wt = randn(D, 2, 0.5, 1), dy = randn(N * D, 3);
    const [wr, gr] = await both(async (b, t) => {
      const X = t([N, D], xd, x), W = t([D], 'float32', wt), DY = t([N, D], xd, dy);
      const out = t([N, D], od), rstd = t([N], 'float32'), dx = t([N, D], od), dw = t([D], 'float32');
      b.rmsNorm(X, W, out, rstd, 1e-5);
      b.rmsNormBackward(DY, X, W, rstd, dx, dw);
      const dw1 = await rd(b, dw);
      b.rmsNormBackward(DY, X, W, rstd, dx, dw);
      return { out: await rd(b, out), rstd: await rd(b, rstd), dx: await rd(b, dx), dw1, dw2: await rd(b, dw) };
    });
    const ref = refRms(seen(x, xd), wt, N, D, 1e-5, seen(dy, xd));
    const lowOut = od === 'bfloat16';
    close('out', wr.out, ref.out, lowOut ? 2 ** -8 : 1e-5);
    close('rstd', wr.rstd, ref.rstd);
    close('dx', wr.dx, ref.dx, lowOut ? 2 ** -8 : 1e-5, lowOut ? 2 ** -8 : 1e-5);
    close('dw', wr.dw1, ref.dw);
    close('dw accumulated', wr.dw2, Array.from(ref.dw, (v) => 2 * v));
    // bf16 outputs may round differently by one ulp when the float32 results differ in the last bits
    if (lowOut) compareBackends(wr, gr, 2 ** -7, 1e-6);
    else compareBackends(wr, gr);
  });

  test(`layerNorm forward/backward (x ${xd}, out/dx ${od})`, async () => {
    const x = randn(N * D, 4, 2, 0.3), wt = randn(D, 5, 0.5, 1), bs = randn(D, 6, 0.2), dy = randn(N * D, 7);
    const [wr, gr] = await both(async (b, t) => {
      const X = t([N, D], xd, x), W = t([D], 'float32', wt), B = t([D], 'float32', bs), DY = t([N, D], xd, dy);
      const out = t([N, D], od), mean = t([N], 'float32'), rstd = t([N], 'float32'), dx = t([N, D], od);
      const dw = t([D], 'float32'), db = t([D], 'float32');
      b.layerNorm(X, W, B, out, mean, rstd, 1e-5);
      b.layerNormBackward(DY, X, W, mean, rstd, dx, dw, db);
      const dw1 = await rd(b, dw), db1 = await rd(b, db);
      b.layerNormBackward(DY, X, W, mean, rstd, dx, dw, db);
      return { out: await rd(b, out), mean: await rd(b, mean), rstd: await rd(b, rstd), dx: await rd(b, dx), dw1, db1, dw2: await rd(b, dw), db2: await rd(b, db) };
    });
    const ref = refLn(seen(x, xd), wt, bs, N, D, 1e-5, seen(dy, xd));
    const lowOut = od === 'bfloat16';
    close('out', wr.out, ref.out, lowOut ? 2 ** -8 : 1e-5, lowOut ? 2 ** -8 : 1e-5);
    close('mean', wr.mean, ref.mean);
    close('rstd', wr.rstd, ref.rstd);
    close('dx', wr.dx, ref.dx, lowOut ? 2 ** -8 : 1e-5, lowOut ? 2 ** -8 : 1e-5);
    close('dw', wr.dw1, ref.dw);
    close('db', wr.db1, ref.db);
    close('dw accumulated', wr.dw2, Array.from(ref.dw, (v) => 2 * v));
    close('db accumulated', wr.db2, Array.from(ref.db, (v) => 2 * v));
    if (lowOut) compareBackends(wr, gr, 2 ** -7, 1e-6);
    else compareBackends(wr, gr);
  });
}

for (const td of ['float32', 'bfloat16'] as TensorDType[]) {
  test(`embedding forward/backward (table/dy ${td})`, async () => {
    const ids = new Int32Array([3, 0, 6, -1, 3, 7, 2, 3]); // -1 and 7 (= V) are out of range; 3 repeats
    const n = ids.length;
    const table = randn(V * D, 8), dy = randn(n * D, 9), init = randn(V * D, 10, 0.1);
    const [wr, gr] = await both(async (b, t) => {
      const I = t([2, n / 2], 'int32', ids), T = t([V, D], td, table), DY = t([2, n / 2, D], td, dy);
      const out = t([2, n / 2, D], td), dt = t([V, D], 'float32', init);
      b.embedding(I, T, out);
      b.embeddingBackward(I, DY, dt);
      const dt1 = await rd(b, dt);
      b.embeddingBackward(I, DY, dt);
      return { out: await rd(b, out), dt1, dt2: await rd(b, dt) };
    });
    const tv = seen(table, td), dv = seen(dy, td);
    const out = new Float64Array(n * D), dt = Float64Array.from(init);
    for (let i = 0; i < n; i++) {
      const id = ids[i];
      if (id < 0 || id >= V) continue;
      for (let c = 0; c < D; c++) {
        out[i * D + c] = tv[id * D + c];
        dt[id * D + c] += dv[i * D + c];
      }
    }
    close('out', wr.out, out, 0, 0); // a copy: exact
    close('dtable', wr.dt1, dt);
    close('dtable accumulated', wr.dt2, Array.from(dt, (v, i) => 2 * v - init[i]));
    compareBackends(wr, gr, 0, 0); // same summation order on both backends: exact
  });
}

for (const xd of ['float32', 'bfloat16'] as TensorDType[]) {
  test(`crossEntropy (logits ${xd}, one ignored target)`, async () => {
    const logits = randn(N * C, 11, 3);
    const targets = new Int32Array([2, -100, 9, 0, 5, 5]);
    const [wr, gr] = await both(async (b, t) => {
      const L = t([N, C], xd, logits), T = t([N], 'int32', targets);
      const loss = t([], 'float32'), dl = t([N, C], 'float32'), loss2 = t([], 'float32');
      b.crossEntropy(L, T, loss, dl, -100, 0.5);
      b.crossEntropy(L, T, loss2, null, -100, 1);
      return { loss: await rd(b, loss), loss2: await rd(b, loss2), dl: await rd(b, dl) };
    });
    const ref = refCe(seen(logits, xd), targets, N, C, -100, 0.5);
    close('loss', wr.loss, [ref.loss]);
    close('loss without dlogits', wr.loss2, [ref.loss]);
    close('dlogits', wr.dl, ref.dlogits);
    for (let c = 0; c < C; c++) assert.is(wr.dl[C + c], 0, 'ignored row has zero gradient');
    compareBackends(wr, gr);
  });
}

// The wasm RMSNorm and LayerNorm run their elementwise parts and the weight (and bias) gradients'
// column sums four lanes at a time: each value must still be the float32 result of the scalar
// operations in their order, emulated here with Math.fround after every operation (203 columns:
// every vector path and its scalar tail).
test('wasm rmsNorm forward and backward: bit for bit the float32 operations in order (vector body and tails)', async () => {
  const rows = 9, cols = 203, n = rows * cols, eps = 1e-5;
  const r = rng(77);
  const x = Float32Array.from({ length: n }, () => r() * 2), dy = Float32Array.from({ length: n }, () => r() * 3);
  const wt = Float32Array.from({ length: cols }, () => r() + 1), dw0 = Float32Array.from({ length: cols }, () => r());
  const f = Math.fround;
  const rstd = new Float32Array(rows), out = new Float32Array(n), dx = new Float32Array(n), dw = Float32Array.from(dw0);
  for (let i = 0; i < rows; i++) {
    let ss = 0;
    for (let c = 0; c < cols; c++) ss = f(ss + f(x[i * cols + c] * x[i * cols + c]));
    const rs = f(1 / f(Math.sqrt(f(f(ss / cols) + eps))));
    rstd[i] = rs;
    for (let c = 0; c < cols; c++) out[i * cols + c] = f(f(x[i * cols + c] * rs) * wt[c]);
    let s = 0;
    for (let c = 0; c < cols; c++) s = f(s + f(f(dy[i * cols + c] * wt[c]) * x[i * cols + c]));
    const k = f(f(f(f(rs * rs) * rs) * f(s / cols)) * 0.5);
    for (let c = 0; c < cols; c++) dx[i * cols + c] = f(f(rs * f(dy[i * cols + c] * wt[c])) - f(f(x[i * cols + c] * 2) * k));
  }
  for (let c = 0; c < cols; c++) {
    let s = 0;
    for (let i = 0; i < rows; i++) s = f(s + f(dy[i * cols + c] * f(x[i * cols + c] * rstd[i])));
    dw[c] = f(dw[c] + s);
  }
  const tx = mk(w, [rows, cols], 'float32', x), tw = mk(w, [cols], 'float32', wt), to = mk(w, [rows, cols], 'float32'), tr = mk(w, [rows], 'float32');
  const tdy = mk(w, [rows, cols], 'float32', dy), tdx = mk(w, [rows, cols], 'float32'), tdw = mk(w, [cols], 'float32', dw0);
  w.rmsNorm(tx, tw, to, tr, eps);
  w.rmsNormBackward(tdy, tx, tw, tr, tdx, tdw);
  for (const [what, got, want] of [['out', await rd(w, to), out], ['rstd', await rd(w, tr), rstd], ['dx', await rd(w, tdx), dx], ['dw', await rd(w, tdw), dw]] as const) {
    for (let i = 0; i < want.length; i++) if (!Object.is(got[i], want[i])) assert.unreachable(`${what}[${i}]: ${got[i]} vs ${want[i]}`);
  }
  for (const t of [tx, tw, to, tr, tdy, tdx, tdw]) w.free(t.storage);
});

test('wasm layerNorm forward and backward: bit for bit the float32 operations in order (vector body and tails)', async () => {
  const rows = 9, cols = 203, n = rows * cols, eps = 1e-5;
  const r = rng(78);
  const x = Float32Array.from({ length: n }, () => r() * 2 + 0.3), dy = Float32Array.from({ length: n }, () => r() * 3);
  const wt = Float32Array.from({ length: cols }, () => r() + 1), bt = Float32Array.from({ length: cols }, () => r());
  const dw0 = Float32Array.from({ length: cols }, () => r()), db0 = Float32Array.from({ length: cols }, () => r());
  const f = Math.fround;
  const mean = new Float32Array(rows), rstd = new Float32Array(rows), out = new Float32Array(n), dx = new Float32Array(n);
  const dw = Float32Array.from(dw0), db = Float32Array.from(db0);
  const xh = (i: number, c: number) => f(f(x[i * cols + c] - mean[i]) * rstd[i]);
  for (let i = 0; i < rows; i++) {
    let s = 0, v = 0;
    for (let c = 0; c < cols; c++) s = f(s + x[i * cols + c]);
    mean[i] = f(s / cols);
    for (let c = 0; c < cols; c++) { const d = f(x[i * cols + c] - mean[i]); v = f(v + f(d * d)); }
    rstd[i] = f(1 / f(Math.sqrt(f(f(v / cols) + eps))));
    for (let c = 0; c < cols; c++) out[i * cols + c] = f(f(xh(i, c) * wt[c]) + bt[c]);
    let sg = 0, sgx = 0;
    for (let c = 0; c < cols; c++) { const g = f(dy[i * cols + c] * wt[c]); sg = f(sg + g); sgx = f(sgx + f(g * xh(i, c))); }
    const mg = f(sg / cols), mgx = f(sgx / cols);
    for (let c = 0; c < cols; c++) dx[i * cols + c] = f(rstd[i] * f(f(f(dy[i * cols + c] * wt[c]) - mg) - f(xh(i, c) * mgx)));
  }
  for (let c = 0; c < cols; c++) {
    let sw = 0, sb = 0;
    for (let i = 0; i < rows; i++) { sw = f(sw + f(dy[i * cols + c] * xh(i, c))); sb = f(sb + dy[i * cols + c]); }
    dw[c] = f(dw[c] + sw); db[c] = f(db[c] + sb);
  }
  const t = (shape: number[], d?: Float32Array) => mk(w, shape, 'float32', d);
  const tx = t([rows, cols], x), tw = t([cols], wt), tb = t([cols], bt), to = t([rows, cols]), tm = t([rows]), tr = t([rows]);
  const tdy = t([rows, cols], dy), tdx = t([rows, cols]), tdw = t([cols], dw0), tdb = t([cols], db0);
  w.layerNorm(tx, tw, tb, to, tm, tr, eps);
  w.layerNormBackward(tdy, tx, tw, tm, tr, tdx, tdw, tdb);
  const got = [['out', to, out], ['mean', tm, mean], ['rstd', tr, rstd], ['dx', tdx, dx], ['dw', tdw, dw], ['db', tdb, db]] as const;
  for (const [what, tensor, want] of got) {
    const g = await rd(w, tensor);
    for (let i = 0; i < want.length; i++) if (!Object.is(g[i], want[i])) assert.unreachable(`${what}[${i}]: ${g[i]} vs ${want[i]}`);
  }
  for (const x of [tx, tw, tb, to, tm, tr, tdy, tdx, tdw, tdb]) w.free(x.storage);
});

test('crossEntropy with every target ignored: NaN loss (as PyTorch), zero gradients', async () => {
  const logits = randn(3 * C, 12);
  const [wr, gr] = await both(async (b, t) => {
    const L = t([3, C], 'float32', logits), T = t([3], 'int32', new Int32Array([-100, -100, -100]));
    const loss = t([], 'float32'), dl = t([3, C], 'bfloat16', randn(3 * C, 13));
    b.crossEntropy(L, T, loss, dl, -100, 1);
    return { loss: await rd(b, loss), dl: await rd(b, dl) };
  });
  for (const r of [wr, gr]) {
    assert.ok(Number.isNaN(r.loss[0]), `loss ${r.loss[0]}`);
    assert.ok(r.dl.every((v) => v === 0), 'zero gradients');
  }
});

// ---- row layouts: rowThreads() gives 1 invocation a row on software adapters; the hardware
// layouts (several invocations a row, grp_sum over them) are forced here ---------------------------

test('rowThreads: 1 on software adapters; on hardware about 8 elements an invocation, at most 64', () => {
  assert.is(rowThreads({ software: true }, 4096), 1);
  assert.is(rowThreads({ software: false }, 5), 1);
  assert.is(rowThreads({ software: false }, 64), 8);
  assert.is(rowThreads({ software: false }, 100), 16);
  assert.is(rowThreads({ software: false }, 8192), 64);
});

for (const [rows, cols] of [[37, 300], [70, 5], [3, 129]]) {
  test(`row kernels with forced invocations a row (${rows} x ${cols}; 1, 2, 8, 64): gpu matches wasm`, async () => {
    const x = randn(rows * cols, 21, 2, 0.3), wt = randn(cols, 22, 0.5, 1), bs = randn(cols, 23, 0.2), dy = randn(rows * cols, 24);
    const logits = randn(rows * cols, 25, 3);
    const targets = Int32Array.from({ length: rows }, (_, i) => (i % 5 === 4 ? -100 : (i * 7) % cols));
    const run = async (b: Backend, threads?: number): Promise<Outs> => {
      const made: TensorRef[] = [];
      const t = (sh: number[], d: TensorDType, v?: Data) => { const r = mk(b, sh, d, v); made.push(r); return r; };
      const X = t([rows, cols], 'float32', x), W = t([cols], 'float32', wt), B = t([cols], 'float32', bs), DY = t([rows, cols], 'float32', dy);
      const out = t([rows, cols], 'float32'), rstd = t([rows], 'float32'), dx = t([rows, cols], 'float32'), dw = t([cols], 'float32');
      const lout = t([rows, cols], 'float32'), mean = t([rows], 'float32'), lrstd = t([rows], 'float32'), ldx = t([rows, cols], 'float32');
      const ldw = t([cols], 'float32'), ldb = t([cols], 'float32');
      const L = t([rows, cols], 'float32', logits), T = t([rows], 'int32', targets), loss = t([], 'float32'), dl = t([rows, cols], 'float32');
      if (b === g) {
        gpuNorms.rmsNorm(g, X, W, out, rstd, 1e-5, threads);
        gpuNorms.rmsNormBackward(g, DY, X, W, rstd, dx, dw, threads);
        gpuNorms.layerNorm(g, X, W, B, lout, mean, lrstd, 1e-5, threads);
        gpuNorms.layerNormBackward(g, DY, X, W, mean, lrstd, ldx, ldw, ldb, threads);
        gpuLoss.crossEntropy(g, L, T, loss, dl, -100, 0.5, threads);
      } else {
        b.rmsNorm(X, W, out, rstd, 1e-5);
        b.rmsNormBackward(DY, X, W, rstd, dx, dw);
        b.layerNorm(X, W, B, lout, mean, lrstd, 1e-5);
        b.layerNormBackward(DY, X, W, mean, lrstd, ldx, ldw, ldb);
        b.crossEntropy(L, T, loss, dl, -100, 0.5);
      }
      const res: Outs = {};
      for (const [k, v] of Object.entries({ out, rstd, dx, dw, lout, mean, lrstd, ldx, ldw, ldb, loss, dl })) res[k] = await rd(b, v);
      for (const r of made) b.free(r.storage);
      return res;
    };
    const wr = await run(w);
    for (const threads of [1, 2, 8, 64]) compareBackends(wr, await run(g, threads), 1e-5, 1e-6);
  });
}

test('row kernels refuse a row-thread count that is not a power of two in [1, 64]', () => {
  const t = mk(g, [2, 4], 'float32'), r = mk(g, [2], 'float32'), wt = mk(g, [4], 'float32');
  try {
    for (const bad of [0, 3, 128]) assert.throws(() => gpuNorms.rmsNorm(g, t, wt, t, r, 1e-5, bad), /power of two/);
  } finally {
    for (const x of [t, r, wt]) g.free(x.storage);
  }
});

// ---- embedding backward over several 64-position chunks of the links pass ------------------------

const V2 = 300;
const idPatterns: [string, (i: number) => number][] = [
  ['one id everywhere', () => 5],
  ['every id distinct', (i) => (i * 7) % V2],
  ['few ids repeated across chunks, some out of range', (i) => [3, 0, 299, -1, 3, 300, 7, 3][(i * 5) % 8]],
  ['runs that straddle chunk boundaries', (i) => Math.floor(i / 40) % 4],
];
for (const [what, idOf] of idPatterns) {
  test(`embedding backward, ${what} (n = 200): gpu = wasm exactly, = float64 reference`, async () => {
    const n = 200, cols = 5;
    const ids = Int32Array.from({ length: n }, (_, i) => idOf(i));
    const dy = randn(n * cols, 31), init = randn(V2 * cols, 32, 0.1);
    const [wr, gr] = await both(async (b, t) => {
      const I = t([n], 'int32', ids), DY = t([n, cols], 'float32', dy), dt = t([V2, cols], 'float32', init);
      b.embeddingBackward(I, DY, dt);
      return { dt: await rd(b, dt) };
    });
    const ref = Float64Array.from(init);
    for (let i = 0; i < n; i++) {
      if (ids[i] < 0 || ids[i] >= V2) continue;
      for (let c = 0; c < cols; c++) ref[ids[i] * cols + c] += dy[i * cols + c];
    }
    close('dtable', wr.dt, ref);
    compareBackends(wr, gr, 0, 0); // same summation order on both backends: exact
  });
}

test.run();
