// matmul on both backends against a float64 JavaScript reference: odd shapes, batches with a
// broadcast operand, all four transpose combinations, alpha, and low-precision inputs on the GPU.
// Bound: |x - ref| <= 2 * K * 2^-24 * |alpha| * sum_k |a||b| (float32 accumulation, any order).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { WebGPUBackend } from '../../src/backend/webgpu/backend.js';
import { DEFAULT_TILES, LARGE_TILES, SMALL_TILES, SOFTWARE_TILES, matmul as gpuMatmul, matmulTiles, type MatmulTiles } from '../../src/backend/webgpu/matmul.js';
import type { Backend, TensorDType, TensorRef } from '../../src/backend/backend.js';
import { checkTiles, matmulSgmat, pickConfig, SGMAT_SMALL_TILES, SGMAT_TILES, SGMAT_WIDE_TILES, sgmatEligible, sgmatTiles, type SgmatTiles, type SubgroupMatrixSupport } from '../../src/backend/webgpu/matmul_sgmat.js';
import { storageBytes } from '../../src/backend/storage.js';
import { numel } from '../../src/backend/shape.js';
import { decode, encode } from '../../src/index.js';

const w = new WasmBackend();
let g: WebGPUBackend;

test.before(async () => {
  g = await WebGPUBackend.create();
});
test.after(() => g.destroy());

function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    out[i] = (s / 2 ** 32) * 4 - 2;
  }
  return out;
}

function tensor(b: Backend, shape: number[], dtype: TensorDType, data?: ArrayBufferView): TensorRef {
  const storage = b.alloc(storageBytes(dtype, numel(shape)), 'data', 'test');
  if (data) b.write(storage, data);
  return { storage, offset: 0, shape, dtype };
}

interface Case { batchA: number; batchB: number; m: number; k: number; n: number; transA: boolean; transB: boolean; alpha: number }

/** float64 reference and the per-element error bound. */
function reference(c: Case, A: Float32Array, B: Float32Array): { ref: Float64Array; bound: Float64Array } {
  const batch = Math.max(c.batchA, c.batchB);
  const { m, k, n } = c;
  const ref = new Float64Array(batch * m * n), bound = new Float64Array(batch * m * n);
  for (let bi = 0; bi < batch; bi++) {
    const oa = c.batchA === 1 ? 0 : bi * m * k, ob = c.batchB === 1 ? 0 : bi * k * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0, sa = 0;
        for (let p = 0; p < k; p++) {
          const a = A[oa + (c.transA ? p * m + i : i * k + p)], b = B[ob + (c.transB ? j * k + p : p * n + j)];
          s += a * b;
          sa += Math.abs(a * b);
        }
        ref[(bi * m + i) * n + j] = c.alpha * s;
        bound[(bi * m + i) * n + j] = 2 * Math.max(k, 1) * 2 ** -24 * Math.abs(c.alpha) * sa + 1e-30;
      }
    }
  }
  return { ref, bound };
}

async function runOn(be: Backend, c: Case, A: Float32Array, B: Float32Array, dtype: TensorDType = 'float32', tiles?: MatmulTiles, sgmat?: [SubgroupMatrixSupport, SgmatTiles]): Promise<Float32Array> {
  const batch = Math.max(c.batchA, c.batchB);
  const lead = (b: number) => (b === 1 && batch > 1 ? [] : batch > 1 ? [b] : []);
  const shapeA = [...lead(c.batchA), ...(c.transA ? [c.k, c.m] : [c.m, c.k])];
  const shapeB = [...lead(c.batchB), ...(c.transB ? [c.n, c.k] : [c.k, c.n])];
  const enc = (x: Float32Array) => (dtype === 'float32' ? x : encode(x, dtype));
  const a = tensor(be, shapeA, dtype, enc(A)), b = tensor(be, shapeB, dtype, enc(B));
  const o = tensor(be, batch > 1 ? [batch, c.m, c.n] : [c.m, c.n], 'float32');
  if (sgmat && be instanceof WebGPUBackend) matmulSgmat(be, sgmat[0], a, b, o, { transA: c.transA, transB: c.transB, alpha: c.alpha }, sgmat[1]);
  else if (tiles && be instanceof WebGPUBackend) gpuMatmul(be, a, b, o, { transA: c.transA, transB: c.transB, alpha: c.alpha }, tiles);
  else be.matmul(a, b, o, { transA: c.transA, transB: c.transB, alpha: c.alpha });
  const bytes = await be.read(o.storage, 0, numel(o.shape) * 4);
  for (const t of [a, b, o]) be.free(t.storage);
  return new Float32Array(bytes.buffer, bytes.byteOffset, numel(o.shape));
}

function check(got: Float32Array, ref: Float64Array, bound: Float64Array, what: string): void {
  assert.is(got.length, ref.length, what);
  for (let i = 0; i < ref.length; i++) {
    const e = Math.abs(got[i] - ref[i]);
    if (!(e <= bound[i])) assert.unreachable(`${what}: element ${i}: got ${got[i]}, want ${ref[i]} (error ${e} > bound ${bound[i]})`);
  }
}

const SHAPES: [number, number, number][] = [[1, 1, 1], [5, 3, 7], [33, 17, 65], [64, 64, 64], [70, 45, 131]];
const TRANS: [boolean, boolean][] = [[false, false], [true, false], [false, true], [true, true]];

function cases(): Case[] {
  const out: Case[] = [];
  let alpha = 1;
  for (const [m, k, n] of SHAPES) {
    for (const [transA, transB] of TRANS) {
      out.push({ batchA: 1, batchB: 1, m, k, n, transA, transB, alpha });
      alpha = alpha === 1 ? 0.37 : alpha === 0.37 ? -2 : 1;
    }
  }
  for (const [transA, transB] of TRANS) {
    out.push({ batchA: 3, batchB: 1, m: 19, k: 23, n: 37, transA, transB, alpha: 0.5 }); // broadcast B
    out.push({ batchA: 1, batchB: 3, m: 9, k: 40, n: 12, transA, transB, alpha: 1 }); // broadcast A
  }
  out.push({ batchA: 2, batchB: 2, m: 17, k: 300, n: 9, transA: false, transB: false, alpha: 1 }); // K > one wasm K block
  return out;
}

const label = (c: Case) => `${c.batchA}/${c.batchB}x${c.m}x${c.k}x${c.n} T${+c.transA}${+c.transB} alpha ${c.alpha}`;

test('wasm matmul matches the float64 reference (odd shapes, transposes, broadcast batches, alpha)', async () => {
  let seed = 1;
  for (const c of cases()) {
    const A = rand(c.batchA * c.m * c.k, seed++), B = rand(c.batchB * c.k * c.n, seed++);
    const { ref, bound } = reference(c, A, B);
    check(await runOn(w, c, A, B), ref, bound, `wasm ${label(c)}`);
  }
});

test('wasm matmul: large blocked shapes (several M, N, K blocks) match the reference', async () => {
  for (const c of [
    { batchA: 1, batchB: 1, m: 150, k: 520, n: 2061, transA: false, transB: true, alpha: 1 },
    { batchA: 1, batchB: 1, m: 97, k: 257, n: 33, transA: true, transB: false, alpha: 0.25 },
  ]) {
    const A = rand(c.m * c.k, 91), B = rand(c.k * c.n, 92);
    const { ref, bound } = reference(c, A, B);
    check(await runOn(w, c, A, B), ref, bound, `wasm ${label(c)}`);
  }
});

test('GPU matmul matches the float64 reference (odd shapes, transposes, broadcast batches, alpha)', async () => {
  let seed = 1;
  for (const c of cases()) {
    const A = rand(c.batchA * c.m * c.k, seed++), B = rand(c.batchB * c.k * c.n, seed++);
    const { ref, bound } = reference(c, A, B);
    check(await runOn(g, c, A, B), ref, bound, `gpu ${label(c)}`);
  }
});

test('GPU matmul: every tile configuration the adapter supports gives the same bounds', async () => {
  const lim = g.device.limits;
  const configs = [DEFAULT_TILES, SOFTWARE_TILES, SMALL_TILES, LARGE_TILES].filter((t) => (t.tileM + t.tileN) * t.tileK * 4 <= lim.maxComputeWorkgroupStorageSize
    && (t.tileM / t.threadM) * (t.tileN / t.threadN) <= lim.maxComputeInvocationsPerWorkgroup);
  assert.ok(configs.includes(DEFAULT_TILES), 'the default tiles fit every adapter');
  for (const tiles of configs) {
    for (const [transA, transB] of TRANS) {
      const c: Case = { batchA: 2, batchB: 1, m: 67, k: 45, n: 130, transA, transB, alpha: 0.75 };
      const A = rand(2 * c.m * c.k, 5), B = rand(c.k * c.n, 6);
      const { ref, bound } = reference(c, A, B);
      check(await runOn(g, c, A, B, 'float32', tiles), ref, bound, `gpu tiles ${JSON.stringify(tiles)} ${label(c)}`);
    }
  }
});

test('GPU matmul decodes bfloat16 / float16 inputs on load', async () => {
  for (const dt of ['bfloat16', 'float16'] as const) {
    const c: Case = { batchA: 1, batchB: 1, m: 33, k: 17, n: 65, transA: false, transB: true, alpha: 1 };
    const A = decode(encode(rand(c.m * c.k, 7), dt), dt) as Float32Array, B = decode(encode(rand(c.k * c.n, 8), dt), dt) as Float32Array;
    const { ref, bound } = reference(c, A, B);
    check(await runOn(g, c, A, B, dt), ref, bound, `gpu ${dt}`);
  }
});

/** The tensor-core kernel with its subgroup matrices emulated in plain WGSL (src/backend/webgpu/matmul_sgmat.ts). */
const EMULATED: SubgroupMatrixSupport = { config: { componentType: 'f16', resultComponentType: 'f32', M: 16, N: 16, K: 16 }, subgroupSize: 8, syntax: 'emulated' };
/** Integers in [-4, 4]: exact in every format the kernel takes, and sums of their products exact in float32. */
const ints = (n: number, seed: number) => rand(n, seed).map((v) => Math.round(v * 2));

test('tensor-core matmul (subgroup matrices emulated): every transpose, edge and whole blocks, pairs and odd sizes, batches, alpha, fp8 inputs, exact', async () => {
  const small: SgmatTiles = { bm: 32, bn: 32, bk: 16, wm: 16, wn: 16 };
  const two: SgmatTiles = { bm: 64, bn: 32, bk: 32, wm: 32, wn: 16 }; // 2 x 1 matrices a subgroup, K steps of two matrices
  // [m, k, n, transA, transB, dtype, tiles, batch A]: edge blocks in every transpose (odd sizes: no
  // float16 pairs), whole blocks (straight stores), alpha, a broadcast batch, fp8 inputs.
  const cases: [number, number, number, boolean, boolean, TensorDType, SgmatTiles, number][] = [
    [40, 24, 36, false, false, 'float16', small, 1],
    [40, 24, 36, true, false, 'float16', small, 1],
    [40, 24, 36, false, true, 'float16', small, 1],
    [33, 17, 65, true, true, 'float16', small, 2],
    [64, 32, 64, false, false, 'float16', small, 2],
    [33, 17, 65, false, true, 'float8_e4m3fn', small, 1],
    [64, 64, 32, true, false, 'float16', two, 1],
  ];
  for (const tiles of [small, two]) assert.is(checkTiles(tiles, EMULATED.config), null);
  for (const [m, k, n, transA, transB, dtype, tiles, batchA] of cases) {
    const c: Case = { batchA, batchB: 1, m, k, n, transA, transB, alpha: m === 40 ? 0.5 : 1 };
    const A = ints(batchA * m * k, m + k), B = ints(k * n, n);
    const { ref } = reference(c, A, B);
    const got = await runOn(g, c, A, B, dtype, undefined, [EMULATED, tiles]);
    for (let i = 0; i < ref.length; i++) {
      if (got[i] !== ref[i]) assert.unreachable(`${dtype} ${JSON.stringify(tiles)} ${label(c)}: element ${i}: got ${got[i]}, want ${ref[i]}`);
    }
  }
});

test('tensor-core matmul: which dtypes, which configuration, which tiles', () => {
  for (const dt of ['float16', 'float8_e4m3fn', 'float8_e5m2', 'float6_e3m2fn', 'float6_e2m3fn', 'float4_e2m1fn'] as const) assert.ok(sgmatEligible(dt, 'float16'), dt);
  for (const dt of ['float32', 'bfloat16', 'float8_e8m0fnu', 'int32'] as const) assert.not.ok(sgmatEligible(dt, 'float16'), dt);
  const cfg = (componentType: string, resultComponentType: string, M: number, N: number, K: number) => ({ componentType, resultComponentType, M, N, K });
  // The H100's list: f16 -> f16 and -> f32 at 16x16x16, 16x8x16, 16x8x8, integers at K 32.
  const h100 = [cfg('f16', 'f16', 16, 16, 16), cfg('f16', 'f32', 16, 8, 8), cfg('f16', 'f32', 16, 8, 16), cfg('f16', 'f32', 16, 16, 16), cfg('u8', 'u32', 16, 16, 32)];
  assert.equal(pickConfig(h100), cfg('f16', 'f32', 16, 16, 16));
  assert.equal(pickConfig([cfg('f16', 'f32', 16, 8, 8), cfg('f16', 'f32', 16, 8, 16)]), cfg('f16', 'f32', 16, 8, 16));
  assert.is(pickConfig([cfg('f16', 'f16', 16, 16, 16), cfg('i8', 'i32', 16, 16, 32)]), null);
  assert.match(checkTiles({ bm: 128, bn: 128, bk: 32, wm: 48, wn: 32 }, h100[3]), /whole number/);
  // The library's tiles fit the 16 x 16 x 16 shape; wide outputs get the wide blocks.
  for (const t of [SGMAT_TILES, SGMAT_WIDE_TILES, SGMAT_SMALL_TILES]) assert.is(checkTiles(t, h100[3]), null);
  // The largest blocks that still make 256 workgroups.
  assert.is(sgmatTiles(4096, 4096), SGMAT_WIDE_TILES);
  assert.is(sgmatTiles(4096, 1024), SGMAT_TILES);
  assert.is(sgmatTiles(4096, 512), SGMAT_SMALL_TILES);
  assert.is(sgmatTiles(512, 512, 16), SGMAT_TILES);
  assert.is(sgmatTiles(512, 512, 32), SGMAT_WIDE_TILES);
});

/**
 * out (starting from `start`) after matmul(..., { accumulate: true }), and after the same product into
 * a temporary added with binary('add'): the two must be the same bits.
 */
async function accumulateBoth(be: Backend, c: Case, dtype: TensorDType, start: Float32Array): Promise<[Float32Array, Float32Array]> {
  const shapeA = c.transA ? [c.k, c.m] : [c.m, c.k], shapeB = c.transB ? [c.n, c.k] : [c.k, c.n];
  const enc = (x: Float32Array) => (dtype === 'float32' ? x : encode(x, dtype));
  const a = tensor(be, shapeA, dtype, enc(rand(c.m * c.k, 11 + c.k))), b = tensor(be, shapeB, dtype, enc(rand(c.k * c.n, 12 + c.n)));
  const o = tensor(be, [c.m, c.n], 'float32', start), t = tensor(be, [c.m, c.n], 'float32'), o2 = tensor(be, [c.m, c.n], 'float32', start);
  const opts = { transA: c.transA, transB: c.transB, alpha: c.alpha };
  be.matmul(a, b, o, { ...opts, accumulate: true });
  be.matmul(a, b, t, opts);
  be.binary('add', o2, t, o2);
  const read = async (x: TensorRef) => { const u = await be.read(x.storage, 0, c.m * c.n * 4); return new Float32Array(u.buffer, u.byteOffset, c.m * c.n); };
  const r: [Float32Array, Float32Array] = [await read(o), await read(o2)];
  for (const x of [a, b, o, t, o2]) be.free(x.storage);
  return r;
}

const ACCUMULATE_CASES: Case[] = [
  { batchA: 1, batchB: 1, m: 33, k: 17, n: 65, transA: true, transB: false, alpha: 1 }, // a weight gradient's shape: dY^T X
  { batchA: 1, batchB: 1, m: 70, k: 256, n: 45, transA: true, transB: false, alpha: 0.37 }, // one whole K block, in place
  { batchA: 1, batchB: 1, m: 19, k: 257, n: 37, transA: false, transB: true, alpha: 1 }, // deeper: through a temporary
  { batchA: 1, batchB: 1, m: 600, k: 200, n: 300, transA: false, transB: false, alpha: 1 }, // bands of rows (bfloat16 A), B packed once for the threads
  { batchA: 1, batchB: 1, m: 5, k: 0, n: 7, transA: false, transB: false, alpha: 1 }, // no product: out unchanged
];

test('matmul accumulate: out += the product, the same bits as a matmul into a temporary and an add (wasm, threads, bfloat16 operands; the GPU); a non-float32 out is refused', async () => {
  const threaded = await WasmBackend.create('accumulate', { threads: 2, parallelMinWork: 1 });
  try {
    for (const [name, be] of [['wasm', w], ['wasm 2 threads', threaded], ['gpu', g]] as const) {
      for (const c of ACCUMULATE_CASES) {
        if (name === 'gpu' && c.m * c.n * c.k > 1e6) continue; // SwiftShader: small shapes
        for (const dtype of ['float32', 'bfloat16'] as const) {
          const start = rand(c.m * c.n, 99);
          const [acc, ref] = await accumulateBoth(be, c, dtype, start);
          assert.equal(new Uint32Array(acc.buffer, acc.byteOffset, acc.length), new Uint32Array(ref.buffer, ref.byteOffset, ref.length), `${name} ${dtype} ${label(c)}`);
          if (c.k === 0) assert.equal([...acc], [...start], 'k = 0: out unchanged');
          else assert.ok(acc.some((v, i) => v !== start[i]), 'the product was added');
        }
      }
      const a = tensor(be, [2, 2], 'float32'), o = tensor(be, [2, 2], 'bfloat16');
      assert.throws(() => be.matmul(a, a, o, { accumulate: true }), /accumulate adds into a float32 out, got bfloat16/);
      for (const x of [a, o]) be.free(x.storage);
    }
  } finally {
    threaded.destroy();
  }
});

test('matmulTiles: software adapters get their tiles, unknown ones the default, big hardware adapters the large tiles', () => {
  const sw = { software: true, maxComputeWorkgroupStorageSize: 32768, maxComputeInvocationsPerWorkgroup: 256 };
  const hw = { software: false, maxComputeWorkgroupStorageSize: 32768, maxComputeInvocationsPerWorkgroup: 1024 };
  const minimal = { software: false, maxComputeWorkgroupStorageSize: 16384, maxComputeInvocationsPerWorkgroup: 256 };
  assert.is(matmulTiles(sw, 512, 512), SOFTWARE_TILES);
  assert.is(matmulTiles(sw, 8, 512), SMALL_TILES);
  assert.is(matmulTiles(minimal, 512, 512), DEFAULT_TILES);
  assert.is(matmulTiles(hw, 512, 512), DEFAULT_TILES); // 16 large blocks: too few to fill a GPU
  assert.is(matmulTiles(hw, 2048, 2048), LARGE_TILES);
  assert.is(matmulTiles(hw, 512, 512, 16), LARGE_TILES);
  assert.is(matmulTiles(hw, 64, 512), DEFAULT_TILES);
  assert.is(matmulTiles(hw, 16, 512), SMALL_TILES);
});

test.run();
