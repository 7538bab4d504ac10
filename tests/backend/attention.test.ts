// Attention, causal and bidirectional (forward and backward): the wasm backend against a float64
// reference written here (naive softmax attention with causal + key-padding mask; backward by the formulas and, for
// dq, by central finite differences), and the WebGPU backend against wasm.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { WebGPUBackend } from '../../src/backend/webgpu/backend.js';
import type { Backend, TensorDType, TensorRef } from '../../src/backend/backend.js';
import * as gpuAttention from '../../src/backend/webgpu/attention.js';

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

let refCausal = true; // the reference's mode (set by checkRef)
const allowed = (mask: ArrayLike<number> | null, b: number, t: number, s: number, len: number): boolean => (!refCausal || s <= t) && (!mask || mask[b * len + s] !== 0);

function refForward(
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, mask: ArrayLike<number> | null, shape: readonly number[], SCALE: number,
): { out: Float64Array; lse: Float64Array; P: Float64Array } {
  const [B, H, T, D] = shape, N = B * H * T * D;
  const out = new Float64Array(N), lse = new Float64Array(B * H * T), P = new Float64Array(B * H * T * T);
  for (let r = 0; r < B * H; r++) {
    const b = Math.floor(r / H), base = r * T * D;
    for (let t = 0; t < T; t++) {
      const sc: number[] = [];
      let mx = -Infinity;
      for (let s = 0; s < T; s++) {
        let x = -Infinity;
        if (allowed(mask, b, t, s, T)) {
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

function reference(
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, mask: ArrayLike<number> | null, dout: ArrayLike<number>,
  shape: readonly number[], SCALE: number,
): Ref {
  const [B, H, T, D] = shape, N = B * H * T * D;
  const { out, lse, P } = refForward(q, k, v, mask, shape, SCALE);
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
  /** [B, H, T, D] (default the file's B, H, T, D) and scale (default 1 / sqrt(D)); gpu-vs-wasm only. */
  shape?: [number, number, number, number];
  scale?: number;
  /** WebGPU layout (attentionLayout): tiled (hardware GPUs; a number: that many tile rows) or not (software adapters); default the adapter's. */
  tiled?: boolean | number;
  /** Default true; false: bidirectional (every unmasked key). */
  causal?: boolean;
}
type Result = Record<'out' | 'lse' | 'dq' | 'dk' | 'dv', Float32Array>;

async function runOn(b: Backend, c: Case): Promise<Result> {
  const shape = c.shape ?? [B, H, T, D];
  const [b0, h0, t0] = shape;
  const scale = c.scale ?? 1 / Math.sqrt(shape[3]);
  const made: TensorRef[] = [];
  const m = (s: number[], d: TensorDType, x?: Float32Array | Int32Array) => { const t = mk(b, s, d, x); made.push(t); return t; };
  const q = m(shape, c.inDtype, c.q), k = m(shape, c.inDtype, c.k), v = m(shape, c.inDtype, c.v), dout = m(shape, c.inDtype, c.dout);
  const mask = c.mask ? m([b0, t0], c.maskDtype ?? 'float32', c.mask) : null;
  const out = m(shape, c.outDtype), lse = m([b0, h0, t0], 'float32');
  const dq = m(shape, c.outDtype), dk = m(shape, c.outDtype), dv = m(shape, c.outDtype);
  if (b === g && c.tiled !== undefined) {
    gpuAttention.attention(g, q, k, v, out, lse, mask, scale, c.causal ?? true, c.tiled);
    gpuAttention.attentionBackward(g, dout, q, k, v, out, lse, mask, scale, dq, dk, dv, c.causal ?? true, c.tiled);
  } else if (c.causal === undefined) {
    b.attention(q, k, v, out, lse, mask, scale);
    b.attentionBackward(dout, q, k, v, out, lse, mask, scale, dq, dk, dv);
  } else {
    b.attention(q, k, v, out, lse, mask, scale, c.causal);
    b.attentionBackward(dout, q, k, v, out, lse, mask, scale, dq, dk, dv, c.causal);
  }
  const res = { out: await rd(b, out), lse: await rd(b, lse), dq: await rd(b, dq), dk: await rd(b, dk), dv: await rd(b, dv) };
  for (const t of made) b.free(t.storage);
  return res;
}

const base = { q: randn(N, 1, 1.5), k: randn(N, 2, 1.5), v: randn(N, 3), dout: randn(N, 4) };
// batch 0: no padding; batch 1: two leading pad keys (query rows 0 and 1 see no key) and one trailing
const PAD = Float32Array.from([1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0]);

function checkRef(what: string, got: Result, c: Case, rel: number, abs: number): void {
  refCausal = c.causal ?? true;
  try {
    const shape = c.shape ?? [B, H, T, D];
    const r = reference(seen(c.q, c.inDtype), seen(c.k, c.inDtype), seen(c.v, c.inDtype), c.mask, seen(c.dout, c.inDtype), shape, c.scale ?? 1 / Math.sqrt(shape[3]));
    close(`${what} out`, got.out, r.out, rel, abs, true);
    close(`${what} lse`, got.lse, r.lse, rel, abs, true);
    close(`${what} dq`, got.dq, r.dq, rel, abs, true);
    close(`${what} dk`, got.dk, r.dk, rel, abs, true);
    close(`${what} dv`, got.dv, r.dv, rel, abs, true);
  } finally {
    refCausal = true;
  }
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

test('wasm: bidirectional attention (causal false), with and without padding, matches float64 reference', async () => {
  for (const mask of [null, PAD]) {
    const c: Case = { ...base, mask, inDtype: 'float32', outDtype: 'float32', causal: false };
    const got = await runOn(w, c);
    checkRef(`bidirectional ${mask ? 'padded' : 'nomask'}`, got, c, 1e-5, 2e-6);
    // differs from the causal result (row 0 sees all keys)
    const causal = await runOn(w, { ...c, causal: true });
    assert.ok(Math.abs(got.out[0] - causal.out[0]) > 1e-4);
  }
});

// Sequences above 1024 keys: the backward computes P and dS twice (no cache of the head's [T, T]);
// T and D with tails (a partial block of four keys and rows, a partial vec4 of the head dimension).
test('wasm: long sequences (no P / dS cache), causal and not, padded, match float64 reference', async () => {
  const shape: [number, number, number, number] = [2, 1, 1030, 5];
  const n = 2 * 1030 * 5;
  const mask = Float32Array.from({ length: 2 * 1030 }, (_, i) => (i >= 1030 && (i - 1030) % 97 === 3 ? 0 : 1));
  for (const causal of [true, false]) {
    const c: Case = { q: randn(n, 90, 1.5), k: randn(n, 91, 1.5), v: randn(n, 92), dout: randn(n, 93), mask, inDtype: 'float32', outDtype: 'float32', shape, causal };
    checkRef(`long causal ${causal}`, await runOn(w, c), c, 1e-5, 2e-6);
  }
});

test('wasm: dq matches central finite differences of sum(out * R)', async () => {
  const R = randn(N, 9);
  const c: Case = { ...base, dout: R, mask: PAD, inDtype: 'float32', outDtype: 'float32' };
  const got = await runOn(w, c);
  const q = Float64Array.from(c.q);
  const f = (x: Float64Array) => { const { out } = refForward(x, c.k, c.v, c.mask, [B, H, T, D], SCALE); let s = 0; for (let i = 0; i < N; i++) if (out[i]) s += out[i] * R[i]; return s; };
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
  const r = reference(seen(c.q, 'bfloat16'), seen(c.k, 'bfloat16'), seen(c.v, 'bfloat16'), c.mask, seen(c.dout, 'bfloat16'), [B, H, T, D], SCALE);
  close('bf16 out', got.out, r.out, 2 ** -8, 1e-6, true);
  close('bf16 dv', got.dv, r.dv, 2 ** -8, 1e-6, true);
  close('bf16 lse', got.lse, r.lse, 1e-5, 2e-6, true);
});

// ---- WebGPU against wasm ----------------------------------------------------------------------------

async function gpuVsWasm(c: Case, rel = 1e-5, abs = 1e-6): Promise<void> {
  const a = await runOn(w, c), b = await runOn(g, c);
  for (const key of ['out', 'lse', 'dq', 'dk', 'dv'] as const) close(`gpu ${key}`, b[key], a[key], rel, abs);
}

test('attentionLayout: untiled on software adapters, tiled (KT rows, tiles within 6 KiB) on hardware', () => {
  assert.equal(gpuAttention.attentionLayout({ software: true }, 16), { DH: 16, D4: 4, DF: 4, TILED: 0, KT: 1, KSTEP: 2 ** 30, KC: 16 });
  assert.equal(gpuAttention.attentionLayout({ software: false }, 16), { DH: 16, D4: 4, DF: 4, TILED: 1, KT: 64, KSTEP: 64, KC: 64 });
  assert.equal(gpuAttention.attentionLayout({ software: false }, 64).KT, 24);
  assert.equal(gpuAttention.attentionLayout({ software: false }, 64).KC, 24); // the forward's chunk is the tile
  assert.equal(gpuAttention.attentionLayout({ software: false }, 6), { DH: 6, D4: 2, DF: 1, TILED: 1, KT: 64, KSTEP: 64, KC: 64 });
  assert.equal(gpuAttention.attentionLayout({ software: false }, 1024).KT, 1);
  assert.equal(gpuAttention.attentionLayout({ software: true }, 1024).KC, 1);
});

test('webgpu: matches wasm, no mask', async () => {
  await gpuVsWasm({ ...base, mask: null, inDtype: 'float32', outDtype: 'float32' });
});

test('webgpu: matches wasm, padded batch (float32 and int32 masks)', async () => {
  await gpuVsWasm({ ...base, mask: PAD, inDtype: 'float32', outDtype: 'float32' });
  await gpuVsWasm({ ...base, mask: Int32Array.from(PAD), maskDtype: 'int32', inDtype: 'float32', outDtype: 'float32' });
});

test('webgpu: matches wasm, bidirectional (causal false), both layouts', async () => {
  await gpuVsWasm({ ...base, mask: PAD, inDtype: 'float32', outDtype: 'float32', causal: false });
  await gpuVsWasm({ ...base, mask: null, inDtype: 'float32', outDtype: 'float32', causal: false, tiled: 3 });
  await gpuVsWasm({ ...longCase([2, 1, 130, 6], 31, true), causal: false }); // several row blocks
  await gpuVsWasm({ ...longCase([2, 1, 70, 6], 32, true), causal: false, tiled: 16 });
});

test('webgpu: matches wasm, bfloat16 inputs (float32 and bfloat16 outputs)', async () => {
  await gpuVsWasm({ ...base, mask: PAD, inDtype: 'bfloat16', outDtype: 'float32' });
  // bf16 outputs: a 1e-5 difference in float32 can round to neighbouring bf16 values
  await gpuVsWasm({ ...base, mask: PAD, inDtype: 'bfloat16', outDtype: 'bfloat16' }, 2 ** -7, 1e-6);
});

// Longer sequences than one 64-row workgroup, several key tiles per block (KT = 64 for d <= 24,
// fewer for larger d: 42 at d = 36, 24 at d = 64), head dims with a tail (d % 4 != 0), padding
// that masks whole leading tiles of keys (query rows with no key) and keys in later tiles.
function longCase(shape: [number, number, number, number], seed: number, masked: boolean, inDtype: TensorDType = 'float32'): Case {
  const [b0, h0, t0, d0] = shape;
  const n = b0 * h0 * t0 * d0;
  let mask: Float32Array | null = null;
  if (masked) {
    const r = rng(seed + 7);
    mask = Float32Array.from({ length: b0 * t0 }, (_, i) => {
      const [bb, s] = [Math.floor(i / t0), i % t0];
      if (bb === 1 && s < 70) return 0; // batch 1: the first 70 keys (a whole tile and more) are padding
      return r() < -0.8 ? 0 : 1; // and about one key in ten anywhere
    });
  }
  return { q: randn(n, seed, 1.5), k: randn(n, seed + 1, 1.5), v: randn(n, seed + 2), dout: randn(n, seed + 3), mask, inDtype, outDtype: 'float32', shape };
}

test('webgpu: matches wasm, longer sequences (several row blocks, head dims with a tail)', async () => {
  await gpuVsWasm(longCase([2, 2, 150, 36], 20, true)); // three row blocks, T not a multiple of 64
  await gpuVsWasm(longCase([2, 1, 130, 6], 30, true)); // d = 6: one whole vec4 and a tail of 2
  await gpuVsWasm(longCase([2, 3, 65, 3], 50, false, 'bfloat16')); // d = 3: tail only; 65 = 64 + 1 rows
  await gpuVsWasm(longCase([1, 2, 97, 64], 40, false)); // rows of 64 written out (UNROLL_MAX)
});

test('webgpu tiled layout (hardware GPUs, forced here): matches wasm, several key tiles a block', async () => {
  // small tiles: several a block, and quick to compile on SwiftShader (workgroup memory is slow to compile there)
  await gpuVsWasm({ ...base, mask: Int32Array.from(PAD), maskDtype: 'int32', inDtype: 'bfloat16', outDtype: 'float32', tiled: 3 });
  await gpuVsWasm({ ...longCase([2, 2, 150, 36], 20, true), tiled: 16 }); // padding spans whole tiles
  await gpuVsWasm({ ...longCase([2, 1, 70, 6], 30, true), tiled: true }); // the adapter-independent choice: KT 64
  await gpuVsWasm({ ...longCase([1, 2, 70, 64], 33, true), tiled: true }); // the hardware layout at d = 64 (KT = KC = 24)
  assert.throws(() => gpuAttention.attentionLayout(g, 36, 43), /tile rows/); // 43 rows of 36 floats: over 6 KiB
});

test('webgpu: both layouts give the same bits (same operations in the same order)', async () => {
  for (const c of [longCase([2, 2, 150, 36], 70, true), longCase([2, 1, 70, 6], 71, true, 'bfloat16')]) {
    // the forward's rescaling follows its key chunks: the tiled run uses tiles of the untiled chunk
    const kc = gpuAttention.attentionLayout(g, c.shape![3], false).KC;
    const a = await runOn(g, { ...c, tiled: false }), b = await runOn(g, { ...c, tiled: kc });
    for (const key of ['out', 'lse', 'dq', 'dk', 'dv'] as const) close(`tiled vs untiled ${key}`, b[key], a[key], 0, 0);
  }
});

// The forward is one pass over the keys (online softmax, rescaled once a key chunk): checked here
// against the float64 reference directly (the wasm kernel, which the tests above compare with, is
// the two-pass form), with the wasm bounds.
test('webgpu one-pass forward: matches the float64 reference (causal and not, padded, bfloat16, both layouts)', async () => {
  for (const causal of [true, false]) {
    for (const tiled of [false, 3]) {
      const c: Case = { ...base, mask: PAD, inDtype: 'float32', outDtype: 'float32', causal, tiled };
      checkRef(`gpu causal ${causal} tiled ${tiled}`, await runOn(g, c), c, 1e-5, 2e-6);
    }
  }
  const cb: Case = { ...base, mask: PAD, inDtype: 'bfloat16', outDtype: 'float32', causal: false, tiled: 2 };
  checkRef('gpu bf16 in', await runOn(g, cb), cb, 1e-5, 2e-6);
});

// Scores that grow key after key up to ~200: the running max changes in every chunk, and
// exp(score - first max) would overflow float32 (exp(88.7)): a missing or wrong rescale shows.
function growingCase(shape: [number, number, number, number], seed: number): Case {
  const [b0, h0, t0, d0] = shape;
  const n = b0 * h0 * t0 * d0;
  const q = Float32Array.from({ length: n }, () => 1);
  const k = randn(n, seed, 0.05);
  for (let r = 0; r < b0 * h0; r++) for (let s = 0; s < t0; s++) for (let c = 0; c < d0; c++) k[(r * t0 + s) * d0 + c] += (200 / Math.sqrt(d0)) * (s / t0) * (c % 2 ? 1 : 1.01);
  return { q, k, v: randn(n, seed + 1), dout: randn(n, seed + 2), mask: null, inDtype: 'float32', outDtype: 'float32', shape };
}

test('webgpu one-pass forward: growing scores (rescaled chunk by chunk), both layouts, causal and not', async () => {
  for (const causal of [true, false]) {
    for (const [seed, tiled] of [[80, false], [81, 4]] as const) {
      const c: Case = { ...growingCase([1, 2, 70, 6], seed), causal, tiled };
      const a = await runOn(w, c), b = await runOn(g, c);
      // the forward at the usual gpu-vs-wasm bounds
      close('growing out', b.out, a.out, 1e-5, 1e-6);
      close('growing lse', b.lse, a.lse, 1e-5, 1e-6);
      // the backward uses P = exp(score - lse) with lse ~ 200, whose float32 ulp (1.5e-5) moves P
      // by about that much relative in either kernel: dv = sum P dout within 1e-4; dq and dk (P
      // times differences of nearly equal terms, times keys of norm ~200) only finite here, their
      // agreement is checked on the ordinary cases above
      close('growing dv', b.dv, a.dv, 1e-4, 1e-4, true);
      for (const key of ['dq', 'dk'] as const) for (const x of b[key]) assert.ok(Number.isFinite(x), `growing ${key} finite`);
    }
  }
  const got = await runOn(g, { ...growingCase([1, 2, 70, 6], 82), tiled: 4 });
  for (const x of got.out) assert.ok(Number.isFinite(x));
});

test('webgpu: longer padded sequences: rows with no key give out 0, lse -inf, no gradient', async () => {
  const c = longCase([2, 2, 150, 36], 60, true);
  const got = await runOn(g, c);
  for (let h = 0; h < 2; h++) for (let t = 0; t < 70; t++) {
    const row = (1 * 2 + h) * 150 + t;
    assert.is(got.lse[row], -Infinity);
    for (let d = 0; d < 36; d++) {
      assert.is(got.out[row * 36 + d], 0);
      assert.is(got.dq[row * 36 + d], 0);
      assert.is(got.dk[row * 36 + d], 0);
      assert.is(got.dv[row * 36 + d], 0);
    }
  }
});

test('webgpu: head dims above the limit are refused', async () => {
  const shape = [1, 1, 2, 1025];
  const q = mk(g, shape, 'float32'), o = mk(g, shape, 'float32'), l = mk(g, [1, 1, 2], 'float32');
  try {
    assert.throws(() => g.attention(q, q, q, o, l, null, 1), /head dims up to 1024/);
  } finally {
    for (const t of [q, o, l]) g.free(t.storage);
  }
});

test.run();
