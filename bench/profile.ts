// `npm run bench:profile`: where a training step's time goes on the wasm backend, by backend
// method. The tiny or medium Llama (AdamW, synthetic ids) runs on a backend per thread count, the
// counts' steps interleaved so that other load slows them alike; every public method of each
// backend is wrapped to time its calls (exclusive time: a method's calls into other methods count
// there; the helpers that split calls among threads count with their caller). Prints one JSON
// object: per thread count the mean step ms over the timed steps, the ms outside any
// backend method (JavaScript: autograd, modules, the optimizer's loop), and per method ms a step,
// calls a step and its share of the step; with two counts, each method's speedup.
//   node --import tsx bench/profile.ts [--config tiny|medium] [--threads 1,2] [--steps N] [--checkpoint] [--trainer] [--memory least [--extra JSON]]
// --checkpoint wraps every decoder layer in checkpoint() (checkpointModules(model, /^layers\.\d+$/)).
// --trainer: LanguageModelTrainer steps (the sotu text, gradient clipping, the memory trace: what
// bench:train and bench:memory time) instead of the bare model's.
// --memory least: trainer steps of float32 and of memory: 'least', interleaved, at one thread
// count (--threads N, one count): where the least-memory step's extra time goes; --extra: TrainConfig
// fields merged over the preset's, e.g. '{"checkpointChunks":1}'.
import { parseArgs } from 'node:util';
import os from 'node:os';
import { createBackend } from '../src/backend/select.js';
import type { Backend } from '../src/backend/backend.js';
import { Llama } from '../src/nn/llama.js';
import { AdamW } from '../src/optim/index.js';
import { Tensor } from '../src/tensor/tensor.js';
import { tidy } from '../src/autograd/variable.js';
import { manualSeed } from '../src/random.js';
import { checkpointModules } from '../src/recompute/checkpoint.js';
import { LanguageModelTrainer, MEDIUM_LLAMA, TINY_LLAMA, type TrainConfig } from '../src/train/language_model.js';
import { ByteTextDataset } from '../src/data/byte_text.js';
import { loadSotuText } from '../src/data/sotu.js';

const { values } = parseArgs({
  options: {
    config: { type: 'string', default: 'medium' },
    threads: { type: 'string', default: '1,2' },
    steps: { type: 'string', default: '6' },
    checkpoint: { type: 'boolean', default: false },
    memory: { type: 'string' },
    extra: { type: 'string', default: '{}' },
    trainer: { type: 'boolean', default: false },
  },
});
const config = values.config === 'tiny' ? TINY_LLAMA : values.config === 'medium' ? MEDIUM_LLAMA : undefined;
const counts = values.threads.split(',').map(Number);
const steps = Number(values.steps);
let extra: Partial<TrainConfig> | undefined;
try {
  const e: unknown = JSON.parse(values.extra);
  if (e !== null && typeof e === 'object' && !Array.isArray(e)) extra = e as Partial<TrainConfig>;
} catch { /* extra stays undefined: the usage below */ }
if (!config || !counts.every((t) => Number.isInteger(t) && t >= 1) || !(Number.isInteger(steps) && steps >= 1) || (values.memory !== undefined && (values.memory !== 'least' || counts.length !== 1))
  || !extra || (values.memory === undefined && Object.keys(extra).length > 0)) {
  process.stderr.write('usage: bench/profile.ts [--config tiny|medium] [--threads 1,2] [--steps N >= 1] [--checkpoint] [--trainer] [--memory least (with one --threads count) [--extra \'{"checkpointChunks":1}\' (a JSON object of TrainConfig fields)]]\n');
  process.exit(2);
}

/** Methods not timed on their own: they split a caller's kernel among threads or stage its operands. */
const PASS_THROUGH = new Set(['runParts', 'withThreadScratch', 'parallelFor', 'run', 'withScratch', 'runElementwise', 'withMeta', 'stageAll', 'stageIn', 'stageOut']);

interface Run {
  threads: number;
  /** 'float32' or 'least' with --memory least. */
  memory?: string;
  step: () => Promise<void>;
  on: boolean;
  stepMs: number;
  ms: Map<string, number>;
  calls: Map<string, number>;
}

/** Wraps every method of the backend (own and inherited) to add its exclusive time to run.ms. */
function instrument(backend: Backend, run: Run): void {
  const stack: { child: number }[] = [];
  const target = backend as unknown as Record<string, unknown>;
  const seen = new Set<string>();
  for (let o: object | null = backend; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    for (const name of Object.getOwnPropertyNames(o)) {
      if (name === 'constructor' || seen.has(name) || PASS_THROUGH.has(name)) continue;
      seen.add(name);
      const f = Object.getOwnPropertyDescriptor(o, name)?.value;
      if (typeof f !== 'function') continue;
      target[name] = function (this: unknown, ...args: unknown[]) {
        if (!run.on) return f.apply(this, args);
        const frame = { child: 0 }, t0 = performance.now();
        stack.push(frame);
        try {
          return f.apply(this, args);
        } finally {
          stack.pop();
          const dt = performance.now() - t0;
          run.ms.set(name, (run.ms.get(name) ?? 0) + dt - frame.child);
          run.calls.set(name, (run.calls.get(name) ?? 0) + 1);
          if (stack.length) stack[stack.length - 1].child += dt;
        }
      };
    }
  }
}

const runs: Run[] = [];
const arms = values.memory ? [{ threads: counts[0], memory: 'float32' }, { threads: counts[0], memory: 'least' }] : counts.map((threads) => ({ threads, memory: undefined }));
const dataset = values.memory || values.trainer ? new ByteTextDataset(loadSotuText({ fromYear: 1990 })) : undefined;
for (const { threads, memory } of arms) {
  const backend = await createBackend({ backend: 'wasm', threads, log: null });
  const run: Run = { threads, memory, on: false, stepMs: 0, ms: new Map(), calls: new Map(), step: async () => {} };
  instrument(backend, run);
  if (dataset) {
    const trainer = new LanguageModelTrainer(backend, dataset, {
      ...config, ...(memory === 'least' ? { memory: 'least', ...extra } : {}), ...(values.checkpoint ? { checkpointModules: '^layers\\.\\d+$' } : {}), steps: 1000, warmupSteps: 1,
    });
    run.step = async () => {
      const t0 = performance.now();
      await trainer.trainStep();
      if (run.on) run.stepMs += performance.now() - t0;
    };
    runs.push(run);
    continue;
  }
  manualSeed(0);
  const model = new Llama(config.model, { backend });
  if (values.checkpoint) checkpointModules(model, /^layers\.\d+$/);
  const opt = new AdamW(model.parameters(), { lr: 1e-3 });
  const n = config.batchSize * config.seqLen;
  const ids = Tensor.from(backend, Int32Array.from({ length: n }, (_, i) => (i * 7) % config.model.vocabSize), [config.batchSize, config.seqLen], { dtype: 'int32', category: 'data' });
  run.step = async () => {
    const t0 = performance.now();
    const loss = tidy(() => model.loss(ids, ids));
    loss.backward();
    opt.step();
    opt.zeroGrad();
    await loss.data.toArray();
    loss.dispose();
    if (run.on) run.stepMs += performance.now() - t0;
  };
  runs.push(run);
}
await new Promise((r) => setTimeout(r, 300)); // workers ready
const load = [os.loadavg()[0]];
for (let s = 0; s < steps + 2; s++) {
  for (const run of s % 2 ? runs : [...runs].reverse()) {
    run.on = s >= 2; // two warm-up steps
    await run.step();
  }
}
load.push(os.loadavg()[0]);

const round = (x: number) => Math.round(x * 100) / 100;
const result = {
  date: new Date().toISOString(),
  host: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version },
  loadavg: load,
  config: values.config,
  checkpoint: values.checkpoint,
  trainer: values.trainer || values.memory !== undefined,
  memory: values.memory ?? null,
  steps,
  runs: runs.map((run) => {
    let inside = 0;
    for (const v of run.ms.values()) inside += v;
    const methods = [...run.ms].sort((a, b) => b[1] - a[1]).filter(([, v]) => v / steps >= 0.05).map(([name, v]) => ({
      name, msPerStep: round(v / steps), callsPerStep: (run.calls.get(name) ?? 0) / steps, share: round((100 * v) / run.stepMs) / 100,
    }));
    return { threads: run.threads, ...(run.memory ? { memory: run.memory } : {}), stepMs: round(run.stepMs / steps), outsideMs: round((run.stepMs - inside) / steps), methods };
  }),
  ...(values.memory ? {
    leastVsFloat32: round(runs[1].stepMs / runs[0].stepMs),
    // each method's time in the least-memory step over its time in float32's (null: not called there)
    methodLeastVsFloat32: Object.fromEntries([...runs[1].ms].filter(([, v]) => v / steps >= 1).map(([name, v]) => [name, runs[0].ms.has(name) ? round(v / runs[0].ms.get(name)!) : null])),
  } : runs.length === 2 ? {
    speedup: round(runs[0].stepMs / runs[1].stepMs),
    methodSpeedup: Object.fromEntries([...runs[0].ms].filter(([name]) => runs[1].ms.has(name) && runs[0].ms.get(name)! / steps >= 1).map(([name, v]) => [name, round(v / runs[1].ms.get(name)!)])),
  } : {}),
};
console.log(JSON.stringify(result, null, 1));
process.exit(0); // the backends' workers end with the process
