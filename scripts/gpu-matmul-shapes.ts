// The GPU matmul at the shapes one training step of bench:train's "small" Llama runs (4096 tokens,
// hidden 512, MLP 1408, vocabulary 8192; Linear forward x @ W^T, backward dY @ W and dY^T @ X), for
// each register-tiled tile set and each subgroup-matrix tile set: TFLOP/s per shape, and the time
// a step's matmuls would take at the best and at the default tiles. JSON on stdout.
// Usage (on a GPU machine): node --import tsx scripts/gpu-matmul-shapes.ts
// (inputs are zeros: fine for the register-tiled kernel; tensor cores may run a little faster on zeros)
import { performance } from 'node:perf_hooks';
import type { TensorDType, TensorRef } from '../src/backend/backend.js';
import { storageBytes } from '../src/backend/storage.js';
import { WebGPUBackend } from '../src/backend/webgpu/backend.js';
import { DEFAULT_TILES, LARGE_TILES, matmul, matmulAdapter, matmulTiles, SOFTWARE_TILES, type MatmulTiles } from '../src/backend/webgpu/matmul.js';
import { checkTiles, matmulSgmat, SGMAT_TILES, type SgmatTiles } from '../src/backend/webgpu/matmul_sgmat.js';

const g = await WebGPUBackend.create();
const S = Number(process.env.SHAPES_DIVISOR ?? 1); // a smoke test elsewhere: SHAPES_DIVISOR=16
const T = 4096 / S, H = 512 / S, F = 1408 / S, V = 8192 / S, L = 8;
/** [name, m, k, n, transA, transB, count a step]. */
const SHAPES: [string, number, number, number, boolean, boolean, number][] = [
  ['attn proj fwd', T, H, H, false, true, 4 * L], ['attn proj dX', T, H, H, false, false, 4 * L], ['attn proj dW', H, T, H, true, false, 4 * L],
  ['mlp up fwd', T, H, F, false, true, 2 * L], ['mlp up dX', T, F, H, false, false, 2 * L], ['mlp up dW', F, T, H, true, false, 2 * L],
  ['mlp down fwd', T, F, H, false, true, L], ['mlp down dX', T, H, F, false, false, L], ['mlp down dW', H, T, F, true, false, L],
  ['lm head fwd', T, H, V, false, true, 1], ['lm head dX', T, V, H, false, false, 1], ['lm head dW', V, T, H, true, false, 1],
];
const F32: MatmulTiles[] = [DEFAULT_TILES, SOFTWARE_TILES, LARGE_TILES,
  { tileM: 128, tileN: 64, tileK: 16, threadM: 8, threadN: 8 }, { tileM: 64, tileN: 128, tileK: 16, threadM: 8, threadN: 8 },
  { tileM: 64, tileN: 64, tileK: 16, threadM: 4, threadN: 8 }, { tileM: 128, tileN: 128, tileK: 8, threadM: 8, threadN: 8 }];
const SG: SgmatTiles[] = [SGMAT_TILES, { bm: 64, bn: 64, bk: 32, wm: 32, wn: 32 }, { bm: 128, bn: 64, bk: 32, wm: 64, wn: 32 },
  { bm: 64, bn: 128, bk: 32, wm: 32, wn: 64 }, { bm: 128, bn: 256, bk: 32, wm: 64, wn: 64 }, { bm: 64, bn: 64, bk: 64, wm: 32, wn: 32 }];
const name = (t: MatmulTiles | SgmatTiles) => ('tileM' in t ? `${t.tileM}x${t.tileN}x${t.tileK}/${t.threadM}x${t.threadN}` : `${t.bm}x${t.bn}x${t.bk}/${t.wm}x${t.wn}`);

function tensor(shape: number[], dtype: TensorDType): TensorRef {
  const storage = g.alloc(storageBytes(dtype, shape[0] * shape[1]), 'data', 'shapes');
  return { storage, offset: 0, shape, dtype };
}

async function time(op: () => void, flops: number): Promise<number> {
  for (let i = 0; i < 3; i++) op();
  await g.synchronize();
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    for (let i = 0; i < 10; i++) op();
    await g.synchronize();
    best = Math.min(best, (performance.now() - t0) / 10);
  }
  return Number((flops / best / 1e9).toPrecision(4));
}

const out: Record<string, unknown> = { date: new Date().toISOString(), adapter: g.description, subgroupMatrix: g.subgroupMatrix, shapes: {} };
const totals: Record<string, { best: number; default: number }> = { float32: { best: 0, default: 0 }, float16: { best: 0, default: 0 } };
for (const [label, m, k, n, transA, transB, count] of SHAPES) {
  const flops = 2 * m * k * n;
  const row: Record<string, Record<string, number | string>> = { float32: {}, float16: {} };
  for (const dtype of ['float32', 'float16'] as const) {
    const a = tensor(transA ? [k, m] : [m, k], dtype), b = tensor(transB ? [n, k] : [k, n], dtype), o = tensor([m, n], 'float32');
    const opts = { transA, transB };
    row[dtype].default = await time(() => g.matmul(a, b, o, opts), flops);
    for (const t of F32) row[dtype][name(t)] = await time(() => matmul(g, a, b, o, opts, t), flops).catch((e: Error) => e.message.split('\n')[0]) as number;
    if (dtype === 'float16' && g.subgroupMatrix) {
      for (const t of SG) if (!checkTiles(t, g.subgroupMatrix.config)) row[dtype][`sgmat ${name(t)}`] = await time(() => matmulSgmat(g, g.subgroupMatrix!, a, b, o, opts, t), flops).catch((e: Error) => e.message.split('\n')[0]) as number;
    }
    for (const x of [a, b, o]) g.free(x.storage);
    const vals = Object.values(row[dtype]).filter((v): v is number => typeof v === 'number');
    totals[dtype].best += (count * flops) / (Math.max(...vals) * 1e9);
    totals[dtype].default += (count * flops) / ((row[dtype].default as number) * 1e9);
  }
  (out.shapes as Record<string, unknown>)[`${label} ${m}x${k}x${n} ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'} (x${count})`] = row;
  process.stderr.write(`${label} ${m}x${k}x${n}: f32 default ${row.float32.default}, f16 default ${row.float16.default} TFLOP/s; defaults ${JSON.stringify(matmulTiles(matmulAdapter(g), m, n))}\n`);
}
out.stepMatmulMs = Object.fromEntries(Object.entries(totals).map(([k, v]) => [k, { atDefaultTiles: Number(v.default.toPrecision(4)), atBestTilesPerShape: Number(v.best.toPrecision(4)) }]));
process.stderr.write(`a step's matmuls: ${JSON.stringify(out.stepMatmulMs)} ms\n`);
console.log(JSON.stringify(out, null, 2));
g.destroy();
process.exit(0);
