// The optimizer base class (torch.optim.Optimizer): parameter groups with their hyperparameters,
// per-parameter state allocated lazily on the first step in the 'optimizer' memory category,
// zeroGrad, and stateDict/loadStateDict in PyTorch's layout (camelCase keys).
//
// step() only queues kernels: step counts live on the host (a number per parameter state), and
// nothing is ever read back, so a training loop never waits for the device inside step().
//
// Under a GradScaler, step({ foundInf }) is decided on the device: when the flag is set, every
// parameter and every state tensor keeps its bits (the fused AdamW kernel writes nothing; the
// composed updates compute into working copies committed with `where`). Whether a step counted is
// then known on the device first, so a parameter stepped with a flag gets a device step count
// (float32 [], as PyTorch's fused optimizers keep it), incremented on the device unless the flag is
// set. The host keeps its own count, assuming each step counted, and reconciles it from an
// asynchronous read of the flag (started by step(), never awaited there). Until those reads are
// back, step-dependent scalars (Adam's bias corrections, Adagrad's lr decay) are computed on the
// host, in float64 as always, for every count the device may hold, and the device picks the one
// for its count; once they are back (any await in the loop), there is one candidate and nothing to
// pick. stateDict() needs the host counts exact: `await optimizer.synchronize()` first.
import { observeOp } from '../backend/op_context.js';
import { describeValue, InvalidArgumentError, MemfitError, ShapeMismatchError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { addBackwardGuard, checkZeroGradOptions, currentBackwardRoot, Variable, type ZeroGradOptions } from '../autograd/variable.js';
import { clipGradNorm } from './clip_grad.js';
import type { Backend, BinaryOp, CastOptions, TensorRef, UnaryOp } from '../backend/backend.js';
import { blockCount, DEFAULT_BLOCK_SIZE } from '../backend/quant.js';
import { defaultGenerator } from '../random.js';

/**
 * How an optimizer writes parameters stored in a lower precision than float32 (a model cast with
 * `model.to('bfloat16')` or built after `setDefaultDtype('bfloat16')`). Without these options the
 * update is computed in float32 from the parameter's value and rounded into its dtype once,
 * nearest-even: updates smaller than half a unit in the last place are lost (bfloat16 keeps 8
 * significant bits). Options of any optimizer and of each parameter group.
 */
export interface WeightPrecisionOptions {
  /**
   * Keep a float32 master copy of every parameter that is not float32 (state key `master`, in the
   * 'optimizer' category: 4 bytes a parameter): the update runs on it and the parameter is its
   * rounding, so small updates accumulate (apex's O2, mixed precision with a half-precision model).
   * Default false.
   */
  masterWeights?: boolean;
  /**
   * Round updated weights into the parameter's dtype stochastically (unbiased: a value rounds up
   * with probability proportional to its distance from the lower neighbour; torchao's
   * `bf16_stochastic_round`), so small updates survive on average without master weights.
   * Default false.
   */
  stochasticRounding?: boolean;
  /**
   * Seed of the stochastic-rounding stream (an integer in [0, 2^32)). Drawn from the default
   * generator when a group asks for stochastic rounding without one (so `manualSeed` makes runs
   * reproducible). Each parameter's stream advances at every step (its state's `roundingStep`).
   */
  roundingSeed?: number;
}

const WEIGHT_PRECISION_KEYS = ['masterWeights', 'stochasticRounding', 'roundingSeed'] as const;

/** State an optimizer keeps outside its per-parameter records (paged state): its lifecycle follows the optimizer's. */
export interface OptimizerAttachment {
  /** Frees what it holds. */
  dispose(): void;
  /** Waits until everything it moves is in place. */
  settle(): Promise<void>;
  /** Throws (naming `what`) while something is still on its way. */
  checkSettled(what: string): void;
}

/** Hyperparameters every optimizer has: the learning rate that schedulers set, and how low-precision weights are written. */
export interface OptimizerHyper extends WeightPrecisionOptions {
  lr: number;
}

/** One parameter group: its parameters and its hyperparameters (initialLr is set by LR schedulers). */
export type ParamGroup<H extends OptimizerHyper> = H & { params: Variable[]; initialLr?: number };

/** A parameter group as given to a constructor or addParamGroup: hyperparameters not given come from the defaults. */
export type ParamGroupInput<H extends OptimizerHyper> = Partial<H> & { params: Iterable<Variable>; initialLr?: number };

/** What a constructor takes: parameters, or parameter groups. */
export type ParamsInput<H extends OptimizerHyper> = Iterable<Variable> | readonly ParamGroupInput<H>[];

/** State of one parameter: float32 tensors (in the 'optimizer' category) and numbers (step counts). */
export type ParamState = Record<string, Tensor | number>;


/**
 * Largest step count (an optimizer's per-parameter `step`, a scheduler's `lastEpoch`) a saved state
 * may hold: 2^40, about 10^12 steps, far beyond any run; 2^53 is where counting stops being exact,
 * and learning-rate formulas lose their precision well before.
 */
export const MAX_STEP = 2 ** 40;

/** A parameter group in a state dict: hyperparameters and parameter ids. */
export type ParamGroupState<H extends OptimizerHyper> = H & { params: number[]; initialLr?: number };

/**
 * PyTorch's optimizer state_dict in camelCase: `state` by parameter id (ids number the parameters
 * in order across groups) and the groups' hyperparameters with the ids of their parameters.
 */
export interface OptimizerStateDict<H extends OptimizerHyper> {
  state: Record<number, ParamState>;
  paramGroups: ParamGroupState<H>[];
}

/** Options of Optimizer.step. */
export interface StepOptions {
  /**
   * A found-inf flag on the parameters' backend (float32, one element), as GradScaler.step passes
   * it: where it is nonzero on the device, the step changes nothing (parameters, state tensors and
   * step counts keep their values). Nothing is read back before the update.
   */
  foundInf?: Tensor;
}

/**
 * What an update under a found-inf flag gets (`null` for plain steps of parameters whose counts
 * the host knows): the flag, the parameter's step count on the device, and the host's bounds of
 * that count.
 */
export interface SkipContext {
  /** float32, one element: nonzero means this step changes nothing. */
  readonly foundInf: Tensor;
  /** float32 []: the steps this parameter took before this one, on the device (skipped ones not counted). */
  readonly step: Tensor;
  /** The device count is one of lo, lo + 1, ..., hi (hi - lo steps' flags are not read back yet). */
  readonly lo: number;
  readonly hi: number;
}

/** A parameter stepped under a found-inf flag: its device step count and the host's view of it. */
interface Tracked {
  readonly step: Tensor;
  /** The host's count, assuming every step whose flag is not back yet counted. */
  hi: number;
  /** Steps whose flag is not back yet. */
  pending: number;
}

/** The state keys an optimizer keeps for a parameter of a group with given hyperparameters. */
export interface StateSpec {
  tensors: readonly string[];
  numbers: readonly string[];
  /**
   * States kept block-wise quantized (8-bit optimizers): key K is stored as `${K}Codes` (uint8, the
   * parameter's shape) and `${K}Absmax` (float32, one per block of `blockSize`).
   */
  quantized?: readonly string[];
  blockSize?: number;
}

/** Group options of the 8-bit optimizers; a 32-bit optimizer loading their state dict drops them. */
export const OPTIM8BIT_GROUP_KEYS: readonly string[] = ['optimBits', 'minSize8bit', 'blockSize', 'paged', 'pagedBudget'];

/** State keys of second moments (non-negative: quantized with the unsigned map); every other state uses the signed map. */
export const UNSIGNED_STATE_KEYS: ReadonlySet<string> = new Set(['expAvgSq', 'maxExpAvgSq', 'squareAvg', 'sum']);

/** A use of gradient release (Optimizer.attachToBackward) that cannot give a correct step; the message says why. */
export class GradientReleaseError extends MemfitError {
  constructor(message: string) {
    super('GRADIENT_RELEASE', message);
  }
}

/** Options of Optimizer.attachToBackward. */
export interface GradientReleaseOptions {
  /**
   * Clip each parameter's gradient to this norm (its own norm, clipGradNorm([param], maxGradNorm)),
   * before its update; 0 or absent: no clipping. A global norm over all gradients cannot be had
   * (no two gradients exist at once): clipGradNorm on released parameters throws.
   */
  maxGradNorm?: number;
  /** The norm of maxGradNorm (2 by default; Infinity for the largest absolute value). */
  normType?: number;
}

/** Parameters whose optimizer steps inside backward (attachToBackward), with the optimizer's name. */
const releasedParams = new WeakMap<Variable, string>();

/** The name of the optimizer that steps `v` inside backward, or undefined. */
export function releasingOptimizer(v: Variable): string | undefined {
  return releasedParams.get(v);
}

/** Losses scaled by a GradScaler (GradScaler.scale marks them): a backward from one cannot release gradients. */
const scaledLosses = new WeakSet<Variable>();

/** Marks v as a loss scaled by a GradScaler (GradScaler.scale calls it). */
export function markScaledLoss(v: Variable): void {
  scaledLosses.add(v);
}

// Gradient release, checked when a backward starts: a scaled loss reaching a released parameter is
// refused before any gradient exists; a backward that throws frees the gradients released
// parameters got (they hold none between backwards: the next backward would add onto them).
addBackwardGuard({
  start(root, hooked) {
    if (!scaledLosses.has(root)) return;
    const owner = hooked.map((v) => releasedParams.get(v)).find((n) => n !== undefined);
    if (owner !== undefined) {
      throw new GradientReleaseError(`${owner}: gradient release cannot run under a GradScaler: a gradient found non-finite late in backward would come after earlier parameters were updated. Use bfloat16 (no scaler needed) or detach the optimizer`);
    }
  },
  failed(_root, hooked) {
    for (const v of hooked) if (releasedParams.has(v)) v.zeroGrad();
  },
});

// PyTorch options that change nothing here (or that cannot be honoured), named in the error.
const UNSUPPORTED_OPTIONS: Record<string, string> = {
  foreach: 'memfit updates each parameter with its own kernels; drop the option',
  fused: 'AdamW already uses one fused kernel per parameter; drop the option',
  capturable: 'there are no CUDA graphs here; drop the option',
  differentiable: 'optimizer steps are not recorded by autograd',
  decoupledWeightDecay: 'use AdamW for decoupled weight decay',
};

/** Base class of the optimizers (torch.optim.Optimizer). */
export abstract class Optimizer<H extends OptimizerHyper> {
  /** The parameter groups; a group's hyperparameters may be changed between steps (schedulers set lr). */
  readonly paramGroups: ParamGroup<H>[] = [];
  /** Hyperparameters a group gets when it does not give its own. */
  readonly defaults: Readonly<H>;
  private readonly state = new Map<Variable, ParamState>();
  /** Parameters stepped under a found-inf flag (see the header). */
  private readonly tracked = new Map<Variable, Tracked>();
  /** Bumped when the state is replaced: flags read back later belong to the old state. */
  private epoch = 0;
  private readonly inflight = new Set<Promise<void>>();
  private readFailure: unknown = null;
  /** State kept outside `state` (paged 8-bit state in host memory): freed, settled and checked with it. */
  protected readonly attachments: OptimizerAttachment[] = [];
  /** Group options that stay this optimizer's own across loadStateDict (where state lives, not what it is). */
  protected readonly ownGroupKeys: readonly string[] = [];
  /** The hooks' removers while attached to backward (gradient release), else null. */
  private release: (() => void)[] | null = null;

  /** `defaults` are the optimizer's own (PyTorch's) defaults; `options` override them (unknown keys are errors). */
  constructor(params: ParamsInput<H>, defaults: H, options: Partial<H> = {}) {
    if (typeof options !== 'object' || options === null) throw new InvalidArgumentError(`${this.name}: options must be an object`);
    this.defaults = cloneHyper(defaults);
    this.checkKeys(options as Record<string, unknown>, 'options', false);
    this.defaults = { ...this.defaults, ...cloneHyper(options) };
    this.validateGroup(this.defaults);
    checkWeightPrecision(this.name, this.defaults);
    if (params instanceof Variable || params === null || typeof (params as Iterable<unknown>)?.[Symbol.iterator] !== 'function') {
      throw new InvalidArgumentError(`${this.name}: params must be an iterable of Variables or of parameter groups (wrap a single Variable in an array)`);
    }
    const items = [...(params as Iterable<Variable | ParamGroupInput<H>>)];
    if (items.length === 0) throw new InvalidArgumentError(`${this.name}: got an empty parameter list`);
    const groups: ParamGroupInput<H>[] = items.every((x) => x instanceof Variable)
      ? [{ params: items as Variable[] } as unknown as ParamGroupInput<H>]
      : items.map((x, i) => {
        if (x instanceof Variable || typeof x !== 'object' || x === null || !('params' in x)) {
          throw new InvalidArgumentError(`${this.name}: params must be Variables or parameter groups ({ params, ...hyperparameters }), item ${i} is neither`);
        }
        return x;
      });
    for (const g of groups) this.addParamGroup(g);
  }

  /** The optimizer's name in error messages and memory labels (subclasses override it). */
  protected get name(): string { return 'Optimizer'; }

  /** Throws InvalidArgumentError for a hyperparameter out of range. */
  protected abstract validateGroup(group: H): void;

  /** The state keys kept for `param` in `group` (what loadStateDict expects). */
  protected abstract stateSpec(group: H, param?: Variable): StateSpec;

  /**
   * Updates one parameter that has a gradient; `state` is its (possibly empty) state record, to fill
   * lazily. With `skip`, the update must leave the parameter and its state tensors bit-identical
   * where skip.foundInf is nonzero, and must take its step count from the device (see SkipContext).
   */
  protected abstract updateParam(param: Variable, grad: Tensor, group: ParamGroup<H>, state: ParamState, skip: SkipContext | null): void;

  /**
   * Whether updateParam steps `param` (stored below float32) in its own dtype, rounding its
   * float32 results with `paramRounding` as a cast of the whole would (the 8-bit optimizers' fused
   * kernels: a span of blocks at a time). Otherwise a parameter with stochastic rounding is stepped
   * through a float32 copy of the whole of it, rounded back afterwards.
   */
  protected roundsInPlace(_param: Variable, _group: ParamGroup<H>): boolean {
    return false;
  }

  /** The rounding of the in-place update under way (see roundsInPlace; nearest-even otherwise). */
  protected paramRounding: CastOptions = {};

  /** Steps a parameter's state records (its count before any device tracking): the state's `step`, or 0. */
  protected stepsTaken(state: ParamState): number {
    return typeof state.step === 'number' ? state.step : 0;
  }

  /** Adds a parameter group (torch add_param_group); hyperparameters not given come from the defaults. */
  addParamGroup(group: ParamGroupInput<H>): void {
    if (typeof group !== 'object' || group === null) throw new InvalidArgumentError(`${this.name}: a parameter group must be an object`);
    if (this.release) throw new GradientReleaseError(`${this.name}.addParamGroup: this optimizer steps inside backward (attachToBackward), and a parameter added now would never be stepped there; detach, add the group, then attach again`);
    const { params, ...hyper } = group;
    this.checkKeys(hyper, `param group ${this.paramGroups.length}`, true);
    if (params === undefined || params === null || typeof (params as Iterable<Variable>)[Symbol.iterator] !== 'function' || params instanceof Variable) {
      throw new InvalidArgumentError(`${this.name}: param group ${this.paramGroups.length}: params must be an iterable of Variables`);
    }
    const list = [...params];
    const seen = new Set<Variable>();
    for (const g of this.paramGroups) for (const p of g.params) seen.add(p);
    list.forEach((p, i) => {
      const where = `${this.name}: param group ${this.paramGroups.length}, parameter ${i}`;
      if (!(p instanceof Variable)) throw new InvalidArgumentError(`${where} is not a Variable`);
      if (!p.isLeaf) throw new InvalidArgumentError(`${where} is not a leaf Variable (the output of an op cannot be optimized)`);
      if (p.data.dtype === 'int32') throw new InvalidArgumentError(`${where} is int32; only float parameters can be optimized`);
      if (seen.has(p)) throw new InvalidArgumentError(`${where} appears more than once across parameter groups`);
      seen.add(p);
    });
    const full = { ...cloneHyper(this.defaults), ...cloneHyper(hyper as Partial<H>), params: list } as ParamGroup<H>;
    this.validateGroup(full);
    checkWeightPrecision(this.name, full);
    if (full.stochasticRounding && full.roundingSeed === undefined) full.roundingSeed = defaultGenerator.nextUint32();
    this.paramGroups.push(full);
  }

  /**
   * One optimization step over every parameter that has a gradient (the others are skipped). Queues
   * kernels; reads nothing back before the update. With `foundInf` (GradScaler.step passes it), the
   * step is skipped on the device where the flag is set.
   */
  step(options: StepOptions = {}): void {
    if (typeof options === 'function') throw new InvalidArgumentError(`${this.name}.step(closure) is not supported: compute the loss and call backward() before step()`);
    if (typeof options !== 'object' || options === null) throw new InvalidArgumentError(`${this.name}.step: options must be an object ({ foundInf })`);
    for (const k of Object.keys(options)) if (k !== 'foundInf') throw new InvalidArgumentError(`${this.name}.step: unknown option '${k}' (known: foundInf)`);
    if (this.release) throw new GradientReleaseError(`${this.name}.step: this optimizer steps inside backward (attachToBackward): each backward() already updated the parameters, and gradients cannot be accumulated over micro-batches. Call the function attachToBackward returned to detach and step by hand`);
    this.runStep(options.foundInf, null);
  }

  /** step() over every parameter with a gradient, or over `only` (gradient release). */
  private runStep(found: Tensor | undefined, only: Variable | null): void {
    // Everything is checked before the first update, so that an error leaves no half-made step.
    const work: [Variable, Tensor, ParamGroup<H>, number][] = [];
    let index = 0;
    for (const group of this.paramGroups) {
      this.validateGroup(group); // hyperparameters may have been changed since the last step
      checkWeightPrecision(this.name, group);
      for (const p of group.params) {
        const id = index++;
        const grad = p.grad;
        if (!grad || (only && p !== only)) continue;
        if (grad.shape.join() !== p.shape.join()) {
          throw new ShapeMismatchError(`${this.name}: parameter ${id} has shape [${p.shape.join(', ')}] but its grad has shape [${grad.shape.join(', ')}]`);
        }
        if (grad.backend !== p.backend) throw new InvalidArgumentError(`${this.name}: parameter ${id} is on the ${p.backend.kind} backend but its grad is on ${grad.backend.kind}`);
        if (grad.isDisposed) throw new InvalidArgumentError(`${this.name}: the grad of parameter ${id} was disposed`);
        if (p.data.offset !== 0 || !p.data.isContiguous) throw new InvalidArgumentError(`${this.name}: parameter ${id} is a view (offset ${p.data.offset}${p.data.strides ? `, strides [${p.data.strides.join(', ')}]` : ''}); optimizers update contiguous tensors that start at their storage's beginning (use a copy)`);
        this.checkStateLayout(p, group, id);
        work.push([p, grad, group, id]);
      }
    }
    if (found !== undefined) this.checkFlag(found, work);
    const flags = new Map<Backend, { flag: Tensor; notFound: Tensor; owned: Tensor[] }>();
    const flagged: Variable[] = [];
    const copies: Tensor[] = [];
    try {
      // Strided grads (a transpose() assigned to .grad) are copied contiguous before the first
      // update, so that a failure there leaves no half-made step.
      for (const w of work) {
        if (w[1].isContiguous) continue;
        w[1] = w[1].contiguous();
        copies.push(w[1]);
      }
      for (const [p, grad, group, id] of work) {
        const state = this.state.get(p) ?? {};
        let tr = this.tracked.get(p);
        if (found && !tr) tr = this.track(p, state);
        let skip: SkipContext | null = null;
        let f: { flag: Tensor; notFound: Tensor } | null = null;
        if (tr) {
          f = flags.get(p.backend) ?? this.flagsFor(p.backend, found, flags);
          skip = { foundInf: f.flag, step: tr.step, lo: tr.hi - tr.pending, hi: tr.hi };
        }
        observeOp(`${this.name}.step`, () => this.updateWeights(p, id, grad, group, state, skip)); // labels and observers, as every op
        if (Object.keys(state).length > 0) this.state.set(p, state);
        if (tr && f) {
          p.backend.binary('add', tr.step, f.notFound, tr.step); // counts unless the flag is set
          tr.hi += 1;
          if (found) {
            tr.pending += 1;
            flagged.push(p);
          }
        }
      }
      if (found && flagged.length > 0) this.reconcileLater(flags.get(found.backend)!.flag, flagged); // read before it is freed (in queue order)
    } finally {
      for (const { owned } of flags.values()) for (const t of owned) t.dispose();
      for (const t of copies) t.dispose();
    }
  }

  /**
   * Refuses a parameter whose state was made for other group options than its group's now (an 8-bit
   * optimizer's optimBits, minSize8bit or blockSize changed after the first step): stepping it
   * would read the state wrongly. Before any parameter is updated, so no step is half made.
   */
  private checkStateLayout(p: Variable, group: ParamGroup<H>, id: number): void {
    const state = this.state.get(p);
    if (!state) return;
    const spec = this.stateSpec(group, p), blockSize = spec.blockSize ?? DEFAULT_BLOCK_SIZE, blocks = blockCount(p.data.size, blockSize);
    const refuse = (held: string, wanted: string): never => {
      throw new InvalidArgumentError(`${this.name}: parameter ${id} holds ${held}, but its group now asks for ${wanted} (optimBits, minSize8bit or blockSize changed after the first step); state is not converted in place: save a state dict and load it into an optimizer made with the new options, which converts it`);
    };
    for (const k of spec.tensors) if (state[`${k}Codes`] instanceof Tensor) refuse(`8-bit ${k} state`, `32-bit ${k}`);
    for (const k of spec.quantized ?? []) {
      if (state[k] instanceof Tensor) refuse(`32-bit ${k} state`, `8-bit ${k}`);
      const absmax = state[`${k}Absmax`];
      if (absmax instanceof Tensor && absmax.size !== blocks) refuse(`8-bit ${k} state in ${absmax.size} blocks`, `${blocks} blocks of blockSize ${blockSize}`);
    }
  }

  /** True while attachToBackward is in force (the optimizer steps inside backward). */
  get attachedToBackward(): boolean { return this.release !== null; }

  /**
   * Gradient release (the optimizer step inside backward): from now on, during every backward(), as
   * soon as a parameter's gradient is complete (a post-accumulate-grad hook), this optimizer updates
   * that parameter exactly as step() would (same kernels, same state, same stochastic-rounding
   * stream) and frees its gradient, so gradients of only a few parameters exist at once. Each
   * backward() is one optimizer step: do not call step() (it throws) nor zeroGrad(); a scheduler
   * may set lr between backwards. Not compatible with: global-norm clipping (clipGradNorm on these
   * parameters throws; use options.maxGradNorm, per parameter), a GradScaler (a gradient found
   * non-finite late in backward would come after earlier parameters were updated: backward from a
   * scaled loss, GradScaler.unscale and GradScaler.step throw), and gradient accumulation over
   * micro-batches (no gradient outlives its backward, so there is nothing to accumulate: every
   * backward() is a step, and step() after several backwards throws). Attaching while a parameter
   * holds a gradient throws. Returns a function that detaches (step() works again).
   */
  attachToBackward(options: GradientReleaseOptions = {}): () => void {
    const where = `${this.name}.attachToBackward`;
    if (typeof options !== 'object' || options === null) throw new InvalidArgumentError(`${where}: options must be an object ({ maxGradNorm, normType })`);
    for (const k of Object.keys(options)) if (k !== 'maxGradNorm' && k !== 'normType') throw new InvalidArgumentError(`${where}: unknown option '${k}' (known: maxGradNorm, normType)`);
    const maxNorm = options.maxGradNorm ?? 0, normType = options.normType ?? 2;
    checkNumber(where, 'maxGradNorm', maxNorm);
    if (typeof normType !== 'number' || !(normType > 0)) throw new InvalidArgumentError(`${where}: normType must be a number > 0 or Infinity, got ${String(normType)}`);
    if (this.release) throw new GradientReleaseError(`${where}: already attached (call the function the first call returned to detach)`);
    const params = this.paramGroups.flatMap((g) => g.params);
    for (const p of params) {
      const other = releasedParams.get(p);
      if (other !== undefined) throw new GradientReleaseError(`${where}: a parameter is already released by another optimizer (${other})`);
      if (p.grad) throw new GradientReleaseError(`${where}: a parameter already holds a gradient (from a backward before attaching); call zeroGrad() first: gradients are not accumulated across backwards under gradient release`);
    }
    const frozen = params.findIndex((p) => !p.requiresGrad);
    if (frozen >= 0) {
      throw new GradientReleaseError(`${where}: parameter ${frozen} does not require grad; release hooks each parameter when it attaches, so one made trainable later would never be stepped: set requiresGrad first, or leave frozen parameters out of this optimizer`);
    }
    const removers: (() => void)[] = [];
    for (const p of params) {
      removers.push(p.registerPostAccumulateGradHook((v) => this.releaseParam(v, maxNorm, normType)));
      releasedParams.set(p, this.name);
    }
    // the hooks' removers, and last the release of the parameters (dispose() runs them all too)
    removers.push(() => { for (const p of params) releasedParams.delete(p); });
    this.release = removers;
    return () => this.detach(removers);
  }

  /** Runs the removers of the attachment in force, if it is `removers` (a stale detach does nothing). */
  private detach(removers: readonly (() => void)[] | null): void {
    if (removers === null || this.release !== removers) return;
    for (const r of removers) r();
    this.release = null;
  }

  /** The hook of gradient release: checks, clips (per parameter), steps `param` alone and frees its gradient. */
  private releaseParam(param: Variable, maxNorm: number, normType: number): void {
    const root = currentBackwardRoot();
    if (root && scaledLosses.has(root)) {
      throw new GradientReleaseError(`${this.name}: gradient release cannot run under a GradScaler: a gradient found non-finite late in backward would come after earlier parameters were updated. Use bfloat16 (no scaler needed) or detach the optimizer`);
    }
    const grad = param.grad;
    if (!grad) return;
    if (maxNorm > 0) clipGradNorm(param, maxNorm, normType).dispose();
    try {
      this.runStep(undefined, param);
    } finally {
      param.zeroGrad();
    }
  }

  /**
   * updateParam, with the weight-precision options of the group: a parameter stored below float32
   * is updated through a float32 version of it (its master copy, or a copy made for this step) and
   * rounded back (stochastically when asked). Under a found-inf flag the rounded value is
   * committed with `where`, so a skipped step leaves every bit of the parameter as it was.
   */
  private updateWeights(param: Variable, id: number, grad: Tensor, group: ParamGroup<H>, state: ParamState, skip: SkipContext | null): void {
    if (param.data.dtype === 'float32' || (!group.masterWeights && !group.stochasticRounding)) {
      return this.updateParam(param, grad, group, state, skip);
    }
    const nextRounding = (): CastOptions => {
      if (!group.stochasticRounding) return {};
      const n = typeof state.roundingStep === 'number' ? state.roundingStep : 0;
      state.roundingStep = n + 1;
      return { rounding: 'stochastic', seed: streamSeed(group.roundingSeed ?? 0, id, n) };
    };
    if (!group.masterWeights && !skip && this.roundsInPlace(param, group)) {
      // The kernel rounds its float32 results into the parameter itself, a span at a time: the
      // same bits as the float32 copy below, without a float32 copy of the whole parameter.
      this.paramRounding = nextRounding();
      try {
        return this.updateParam(param, grad, group, state, skip);
      } finally {
        this.paramRounding = {};
      }
    }
    const be = param.backend;
    const owned: Tensor[] = [];
    try {
      let weights: Tensor;
      if (group.masterWeights) {
        if (!(state.master instanceof Tensor)) {
          state.master = this.newState(param, 'master', null);
          be.cast(param.data, state.master); // exact: every lower-precision value is a float32
        }
        weights = state.master;
      } else {
        weights = Tensor.empty(be, param.shape, { dtype: 'float32', category: 'temporary', label: `${this.name} weights f32` });
        owned.push(weights);
        be.cast(param.data, weights);
      }
      this.updateParam(new Variable(weights, { requiresGrad: false }), grad, group, state, skip);
      const rounding = nextRounding();
      if (!skip) return be.cast(weights, param.data, rounding);
      const next = Tensor.empty(be, param.shape, { dtype: param.data.dtype, category: 'temporary', label: `${this.name} weights` });
      owned.push(next);
      be.cast(weights, next, rounding);
      be.where(skip.foundInf, param.data, next, param.data);
    } finally {
      for (const t of owned) t.dispose();
    }
  }

  /**
   * Waits until the found-inf flags of earlier steps are read back, so that the host's step counts
   * are exact (stateDict needs them). Any await in a training loop usually does it already.
   */
  async synchronize(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
    if (this.readFailure !== null) {
      const e = this.readFailure;
      this.readFailure = null;
      throw e;
    }
    for (const a of this.attachments) await a.settle();
  }

  private checkFlag(found: Tensor, work: readonly [Variable, Tensor, ParamGroup<H>, number][]): void {
    const where = `${this.name}.step: foundInf`;
    if (!(found instanceof Tensor)) throw new InvalidArgumentError(`${where} must be a Tensor (GradScaler's found-inf flag)`);
    if (found.isDisposed) throw new InvalidArgumentError(`${where} was disposed`);
    if (found.dtype !== 'float32' || found.size !== 1) throw new InvalidArgumentError(`${where} must be float32 with one element, got ${found.dtype} [${found.shape.join(', ')}]`);
    for (const [p] of work) {
      if (p.backend !== found.backend) throw new InvalidArgumentError(`${where} is on the ${found.backend.kind} backend but a parameter is on ${p.backend.kind}`);
    }
  }

  /** Starts the device step count of `param` from the host's (exact: no flag was pending). */
  private track(param: Variable, state: ParamState): Tracked {
    const count = this.stepsTaken(state);
    const tr: Tracked = { step: Tensor.from(param.backend, [count], [], { dtype: 'float32', category: 'optimizer', label: `${this.name}.step` }), hi: count, pending: 0 };
    this.tracked.set(param, tr);
    return tr;
  }

  /**
   * The flag of this step on `backend` as exactly 0 or 1 (a given flag normalised: any nonzero
   * value, NaN included, is 1; WGSL's `where` may not see a NaN as nonzero), and 1 - flag.
   */
  private flagsFor(backend: Backend, found: Tensor | undefined, into: Map<Backend, { flag: Tensor; notFound: Tensor; owned: Tensor[] }>): { flag: Tensor; notFound: Tensor } {
    const owned: Tensor[] = [];
    const make = (v: number | null, label: string) => {
      const t = v === null ? Tensor.empty(backend, [], { dtype: 'float32', category: 'temporary', label }) : Tensor.from(backend, [v], [], { dtype: 'float32', category: 'temporary', label });
      owned.push(t);
      return t;
    };
    const zero = make(0, 'zero'), one = make(1, 'one');
    let flag: Tensor;
    if (found) {
      const f0 = found.reshape([]); // a [1] flag as a scalar (a view)
      owned.push(f0);
      flag = make(null, 'found_inf');
      backend.where(f0, one, zero, flag); // finite nonzero: 1
      const copy = make(null, 'found_inf copy');
      backend.cast(f0, copy);
      backend.nonFiniteCheckAndUnscale([copy], flag, one); // NaN or inf: 1 (tested on the bits)
    } else flag = make(0, 'found_inf');
    const notFound = make(null, 'not found_inf');
    backend.where(flag, zero, one, notFound);
    const f = { flag, notFound, owned };
    into.set(backend, f);
    return f;
  }

  /** Reads the flag back asynchronously and then settles the host counts of `params` for that step. */
  private reconcileLater(found: Tensor, params: readonly Variable[]): void {
    const epoch = this.epoch;
    const read = found.backend.read(found.storage, found.offset * 4, 4); // the flag as it is now, in queue order
    const done = read.then((bytes) => {
      if (epoch !== this.epoch) return; // the state was replaced meanwhile
      const skipped = new DataView(bytes.buffer, bytes.byteOffset, 4).getFloat32(0, true) !== 0; // NaN counts as set
      for (const p of params) {
        const tr = this.tracked.get(p);
        if (!tr) continue;
        tr.pending -= 1;
        if (skipped) {
          tr.hi -= 1;
          const s = this.state.get(p);
          if (s && typeof s.step === 'number') s.step -= 1;
        }
      }
    }, (e: unknown) => {
      if (epoch === this.epoch) this.readFailure = e;
    }).finally(() => this.inflight.delete(done));
    this.inflight.add(done);
  }

  /** Throws unless every host step count is exact. */
  private requireSettled(what: string): void {
    let pending = 0;
    for (const tr of this.tracked.values()) pending = Math.max(pending, tr.pending);
    if (pending > 0) {
      throw new MemfitError('PENDING_STEPS', `${this.name}.${what}: the found-inf flags of ${pending} step(s) are still on the device, so the step counts are not known yet; await optimizer.synchronize() first`);
    }
    if (this.readFailure !== null) throw new MemfitError('PENDING_STEPS', `${this.name}.${what}: reading a found-inf flag back failed (${String(this.readFailure)}); the step counts are unknown`);
  }

  /** Whether param's state counts as taken (a parameter whose every step was skipped has none, as in PyTorch). */
  private hasState(param: Variable): boolean {
    const tr = this.tracked.get(param);
    return this.state.has(param) && (!tr || tr.hi > 0);
  }

  /** Drops the device step counts (the state is being replaced or freed). */
  private untrack(): void {
    this.epoch++;
    for (const tr of this.tracked.values()) tr.step.dispose();
    this.tracked.clear();
    this.readFailure = null;
  }

  /**
   * The bytes of state the next steps will allocate for parameters that hold none yet (the
   * 'optimizer' category): each state tensor of the parameter's group (float32, the parameter's
   * size; an 8-bit optimizer's quantized state a byte an element and a float32 absmax a block), and
   * the float32 master copy of a low-precision parameter under masterWeights. For a memory plan made
   * before the first step (`memfit train --memory-budget`). Paged 8-bit state counts in full, as on
   * wasm, where it stays (on WebGPU, where it lives in host memory, this is an upper bound).
   */
  stateBytesToCome(): number {
    let bytes = 0;
    for (const g of this.paramGroups) {
      for (const p of g.params) {
        if (!p.requiresGrad) continue;
        const state = this.state.get(p) ?? {};
        const spec = this.stateSpec(g, p), n = p.data.size;
        for (const k of spec.tensors) if (!(state[k] instanceof Tensor)) bytes += 4 * n;
        for (const k of spec.quantized ?? []) if (!(state[`${k}Codes`] instanceof Tensor)) bytes += n + 4 * blockCount(n, spec.blockSize ?? DEFAULT_BLOCK_SIZE);
        if (g.masterWeights && p.data.dtype !== 'float32' && !(state.master instanceof Tensor)) bytes += 4 * n;
      }
    }
    return bytes;
  }

  /**
   * Resets the gradients of every parameter. setToNone (the default, as PyTorch) frees them
   * (gradient memory goes back); setToNone: false keeps the buffers and writes zeros into them
   * (no device allocation; NaN or inf values become 0 too).
   */
  zeroGrad(options: ZeroGradOptions = {}): void {
    const { setToNone = true } = checkZeroGradOptions(options, `${this.name}.zeroGrad`);
    for (const g of this.paramGroups) {
      for (const p of g.params) {
        p.zeroGrad({ setToNone });
      }
    }
  }

  /**
   * The state of one parameter (its tensors are the optimizer's own: do not dispose them), or
   * undefined before its first step (a step skipped by a found-inf flag is none). Under a
   * GradScaler, the count here is the host's, which assumes that steps whose flag is not read back
   * yet counted (exact after synchronize()).
   */
  getState(param: Variable): Readonly<ParamState> | undefined {
    const s = this.state.get(param);
    return s && this.hasState(param) ? { ...s } : undefined;
  }

  /**
   * The state in PyTorch's layout. The tensors are the optimizer's own (not copies): do not
   * dispose them, and expect later steps to change them in place. After steps taken under a
   * GradScaler, await synchronize() first (the step counts must be back from the device); a
   * parameter whose steps were all skipped has no state, as in PyTorch.
   */
  stateDict(): OptimizerStateDict<H> {
    for (const a of this.attachments) a.checkSettled(`${this.name}.stateDict`);
    this.requireSettled('stateDict');
    const state: Record<number, ParamState> = {};
    const paramGroups: ParamGroupState<H>[] = [];
    let index = 0;
    for (const g of this.paramGroups) {
      const ids: number[] = [];
      for (const p of g.params) {
        const s = this.state.get(p);
        if (s && this.hasState(p)) state[index] = { ...s };
        ids.push(index++);
      }
      const { params: _params, ...hyper } = g;
      paramGroups.push({ ...cloneHyper(hyper as unknown as H), params: ids } as ParamGroupState<H>);
    }
    return { state, paramGroups };
  }

  /**
   * Loads a state dict (from stateDict(), here or in another optimizer of the same kind over
   * parameters of the same shapes). Checks everything first, then copies the tensors into newly
   * allocated 'optimizer' tensors (a source may have another float dtype but must be on the
   * parameters' backend), and restores hyperparameters and step counts.
   */
  loadStateDict(stateDict: OptimizerStateDict<H>): void {
    const where = `${this.name}.loadStateDict`;
    if (typeof stateDict !== 'object' || stateDict === null || !Array.isArray(stateDict.paramGroups) || typeof stateDict.state !== 'object' || stateDict.state === null) {
      throw new InvalidArgumentError(`${where}: expected { state, paramGroups }`);
    }
    const saved = stateDict.paramGroups;
    if (saved.length !== this.paramGroups.length) {
      throw new InvalidArgumentError(`${where}: the state dict has ${saved.length} parameter groups, this optimizer has ${this.paramGroups.length}`);
    }
    // Saved ids map, in order, onto this optimizer's parameters (as PyTorch zips them).
    const byId = new Map<number, { param: Variable; group: number }>();
    const newHyper: H[] = [];
    saved.forEach((sg, gi) => {
      if (typeof sg !== 'object' || sg === null || !Array.isArray(sg.params)) throw new InvalidArgumentError(`${where}: paramGroups[${gi}] has no params array`);
      const mine = this.paramGroups[gi].params;
      if (sg.params.length !== mine.length) {
        throw new InvalidArgumentError(`${where}: paramGroups[${gi}] has ${sg.params.length} parameters in the state dict, ${mine.length} here`);
      }
      sg.params.forEach((id, k) => {
        if (!Number.isInteger(id)) throw new InvalidArgumentError(`${where}: paramGroups[${gi}].params[${k}] is not an integer id`);
        if (byId.has(id)) throw new InvalidArgumentError(`${where}: parameter id ${id} appears twice in paramGroups`);
        byId.set(id, { param: mine[k], group: gi });
      });
      const { params: _params, ...hyper } = sg;
      // The 8-bit optimizers' group options mean nothing to a 32-bit optimizer (their state is converted below).
      for (const k of OPTIM8BIT_GROUP_KEYS) if (!(k in this.defaults)) delete (hyper as Record<string, unknown>)[k];
      this.checkKeys(hyper, `paramGroups[${gi}]`, true);
      const merged = { ...cloneHyper(this.defaults), ...cloneHyper(hyper as unknown as H) };
      this.validateGroup(merged);
      checkWeightPrecision(this.name, merged);
      newHyper.push(merged);
    });
    const plan: { param: Variable; values: Record<string, Tensor | number> }[] = [];
    const converted: Tensor[] = []; // made by converting between 8-bit and 32-bit state; freed at the end
    const fresh = new Map<Variable, ParamState>();
    try {
      for (const [key, rawEntry] of Object.entries(stateDict.state)) {
        const id = Number(key);
        const target = byId.get(id);
        if (!target) throw new InvalidArgumentError(`${where}: state has an entry for parameter id ${key}, which no parameter group lists`);
        if (typeof rawEntry !== 'object' || rawEntry === null) throw new InvalidArgumentError(`${where}: state[${id}] is not an object`);
        const { param } = target;
        const spec = this.stateSpec(newHyper[target.group], param);
        const savedBlock = (saved[target.group] as unknown as Record<string, unknown>).blockSize;
        const entry = convertEntry(rawEntry as Record<string, unknown>, param, spec, typeof savedBlock === 'number' ? savedBlock : DEFAULT_BLOCK_SIZE, converted, `${where}: state[${id}]`);
        const quantized = spec.quantized ?? [];
        // A parameter below float32 may also have a master copy and a rounding-stream position (both
        // optional: a state saved without them starts them at the next step).
        const lowPrecision = param.data.dtype !== 'float32';
        const optional = [
          ...(lowPrecision && newHyper[target.group].masterWeights ? ['master'] : []),
          ...(lowPrecision && newHyper[target.group].stochasticRounding ? ['roundingStep'] : []),
        ];
        const expected = new Set([...spec.tensors, ...spec.numbers, ...optional, ...quantized.flatMap((k) => [`${k}Codes`, `${k}Absmax`])]);
        for (const k of Object.keys(entry)) {
          if (!expected.has(k)) throw new InvalidArgumentError(`${where}: state[${id}] has key '${k}', which ${this.name} with these hyperparameters does not keep (expected ${[...expected].join(', ') || 'no state'})`);
        }
        const present = (k: string) => optional.includes(k) && entry[k] !== undefined;
        for (const k of [...spec.numbers, ...['roundingStep'].filter(present)]) {
          const v = entry[k];
          if (!(typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= MAX_STEP)) throw new InvalidArgumentError(`${where}: state[${id}].${k} must be a non-negative integer no larger than 2^40, got ${describeValue(v)}`);
        }
        for (const k of [...spec.tensors, ...['master'].filter(present)]) {
          const t = entry[k];
          if (!(t instanceof Tensor)) throw new InvalidArgumentError(`${where}: state[${id}].${k} is missing or not a Tensor`);
          if (t.isDisposed) throw new InvalidArgumentError(`${where}: state[${id}].${k} was disposed`);
          if (t.backend !== param.backend) {
            throw new InvalidArgumentError(`${where}: state[${id}].${k} is on the ${t.backend.kind} backend but parameter ${id} is on ${param.backend.kind}; move it with toBackend()`);
          }
          if (t.dtype === 'int32' || t.dtype === 'uint8') throw new InvalidArgumentError(`${where}: state[${id}].${k} is ${t.dtype}; optimizer state is float`);
          if (t.shape.join() !== param.shape.join()) {
            throw new ShapeMismatchError(`${where}: state[${id}].${k} has shape [${t.shape.join(', ')}] but parameter ${id} has shape [${param.shape.join(', ')}]`);
          }
        }
        for (const k of quantized) {
          const blocks = blockCount(param.data.size, spec.blockSize ?? DEFAULT_BLOCK_SIZE);
          for (const [key2, dtype, shape] of [[`${k}Codes`, 'uint8', param.shape], [`${k}Absmax`, 'float32', [blocks]]] as const) {
            const t = entry[key2];
            if (!(t instanceof Tensor)) throw new InvalidArgumentError(`${where}: state[${id}].${key2} is missing or not a Tensor`);
            if (t.isDisposed) throw new InvalidArgumentError(`${where}: state[${id}].${key2} was disposed`);
            if (t.backend !== param.backend) throw new InvalidArgumentError(`${where}: state[${id}].${key2} is on the ${t.backend.kind} backend but parameter ${id} is on ${param.backend.kind}; move it with toBackend()`);
            if (t.dtype !== dtype || t.shape.join() !== shape.join()) {
              throw new ShapeMismatchError(`${where}: state[${id}].${key2} is ${t.dtype} [${t.shape.join(', ')}], expected ${dtype} [${shape.join(', ')}] (blocks of ${spec.blockSize ?? DEFAULT_BLOCK_SIZE})`);
            }
          }
        }
        plan.push({ param, values: entry as Record<string, Tensor | number> });
      }
      // Everything checked: copy first (a source may be one of our own tensors), then swap in.
      try {
        for (const { param, values } of plan) {
          const s: ParamState = {};
          fresh.set(param, s); // before the copies: freed with the rest if one fails
          for (const [k, v] of Object.entries(values)) {
            if (typeof v === 'number') s[k] = v;
            else {
              const codes = v.dtype === 'uint8', absmax = k.endsWith('Absmax');
              const copy = Tensor.empty(param.backend, absmax ? v.shape : param.shape, { dtype: codes ? 'uint8' : 'float32', category: 'optimizer', label: `${this.name}.${k}` });
              s[k] = copy;
              param.backend.cast(v, copy);
            }
          }
        }
      } catch (e) {
        for (const s of fresh.values()) disposeState(s);
        throw e;
      }
    } finally {
      for (const t of converted) t.dispose();
    }
    for (const s of this.state.values()) disposeState(s);
    this.state.clear();
    this.untrack(); // the loaded counts are exact host numbers
    for (const [p, s] of fresh) this.state.set(p, s);
    this.paramGroups.forEach((g, gi) => {
      const own = Object.fromEntries(this.ownGroupKeys.filter((k) => k in g).map((k) => [k, (g as unknown as Record<string, unknown>)[k]]));
      for (const k of Object.keys(g)) if (k !== 'params') delete (g as unknown as Record<string, unknown>)[k];
      Object.assign(g, newHyper[gi], own);
    });
  }

  /** Frees the optimizer's state (every parameter starts afresh at its next step). */
  dispose(): void {
    this.detach(this.release); // first: a disposed optimizer must not step (and make state again) inside a later backward
    for (const s of this.state.values()) disposeState(s);
    this.state.clear();
    this.untrack();
    for (const a of this.attachments) a.dispose();
  }

  /** A float32 state tensor for `param` in the 'optimizer' category, filled with `value` (null: left for the caller to write). */
  protected newState(param: Variable, key: string, value: number | null = 0): Tensor {
    const t = Tensor.empty(param.backend, param.shape, { dtype: 'float32', category: 'optimizer', label: `${this.name}.${key}` });
    try {
      if (value !== null) fillTensor(t, value);
    } catch (e) {
      t.dispose();
      throw e;
    }
    return t;
  }

  private checkKeys(hyper: Record<string, unknown>, what: string, allowInitialLr: boolean): void {
    const known = [...new Set([...Object.keys(this.defaults), ...WEIGHT_PRECISION_KEYS])];
    for (const k of Object.keys(hyper)) {
      if (k === 'initialLr' && allowInitialLr) {
        const v = hyper[k];
        if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v >= 0)) throw new InvalidArgumentError(`${this.name}: ${what}: initialLr must be a finite number >= 0, got ${String(v)}`);
        continue;
      }
      if (k in UNSUPPORTED_OPTIONS) throw new InvalidArgumentError(`${this.name}: option '${k}' is not supported (${UNSUPPORTED_OPTIONS[k]})`);
      if (!known.includes(k)) throw new InvalidArgumentError(`${this.name}: ${what}: unknown option '${k}' (known: ${known.join(', ')})`);
    }
  }
}

/** Throws unless the weight-precision options of a group are valid. */
function checkWeightPrecision(owner: string, g: WeightPrecisionOptions): void {
  if (g.masterWeights !== undefined) checkBool(owner, 'masterWeights', g.masterWeights);
  if (g.stochasticRounding !== undefined) checkBool(owner, 'stochasticRounding', g.stochasticRounding);
  const s = g.roundingSeed;
  if (s !== undefined && !(Number.isInteger(s) && s >= 0 && s < 2 ** 32)) {
    throw new InvalidArgumentError(`${owner}: roundingSeed must be an integer in [0, 2^32), got ${describeValue(s)}`);
  }
}

/**
 * The stochastic-rounding seed of parameter `id` at its `step`-th rounding: the three numbers mixed
 * (splitmix64's finalizer over a weighted sum), so every parameter and every step draws a fresh
 * stream from one group seed.
 */
export function streamSeed(seed: number, id: number, step: number): bigint {
  const M = (1n << 64n) - 1n;
  let z = (BigInt(seed) * 0x9e3779b97f4a7c15n + BigInt(id) * 0xbf58476d1ce4e5b9n + BigInt(step) * 0x94d049bb133111ebn + 1n) & M;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
  return z ^ (z >> 31n);
}

/**
 * A saved state entry in the layout this optimizer keeps for `param`: 8-bit states (`${K}Codes`,
 * `${K}Absmax`) dequantized where a float32 K is expected (a 32-bit optimizer, or a parameter that
 * keeps 32-bit state), float32 states quantized where the spec wants them 8-bit. New tensors go to
 * `made` (the caller frees them after copying).
 */
function convertEntry(entry: Record<string, unknown>, param: Variable, spec: StateSpec, savedBlockSize: number, made: Tensor[], where: string): Record<string, unknown> {
  const out = { ...entry };
  const b = param.backend;
  for (const k of spec.tensors) {
    const codes = out[`${k}Codes`], absmax = out[`${k}Absmax`];
    if (k in out || !(codes instanceof Tensor) || !(absmax instanceof Tensor)) continue;
    if (codes.isDisposed || absmax.isDisposed) throw new InvalidArgumentError(`${where}.${k}Codes / ${k}Absmax was disposed`);
    if (codes.backend !== b || absmax.backend !== b) throw new InvalidArgumentError(`${where}.${k}Codes is on the ${codes.backend.kind} backend but the parameter is on ${b.kind}; move it with toBackend()`);
    if (codes.dtype !== 'uint8' || codes.size !== param.data.size || absmax.dtype !== 'float32' || absmax.size !== blockCount(param.data.size, savedBlockSize)) {
      throw new ShapeMismatchError(`${where}: ${k}Codes / ${k}Absmax (${codes.dtype} [${codes.shape.join(', ')}], ${absmax.dtype} [${absmax.shape.join(', ')}]) do not fit the parameter's ${param.data.size} elements in blocks of ${savedBlockSize}`);
    }
    const t = Tensor.empty(b, param.shape, { dtype: 'float32', category: 'temporary', label: `${k} dequantized` });
    made.push(t);
    b.dequantizeBlockwise(codes, absmax, t, !UNSIGNED_STATE_KEYS.has(k), savedBlockSize);
    out[k] = t;
    delete out[`${k}Codes`];
    delete out[`${k}Absmax`];
  }
  for (const k of spec.quantized ?? []) {
    const v = out[k];
    if (`${k}Codes` in out || !(v instanceof Tensor)) continue;
    if (v.isDisposed) throw new InvalidArgumentError(`${where}.${k} was disposed`);
    if (v.backend !== b) throw new InvalidArgumentError(`${where}.${k} is on the ${v.backend.kind} backend but the parameter is on ${b.kind}; move it with toBackend()`);
    if (v.dtype === 'int32' || v.dtype === 'uint8' || v.size !== param.data.size) throw new ShapeMismatchError(`${where}.${k} is ${v.dtype} [${v.shape.join(', ')}]; expected a float tensor of the parameter's ${param.data.size} elements`);
    const block = spec.blockSize ?? DEFAULT_BLOCK_SIZE;
    let x = v;
    if (v.dtype !== 'float32' || v.offset !== 0) {
      x = Tensor.empty(b, param.shape, { dtype: 'float32', category: 'temporary', label: `${k} float32` });
      made.push(x);
      b.cast(v, x);
    }
    const codes = Tensor.empty(b, param.shape, { dtype: 'uint8', category: 'temporary', label: `${k}Codes` });
    made.push(codes);
    const absmax = Tensor.empty(b, [blockCount(param.data.size, block)], { dtype: 'float32', category: 'temporary', label: `${k}Absmax` });
    made.push(absmax);
    b.quantizeBlockwise(x, codes, absmax, !UNSIGNED_STATE_KEYS.has(k), block);
    out[`${k}Codes`] = codes;
    out[`${k}Absmax`] = absmax;
    delete out[k];
  }
  return out;
}

function disposeState(s: ParamState): void {
  for (const v of Object.values(s)) if (v instanceof Tensor) v.dispose();
}

function cloneHyper<T>(h: T): T {
  const out: Record<string, unknown> = {};
  // An option given as undefined counts as not given (the default applies).
  for (const [k, v] of Object.entries(h as Record<string, unknown>)) if (v !== undefined) out[k] = Array.isArray(v) ? [...v] : v;
  return out as T;
}

// ---- validation helpers shared by the optimizers -----------------------------------------------

/** Throws unless v is a finite number >= min (or > min when exclusive). */
export function checkNumber(owner: string, name: string, v: unknown, min = 0, exclusive = false): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || (exclusive ? v <= min : v < min)) {
    throw new InvalidArgumentError(`${owner}: invalid ${name} ${String(v)}: expected a finite number ${exclusive ? '>' : '>='} ${min}`);
  }
}

/** Throws unless v is a boolean. */
export function checkBool(owner: string, name: string, v: unknown): void {
  if (typeof v !== 'boolean') throw new InvalidArgumentError(`${owner}: ${name} must be true or false, got ${String(v)}`);
}

/** Throws unless betas is a pair of numbers in [0, 1). */
export function checkBetas(owner: string, betas: unknown): void {
  if (!Array.isArray(betas) || betas.length !== 2) throw new InvalidArgumentError(`${owner}: betas must be a pair [beta1, beta2], got ${String(betas)}`);
  betas.forEach((b, i) => {
    if (typeof b !== 'number' || !(b >= 0 && b < 1)) throw new InvalidArgumentError(`${owner}: invalid beta parameter at index ${i}: ${String(b)} (expected 0 <= beta < 1)`);
  });
}

// ---- device helpers ------------------------------------------------------------------------------

/** Sets every element of t to `value` on the device (the backend's fill kernel: nothing uploaded, exact whatever t held before). */
export function fillTensor(t: Tensor, value: number): void {
  t.backend.fill(t, value);
}

/**
 * Elementwise kernels for a step, with its float32 temporaries ('temporary' category) freed by
 * dispose(). Outputs may be inputs (in place) on every backend.
 */
export class StepOps {
  private readonly temps: Tensor[] = [];

  constructor(readonly backend: Backend) {}

  /** A float32 temporary of this shape, freed by dispose(). */
  temp(shape: readonly number[], label = 'optimizer temp'): Tensor {
    const t = Tensor.empty(this.backend, shape, { dtype: 'float32', category: 'temporary', label });
    this.temps.push(t);
    return t;
  }

  /** out = op(x, alpha); out may be x. */
  unary(op: UnaryOp, x: TensorRef, out: TensorRef, alpha?: number): void {
    this.backend.unary(op, x, out, alpha);
  }

  /** out = op(a, b) with broadcasting; out may be a or b. */
  binary(op: BinaryOp, a: TensorRef, b: TensorRef, out: TensorRef): void {
    this.backend.binary(op, a, b, out);
  }

  /**
   * The update direction: grad (negated when maximizing) plus weightDecay * p (L2), in a
   * temporary; grad itself when neither applies.
   */
  direction(p: Tensor, grad: Tensor, weightDecay: number, maximize: boolean): Tensor {
    if (weightDecay === 0 && !maximize) return grad;
    const d = this.temp(p.shape);
    if (weightDecay === 0) {
      this.unary('neg', grad, d);
      return d;
    }
    this.unary('scale', p, d, weightDecay);
    this.binary(maximize ? 'sub' : 'add', d, grad, d); // wd * p - grad = -grad + wd * p
    return d;
  }

  /** out = x (converted to out's dtype; exact for the same dtype). */
  copy(x: TensorRef, out: TensorRef): void {
    if (x.storage === out.storage && x.offset === out.offset && x.dtype === out.dtype) return;
    this.backend.cast(x, out);
  }

  /** out = x * s for a number s (rounded to float32, as the scale kernel does) or a float32 tensor of one element. */
  scaleBy(x: TensorRef, out: TensorRef, s: number | Tensor): void {
    if (typeof s === 'number') this.unary('scale', x, out, s);
    else this.binary('mul', x, s, out);
  }

  /**
   * Scalars of this update that depend on its step count t (bias corrections, a decayed lr):
   * `values(t)` computed on the host in float64, for the one t the host knows (numbers), or for
   * every t the device count allows, the device choosing (a float32 temporary [k]). `t` is the
   * count after this step: hostT without skip, else skip.step + 1.
   */
  stepScalars(skip: SkipContext | null, hostT: number, values: (t: number) => number[]): number[] | Tensor {
    if (!skip || skip.lo === skip.hi) return values(skip ? skip.hi + 1 : hostT);
    const k = values(skip.hi + 1).length;
    const chosen = this.temp([k], 'step scalars');
    this.backend.write(chosen.storage, Float32Array.from(values(skip.hi + 1)));
    const cond = this.temp([], 'step scalars cond');
    for (let c = skip.hi - 1; c >= skip.lo; c--) {
      const cand = this.temp([k], 'step scalars');
      this.backend.write(cand.storage, Float32Array.from(values(c + 1)));
      this.unary('addScalar', skip.step, cond, -c); // 0 exactly when the device count is c (integers below 2^24)
      this.backend.where(cond, chosen, cand, chosen);
    }
    return chosen;
  }

  /** The one value of stepScalars as a number or a one-element tensor (for scaleBy). */
  stepScalar(skip: SkipContext | null, hostT: number, value: (t: number) => number): number | Tensor {
    const s = this.stepScalars(skip, hostT, (t) => [value(t)]);
    return Array.isArray(s) ? s[0] : s;
  }

  /**
   * Working copies for an update that must change nothing where `foundInf` is set: stage(t) gives
   * a float32 copy of t to update in place, commit() writes each copy back where the flag is 0
   * (where the flag is set, t keeps every bit). Without a flag, stage(t) is t and commit() nothing.
   */
  transaction(foundInf: Tensor | null): StepTransaction {
    return new StepTransaction(this, foundInf);
  }

  /**
   * Runs fn on a float32 version of param: the tensor itself when float32, else a float32 copy
   * that is rounded back into param's dtype once at the end.
   */
  withFloat32(param: Tensor, fn: (p: Tensor) => void): void {
    if (param.dtype === 'float32') return fn(param);
    const p = this.temp(param.shape, 'optimizer param f32');
    this.backend.cast(param, p);
    fn(p);
    this.backend.cast(p, param);
  }

  /** Frees the temporaries. */
  dispose(): void {
    for (const t of this.temps) t.dispose();
    this.temps.length = 0;
  }
}

/** See StepOps.transaction. */
export class StepTransaction {
  private readonly staged: [Tensor, Tensor][] = [];

  constructor(private readonly ops: StepOps, private readonly foundInf: Tensor | null) {}

  /** A working copy of t (t itself without a flag). */
  stage(t: Tensor): Tensor {
    if (!this.foundInf) return t;
    const copy = this.ops.temp(t.shape, 'optimizer working copy');
    this.ops.copy(t, copy);
    this.staged.push([t, copy]);
    return copy;
  }

  /** Writes the working copies back unless the flag is set. */
  commit(): void {
    for (const [t, copy] of this.staged) this.ops.backend.where(this.foundInf!, t, copy, t);
    this.staged.length = 0;
  }
}

/** Runs fn with a StepOps for backend, freeing its temporaries afterwards. */
export function withStepOps<T>(backend: Backend, fn: (ops: StepOps) => T): T {
  const ops = new StepOps(backend);
  try {
    return fn(ops);
  } finally {
    ops.dispose();
  }
}
