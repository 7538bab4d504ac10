// `npm run bench:train:repeats`: the threads figures of bench:train, repeated. Runs
// `bench/train.ts --no-gpu --config tiny,medium` (wasm, 1 and all threads, steps interleaved) N
// times one after another (default 7), each in its own process, and writes
// bench/results/train-threads-repeats.json: each run's date, load average, median step times and
// speedups from threads, and per config the median, smallest and largest speedup. A single run's
// speedup moves by 10-20% on a shared 2-core machine; the median of several is the figure to quote.
// bench/results/train.json is left as the run with the median medium speedup (the upper of the
// two middle runs for an even count; the summary's medians likewise).
//   node --import tsx bench/train_repeats.ts [--runs N]
// stdout: the JSON (also written to the file, atomically). Logs: stderr.
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../src/io/fs_sync.js';
import { median } from './interleave.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '7' } } });
const runs = Number(values.runs);
if (!(Number.isInteger(runs) && runs >= 1)) {
  process.stderr.write('usage: bench/train_repeats.ts [--runs N >= 1]\n');
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));
const results = path.join(here, 'results');
const CONFIGS = ['tiny', 'medium'] as const;

interface TrainRow { backend: string; config: string; threads: number; stepMsMedian: number; vsOneThread?: { speedup: number } }
interface Run { date: string; loadavg: number[]; speedup: Record<string, number>; stepMsMedian: Record<string, number>; json: string }

const done: Run[] = [];
for (let i = 0; i < runs; i++) {
  const loadavg = os.loadavg().map((x) => Math.round(x * 100) / 100);
  const json = execFileSync(process.execPath, ['--import', 'tsx', path.join(here, 'train.ts'), '--no-gpu', '--config', CONFIGS.join(',')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 28 });
  const out = JSON.parse(json) as { date: string; results: TrainRow[] };
  const run: Run = { date: out.date, loadavg, speedup: {}, stepMsMedian: {}, json };
  for (const r of out.results) {
    if (!r.backend.startsWith('wasm')) continue;
    run.stepMsMedian[`${r.config}@${r.threads}`] = r.stepMsMedian;
    if (r.vsOneThread) run.speedup[r.config] = r.vsOneThread.speedup;
  }
  for (const c of CONFIGS) if (run.speedup[c] === undefined) throw new Error(`run ${i + 1}: bench:train gave no ${c} speedup (1 and all threads)`);
  done.push(run);
  process.stderr.write(`[bench:train:repeats] run ${i + 1}/${runs}: speedup ${CONFIGS.map((c) => `${c} ${run.speedup[c]}`).join(', ')}\n`);
}

const summary = Object.fromEntries(CONFIGS.map((c) => {
  const s = done.map((r) => r.speedup[c]); // every run has both (checked above)
  return [c, { median: median(s), min: Math.min(...s), max: Math.max(...s) }];
}));
const medianRun = [...done].sort((a, b) => a.speedup.medium - b.speedup.medium)[done.length >> 1];
const report = {
  what: `${runs} runs of bench/train.ts --no-gpu --config tiny,medium (wasm, 1 and all threads), one after another; bench/results/train.json is the run with the median medium speedup (${medianRun.date})`,
  host: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version },
  summary,
  runs: done.map(({ json: _json, ...r }) => r),
};
const text = `${JSON.stringify(report, null, 1)}\n`;
await writeFileAtomic(path.join(results, 'train-threads-repeats.json'), text);
await writeFileAtomic(path.join(results, 'train.json'), medianRun.json.endsWith('\n') ? medianRun.json : `${medianRun.json}\n`);
process.stdout.write(text);
