// One case table per kernel family (issue 10, "a kernel family is one unit"): each descriptor gives
// its cases at two sizes. The unit tests run the small cases on SwiftShader against wasm
// (tests/backend/families.test.ts); `npm run conformance -- --large` runs the large ones on
// whatever adapter is present (scripts/conformance.ts); `npm run bench:kernels` times the large
// ones on wasm and hardware adapters, the small ones on software adapters (bench/families.ts). A
// case prepares its inputs on a backend (the same seeded data on both), then `run` calls the
// kernels (what the bench times) and `outputs` reads back what to compare; its tolerance rule is the
// one the per-kernel tests in tests/backend use for GPU against wasm. Node-only (scripts/): not part
// of the library bundles.
import type { Backend, BinaryOp, Kernels, TensorDType, TensorRef, UnaryOp } from '../src/backend/backend.js';
import { storageBytes } from '../src/backend/storage.js';
import { numel } from '../src/backend/shape.js';
import { decode, encode } from '../src/dtype/encode.js';
import { FORMATS } from '../src/dtype/formats.js';
import { conv2dGeometry, maxPool2dGeometry } from '../src/nn/vision.js';

export type CaseSize = 'small' | 'large';
export type KernelName = keyof Kernels;
export type Values = Float32Array | Uint8Array | Int32Array;
export type Outputs = Record<string, Values>;

/**
 * How a GPU output may differ from wasm's:
 * - exact: the same values (NaN matches NaN; integer outputs compared as integers);
 * - close: |gpu - wasm| <= abs + rel |wasm| + absOfMax max|wasm| (max over the finite values; equal infinities pass);
 * - bound: |gpu - wasm| <= bound(i), element by element (matmul: from sum_k |a||b|);
 * - mismatches: at most maxFraction of the elements differ (8-bit codes next to a rounding threshold).
 */
export type Tolerance =
  | { readonly kind: 'exact' }
  | { readonly kind: 'close'; readonly rel: number; readonly abs?: number; readonly absOfMax?: number }
  | { readonly kind: 'bound'; readonly bound: (i: number) => number }
  | { readonly kind: 'mismatches'; readonly maxFraction: number };

/** A case made ready on one backend: its inputs allocated and written. */
export interface Prepared {
  /** The kernel calls, and nothing else that waits (no read-back): the bench times this, and may call it again (the outputs compared are those after the first call). */
  run(): void;
  /** Reads back the outputs to compare (after one `run`). */
  outputs(): Promise<Outputs>;
}

/** What one `run` of a case moves and computes, for the bench's rates: bytes read plus bytes written once each (the large tensors; host uploads not counted), floating-point operations. */
export interface Work {
  readonly bytes?: number;
  readonly flops?: number;
}

export interface Case {
  readonly name: string;
  /** Allocates the inputs on `c.b` (setup: may call kernels, not timed by the bench). */
  prepare(c: Ctx): Prepared;
  /** The rule for every output, unless `per` names one. */
  readonly tolerance: Tolerance;
  readonly per?: Readonly<Record<string, Tolerance>>;
  /** Where stated, the bench reports GB/s and/or GFLOP/s besides ms. */
  readonly work?: Work;
}

export interface Family {
  readonly family: string;
  cases(size: CaseSize): Case[];
}

/** Tensors of one run of a case on one backend; freed by runCase. */
export class Ctx {
  private readonly made: TensorRef[] = [];
  constructor(readonly b: Backend) {}

  /** A tensor of `dtype` holding `data`: float values (encoded to low-precision dtypes here), int32 ids, or raw codes (Uint8Array/Uint16Array). */
  t(shape: readonly number[], dtype: TensorDType, data?: ArrayLike<number> | ArrayBufferView): TensorRef {
    const n = numel(shape);
    const storage = this.b.alloc(storageBytes(dtype, n), 'data', 'family case');
    const ref: TensorRef = { storage, offset: 0, shape: [...shape], dtype };
    this.made.push(ref);
    if (data === undefined) return ref;
    let bytes: ArrayBufferView;
    if (dtype === 'int32') bytes = data instanceof Int32Array ? data : Int32Array.from(data as ArrayLike<number>);
    else if (dtype === 'float32') bytes = data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
    else if (data instanceof Float32Array) bytes = encodeBytes(data, dtype);
    else bytes = data as ArrayBufferView;
    this.b.write(storage, bytes);
    return ref;
  }

  /** Values of a float tensor as float32 (low-precision dtypes decoded). */
  async f32(t: TensorRef): Promise<Float32Array> {
    const n = numel(t.shape);
    const bytes = await this.b.read(t.storage, 0, storageBytes(t.dtype, n));
    if (t.dtype === 'float32') return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + n * 4));
    const f = FORMATS.find((x) => x.name === t.dtype);
    if (!f) throw new Error(`f32 of a ${t.dtype} tensor`);
    const codes = f.bits === 16 ? new Uint16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + n * 2)) : bytes.slice(0, n);
    if (f.bits < 8) throw new Error(`f32 of a packed ${t.dtype} tensor: read its bytes`);
    return decode(codes, f.name);
  }

  async i32(t: TensorRef): Promise<Int32Array> {
    const bytes = await this.b.read(t.storage, 0, numel(t.shape) * 4);
    return new Int32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + numel(t.shape) * 4));
  }

  /** Raw bytes (uint8 tensors, casts' packed codes). */
  async bytes(t: TensorRef): Promise<Uint8Array> {
    return (await this.b.read(t.storage, 0, storageBytes(t.dtype, numel(t.shape)))).slice();
  }

  free(): void {
    for (const t of this.made) this.b.free(t.storage);
    this.made.length = 0;
  }
}

function encodeBytes(x: Float32Array, dtype: TensorDType): Uint8Array {
  const codes = encode(x, dtype as never);
  const f = FORMATS.find((v) => v.name === dtype)!;
  if (f.bits < 8) throw new Error(`encode to packed ${dtype}: pass codes`);
  return new Uint8Array(codes.buffer, codes.byteOffset, codes.byteLength);
}

/** Prepares a case on one backend, runs it once, reads its outputs and frees what it allocated. */
export async function runCase(b: Backend, c: Case): Promise<Outputs> {
  const ctx = new Ctx(b);
  try {
    const p = c.prepare(ctx);
    p.run();
    return await p.outputs();
  } finally {
    ctx.free();
  }
}

export interface Comparison { ok: boolean; detail: string }

/** Compares one output of the GPU with wasm's under a tolerance; detail: the count, the worst error against its bound, the first failure. */
export function compareValues(gpu: Values, wasm: Values, tol: Tolerance): Comparison {
  if (gpu.length !== wasm.length) return { ok: false, detail: `length ${gpu.length} vs ${wasm.length}` };
  let big = 0;
  if (tol.kind === 'close' && tol.absOfMax) for (const v of wasm) if (Number.isFinite(v)) big = Math.max(big, Math.abs(v));
  let bad = 0, worst = 0, first = -1;
  for (let i = 0; i < gpu.length; i++) {
    const g = gpu[i], w = wasm[i];
    if (g === w || (Number.isNaN(g) && Number.isNaN(w))) continue;
    let bound = 0;
    if (!Number.isFinite(g) || !Number.isFinite(w)) bound = -1; // unequal infinities or NaN against a number: always a difference
    else if (tol.kind === 'close') bound = (tol.abs ?? 0) + tol.rel * Math.abs(w) + (tol.absOfMax ?? 0) * big;
    else if (tol.kind === 'bound') bound = tol.bound(i);
    const err = Math.abs(g - w);
    worst = Math.max(worst, bound > 0 ? err / bound : Infinity);
    if (!(err <= bound)) {
      bad++;
      if (first < 0) first = i;
    }
  }
  const allowed = tol.kind === 'mismatches' ? Math.floor(tol.maxFraction * gpu.length) : 0;
  const where = first >= 0 ? `; first at ${first}: gpu ${gpu[first]}, wasm ${wasm[first]}` : '';
  const detail = tol.kind === 'exact' || tol.kind === 'mismatches'
    ? `${gpu.length} values, ${bad} differ${allowed ? ` (${allowed} allowed)` : ''}${where}`
    : `${gpu.length} values, worst error / bound ${worst.toExponential(2)}, ${bad} over${where}`;
  return { ok: bad <= allowed, detail };
}

/** Runs a case on the GPU and on wasm and compares every output. */
export async function compareCase(gpu: Backend, wasm: Backend, c: Case): Promise<Comparison> {
  const g = await runCase(gpu, c), w = await runCase(wasm, c);
  const parts: string[] = [];
  let ok = true;
  for (const k of Object.keys(w)) {
    if (!(k in g)) return { ok: false, detail: `output ${k} missing on the GPU` };
    const r = compareValues(g[k], w[k], c.per?.[k] ?? c.tolerance);
    ok &&= r.ok;
    parts.push(`${k}: ${r.detail}`);
  }
  return { ok, detail: parts.join('; ') };
}

// ---- data ------------------------------------------------------------------------------------

/** n standard normal values from a seeded generator (the same on every run). */
export function randn(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const r = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  return Float32Array.from({ length: n }, () => scale * Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r()));
}

/** n uniform values in [shift - scale, shift + scale). */
function uniform(n: number, seed: number, scale = 1, shift = 0): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32 * 2 - 1) * scale + shift);
}

const EPS = 2 ** -23;
const exact: Tolerance = { kind: 'exact' };
const close = (rel: number, abs = 0, absOfMax = 0): Tolerance => ({ kind: 'close', rel, abs, absOfMax });
/** GPU vs wasm of the row kernels (tests/backend/nn.test.ts, vision.test.ts): 1e-5 relative, 1e-6 of the largest value. */
const ROWS = close(1e-5, 1e-6, 1e-6);
const big = (size: CaseSize, small: number, large: number) => (size === 'large' ? large : small);

/** Per-element bound 2 * 2 K 2^-24 |alpha| sum_k |a||b| (both results within 2 K 2^-24 ... of the exact product); computed on first use (the bench never compares). */
function matmulBound(A: Float32Array, B: Float32Array, batch: number, m: number, k: number, n: number, transA: boolean, transB: boolean, alpha: number, factor = 2): (i: number) => number {
  let bound: Float64Array | undefined;
  return (i) => (bound ??= matmulBounds(A, B, batch, m, k, n, transA, transB, alpha, factor))[i];
}

function matmulBounds(A: Float32Array, B: Float32Array, batch: number, m: number, k: number, n: number, transA: boolean, transB: boolean, alpha: number, factor: number): Float64Array {
  const bound = new Float64Array(batch * m * n);
  const absA = A.map(Math.abs), absB = B.map(Math.abs);
  for (let bi = 0; bi < batch; bi++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) {
          const a = transA ? absA[bi * m * k + p * m + i] : absA[bi * m * k + i * k + p];
          const b = transB ? absB[bi * k * n + j * k + p] : absB[bi * k * n + p * n + j];
          s += a * b;
        }
        bound[(bi * m + i) * n + j] = factor * 2 * k * 2 ** -24 * Math.abs(alpha) * s + 1e-30;
      }
    }
  }
  return bound;
}

// ---- the families ----------------------------------------------------------------------------

const NARROW = FORMATS.filter((f) => f.name !== 'float32');

const cast: Family = {
  family: 'cast',
  cases(size) {
    const n = big(size, 1 << 12, 1 << 20);
    const bits = Uint32Array.from({ length: n }, (_, i) => (Math.imul(i, 2654435761) + (i & 255)) >>> 0);
    const out: Case[] = [];
    for (const f of NARROW) {
      // Small: the other rounding modes on two formats only (each mode and format is a pipeline: slow to build on SwiftShader).
      const modes = [['', {}], [' saturate, toward-zero', { saturate: true, rounding: 'toward-zero' }], [' stochastic', { rounding: 'stochastic', seed: 7n }]] as const;
      for (const [label, opts] of size === 'large' || f.name === 'float8_e4m3fn' || f.name === 'float6_e2m3fn' ? modes : modes.slice(0, 1)) {
        out.push({
          name: `float32 -> ${f.name}${label} (${n} bit patterns)`, tolerance: exact, work: { bytes: n * 4 + storageBytes(f.name, n) },
          prepare: (c) => {
            const x = c.t([n], 'float32', new Float32Array(bits.buffer)), o = c.t([n], f.name);
            return { run: () => c.b.cast(x, o, opts), outputs: async () => ({ codes: await c.bytes(o) }) };
          },
        });
      }
      if (f.bits === 16) {
        out.push({
          name: `${f.name} -> float32 (all 65536 codes)`, tolerance: exact, work: { bytes: 65536 * 6 },
          prepare: (c) => {
            const x = c.t([65536], f.name, Uint16Array.from({ length: 65536 }, (_, i) => i)), o = c.t([65536], 'float32');
            return { run: () => c.b.cast(x, o), outputs: async () => ({ bits: await c.bytes(o) }) };
          },
        });
      }
    }
    return out;
  },
};

const UNARY: UnaryOp[] = ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'relu', 'gelu', 'silu', 'sigmoid', 'tanh', 'abs', 'square', 'scale', 'powScalar', 'addScalar'];
const BINARY: BinaryOp[] = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'reluBackward', 'geluBackward', 'siluBackward', 'sigmoidBackwardY', 'tanhBackwardY'];

const elementwise: Family = {
  family: 'elementwise',
  cases(size) {
    const [r, k] = size === 'large' ? [256, 4096] : [10, 100];
    const x = randn(r * k, 3, 3), y = randn(r * k, 5);
    const out: Case[] = [];
    const positive = (op: UnaryOp) => op === 'log' || op === 'sqrt' || op === 'rsqrt' || op === 'powScalar';
    for (const op of UNARY) {
      // WGSL's accuracy: exp within 3 + 2|x| ulp, log within 2^-21 absolute on [0.5, 2], pow via exp2(y log2 x): < 30 ulp plus 2^-20 with |x| < 12.
      out.push({
        name: `unary ${op} [${r}, ${k}]`, tolerance: close(30 * EPS, 2 ** -20), work: { bytes: 2 * r * k * 4 },
        prepare: (c) => {
          const a = c.t([r, k], 'float32', positive(op) ? x.map(Math.abs) : x), o = c.t([r, k], 'float32');
          return { run: () => c.b.unary(op, a, o, 1.5), outputs: async () => ({ out: await c.f32(o) }) };
        },
      });
    }
    const viaExp = (op: BinaryOp) => op === 'pow' || op === 'geluBackward' || op === 'siluBackward';
    for (const op of BINARY) {
      for (const [sa, sb] of [[[r, k], [r, k]], [[r, k], [k]], [[r, 1], [1, k]], [[r, k], []]]) {
        out.push({
          name: `binary ${op} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`, tolerance: viaExp(op) ? close(30 * EPS, 2 ** -20) : close(EPS),
          work: { bytes: (numel(sa) + numel(sb) + r * k) * 4 },
          prepare: (c) => {
            const a = x.slice(0, numel(sa));
            const A = c.t(sa, 'float32', op === 'pow' ? a.map(Math.abs) : a), B = c.t(sb, 'float32', y.slice(0, numel(sb))), o = c.t([r, k], 'float32');
            return { run: () => c.b.binary(op, A, B, o), outputs: async () => ({ out: await c.f32(o) }) };
          },
        });
      }
    }
    // Both round the same float32 result once: bit for bit.
    out.push({
      name: `binary mul bfloat16 * bfloat16 -> float8_e4m3fn [${r * k}]`, tolerance: exact, work: { bytes: r * k * 5 },
      prepare: (c) => {
        const a = c.t([r * k], 'bfloat16', x), o = c.t([r * k], 'float8_e4m3fn');
        return { run: () => c.b.binary('mul', a, a, o), outputs: async () => ({ codes: await c.bytes(o) }) };
      },
    });
    out.push({
      name: 'in place: mul, addScalar, sub with out = an input (float32 and bfloat16)', tolerance: exact,
      prepare: (c) => {
        const pq = (['float32', 'bfloat16'] as const).map((dtype) => [c.t([r * k], dtype, x), c.t([r * k], dtype, y)]);
        return {
          run: () => {
            for (const [p, q] of pq) {
              c.b.binary('mul', p, q, p);
              c.b.unary('addScalar', p, p, 1);
              c.b.binary('sub', q, p, q);
            }
          },
          outputs: async () => ({ float32: await c.f32(pq[0][1]), bfloat16: await c.f32(pq[1][1]) }),
        };
      },
    });
    out.push({
      name: 'fill float32, bfloat16, float8_e4m3fn, int32, and a view at an offset', tolerance: exact, work: { bytes: r * k * 11 + (r * k - 10) * 4 },
      prepare: (c) => {
        const n = r * k;
        const f = c.t([n], 'float32', x), h = c.t([n], 'bfloat16'), e = c.t([n], 'float8_e4m3fn'), i = c.t([n], 'int32');
        return {
          run: () => {
            c.b.fill(f, 0.1);
            c.b.fill({ ...f, offset: 3, shape: [n - 10] }, -2.5);
            c.b.fill(h, 1 / 3);
            c.b.fill(e, 300);
            c.b.fill(i, -7);
          },
          outputs: async () => ({ f: await c.f32(f), h: await c.f32(h), e: await c.bytes(e), i: await c.i32(i) }),
        };
      },
    });
    return out;
  },
};

const where: Family = {
  family: 'where',
  cases(size) {
    const [r, k] = size === 'large' ? [512, 2048] : [6, 70];
    const x = randn(r * k, 7);
    return [{
      name: `where [${r}, ${k}] with b broadcast from [${k}]`, tolerance: exact, work: { bytes: (3 * r * k + k) * 4 },
      prepare: (c) => {
        const cond = c.t([r, k], 'float32', x.map((v) => (v > 0 ? 1 : 0))), a = c.t([r, k], 'float32', x), b = c.t([k], 'float32', x.slice(0, k)), o = c.t([r, k], 'float32');
        return { run: () => c.b.where(cond, a, b, o), outputs: async () => ({ out: await c.f32(o) }) };
      },
    }];
  },
};

const reduce: Family = {
  family: 'reduce',
  cases(size) {
    const [r, k] = size === 'large' ? [1024, 4096] : [6, 70];
    const x = randn(r * k, 7);
    const out: Case[] = [];
    const absX = x.map(Math.abs);
    for (const op of ['sum', 'mean', 'max', 'amax'] as const) {
      for (const axis of [0, 1, null]) {
        const len = axis === 0 ? r : axis === 1 ? k : r * k;
        // max and amax are exact in any order. sum and mean: each within len eps sum|x| (over the
        // reduced elements; mean: divided by len) of the exact value, so twice that of each other.
        let tolerance: Tolerance = exact;
        if (op === 'sum' || op === 'mean') {
          const outN = axis === null ? 1 : axis === 0 ? k : r;
          const abs = new Float64Array(outN);
          for (let i = 0; i < r; i++) for (let j = 0; j < k; j++) abs[axis === null ? 0 : axis === 0 ? j : i] += absX[i * k + j];
          const f = 2 * len * EPS / (op === 'mean' ? len : 1);
          tolerance = { kind: 'bound', bound: (i) => f * abs[i] + 1e-30 };
        }
        out.push({
          name: `${op} over axis ${axis} of [${r}, ${k}]`, tolerance, work: { bytes: (r * k + r * k / len) * 4 },
          prepare: (c) => {
            const a = c.t([r, k], 'float32', x), o = c.t(axis === null ? [] : axis === 0 ? [k] : [r], 'float32');
            return { run: () => c.b.reduce(op, a, o, axis), outputs: async () => ({ out: await c.f32(o) }) };
          },
        });
      }
    }
    return out;
  },
};

const softmax: Family = {
  family: 'softmax',
  cases(size) {
    const [r, k] = size === 'large' ? [512, 4096] : [6, 70];
    const x = randn(r * k, 7, 2);
    return [false, true].map((log): Case => ({
      name: `${log ? 'log-softmax' : 'softmax'} [${r}, ${k}]`, tolerance: close(1e-5, 1e-7), work: { bytes: 2 * r * k * 4 },
      prepare: (c) => {
        const a = c.t([r, k], 'float32', x), o = c.t([r, k], 'float32');
        return { run: () => c.b.softmax(a, o, log), outputs: async () => ({ out: await c.f32(o) }) };
      },
    }));
  },
};

const matmul: Family = {
  family: 'matmul',
  cases(size) {
    const [bt, m, k, n] = size === 'large' ? [2, 520, 384, 264] : [2, 33, 47, 29];
    const A = randn(bt * m * k, 11), B = randn(bt * k * n, 12);
    const out: Case[] = [];
    for (const [ta, tb, dt] of [[false, false, 'float32'], [true, false, 'float32'], [false, true, 'bfloat16'], [true, true, 'float16']] as const) {
      // The inputs as the kernels see them (low precision decoded), for the bound.
      const seen = (v: Float32Array) => (dt === 'float32' ? v : decode(encode(v, dt), dt));
      out.push({
        name: `${bt} x ${m}x${k}x${n} ${dt}${ta ? ' A^T' : ''}${tb ? ' B^T' : ''}, alpha 0.5`, tolerance: { kind: 'bound', bound: matmulBound(seen(A), seen(B), bt, m, k, n, ta, tb, 0.5) },
        work: { flops: 2 * bt * m * k * n },
        prepare: (c) => {
          const a = c.t(ta ? [bt, k, m] : [bt, m, k], dt, A), b = c.t(tb ? [bt, n, k] : [bt, k, n], dt, B), o = c.t([bt, m, n], 'float32');
          return { run: () => c.b.matmul(a, b, o, { transA: ta, transB: tb, alpha: 0.5 }), outputs: async () => ({ out: await c.f32(o) }) };
        },
      });
    }
    // A batch of one broadcast against B's batch.
    out.push({
      name: `broadcast batch: [1, ${m}, ${k}] @ [${bt}, ${k}, ${n}]`, tolerance: { kind: 'bound', bound: matmulBound(new Float32Array([...A.subarray(0, m * k), ...A.subarray(0, m * k)]), B, bt, m, k, n, false, false, 1) },
      work: { flops: 2 * bt * m * k * n },
      prepare: (c) => {
        const a = c.t([1, m, k], 'float32', A.subarray(0, m * k)), b = c.t([bt, k, n], 'float32', B), o = c.t([bt, m, n], 'float32');
        return { run: () => c.b.matmul(a, b, o), outputs: async () => ({ out: await c.f32(o) }) };
      },
    });
    return out;
  },
};

const transpose: Family = {
  family: 'transpose',
  cases(size) {
    const [b, r, k] = size === 'large' ? [4, 1000, 1536] : [3, 5, 7];
    const x = randn(b * r * k, 13);
    const transposes = (['float32', 'bfloat16'] as const).map((dt): Case => ({
      name: `transpose [${b}, ${r}, ${k}] ${dt}`, tolerance: exact, work: { bytes: 2 * storageBytes(dt, b * r * k) },
      prepare: (c) => {
        const a = c.t([b, r, k], dt, x), o = c.t([b, k, r], dt);
        return { run: () => c.b.transpose(a, o), outputs: async () => ({ out: await c.bytes(o) }) };
      },
    }));
    // copy: a strided view ([k, b, r], x permuted by [2, 0, 1]) into contiguous memory, codes bit for bit
    // (packed sub-byte views: tests/tensor/views.test.ts)
    const copies = (['float32', 'bfloat16', 'float8_e4m3fn'] as const).map((dt): Case => ({
      name: `copy of a [2, 0, 1] view of [${b}, ${r}, ${k}] ${dt}`, tolerance: exact, work: { bytes: 2 * storageBytes(dt, b * r * k) },
      prepare: (c) => {
        const a = c.t([b, r, k], dt, x), o = c.t([k, b, r], dt);
        const view: TensorRef = { ...a, shape: [k, b, r], strides: [1, r * k, k] };
        return { run: () => c.b.copy(view, o), outputs: async () => ({ out: await c.bytes(o) }) };
      },
    }));
    return [...transposes, ...copies];
  },
};

const norms: Family = {
  family: 'norms',
  cases(size) {
    const [n, d] = size === 'large' ? [2048, 1024] : [6, 16];
    const x = uniform(n * d, 1, 2, 0.3), wt = uniform(d, 2, 0.5, 1), bs = uniform(d, 6, 0.2), dy = uniform(n * d, 3);
    const out: Case[] = [];
    for (const [xd, od] of [['float32', 'float32'], ['bfloat16', 'float32'], ['float32', 'bfloat16']] as const) {
      // bfloat16 outputs may round differently by one ulp when the float32 results differ in the last bits.
      const tolerance = od === 'bfloat16' ? close(2 ** -7, 1e-6, 1e-6) : ROWS;
      // The [n, d] tensors: x read twice and dy once, out and dx written.
      const rowBytes = 3 * storageBytes(xd, n * d) + 2 * storageBytes(od, n * d);
      out.push({
        name: `rmsNorm forward/backward [${n}, ${d}] (x ${xd}, out/dx ${od}; dweight accumulated)`, tolerance, per: { dw: ROWS, rstd: ROWS }, work: { bytes: rowBytes },
        prepare: (c) => {
          const X = c.t([n, d], xd, x), W = c.t([d], 'float32', wt), DY = c.t([n, d], xd, dy);
          const o = c.t([n, d], od), rstd = c.t([n], 'float32'), dx = c.t([n, d], od), dw = c.t([d], 'float32', bs);
          return {
            run: () => {
              c.b.rmsNorm(X, W, o, rstd, 1e-5);
              c.b.rmsNormBackward(DY, X, W, rstd, dx, dw);
            },
            outputs: async () => ({ out: await c.f32(o), rstd: await c.f32(rstd), dx: await c.f32(dx), dw: await c.f32(dw) }),
          };
        },
      });
      out.push({
        name: `layerNorm forward/backward [${n}, ${d}] (x ${xd}, out/dx ${od}; dweight, dbias accumulated)`, tolerance, per: { mean: ROWS, rstd: ROWS, dw: ROWS, db: ROWS }, work: { bytes: rowBytes },
        prepare: (c) => {
          const X = c.t([n, d], xd, x), W = c.t([d], 'float32', wt), B = c.t([d], 'float32', bs), DY = c.t([n, d], xd, dy);
          const o = c.t([n, d], od), mean = c.t([n], 'float32'), rstd = c.t([n], 'float32'), dx = c.t([n, d], od);
          const dw = c.t([d], 'float32', wt), db = c.t([d], 'float32', bs);
          return {
            run: () => {
              c.b.layerNorm(X, W, B, o, mean, rstd, 1e-5);
              c.b.layerNormBackward(DY, X, W, mean, rstd, dx, dw, db);
            },
            outputs: async () => ({ out: await c.f32(o), mean: await c.f32(mean), rstd: await c.f32(rstd), dx: await c.f32(dx), dw: await c.f32(dw), db: await c.f32(db) }),
          };
        },
      });
    }
    return out;
  },
};

const embedding: Family = {
  family: 'embedding',
  cases(size) {
    const [v, d, n] = size === 'large' ? [32000, 512, 4096] : [7, 16, 8];
    // Out-of-range ids (-1, v) give zero rows and no gradient; repeats accumulate.
    const ids = size === 'large'
      ? Int32Array.from({ length: n }, (_, i) => (i % 97 === 5 ? -1 : i % 89 === 3 ? v : (Math.imul(i, 2654435761) >>> 0) % (i % 3 ? v : 50)))
      : new Int32Array([3, 0, 6, -1, 3, 7, 2, 3]);
    const table = randn(v * d, 8), dy = randn(n * d, 9), init = randn(v * d, 10, 0.1);
    return (['float32', 'bfloat16'] as const).map((td): Case => ({
      // Same summation order on both backends: exact.
      // ids read twice; rows read, written; dy read; the table's gradient rows read and written.
      name: `embedding forward/backward, ${n} ids into [${v}, ${d}] ${td}`, tolerance: exact, work: { bytes: 2 * n * 4 + 3 * storageBytes(td, n * d) + 2 * n * d * 4 },
      prepare: (c) => {
        const I = c.t([2, n / 2], 'int32', ids), T = c.t([v, d], td, table), DY = c.t([2, n / 2, d], td, dy);
        const o = c.t([2, n / 2, d], td), dt = c.t([v, d], 'float32', init);
        return {
          run: () => {
            c.b.embedding(I, T, o);
            c.b.embeddingBackward(I, DY, dt);
          },
          outputs: async () => ({ out: await c.f32(o), dtable: await c.f32(dt) }),
        };
      },
    }));
  },
};

const attention: Family = {
  family: 'attention',
  cases(size) {
    const [B, H, T, D] = size === 'large' ? [2, 4, 512, 64] : [2, 2, 7, 5];
    const N = B * H * T * D;
    const q = uniform(N, 1, 1.5), k = uniform(N, 2, 1.5), v = uniform(N, 3), dout = uniform(N, 4);
    // batch 0: no padding; batch 1: two leading pad keys (query rows that see no key) and one trailing.
    const pad = Float32Array.from({ length: B * T }, (_, i) => (i < T || (i % T >= 2 && i % T !== T - 1) ? 1 : 0));
    const out: Case[] = [];
    for (const [label, causal, mask, dt] of [
      ['causal, no mask', true, null, 'float32'], ['causal, padded', true, pad, 'float32'], ['bidirectional, padded', false, pad, 'float32'],
      ['bidirectional, no mask', false, null, 'float32'], ['causal, bfloat16 inputs', true, pad, 'bfloat16'],
    ] as const) {
      // FLOPs as bench:kernels' attention figures: forward 4 B H T^2 D (causal: half), backward 2.5x; masked keys still counted.
      const forward = (4 * B * H * T * T * D) / (causal ? 2 : 1);
      out.push({
        name: `attention forward/backward [${B}, ${H}, ${T}, ${D}] ${label}`, tolerance: close(1e-5, 1e-6), work: { flops: 3.5 * forward },
        prepare: (c) => {
          const sh = [B, H, T, D];
          const Q = c.t(sh, dt, q), K = c.t(sh, dt, k), V = c.t(sh, dt, v), DO = c.t(sh, dt, dout);
          const M = mask ? c.t([B, T], 'float32', mask) : null;
          const o = c.t(sh, 'float32'), lse = c.t([B, H, T], 'float32'), dq = c.t(sh, 'float32'), dk = c.t(sh, 'float32'), dv = c.t(sh, 'float32');
          const scale = 1 / Math.sqrt(D);
          return {
            run: () => {
              c.b.attention(Q, K, V, o, lse, M, scale, causal);
              c.b.attentionBackward(DO, Q, K, V, o, lse, M, scale, dq, dk, dv, causal);
            },
            outputs: async () => ({ out: await c.f32(o), lse: await c.f32(lse), dq: await c.f32(dq), dk: await c.f32(dk), dv: await c.f32(dv) }),
          };
        },
      });
    }
    return out;
  },
};

const loss: Family = {
  family: 'loss',
  cases(size) {
    const [n, cl] = size === 'large' ? [1024, 32000] : [6, 10];
    const logits = uniform(n * cl, 11, 3);
    const targets = Int32Array.from({ length: n }, (_, i) => (i % 5 === 1 ? -100 : (i * 7 + 2) % cl));
    const out: Case[] = (['float32', 'bfloat16'] as const).map((xd): Case => ({
      // Logits read twice (with and without the gradient), dlogits written.
      name: `crossEntropy [${n}, ${cl}] logits ${xd}, ignored targets, gradScale 0.5`, tolerance: ROWS, work: { bytes: 2 * storageBytes(xd, n * cl) + n * cl * 4 },
      prepare: (c) => {
        const L = c.t([n, cl], xd, logits), T = c.t([n], 'int32', targets);
        const l = c.t([], 'float32'), dl = c.t([n, cl], 'float32'), l2 = c.t([], 'float32');
        return {
          run: () => {
            c.b.crossEntropy(L, T, l, dl, -100, 0.5);
            c.b.crossEntropy(L, T, l2, null, -100, 1);
          },
          outputs: async () => ({ loss: await c.f32(l), lossWithoutGrad: await c.f32(l2), dlogits: await c.f32(dl) }),
        };
      },
    }));
    out.push({
      name: 'crossEntropy with every target ignored: NaN loss, zero bfloat16 gradients', tolerance: exact,
      prepare: (c) => {
        const L = c.t([3, cl], 'float32', logits.subarray(0, 3 * cl)), T = c.t([3], 'int32', [-100, -100, -100]);
        const l = c.t([], 'float32'), dl = c.t([3, cl], 'bfloat16', randn(3 * cl, 13));
        return { run: () => c.b.crossEntropy(L, T, l, dl, -100, 1), outputs: async () => ({ loss: await c.f32(l), dlogits: await c.f32(dl) }) };
      },
    });
    return out;
  },
};

const HYPER = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };

const optimizer: Family = {
  family: 'optimizer',
  cases(size) {
    const n = big(size, 1000, 1 << 20);
    const p0 = uniform(n, 1), m0 = uniform(n, 9, 0.1), v0 = uniform(n, 10, 0.1).map((x) => x * x);
    const grads = [1, 2, 3].map((s) => uniform(n, 100 + s, s % 2 ? 0.5 : 4));
    // tests/backend/optim.test.ts: param within 1e-6 relative (floor 1e-3 of the largest), m and v with a floor of 1/4.
    const P = close(1e-6, 0, 1e-9), MV = close(1e-6, 0, 2.5e-7);
    const out: Case[] = [{
      // Each step reads p, g, m, v and writes p, m, v (the bench's time includes the gradients' uploads).
      name: `adamw float32 [${n}], 3 steps (one with gradScale 0.25)`, tolerance: P, per: { m: MV, v: MV }, work: { bytes: 3 * 7 * n * 4 },
      prepare: (c) => {
        const p = c.t([n], 'float32', p0), m = c.t([n], 'float32', new Float32Array(n)), v = c.t([n], 'float32', new Float32Array(n)), gr = c.t([n], 'float32');
        return {
          run: () => {
            for (let step = 1; step <= 3; step++) {
              c.b.write(gr.storage, grads[step - 1]);
              c.b.adamw(p, gr, m, v, { ...HYPER, step, gradScale: step === 2 ? 0.25 : undefined });
            }
          },
          outputs: async () => ({ p: await c.f32(p), m: await c.f32(m), v: await c.f32(v) }),
        };
      },
    }, {
      // The float32 results may differ in the last bits: one bfloat16 ulp apart after rounding.
      name: `adamw bfloat16 param [${n}], step 3`, tolerance: close(2 ** -7), per: { m: MV, v: MV }, work: { bytes: 24 * n },
      prepare: (c) => {
        const p = c.t([n], 'bfloat16', p0.map((x) => 2 * x)), g = c.t([n], 'float32', grads[0]), m = c.t([n], 'float32', m0), v = c.t([n], 'float32', v0);
        return { run: () => c.b.adamw(p, g, m, v, { ...HYPER, lr: 0.05, step: 3 }), outputs: async () => ({ p: await c.f32(p), m: await c.f32(m), v: await c.f32(v) }) };
      },
    }, {
      name: `adamw under a found-inf flag [${n}]: set (nothing written), clear with device scalars`, tolerance: exact,
      prepare: (c) => {
        const g = grads[1].slice();
        g[17] = Infinity;
        const h = { ...HYPER, step: 4 };
        const runs = [1, NaN].map((flag) => ({
          flag, p: c.t([n], 'bfloat16', p0), g: c.t([n], 'float32', g), m: c.t([n], 'float32', m0), v: c.t([n], 'float32', v0), found: c.t([], 'float32', [flag]),
        }));
        return {
          run: () => {
            for (const r of runs) c.b.adamw(r.p, r.g, r.m, r.v, h, { foundInf: r.found });
          },
          outputs: async () => {
            const res: Outputs = {};
            for (const r of runs) Object.assign(res, { [`p flag ${r.flag}`]: await c.f32(r.p), [`m flag ${r.flag}`]: await c.f32(r.m), [`v flag ${r.flag}`]: await c.f32(r.v) });
            return res;
          },
        };
      },
    }, {
      name: `adamw, clear flag and device scalars [${n}]`, tolerance: P, per: { m: MV, v: MV }, work: { bytes: 7 * n * 4 },
      prepare: (c) => {
        const p = c.t([n], 'float32', p0), g = c.t([n], 'float32', grads[2]), m = c.t([n], 'float32', m0), v = c.t([n], 'float32', v0);
        const sc = c.t([2], 'float32', [HYPER.lr / (1 - HYPER.beta1 ** 4), Math.sqrt(1 - HYPER.beta2 ** 4)]), found = c.t([], 'float32', [0]);
        return { run: () => c.b.adamw(p, g, m, v, { ...HYPER, step: 1 }, { foundInf: found, scalars: sc }), outputs: async () => ({ p: await c.f32(p), m: await c.f32(m), v: await c.f32(v) }) };
      },
    }, {
      name: `nonFiniteCheckAndUnscale: finite tensors [300], [${n}], then one with inf and one with NaN`, tolerance: exact, work: { bytes: (800 + 2 * n) * 8 },
      prepare: (c) => {
        const a = c.t([300], 'float32', uniform(300, 21, 1000)), b = c.t([n], 'float32', uniform(n, 22, 50));
        const found = c.t([], 'float32', [0]), inv = c.t([], 'float32', [3 / 1024]);
        const x = uniform(500, 23), y = uniform(n, 24);
        x[17] = Infinity;
        y[n - 1] = NaN;
        const tx = c.t([500], 'float32', x), ty = c.t([n], 'float32', y), f2 = c.t([], 'float32', [0]), inv2 = c.t([1], 'float32', [0.5]);
        return {
          run: () => {
            c.b.nonFiniteCheckAndUnscale([a, b], found, inv);
            c.b.nonFiniteCheckAndUnscale([tx, ty], f2, inv2);
          },
          outputs: async () => ({ a: await c.f32(a), b: await c.f32(b), found: await c.f32(found), x: await c.f32(tx), y: await c.f32(ty), foundNonFinite: await c.f32(f2) }),
        };
      },
    }, {
      // Power-of-two scales: every product and inverse exact on both backends.
      name: 'ampUpdateScale: backoff (inf, NaN flags), growth at the interval, growth to inf refused, tracker counting', tolerance: exact,
      prepare: (c) => {
        const cases: [number, number, number, number, number, number][] = [
          [65536, 0, 1, 2, 0.5, 2000], [65536, 5, NaN, 2, 0.5, 2000], [1024, 1, 0, 2, 0.5, 3], [1024, 2, 0, 2, 0.5, 3],
          [2 ** 127, 2, 0, 2, 0.5, 3], [2 ** -100, 0, 1, 2, 0.5, 3], [1024, 6, 0, 4, 0.25, 7], [2 ** 126, 0, 0, 2, 0.5, 1],
        ];
        const runs = cases.map(([scale, tracker, found, growth, backoff, interval]) => ({
          s: c.t([], 'float32', [scale]), inv: c.t([], 'float32', [123]), t: c.t([], 'int32', [tracker]), f: c.t([1], 'float32', [found]), growth, backoff, interval,
        }));
        return {
          run: () => {
            for (const r of runs) c.b.ampUpdateScale(r.s, r.inv, r.t, r.f, r.growth, r.backoff, r.interval);
          },
          outputs: async () => {
            const res: Outputs = {};
            for (const [i, r] of runs.entries()) Object.assign(res, { [`scale ${i}`]: await c.f32(r.s), [`inv ${i}`]: await c.f32(r.inv), [`tracker ${i}`]: await c.i32(r.t), [`found ${i}`]: await c.f32(r.f) });
            return res;
          },
        };
      },
    }, {
      name: `globalNorm over 5 tensors (bfloat16, a view, an empty one, ${n} elements)`, tolerance: close(1e-5), work: { bytes: (100 + n + 590) * 4 + 3000 * 2 },
      prepare: (c) => {
        const a = c.t([100], 'float32', uniform(100, 31, 3)), b = c.t([30, 100], 'bfloat16', uniform(3000, 32, 0.5));
        const big = c.t([n], 'float32', uniform(n, 33, 0.01)), e = c.t([0], 'float32');
        const view: TensorRef = { ...c.t([600], 'float32', uniform(600, 34)), offset: 3, shape: [590] };
        const o = c.t([], 'float32', [-1]);
        return { run: () => c.b.globalNorm([a, b, big, e, view], o), outputs: async () => ({ norm: await c.f32(o) }) };
      },
    }];
    // The fused 8-bit step (tests/optim/optim8bit.test.ts): codes may differ next to a threshold (1 in 1000), params 1e-5.
    const block = 256;
    const blocks = Math.ceil(n / block);
    const h8: Record<string, number[]> = {
      adam: [1, 1 - 1e-2 * 1e-2, 0.9, 0.1, 0.999, 0.001, 1e-2 / (1 - 0.9 ** 2), Math.sqrt(1 - 0.999 ** 2), 1e-8],
      momentum: [0.9, 1, -1e-2, 1, 0, 0, 0, 0, 0],
      rmsprop: [0.99, 0.01, -1e-2, 1e-8, 0, 0, 0, 0, 0],
    };
    for (const kind of ['adam', 'momentum', 'rmsprop'] as const) {
      for (const pd of kind === 'adam' ? ['float32', 'bfloat16'] as const : ['float32'] as const) {
        out.push({
          name: `optimizer8bit ${kind} [${n}] (param ${pd}, blocks of ${block}, a short last block)`,
          tolerance: close(1e-5, 1e-5), per: { codes1: { kind: 'mismatches', maxFraction: 1e-3 }, codes2: { kind: 'mismatches', maxFraction: 1e-3 }, ...(pd === 'bfloat16' ? { p: close(2 ** -7, 1e-5) } : {}) },
          // p read and written, g read, each state's codes read and written (absmax: n / 256 of that).
          work: { bytes: 2 * storageBytes(pd, n) + 4 * n + (kind === 'adam' ? 2 : 1) * 2 * (n + 4 * blocks) },
          prepare: (c) => {
            const p = c.t([n], pd, p0), g = c.t([n], 'float32', grads[0]);
            // The states quantized on the backend at setup.
            const state = (x: Float32Array, signed: boolean) => {
              const codes = c.t([n], 'uint8'), absmax = c.t([blocks], 'float32');
              c.b.quantizeBlockwise(c.t([n], 'float32', x), codes, absmax, signed, block);
              return { codes, absmax };
            };
            const s1 = state(kind === 'rmsprop' ? v0 : m0, kind !== 'rmsprop');
            const s2 = kind === 'adam' ? state(v0, false) : null;
            return {
              run: () => c.b.optimizer8bit(p, g, s1, s2, { kind, blockSize: block, h: h8[kind] }),
              outputs: async () => ({
                p: await c.f32(p), codes1: await c.bytes(s1.codes), absmax1: await c.f32(s1.absmax),
                ...(s2 ? { codes2: await c.bytes(s2.codes), absmax2: await c.f32(s2.absmax) } : {}),
              }),
            };
          },
        });
      }
    }
    return out;
  },
};

const float8: Family = {
  family: 'float8',
  cases(size) {
    const [m, k, n] = size === 'large' ? [512, 1024, 384] : [9, 33, 7];
    const a = randn(m * k, 41, 40), b = randn(k * n, 42, 2000);
    const ca = encode(a, 'float8_e4m3fn', { saturate: true }) as Uint8Array, cb = encode(b, 'float8_e5m2', { saturate: true }) as Uint8Array;
    const A = decode(ca, 'float8_e4m3fn'), B = decode(cb, 'float8_e5m2');
    const [sa, sb] = [0.0234375, 3.5e-4];
    const out: Case[] = [{
      // tests/backend/optim.test.ts: within 4 K 2^-24 sum|a||b| |scaleA scaleB| of wasm.
      name: `scaledMatmul ${m}x${k}x${n} float8_e4m3fn @ float8_e5m2 -> float32, scales on the device (one at an offset)`,
      tolerance: { kind: 'bound', bound: matmulBound(A, B, 1, m, k, n, false, false, Math.fround(sa) * Math.fround(sb)) }, work: { flops: 2 * m * k * n },
      prepare: (c) => {
        const a = c.t([m, k], 'float8_e4m3fn', ca), b = c.t([k, n], 'float8_e5m2', cb), o = c.t([m, n], 'float32');
        const scales = c.t([3], 'float32', [-7, sa, sb]);
        return { run: () => c.b.scaledMatmul(a, b, o, { ...scales, offset: 1, shape: [1] }, { ...scales, offset: 2, shape: [] }), outputs: async () => ({ out: await c.f32(o) }) };
      },
    }];
    // float8ScaleUpdate: history rolled bit for bit; the scales through one float32 division (WGSL's: 2.5 ulp).
    // The scale after each amax is kept by a float32 -> float32 cast (a copy) into its own tensor.
    const amaxes = [5, NaN, 0.3, Infinity, 0, 7.5];
    for (const algorithm of ['max', 'mostRecent', 'current'] as const) {
      out.push({
        name: `float8ScaleUpdate ${algorithm} (history 4, a NaN and an inf among the amaxes, margin 1)`, tolerance: close(3 * EPS), per: { history: exact },
        prepare: (c) => {
          const h = c.t([4], 'float32', [0, 3, 0.75, 2]), s = c.t([1], 'float32', [1]), inv = c.t([1], 'float32', [1]);
          const kept = amaxes.map(() => [c.t([1], 'float32'), c.t([1], 'float32')]);
          return {
            run: () => {
              for (const [i, amax] of amaxes.entries()) {
                c.b.write(h.storage, Float32Array.of(amax));
                c.b.float8ScaleUpdate(h, s, inv, { fp8Max: 448, margin: 1, algorithm });
                c.b.cast(s, kept[i][0]);
                c.b.cast(inv, kept[i][1]);
              }
            },
            outputs: async () => {
              const res: Outputs = {};
              for (const [i, [ks, ki]] of kept.entries()) Object.assign(res, { [`scale ${i}`]: await c.f32(ks), [`scaleInv ${i}`]: await c.f32(ki) });
              return { ...res, history: await c.f32(h) };
            },
          };
        },
      });
    }
    return out;
  },
};

const quantize: Family = {
  family: 'quantize',
  cases(size) {
    const S = big(size, 1, 64);
    const out: Case[] = [];
    // bitsandbytes' dynamic maps: codes, absmax and dequantized values bit for bit, blocks of 256
    // and 2048 with a short last block, values over 9 decades.
    for (const block of [256, 2048]) {
      for (const signed of [true, false]) {
        const qn = block * 5 * S + 123;
        const xs = randn(qn, 7 + block).map((v, i) => (signed ? v : Math.abs(v)) * 10 ** -(i % 9));
        out.push({
          // float32 read, codes written; codes read, float32 written.
          name: `quantize/dequantize blockwise ${signed ? 'signed' : 'unsigned'}, block ${block}, n ${qn}`, tolerance: exact, work: { bytes: 10 * qn },
          prepare: (c) => {
            const x = c.t([qn], 'float32', xs), codes = c.t([qn], 'uint8'), absmax = c.t([Math.ceil(qn / block)], 'float32'), o = c.t([qn], 'float32');
            return {
              run: () => {
                c.b.quantizeBlockwise(x, codes, absmax, signed, block);
                c.b.dequantizeBlockwise(codes, absmax, o, signed, block);
              },
              outputs: async () => ({ codes: await c.bytes(codes), absmax: await c.f32(absmax), dequantized: await c.f32(o) }),
            };
          },
        });
      }
    }
    return out;
  },
};

/** Biased variance per channel of x [n, ch, sp], in float64. */
function batchVariance(x: Float32Array, n: number, ch: number, sp: number): Float64Array {
  const res = new Float64Array(ch);
  for (let c = 0; c < ch; c++) {
    let sum = 0, sq = 0;
    for (let b = 0; b < n; b++) for (let k = 0; k < sp; k++) sum += x[(b * ch + c) * sp + k];
    const mu = sum / (n * sp);
    for (let b = 0; b < n; b++) for (let k = 0; k < sp; k++) sq += (x[(b * ch + c) * sp + k] - mu) ** 2;
    res[c] = sq / (n * sp);
  }
  return res;
}

const vision: Family = {
  family: 'vision',
  cases(size) {
    const L = size === 'large';
    const out: Case[] = [];
    const convs: [string, number[], number[], { stride?: [number, number]; padding?: [number, number]; dilation?: [number, number]; groups?: number }, TensorDType][] = L
      ? [['3x3 pad 1', [8, 64, 32, 32], [64, 64, 3, 3], { padding: [1, 1] }, 'float32'], ['7x7 stride 2 pad 3', [4, 3, 64, 64], [32, 3, 7, 7], { stride: [2, 2], padding: [3, 3] }, 'float32'],
        ['depthwise', [4, 64, 32, 32], [64, 1, 3, 3], { padding: [1, 1], groups: 64 }, 'float32'], ['1x1 stride 2', [8, 64, 32, 32], [128, 64, 1, 1], { stride: [2, 2] }, 'bfloat16']]
      : [['3x3 pad 1', [2, 3, 7, 6], [4, 3, 3, 3], { padding: [1, 1] }, 'float32'],
        ['stride [2, 1], padding [0, 2], dilation [2, 1]', [2, 2, 9, 7], [3, 2, 3, 2], { stride: [2, 1], padding: [0, 2], dilation: [2, 1] }, 'float32'],
        ['groups 2, stride 2', [1, 4, 8, 8], [6, 2, 3, 3], { stride: [2, 2], padding: [1, 1], groups: 2 }, 'float32'],
        ['1x1 groups 3', [2, 6, 3, 3], [9, 2, 1, 1], { groups: 3 }, 'float32'], ['3x3 pad 1', [2, 3, 6, 5], [4, 3, 3, 3], { padding: [1, 1] }, 'bfloat16']];
    for (const [i, [label, xs, ws, opts, dt]] of convs.entries()) {
      const { geom, outShape } = conv2dGeometry(xs, ws, opts);
      const x = uniform(numel(xs), 50 + i), wt = uniform(numel(ws), 60 + i, 0.5), dy = uniform(numel(outShape), 70 + i);
      out.push({
        // Each output element: C/groups x KH x KW multiply-adds, in the forward and in each backward.
        name: `conv2d forward/backward ${label} x ${JSON.stringify(xs)} w ${JSON.stringify(ws)} ${dt}`, tolerance: ROWS, work: { flops: 3 * 2 * numel(outShape) * numel(ws.slice(1)) },
        prepare: (c) => {
          const X = c.t(xs, dt, x), W = c.t(ws, dt, wt), DY = c.t(outShape, dt, dy);
          const y = c.t(outShape, 'float32'), dx = c.t(xs, 'float32'), dw = c.t(ws, 'float32', new Float32Array(numel(ws)).fill(1));
          return {
            run: () => {
              c.b.conv2d(X, W, y, geom);
              c.b.conv2dBackwardInput(DY, W, dx, geom);
              c.b.conv2dBackwardWeight(DY, X, dw, geom);
            },
            outputs: async () => ({ y: await c.f32(y), dx: await c.f32(dx), dw: await c.f32(dw) }),
          };
        },
      });
    }
    const [n, ch, sp] = L ? [16, 64, 1024] : [3, 4, 10];
    for (const training of [true, false]) {
      const x = uniform(n * ch * sp, 7, 2), wt = uniform(ch, 8), bs = uniform(ch, 9), dy = uniform(n * ch * sp, 10);
      const rm = uniform(ch, 11, 0.3), rv = uniform(ch, 12).map((v) => 1 + 0.5 * v);
      // Training: rstd from the batch variance computed here in float64 (the same on both backends;
      // the kernel's own statistics are compared as outputs); the mean is the kernel's.
      const useVar = training ? batchVariance(x, n, ch, sp) : rv;
      const rstd0 = Float32Array.from(useVar, (v) => 1 / Math.sqrt(v + 1e-5));
      out.push({
        // x read by the statistics, the forward and the backward; y written; dy read, dx written.
        name: `batch norm [${n}, ${ch}, ${sp}] ${training ? 'training (batch statistics)' : 'eval (running statistics)'}`, tolerance: ROWS, work: { bytes: 6 * n * ch * sp * 4 },
        prepare: (c) => {
          const sh = [n, ch, sp];
          const X = c.t(sh, 'float32', x), mean = c.t([ch], 'float32'), vr = c.t([ch], 'float32');
          const useMean = training ? mean : c.t([ch], 'float32', rm);
          const rstd = c.t([ch], 'float32', rstd0), W = c.t([ch], 'float32', wt), B = c.t([ch], 'float32', bs), DY = c.t(sh, 'float32', dy);
          const y = c.t(sh, 'float32'), dx = c.t(sh, 'float32'), dw = c.t([ch], 'float32', new Float32Array(ch).fill(1)), db = c.t([ch], 'float32', new Float32Array(ch).fill(2));
          return {
            run: () => {
              c.b.batchNormStats(X, mean, vr);
              c.b.batchNorm(X, useMean, rstd, W, B, y);
              c.b.batchNormBackward(DY, X, useMean, rstd, W, dx, dw, db, training);
            },
            outputs: async () => ({ mean: await c.f32(mean), var: await c.f32(vr), y: await c.f32(y), dx: await c.f32(dx), dw: await c.f32(dw), db: await c.f32(db) }),
          };
        },
      });
    }
    const pools: [string, number[], [number, number], { stride?: [number, number]; padding?: [number, number]; dilation?: [number, number]; ceilMode?: boolean }][] = L
      ? [['3x3 stride 2 pad 1', [16, 64, 112, 112], [3, 3], { stride: [2, 2], padding: [1, 1] }], ['ceil mode', [8, 32, 57, 57], [3, 3], { stride: [2, 2], ceilMode: true }]]
      : [['3x3 stride 2 pad 1', [2, 3, 9, 8], [3, 3], { stride: [2, 2], padding: [1, 1] }],
        ['non-square, dilation [2, 1], padding [1, 0]', [1, 2, 9, 7], [3, 2], { stride: [1, 2], padding: [1, 0], dilation: [2, 1] }],
        ['ceil mode', [1, 2, 7, 8], [3, 3], { stride: [2, 3], ceilMode: true }]];
    for (const [i, [label, xs, kern, opts]] of pools.entries()) {
      const { geom, outShape } = maxPool2dGeometry(xs, kern, opts);
      const x = uniform(numel(xs), 80 + i, 2).map((v) => Math.round(v * 4) / 4); // ties: the first max wins
      x[5] = NaN;
      const dy = uniform(numel(outShape), 90 + i);
      // Same sums where windows overlap, in the same order: exact.
      out.push({
        // x read, y and indices written; dy and indices read, dx written.
        name: `maxPool2d forward/backward ${label} ${JSON.stringify(xs)} (ties, a NaN)`, tolerance: exact, work: { bytes: (2 * numel(xs) + 4 * numel(outShape)) * 4 },
        prepare: (c) => {
          const X = c.t(xs, 'float32', x), DY = c.t(outShape, 'float32', dy), y = c.t(outShape, 'float32'), idx = c.t(outShape, 'int32'), dx = c.t(xs, 'float32');
          return {
            run: () => {
              c.b.maxPool2d(X, y, idx, geom);
              c.b.maxPool2dBackward(DY, idx, dx, geom);
            },
            outputs: async () => ({ y: await c.f32(y), indices: await c.i32(idx), dx: await c.f32(dx) }),
          };
        },
      });
    }
    const adaptive: [number, number, number, number, number][] = L ? [[64, 56, 56, 7, 7], [64, 17, 13, 5, 3]] : [[6, 7, 5, 3, 2], [6, 4, 4, 1, 1], [6, 3, 3, 5, 4]];
    for (const [i, [p, h, wd, oh, ow]] of adaptive.entries()) {
      const x = uniform(p * h * wd, 100 + i), dy = uniform(p * oh * ow, 110 + i);
      out.push({
        name: `adaptiveAvgPool2d forward/backward [${p}, ${h}, ${wd}] -> ${oh}x${ow}`, tolerance: ROWS, work: { bytes: 2 * (p * h * wd + p * oh * ow) * 4 },
        prepare: (c) => {
          const X = c.t([1, p, h, wd], 'float32', x), DY = c.t([1, p, oh, ow], 'float32', dy), y = c.t([1, p, oh, ow], 'float32'), dx = c.t([1, p, h, wd], 'float32');
          return {
            run: () => {
              c.b.adaptiveAvgPool2d(X, y);
              c.b.adaptiveAvgPool2dBackward(DY, dx);
            },
            outputs: async () => ({ y: await c.f32(y), dx: await c.f32(dx) }),
          };
        },
      });
    }
    return out;
  },
};

/** Every kernel family; the tests check that together they call every kernel of the Backend interface. */
export const FAMILIES: readonly Family[] = [
  cast, elementwise, where, reduce, softmax, matmul, transpose, norms, embedding, attention, loss, optimizer, float8, quantize, vision,
];
