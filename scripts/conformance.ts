// npm run conformance [-- --large] [-- --all-casts] [-- --out file.json]
// Runs kernels on the WebGPU backend (whatever adapter is present: an H100, or SwiftShader) and on
// the WebAssembly reference with the same inputs and reports, per case, bit-exact agreement (casts)
// or the largest error against its bound. --large uses large shapes (for real GPUs); --all-casts
// sweeps all 2^32 float32 inputs through the GPU cast for every format and every rounding mode
// (nearest-even, toward-zero, stochastic; saturating or not), compared as chunk digests with the
// WebAssembly encoder's (scripts/cast-digests.ts). Every other kernel family's cases
// (scripts/family-cases.ts; large shapes with --large) run against both builds of the WebAssembly
// module: the one this engine loads (relaxed SIMD where it validates) here, and the other one in a
// child process (MEMFIT_WASM_SIMD=plain, or node --experimental-wasm-relaxed-simd). Exit 1 on any failure.
import { spawnSync } from 'node:child_process';
import { writeFileSync, renameSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { wasmBuild } from '../src/dtype/wasm.js';
import { WasmBackend } from '../src/backend/wasm/backend.js';
import { storageBytes } from '../src/backend/storage.js';
import { WebGPUBackend } from '../src/backend/webgpu/backend.js';
import type { Backend, TensorDType, TensorRef } from '../src/backend/backend.js';
import { numel } from '../src/backend/shape.js';
import { FORMATS } from '../src/dtype/formats.js';
import { FAMILIES, compareCase } from './family-cases.js';
import { CAST_MODES, CHUNK, CHUNKS, chunkBytes, chunkOptions, compareDigests, differingInputs, digestKey, gpuChunkDigests, readDigests } from './cast-digests.js';

const args = process.argv.slice(2);
const large = args.includes('--large');
const allCasts = args.includes('--all-casts');
const outFile = args.includes('--out') ? args[args.indexOf('--out') + 1] : 'conformance-report.json';
/** The child run for the other wasm build: the kernel families without the casts, results as JSON on stdout. */
const child = args.includes('--kernels-only-child');
const log = (s: string) => process.stderr.write(s + '\n');

interface CaseResult { name: string; ok: boolean; detail: string; seconds: number }
const results: CaseResult[] = [];

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

const wasm = new WasmBackend('reference');
const gpu = await WebGPUBackend.create();
log(gpu.description);

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

// Every other kernel family (scripts/family-cases.ts: elementwise, where, reductions, softmax,
// matmul, transpose, norms, embedding, attention, loss, optimizers, float8, quantization, vision),
// its large cases with --large, each under its tolerance rule. The cast family's own cases are the
// ones the unit tests run; here the casts are the sweeps above.
for (const f of FAMILIES.filter((x) => x.family !== 'cast')) {
  for (const c of f.cases(large ? 'large' : 'small')) await run(`${f.family}: ${c.name}`, () => compareCase(gpu, wasm, c).then((r) => [r.ok, r.detail]));
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
const report = { date: new Date().toISOString(), adapter: gpu.description, software: gpu.software, large, allCasts, passed: results.length - failed.length, failed: failed.length, families: FAMILIES.map((f) => f.family), results, ...(allCasts ? { castChunk: CHUNK, gpuCastDigests } : {}) };
const tmp = `${outFile}.tmp-${process.pid}`;
writeFileSync(tmp, JSON.stringify(report, null, 2));
renameSync(tmp, outFile);
console.log(JSON.stringify(report, null, 2));
gpu.destroy();
process.exit(failed.length ? 1 : 0);
