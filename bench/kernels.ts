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
//
// Usage: node --import tsx bench/kernels.ts [--quick] [--no-gpu]
// Statistic: the best repetition after warm-up (GPU: each repetition ends with synchronize()).
// GB/s counts bytes read + bytes written once each. stdout: one JSON object; the same JSON goes
// to bench/results/kernels.json (written atomically). Logs go to stderr.
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

const args = new Set(process.argv.slice(2));
for (const a of args) {
  if (a === '--help' || a === '-h') {
    process.stderr.write('usage: node --import tsx bench/kernels.ts [--quick] [--no-gpu]\n');
    process.exit(0);
  }
  if (a !== '--quick' && a !== '--no-gpu') throw new Error(`unknown argument ${a}`);
}
const QUICK = args.has('--quick');
const MIN_REPS = QUICK ? 2 : 3;
const MAX_REPS = QUICK ? 5 : 15;
const MIN_TIME_MS = QUICK ? 100 : 500;

const log = (msg: string): void => {
  process.stderr.write(`[bench:kernels] ${msg}\n`);
};
const round = (x: number): number => (Number.isFinite(x) ? Number(x.toPrecision(4)) : x);

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
  if (data) b.write(storage, dtype === 'float32' ? data : encode(data, dtype));
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

/** float32 s x s matmul GFLOP/s of memfit (1 thread, all threads) and TensorFlow.js wasm (XNNPACK, 1 thread), size by size. */
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
    const reps = s >= 1024 ? 5 : MAX_REPS;
    const memfit = async (be: WasmBackend) => {
      const a = tensor(be, [s, s], 'float32', randn(s * s, 1)), b = tensor(be, [s, s], 'float32', randn(s * s, 2));
      const o = tensor(be, [s, s], 'float32');
      const t = await timeIt(() => be.matmul(a, b, o), 1, reps);
      for (const x of [a, b, o]) be.free(x.storage);
      return round(flops / t.bestMs / 1e6);
    };
    const m1 = await memfit(one);
    let xnn: number | null = null;
    if (tf) {
      const t = tf;
      const a = t.tensor2d(randn(s * s, 1), [s, s]), b = t.tensor2d(randn(s * s, 2), [s, s]);
      const time = await timeIt(() => { const c = t.matMul(a, b); c.dataSync(); c.dispose(); }, 1, reps);
      a.dispose(); b.dispose();
      xnn = round(flops / time.bestMs / 1e6);
    }
    const mAll = await memfit(all);
    rows[String(s)] = {
      memfit1Thread: m1, memfitAllThreads: mAll, tfjsWasm1Thread: xnn,
      memfit1OverTfjs: xnn ? round(m1 / xnn) : null, threadSpeedup: round(mAll / m1),
    };
    log(`matmul float32 ${s}^3: memfit 1 thread ${m1}, ${all.threads} threads ${mAll}, TensorFlow.js wasm ${xnn ?? '-'} GFLOP/s`);
  }
  all.destroy();
  return { unit: 'GFLOP/s', threads: all.threads, tfjs: tf ? { version: tf.version.tfjs, backend: 'wasm (XNNPACK, SIMD, 1 thread)' } : tfNote, float32: rows };
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
    backends: {} as Record<string, unknown>,
  };
  const backends = out.backends as Record<string, unknown>;

  const w = new WasmBackend();
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
        const attention = await benchAttention(g, g.software ? [{ B: 1, H: 2, T: 128 }] : [{ B: 4, H: 8, T: 1024 }, { B: 4, H: 8, T: 4096 }], true);
        backends.webgpu = { description: g.description, software: g.software, note: g.software ? 'SwiftShader/software adapter: a CPU emulation, small sizes; not representative of GPUs' : undefined, ...res, attention };
      } finally {
        g.destroy();
      }
    } catch (e) {
      log(`webgpu: skipped (${(e as Error).message.split('\n')[0]})`);
      backends.webgpu = { skipped: (e as Error).message.split('\n')[0] };
    }
  }

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
