// Model-file conversion benchmark (`npm run bench:convert`): bytes per second of `convertSafetensors`
// converting a float32 safetensors file (256 MiB by default: 2-D weights plus 1-D norms) to bfloat16,
// float16, float8 (per tensor, per row), MXFP4 and back to float32, next to a straightforward numpy script
// (bench/convert_numpy.py: load, astype, save) measured in the same run, with each one's peak RSS.
//
// Every conversion runs in its own child process, so its peak RSS (process.resourceUsage().maxRSS) is its
// own; the time is taken inside the child around the conversion only (read, convert, write, fsync, rename).
//
// Usage: node --import tsx bench/convert.ts [--size MiB] [--reps N] [--quick] [--no-python]
// Python: $MEMFIT_PYTHON, else python3 (numpy required; ml_dtypes for bfloat16/float8; safetensors optional).
// stdout: one JSON object, also written to bench/results/convert.json. Logs go to stderr.
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { planSafetensors } from '../src/io/safetensors.js';
import { convertSafetensors } from '../src/io/convert_model_file.js';
import type { ConvertModelOptions } from '../src/io/convert_model.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const log = (msg: string): void => void process.stderr.write(`[bench:convert] ${msg}\n`);
const MiB = 2 ** 20;
const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;

// ---- child: one conversion ------------------------------------------------------------------------

if (process.argv[2] === '--child') {
  const { input, output, options } = JSON.parse(process.argv[3]) as { input: string; output: string; options: ConvertModelOptions };
  const rssBefore = process.memoryUsage().rss;
  const t0 = performance.now();
  const report = await convertSafetensors(input, output, options);
  const seconds = (performance.now() - t0) / 1000;
  process.stdout.write(JSON.stringify({
    seconds, rssBeforeMiB: rssBefore / MiB, maxRssMiB: process.resourceUsage().maxRSS / 1024, bytesAfter: report.bytesAfter,
    worstRelRms: Math.max(...report.tensors.map((t) => t.relRmsError ?? 0)),
  }) + '\n');
  process.exit(0);
}

// ---- options ----------------------------------------------------------------------------------

let sizeMiB = 256;
let reps = 3;
let python = true;
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--quick') { sizeMiB = 32; reps = 1; }
  else if (a === '--no-python') python = false;
  else if (a === '--size') sizeMiB = Number(process.argv[++i]);
  else if (a === '--reps') reps = Number(process.argv[++i]);
  else throw new Error(`unknown argument ${a} (usage: bench/convert.ts [--size MiB] [--reps N] [--quick] [--no-python])`);
}
if (!(sizeMiB >= 8 && sizeMiB % 8 === 0)) throw new Error('--size must be a multiple of 8 MiB');
if (!(Number.isSafeInteger(reps) && reps >= 1)) throw new Error('--reps must be a positive integer');

// ---- the input file -------------------------------------------------------------------------------

const ROWS = 2048;
const COLS = 1024; // 8 MiB of float32 a matrix
const dir = mkdtempSync(path.join(os.tmpdir(), 'memfit-bench-convert-'));
const input = path.join(dir, 'model.safetensors');

function writeInput(): number {
  const layers = sizeMiB / 8;
  const specs: Array<[string, { dtype: 'float32'; shape: number[] }]> = [];
  for (let l = 0; l < layers; l++) {
    specs.push([`model.layers.${l}.mlp.weight`, { dtype: 'float32', shape: [ROWS, COLS] }]);
    specs.push([`model.layers.${l}.norm.weight`, { dtype: 'float32', shape: [COLS] }]);
  }
  const layout = planSafetensors(specs, { format: 'pt' });
  const fd = openSync(input, 'w');
  try {
    writeSync(fd, layout.header, 0, layout.header.length, 0);
    let seed = 12345;
    const buf = new Float32Array(ROWS * COLS);
    for (const { name, begin, end } of layout.order) {
      const n = (end - begin) / 4;
      const v = buf.subarray(0, n);
      if (name.endsWith('norm.weight')) v.fill(1);
      else {
        for (let i = 0; i < n; i++) {
          // Roughly N(0, 0.02^2) (sum of 4 uniforms), with a row-dependent spread as in trained weights.
          seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
          const u = (seed & 0xffff) / 65536 + (seed >>> 16) / 65536;
          seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
          const w = (seed & 0xffff) / 65536 + (seed >>> 16) / 65536;
          v[i] = (u + w - 2) * 0.035 * (1 + ((i / COLS) | 0) % 7 / 7);
        }
      }
      writeSync(fd, new Uint8Array(v.buffer, 0, n * 4), 0, n * 4, layout.header.length + begin);
    }
  } finally {
    closeSync(fd);
  }
  return layout.byteLength;
}

// ---- runs -------------------------------------------------------------------------------------

interface Run { seconds: number; maxRssMiB: number; rssBeforeMiB?: number; bytesAfter?: number; worstRelRms?: number }

function child(options: ConvertModelOptions, src = input): Run {
  const output = path.join(dir, 'out.safetensors');
  const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', JSON.stringify({ input: src, output, options })], {
    encoding: 'utf8', maxBuffer: 1 << 20, timeout: 600_000,
  });
  if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Run;
}

function py(target: string): Run & Record<string, unknown> {
  const exe = process.env.MEMFIT_PYTHON || 'python3';
  const r = spawnSync(exe, [path.join(here, 'convert_numpy.py'), input, path.join(dir, 'out-np.safetensors'), target], { encoding: 'utf8', timeout: 600_000 });
  if (r.error || r.status !== 0) throw new Error(`${exe}: ${r.error?.message ?? r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Run & Record<string, unknown>;
}

function best<T extends Run>(fn: () => T): T & { reps: number; secondsAll: number[] } {
  const runs: T[] = [];
  for (let i = 0; i < reps; i++) runs.push(fn());
  const b = runs.reduce((x, y) => (y.seconds < x.seconds ? y : x));
  return { ...b, maxRssMiB: Math.max(...runs.map((r) => r.maxRssMiB)), reps, secondsAll: runs.map((r) => round(r.seconds, 3)) };
}

const started = performance.now();
const fileBytes = writeInput();
log(`input: ${(fileBytes / MiB).toFixed(1)} MiB float32 (${sizeMiB / 8} matrices [${ROWS}, ${COLS}] and as many norms) in ${dir}; best of ${reps}`);

const TARGETS: Array<[string, ConvertModelOptions]> = [
  ['bfloat16', { to: 'bfloat16' }],
  ['float16', { to: 'float16' }],
  ['float8_e4m3fn per tensor', { to: 'float8_e4m3fn', scale: 'tensor' }],
  ['float8_e4m3fn per row', { to: 'float8_e4m3fn', scale: 'row' }],
  ['mxfp4', { to: 'mxfp4' }],
];
const memfit: Record<string, unknown> = {};
for (const [label, options] of TARGETS) {
  const r = best(() => child(options));
  memfit[label] = { ...r, mibPerSec: round(fileBytes / MiB / r.seconds), outputMiB: round((r.bytesAfter ?? 0) / MiB) };
  log(`memfit ${label}: ${round(fileBytes / MiB / r.seconds)} MiB/s (${round(r.seconds, 3)} s), peak RSS ${round(r.maxRssMiB)} MiB (before ${round(r.rssBeforeMiB ?? 0)} MiB)`);
}
// Dequantise the float8 file back to float32 (input bytes: the float8 file's).
child({ to: 'float8_e4m3fn', scale: 'row' });
const fp8 = path.join(dir, 'fp8.safetensors');
renameSync(path.join(dir, 'out.safetensors'), fp8);
const fp8Bytes = statSync(fp8).size;
{
  const r = best(() => child({ to: 'float32' }, fp8));
  memfit['float32 from float8_e4m3fn per row'] = { ...r, mibPerSec: round(fp8Bytes / MiB / r.seconds), inputMiB: round(fp8Bytes / MiB) };
  log(`memfit dequantise float8 -> float32: ${round(fp8Bytes / MiB / r.seconds)} MiB/s of input (${round(r.seconds, 3)} s), peak RSS ${round(r.maxRssMiB)} MiB`);
}

const numpy: Record<string, unknown> = {};
if (python) {
  for (const target of ['float16', 'bfloat16', 'float8_e4m3fn']) {
    try {
      const r = best(() => py(target));
      numpy[target === 'float8_e4m3fn' ? 'float8_e4m3fn per tensor' : target] = { ...r, mibPerSec: round(fileBytes / MiB / r.seconds) };
      log(`numpy ${target}: ${round(fileBytes / MiB / r.seconds)} MiB/s (${round(r.seconds, 3)} s), peak RSS ${round(r.maxRssMiB)} MiB [${r.loader}]`);
    } catch (e) {
      numpy[target] = `unavailable: ${(e as Error).message}`;
      log(`numpy ${target}: ${(e as Error).message}`);
    }
  }
} else numpy.skipped = '--no-python';

const ratios: Record<string, number> = {};
for (const [k, v] of Object.entries(numpy)) {
  const m = memfit[k] as { mibPerSec: number } | undefined;
  if (m && typeof v === 'object') ratios[`${k}: memfit / numpy`] = round(m.mibPerSec / (v as { mibPerSec: number }).mibPerSec, 2);
}

const result = {
  benchmark: 'convert',
  date: new Date().toISOString(),
  machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, platform: `${os.platform()} ${os.arch()}` },
  input: { fileMiB: round(fileBytes / MiB), matrices: sizeMiB / 8, shape: [ROWS, COLS], dtype: 'float32' },
  statistic: `best of ${reps} (seconds: read + convert + write + fsync; MiB/s of the input file); peak RSS: the child process's maxRSS`,
  memfit,
  numpy,
  ratios,
  elapsedSec: round((performance.now() - started) / 1000),
};
rmSync(dir, { recursive: true, force: true });
const json = JSON.stringify(result, null, 2);
const outDir = path.join(here, 'results');
mkdirSync(outDir, { recursive: true });
const file = path.join(outDir, 'convert.json');
writeFileSync(`${file}.${process.pid}.tmp`, json + '\n');
renameSync(`${file}.${process.pid}.tmp`, file);
log(`wrote ${path.relative(process.cwd(), file)}`);
process.stdout.write(json + '\n');
