// npm run conformance [-- --large] [-- --all-casts] [-- --out file.json]
// Runs kernels on the WebGPU backend (whatever adapter is present: an H100, or SwiftShader) and on
// the WebAssembly reference with the same inputs and reports, per case, bit-exact agreement (casts)
// or the largest error against its bound. --large uses large shapes (for real GPUs); --all-casts
// sweeps all 2^32 float32 inputs through the GPU cast for every format and every rounding mode
// (nearest-even, toward-zero, stochastic; saturating or not), compared as chunk digests with the
// WebAssembly encoder's (scripts/cast-digests.ts). The float kernels (gelu, add, sum,
// softmax, matmul, rmsNorm) run against both builds of the WebAssembly module: the one this engine
// loads (relaxed SIMD where it validates) here, and the other one in a child process
// (MEMFIT_WASM_SIMD=plain, or node --experimental-wasm-relaxed-simd). Exit 1 on any failure.
import { spawnSync } from 'node:child_process';
import { writeFileSync, renameSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { wasmBuild } from '../src/dtype/wasm.js';
import { WasmBackend } from '../src/backend/wasm/backend.js';
import { storageBytes } from '../src/backend/storage.js';
import { WebGPUBackend } from '../src/backend/webgpu/backend.js';
import type { Backend, CastOptions, TensorDType, TensorRef } from '../src/backend/backend.js';
import { numel } from '../src/backend/shape.js';
import { FORMATS } from '../src/dtype/formats.js';
import { CAST_MODES, CHUNK, CHUNKS, chunkBytes, chunkOptions, compareDigests, differingInputs, digestKey, gpuChunkDigests, readDigests } from './cast-digests.js';

const args = process.argv.slice(2);
const large = args.includes('--large');
const allCasts = args.includes('--all-casts');
const outFile = args.includes('--out') ? args[args.indexOf('--out') + 1] : 'conformance-report.json';
/** The child run for the other wasm build: float kernels only, results as JSON on stdout. */
const child = args.includes('--kernels-only-child');
const log = (s: string) => process.stderr.write(s + '\n');

interface CaseResult { name: string; ok: boolean; detail: string; seconds: number }
const results: CaseResult[] = [];

function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const r = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r()));
}

function tensor(b: Backend, shape: number[], dtype: TensorDType, data?: ArrayBufferView): TensorRef {
  const storage = b.alloc(storageBytes(dtype, numel(shape)), 'data', 'conformance');
  if (data) b.write(storage, data);
  return { storage, offset: 0, shape, dtype };
}

async function bytesOf(b: Backend, t: TensorRef): Promise<Uint8Array> {
  return b.read(t.storage, 0, storageBytes(t.dtype, numel(t.shape)));
}

async function run(name: string, fn: () => Promise<[boolean, string]>): Promise<void> {
  const t0 = performance.now();
  try {
    const [ok, detail] = await fn();
    results.push({ name, ok, detail, seconds: (performance.now() - t0) / 1000 });
  } catch (e) {
    results.push({ name, ok: false, detail: `error: ${(e as Error).message}`, seconds: (performance.now() - t0) / 1000 });
  }
  const r = results[results.length - 1];
  log(`${r.ok ? 'ok  ' : 'FAIL'} ${name}: ${r.detail} (${r.seconds.toFixed(1)} s)`);
}

/** Same kernel on both backends; float32 outputs compared against |g - w| <= abs + rel * |w|. */
async function compare(name: string, shapeOut: number[], rel: number, abs: number,
  fn: (b: Backend, out: TensorRef) => void | Promise<void>): Promise<void> {
  await run(name, async () => {
    const outs: Float32Array[] = [];
    for (const b of [gpu, wasm]) {
      const out = tensor(b, shapeOut, 'float32');
      await fn(b, out);
      const bytes = await bytesOf(b, out);
      outs.push(new Float32Array(bytes.buffer, bytes.byteOffset, numel(shapeOut)));
      b.free(out.storage);
    }
    let worst = 0;
    let bad = 0;
    for (let i = 0; i < outs[0].length; i++) {
      const g = outs[0][i], w = outs[1][i];
      if (Number.isNaN(g) && Number.isNaN(w)) continue;
      const err = Math.abs(g - w);
      const bound = abs + rel * Math.abs(w);
      worst = Math.max(worst, err / (bound || 1));
      if (!(err <= bound)) bad++;
    }
    return [bad === 0, `${outs[0].length} values, worst error / bound = ${worst.toExponential(2)}, ${bad} over`];
  });
}

const wasm = new WasmBackend('reference');
const gpu = await WebGPUBackend.create();
log(gpu.description);
const S = large ? 8 : 1;

// Casts: bit for bit, under nearest-even (the default), toward-zero and stochastic rounding
// (saturating or not). Without --all-casts, a sample spread over the 2^32 inputs (a 1/share sample
// of it in the extra modes, to keep SwiftShader runs short), compared byte for byte. With
// --all-casts, every input, chunk by chunk, as digests (scripts/cast-digests.ts): the GPU's against
// the WebAssembly encoder's in tests/fixtures/cast_digests.json.
const castN = large ? 1 << 26 : 1 << 22;
const reference = allCasts ? readDigests() : null;
/** --all-casts: this GPU's chunk digests, by format and mode (kept in the report, so that a reference made later can check them: scripts/cast-digests.ts --compare). */
const gpuCastDigests: Record<string, [number, number][]> = {};
for (const f of FORMATS.filter((x) => x.name !== 'float32' && !child)) {
  for (const mode of CAST_MODES) {
    if (reference) {
      const key = digestKey(f.name, mode);
      await run(`cast float32 -> ${f.name}${mode.label} (all 2^32 inputs)`, async () => {
        const got = (gpuCastDigests[key] = await gpuChunkDigests(gpu, f.name, mode, Array.from({ length: CHUNKS }, (_, k) => k)));
        const c = compareDigests(got, reference.chunk === CHUNK ? reference.digests[key] : undefined);
        if (c.ok || !c.bad.length) return [c.ok, c.detail];
        // Name the inputs of the first differing chunk: encode it on both sides.
        const k = c.bad[0];
        const diff = differingInputs(f.name, await chunkBytes(gpu, f.name, mode, k), await chunkBytes(wasm, f.name, mode, k), k);
        return [false, `${c.detail} (first: chunk ${k}, inputs ${diff.join(', ') || 'none found: the reference digests are stale'})`];
      });
      continue;
    }
    const count = castN / mode.share;
    await run(`cast float32 -> ${f.name}${mode.label} (${count} inputs spread over 2^32)`, async () => {
      const chunk = Math.min(count, 1 << 24);
      const stride = Math.floor(2 ** 32 / count);
      let diff = 0;
      for (let start = 0, k = 0; start < count; start += chunk, k++) {
        const bits = Uint32Array.from({ length: chunk }, (_, i) => (((start + i) * stride) + ((i * 40503) % stride)) >>> 0);
        const opts = chunkOptions(mode, k);
        const outs: Uint8Array[] = [];
        for (const b of [gpu, wasm]) {
          const x = tensor(b, [chunk], 'float32', bits);
          const o = tensor(b, [chunk], f.name);
          b.cast(x, o, opts);
          outs.push(await bytesOf(b, o));
          b.free(x.storage);
          b.free(o.storage);
        }
        for (let i = 0; i < outs[0].length; i++) if (outs[0][i] !== outs[1][i]) diff++;
      }
      return [diff === 0, `${count} inputs, ${diff} differing bytes`];
    });
  }
  if (f.bits === 16) {
    await run(`cast ${f.name} -> float32 (all 65536 codes)`, async () => {
      const codes = Uint16Array.from({ length: 65536 }, (_, i) => i);
      const outs: Uint8Array[] = [];
      for (const b of [gpu, wasm]) {
        const x = tensor(b, [65536], f.name, codes);
        const o = tensor(b, [65536], 'float32');
        b.cast(x, o);
        outs.push(await bytesOf(b, o));
      }
      const d = outs[0].findIndex((v, i) => v !== outs[1][i]);
      return [d < 0, d < 0 ? 'bit-identical' : `first difference at byte ${d}`];
    });
  }
}

// Pointwise, reductions, softmax, matmul, norms.
const n = 4096 * S;
const x = randn(n, 1), y = randn(n, 2);
const K = 64 * S, M = 96 * S, N = 80 * S;
const A = randn(M * K, 3), B = randn(K * N, 4);
await compare(`gelu [${n}]`, [n], 30 * 2 ** -23, 2 ** -20, (b, o) => b.unary('gelu', tensor(b, [n], 'float32', x), o));
await compare(`add broadcast [${n / 64}, 64] + [64]`, [n / 64, 64], 2 ** -23, 0, (b, o) => b.binary('add', tensor(b, [n / 64, 64], 'float32', x), tensor(b, [64], 'float32', y.subarray(0, 64)), o));
await compare(`sum over axis 1 of [${n / 64}, 64]`, [n / 64], 64 * 2 ** -23, 64 * 2 ** -23 * 4, (b, o) => b.reduce('sum', tensor(b, [n / 64, 64], 'float32', x), o, 1));
await compare(`softmax [${n / 256}, 256]`, [n / 256, 256], 1e-5, 1e-7, (b, o) => b.softmax(tensor(b, [n / 256, 256], 'float32', x), o, false));
await compare(`matmul ${M}x${K}x${N} float32`, [M, N], 0, 2 * K * 2 ** -24 * K, (b, o) => b.matmul(tensor(b, [M, K], 'float32', A), tensor(b, [K, N], 'float32', B), o));
await compare(`rmsNorm [${M}, ${K}]`, [M, K], 1e-5, 1e-6, (b, o) => {
  const rstd = tensor(b, [M], 'float32');
  b.rmsNorm(tensor(b, [M, K], 'float32', A), tensor(b, [K], 'float32', y.subarray(0, K)), o, rstd, 1e-6);
});

// Block-wise 8-bit quantization (bitsandbytes' dynamic map): codes, absmax and dequantized values
// bit for bit, both maps, blocks of 256 and 2048 with a short last block.
for (const block of [256, 2048]) {
  for (const signed of [true, false]) {
    const qn = block * 5 * S + 123;
    const xs = randn(qn, 7 + block).map((v, i) => (signed ? v : Math.abs(v)) * 10 ** -(i % 9));
    await run(`quantize/dequantize blockwise ${signed ? 'signed' : 'unsigned'}, block ${block}, n ${qn}`, async () => {
      const outs: Uint8Array[][] = [];
      for (const b of [gpu, wasm]) {
        const xt = tensor(b, [qn], 'float32', xs), codes = tensor(b, [qn], 'uint8'), absmax = tensor(b, [Math.ceil(qn / block)], 'float32'), out = tensor(b, [qn], 'float32');
        b.quantizeBlockwise(xt, codes, absmax, signed, block);
        b.dequantizeBlockwise(codes, absmax, out, signed, block);
        outs.push([await bytesOf(b, codes), await bytesOf(b, absmax), await bytesOf(b, out)]);
        for (const t of [xt, codes, absmax, out]) b.free(t.storage);
      }
      const diffs = outs[0].map((o, k) => o.reduce((d, v, i) => d + (v !== outs[1][k][i] ? 1 : 0), 0));
      return [diffs.every((d) => d === 0), `codes, absmax, dequantized: ${diffs.join(', ')} differing bytes`];
    });
  }
}

const simd = (relaxed: boolean) => (relaxed ? 'relaxed SIMD' : 'plain SIMD');
const here = wasmBuild().relaxedSimd;
if (child) {
  console.log(JSON.stringify({ build: simd(here), results }));
  gpu.destroy();
  process.exit(0);
}
// The other build of the module, in a child process (the module is loaded once per process).
const other = spawnSync(process.execPath, [...(here ? [] : ['--experimental-wasm-relaxed-simd']), '--import', 'tsx', fileURLToPath(import.meta.url), '--kernels-only-child', ...(large ? ['--large'] : [])], {
  encoding: 'utf8', env: { ...process.env, MEMFIT_WASM_SIMD: here ? 'plain' : '' }, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26,
});
const fromChild = other.status === 0 ? (JSON.parse(other.stdout.trim().split('\n').pop() ?? '{}') as { build: string; results: CaseResult[] }) : undefined;
for (const r of results) r.name = `${r.name} [wasm ${simd(here)}]`;
if (fromChild && fromChild.build !== simd(here)) for (const r of fromChild.results) results.push({ ...r, name: `${r.name} [wasm ${fromChild.build}]` });
else results.push({ name: `the float kernels against the ${simd(!here)} build of the module`, ok: false, detail: fromChild ? `the child process loaded the ${fromChild.build} build too` : `the child process failed (exit ${other.status})`, seconds: 0 });
const failed = results.filter((r) => !r.ok);
const report = { date: new Date().toISOString(), adapter: gpu.description, software: gpu.software, large, allCasts, passed: results.length - failed.length, failed: failed.length, results, ...(allCasts ? { castChunk: CHUNK, gpuCastDigests } : {}) };
const tmp = `${outFile}.tmp-${process.pid}`;
writeFileSync(tmp, JSON.stringify(report, null, 2));
renameSync(tmp, outFile);
console.log(JSON.stringify(report, null, 2));
gpu.destroy();
process.exit(failed.length ? 1 : 0);
