// Learning-rate schedulers (torch.optim.lr_scheduler). As in PyTorch, constructing one records
// each group's initialLr (once) and performs the first step (lastEpoch 0); step() then advances one
// epoch. Every scheduler here computes its rates in closed form from the groups' initial rates, so
// a rate never depends on rounding accumulated over earlier steps and a scheduler can jump to any
// epoch (stepTo). The difference from PyTorch's chainable form shows only when something else also
// changes a group's lr between steps (PyTorch would build on that change; this overrides it).
import { checkOptions, describeValue, InvalidArgumentError } from '../errors.js';
import { MAX_STEP, Optimizer, type OptimizerHyper } from './optimizer.js';

/** A scheduler's state: plain JSON-able numbers (and nested states for SequentialLR). */
export interface SchedulerStateDict {
  [key: string]: number | number[] | SchedulerStateDict[];
}

/** The optimizers a scheduler drives: any Optimizer (only the groups' lr and initialLr are used). */
export type AnyOptimizer = Optimizer<OptimizerHyper>;

/** Base class of the schedulers (torch.optim.lr_scheduler.LRScheduler). */
export abstract class LRScheduler {
  /** The optimizer whose groups' lr this scheduler sets. */
  readonly optimizer: AnyOptimizer;
  /** Each group's initialLr when the scheduler was made: the rates the schedule scales. */
  baseLrs: number[];
  /** The epoch of the last step (0 right after construction). */
  lastEpoch = -1;
  private lastLrs: number[] = [];

  constructor(optimizer: AnyOptimizer) {
    if (!(optimizer instanceof Optimizer)) throw new InvalidArgumentError(`${this.name}: expected an Optimizer`);
    this.optimizer = optimizer;
    for (const g of optimizer.paramGroups) g.initialLr ??= g.lr; // setdefault: a second scheduler keeps the first's
    this.baseLrs = optimizer.paramGroups.map((g) => g.initialLr as number);
  }

  /** The scheduler's name in error messages (subclasses override it). */
  protected get name(): string { return 'LRScheduler'; }

  /** Each group's learning rate at `epoch` (closed form). */
  abstract lrsAt(epoch: number): number[];

  /** Advances one epoch and sets each group's lr. */
  step(): void {
    this.stepTo(this.lastEpoch + 1);
  }

  /** Sets lastEpoch to `epoch` and each group's lr to its rate there. */
  stepTo(epoch: number): void {
    if (!Number.isSafeInteger(epoch) || epoch < 0 || epoch > MAX_STEP) throw new InvalidArgumentError(`${this.name}: epoch must be a non-negative integer no larger than 2^40, got ${describeValue(epoch)}`);
    const groups = this.optimizer.paramGroups;
    if (groups.length !== this.baseLrs.length) {
      throw new InvalidArgumentError(`${this.name}: the optimizer has ${groups.length} parameter groups but the scheduler was made for ${this.baseLrs.length}`);
    }
    const lrs = this.lrsAt(epoch);
    lrs.forEach((lr, i) => {
      if (!(Number.isFinite(lr) && lr >= 0)) throw new InvalidArgumentError(`${this.name}: the learning rate of group ${i} at epoch ${epoch} would be ${lr}`);
    });
    this.lastEpoch = epoch;
    groups.forEach((g, i) => { g.lr = lrs[i]; });
    this.lastLrs = lrs;
  }

  /** The rates set by the last step, one per group. */
  getLastLr(): number[] {
    return [...this.lastLrs];
  }

  /** The scheduler's state as plain numbers (JSON-able). */
  stateDict(): SchedulerStateDict {
    return { lastEpoch: this.lastEpoch, baseLrs: [...this.baseLrs], lastLr: [...this.lastLrs], ...this.hyperState() };
  }

  /**
   * Restores a state from stateDict() (the optimizer's lr comes from the optimizer's own state dict,
   * as in PyTorch). All or nothing: the whole state (sub-schedulers' included) is checked before
   * anything changes.
   */
  loadStateDict(sd: SchedulerStateDict): void {
    this.prepareLoad(sd)();
  }

  /** prepareLoad of another scheduler (a SequentialLR's sub-scheduler). */
  protected static prepareLoadOf(s: LRScheduler, sd: SchedulerStateDict): () => void {
    return s.prepareLoad(sd);
  }

  /** Checks a state from stateDict() and returns what applies it (which cannot fail). */
  protected prepareLoad(sd: SchedulerStateDict): () => void {
    if (typeof sd !== 'object' || sd === null) throw new InvalidArgumentError(`${this.name}.loadStateDict: expected an object`);
    const { lastEpoch, baseLrs, lastLr } = sd;
    if (!(typeof lastEpoch === 'number' && Number.isSafeInteger(lastEpoch) && lastEpoch >= 0 && lastEpoch <= MAX_STEP)) {
      throw new InvalidArgumentError(`${this.name}.loadStateDict: lastEpoch must be a non-negative integer no larger than 2^40, got ${describeValue(lastEpoch)}`);
    }
    const n = this.optimizer.paramGroups.length;
    for (const [key, v] of [['baseLrs', baseLrs], ['lastLr', lastLr]] as const) {
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && x >= 0)) throw new InvalidArgumentError(`${this.name}.loadStateDict: ${key} must be an array of finite numbers >= 0`);
      if (v.length !== n) throw new InvalidArgumentError(`${this.name}.loadStateDict: ${key} has ${v.length} rates for ${n} parameter groups`);
    }
    const applyHyper = this.prepareHyper(sd);
    return () => {
      applyHyper();
      this.lastEpoch = lastEpoch as number;
      this.baseLrs = [...(baseLrs as number[])];
      this.lastLrs = [...(lastLr as number[])];
    };
  }

  /** The scheduler's own settings, saved with its state. */
  protected hyperState(): SchedulerStateDict {
    return {};
  }

  /** Checks what hyperState() saved and returns what restores it (which cannot fail). */
  protected prepareHyper(_sd: SchedulerStateDict): () => void {
    return () => {};
  }

  /** Makes the first step (epoch 0), as PyTorch's constructors do; called by subclasses once set up. */
  protected initialStep(): void {
    this.stepTo(0);
  }
}

function positiveInt(owner: string, name: string, v: unknown): number {
  if (!(typeof v === 'number' && Number.isInteger(v) && v >= 1)) throw new InvalidArgumentError(`${owner}: ${name} must be an integer >= 1, got ${String(v)}`);
  return v;
}

function finiteAtLeast(owner: string, name: string, v: unknown, min: number): number {
  if (!(typeof v === 'number' && Number.isFinite(v) && v >= min)) throw new InvalidArgumentError(`${owner}: ${name} must be a finite number >= ${min}, got ${String(v)}`);
  return v;
}

function savedNumber(owner: string, sd: SchedulerStateDict, key: string): number {
  const v = sd[key];
  if (typeof v !== 'number') throw new InvalidArgumentError(`${owner}.loadStateDict: ${key} is missing or not a number`);
  return v;
}

/** lr = initialLr * gamma^floor(epoch / stepSize) (torch.optim.lr_scheduler.StepLR). */
export class StepLR extends LRScheduler {
  stepSize: number;
  gamma: number;

  constructor(optimizer: AnyOptimizer, stepSize: number, gamma = 0.1) {
    super(optimizer);
    this.stepSize = positiveInt('StepLR', 'stepSize', stepSize);
    this.gamma = finiteAtLeast('StepLR', 'gamma', gamma, 0);
    this.initialStep();
  }

  protected override get name(): string { return 'StepLR'; }

  override lrsAt(epoch: number): number[] {
    return this.baseLrs.map((lr) => lr * this.gamma ** Math.floor(epoch / this.stepSize));
  }

  protected override hyperState(): SchedulerStateDict { return { stepSize: this.stepSize, gamma: this.gamma }; }

  protected override prepareHyper(sd: SchedulerStateDict): () => void {
    const stepSize = positiveInt('StepLR.loadStateDict', 'stepSize', savedNumber('StepLR', sd, 'stepSize'));
    const gamma = finiteAtLeast('StepLR.loadStateDict', 'gamma', savedNumber('StepLR', sd, 'gamma'), 0);
    return () => {
      this.stepSize = stepSize;
      this.gamma = gamma;
    };
  }
}

/** A function of the epoch giving the factor applied to a group's initial lr. */
export type LrLambda = (epoch: number) => number;

/**
 * lr = initialLr * lrLambda(epoch) (torch.optim.lr_scheduler.LambdaLR); one function, or one per
 * group. The functions are not part of the state dict (as in PyTorch for plain functions).
 */
export class LambdaLR extends LRScheduler {
  private readonly lambdas: LrLambda[];

  constructor(optimizer: AnyOptimizer, lrLambda: LrLambda | readonly LrLambda[]) {
    super(optimizer);
    const n = optimizer.paramGroups.length;
    if (typeof lrLambda === 'function') this.lambdas = Array.from({ length: n }, () => lrLambda);
    else {
      if (!Array.isArray(lrLambda) || !lrLambda.every((f) => typeof f === 'function')) throw new InvalidArgumentError('LambdaLR: lrLambda must be a function or an array of functions');
      if (lrLambda.length !== n) throw new InvalidArgumentError(`LambdaLR: expected ${n} lrLambdas (one per parameter group), got ${lrLambda.length}`);
      this.lambdas = [...lrLambda];
    }
    this.initialStep();
  }

  protected override get name(): string { return 'LambdaLR'; }

  override lrsAt(epoch: number): number[] {
    return this.baseLrs.map((lr, i) => lr * this.lambdas[i](epoch));
  }
}

/** Options of LinearLR. */
export interface LinearLROptions {
  /** Factor at epoch 0, in (0, 1] (default 1/3). */
  startFactor?: number;
  /** Factor from totalIters on, in [0, 1] (default 1). */
  endFactor?: number;
  /** Epochs over which the factor moves linearly (default 5). */
  totalIters?: number;
}

/**
 * lr = initialLr * (startFactor + (endFactor - startFactor) * min(epoch, totalIters) / totalIters)
 * (torch.optim.lr_scheduler.LinearLR).
 */
export class LinearLR extends LRScheduler {
  startFactor: number;
  endFactor: number;
  totalIters: number;

  constructor(optimizer: AnyOptimizer, options?: LinearLROptions) {
    super(optimizer);
    const { startFactor = 1 / 3, endFactor = 1, totalIters = 5 } = checkOptions(options, ['startFactor', 'endFactor', 'totalIters'], 'LinearLR');
    [this.startFactor, this.endFactor, this.totalIters] = LinearLR.check('LinearLR', startFactor, endFactor, totalIters);
    this.initialStep();
  }

  private static check(owner: string, start: unknown, end: unknown, total: unknown): [number, number, number] {
    if (!(typeof start === 'number' && start > 0 && start <= 1)) throw new InvalidArgumentError(`${owner}: startFactor must be in (0, 1], got ${String(start)}`);
    if (!(typeof end === 'number' && end >= 0 && end <= 1)) throw new InvalidArgumentError(`${owner}: endFactor must be in [0, 1], got ${String(end)}`);
    return [start, end, positiveInt(owner, 'totalIters', total)];
  }

  protected override get name(): string { return 'LinearLR'; }

  override lrsAt(epoch: number): number[] {
    const f = this.startFactor + ((this.endFactor - this.startFactor) * Math.min(epoch, this.totalIters)) / this.totalIters;
    return this.baseLrs.map((lr) => lr * f);
  }

  protected override hyperState(): SchedulerStateDict {
    return { startFactor: this.startFactor, endFactor: this.endFactor, totalIters: this.totalIters };
  }

  protected override prepareHyper(sd: SchedulerStateDict): () => void {
    const checked = LinearLR.check('LinearLR.loadStateDict', sd.startFactor, sd.endFactor, sd.totalIters);
    return () => {
      [this.startFactor, this.endFactor, this.totalIters] = checked;
    };
  }
}

/**
 * lr = etaMin + (initialLr - etaMin) * (1 + cos(pi * epoch / tMax)) / 2
 * (torch.optim.lr_scheduler.CosineAnnealingLR, its closed form; past tMax the cosine goes on).
 */
export class CosineAnnealingLR extends LRScheduler {
  tMax: number;
  etaMin: number;

  constructor(optimizer: AnyOptimizer, tMax: number, etaMin = 0) {
    super(optimizer);
    this.tMax = positiveInt('CosineAnnealingLR', 'tMax', tMax);
    this.etaMin = finiteAtLeast('CosineAnnealingLR', 'etaMin', etaMin, 0);
    this.initialStep();
  }

  protected override get name(): string { return 'CosineAnnealingLR'; }

  override lrsAt(epoch: number): number[] {
    const c = (1 + Math.cos((Math.PI * epoch) / this.tMax)) / 2;
    return this.baseLrs.map((lr) => this.etaMin + (lr - this.etaMin) * c);
  }

  protected override hyperState(): SchedulerStateDict { return { tMax: this.tMax, etaMin: this.etaMin }; }

  protected override prepareHyper(sd: SchedulerStateDict): () => void {
    const tMax = positiveInt('CosineAnnealingLR.loadStateDict', 'tMax', savedNumber('CosineAnnealingLR', sd, 'tMax'));
    const etaMin = finiteAtLeast('CosineAnnealingLR.loadStateDict', 'etaMin', savedNumber('CosineAnnealingLR', sd, 'etaMin'), 0);
    return () => {
      this.tMax = tMax;
      this.etaMin = etaMin;
    };
  }
}

/**
 * Runs schedulers one after another (torch.optim.lr_scheduler.SequentialLR): schedulers[i] from
 * milestones[i - 1] on, its epochs counted from 0 at that milestone. The schedulers must drive the
 * same optimizer; there is one milestone fewer than schedulers.
 */
export class SequentialLR extends LRScheduler {
  readonly schedulers: readonly LRScheduler[];
  readonly milestones: readonly number[];

  constructor(optimizer: AnyOptimizer, schedulers: readonly LRScheduler[], milestones: readonly number[]) {
    super(optimizer);
    if (!Array.isArray(schedulers) || schedulers.length === 0) throw new InvalidArgumentError('SequentialLR: expected at least one scheduler');
    schedulers.forEach((s, i) => {
      if (!(s instanceof LRScheduler)) throw new InvalidArgumentError(`SequentialLR: schedulers[${i}] is not an LRScheduler`);
      if (s.optimizer !== optimizer) throw new InvalidArgumentError(`SequentialLR: schedulers[${i}] drives another optimizer than the one given`);
    });
    if (!Array.isArray(milestones) || milestones.length !== schedulers.length - 1) {
      throw new InvalidArgumentError(`SequentialLR: expected ${schedulers.length - 1} milestones (one fewer than schedulers), got ${Array.isArray(milestones) ? milestones.length : String(milestones)}`);
    }
    milestones.forEach((m, i) => {
      if (!(Number.isInteger(m) && m >= 1 && (i === 0 || m > milestones[i - 1]))) throw new InvalidArgumentError(`SequentialLR: milestones must be increasing integers >= 1, got [${milestones.join(', ')}]`);
    });
    this.schedulers = [...schedulers];
    this.milestones = [...milestones];
    // The sub-schedulers' own first steps changed the rates; PyTorch resets to initialLr, then starts the first.
    this.initialStep();
  }

  protected override get name(): string { return 'SequentialLR'; }

  private locate(epoch: number): [LRScheduler, number] {
    let i = 0;
    while (i < this.milestones.length && epoch >= this.milestones[i]) i++; // bisect_right
    return [this.schedulers[i], i === 0 ? epoch : epoch - this.milestones[i - 1]];
  }

  override lrsAt(epoch: number): number[] {
    const [s, local] = this.locate(epoch);
    return s.lrsAt(local);
  }

  override stepTo(epoch: number): void {
    if (!Number.isSafeInteger(epoch) || epoch < 0 || epoch > MAX_STEP) throw new InvalidArgumentError(`SequentialLR: epoch must be a non-negative integer no larger than 2^40, got ${describeValue(epoch)}`);
    const [s, local] = this.locate(epoch);
    s.stepTo(local);
    super.stepTo(epoch); // the same rates again, recorded here
  }

  override stateDict(): SchedulerStateDict {
    return { ...super.stateDict(), milestones: [...this.milestones], schedulers: this.schedulers.map((s) => s.stateDict()) };
  }

  protected override prepareHyper(sd: SchedulerStateDict): () => void {
    const ms = sd.milestones, subs = sd.schedulers;
    if (!Array.isArray(ms) || ms.length !== this.milestones.length || ms.some((m, i) => m !== this.milestones[i])) {
      throw new InvalidArgumentError(`SequentialLR.loadStateDict: milestones differ from this scheduler's [${this.milestones.join(', ')}]`);
    }
    if (!Array.isArray(subs) || subs.length !== this.schedulers.length || !subs.every((s) => typeof s === 'object' && s !== null && !Array.isArray(s))) {
      throw new InvalidArgumentError(`SequentialLR.loadStateDict: expected ${this.schedulers.length} scheduler states`);
    }
    // Every sub-state is checked before any sub-scheduler changes.
    const applies = (subs as SchedulerStateDict[]).map((s, i) => LRScheduler.prepareLoadOf(this.schedulers[i], s));
    return () => applies.forEach((apply) => apply());
  }
}

/** Options of cosineWithWarmup. */
export interface CosineWithWarmupOptions {
  /** Steps of linear warmup from 0 to the initial lr. */
  warmupSteps: number;
  /** Total steps: the cosine reaches its minimum at totalSteps. */
  totalSteps: number;
  /** The minimum as a fraction of the initial lr (default 0). */
  minLrRatio?: number;
  /** Cosine periods over the decay (default 0.5: one half-period down to the minimum). */
  numCycles?: number;
}

/**
 * Linear warmup from 0 then cosine decay to minLrRatio * initialLr, as transformers'
 * get_cosine_schedule_with_warmup (get_cosine_with_min_lr_schedule_with_warmup with min_lr_rate):
 * factor = step / max(1, warmupSteps) during warmup, then with p = (step - warmupSteps) /
 * max(1, totalSteps - warmupSteps): max(0, minLrRatio + (1 - minLrRatio) (1 + cos(2 pi numCycles p)) / 2).
 * As there, stepping past totalSteps continues the cosine: stop at totalSteps.
 */
export function cosineWithWarmup(optimizer: AnyOptimizer, options: CosineWithWarmupOptions): LambdaLR {
  const { warmupSteps, totalSteps, minLrRatio = 0, numCycles = 0.5 } = checkOptions(options, ['warmupSteps', 'totalSteps', 'minLrRatio', 'numCycles'], 'cosineWithWarmup') as CosineWithWarmupOptions;
  if (!(Number.isInteger(warmupSteps) && warmupSteps >= 0)) throw new InvalidArgumentError(`cosineWithWarmup: warmupSteps must be an integer >= 0, got ${String(warmupSteps)}`);
  if (!(Number.isInteger(totalSteps) && totalSteps >= warmupSteps)) throw new InvalidArgumentError(`cosineWithWarmup: totalSteps must be an integer >= warmupSteps (${warmupSteps}), got ${String(totalSteps)}`);
  if (!(typeof minLrRatio === 'number' && minLrRatio >= 0 && minLrRatio <= 1)) throw new InvalidArgumentError(`cosineWithWarmup: minLrRatio must be in [0, 1], got ${String(minLrRatio)}`);
  if (!(typeof numCycles === 'number' && Number.isFinite(numCycles) && numCycles >= 0)) throw new InvalidArgumentError(`cosineWithWarmup: numCycles must be a finite number >= 0, got ${String(numCycles)}`);
  return new LambdaLR(optimizer, (step) => {
    if (step < warmupSteps) return step / Math.max(1, warmupSteps);
    const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
    const factor = 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress));
    return Math.max(0, factor * (1 - minLrRatio) + minLrRatio);
  });
}
