// npm run test:exhaustive: every one of the 2^32 float32 inputs, for every format of 8 bits or
// fewer (and the 16-bit formats with --all), through the WebAssembly encoder and the independent
// plain TypeScript reference (tests/helpers/reference.ts). Exits 1 on any mismatch.
//   --formats a,b    only these formats          --all        add float16 and bfloat16
//   --saturate       also check saturate mode    --threads N  worker processes (default: CPU count)
import { fork } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { sweep, type SweepResult } from '../tests/helpers/sweep.js';
import { NARROW_FORMATS } from '../tests/helpers/reference.js';
import { canonicalDType } from '../src/index.js';

const SLICE = 2 ** 26; // bit patterns per work item (64 slices in all)

interface Job { dtype: string; saturate: boolean; start: number; count: number }

if (process.argv.includes('--child')) {
  process.on('message', (job: Job | null) => {
    if (!job) return process.exit(0);
    const r = sweep(job.dtype, job.saturate ? { saturate: true } : {}, job.start, job.count);
    process.send!({ job, r });
  });
} else {
  const args = process.argv.slice(2);
  const opt = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  let formats = (opt('--formats')?.split(',').map(canonicalDType) ?? NARROW_FORMATS.filter((f) => !['float16', 'bfloat16'].includes(f)));
  if (args.includes('--all')) formats = [...NARROW_FORMATS];
  const modes = args.includes('--saturate') ? [false, true] : [false];
  const threads = Number(opt('--threads') ?? availableParallelism());
  const jobs: Job[] = [];
  for (const dtype of formats) for (const saturate of modes) for (let s = 0; s < 2 ** 32; s += SLICE) jobs.push({ dtype, saturate, start: s, count: SLICE });
  const total = jobs.length;
  const summary = new Map<string, SweepResult>();
  const t0 = performance.now();
  let finished = 0;
  await new Promise<void>((resolve, reject) => {
    let running = 0;
    for (let t = 0; t < Math.min(threads, jobs.length); t++) {
      // Child processes (not worker threads): they inherit the tsx loader through execArgv.
      const w = fork(new URL(import.meta.url).pathname, ['--child'], { execArgv: ['--import', 'tsx'] });
      running++;
      const next = () => w.send(jobs.shift() ?? null);
      w.on('message', ({ job, r }: { job: Job; r: SweepResult }) => {
        const key = `${job.dtype}${job.saturate ? ' saturate' : ''}`;
        const acc = summary.get(key) ?? { checked: 0, mismatches: 0, examples: [] };
        acc.checked += r.checked;
        acc.mismatches += r.mismatches;
        acc.examples.push(...r.examples.slice(0, 5 - acc.examples.length));
        summary.set(key, acc);
        finished++;
        const s = (performance.now() - t0) / 1000;
        process.stderr.write(`\r${finished}/${total} slices, ${s.toFixed(0)} s, eta ${((s / finished) * (total - finished)).toFixed(0)} s   `);
        next();
      });
      w.on('error', reject);
      w.on('exit', () => { if (--running === 0) resolve(); });
      next();
    }
  });
  process.stderr.write('\n');
  const report = Object.fromEntries([...summary].map(([k, v]) => [k, { ...v, examples: v.examples.map((e) => e.map((x) => '0x' + x.toString(16))) }]));
  const failed = [...summary.values()].some((v) => v.mismatches > 0 || v.checked !== 2 ** 32);
  console.log(JSON.stringify({ inputsPerFormat: 2 ** 32, seconds: Math.round((performance.now() - t0) / 1000), ok: !failed, results: report }, null, 2));
  process.exit(failed ? 1 : 0);
}
