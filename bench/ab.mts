// A/B of two checkouts in one process: the tiny and medium Llama training step (AdamW) on wasm at
// 1 thread (or --threads N), the two checkouts' steps interleaved, medians after the warm-up rounds
// (at least two steps and 2 s: bench/interleave.ts),
// and whether their losses are bit-identical. Each checkout needs its build (npm run build:wasm).
//   node --import tsx bench/ab.mts <before checkout> [<after checkout>, default: this one] [--steps N] [--threads N] [--memory least]
// --memory least: LanguageModelTrainer steps (the sotu text) of the medium config with memory: 'least'
// and, as its peer, float32, on one thread: the four arms interleaved.
// stdout: one JSON object.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, warmedRounds } from './interleave.js';
const argv = process.argv.slice(2);
const stepsAt = argv.indexOf('--steps');
const stepsArg = stepsAt >= 0 ? Number(argv.splice(stepsAt, 2)[1]) : 0;
const memoryAt = argv.indexOf('--memory');
const memory = memoryAt >= 0 ? argv.splice(memoryAt, 2)[1] : undefined;
if (memory !== undefined && memory !== 'least') {
  process.stderr.write('--memory takes least\n');
  process.exit(2);
}
const threadsAt = argv.indexOf('--threads');
const threads = threadsAt >= 0 ? Number(argv.splice(threadsAt, 2)[1]) : 1;
if (argv.length < 1 || argv.length > 2 || (stepsAt >= 0 && !(Number.isInteger(stepsArg) && stepsArg > 2)) || !(Number.isInteger(threads) && threads >= 1)) {
  process.stderr.write('usage: node --import tsx bench/ab.mts <before checkout> [<after checkout>] [--steps N (> 2)] [--threads N (>= 1)] [--memory least]\n');
  process.exit(2);
}
const trees = { before: path.resolve(argv[0]), after: path.resolve(argv[1] ?? fileURLToPath(new URL('..', import.meta.url))) };
type Lib = typeof import('/work/main/src/index.js');
const libs: Record<string, Lib> = {};
for (const [k, p] of Object.entries(trees)) libs[k] = await import(`${p}/src/index.ts`);
if (memory) {
  // float32 and memory: 'least' of each tree, interleaved; the median step after one warm-up step
  const arms: { key: string; t: { trainStep(): Promise<{ ms: number }> }; ms: number[] }[] = [];
  for (const [k, p] of Object.entries(trees)) {
    const { LanguageModelTrainer, MEDIUM_LLAMA } = await import(`${p}/src/train/language_model.ts`);
    const { WasmBackend } = await import(`${p}/src/backend/wasm/backend.ts`);
    const { ByteTextDataset } = await import(`${p}/src/data/byte_text.ts`);
    const { loadSotuText } = await import(`${p}/src/data/sotu.ts`);
    const data = new ByteTextDataset(loadSotuText({ fromYear: 1990 }));
    for (const [name, cfg] of [['float32', {}], ['least', { memory: 'least' }]] as const) {
      arms.push({ key: `${k} ${name}`, t: new LanguageModelTrainer(new WasmBackend(), data, { ...MEDIUM_LLAMA, ...cfg, steps: 1000, warmupSteps: 1 }), ms: [] });
    }
  }
  const steps = stepsArg || 7;
  await warmedRounds(1, steps - 1, async (i, measured) => {
    for (const a of (i % 2 ? [...arms].reverse() : arms)) { const s = await a.t.trainStep(); if (measured) a.ms.push(s.ms); }
  });
  const ms = Object.fromEntries(arms.map((a) => [a.key, median(a.ms)]));
  console.log(JSON.stringify({ date: new Date().toISOString(), trees, memory, loadavg: (await import('node:os')).loadavg(), medianMs: ms,
    ratios: { float32: ms['after float32'] / ms['before float32'], least: ms['after least'] / ms['before least'], leastVsFloat32Before: ms['before least'] / ms['before float32'], leastVsFloat32After: ms['after least'] / ms['after float32'] } }));
  process.exit(0);
}
const cfgs = {
  tiny: [{ vocabSize: 256, hiddenSize: 64, numHiddenLayers: 2, numAttentionHeads: 4, intermediateSize: 176, maxPositionEmbeddings: 64 }, 8, 64],
  medium: [{ vocabSize: 256, hiddenSize: 256, numHiddenLayers: 4, numAttentionHeads: 8, intermediateSize: 704, maxPositionEmbeddings: 128 }, 8, 128],
} as const;
const out: Record<string, unknown> = { date: new Date().toISOString(), trees, threads, loadavg: (await import('node:os')).loadavg() };
for (const [name, [cfg, b, t]] of Object.entries(cfgs)) {
  const runs: Record<string, { step: (measured: boolean) => Promise<number>; times: number[]; losses: number[] }> = {};
  for (const [k, L] of Object.entries(libs)) {
    const be = await L.createBackend({ backend: 'wasm', threads, log: null });
    L.manualSeed(0);
    const model = new L.Llama(cfg, { backend: be });
    const opt = new L.AdamW(model.parameters(), { lr: 1e-3 });
    const ids = L.Tensor.from(be, Int32Array.from({ length: b * t }, (_, i) => (i * 7) % 256), [b, t], { dtype: 'int32' });
    const r = { times: [] as number[], losses: [] as number[], step: async (measured: boolean) => {
      const t0 = performance.now();
      const loss = L.tidy(() => model.loss(ids, ids));
      loss.backward(); opt.step(); opt.zeroGrad();
      const v = (await loss.data.toArray())[0]; loss.dispose();
      if (measured) r.times.push(performance.now() - t0);
      r.losses.push(v);
      return v;
    } };
    runs[k] = r;
  }
  const steps = stepsArg || (name === 'tiny' ? 60 : 24);
  await warmedRounds(2, steps - 2, async (i, measured) => {
    for (const k of (i % 2 ? ['after', 'before'] : ['before', 'after'])) await runs[k].step(measured);
  });
  out[name] = { beforeMs: median(runs.before.times), afterMs: median(runs.after.times), ratio: median(runs.after.times) / median(runs.before.times), sameLosses: runs.before.losses.every((v, i) => v === runs.after.losses[i]) };
}
console.log(JSON.stringify(out));
