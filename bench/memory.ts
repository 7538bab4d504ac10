// Memory benchmark (`npm run bench:memory`): the peak bytes of one full training step (forward,
// backward, optimizer step) by category, and the step time, of the tiny Llama and the medium one
// (MEDIUM_LLAMA: hidden 256, 4 layers, 8 heads, intermediate 704, batch 8 x 128) on the wasm
// backend, for: float32 with nothing; each technique alone (bf16 autocast, bf16 weights with
// stochastic rounding, per-layer checkpointing, 8-bit AdamW, gradient release); and the full
// combination (`memory: 'least'`). Each peak as a ratio to float32's, each step time too, and the
// matmul work of a step (matmulWorkVsFloat32: multiply-adds counted in one more, untimed step).
// Statistic: the median over measured steps (after one warm-up step, which allocates the optimizer
// state) of a step's peak (LanguageModelTrainer.trainStep's peakAllocated; the breakdown by
// category at that peak from the median step). The configurations' steps are interleaved, their
// order rotating from round to round (bench/interleave.ts); stepTimeVsFloat32 is the median over
// rounds of the step's time over float32's in the same round, stepTimeVsFloat32Spread the smallest
// and largest of those ratios; each config records the load average before and after its rounds.
// Step times here are whole training steps on one thread, as bench:train --checkpoint's; that
// benchmark runs more rounds of fewer arms and is the figure for checkpointing's added time.
//
// Usage: node --import tsx bench/memory.ts [--quick] [--config tiny,medium] [--steps n] [--svg path]
// (--steps: measured steps (rounds) per configuration, default 20 on tiny and 8 on medium; --quick: 2)
// stdout: one JSON object, also written to bench/results/memory.json (atomically); --svg writes the
// stacked bar chart of peak bytes by category (the README's figure). Logs: stderr.
import os from 'node:os';
import path from 'node:path';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CATEGORIES, type Category } from '../src/backend/memory.js';
import { WasmBackend } from '../src/backend/wasm/backend.js';
import { ByteTextDataset } from '../src/data/byte_text.js';
import { loadSotuText } from '../src/data/sotu.js';
import { LanguageModelTrainer, MEDIUM_LLAMA, TINY_LLAMA, type TrainConfig } from '../src/train/language_model.js';
import { writeFileAtomic } from '../src/io/fs_sync.js';
import { stackedBarChart } from '../src/report/charts.js';
import { loadNow, median, pairedRatio, roundOrder, warmedRounds, WARMUP_MS, TRAINER_STEPS } from './interleave.js';
import { countMatmulMacs } from './matmul_work.js';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const configArg = argv.includes('--config') ? argv[argv.indexOf('--config') + 1] ?? '' : 'tiny,medium';
const svgPath = argv.includes('--svg') ? argv[argv.indexOf('--svg') + 1] : undefined;
const stepsArg = argv.includes('--steps') ? Number(argv[argv.indexOf('--steps') + 1]) : undefined;
if (stepsArg !== undefined && !(Number.isInteger(stepsArg) && stepsArg >= 1)) throw new Error(`--steps takes a positive integer (measured steps per configuration); got ${argv[argv.indexOf('--steps') + 1]}`);
const CONFIGS: Record<string, TrainConfig> = { tiny: TINY_LLAMA, medium: MEDIUM_LLAMA };
for (const c of configArg.split(',')) if (!(c in CONFIGS)) throw new Error(`--config takes tiny, medium or both (tiny,medium); got ${configArg}`);
const log = (m: string) => process.stderr.write(`[bench:memory] ${m}\n`);

/** The configurations: float32, each technique alone, the full combination. */
const SETUPS: readonly { name: string; what: string; config: Partial<TrainConfig> }[] = [
  { name: 'float32', what: 'float32 weights and AdamW state, nothing else', config: {} },
  { name: 'bf16-autocast', what: 'bfloat16 autocast (float32 weights)', config: { precision: 'bf16-mixed' } },
  { name: 'bf16-weights', what: 'bfloat16 weights with stochastic rounding (bf16-true)', config: { precision: 'bf16-true', stochasticRounding: true } },
  { name: 'checkpoint', what: 'per-layer activation checkpointing', config: { checkpointModules: '^layers\\.\\d+$' } },
  { name: 'adamw8bit', what: '8-bit AdamW state', config: { optimizer: 'adamw8bit' } },
  { name: 'release', what: 'gradient release (the step inside backward)', config: { gradientRelease: true } },
  { name: 'least', what: "all of them: memory: 'least'", config: { memory: 'least' } },
];

const round = (x: number) => Number(x.toPrecision(4));
const dataset = new ByteTextDataset(loadSotuText({ fromYear: 1990 }));
const results: Record<string, unknown>[] = [];

for (const name of configArg.split(',')) {
  const base = CONFIGS[name];
  const steps = stepsArg ?? (quick ? 2 : name === 'tiny' ? 20 : 8), warmup = 1;
  const runs = SETUPS.map((s) => {
    const t = new LanguageModelTrainer(new WasmBackend(), dataset, { ...base, ...s.config, steps: TRAINER_STEPS, warmupSteps: 1 });
    return { setup: s, t, ms: [] as number[], peaks: [] as { peak: number; memory: Record<Category, number> }[] };
  });
  log(`${name}: ${SETUPS.length} configurations, warm-up rounds (at least ${warmup}, and ${WARMUP_MS} ms) + ${steps} steps each, interleaved`);
  const loadBefore = loadNow();
  await warmedRounds(warmup, steps, async (i, measured) => {
    for (const j of roundOrder(runs.length, i)) {
      const r = runs[j];
      const s = await r.t.trainStep();
      if (measured) { r.ms.push(s.ms); r.peaks.push({ peak: s.peakAllocated, memory: s.memory }); }
    }
  });
  const loadAfter = loadNow();
  // One more (untimed) step each, its matmul multiply-adds counted: the work the recompute adds,
  // the floor under the step-time ratio (bench/matmul_work.ts).
  const macs: number[] = [];
  for (const r of runs) macs.push((await countMatmulMacs(r.t.backend, () => r.t.trainStep())).macs);
  const rows = runs.map((r, i) => {
    const sorted = [...r.peaks].sort((a, b) => a.peak - b.peak);
    const mid = sorted[Math.floor(sorted.length / 2)];
    r.t.dispose();
    r.t.backend.destroy();
    return {
      name: r.setup.name, what: r.setup.what, steps: r.ms.length,
      peakBytes: mid.peak, peakByCategory: Object.fromEntries(CATEGORIES.map((c) => [c, mid.memory[c]])) as Record<Category, number>,
      stepMsMedian: round(median(r.ms)), stepMs: r.ms.map(round), matmulMacs: macs[i],
    };
  });
  const f32 = rows[0];
  const withRatios = rows.map((r, i) => {
    const t = pairedRatio(runs[i].ms, runs[0].ms);
    return { ...r, peakVsFloat32: round(r.peakBytes / f32.peakBytes), stepTimeVsFloat32: t.median, stepTimeVsFloat32Spread: t.spread, matmulWorkVsFloat32: round(r.matmulMacs / f32.matmulMacs) };
  });
  for (const r of withRatios) log(`${name} ${r.name}: peak ${(r.peakBytes / 2 ** 20).toFixed(2)} MiB (${r.peakVsFloat32}x), step ${r.stepMsMedian} ms (${r.stepTimeVsFloat32}x, ${r.stepTimeVsFloat32Spread.join('-')}; matmul work ${r.matmulWorkVsFloat32}x)`);
  log(`${name}: load average ${loadBefore.join(' ')} before, ${loadAfter.join(' ')} after`);
  results.push({ config: name, model: base.model, batch: [base.batchSize, base.seqLen], backend: 'wasm', load: { before: loadBefore, after: loadAfter }, rows: withRatios });
}

const out = { date: new Date().toISOString(), host: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, loadavg: os.loadavg() }, results };
const json = JSON.stringify(out, null, 2);
process.stdout.write(`${json}\n`);
const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');
mkdirSync(dir, { recursive: true });
await writeFileAtomic(path.join(dir, 'memory.json'), `${json}\n`);
if (svgPath) {
  const groups = results.map((r) => ({
    title: `${r.config as string} Llama`,
    bars: (r.rows as { name: string; peakByCategory: Record<Category, number> }[]).map((row) => ({ label: row.name, bytes: row.peakByCategory })),
  }));
  await writeFileAtomic(svgPath, stackedBarChart(groups, { title: 'Peak memory of one training step, by category (wasm)' }));
  log(`wrote ${svgPath}`);
}
