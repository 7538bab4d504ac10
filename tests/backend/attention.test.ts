// Causal attention (forward and backward): the wasm backend against a float64 reference written
// here (naive softmax attention with causal + key-padding mask; backward by the formulas and, for
// dq, by central finite differences), and the WebGPU backend against wasm.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { WebGPUBackend } from '../../src/backend/webgpu/backend.js';
import type { Backend, TensorDType, TensorRef } from '../../src/backend/backend.js';

const w = new WasmBackend();
let g: WebGPUBackend;

test.before(async () => {
  g = await WebGPUBackend.create();
});
test.after(() => g.destroy());

const B = 2, H = 2, T = 7, D = 8;
const N = B * H * T * D;
const SCALE = 1 / Math.sqrt(D);

// ---- helpers ------------------------------------------------------------------------------------

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 * 2 - 1;
  };
}

function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r() * scale);
}

function bf16Codes(x: Float32Array): Uint16Array {
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  return Uint16Array.from(bits, (b) => (b + 0x7fff + ((b >>> 16) & 1)) >>> 16);
}
function bf16Values(codes: Uint16Array): Float32Array {
  return new Float32Array(Uint32Array.from(codes, (c) => c << 16).buffer);
}
function seen(data: Float32Array, dtype: TensorDType): Float32Array {
  return dtype === 'bfloat16' ? bf16Values(bf16Codes(data)) : data;
}

const bytesOf = (dtype: TensorDType, n: number): number => (dtype === 'bfloat16' ? n * 2 : n * 4);

function mk(b: Backend, shape: number[], dtype: TensorDType, data?: Float32Array | Int32Array): TensorRef {
  const n = shape.reduce((a, d) => a * d, 1);
  const storage = b.alloc(bytesOf(dtype, n), 'data', 'attention test');
  // garbage first, so that kernels must overwrite (not accumulate into) their outputs
  b.write(storage, data ? (dtype === 'bfloat16' ? bf16Codes(data as Float32Array) : data) : new Uint8Array(bytesOf(dtype, n)).fill(0x3f));
  return { storage, offset: 0, shape, dtype };
}

async function rd(b: Backend, t: TensorRef): Promise<Float32Array> {
  const n = t.shape.reduce((a, d) => a * d, 1);
  const bytes = await b.read(t.storage, 0, bytesOf(t.dtype, n));
  if (t.dtype === 'bfloat16') return bf16Values(new Uint16Array(bytes.buffer, bytes.byteOffset, n).slice());
  return new Float32Array(bytes.buffer, bytes.byteOffset, n).slice();
}

/** |a - e| <= rel |e| + abs (abs times the largest |expected| when scaled); equal infinities pass. */
function close(what: string, actual: ArrayLike<number>, expected: ArrayLike<number>, rel: number, abs: number, scaled = false): void {
  assert.is(actual.length, expected.length, `${what}: length`);
  let s = 1;
  if (scaled) for (let i = 0; i < expected.length; i++) if (Number.isFinite(expected[i])) s = Math.max(s, Math.abs(expected[i]));
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i], e = expected[i];
    if (!Number.isFinite(e)) {
      if (!Object.is(a, e)) assert.unreachable(`${what}[${i}]: got ${a}, expected ${e}`);
      continue;
    }
    if (!(Math.abs(a - e) <= rel * Math.abs(e) + abs * s)) assert.unreachable(`${what}[${i}]: got ${a}, expected ${e}`);
  }
}

// ---- float64 reference ----------------------------------------------------------------------------

interface Ref { out: Float64Array; lse: Float64Array; dq: Float64Array; dk: Float64Array; dv: Float64Array }

const allowed = (mask: ArrayLike<number> | null, b: number, t: number, s: number): boolean => s <= t && (!mask || mask[b * T + s] !== 0);

function refForward(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, mask: ArrayLike<number> | null): { out: Float64Array; lse: Float64Array; P: Float64Array } {
  const out = new Float64Array(N), lse = new Float64Array(B * H * T), P = new Float64Array(B * H * T * T);
  for (let r = 0; r < B * H; r++) {
    const b = Math.floor(r / H), base = r * T * D;
    for (let t = 0; t < T; t++) {
      const sc: number[] = [];
      let mx = -Infinity;
      for (let s = 0; s < T; s++) {
        let x = -Infinity;
        if (allowed(mask, b, t, s)) {
          x = 0;
          for (let c = 0; c < D; c++) x += q[base + t * D + c] * k[base + s * D + c];
          x *= SCALE;
        }
        sc.push(x);
        mx = Math.max(mx, x);
      }
      if (mx === -Infinity) { lse[r * T + t] = -Infinity; continue; }
      let z = 0;
      for (const x of sc) z += Math.exp(x - mx);
      lse[r * T + t] = mx + Math.log(z);
      for (let s = 0; s < T; s++) {
        const p = Math.exp(sc[s] - mx) / z;
        P[(r * T + t) * T + s] = p;
        for (let c = 0; c < D; c++) out[base + t * D + c] += p * v[base + s * D + c];
      }
    }
  }
  return { out, lse, P };
}

function reference(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, mask: ArrayLike<number> | null, dout: ArrayLike<number>): Ref {
  const { out, lse, P } = refForward(q, k, v, mask);
  const dq = new Float64Array(N), dk = new Float64Array(N), dv = new Float64Array(N);
  for (let r = 0; r < B * H; r++) {
    const base = r * T * D;
    for (let t = 0; t < T; t++) {
      let di = 0;
      for (let c = 0; c < D; c++) di += dout[base + t * D + c] * out[base + t * D + c];
      for (let s = 0; s < T; s++) {
        const p = P[(r * T + t) * T + s];
        if (p === 0) continue;
        let dp = 0;
        for (let c = 0; c < D; c++) dp += dout[base + t * D + c] * v[base + s * D + c];
        const ds = p * (dp - di);
        for (let c = 0; c < D; c++) {
          dq[base + t * D + c] += SCALE * ds * k[base + s * D + c];
          dk[base + s * D + c] += SCALE * ds * q[base + t * D + c];
          dv[base + s * D + c] += p * dout[base + t * D + c];
        }
      }
    }
  }
  return { out, lse, dq, dk, dv };
}

// ---- running the kernels -------------------------------------------------------------------------

interface Case {
  q: Float32Array; k: Float32Array; v: Float32Array; dout: Float32Array;
  mask: Float32Array | Int32Array | null;
  inDtype: TensorDType; outDtype: TensorDType; maskDtype?: TensorDType;
}
type Result = Record<'out' | 'lse' | 'dq' | 'dk' | 'dv', Float32Array>;

async function runOn(b: Backend, c: Case): Promise<Result> {
  const shape = [B, H, T, D];
  const made: TensorRef[] = [];
  const m = (s: number[], d: TensorDType, x?: Float32Array | Int32Array) => { const t = mk(b, s, d, x); made.push(t); return t; };
  const q = m(shape, c.inDtype, c.q), k = m(shape, c.inDtype, c.k), v = m(shape, c.inDtype, c.v), dout = m(shape, c.inDtype, c.dout);
  const mask = c.mask ? m([B, T], c.maskDtype ?? 'float32', c.mask) : null;
  const out = m(shape, c.outDtype), lse = m([B, H, T], 'float32');
  const dq = m(shape, c.outDtype), dk = m(shape, c.outDtype), dv = m(shape, c.outDtype);
  b.attention(q, k, v, out, lse, mask, SCALE);
  b.attentionBackward(dout, q, k, v, out, lse, mask, SCALE, dq, dk, dv);
  const res = { out: await rd(b, out), lse: await rd(b, lse), dq: await rd(b, dq), dk: await rd(b, dk), dv: await rd(b, dv) };
  for (const t of made) b.free(t.storage);
  return res;
}

const base = { q: randn(N, 1, 1.5), k: randn(N, 2, 1.5), v: randn(N, 3), dout: randn(N, 4) };
// batch 0: no padding; batch 1: two leading pad keys (query rows 0 and 1 see no key) and one trailing
const PAD = Float32Array.from([1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0]);

function checkRef(what: string, got: Result, c: Case, rel: number, abs: number): void {
  const r = reference(seen(c.q, c.inDtype), seen(c.k, c.inDtype), seen(c.v, c.inDtype), c.mask, seen(c.dout, c.inDtype));
  close(`${what} out`, got.out, r.out, rel, abs, true);
  close(`${what} lse`, got.lse, r.lse, rel, abs, true);
  close(`${what} dq`, got.dq, r.dq, rel, abs, true);
  close(`${what} dk`, got.dk, r.dk, rel, abs, true);
  close(`${what} dv`, got.dv, r.dv, rel, abs, true);
}

// ---- wasm against the float64 reference --------------------------------------------------------

test('wasm: causal attention, no mask, matches float64 reference', async () => {
  const c: Case = { ...base, mask: null, inDtype: 'float32', outDtype: 'float32' };
  checkRef('nomask', await runOn(w, c), c, 1e-5, 2e-6);
});

test('wasm: padded batch (fully masked query rows give out 0, lse -inf, no gradient)', async () => {
  const c: Case = { ...base, mask: PAD, inDtype: 'float32', outDtype: 'float32' };
  const got = await runOn(w, c);
  checkRef('padded', got, c, 1e-5, 2e-6);
  for (const t of [0, 1]) for (const h of [0, 1]) {
    const row = (1 * H + h) * T + t;
    assert.is(got.lse[row], -Infinity);
    for (let d = 0; d < D; d++) {
      assert.is(got.out[row * D + d], 0);
      assert.is(got.dq[row * D + d], 0);
    }
  }
  // padded keys get no gradient
  for (const s of [0, 1, 6]) for (const h of [0, 1]) for (let d = 0; d < D; d++) {
    const i = ((1 * H + h) * T + s) * D + d;
    assert.is(got.dk[i], 0);
    assert.is(got.dv[i], 0);
  }
});

test('wasm: dq matches central finite differences of sum(out * R)', async () => {
  const R = randn(N, 9);
  const c: Case = { ...base, dout: R, mask: PAD, inDtype: 'float32', outDtype: 'float32' };
  const got = await runOn(w, c);
  const q = Float64Array.from(c.q);
  const f = (x: Float64Array) => { const { out } = refForward(x, c.k, c.v, c.mask); let s = 0; for (let i = 0; i < N; i++) if (out[i]) s += out[i] * R[i]; return s; };
  const h = 1e-5;
  const fd = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    const x0 = q[i];
    q[i] = x0 + h; const fp = f(q);
    q[i] = x0 - h; const fm = f(q);
    q[i] = x0;
    fd[i] = (fp - fm) / (2 * h);
  }
  close('dq vs finite differences', got.dq, fd, 1e-4, 1e-5, true);
});

test('wasm: bfloat16 inputs and outputs', async () => {
  const c: Case = { ...base, mask: PAD, inDtype: 'bfloat16', outDtype: 'float32' };
  checkRef('bf16 in', await runOn(w, c), c, 1e-5, 2e-6);
  const cb: Case = { ...c, outDtype: 'bfloat16' };
  const got = await runOn(w, cb);
  const r = reference(seen(c.q, 'bfloat16'), seen(c.k, 'bfloat16'), seen(c.v, 'bfloat16'), c.mask, seen(c.dout, 'bfloat16'));
  close('bf16 out', got.out, r.out, 2 ** -8, 1e-6, true);
  close('bf16 dv', got.dv, r.dv, 2 ** -8, 1e-6, true);
  close('bf16 lse', got.lse, r.lse, 1e-5, 2e-6, true);
});

// ---- WebGPU against wasm ----------------------------------------------------------------------------

async function gpuVsWasm(c: Case, rel = 1e-5, abs = 1e-6): Promise<void> {
  const a = await runOn(w, c), b = await runOn(g, c);
  for (const key of ['out', 'lse', 'dq', 'dk', 'dv'] as const) close(`gpu ${key}`, b[key], a[key], rel, abs);
}

test('webgpu: matches wasm, no mask', async () => {
  await gpuVsWasm({ ...base, mask: null, inDtype: 'float32', outDtype: 'float32' });
});

test('webgpu: matches wasm, padded batch (float32 and int32 masks)', async () => {
  await gpuVsWasm({ ...base, mask: PAD, inDtype: 'float32', outDtype: 'float32' });
  await gpuVsWasm({ ...base, mask: Int32Array.from(PAD), maskDtype: 'int32', inDtype: 'float32', outDtype: 'float32' });
});

test('webgpu: matches wasm, bfloat16 inputs (float32 and bfloat16 outputs)', async () => {
  await gpuVsWasm({ ...base, mask: PAD, inDtype: 'bfloat16', outDtype: 'float32' });
  // bf16 outputs: a 1e-5 difference in float32 can round to neighbouring bf16 values
  await gpuVsWasm({ ...base, mask: PAD, inDtype: 'bfloat16', outDtype: 'bfloat16' }, 2 ** -7, 1e-6);
});

test.run();
