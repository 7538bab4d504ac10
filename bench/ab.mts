// A/B of two checkouts in one process: the tiny and medium Llama training step (AdamW) on wasm at
// 1 thread (or --threads N), the two checkouts' steps interleaved, medians after two warm-up steps,
// and whether their losses are bit-identical. Each checkout needs its build (npm run build:wasm).
//   node --import tsx bench/ab.mts <before checkout> [<after checkout>, default: this one] [--steps N] [--threads N]
// stdout: one JSON object.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
const argv = process.argv.slice(2);
const stepsAt = argv.indexOf('--steps');
const stepsArg = stepsAt >= 0 ? Number(argv.splice(stepsAt, 2)[1]) : 0;
const threadsAt = argv.indexOf('--threads');
const threads = threadsAt >= 0 ? Number(argv.splice(threadsAt, 2)[1]) : 1;
if (argv.length < 1 || argv.length > 2 || (stepsAt >= 0 && !(Number.isInteger(stepsArg) && stepsArg > 2)) || !(Number.isInteger(threads) && threads >= 1)) {
  process.stderr.write('usage: node --import tsx bench/ab.mts <before checkout> [<after checkout>] [--steps N (> 2)] [--threads N (>= 1)]\n');
  process.exit(2);
}
const trees = { before: path.resolve(argv[0]), after: path.resolve(argv[1] ?? fileURLToPath(new URL('..', import.meta.url))) };
type Lib = typeof import('/work/main/src/index.js');
const libs: Record<string, Lib> = {};
for (const [k, p] of Object.entries(trees)) libs[k] = await import(`${p}/src/index.ts`);
const cfgs = {
  tiny: [{ vocabSize: 256, hiddenSize: 64, numHiddenLayers: 2, numAttentionHeads: 4, intermediateSize: 176, maxPositionEmbeddings: 64 }, 8, 64],
  medium: [{ vocabSize: 256, hiddenSize: 256, numHiddenLayers: 4, numAttentionHeads: 8, intermediateSize: 704, maxPositionEmbeddings: 128 }, 8, 128],
} as const;
const out: Record<string, unknown> = { date: new Date().toISOString(), trees, threads, loadavg: (await import('node:os')).loadavg() };
for (const [name, [cfg, b, t]] of Object.entries(cfgs)) {
  const runs: Record<string, { step: () => Promise<number>; times: number[]; losses: number[] }> = {};
  for (const [k, L] of Object.entries(libs)) {
    const be = await L.createBackend({ backend: 'wasm', threads, log: null });
    L.manualSeed(0);
    const model = new L.Llama(cfg, { backend: be });
    const opt = new L.AdamW(model.parameters(), { lr: 1e-3 });
    const ids = L.Tensor.from(be, Int32Array.from({ length: b * t }, (_, i) => (i * 7) % 256), [b, t], { dtype: 'int32' });
    const r = { times: [] as number[], losses: [] as number[], step: async () => {
      const t0 = performance.now();
      const loss = L.tidy(() => model.loss(ids, ids));
      loss.backward(); opt.step(); opt.zeroGrad();
      const v = (await loss.data.toArray())[0]; loss.dispose();
      r.times.push(performance.now() - t0); r.losses.push(v);
      return v;
    } };
    runs[k] = r;
  }
  const steps = stepsArg || (name === 'tiny' ? 60 : 24);
  for (let i = 0; i < steps; i++) for (const k of (i % 2 ? ['after', 'before'] : ['before', 'after'])) await runs[k].step();
  const med = (a: number[]) => { const s = a.slice(2).sort((x, y) => x - y); return s[s.length >> 1]; };
  out[name] = { beforeMs: med(runs.before.times), afterMs: med(runs.after.times), ratio: med(runs.after.times) / med(runs.before.times), sameLosses: runs.before.losses.every((v, i) => v === runs.after.losses[i]) };
}
console.log(JSON.stringify(out));
