// The optimizer base class (torch.optim.Optimizer): parameter groups with their hyperparameters,
// per-parameter state allocated lazily on the first step in the 'optimizer' memory category,
// zeroGrad, and stateDict/loadStateDict in PyTorch's layout (camelCase keys).
//
// step() only queues kernels: step counts live on the host (a number per parameter state), and
// nothing is ever read back, so a training loop never waits for the device inside step().
import { InvalidArgumentError, ShapeMismatchError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { Variable, type ZeroGradOptions } from '../autograd/variable.js';
import type { Backend, BinaryOp, TensorRef, UnaryOp } from '../backend/backend.js';

/** Hyperparameters every optimizer has: the learning rate that schedulers set. */
export interface OptimizerHyper {
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

/** The state keys an optimizer keeps for a parameter of a group with given hyperparameters. */
export interface StateSpec {
  tensors: readonly string[];
  numbers: readonly string[];
}

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

  /** `defaults` are the optimizer's own (PyTorch's) defaults; `options` override them (unknown keys are errors). */
  constructor(params: ParamsInput<H>, defaults: H, options: Partial<H> = {}) {
    if (typeof options !== 'object' || options === null) throw new InvalidArgumentError(`${this.name}: options must be an object`);
    this.defaults = cloneHyper(defaults);
    this.checkKeys(options as Record<string, unknown>, 'options', false);
    this.defaults = { ...this.defaults, ...cloneHyper(options) };
    this.validateGroup(this.defaults);
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

  /** The state keys kept for a parameter of `group` (what loadStateDict expects). */
  protected abstract stateSpec(group: H): StateSpec;

  /** Updates one parameter that has a gradient; `state` is its (possibly empty) state record, to fill lazily. */
  protected abstract updateParam(param: Variable, grad: Tensor, group: ParamGroup<H>, state: ParamState): void;

  /** Adds a parameter group (torch add_param_group); hyperparameters not given come from the defaults. */
  addParamGroup(group: ParamGroupInput<H>): void {
    if (typeof group !== 'object' || group === null) throw new InvalidArgumentError(`${this.name}: a parameter group must be an object`);
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
    this.paramGroups.push(full);
  }

  /** One optimization step over every parameter that has a gradient (the others are skipped). Queues kernels; reads nothing back. */
  step(): void {
    // Everything is checked before the first update, so that an error leaves no half-made step.
    const work: [Variable, Tensor, ParamGroup<H>][] = [];
    let index = 0;
    for (const group of this.paramGroups) {
      this.validateGroup(group); // hyperparameters may have been changed since the last step
      for (const p of group.params) {
        const id = index++;
        const grad = p.grad;
        if (!grad) continue;
        if (grad.shape.join() !== p.shape.join()) {
          throw new ShapeMismatchError(`${this.name}: parameter ${id} has shape [${p.shape.join(', ')}] but its grad has shape [${grad.shape.join(', ')}]`);
        }
        if (grad.backend !== p.backend) throw new InvalidArgumentError(`${this.name}: parameter ${id} is on the ${p.backend.kind} backend but its grad is on ${grad.backend.kind}`);
        if (p.data.offset !== 0) throw new InvalidArgumentError(`${this.name}: parameter ${id} is a view at offset ${p.data.offset}; optimizers update tensors that start at their storage's beginning (use a copy)`);
        work.push([p, grad, group]);
      }
    }
    for (const [p, grad, group] of work) {
      const state = this.state.get(p) ?? {};
      this.updateParam(p, grad, group, state);
      if (Object.keys(state).length > 0) this.state.set(p, state);
    }
  }

  /**
   * Resets the gradients of every parameter. setToNone (the default, as PyTorch) frees them
   * (gradient memory goes back); setToNone: false keeps the buffers and writes zeros into them
   * (no device allocation; NaN or inf values become 0 too).
   */
  zeroGrad({ setToNone = true }: ZeroGradOptions = {}): void {
    for (const g of this.paramGroups) {
      for (const p of g.params) {
        p.zeroGrad({ setToNone });
      }
    }
  }

  /** The state of one parameter (its tensors are the optimizer's own: do not dispose them), or undefined before its first step. */
  getState(param: Variable): Readonly<ParamState> | undefined {
    const s = this.state.get(param);
    return s ? { ...s } : undefined;
  }

  /**
   * The state in PyTorch's layout. The tensors are the optimizer's own (not copies): do not
   * dispose them, and expect later steps to change them in place.
   */
  stateDict(): OptimizerStateDict<H> {
    const state: Record<number, ParamState> = {};
    const paramGroups: ParamGroupState<H>[] = [];
    let index = 0;
    for (const g of this.paramGroups) {
      const ids: number[] = [];
      for (const p of g.params) {
        const s = this.state.get(p);
        if (s) state[index] = { ...s };
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
      this.checkKeys(hyper, `paramGroups[${gi}]`, true);
      const merged = { ...cloneHyper(this.defaults), ...cloneHyper(hyper as unknown as H) };
      this.validateGroup(merged);
      newHyper.push(merged);
    });
    const plan: { param: Variable; values: Record<string, Tensor | number> }[] = [];
    for (const [key, entry] of Object.entries(stateDict.state)) {
      const id = Number(key);
      const target = byId.get(id);
      if (!target) throw new InvalidArgumentError(`${where}: state has an entry for parameter id ${key}, which no parameter group lists`);
      if (typeof entry !== 'object' || entry === null) throw new InvalidArgumentError(`${where}: state[${id}] is not an object`);
      const { param } = target;
      const spec = this.stateSpec(newHyper[target.group]);
      const expected = new Set([...spec.tensors, ...spec.numbers]);
      for (const k of Object.keys(entry)) {
        if (!expected.has(k)) throw new InvalidArgumentError(`${where}: state[${id}] has key '${k}', which ${this.name} with these hyperparameters does not keep (expected ${[...expected].join(', ') || 'no state'})`);
      }
      for (const k of spec.numbers) {
        const v = entry[k];
        if (!(typeof v === 'number' && Number.isInteger(v) && v >= 0)) throw new InvalidArgumentError(`${where}: state[${id}].${k} must be a non-negative integer, got ${String(v)}`);
      }
      for (const k of spec.tensors) {
        const t = entry[k];
        if (!(t instanceof Tensor)) throw new InvalidArgumentError(`${where}: state[${id}].${k} is missing or not a Tensor`);
        if (t.isDisposed) throw new InvalidArgumentError(`${where}: state[${id}].${k} was disposed`);
        if (t.backend !== param.backend) {
          throw new InvalidArgumentError(`${where}: state[${id}].${k} is on the ${t.backend.kind} backend but parameter ${id} is on ${param.backend.kind}; move it with toBackend()`);
        }
        if (t.dtype === 'int32') throw new InvalidArgumentError(`${where}: state[${id}].${k} is int32; optimizer state is float`);
        if (t.shape.join() !== param.shape.join()) {
          throw new ShapeMismatchError(`${where}: state[${id}].${k} has shape [${t.shape.join(', ')}] but parameter ${id} has shape [${param.shape.join(', ')}]`);
        }
      }
      plan.push({ param, values: entry });
    }
    // Everything checked: copy first (a source may be one of our own tensors), then swap in.
    const fresh = new Map<Variable, ParamState>();
    try {
      for (const { param, values } of plan) {
        const s: ParamState = {};
        for (const [k, v] of Object.entries(values)) {
          if (typeof v === 'number') s[k] = v;
          else {
            const copy = Tensor.empty(param.backend, param.shape, { category: 'optimizer', label: `${this.name}.${k}` });
            s[k] = copy;
            param.backend.cast(v, copy);
          }
        }
        fresh.set(param, s);
      }
    } catch (e) {
      for (const s of fresh.values()) disposeState(s);
      throw e;
    }
    for (const s of this.state.values()) disposeState(s);
    this.state.clear();
    for (const [p, s] of fresh) this.state.set(p, s);
    this.paramGroups.forEach((g, gi) => {
      for (const k of Object.keys(g)) if (k !== 'params') delete (g as unknown as Record<string, unknown>)[k];
      Object.assign(g, newHyper[gi]);
    });
  }

  /** Frees the optimizer's state (every parameter starts afresh at its next step). */
  dispose(): void {
    for (const s of this.state.values()) disposeState(s);
    this.state.clear();
  }

  /** A float32 state tensor for `param` in the 'optimizer' category, filled with `value` (null: left for the caller to write). */
  protected newState(param: Variable, key: string, value: number | null = 0): Tensor {
    const t = Tensor.empty(param.backend, param.shape, { category: 'optimizer', label: `${this.name}.${key}` });
    try {
      if (value !== null) fillTensor(t, value);
    } catch (e) {
      t.dispose();
      throw e;
    }
    return t;
  }

  private checkKeys(hyper: Record<string, unknown>, what: string, allowInitialLr: boolean): void {
    const known = Object.keys(this.defaults);
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
    const t = Tensor.empty(this.backend, shape, { category: 'temporary', label });
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

/** Runs fn with a StepOps for backend, freeing its temporaries afterwards. */
export function withStepOps<T>(backend: Backend, fn: (ops: StepOps) => T): T {
  const ops = new StepOps(backend);
  try {
    return fn(ops);
  } finally {
    ops.dispose();
  }
}
