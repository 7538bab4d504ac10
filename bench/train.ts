// Training benchmark (`npm run bench:train`): the tiny Llama of the training proof (2 layers,
// hidden 64, byte vocabulary; batch 8 x 64) and a medium one (4 layers, hidden 256, 8 heads,
// intermediate 704; batch 8 x 128) on the wasm backend at 1 thread and at all threads (the default
// of createBackend: the cores, at most 4), their steps interleaved, with the speedup from threads,
// and the tiny one on WebGPU
// when there is an adapter: tokens/s, step time, peak
// memory by category, the extra memory a training forward holds (saved activations) and the same
// forward under inferenceMode, the quantities of docs/torch_h100_anchors.md. On a hardware
// GPU `--config small` (or `seedlike`) runs the anchors' shapes next to PyTorch's H100 figures (the
// anchor* fields). After the WebGPU runs on a hardware GPU, the same-run PyTorch peer
// (bench/torch_train.py: PyTorch eager, same model, batch, AdamW and precision, on the same GPU)
// runs when a Python with torch sees CUDA (else the log says why), and each WebGPU AdamW result
// gets `torch` and tokensPerSecondVsTorch, peakVsTorch, trainingForwardHeldVsTorch; --no-torch skips it.
//
// Usage: node --import tsx bench/train.ts [--quick] [--no-gpu] [--no-torch] [--config tiny,medium|small|seedlike] [--threads 1,all] [--precision 32-true,bf16-mixed,16-mixed,bf16-true,16-true,fp8]
//        [--optimizer adamw,adamw8bit,adamw8bit-paged] (each optimizer in one run, with its ratios to adamw)
//        node --import tsx bench/train.ts --checkpoint none,layers,selective,chunks,plan50,layers-logits,regexes [--quick]
//        (activation checkpointing on wasm, tiny and medium Llama: ratios to none, and the planner against the
//        fastest hand-written regex that fits its budget; JSON in bench/results/train-checkpoint.json)
//        node --import tsx bench/train.ts --model resnet152|bert-base|llama-small [--autocast bf16] [--batch N] [--steps N]
//        (full-size models: bench/train_models.ts; JSON in bench/results/train-<model>.json)
// Statistic: the median step after warm-up steps (at least 2 s of them: WARMUP_MS of
// bench/interleave.ts; each step ends with the loss read back); the
// same median of each backend.stats() counter over a step (device allocations, dispatches,
// compute passes, submits, bytes uploaded, uniform buffers and bind groups created).
// stdout: one JSON object, also written to bench/results/train.json (atomically). Logs: stderr.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backend, BackendStats } from '../src/backend/backend.js';
import { CATEGORIES } from '../src/backend/memory.js';
import { WasmBackend } from '../src/backend/wasm/backend.js';
import { defaultThreads } from '../src/backend/wasm/threads.js';
import { inferenceMode, tidy } from '../src/autograd/variable.js';
import { ByteTextDataset } from '../src/data/byte_text.js';
import { loadSotuText } from '../src/data/sotu.js';
import { Tensor } from '../src/tensor/tensor.js';
import { LanguageModelTrainer, autoCheckpointChunks, MEDIUM_LLAMA, TINY_LLAMA, TRAIN_OPTIMIZERS, TRAIN_PRECISIONS, type TrainConfig, type TrainOptimizer, type TrainPrecision } from '../src/train/language_model.js';
import { Generator } from '../src/random.js';
import { BENCH_MODELS, benchModel, type BenchModel } from './train_models.js';
import { hostBackend } from '../src/optim/paged.js';
import { findTorchPython, runTorchPeer, torchTrainArgs, type TorchPeerOutput } from './torch_peer.js';
import { loadNow, median, pairedRatio, roundOrder, warmedRounds, TRAINER_STEPS } from './interleave.js';
import { countMatmulMacs } from './matmul_work.js';
import { fastestFitting, regexChoices, type RegexChoice } from './checkpoint_choices.js';

const argv = process.argv.slice(2);
const flag = (f: string) => argv.includes(f);
const configArg = argv.includes('--config') ? argv[argv.indexOf('--config') + 1] ?? '' : 'tiny,medium';
const configNames = configArg.split(',');
/** The anchors' configs (docs/torch_h100_anchors.md): hardware GPUs only, one per run. */
const ANCHOR_CONFIGS = ['small', 'seedlike'];
for (const c of configNames) if (!['tiny', 'medium', ...ANCHOR_CONFIGS].includes(c) || (ANCHOR_CONFIGS.includes(c) && configNames.length > 1)) throw new Error(`--config takes tiny, medium (or both: tiny,medium), small or seedlike; got ${configArg}`);
const configName = configNames[0];
const threadsArg = argv.includes('--threads') ? argv[argv.indexOf('--threads') + 1] ?? '' : '1,all';
const threadCounts = threadsArg.split(',').map((t) => (t === 'all' ? defaultThreads() : Number(t)));
for (const t of threadCounts) if (!Number.isInteger(t) || t < 1) throw new Error(`--threads takes a comma-separated list of counts or 'all'; got ${threadsArg}`);
const log = (m: string) => process.stderr.write(`[bench:train] ${m}\n`);
if (argv.includes('--model')) { // the full-size models (bench/train_models.ts)
  await benchModels(argv);
  process.exit(0);
}
if (argv.includes('--checkpoint')) { // activation checkpointing (src/recompute)
  await benchCheckpoint(argv);
  process.exit(0);
}

/**
 * The --checkpoint modes: none, per-layer checkpointing, per-layer under saveMatmuls, per-layer in
 * chunks of the batch (checkpointChunks 'auto'), the planner at 50% of the unplanned activation
 * memory, per-layer with the logits recomputed too (recomputeLogits), and 'regexes': one arm per
 * hand-written choice of bench/checkpoint_choices.ts, each wrapped with checkpointModules.
 */
type CheckpointMode = 'none' | 'layers' | 'selective' | 'chunks' | 'plan50' | 'layers-logits' | 'regexes';

/**
 * --checkpoint none,layers,selective,chunks,plan50,layers-logits,regexes [--quick]: for the tiny and the medium Llama on wasm,
 * one trainer per mode, their training steps interleaved in rounds whose order rotates (so the
 * shared machine's load falls on every mode alike; bench/interleave.ts); per mode the median step
 * time, the median step peak and the saved-activation bytes a training forward holds, with their
 * ratios to none (the step time's: the median of the per-round ratios, with their range), and
 * (planVsBestRegex) plan50's step time against the fastest of every layer and the 'regexes' arms
 * whose peak fits plan50's budget, paired the same way. The
 * timed rounds run without observers; the split of a step into forward, backward and recompute
 * comes from further rounds under an op observer (its two clock reads an op, about 165 ops a tiny
 * step, are kept out of the timed steps).
 */
async function benchCheckpoint(args: string[]): Promise<void> {
  const CHECKPOINT_MODES: readonly CheckpointMode[] = ['none', 'layers', 'selective', 'chunks', 'plan50', 'layers-logits', 'regexes'];
  const round = (x: number) => Number(x.toPrecision(4));
  const modes = (args[args.indexOf('--checkpoint') + 1] ?? '').split(',') as CheckpointMode[];
  for (const m of modes) if (!CHECKPOINT_MODES.includes(m)) throw new Error(`--checkpoint takes a comma-separated list of ${CHECKPOINT_MODES.join(', ')}; got ${m}`);
  for (const a of args) if (!['--checkpoint', modes.join(','), '--quick'].includes(a)) throw new Error(`unknown argument ${a}; usage: bench/train.ts --checkpoint ${CHECKPOINT_MODES.join(',')} [--quick]`);
  const quick = args.includes('--quick');
  const { checkpointModules } = await import('../src/recompute/checkpoint.js');
  const { saveMatmuls } = await import('../src/recompute/policies.js');
  const { planCheckpoints, MemoryBudgetError } = await import('../src/recompute/plan.js');
  const { withOpObserver } = await import('../src/backend/op_context.js');
  /**
   * Where a step's time goes (wasm runs ops synchronously, so an op's wall time is its work):
   * forward ops before backward begins (the loss included), backward ops (their recompute
   * included), and the forward ops recomputed inside backward.
   */
  const phases = () => {
    const stack: { op: string; t0: number }[] = [];
    let inBackward = false;
    const ms = { forward: 0, backward: 0, recompute: 0 };
    const observer = {
      begin: (c: { op: string }) => { if (c.op.endsWith('.backward')) inBackward = true; stack.push({ op: c.op, t0: performance.now() }); },
      end: () => {
        const { op, t0 } = stack.pop()!, dt = performance.now() - t0, bw = op.endsWith('.backward');
        if (stack.length === 0) { if (bw) ms.backward += dt; else if (!inBackward) ms.forward += dt; }
        else if (!bw && inBackward && stack.every((s) => s.op.endsWith('.backward'))) ms.recompute += dt;
      },
    };
    return { ms, observe: <T>(fn: () => T) => withOpObserver(observer, fn) };
  };
  const dataset = new ByteTextDataset(loadSotuText({ fromYear: 1990 }));
  const results: Record<string, unknown>[] = [];
  for (const [name, config] of [['tiny', TINY_LLAMA], ['medium', MEDIUM_LLAMA]] as const) {
    const steps = quick ? 3 : name === 'tiny' ? 30 : 10, warmup = 1, splitRounds = quick ? 1 : name === 'tiny' ? 9 : 3;
    const rows: Record<string, unknown>[] = [];
    const trainers: { mode: CheckpointMode; t: LanguageModelTrainer; ms: number[]; peaks: number[]; split: { forward: number; backward: number; recompute: number }[]; macs?: number; row: Record<string, unknown> }[] = [];
    // 'regexes' is one arm per hand-written choice (bench/checkpoint_choices.ts)
    const arms = modes.flatMap((mode): { mode: CheckpointMode; choice?: RegexChoice }[] => (mode === 'regexes' ? regexChoices(config.model.numHiddenLayers).map((choice) => ({ mode, choice })) : [{ mode }]));
    for (const { mode, choice } of arms) {
      const backend = new WasmBackend(); // one per mode: each one's memory accounting is its own
      const t = new LanguageModelTrainer(backend, dataset, { ...config, recomputeLogits: mode === 'layers-logits', steps: TRAINER_STEPS, warmupSteps: 1 });
      const row: Record<string, unknown> = { config: name, mode };
      log(`${name}: ${mode}${choice ? ` ${choice.name}` : ''} ...`);
      if (choice) Object.assign(row, { choice: choice.name, regex: choice.regex, checkpointed: checkpointModules(t.model, new RegExp(choice.regex)).wrapped });
      else if (mode === 'layers' || mode === 'layers-logits') row.checkpointed = checkpointModules(t.model, /^layers\.\d+$/).wrapped;
      else if (mode === 'selective') row.checkpointed = checkpointModules(t.model, /^layers\.\d+$/, { policy: saveMatmuls }).wrapped;
      else if (mode === 'chunks') {
        row.chunks = autoCheckpointChunks(config);
        row.checkpointed = checkpointModules(t.model, /^layers\.\d+$/, { chunks: row.chunks as number }).wrapped;
      }
      else if (mode === 'plan50') {
        const b = dataset.batch(new Generator(config.seed + 2), config.batchSize, config.seqLen), shape = [config.batchSize, config.seqLen];
        const ids = Tensor.from(backend, b.ids, shape, { dtype: 'int32' }), targets = Tensor.from(backend, b.targets, shape, { dtype: 'int32' });
        try {
          // The optimizer state the first step allocates counts in the budget.
          const reserveBytes = t.optimizer.stateBytesToCome();
          const plan = await planCheckpoints(t.model, { ids, targets }, { budget: '50%', repeats: 1, warmup: 0, forwardRepeats: 3, measure: false, reserveBytes, log: (l) => log(`  ${l}`) });
          Object.assign(row, {
            checkpointed: plan.chosen.map((c) => c.name), planMethod: plan.method, budgetBytes: plan.budgetBytes,
            predictedPeakBytes: plan.predictedPeakBytes, unplannedPeakBytes: plan.unplannedPeakBytes, minimumPeakBytes: plan.minimumPeakBytes,
          });
        } catch (e) {
          if (!(e instanceof MemoryBudgetError)) throw e;
          Object.assign(row, { infeasible: e.message, budgetBytes: e.budgetBytes, minimumPeakBytes: e.minimumPeakBytes, unplannedPeakBytes: e.unplannedPeakBytes });
          log(`${name}: plan50 infeasible: ${e.message}`);
        } finally {
          ids.dispose(); targets.dispose();
        }
      }
      trainers.push({ mode, t, ms: [], peaks: [], split: [], row });
    }
    // Interleaved steps: every trainer's step i runs before any trainer's step i + 1, the order
    // rotating from round to round (bench/interleave.ts).
    const loadBefore = loadNow();
    await warmedRounds(warmup, steps, async (i, measured) => {
      for (const j of roundOrder(trainers.length, i)) {
        const x = trainers[j];
        if (x.row.infeasible) continue;
        const r = await x.t.trainStep();
        if (measured) { x.ms.push(r.ms); x.peaks.push(r.peakAllocated); }
      }
    });
    const loadAfter = loadNow();
    // The split of a step (untimed rounds, under the phase observer).
    for (let i = 0; i < splitRounds; i++) {
      for (const j of roundOrder(trainers.length, i)) {
        const x = trainers[j];
        if (x.row.infeasible) continue;
        const p = phases();
        const { macs } = await countMatmulMacs(x.t.backend, () => p.observe(() => x.t.trainStep())); // the step's ops run before its first await
        x.split.push(p.ms);
        x.macs = macs;
      }
    }
    const stepMs = new Map(trainers.map((x) => [x.row, x.ms]));
    for (const x of trainers) {
      if (!x.row.infeasible) {
        const { t } = x, backend = t.backend, mem = backend.memory;
        const b = dataset.batch(t.dataGenerator, config.batchSize, config.seqLen), shape = [config.batchSize, config.seqLen];
        const ids = Tensor.from(backend, b.ids, shape, { dtype: 'int32' }), targets = Tensor.from(backend, b.targets, shape, { dtype: 'int32' });
        const base = mem.memoryAllocated();
        const loss = tidy(() => t.model.loss(ids, targets, t.lossOptions()));
        const held = mem.memoryAllocated() - base;
        loss.releaseGraph(); loss.dispose(); ids.dispose(); targets.dispose();
        const part = (k: 'forward' | 'backward' | 'recompute') => round(median(x.split.map((s) => s[k])));
        Object.assign(x.row, {
          steps: x.ms.length, stepMsMedian: round(median(x.ms)), stepMs: x.ms.map(round), peakAllocatedBytes: median(x.peaks), savedActivationBytes: held,
          // forward: the ops of the forward and the loss; backward: the backward ops, recompute included (the rest of a step is the optimizer and clipping).
          forwardMsMedian: part('forward'), backwardMsMedian: part('backward'), recomputeMsMedian: part('recompute'),
          // the multiply-adds of the step's matmuls (bench/matmul_work.ts): the work the recompute adds
          matmulMacs: x.macs,
        });
      }
      x.t.dispose();
      x.t.backend.destroy();
      rows.push(x.row);
    }
    const none = rows.find((r) => r.mode === 'none');
    const plan = rows.find((r) => r.mode === 'plan50' && r.budgetBytes !== undefined);
    if (plan) for (const r of rows) if (r.peakAllocatedBytes !== undefined) r.fitsPlan50Budget = (r.peakAllocatedBytes as number) <= (plan.budgetBytes as number);
    // The planner against the hand-written regexes (every layer and the 'regexes' arms) that fit its budget.
    let planVsBestRegex: Record<string, unknown> | undefined;
    if (plan && plan.peakAllocatedBytes !== undefined) {
      const budget = plan.budgetBytes as number;
      const regexRows = rows.filter((r) => (r.mode === 'layers' || r.mode === 'regexes') && r.peakAllocatedBytes !== undefined);
      const measured = regexRows.map((r) => ({ name: (r.choice as string | undefined) ?? 'every layer', regex: (r.regex as string | undefined) ?? '^layers\\.\\d+$', stepMs: stepMs.get(r)!, peakBytes: r.peakAllocatedBytes as number, macs: r.matmulMacs as number }));
      const fitting = measured.filter((m) => m.peakBytes <= budget);
      const best = fastestFitting(measured, budget);
      planVsBestRegex = { candidates: measured.length, fitting: fitting.length, best: best?.name ?? null };
      if (best) {
        const t = pairedRatio(stepMs.get(plan)!, best.stepMs);
        // and free of timing noise: the plan's matmul work against the least of the fitting regexes'
        const leastWork = fitting.reduce((a, b) => (b.macs < a.macs ? b : a));
        Object.assign(planVsBestRegex, { regex: best.regex, stepMs: t.median, stepMsSpread: t.spread, leastWork: leastWork.name, matmulMacs: round((plan.matmulMacs as number) / leastWork.macs) });
        log(`${name}: plan50 ${t.median}x the fastest fitting regex (${best.name}; rounds ${t.spread.join('-')}), ${String(planVsBestRegex.matmulMacs)}x the matmul work of the least-work one (${leastWork.name})`);
      } else if (measured.length > 0) log(`${name}: none of ${measured.length} hand-written regexes fits the plan50 budget`);
    }
    for (const r of rows) {
      if (!none || r === none || r.infeasible) continue;
      const t = pairedRatio(stepMs.get(r)!, stepMs.get(none)!);
      const vsNone = {
        savedActivationBytes: round((r.savedActivationBytes as number) / (none.savedActivationBytes as number)),
        peakAllocatedBytes: round((r.peakAllocatedBytes as number) / (none.peakAllocatedBytes as number)),
        stepMs: t.median, stepMsSpread: t.spread,
        // the floor under stepMs while matmuls are most of a step: the same kernels, this much more work
        matmulMacs: round((r.matmulMacs as number) / (none.matmulMacs as number)),
      };
      r.vsNone = vsNone;
      log(`${name} ${r.mode as string}${r.choice ? ` ${r.choice as string}` : ""}: step ${t.median}x none (rounds ${t.spread.join('-')}; matmul work ${vsNone.matmulMacs}x), saved activations ${vsNone.savedActivationBytes}x`);
    }
    log(`${name}: load average ${loadBefore.join(' ')} before, ${loadAfter.join(' ')} after`);
    results.push({ config: name, model: config.model, batch: [config.batchSize, config.seqLen], backend: 'wasm', load: { before: loadBefore, after: loadAfter }, rows, ...(planVsBestRegex ? { planVsBestRegex } : {}) });
  }
  const out = { date: new Date().toISOString(), host: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, loadavg: os.loadavg() }, results };
  const json = JSON.stringify(out, null, 2);
  process.stdout.write(`${json}\n`);
  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');
  mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.train-checkpoint.json.tmp-${process.pid}`);
  writeFileSync(tmp, `${json}\n`);
  renameSync(tmp, path.join(dir, 'train-checkpoint.json'));
}
const precisions = (argv.includes('--precision') ? argv[argv.indexOf('--precision') + 1] ?? '' : '32-true').split(',') as TrainPrecision[];
for (const p of precisions) if (!TRAIN_PRECISIONS.includes(p)) throw new Error(`--precision takes a comma-separated list of ${TRAIN_PRECISIONS.join(', ')}; got ${p}`);
const optimizers = (argv.includes('--optimizer') ? argv[argv.indexOf('--optimizer') + 1] ?? '' : 'adamw').split(',') as TrainOptimizer[];
for (const o of optimizers) if (!TRAIN_OPTIMIZERS.includes(o)) throw new Error(`--optimizer takes a comma-separated list of ${TRAIN_OPTIMIZERS.join(', ')}; got ${o}`);
if (precisions.length > 1 && optimizers.length > 1) throw new Error('give several --precision values or several --optimizer values, not both');
/** Every (precision, optimizer) pair measured. */
const variants = precisions.flatMap((precision) => optimizers.map((optimizer) => ({ precision, optimizer })));
/** The precisions bench/torch_train.py trains. */
const TORCH_PEER_PRECISIONS = ['32-true', 'bf16-mixed', '16-mixed', 'fp8'];
for (const a of argv) if (!['--quick', '--no-gpu', '--no-torch', '--config', configArg, '--threads', threadsArg, '--precision', precisions.join(','), '--optimizer', optimizers.join(',')].includes(a)) throw new Error(`unknown argument ${a}; usage: bench/train.ts [--quick] [--no-gpu] [--no-torch] [--config tiny,medium|small|seedlike] [--threads 1,all] [--precision ...] [--optimizer ...] | --model ${BENCH_MODELS.join('|')} [--autocast bf16] [--batch N] [--steps N] [--no-gpu]`);

/** --model NAME [--autocast bf16|fp16] [--batch N] [--steps N] [--no-gpu]: wasm, then a hardware GPU if there is one. */
async function benchModels(args: string[]): Promise<void> {
  const value = (f: string): string | undefined => (args.includes(f) ? args[args.indexOf(f) + 1] : undefined);
  const name = value('--model') as BenchModel;
  if (!BENCH_MODELS.includes(name)) throw new Error(`--model must be one of ${BENCH_MODELS.join(', ')}, got ${name}`);
  const amp = value('--autocast');
  const autocastDtype: 'bfloat16' | 'float16' | null = amp === undefined ? null : amp === 'bf16' || amp === 'bfloat16' ? 'bfloat16' : amp === 'fp16' || amp === 'float16' ? 'float16' : null;
  if (amp !== undefined && !autocastDtype) throw new Error(`--autocast must be bf16 or fp16, got ${amp}`);
  const num = (f: string): number | undefined => (value(f) === undefined ? undefined : Number(value(f)));
  const opts = { batch: num('--batch'), steps: num('--steps'), autocast: autocastDtype, log };
  const results: Record<string, unknown>[] = [];
  log(`${name} on wasm ...`);
  results.push(await benchModel(name, new WasmBackend(), opts));
  if (!args.includes('--no-gpu')) {
    const { WebGPUBackend } = await import('../src/backend/webgpu/backend.js');
    const g = await WebGPUBackend.create().catch((e: Error) => { log(`no WebGPU backend: ${e.message}`); return null; });
    if (g && g.software) log(`${g.description}: a software adapter; full-size models are measured on hardware GPUs only`);
    else if (g) results.push(await benchModel(name, g, opts));
    g?.destroy();
  }
  const out = { date: new Date().toISOString(), host: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version }, results };
  const json = JSON.stringify(out, null, 2);
  process.stdout.write(`${json}\n`);
  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');
  mkdirSync(dir, { recursive: true });
  const file = `train-${name}${autocastDtype ? `-${autocastDtype}` : ''}.json`;
  const tmp = path.join(dir, `.${file}.tmp-${process.pid}`);
  writeFileSync(tmp, `${json}\n`);
  renameSync(tmp, path.join(dir, file));
}
const round = (x: number) => Number(x.toPrecision(4));

/** The anchors' "small" config (vocab 8192, dim 512, 8 layers, 8 heads, ffn 1408, batch 16, seq 256). */
const SMALL: TrainConfig = {
  ...TINY_LLAMA, batchSize: 16, seqLen: 256,
  model: { vocabSize: 8192, hiddenSize: 512, numHiddenLayers: 8, numAttentionHeads: 8, intermediateSize: 1408, maxPositionEmbeddings: 256, rmsNormEps: 1e-5 },
};
/** The anchors' "seedlike" config (vocab 32000, dim 768, 12 layers, 12 heads, ffn 2048, batch 8, seq 512). */
const SEEDLIKE: TrainConfig = {
  ...TINY_LLAMA, batchSize: 8, seqLen: 512,
  model: { vocabSize: 32000, hiddenSize: 768, numHiddenLayers: 12, numAttentionHeads: 12, intermediateSize: 2048, maxPositionEmbeddings: 512, rmsNormEps: 1e-5 },
};
/** PyTorch eager on an H100, fp32, AdamW (docs/torch_h100_anchors.md, the fp32 rows of "small" and "seedlike"). */
const TORCH_H100_FP32: Record<string, { stepMs: number; tokensPerSecond: number; peakMB: number; fwdActMB: number; infFwdMB: number }> = {
  small: { stepMs: 23.4, tokensPerSecond: 175_000, peakMB: 5281, fwdActMB: 1489, infFwdMB: 144 },
  seedlike: { stepMs: 76.9, tokensPerSecond: 53_000, peakMB: 9046, fwdActMB: 3715, infFwdMB: 524 },
};

/**
 * Trains on each backend with the same config, their steps interleaved (step i on every backend,
 * then step i + 1), so that a machine shared with other jobs slows them alike; then measures each.
 */
async function runInterleaved(backends: readonly Backend[], config: TrainConfig, steps: number, warmup: number, configName: string) {
  const dataset = new ByteTextDataset(text);
  for (const backend of backends) {
    await backend.synchronize();
    backend.memory.resetPeakMemoryStats(); // one backend may serve several runs: each run's peaks are its own
  }
  const states = backends.map((backend) => ({
    backend, t: new LanguageModelTrainer(backend, dataset, { ...config, steps: TRAINER_STEPS, warmupSteps: 1 }),
    ms: [] as number[], counts: [] as Record<string, number>[], first: 0, last: 0,
  }));
  try {
    await warmedRounds(warmup, steps, async (i, measured) => {
      for (const st of states) {
        const before = st.backend.stats();
        const r = await st.t.trainStep();
        const after = st.backend.stats();
        if (i === 0) st.first = r.loss;
        st.last = r.loss;
        if (measured) {
          st.ms.push(r.ms);
          st.counts.push(Object.fromEntries(Object.keys(after).map((k) => [k, after[k as keyof BackendStats] - before[k as keyof BackendStats]])));
        }
      }
    });
    const out = [];
    for (const st of states) out.push(await summarize(st.backend, st.t, dataset, config, configName, st.ms, st.counts, st.first, st.last));
    return out;
  } finally {
    for (const st of states) st.t.dispose();
  }
}

async function run(backend: Backend, config: TrainConfig, steps: number, warmup: number, configName: string) {
  return (await runInterleaved([backend], config, steps, warmup, configName))[0];
}

async function summarize(
  backend: Backend, t: LanguageModelTrainer, dataset: ByteTextDataset, config: TrainConfig, configName: string,
  ms: number[], counts: Record<string, number>[], first: number, last: number,
) {
  const mem = backend.memory;
  const perStep = Object.fromEntries(Object.keys(counts[0]).map((k) => [k, median(counts.map((c) => c[k]))]));
  const stats = mem.memoryStats(); // the training steps' peaks, before the forward measurements reset them
  // Paged 8-bit state lives in host memory (the host backend's accounting), not on the device.
  const hostOptimizerBytes = config.optimizer === 'adamw8bit-paged' && backend.kind !== 'wasm' ? hostBackend().memory.memoryAllocated('optimizer') : 0;
  const stepMs = median(ms);
  // A training forward's saved activations vs the same forward under inferenceMode.
  const batch = dataset.batch(t.dataGenerator, config.batchSize, config.seqLen);
  const shape = [config.batchSize, config.seqLen];
  const ids = Tensor.from(backend, batch.ids, shape, { dtype: 'int32' }), targets = Tensor.from(backend, batch.targets, shape, { dtype: 'int32' });
  await backend.synchronize();
  const base = mem.memoryAllocated();
  mem.resetPeakMemoryStats();
  const loss = t.inPrecision(() => tidy(() => t.model.loss(ids, targets)));
  const fwdAct = mem.memoryAllocated() - base;
  const fwdPeak = mem.maxMemoryAllocated() - base;
  loss.releaseGraph();
  loss.dispose();
  mem.resetPeakMemoryStats();
  const li = t.inPrecision(() => inferenceMode(() => t.model.loss(ids, targets)));
  const infPeak = mem.maxMemoryAllocated() - base;
  li.dispose(); ids.dispose(); targets.dispose();
  return {
    backend: backend.description,
    config: configName,
    threads: backend instanceof WasmBackend ? backend.threads : undefined,
    precision: config.precision ?? '32-true',
    optimizer: config.optimizer ?? 'adamw',
    parameters: t.model.numParameters(),
    batch: shape,
    steps: ms.length,
    stepMsMedian: round(stepMs),
    tokensPerSecond: round((config.batchSize * config.seqLen) / (stepMs / 1000)),
    perStep,
    lossFirst: round(first), lossLast: round(last),
    peakBytesByCategory: Object.fromEntries(CATEGORIES.map((c) => [c, stats.byCategory[c].peak])),
    hostOptimizerBytes,
    peakAllocatedBytes: stats.allocated.peak,
    peakReservedBytes: stats.reserved.peak,
    trainingForwardHeldBytes: fwdAct,
    trainingForwardPeakBytes: fwdPeak,
    inferenceForwardPeakBytes: infPeak,
    inferenceToTrainingForward: round(infPeak / fwdPeak),
  };
}

const text = loadSotuText({ fromYear: 1990 });
const config = configName === 'small' ? SMALL : configName === 'seedlike' ? SEEDLIKE : TINY_LLAMA;
const quick = flag('--quick');
const results: Record<string, unknown>[] = [];
for (const name of configNames.filter((c) => !ANCHOR_CONFIGS.includes(c))) {
  const c = name === 'medium' ? MEDIUM_LLAMA : TINY_LLAMA;
  for (const { precision, optimizer } of variants) {
    log(`wasm, ${name}, ${precision}, ${optimizer}, ${threadCounts.join(' and ')} thread(s), steps interleaved ...`);
    const ws = await Promise.all(threadCounts.map((threads) => WasmBackend.create('bench:train', { threads })));
    try {
      results.push(...await runInterleaved(ws, { ...c, precision, optimizer }, quick ? (name === 'medium' ? 3 : 5) : name === 'medium' ? 10 : 30, name === 'medium' ? 1 : 2, name));
    } finally {
      for (const w of ws) w.destroy();
    }
  }
}
// Threads against one thread: same config and precision, same run.
for (const r of results) {
  const one = results.find((b) => b.threads === 1 && b.config === r.config && b.precision === r.precision && b.optimizer === r.optimizer);
  if (!one || one === r || r.threads === undefined) continue;
  r.vsOneThread = { speedup: round((one.stepMsMedian as number) / (r.stepMsMedian as number)) };
}
/** Whether WebGPU ran on a hardware adapter (the PyTorch peer then runs), and the peer's run (torch version, device...). */
let hardwareGpuRan = false, torchPeerRun: Omit<TorchPeerOutput, 'results'> | null = null;
if (!flag('--no-gpu')) {
  const { WebGPUBackend } = await import('../src/backend/webgpu/backend.js');
  let g: Backend | null = null;
  try {
    g = await WebGPUBackend.create();
  } catch (e) {
    log(`no WebGPU backend: ${(e as Error).message}`);
  }
  if (g) {
    try {
      const software = /swiftshader|software/i.test(g.description);
      if (ANCHOR_CONFIGS.includes(configName) && software) log(`--config ${configName} needs a hardware GPU; skipped on the software adapter`);
      else {
        if (software) log(`${g.description} is a software adapter: no PyTorch peer`);
        for (const { precision, optimizer } of variants) {
        log(`webgpu (${g.description}), ${precision}, ${optimizer} ...`);
        const r = await run(g, { ...config, precision, optimizer }, software || quick ? 3 : 30, 1, configName);
        const anchor = TORCH_H100_FP32[configName];
        if (anchor) { // the fixed figures of docs/torch_h100_anchors.md (another machine, fp32)
          Object.assign(r, {
            anchorTorchH100Fp32: anchor,
            tokensPerSecondVsH100Anchor: round(r.tokensPerSecond / anchor.tokensPerSecond),
            peakVsH100Anchor: round(r.peakAllocatedBytes / 2 ** 20 / anchor.peakMB),
          });
        }
        results.push(r);
        }
        hardwareGpuRan = !software;
      }
    } finally {
      g.destroy();
    }
  }
}
// The same-run PyTorch peer (bench/torch_train.py): after memfit's WebGPU runs (their device freed),
// on the same GPU, for the same config and precisions, AdamW only; each WebGPU result gets `torch`
// and its ratios to it. Automatic when a hardware GPU ran and a Python with torch sees CUDA; --no-torch skips it.
if (!hardwareGpuRan && !flag('--no-torch')) log('no PyTorch peer: it runs after WebGPU runs on a hardware GPU, and none ran');
if (hardwareGpuRan && !flag('--no-torch')) {
  const gpuResults = results.filter((r) => !String(r.backend).includes('wasm') && r.optimizer === 'adamw');
  const found = findTorchPython();
  if ('reasons' in found) log(`no PyTorch peer: no Python with torch (${found.reasons.join('; ')})`);
  else if (!found.cuda) log(`no PyTorch peer: torch ${found.version} (${found.python}) sees no CUDA GPU`);
  else if (gpuResults.length === 0) log('no PyTorch peer: it trains with AdamW only, and no WebGPU run used adamw');
  else {
    const peerPrecisions = [...new Set(gpuResults.map((r) => r.precision as string))].filter((p) => TORCH_PEER_PRECISIONS.includes(p));
    for (const p of new Set(gpuResults.map((r) => r.precision as string))) if (!peerPrecisions.includes(p)) log(`PyTorch peer: ${p} is not one of its precisions (${TORCH_PEER_PRECISIONS.join(', ')})`);
    if (peerPrecisions.length) {
      log(`PyTorch peer: torch ${found.version} on ${found.device}, ${peerPrecisions.join(', ')} ...`);
      try {
        const peer = runTorchPeer(found.python, torchTrainArgs(config, peerPrecisions, { steps: quick ? 3 : 30, warmup: 3, device: 'cuda' }));
        const { results: peerResults, ...peerRun } = peer;
        torchPeerRun = peerRun;
        for (const r of gpuResults) {
          const t = peerResults.find((x) => x.precision === r.precision);
          if (!t) continue;
          r.torch = { ...t, torch: peer.torch, device: peer.device };
          if (t.unavailable !== undefined) { log(`PyTorch peer: ${t.precision} unavailable: ${t.unavailable}`); continue; }
          if (t.parameters !== r.parameters) log(`PyTorch peer: ${t.parameters} parameters, memfit ${String(r.parameters)}: not the same model`);
          r.tokensPerSecondVsTorch = round((r.tokensPerSecond as number) / t.tokensPerSecond!);
          r.peakVsTorch = round((r.peakAllocatedBytes as number) / t.peakAllocatedBytes!);
          r.trainingForwardHeldVsTorch = round((r.trainingForwardHeldBytes as number) / t.trainingForwardHeldBytes!);
        }
      } catch (e) {
        log(`PyTorch peer failed: ${(e as Error).message}`);
      }
    }
  }
}
// Each optimizer against adamw on the same backend and precision, same run: optimizer memory, peak, step time, tokens/s.
type Peaks = Record<string, number>;
for (const r of results) {
  const base = results.find((b) => b.backend === r.backend && b.config === r.config && b.threads === r.threads && b.precision === r.precision && b.optimizer === 'adamw');
  if (!base || base === r) continue;
  r.vsAdamW = {
    optimizerPeakBytes: round((r.peakBytesByCategory as Peaks).optimizer / (base.peakBytesByCategory as Peaks).optimizer),
    peakAllocatedBytes: round((r.peakAllocatedBytes as number) / (base.peakAllocatedBytes as number)),
    stepMs: round((r.stepMsMedian as number) / (base.stepMsMedian as number)),
    tokensPerSecond: round((r.tokensPerSecond as number) / (base.tokensPerSecond as number)),
  };
}
// Each precision against 32-true on the same backend, same run: saved-activation bytes, peak, step time.
for (const r of results) {
  const base = results.find((b) => b.backend === r.backend && b.config === r.config && b.threads === r.threads && b.precision === '32-true' && b.optimizer === r.optimizer);
  if (!base || base === r) continue;
  r.vsFloat32 = {
    trainingForwardHeldBytes: round((r.trainingForwardHeldBytes as number) / (base.trainingForwardHeldBytes as number)),
    peakAllocatedBytes: round((r.peakAllocatedBytes as number) / (base.peakAllocatedBytes as number)),
    stepMs: round((r.stepMsMedian as number) / (base.stepMsMedian as number)),
  };
}
const wasm = results.find((r) => String(r.backend).includes('wasm') && r.precision === precisions[0] && r.optimizer === optimizers[0]);
const gpu = results.find((r) => !String(r.backend).includes('wasm') && r.precision === precisions[0] && r.optimizer === optimizers[0]);
const out = {
  date: new Date().toISOString(), host: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version },
  torchPeer: torchPeerRun,
  results,
  ratios: wasm && gpu ? { webgpuTokensPerSecondOverWasm: round((gpu.tokensPerSecond as number) / (wasm.tokensPerSecond as number)) } : {},
};
const json = JSON.stringify(out, null, 2);
process.stdout.write(`${json}\n`);
const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');
mkdirSync(dir, { recursive: true });
const tmp = path.join(dir, `.train.json.tmp-${process.pid}`);
writeFileSync(tmp, `${json}\n`);
renameSync(tmp, path.join(dir, 'train.json'));
