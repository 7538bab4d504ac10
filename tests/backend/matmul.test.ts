// matmul on both backends against a float64 JavaScript reference: odd shapes, batches with a
// broadcast operand, all four transpose combinations, alpha, and low-precision inputs on the GPU.
// Bound: |x - ref| <= 2 * K * 2^-24 * |alpha| * sum_k |a||b| (float32 accumulation, any order).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { WebGPUBackend } from '../../src/backend/webgpu/backend.js';
import { DEFAULT_TILES, LARGE_TILES, SMALL_TILES, SOFTWARE_TILES, matmul as gpuMatmul, matmulTiles, type MatmulTiles } from '../../src/backend/webgpu/matmul.js';
import type { Backend, TensorDType, TensorRef } from '../../src/backend/backend.js';
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

async function runOn(be: Backend, c: Case, A: Float32Array, B: Float32Array, dtype: TensorDType = 'float32', tiles?: MatmulTiles): Promise<Float32Array> {
  const batch = Math.max(c.batchA, c.batchB);
  const lead = (b: number) => (b === 1 && batch > 1 ? [] : batch > 1 ? [b] : []);
  const shapeA = [...lead(c.batchA), ...(c.transA ? [c.k, c.m] : [c.m, c.k])];
  const shapeB = [...lead(c.batchB), ...(c.transB ? [c.n, c.k] : [c.k, c.n])];
  const enc = (x: Float32Array) => (dtype === 'float32' ? x : encode(x, dtype));
  const a = tensor(be, shapeA, dtype, enc(A)), b = tensor(be, shapeB, dtype, enc(B));
  const o = tensor(be, batch > 1 ? [batch, c.m, c.n] : [c.m, c.n], 'float32');
  if (tiles && be instanceof WebGPUBackend) gpuMatmul(be, a, b, o, { transA: c.transA, transB: c.transB, alpha: c.alpha }, tiles);
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

test('matmulTiles: software adapters get their tiles, unknown ones the default, big hardware adapters the large tiles', () => {
  const sw = { software: true, maxComputeWorkgroupStorageSize: 32768, maxComputeInvocationsPerWorkgroup: 256 };
  const hw = { software: false, maxComputeWorkgroupStorageSize: 32768, maxComputeInvocationsPerWorkgroup: 1024 };
  const minimal = { software: false, maxComputeWorkgroupStorageSize: 16384, maxComputeInvocationsPerWorkgroup: 256 };
  assert.is(matmulTiles(sw, 512, 512), SOFTWARE_TILES);
  assert.is(matmulTiles(sw, 8, 512), SMALL_TILES);
  assert.is(matmulTiles(minimal, 512, 512), DEFAULT_TILES);
  assert.is(matmulTiles(hw, 512, 512), LARGE_TILES);
  assert.is(matmulTiles(hw, 64, 512), DEFAULT_TILES);
  assert.is(matmulTiles(hw, 16, 512), SMALL_TILES);
});

test.run();
