// Kernel throughput benchmark (`npm run bench:kernels`): per backend present (wasm always, webgpu
// when an adapter is found; the SwiftShader software adapter is noted and run at small sizes):
// matmul GFLOP/s by input dtype (float32, bfloat16, float16; float32 out) and size, copy GB/s
// (cast float32 -> float32), cast GB/s (float32 -> bfloat16, -> float8_e4m3fn), softmax and
// rmsNorm GB/s; and, in the same run, a plain JavaScript i-k-j float32 matmul on Float32Arrays at
// 256^3 and 512^3 as the peer of the wasm figure (with the ratio). The float32 matmul peers, size by
// size in turn (256^3, 512^3, 1024^3): memfit at 1 thread, memfit at all threads (createBackend's
// default: the cores, at most 4) and TensorFlow.js's wasm backend (XNNPACK, SIMD, one thread; its
// time includes reading the result back), with the ratios. WebGPU also: attention (causal, d 64,
// float32) forward and forward + backward, ms and TFLOP/s (forward 4 B H T^2 d / 2, backward 2.5x).
// Then, per backend (`families`), every case of every kernel family's case table
// (scripts/family-cases.ts, the cases the unit tests and conformance compare; bench/families.ts):
// the large cases on wasm and hardware adapters, the small ones on software adapters; ms, and GB/s
// or GFLOP/s where the case states its work.
//
// Usage: node --import tsx bench/kernels.ts [--quick] [--no-gpu | --gpu-only]
// (--gpu-only: the WebGPU figures alone, the WebAssembly backend only as the matmul paths' reference)
// Statistic: the best repetition after warm-up (GPU: each repetition ends with synchronize()).
// GB/s counts bytes read + bytes written once each. stdout: one JSON object; the same JSON goes
// to bench/results/kernels.json (written atomically). Logs go to stderr. Stopped by SIGTERM (a time
// limit), it prints the figures gathered so far, marked `interrupted`, and leaves the results file.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import type { Backend, TensorDType, TensorRef } from '../src/backend/backend.js';
import { WasmBackend } from '../src/backend/wasm/backend.js';
import { defaultThreads } from '../src/backend/wasm/threads.js';
import { storageBytes } from '../src/backend/storage.js';
import { numel } from '../src/backend/shape.js';
import { encode } from '../src/index.js';
import { spawnSync } from 'node:child_process';
import type { WebGPUBackend } from '../src/backend/webgpu/backend.js';
import { benchFamilies, round, type FamilyTimings } from './families.js';
import { LARGE_TILES, matmul as gpuMatmulKernel, matmulAdapter, matmulTiles, type MatmulTiles } from '../src/backend/webgpu/matmul.js';
import { checkTiles, matmulSgmat, SGMAT_TILES, SGMAT_WIDE_TILES, type SgmatTiles } from '../src/backend/webgpu/matmul_sgmat.js';

const args = new Set(process.argv.slice(2));
for (const a of args) {
  if (a === '--help' || a === '-h') {
    process.stderr.write('usage: node --import tsx bench/kernels.ts [--quick] [--no-gpu | --gpu-only]\n');
    process.exit(0);
  }
  if (a !== '--quick' && a !== '--no-gpu' && a !== '--gpu-only') throw new Error(`unknown argument ${a}`);
}
const QUICK = args.has('--quick');
const MIN_REPS = QUICK ? 2 : 3;
const MAX_REPS = QUICK ? 5 : 15;
const MIN_TIME_MS = QUICK ? 100 : 500;

const log = (msg: string): void => {
  process.stderr.write(`[bench:kernels] ${msg}\n`);
};

/** Best and median milliseconds of `fn` after `warmup` calls; awaits each call (GPU: synchronize inside). */
async function timeIt(fn: () => Promise<void> | void, warmup = 1, maxReps = MAX_REPS): Promise<{ bestMs: number; medianMs: number; reps: number }> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  let total = 0;
  while (times.length < MIN_REPS || (total < MIN_TIME_MS && times.length < maxReps)) {
    const t0 = performance.now();
    await fn();
    const dt = performance.now() - t0;
    times.push(dt);
    total += dt;
  }
  times.sort((a, b) => a - b);
  return { bestMs: round(times[0]), medianMs: round(times[Math.floor((times.length - 1) / 2)]), reps: times.length };
}

function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return (s + 1) / 4294967297;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
  return out;
}

function tensor(b: Backend, shape: number[], dtype: TensorDType, data?: Float32Array): TensorRef {
  const n = numel(shape);
  const storage = b.alloc(storageBytes(dtype, n), 'data', 'bench');
  if (data) b.write(storage, dtype === 'float32' ? data : encode(data, dtype as Parameters<typeof encode>[1]));
  return { storage, offset: 0, shape, dtype };
}

interface Sizes { matmul: number[]; elements: number; rows: number }

async function benchBackend(be: Backend, sizes: Sizes, sync: boolean): Promise<Record<string, unknown>> {
  // GPU: queue `inner` launches per repetition, then synchronize (amortizes submit latency).
  const run = async (op: () => void, inner: number) => {
    for (let i = 0; i < inner; i++) op();
    if (sync) await be.synchronize();
  };
  const result: Record<string, unknown> = {};

  const matmul: Record<string, Record<string, unknown>> = {};
  for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
    matmul[dtype] = {};
    for (const s of sizes.matmul) {
      const a = tensor(be, [s, s], dtype, randn(s * s, 1)), b = tensor(be, [s, s], dtype, randn(s * s, 2));
      const o = tensor(be, [s, s], 'float32');
      const flops = 2 * s * s * s;
      const inner = sync ? Math.max(1, Math.min(8, Math.round(2 ** 24 / flops))) : 1;
      const t = await timeIt(() => run(() => be.matmul(a, b, o), inner), 1, s >= 1024 ? 5 : MAX_REPS);
      const gflops = round((flops * inner) / t.bestMs / 1e6);
      matmul[dtype][String(s)] = { gflops, gflopsMedian: round((flops * inner) / t.medianMs / 1e6), ...t, launchesPerRep: inner };
      log(`${be.kind} matmul ${dtype} ${s}^3: ${gflops} GFLOP/s`);
      for (const x of [a, b, o]) be.free(x.storage);
      // wasm: add 1024^3 when 512^3 says it takes well under ~10 s in all (8x the work, <= 6 runs).
      if (!sync && dtype === 'float32' && s === 512 && !sizes.matmul.includes(1024) && t.bestMs * 8 * 6 < 10_000) sizes.matmul.push(1024);
    }
  }
  result.matmul = matmul;

  const n = sizes.elements;
  const x = tensor(be, [n], 'float32', randn(n, 3));
  const inner = sync ? 4 : 1;
  const gbps = async (label: string, bytes: number, op: () => void) => {
    const t = await timeIt(() => run(op, inner), 1);
    const v = round((bytes * inner) / t.bestMs / 1e6);
    log(`${be.kind} ${label}: ${v} GB/s`);
    return { gbps: v, gbpsMedian: round((bytes * inner) / t.medianMs / 1e6), ...t, elements: n, launchesPerRep: inner };
  };
  const cast: Record<string, unknown> = {};
  for (const to of ['float32', 'bfloat16', 'float8_e4m3fn'] as const) {
    const o = tensor(be, [n], to);
    cast[to] = await gbps(`cast float32->${to}`, n * 4 + storageBytes(to, n), () => be.cast(x, o));
    be.free(o.storage);
  }
  result.copy = cast.float32;
  result.cast = { bfloat16: cast.bfloat16, float8_e4m3fn: cast.float8_e4m3fn };

  const rows = sizes.rows, cols = n / rows;
  const x2 = { ...x, shape: [rows, cols] };
  const o2 = tensor(be, [rows, cols], 'float32');
  result.softmax = { rows, cols, ...(await gbps(`softmax ${rows}x${cols}`, n * 8, () => be.softmax(x2, o2, false))) };
  const wgt = tensor(be, [cols], 'float32', randn(cols, 4));
  const rstd = tensor(be, [rows], 'float32');
  result.rmsNorm = { rows, cols, ...(await gbps(`rmsNorm ${rows}x${cols}`, n * 8, () => be.rmsNorm(x2, wgt, o2, rstd, 1e-6))) };
  for (const s of [x, o2, wgt, rstd]) be.free(s.storage);
  return result;
}

/** The peer: a plain JavaScript float32 matmul, i-k-j order on Float32Arrays. */
function plainMatmul(A: Float32Array, B: Float32Array, C: Float32Array, m: number, k: number, n: number): void {
  C.fill(0);
  for (let i = 0; i < m; i++) {
    const ci = i * n;
    for (let p = 0; p < k; p++) {
      const a = A[i * k + p];
      const bp = p * n;
      for (let j = 0; j < n; j++) C[ci + j] += a * B[bp + j];
    }
  }
}

/** float32 s x s matmul GFLOP/s of memfit (1 thread, all threads) and TensorFlow.js wasm (XNNPACK, 1 thread), size by size, the three in turns. */
async function matmulPeers(one: WasmBackend, sizes: number[]): Promise<Record<string, unknown>> {
  const all = await WasmBackend.create('all threads', { threads: defaultThreads() });
  let tf: typeof import('@tensorflow/tfjs') | undefined;
  let tfNote: string | undefined;
  try {
    tf = await import('@tensorflow/tfjs');
    await import('@tensorflow/tfjs-backend-wasm');
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false); // XNNPACK on one thread, as memfit's 1-thread figure
    if (!(await tf.setBackend('wasm'))) throw new Error('tf.setBackend(\'wasm\') failed');
    await tf.ready();
  } catch (e) {
    tfNote = `TensorFlow.js wasm skipped: ${(e as Error).message.split('\n')[0]}`;
    log(tfNote);
    tf = undefined;
  }
  const rows: Record<string, unknown> = {};
  for (const s of sizes) {
    const flops = 2 * s ** 3;
    // The peers take turns, one call each a round (a warm-up round first), so that a slower spell of
    // the machine slows them alike; each figure is the best round's.
    const rounds = s >= 1024 ? 7 : 15;
    const made: (() => void)[] = [];
    const memfit = (be: WasmBackend) => {
      const a = tensor(be, [s, s], 'float32', randn(s * s, 1)), b = tensor(be, [s, s], 'float32', randn(s * s, 2));
      const o = tensor(be, [s, s], 'float32');
      made.push(() => { for (const x of [a, b, o]) be.free(x.storage); });
      return () => be.matmul(a, b, o);
    };
    const peers: [string, () => void][] = [['m1', memfit(one)], ['mAll', memfit(all)]];
    if (tf) {
      const t = tf;
      const a = t.tensor2d(randn(s * s, 1), [s, s]), b = t.tensor2d(randn(s * s, 2), [s, s]);
      made.push(() => { a.dispose(); b.dispose(); });
      peers.push(['xnn', () => { const c = t.matMul(a, b); c.dataSync(); c.dispose(); }]);
    }
    const best: Record<string, number> = {};
    for (let r = 0; r <= rounds; r++) {
      for (const [name, fn] of r % 2 ? [...peers].reverse() : peers) {
        const t0 = performance.now();
        fn();
        const dt = performance.now() - t0;
        if (r > 0) best[name] = Math.min(best[name] ?? Infinity, dt);
      }
    }
    for (const free of made) free();
    const gflops = (name: string) => (best[name] === undefined ? null : round(flops / best[name] / 1e6));
    const m1 = gflops('m1')!, mAll = gflops('mAll')!, xnn = gflops('xnn');
    rows[String(s)] = {
      memfit1Thread: m1, memfitAllThreads: mAll, tfjsWasm1Thread: xnn,
      memfit1OverTfjs: xnn ? round(m1 / xnn) : null, threadSpeedup: round(mAll / m1),
    };
    log(`matmul float32 ${s}^3: memfit 1 thread ${m1}, ${all.threads} threads ${mAll}, TensorFlow.js wasm ${xnn ?? '-'} GFLOP/s`);
  }
  all.destroy();
  return { unit: 'GFLOP/s', threads: all.threads, tfjs: tf ? { version: tf.version.tfjs, backend: 'wasm (XNNPACK, SIMD, 1 thread)' } : tfNote, float32: rows };
}

/** float32 register-tiled tile sets tried at the largest size on hardware (the library's pick first). */
const F32_TILE_SETS: MatmulTiles[] = [
  LARGE_TILES,
  { tileM: 128, tileN: 128, tileK: 32, threadM: 8, threadN: 8 },
  { tileM: 128, tileN: 256, tileK: 8, threadM: 8, threadN: 8 },
  { tileM: 128, tileN: 128, tileK: 8, threadM: 8, threadN: 8 },
  { tileM: 128, tileN: 256, tileK: 16, threadM: 8, threadN: 8 },
  { tileM: 256, tileN: 128, tileK: 16, threadM: 8, threadN: 8 },
  { tileM: 64, tileN: 128, tileK: 16, threadM: 8, threadN: 8 },
];
/** Subgroup-matrix tile sets tried at the largest size (the library's picks first). */
const SGMAT_TILE_SETS: SgmatTiles[] = [
  SGMAT_TILES,
  SGMAT_WIDE_TILES,
  { bm: 128, bn: 128, bk: 32, wm: 32, wn: 64 },
  { bm: 128, bn: 128, bk: 64, wm: 64, wn: 32 },
  { bm: 256, bn: 128, bk: 32, wm: 64, wn: 64 },
  { bm: 64, bn: 64, bk: 32, wm: 32, wn: 32 },
];
const tileName = (t: MatmulTiles | SgmatTiles) => ('tileM' in t ? `${t.tileM}x${t.tileN}x${t.tileK}/${t.threadM}x${t.threadN}` : `${t.bm}x${t.bn}x${t.bk}/${t.wm}x${t.wn}`);

/**
 * The GPU matmul paths at large sizes (hardware adapters; small ones on software adapters, to check
 * the code): float32 and bfloat16 on the register-tiled kernel, float16 and float8 e4m3fn inputs on
 * subgroup matrices where the device has them (and float16 on the register-tiled kernel too), every
 * variant checked against the WebAssembly reference at a smaller size first; at the largest size a
 * sweep of tile sets; and PyTorch's torch.mm on the same GPU (bench/torch_matmul.py) when python3
 * has torch with CUDA.
 */
async function gpuMatmul(g: WebGPUBackend, w: WasmBackend): Promise<Record<string, unknown>> {
  const sizes = g.software ? [128] : [1024, 2048, 4096];
  const check = g.software ? 128 : 512;
  const sg = g.subgroupMatrix;
  type Variant = { name: string; dtype: TensorDType; transB?: boolean; run: (a: TensorRef, b: TensorRef, o: TensorRef, transB: boolean) => void; tiles?: MatmulTiles | SgmatTiles };
  const variants: Variant[] = [
    { name: 'float32 register-tiled', dtype: 'float32', run: (a, b, o, transB) => g.matmul(a, b, o, { transB }) },
    { name: 'bfloat16 register-tiled', dtype: 'bfloat16', run: (a, b, o, transB) => g.matmul(a, b, o, { transB }) },
    { name: 'float16 register-tiled', dtype: 'float16', run: (a, b, o, transB) => gpuMatmulKernel(g, a, b, o, { transB }, matmulTiles(matmulAdapter(g), a.shape[0], b.shape[1])) },
  ];
  if (sg) {
    variants.push({ name: 'float16 subgroup-matrix', dtype: 'float16', run: (a, b, o, transB) => matmulSgmat(g, sg, a, b, o, { transB }) });
    variants.push({ name: 'float16 subgroup-matrix, B transposed', dtype: 'float16', transB: true, run: (a, b, o, transB) => matmulSgmat(g, sg, a, b, o, { transB }) });
    variants.push({ name: 'float8_e4m3fn subgroup-matrix', dtype: 'float8_e4m3fn', run: (a, b, o, transB) => matmulSgmat(g, sg, a, b, o, { transB }) });
  }
  const res: Record<string, unknown> = { unit: 'TFLOP/s', subgroupMatrix: sg ?? null, probeNotes: g.probeNotes, variants: {} as Record<string, unknown> };
  const table = res.variants as Record<string, Record<string, unknown>>;
  // Scale inputs so that float8 e4m3fn keeps them in range; the same values in every dtype.
  const cache = new Map<string, Float32Array>();
  const data = (n: number, seed: number) => {
    const key = `${n}/${seed}`;
    if (!cache.has(key)) cache.set(key, randn(n, seed).map((v) => v * 0.5));
    return cache.get(key)!;
  };
  const timeMatmul = async (v: Variant, s: number, tiles?: MatmulTiles | SgmatTiles) => {
    const a = tensor(g, [s, s], v.dtype, data(s * s, 1)), b = tensor(g, [s, s], v.dtype, data(s * s, 2)), o = tensor(g, [s, s], 'float32');
    const inner = s >= 2048 ? 10 : 20;
    const op = tiles === undefined ? () => v.run(a, b, o, !!v.transB)
      : 'tileM' in tiles ? () => gpuMatmulKernel(g, a, b, o, { transB: !!v.transB }, tiles)
      : () => matmulSgmat(g, sg!, a, b, o, { transB: !!v.transB }, tiles);
    try {
      const t = await timeIt(async () => { for (let i = 0; i < inner; i++) op(); await g.synchronize(); }, 1, 8);
      return round((2 * s ** 3) / (t.bestMs / inner) / 1e9);
    } finally {
      for (const x of [a, b, o]) g.free(x.storage);
    }
  };
  for (const v of variants) {
    const row: Record<string, unknown> = {};
    table[v.name] = row;
    try {
      // Against the WebAssembly reference (same inputs): the largest error over the bound K * 2^-22 * sum |a||b|.
      const s = check;
      const A = data(s * s, 3), B = data(s * s, 4);
      const outs: Float32Array[] = [];
      for (const be of [g, w] as Backend[]) {
        const a = tensor(be, [s, s], v.dtype, A), b = tensor(be, [s, s], v.dtype, B), o = tensor(be, [s, s], 'float32');
        if (be === g) v.run(a, b, o, !!v.transB);
        else be.matmul(a, b, o, { transB: !!v.transB });
        const bytes = await be.read(o.storage, 0, s * s * 4);
        outs.push(new Float32Array(bytes.buffer, bytes.byteOffset, s * s).slice());
        for (const x of [a, b, o]) be.free(x.storage);
      }
      let worst = 0;
      const absA = A.map(Math.abs), absB = B.map(Math.abs);
      for (let i = 0; i < s; i += 7) for (let j = 0; j < s; j += 5) {
        let mag = 0;
        for (let k = 0; k < s; k++) mag += absA[i * s + k] * absB[v.transB ? j * s + k : k * s + j];
        worst = Math.max(worst, Math.abs(outs[0][i * s + j] - outs[1][i * s + j]) / (s * 2 ** -22 * mag || 1));
      }
      row.checkAgainstWasm = { size: s, worstErrorOverBound: round(worst), ok: worst <= 1 };
      for (const size of sizes) row[String(size)] = await timeMatmul(v, size);
      log(`webgpu matmul ${v.name}: ${sizes.map((x) => `${x}^3 ${row[String(x)]}`).join(', ')} TFLOP/s; error/bound ${round(worst)} at ${s}^3`);
    } catch (e) {
      row.error = (e as Error).message.split('\n').slice(0, 4).join(' | ');
      log(`webgpu matmul ${v.name}: ${row.error}`);
    }
  }
  // Tile sweeps at the largest size.
  const big = sizes[sizes.length - 1];
  const sweep = async (name: string, v: Variant | undefined, sets: (MatmulTiles | SgmatTiles)[]) => {
    if (!v) return;
    const r: Record<string, number | string> = {};
    for (const t of sets) {
      try { r[tileName(t)] = await timeMatmul(v, big, t); } catch (e) { r[tileName(t)] = `error: ${(e as Error).message.split('\n')[0]}`; }
    }
    (res.tileSweep ??= {} as Record<string, unknown>);
    (res.tileSweep as Record<string, unknown>)[`${name} ${big}^3`] = r;
    log(`webgpu ${name} tiles at ${big}^3: ${JSON.stringify(r)}`);
  };
  if (!g.software) await sweep('float32 register-tiled', variants[0], F32_TILE_SETS); // (software adapters: too slow to be worth it)
  if (sg) await sweep('float16 subgroup-matrix', variants.find((v) => v.name === 'float16 subgroup-matrix'), SGMAT_TILE_SETS.filter((t) => !checkTiles(t, sg.config)));
  // PyTorch on the same GPU.
  if (!g.software) {
    const py = spawnSync('python3', [fileURLToPath(new URL('torch_matmul.py', import.meta.url)), ...sizes.map(String)], { encoding: 'utf8', timeout: 300_000 });
    let torch: { sizes?: Record<string, Record<string, number | string>>; skipped?: string } | null = null;
    try { torch = JSON.parse(py.stdout.trim().split('\n').pop() ?? ''); } catch { torch = { skipped: `python3 bench/torch_matmul.py: ${py.error?.message ?? py.stderr.trim().split('\n').pop() ?? `exit ${py.status}`}` }; }
    res.torch = torch;
    const t = torch?.sizes?.[String(big)];
    if (t) {
      const ours = (name: string) => (table[name]?.[String(big)] as number | undefined) ?? null;
      const ratio = (x: number | null, y: number | string | undefined) => (x !== null && typeof y === 'number' ? round(x / y) : null);
      const bestF32 = Math.max(...Object.values((res.tileSweep as Record<string, Record<string, number>> | undefined)?.[`float32 register-tiled ${big}^3`] ?? {}).filter((x) => typeof x === 'number'), ours('float32 register-tiled') ?? 0);
      res.vsTorch = {
        size: big,
        float32OverCublasSgemm: ratio(ours('float32 register-tiled'), t.float32),
        float32BestTilesOverCublasSgemm: ratio(bestF32, t.float32),
        bfloat16OverCublasBf16: ratio(ours('bfloat16 register-tiled'), t.bfloat16),
        float16OverCublasF16: ratio(ours('float16 subgroup-matrix') ?? ours('float16 register-tiled'), t.float16),
        float8OverScaledMm: ratio(ours('float8_e4m3fn subgroup-matrix'), t.float8_e4m3fn_scaled_mm),
      };
      log(`vs PyTorch at ${big}^3: ${JSON.stringify(res.vsTorch)}`);
    } else log(`PyTorch peer: ${torch?.skipped ?? 'no figures'}`);
  }
  return res;
}

/**
 * Attention on one backend: causal, head dim 64, float32, forward and forward + backward, per T.
 * FLOPs: forward 4 B H T^2 d (non-causal; causal counts half), backward 2.5x the forward.
 */
async function benchAttention(be: Backend, shapes: { B: number; H: number; T: number }[], sync: boolean): Promise<Record<string, unknown>> {
  const d = 64;
  const res: Record<string, unknown> = {};
  for (const { B, H, T } of shapes) {
    const shape = [B, H, T, d];
    const n = numel(shape);
    const [q, k, v, dout] = [1, 2, 3, 4].map((seed) => tensor(be, shape, 'float32', randn(n, seed)));
    const [out, dq, dk, dv] = [0, 0, 0, 0].map(() => tensor(be, shape, 'float32'));
    const lse = tensor(be, [B, H, T], 'float32');
    const scale = 1 / Math.sqrt(d);
    const fwdFlops = (4 * B * H * T * T * d) / 2; // causal
    const fwd = () => be.attention(q, k, v, out, lse, null, scale, true);
    const both = () => { fwd(); be.attentionBackward(dout, q, k, v, out, lse, null, scale, dq, dk, dv, true); };
    const entry: Record<string, unknown> = { B, H, T, d, causal: true };
    for (const [name, op, flops] of [['forward', fwd, fwdFlops], ['forwardBackward', both, fwdFlops * 3.5]] as const) {
      const t = await timeIt(async () => { op(); if (sync) await be.synchronize(); }, 1, T >= 4096 ? 5 : MAX_REPS);
      const tflops = round(flops / t.bestMs / 1e9);
      entry[name] = { ms: t.bestMs, tflops, tflopsMedian: round(flops / t.medianMs / 1e9), ...t };
      log(`${be.kind} attention ${name} B${B} H${H} T${T} d${d} causal: ${t.bestMs} ms, ${tflops} TFLOP/s`);
    }
    res[`T${T}`] = entry;
    for (const x of [q, k, v, dout, out, dq, dk, dv, lse]) be.free(x.storage);
  }
  return res;
}

async function main(): Promise<void> {
  const out: Record<string, unknown> = {
    benchmark: 'memfit kernels',
    date: new Date().toISOString(),
    node: process.version,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    statistic: 'best repetition after warm-up (median alongside); GB/s = (bytes read + bytes written) / time',
    familiesStatistic: 'backends.*.families: per kernel family (scripts/family-cases.ts) and case, ms of one run of its kernel calls (GPU: through synchronize()), best repetition after warm-up; GB/s and GFLOP/s from the work the case states',
    backends: {} as Record<string, unknown>,
  };
  const backends = out.backends as Record<string, unknown>;
  // Stopped by a time limit (scripts/gpu-run.sh runs this under `timeout`): the figures gathered so
  // far, families case by case, on stdout (bench/results/kernels.json is left as it was).
  const onTerm = () => {
    process.stdout.write(JSON.stringify({ ...out, interrupted: 'SIGTERM: the figures gathered so far' }, null, 2) + '\n');
    log('SIGTERM: printed the figures gathered so far');
    process.exit(143);
  };
  process.once('SIGTERM', onTerm);

  const w = new WasmBackend();
  if (!args.has('--gpu-only')) {
    log('wasm backend (one core)');
    const wasmRes = await benchBackend(w, { matmul: QUICK ? [128, 256] : [128, 256, 512], elements: QUICK ? 2 ** 20 : 2 ** 22, rows: 1024 }, false);
    backends.wasm = { description: w.description, ...wasmRes };

    // Plain JS peer, same process.
    const peer: Record<string, unknown> = {};
    const mm = wasmRes.matmul as Record<string, Record<string, { gflops: number }>>;
    for (const s of [256, 512]) {
      const A = randn(s * s, 1), B = randn(s * s, 2), C = new Float32Array(s * s);
      const t = await timeIt(() => plainMatmul(A, B, C, s, s, s), 1, 5);
      const gflops = round((2 * s ** 3) / t.bestMs / 1e6);
      const wasmG = mm.float32[String(s)]?.gflops;
      peer[String(s)] = { gflops, ...t, wasmOverPlainJs: wasmG ? round(wasmG / gflops) : null };
      log(`plain JS i-k-j matmul ${s}^3: ${gflops} GFLOP/s (wasm ${wasmG ?? '-'} GFLOP/s)`);
    }
    out.plainJsMatmul = { order: 'i-k-j on Float32Arrays', float32: peer };
    out.matmulPeers = await matmulPeers(w, QUICK ? [256, 512] : [256, 512, 1024]);
    log('wasm: the kernel families\' large cases');
    const families: Record<string, FamilyTimings> = {};
    (backends.wasm as Record<string, unknown>).families = families;
    await benchFamilies(w, 'large', (fn) => timeIt(fn), { sync: false, log, into: families });
  }

  if (!args.has('--no-gpu')) {
    try {
      const { WebGPUBackend } = await import('../src/backend/webgpu/backend.js');
      const g = await WebGPUBackend.create();
      try {
        log(`${g.description}${g.software ? ' [software adapter: small sizes]' : ''}`);
        const sizes: Sizes = g.software
          ? { matmul: QUICK ? [64, 128] : [64, 128, 256], elements: 2 ** 20, rows: 256 }
          : { matmul: [256, 512, 1024, 2048], elements: 2 ** 24, rows: 4096 };
        const res = await benchBackend(g, sizes, true);
        res.matmulPaths = await gpuMatmul(g, w);
        const attention = await benchAttention(g, g.software ? [{ B: 1, H: 2, T: 128 }] : [{ B: 4, H: 8, T: 1024 }, { B: 4, H: 8, T: 4096 }], true);
        const size = g.software ? 'small' : 'large';
        log(`webgpu: the kernel families' ${size} cases`);
        const families: Record<string, FamilyTimings> = {};
        backends.webgpu = { description: g.description, software: g.software, note: g.software ? 'SwiftShader/software adapter: a CPU emulation, small sizes; not representative of GPUs' : undefined, ...res, attention, families };
        await benchFamilies(g, size, (fn) => timeIt(fn), { sync: true, log, into: families });
      } finally {
        g.destroy();
      }
    } catch (e) {
      log(`webgpu: skipped (${(e as Error).message.split('\n')[0]})`);
      backends.webgpu = { skipped: (e as Error).message.split('\n')[0] };
    }
  }

  process.off('SIGTERM', onTerm);
  const json = JSON.stringify(out, null, 2);
  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'kernels.json');
  writeFileSync(`${file}.tmp`, json + '\n');
  renameSync(`${file}.tmp`, file);
  process.stdout.write(json + '\n');
  log(`wrote ${path.relative(process.cwd(), file)}`);
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
