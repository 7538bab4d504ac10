// Training a Llama-style language model on byte-level text: AdamW, linear warmup + cosine decay,
// gradient clipping, memory by category per step, evaluation, and checkpoints that resume exactly.
// (Adam and SGD with momentum are the other optimizers the demo page offers.)
// What `npm start`, `npm run bench:train` and the training tests run.
import type { Backend } from '../backend/backend.js';
import { CATEGORIES, type Category, type MemoryEvent, type MemoryStats, type MemoryTrace } from '../backend/memory.js';
import { inferenceMode, tidy } from '../autograd/variable.js';
import { autocast } from '../amp/autocast.js';
import { GradScaler } from '../amp/grad_scaler.js';
import { convertToFloat8Training } from '../amp/float8.js';
import { checkOptions, InvalidArgumentError, MemfitError, describeValue } from '../errors.js';
import { ByteTextDataset, type TokenBatch } from '../data/byte_text.js';
import { Llama, type LlamaConfig } from '../nn/llama.js';
import { Adam, AdamW } from '../optim/adam.js';
import { AdamW8bit } from '../optim/optim8bit.js';
import { SGD } from '../optim/sgd.js';
import { clipGradNorm } from '../optim/clip_grad.js';
import { cosineWithWarmup } from '../optim/lr_scheduler.js';
import type { AnyOptimizer, LambdaLR } from '../optim/lr_scheduler.js';
import { Generator } from '../random.js';
import { checkpointModules } from '../recompute/checkpoint.js';
import { Tensor } from '../tensor/tensor.js';

export interface TrainConfig {
  model: LlamaConfig;
  batchSize: number;
  seqLen: number;
  /** Total optimizer steps (the cosine schedule ends here). */
  steps: number;
  /** Peak learning rate. */
  lr: number;
  warmupSteps: number;
  /** Final lr as a fraction of the peak. */
  minLrRatio: number;
  weightDecay: number;
  /** Gradients are clipped to this global L2 norm (0: no clipping). */
  maxGradNorm: number;
  /** Seeds the weights and the data order. */
  seed: number;
  /**
   * 'adamw' (default), 'adam' (weightDecay as an L2 term, as torch.optim.Adam) or 'sgd' (momentum
   * 0.9, weightDecay as L2). Weight decay applies to matrices only in each case.
   */
  optimizer?: TrainOptimizer;
  /**
   * The precision (PyTorch Lightning's names): '32-true' (default, float32 throughout),
   * 'bf16-mixed' (float32 weights, forward under bfloat16 autocast), '16-mixed' (float32 weights,
   * float16 autocast and a GradScaler), 'bf16-true' and '16-true' (bfloat16 or float16 weights,
   * updated in float32 and rounded once; see masterWeights and stochasticRounding), 'fp8' (Hugging Face
   * Accelerate's mixed_precision="fp8": float32 weights, every Linear but the LM head in fp8 through
   * convertToFloat8Training with Transformer Engine's default delayed scaling, everything else under
   * bfloat16 autocast).
   */
  precision?: TrainPrecision;
  /** '-true' precisions: keep float32 master weights in the optimizer (4 more bytes a parameter). Default false. */
  masterWeights?: boolean;
  /** '-true' precisions: round weight updates stochastically (an unbiased rounding) instead of nearest-even. Default false. */
  stochasticRounding?: boolean;
  /**
   * Activation checkpointing: a regular expression (its source, e.g. '^layers\.\d+$') over the
   * model's dotted module names; the matching modules are wrapped by checkpointModules (their
   * activations are recomputed in backward instead of kept). Gradients are unchanged.
   */
  checkpointModules?: string;
  /**
   * Chunked checkpointing (CheckpointOptions.chunks): each module of checkpointModules runs as this
   * many checkpoints, one per piece of the batch, so backward recomputes and holds one piece's
   * activations and gradients at a time. For modules that treat each sequence of the batch alone
   * (a decoder layer, an MLP); at most the batch size. 'auto': as many pieces as keep at least
   * AUTO_CHUNK_ELEMENTS activations of a layer's input each (tokens x hidden size): smaller pieces
   * cost more in per-op overhead than they save (8 for the medium config, 2 for the tiny one).
   * Default 1.
   */
  checkpointChunks?: number | 'auto';
  /**
   * Gradient release: the optimizer steps inside backward, each parameter as soon as its gradient
   * is complete, and frees that gradient (Optimizer.attachToBackward). Gradients are then clipped
   * per parameter to maxGradNorm (a global norm needs every gradient at once). Not with '16-mixed'
   * (a GradScaler cannot undo updates already made). Default false.
   */
  gradientRelease?: boolean;
  /**
   * Keep no logits for backward: the final norm, the head and the loss run under checkpoint() and
   * backward computes the logits again (Llama.loss's recomputeLogits). The same loss and gradients,
   * one more head matmul a step, and [batch x seqLen x (vocabSize + hiddenSize + 1)] less memory
   * held between forward and backward (the logits' gradient, the norm's output and its rstd);
   * not a lower peak in a step (the logits and their gradient exist at the loss either way).
   * Default false.
   */
  recomputeLogits?: boolean;
  /**
   * Run the forward under bfloat16 autocast whatever the precision ('bf16-true' too: its ops then
   * keep bfloat16 activations instead of float32 ones). The mixed precisions autocast anyway.
   * Default false.
   */
  bf16Autocast?: boolean;
  /**
   * A memory preset. 'least': everything that lowers a step's peak while training stays correct:
   * bfloat16 weights with stochastic rounding ('bf16-true') and bfloat16 autocast, 8-bit AdamW,
   * per-layer activation checkpointing ('^layers\.\d+$') in chunks of the batch
   * (checkpointChunks 'auto') and gradient release. Not recomputeLogits, which does not lower a
   * step's peak. Fields given explicitly win over the preset's. Default: none.
   */
  memory?: TrainMemoryPreset;
}

/** checkpointChunks 'auto': each piece keeps at least this many activations of a layer's input (64 KiB in float32). */
export const AUTO_CHUNK_ELEMENTS = 16384;

/** The pieces checkpointChunks 'auto' gives a config: each keeps at least AUTO_CHUNK_ELEMENTS activations of a layer's input, at most one a sequence. */
export function autoCheckpointChunks(config: Pick<TrainConfig, 'batchSize' | 'seqLen' | 'model'>): number {
  return Math.max(1, Math.min(config.batchSize, Math.floor((config.batchSize * config.seqLen * config.model.hiddenSize) / AUTO_CHUNK_ELEMENTS)));
}

/** Refuses a batch of token ids [batchSize, seqLen] (int32) larger than one buffer of the backend. */
export function checkBatchFits(backend: Backend, batchSize: number, seqLen: number): void {
  const bytes = batchSize * seqLen * 4;
  if (bytes > backend.maxBufferSize) {
    throw new MemfitError('BUFFER_TOO_LARGE', `a batch of ${batchSize} x ${seqLen} token ids needs ${bytes} bytes, more than the ${backend.kind} backend's maxBufferSize ${backend.maxBufferSize} (lower the batch size or the sequence length)`);
  }
}

/** The memory presets of LanguageModelTrainer. */
export type TrainMemoryPreset = 'least';
export const TRAIN_MEMORY_PRESETS: readonly TrainMemoryPreset[] = ['least'];

/** The fields the 'least' memory preset sets (see TrainConfig.memory). */
export const LEAST_MEMORY: Readonly<Pick<TrainConfig, 'precision' | 'stochasticRounding' | 'bf16Autocast' | 'optimizer' | 'checkpointModules' | 'checkpointChunks' | 'gradientRelease'>> = {
  precision: 'bf16-true',
  stochasticRounding: true,
  bf16Autocast: true,
  optimizer: 'adamw8bit',
  checkpointModules: '^layers\\.\\d+$',
  checkpointChunks: 'auto',
  gradientRelease: true,
};

/** The config with its memory preset applied (fields given explicitly win), or unchanged without one. */
export function applyMemoryPreset(config: TrainConfig): TrainConfig {
  if (config.memory === undefined) return config;
  if (!TRAIN_MEMORY_PRESETS.includes(config.memory)) throw new InvalidArgumentError(`unknown memory preset ${JSON.stringify(config.memory)}; use one of ${TRAIN_MEMORY_PRESETS.join(', ')}`);
  const given = Object.fromEntries(Object.entries(config).filter(([, v]) => v !== undefined));
  const preset: Partial<TrainConfig> = { ...LEAST_MEMORY };
  // a precision given over the preset's bf16-true: the preset's stochastic rounding of half-precision
  // weights yields with it (it means nothing for float32 weights); one given explicitly still applies
  if (config.precision !== undefined && config.precision !== 'bf16-true' && config.precision !== '16-true') delete preset.stochasticRounding;
  return { ...preset, ...given } as TrainConfig;
}

const TRAIN_CONFIG_KEYS = [
  'model', 'batchSize', 'seqLen', 'steps', 'lr', 'warmupSteps', 'minLrRatio', 'weightDecay', 'maxGradNorm', 'seed',
  'optimizer', 'precision', 'masterWeights', 'stochasticRounding', 'checkpointModules', 'checkpointChunks', 'gradientRelease', 'recomputeLogits', 'bf16Autocast', 'memory',
] as const;

/**
 * Checks a TrainConfig's fields (LanguageModelTrainer runs it first): no unknown key (a typo would
 * be ignored), sizes and counts positive integers (batchSize 0 would make the loss NaN), rates and
 * norms finite, flags booleans. The choices (precision, optimizer, memory, checkpointChunks) are
 * checked where they are used, with the valid names.
 */
export function checkTrainConfig(config: TrainConfig): void {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) throw new InvalidArgumentError(`LanguageModelTrainer: config must be an object, got ${describeValue(config)}`);
  checkOptions(config, TRAIN_CONFIG_KEYS, 'LanguageModelTrainer config');
  const bad = (key: string, what: string): never => {
    throw new InvalidArgumentError(`LanguageModelTrainer config: ${key} must be ${what}, got ${describeValue((config as unknown as Record<string, unknown>)[key])}`);
  };
  if (config.model === null || typeof config.model !== 'object') bad('model', 'a LlamaConfig object');
  for (const k of ['batchSize', 'seqLen', 'steps'] as const) if (!(Number.isSafeInteger(config[k]) && config[k] >= 1)) bad(k, 'a positive integer');
  if (!(Number.isSafeInteger(config.warmupSteps) && config.warmupSteps >= 0)) bad('warmupSteps', 'a non-negative integer');
  if (!(Number.isSafeInteger(config.seed) && config.seed >= 0)) bad('seed', 'an integer in [0, 2^53)');
  if (!(typeof config.lr === 'number' && Number.isFinite(config.lr) && config.lr > 0)) bad('lr', 'a finite number > 0');
  if (!(typeof config.minLrRatio === 'number' && config.minLrRatio >= 0 && config.minLrRatio <= 1)) bad('minLrRatio', 'a number in [0, 1]');
  for (const k of ['weightDecay', 'maxGradNorm'] as const) if (!(typeof config[k] === 'number' && Number.isFinite(config[k]) && config[k] >= 0)) bad(k, 'a finite number >= 0');
  for (const k of ['masterWeights', 'stochasticRounding', 'gradientRelease', 'recomputeLogits', 'bf16Autocast'] as const) {
    if (config[k] !== undefined && typeof config[k] !== 'boolean') bad(k, 'a boolean');
  }
  if (config.checkpointModules !== undefined && typeof config.checkpointModules !== 'string') bad('checkpointModules', 'a regular expression\'s source (a string)');
}

/** The precisions LanguageModelTrainer runs. */
export type TrainPrecision = '32-true' | 'bf16-mixed' | '16-mixed' | 'bf16-true' | '16-true' | 'fp8';
export const TRAIN_PRECISIONS: readonly TrainPrecision[] = ['32-true', 'bf16-mixed', '16-mixed', 'bf16-true', '16-true', 'fp8'];

/** The optimizers LanguageModelTrainer can build. */
export type TrainOptimizer = 'adamw' | 'adam' | 'sgd' | 'adamw8bit' | 'adamw8bit-paged';
export const TRAIN_OPTIMIZERS: readonly TrainOptimizer[] = ['adamw', 'adam', 'sgd', 'adamw8bit', 'adamw8bit-paged'];

/** The tiny Llama of the training proof: 2 layers, hidden 64, 4 heads, vocabulary 256 bytes. */
export const TINY_LLAMA: TrainConfig = {
  model: { vocabSize: 256, hiddenSize: 64, numHiddenLayers: 2, numAttentionHeads: 4, intermediateSize: 176, maxPositionEmbeddings: 64, rmsNormEps: 1e-5 },
  batchSize: 8,
  seqLen: 64,
  steps: 300,
  lr: 3e-3,
  warmupSteps: 20,
  minLrRatio: 0.1,
  weightDecay: 0.01,
  maxGradNorm: 1,
  seed: 0,
};

/**
 * The "medium" config of the checkpointing benchmark: byte vocabulary, hidden 256, 4 layers, 8
 * heads, intermediate 704, batch 8 x 128 (the other fields as TINY_LLAMA).
 */
export const MEDIUM_LLAMA: TrainConfig = {
  ...TINY_LLAMA,
  model: { vocabSize: 256, hiddenSize: 256, numHiddenLayers: 4, numAttentionHeads: 8, intermediateSize: 704, maxPositionEmbeddings: 128, rmsNormEps: 1e-5 },
  batchSize: 8,
  seqLen: 128,
};

/**
 * TINY_LLAMA with a run's choices: warmup is capped at a tenth of the steps and the context grows
 * to seqLen when that is longer. What `memfit train` and the demo page train.
 */
export function tinyLlamaConfig(options: Partial<Pick<TrainConfig, 'steps' | 'batchSize' | 'seqLen' | 'lr' | 'seed' | 'optimizer' | 'precision' | 'masterWeights' | 'stochasticRounding' | 'checkpointModules' | 'checkpointChunks' | 'gradientRelease' | 'recomputeLogits' | 'memory'>> = {}): TrainConfig {
  const c: TrainConfig = { ...TINY_LLAMA, ...options };
  return {
    ...c,
    warmupSteps: Math.min(TINY_LLAMA.warmupSteps, Math.floor(c.steps / 10)),
    model: { ...TINY_LLAMA.model, maxPositionEmbeddings: Math.max(TINY_LLAMA.model.maxPositionEmbeddings, c.seqLen) },
  };
}

/** One step's record. */
export interface StepResult {
  step: number;
  loss: number;
  lr: number;
  /** Wall time of the step, including the loss read-back. */
  ms: number;
  tokensPerSecond: number;
  /**
   * Bytes allocated by category at the moment the step's allocated total peaked (the breakdown of
   * the step's peak, which sums to `peakAllocated`), from a memory trace of the step.
   */
  memory: Record<Category, number>;
  /** Highest memoryAllocated() during the step. */
  peakAllocated: number;
}

/**
 * Replays a trace from the per-category bytes at its start and returns the breakdown at the first
 * moment the total was highest.
 */
function breakdownAtPeak(start: Record<Category, number>, events: readonly MemoryEvent[]): { memory: Record<Category, number>; peak: number } {
  const now = { ...start };
  let total = CATEGORIES.reduce((a, c) => a + now[c], 0), peak = total, memory = { ...now };
  for (const e of events) {
    const d = e.kind === 'alloc' ? e.bytes : -e.bytes;
    now[e.category] += d;
    total += d;
    if (total > peak) { peak = total; memory = { ...now }; }
  }
  return { memory, peak };
}

export class LanguageModelTrainer {
  readonly model: Llama;
  readonly optimizer: AnyOptimizer;
  readonly scheduler: LambdaLR;
  /** Draws the training batches (saved in checkpoints). */
  readonly dataGenerator: Generator;
  /** The loss scaler of '16-mixed' (saved in checkpoints), else null. */
  readonly scaler: GradScaler | null;
  /** The modules whose forwards are checkpointed (config.checkpointModules), in model order. */
  readonly checkpointed: string[] = [];
  /** The pieces of the batch each checkpointed module runs on (config.checkpointChunks, at most the batch size; 1 without checkpoints). */
  readonly checkpointChunks: number = 1;
  /** The config with its memory preset applied. */
  readonly config: TrainConfig;
  step = 0;
  /** Detaches the optimizer from backward (gradient release), or null. */
  private detachRelease: (() => void) | null = null;

  constructor(readonly backend: Backend, readonly dataset: ByteTextDataset, config: TrainConfig) {
    checkTrainConfig(config);
    config = this.config = applyMemoryPreset(config);
    if (config.gradientRelease && config.precision === '16-mixed') {
      throw new InvalidArgumentError("gradientRelease cannot be combined with precision '16-mixed': its GradScaler must see every gradient before any parameter changes (use 'bf16-mixed' or 'bf16-true', which need no scaler)");
    }
    if (config.model.vocabSize < ByteTextDataset.vocabSize) throw new InvalidArgumentError(`vocabSize ${config.model.vocabSize} is smaller than the 256 byte values`);
    if (config.seqLen > config.model.maxPositionEmbeddings) throw new InvalidArgumentError(`seqLen ${config.seqLen} exceeds maxPositionEmbeddings ${config.model.maxPositionEmbeddings}`);
    // Before anything is built: a text too short for one window, or a batch larger than a buffer.
    dataset.checkWindow(config.seqLen);
    checkBatchFits(backend, config.batchSize, config.seqLen);
    const precision = config.precision ?? '32-true';
    if (!TRAIN_PRECISIONS.includes(precision)) throw new InvalidArgumentError(`unknown precision ${JSON.stringify(precision)}; use one of ${TRAIN_PRECISIONS.join(', ')}`);
    if ((config.masterWeights || config.stochasticRounding) && precision !== 'bf16-true' && precision !== '16-true') {
      throw new InvalidArgumentError(`masterWeights and stochasticRounding apply to the half-precision weights of bf16-true and 16-true, not to ${precision}`);
    }
    const kind = config.optimizer ?? 'adamw';
    if (!TRAIN_OPTIMIZERS.includes(kind)) throw new InvalidArgumentError(`unknown optimizer ${JSON.stringify(kind)}; use one of ${TRAIN_OPTIMIZERS.join(', ')}`);
    this.model = new Llama(config.model, { backend, generator: new Generator(config.seed) });
    try {
      if (precision === 'bf16-true') this.model.to('bfloat16');
      if (precision === '16-true') this.model.to('float16');
      if (precision === 'fp8') convertToFloat8Training(this.model, { filter: (name) => name !== 'lmHead' });
      const chunks = config.checkpointChunks === 'auto' ? autoCheckpointChunks(config) : config.checkpointChunks ?? 1;
      if (!(Number.isSafeInteger(chunks) && chunks >= 1)) {
        throw new InvalidArgumentError(`checkpointChunks must be a positive integer or 'auto', got ${describeValue(config.checkpointChunks)}`);
      }
      if (config.checkpointChunks !== undefined && config.checkpointModules === undefined) throw new InvalidArgumentError('checkpointChunks splits the checkpoints of checkpointModules: give checkpointModules too');
      if (config.checkpointModules !== undefined) {
        let re: RegExp;
        try {
          re = new RegExp(config.checkpointModules);
        } catch (e) {
          throw new InvalidArgumentError(`checkpointModules: ${JSON.stringify(config.checkpointModules)} is not a regular expression (${(e as Error).message})`);
        }
        this.checkpointChunks = Math.max(1, Math.min(chunks, config.batchSize));
        this.checkpointed = checkpointModules(this.model, re, { chunks: this.checkpointChunks }).wrapped;
      }
      this.scaler = precision === '16-mixed' ? new GradScaler() : null;
      // Weight decay on matrices only, not on norm weights (as Hugging Face's Trainer groups them).
      const params = this.model.parameters();
      const groups = [
        { params: params.filter((p) => p.data.rank >= 2), weightDecay: config.weightDecay },
        { params: params.filter((p) => p.data.rank < 2), weightDecay: 0 },
      ];
      // roundingSeed from the run's seed: a checkpoint's param groups carry it on.
      const weights = { masterWeights: config.masterWeights, stochasticRounding: config.stochasticRounding, roundingSeed: config.stochasticRounding ? config.seed >>> 0 : undefined };
      const optimizer = kind === 'adamw' ? new AdamW(groups, { lr: config.lr, ...weights })
        : kind === 'adam' ? new Adam(groups, { lr: config.lr, ...weights })
          : kind === 'sgd' ? new SGD(groups, { lr: config.lr, momentum: 0.9, ...weights })
            : new AdamW8bit(groups, { lr: config.lr, paged: kind === 'adamw8bit-paged', ...weights });
      this.optimizer = optimizer;
      if (config.gradientRelease) this.attachRelease();
    } catch (e) {
      this.model.dispose(); // a refused config leaves nothing allocated
      throw e;
    }
    this.scheduler = cosineWithWarmup(this.optimizer, { warmupSteps: config.warmupSteps, totalSteps: config.steps, minLrRatio: config.minLrRatio });
    this.dataGenerator = new Generator(config.seed + 1);
  }

  /**
   * Runs fn with gradient release detached, so that a backward inside it (profiling for a memory
   * plan, say) computes gradients without updating any parameter or optimizer state; then frees the
   * gradients it left and attaches release again. Without gradient release, just runs fn.
   */
  async withoutGradientRelease<T>(fn: () => Promise<T>): Promise<T> {
    if (!this.detachRelease) return fn();
    this.detachRelease();
    this.detachRelease = null;
    try {
      return await fn();
    } finally {
      this.optimizer.zeroGrad();
      this.attachRelease();
    }
  }

  /** Gradient release: the optimizer steps inside backward, each parameter's gradient clipped to config.maxGradNorm. */
  private attachRelease(): void {
    this.detachRelease = this.optimizer.attachToBackward({ maxGradNorm: this.config.maxGradNorm });
  }

  /** Runs fn (a forward) in the configured precision: under autocast for the mixed ones. */
  inPrecision<T>(fn: () => T): T {
    const p = this.config.precision;
    if (p === 'bf16-mixed' || p === '16-mixed' || p === 'fp8') return autocast({ dtype: p === '16-mixed' ? 'float16' : 'bfloat16' }, fn);
    return this.config.bf16Autocast ? autocast({ dtype: 'bfloat16' }, fn) : fn();
  }

  private upload(batch: TokenBatch): [Tensor, Tensor] {
    const shape = [batch.batchSize, batch.seqLen];
    return [
      Tensor.from(this.backend, batch.ids, shape, { dtype: 'int32', category: 'data', label: 'ids' }),
      Tensor.from(this.backend, batch.targets, shape, { dtype: 'int32', category: 'data', label: 'targets' }),
    ];
  }

  /** One optimizer step on a fresh batch: forward, backward, clip, optimizer, schedule, zeroGrad (frees the grads). */
  /** The options of the model's loss in a training step (recomputeLogits). */
  lossOptions(): { recomputeLogits: boolean } {
    return { recomputeLogits: this.config.recomputeLogits ?? false };
  }

  async trainStep(): Promise<StepResult> {
    const t0 = performance.now();
    const { batchSize, seqLen, maxGradNorm } = this.config;
    const lr = this.optimizer.paramGroups[0].lr;
    // The step runs under a memory trace (data, activations, gradients and optimizer state all
    // allocate inside it) so that the breakdown at its peak can be replayed afterwards.
    const mem = this.backend.memory;
    const start = Object.fromEntries(CATEGORIES.map((c) => [c, mem.memoryAllocated(c)])) as Record<Category, number>;
    let lossValue: number, trace: MemoryTrace;
    mem.startTrace();
    try {
      const [ids, targets] = this.upload(this.dataset.batch(this.dataGenerator, batchSize, seqLen));
      try {
        const loss = this.inPrecision(() => tidy(() => this.model.loss(ids, targets, this.lossOptions())));
        const scaler = this.scaler;
        if (scaler) { // float16: the loss is scaled before backward, the gradients unscaled before clipping
          const scaled = scaler.scale(loss);
          scaled.backward();
          scaled.dispose();
          scaler.unscale(this.optimizer);
        } else loss.backward(); // with gradient release, backward also clips and steps
        if (!this.detachRelease) {
          if (maxGradNorm > 0) clipGradNorm(this.model.parameters(), maxGradNorm).dispose();
          if (scaler) { scaler.step(this.optimizer); scaler.update(); } else this.optimizer.step();
        }
        this.scheduler.step();
        this.optimizer.zeroGrad();
        lossValue = (await loss.data.toArray())[0];
        loss.dispose();
        if (this.optimizer instanceof AdamW8bit) await this.optimizer.synchronize(); // paged state back in host memory
      } finally {
        ids.dispose(); targets.dispose();
      }
    } finally {
      trace = mem.stopTrace();
    }
    this.step++;
    const ms = performance.now() - t0;
    const { memory, peak } = breakdownAtPeak(start, trace.events);
    return { step: this.step, loss: lossValue, lr, ms, tokensPerSecond: (batchSize * seqLen) / (ms / 1000), memory, peakAllocated: peak };
  }

  /** Mean loss over `batches` validation batches drawn from a generator seeded with `seed` (no graph, nothing saved). */
  async evaluate(batches = 4, seed = 12345): Promise<number> {
    const g = new Generator(seed);
    let total = 0;
    for (let i = 0; i < batches; i++) {
      const [ids, targets] = this.upload(this.dataset.batch(g, this.config.batchSize, this.config.seqLen, 'validation'));
      const loss = this.inPrecision(() => inferenceMode(() => this.model.loss(ids, targets)));
      total += (await loss.data.toArray())[0];
      loss.dispose(); ids.dispose(); targets.dispose();
    }
    return total / batches;
  }

  /**
   * Continues `prompt` by `length` bytes, sampling each from softmax(logits / temperature) with
   * `generator` (greedy when temperature is 0). No cache: each byte is one forward over the last
   * maxPositionEmbeddings bytes, under inferenceMode.
   */
  async generate(prompt: string, length: number, options: { temperature?: number; generator?: Generator } = {}): Promise<string> {
    const temperature = options.temperature ?? 0.8, g = options.generator ?? new Generator(0);
    const bytes = [...new TextEncoder().encode(prompt)];
    if (bytes.length === 0) throw new InvalidArgumentError('generate needs a non-empty prompt');
    const window = this.config.model.maxPositionEmbeddings, v = this.config.model.vocabSize;
    for (let i = 0; i < length; i++) {
      const ctx = bytes.slice(-window);
      const ids = Tensor.from(this.backend, Int32Array.from(ctx), [1, ctx.length], { dtype: 'int32', category: 'data' });
      const logits = this.inPrecision(() => inferenceMode(() => this.model.forward(ids)));
      const all = await logits.data.toArray();
      logits.dispose(); ids.dispose();
      const last = all.subarray((ctx.length - 1) * v, ctx.length * v);
      let next = 0;
      if (temperature === 0) next = last.indexOf(Math.max(...last));
      else {
        const m = Math.max(...last);
        const p = Array.from(last, (x) => Math.exp((x - m) / temperature));
        let u = g.random() * p.reduce((a, b) => a + b, 0);
        while (next < v - 1 && (u -= p[next]) > 0) next++;
      }
      bytes.push(next);
    }
    return new TextDecoder().decode(Uint8Array.from(bytes));
  }

  /**
   * The name of the first parameter or optimizer state tensor holding a NaN or an infinity (e.g.
   * 'lmHead.weight', 'optimizer state expAvgSq of lmHead.weight'), or null when every value is
   * finite. Reads them back: call it before saving a checkpoint, not every step.
   */
  async firstNonFinite(): Promise<string | null> {
    const finite = async (t: Tensor): Promise<boolean> => (await t.toArray()).every(Number.isFinite);
    const params = this.model.namedParameters();
    for (const [name, p] of params) if (!(await finite(p.data))) return name;
    const sd = this.optimizer.stateDict(); // the optimizer's own tensors, in parameter order
    const order = sd.paramGroups.flatMap((g) => g.params);
    const all = this.optimizer.paramGroups.flatMap((g) => g.params);
    const names = new Map(params.map(([name, p]) => [p as unknown, name]));
    for (const [i, id] of order.entries()) {
      for (const [key, v] of Object.entries(sd.state[id] ?? {})) {
        if (v instanceof Tensor && !(await finite(v))) return `optimizer state ${key} of ${names.get(all[i]) ?? `parameter ${id}`}`;
      }
    }
    return null;
  }

  /** Current and peak bytes by category on the training backend. */
  memoryStats(): MemoryStats {
    return this.backend.memory.memoryStats();
  }

  /** Everything a checkpoint holds (see io/checkpoint.ts). */
  trainingState(): { model: Llama; optimizer: AnyOptimizer; scheduler: LambdaLR; step: number; generators: Record<string, Generator>; scaler?: GradScaler } {
    return { model: this.model, optimizer: this.optimizer, scheduler: this.scheduler, step: this.step, generators: { data: this.dataGenerator }, ...(this.scaler ? { scaler: this.scaler } : {}) };
  }

  /** Frees the model and the optimizer state. */
  dispose(): void {
    this.detachRelease?.();
    this.optimizer.zeroGrad();
    this.scaler?.dispose();
    this.optimizer.dispose();
    this.model.dispose();
  }
}
