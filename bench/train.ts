// Training benchmark (`npm run bench:train`): the tiny Llama of the training proof (2 layers,
// hidden 64, byte vocabulary; batch 8 x 64) on every backend present: tokens/s, step time, peak
// memory by category, the extra memory a training forward holds (saved activations) and the same
// forward under inferenceMode, the quantities of docs/torch_h100_anchors.md. On a hardware
// GPU `--config small` runs the anchors' "small" shapes next to PyTorch's H100 figures.
//
// Usage: node --import tsx bench/train.ts [--quick] [--no-gpu] [--config tiny|small] [--precision 32-true,bf16-mixed,16-mixed,bf16-true]
//        [--optimizer adamw,adamw8bit,adamw8bit-paged] (each optimizer in one run, with its ratios to adamw)
//        node --import tsx bench/train.ts --model resnet152|bert-base|llama-small [--autocast bf16] [--batch N] [--steps N]
//        (full-size models: bench/train_models.ts; JSON in bench/results/train-<model>.json)
// Statistic: the median step after warm-up steps (each step ends with the loss read back); the
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
import { inferenceMode, tidy } from '../src/autograd/variable.js';
import { ByteTextDataset } from '../src/data/byte_text.js';
import { loadSotuText } from '../src/data/sotu.js';
import { Tensor } from '../src/tensor/tensor.js';
import { LanguageModelTrainer, TINY_LLAMA, TRAIN_OPTIMIZERS, TRAIN_PRECISIONS, type TrainConfig, type TrainOptimizer, type TrainPrecision } from '../src/train/language_model.js';
import { BENCH_MODELS, benchModel, type BenchModel } from './train_models.js';
import { hostBackend } from '../src/optim/paged.js';

const argv = process.argv.slice(2);
const flag = (f: string) => argv.includes(f);
const configName = argv.includes('--config') ? argv[argv.indexOf('--config') + 1] : 'tiny';
const log = (m: string) => process.stderr.write(`[bench:train] ${m}\n`);
if (argv.includes('--model')) { // the full-size models (bench/train_models.ts)
  await benchModels(argv);
  process.exit(0);
}
const precisions = (argv.includes('--precision') ? argv[argv.indexOf('--precision') + 1] ?? '' : '32-true').split(',') as TrainPrecision[];
for (const p of precisions) if (!TRAIN_PRECISIONS.includes(p)) throw new Error(`--precision takes a comma-separated list of ${TRAIN_PRECISIONS.join(', ')}; got ${p}`);
const optimizers = (argv.includes('--optimizer') ? argv[argv.indexOf('--optimizer') + 1] ?? '' : 'adamw').split(',') as TrainOptimizer[];
for (const o of optimizers) if (!TRAIN_OPTIMIZERS.includes(o)) throw new Error(`--optimizer takes a comma-separated list of ${TRAIN_OPTIMIZERS.join(', ')}; got ${o}`);
if (precisions.length > 1 && optimizers.length > 1) throw new Error('give several --precision values or several --optimizer values, not both');
/** Every (precision, optimizer) pair measured. */
const variants = precisions.flatMap((precision) => optimizers.map((optimizer) => ({ precision, optimizer })));
for (const a of argv) if (!['--quick', '--no-gpu', '--config', 'tiny', 'small', '--precision', precisions.join(','), '--optimizer', optimizers.join(',')].includes(a)) throw new Error(`unknown argument ${a}; usage: bench/train.ts [--quick] [--no-gpu] [--config tiny|small] | --model ${BENCH_MODELS.join('|')} [--autocast bf16] [--batch N] [--steps N] [--no-gpu]`);

/** --model NAME [--autocast bf16|fp16] [--batch N] [--steps N] [--no-gpu]: wasm, then a hardware GPU if there is one. */
async function benchModels(args: string[]): Promise<void> {
  const value = (f: string): string | undefined => (args.includes(f) ? args[args.indexOf(f) + 1] : undefined);
  const name = value('--model') as BenchModel;
  if (!BENCH_MODELS.includes(name)) throw new Error(`--model must be one of ${BENCH_MODELS.join(', ')}, got ${name}`);
  const amp = value('--autocast');
  const autocastDtype = amp === undefined ? null : amp === 'bf16' || amp === 'bfloat16' ? 'bfloat16' : amp === 'fp16' || amp === 'float16' ? 'float16' : null;
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
const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The anchors' "small" config (vocab 8192, dim 512, 8 layers, 8 heads, ffn 1408, batch 16, seq 256). */
const SMALL: TrainConfig = {
  ...TINY_LLAMA, batchSize: 16, seqLen: 256,
  model: { vocabSize: 8192, hiddenSize: 512, numHiddenLayers: 8, numAttentionHeads: 8, intermediateSize: 1408, maxPositionEmbeddings: 256, rmsNormEps: 1e-5 },
};
/** PyTorch eager on an H100, fp32, AdamW (docs/torch_h100_anchors.md, "small", fp32 row). */
const TORCH_SMALL_FP32 = { stepMs: 23.4, tokensPerSecond: 175_000, peakMB: 5281, fwdActMB: 1489, infFwdMB: 144 };

async function run(backend: Backend, config: TrainConfig, steps: number, warmup: number) {
  const dataset = new ByteTextDataset(text);
  const mem = backend.memory;
  await backend.synchronize();
  mem.resetPeakMemoryStats(); // one backend serves several runs: each run's peaks are its own
  const t = new LanguageModelTrainer(backend, dataset, { ...config, steps: steps + warmup, warmupSteps: 1 });
  try {
    const ms: number[] = [];
    const counts: Record<string, number>[] = [];
    let first = 0, last = 0;
    for (let i = 0; i < warmup + steps; i++) {
      const before = backend.stats();
      const r = await t.trainStep();
      const after = backend.stats();
      if (i === 0) first = r.loss;
      last = r.loss;
      if (i >= warmup) {
        ms.push(r.ms);
        counts.push(Object.fromEntries(Object.keys(after).map((k) => [k, after[k as keyof BackendStats] - before[k as keyof BackendStats]])));
      }
    }
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
  } finally {
    t.dispose();
  }
}

const text = loadSotuText({ fromYear: 1990 });
const config = configName === 'small' ? SMALL : TINY_LLAMA;
const quick = flag('--quick');
const results: Record<string, unknown>[] = [];
if (configName === 'tiny') {
  for (const { precision, optimizer } of variants) {
    log(`wasm, ${precision}, ${optimizer} ...`);
    results.push(await run(new WasmBackend(), { ...config, precision, optimizer }, quick ? 5 : 30, 2));
  }
}
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
      if (configName === 'small' && software) log('--config small needs a hardware GPU; skipped on the software adapter');
      else {
        for (const { precision, optimizer } of variants) {
        log(`webgpu (${g.description}), ${precision}, ${optimizer} ...`);
        const r = await run(g, { ...config, precision, optimizer }, software || quick ? 3 : 30, 1);
        if (configName === 'small') {
          Object.assign(r, {
            torchH100Fp32: TORCH_SMALL_FP32,
            tokensPerSecondVsTorch: round(r.tokensPerSecond / TORCH_SMALL_FP32.tokensPerSecond),
            peakVsTorch: round(r.peakAllocatedBytes / 2 ** 20 / TORCH_SMALL_FP32.peakMB),
          });
        }
        results.push(r);
        }
      }
    } finally {
      g.destroy();
    }
  }
}
// Each optimizer against adamw on the same backend and precision, same run: optimizer memory, peak, step time, tokens/s.
type Peaks = Record<string, number>;
for (const r of results) {
  const base = results.find((b) => b.backend === r.backend && b.precision === r.precision && b.optimizer === 'adamw');
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
  const base = results.find((b) => b.backend === r.backend && b.precision === '32-true' && b.optimizer === r.optimizer);
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
