// Activation checkpointing: torch.utils.checkpoint's non-reentrant semantics, built on the
// saved-tensor hooks (autograd/variable.ts). While fn runs forward, every tensor an op inside it
// saves for backward is replaced by a holder that keeps nothing; the checkpoint keeps only fn's
// inputs (saved through the hooks around it, so an enclosing checkpoint or saveOnHost applies to
// them). The first time backward unpacks a holder, fn's forward is run again, under the same
// module paths, op policies (autocast) and generator states (dropout masks are identical), and
// the tensors it saves fill the holders still alive, in the order they were saved; the recompute
// stops as soon as the last of them is filled (PyTorch's early stop), and the graph it recorded
// is thrown away. Checkpoints nest: an inner checkpoint's inputs are saved by the outer one.
//
// Selective checkpointing (PyTorch's create_selective_checkpoint_contexts): a policy sees every op
// inside fn; the outputs of the ops it saves are kept from the forward, and the recompute hands
// them back instead of running those ops again (their saved inputs come from the recomputed
// inputs, their statistics are kept from the forward).
import { CheckpointError, InvalidArgumentError, describeValue } from '../errors.js';
import {
  Node, SavedTensor, Variable, discardGraph, enableGrad, isGradEnabled, keepSavedTensors, opPolicyStack, trackOutput,
  withOpPolicy, withSavedTensorsHooks, withoutOpPolicies, type OpPolicy, type SavedTensorContext, type SavedTensorsHooks,
} from '../autograd/variable.js';
import { withOpInterceptor } from '../autograd/op.js';
import { cat, narrow } from '../autograd/ops.js';
import { currentModulePath } from '../backend/op_context.js';
import { autocast, autocastOptionsOf } from '../amp/autocast.js';
import { Module, forwardWrapper, moduleContext, setForwardWrapper, withModuleContext, type ForwardWrapper, type ModuleContext } from '../nn/module.js';
import { withDrawObserver, type Generator } from '../random.js';
import { Tensor } from '../tensor/tensor.js';
import type { TensorDType } from '../backend/backend.js';

/**
 * What a selective-checkpoint policy decides for one op (PyTorch's CheckpointPolicy, camelCase):
 * 'mustSave' / 'preferSave' keep the op's output from the forward (the recompute does not run the
 * op again), 'mustRecompute' / 'preferRecompute' let the recompute run it. memfit runs eagerly, so
 * the "prefer" levels act as the "must" ones (in PyTorch only torch.compile may overrule them).
 */
export type CheckpointDecision = 'mustSave' | 'preferSave' | 'mustRecompute' | 'preferRecompute';

export const CHECKPOINT_DECISIONS: readonly CheckpointDecision[] = ['mustSave', 'preferSave', 'mustRecompute', 'preferRecompute'];

/** What a policy is told about an op inside a checkpoint. */
export interface PolicyContext {
  /** The op's PyTorch name ('matmul', 'linear', 'scaled_dot_product_attention', 'rms_norm', 'silu', ...). */
  readonly op: string;
  /** The dotted path of the module whose forward calls it ('' outside modules). */
  readonly module: string;
  /** False in the forward, true in the recompute (the decision must be the same). */
  readonly isRecompute: boolean;
}

/** A selective-checkpoint policy (PyTorch's policy_fn): called for every op inside the checkpoint. */
export type CheckpointPolicy = (ctx: PolicyContext) => CheckpointDecision;

export interface CheckpointOptions {
  /**
   * Replay the forward's generator states in the recompute (default true): dropout draws the same
   * masks. Every Generator fn draws from is restored, not only the default one; after the
   * recompute each is put back where it was.
   */
  preserveRngState?: boolean;
  /** Selective checkpointing: which ops' outputs to keep from the forward (default: none). */
  policy?: CheckpointPolicy;
  /**
   * Chunked checkpointing (DeepSpeed's TiledMLP, for any fn that treats the rows of its inputs'
   * first dimension independently, such as an MLP over [batch, tokens, features]): every Variable
   * and Tensor input is split along its first dimension into this many pieces (as equal as they
   * come; no more than the rows), fn runs on each piece under a checkpoint of its own, and the
   * outputs are joined along the first dimension. Backward then recomputes and holds one piece at
   * a time: a `chunks`-th of fn's saved activations and of the gradients inside it. The forward's
   * results are bit-identical where fn's kernels compute each row alone (memfit's matmul, norms and
   * elementwise kernels do); a weight's gradient becomes the sum of the pieces' gradients (the same
   * sum in another order). Every piece's inputs are saved before any piece runs, so the recompute
   * of an enclosing checkpoint stops before fn runs at all. Default 1 (one piece: plain checkpoint).
   */
  chunks?: number;
}

const OPTION_KEYS = ['preserveRngState', 'policy', 'chunks'] as const;

/** What checkpointModules wrapped, and how to unwrap it. */
export interface CheckpointModulesResult {
  /** The dotted names of the modules now checkpointed, in model order. */
  readonly wrapped: string[];
  /** Removes the checkpoints (idempotent). */
  undo(): void;
}

function checkCheckpointOptions(options: CheckpointOptions | undefined, fn: string): Required<Pick<CheckpointOptions, 'preserveRngState' | 'chunks'>> & CheckpointOptions {
  const o = checkOptionsObject(options, fn);
  if (o.preserveRngState !== undefined && typeof o.preserveRngState !== 'boolean') throw new InvalidArgumentError(`${fn}: preserveRngState must be a boolean, got ${describeValue(o.preserveRngState)}`);
  if (o.policy !== undefined && typeof o.policy !== 'function') throw new InvalidArgumentError(`${fn}: policy must be a function (ctx) => 'mustSave' | 'preferSave' | 'mustRecompute' | 'preferRecompute', got ${describeValue(o.policy)}`);
  if (o.chunks !== undefined && !(Number.isSafeInteger(o.chunks) && o.chunks >= 1)) throw new InvalidArgumentError(`${fn}: chunks must be a positive integer, got ${describeValue(o.chunks)}`);
  return { preserveRngState: o.preserveRngState ?? true, policy: o.policy, chunks: o.chunks ?? 1 };
}

function checkOptionsObject(options: CheckpointOptions | undefined, fn: string): CheckpointOptions {
  if (options === undefined) return {};
  if (!isOptionsObject(options)) throw new InvalidArgumentError(`${fn}: options must be an object with keys ${OPTION_KEYS.join(', ')}, got ${describeValue(options)}`);
  return options;
}

/** A plain object whose keys are all checkpoint options (the last argument of checkpoint() when it is one). */
function isOptionsObject(x: unknown): x is CheckpointOptions {
  if (x === null || typeof x !== 'object') return false;
  const proto = Object.getPrototypeOf(x);
  if (proto !== Object.prototype && proto !== null) return false;
  return Object.keys(x).every((k) => (OPTION_KEYS as readonly string[]).includes(k));
}

// ---- the frame of one checkpoint call ------------------------------------------------------------

interface Holder {
  /** 'recompute': filled by the recompute; 'replay': from the inputs/output of an op the policy saved; 'kept': held since the forward. */
  readonly kind: 'recompute' | 'replay' | 'kept';
  readonly shape: readonly number[];
  readonly dtype: TensorDType;
  readonly what: string;
  alive: boolean;
  value: Tensor | null;
  kept: SavedTensor | null;
  /** For 'replay': the op's index and which of its tensors (an input's index, or 'output'). */
  readonly op?: number;
  readonly source?: number | 'output';
}

type Arg = { kind: 'variable'; saved: SavedTensor | null; requiresGrad: boolean; leaf: boolean } | { kind: 'tensor'; saved: SavedTensor | null } | { kind: 'value'; value: unknown };

interface Env {
  readonly modules: ModuleContext;
  readonly policies: readonly OpPolicy[];
}

/** The recompute's signal that every tensor backward needs exists (never escapes the checkpoint). */
class StopRecomputation extends Error {}

function isSave(d: CheckpointDecision): boolean { return d === 'mustSave' || d === 'preferSave'; }

function reenterPolicies<T>(policies: readonly OpPolicy[], fn: () => T, i = 0): T {
  if (i === policies.length) return fn();
  const p = policies[i];
  const o = autocastOptionsOf(p);
  // An autocast region is entered afresh (its cast cache was freed when it ended); other policies as they were.
  return o ? autocast(o, () => reenterPolicies(policies, fn, i + 1)) : withOpPolicy(p, () => reenterPolicies(policies, fn, i + 1));
}

const describeTensor = (shape: readonly number[], dtype: string): string => `${dtype} [${shape.join(', ')}]`;

class Frame {
  private readonly holders: Holder[] = [];
  /** The holders the recompute fills, in the order their tensors are saved. */
  private readonly recomputeOrder: number[] = [];
  /** Per op index (ops the interceptor saw): whether the policy saved its output. */
  private readonly decisions: boolean[] = [];
  /** Per op index: the op's name and input count in the forward (the recompute must run the same ops). */
  private readonly forwardOps: { op: string; inputs: number }[] = [];
  private readonly opCache = new Map<number, SavedTensor>();
  private readonly opSaved = new Map<number, number[]>();
  private readonly rng = new Map<Generator, ReturnType<Generator['getState']>>();
  private readonly stop = new StopRecomputation('checkpoint recompute: early stop');
  private current: { index: number; inputs: readonly Variable[] } | null = null;
  /** The ops running in the forward (innermost last), and per op index the holders it filled: an input (its index) or not (-1). */
  private readonly opStack: { index: number; inputs: readonly Variable[] }[] = [];
  private readonly opHolders = new Map<number, { holder: number; source: number }[]>();
  private forwardDone = false;
  private recomputed = false;
  private finished = false;
  private live = 0;
  private pending = 0;
  private recomputeOps = 0;
  private recomputePacks = 0;
  private readonly args: Arg[];

  constructor(
    private readonly fn: (...args: unknown[]) => unknown,
    inputs: readonly unknown[],
    private readonly options: ReturnType<typeof checkCheckpointOptions>,
    private readonly env: Env,
  ) {
    // The inputs are what the checkpoint keeps: saved through the hooks around it.
    const args: Arg[] = [];
    try {
      inputs.forEach((x, i) => {
        const ctx: SavedTensorContext = { op: 'checkpoint', module: currentModulePath(), slot: `input${i}` };
        if (x instanceof Variable) args.push({ kind: 'variable', saved: new SavedTensor(x.data, ctx), requiresGrad: x.requiresGrad, leaf: x.isLeaf });
        else if (x instanceof Tensor) args.push({ kind: 'tensor', saved: new SavedTensor(x, ctx) });
        else args.push({ kind: 'value', value: x });
      });
    } catch (e) {
      for (const a of args) if (a.kind !== 'value') a.saved?.release();
      throw e;
    }
    this.args = args;
  }

  run(inputs: readonly unknown[]): unknown {
    try {
      const go = (): unknown => withSavedTensorsHooks(this.forwardHooks, () => withOpInterceptor(this.forwardIntercept, () => this.fn(...inputs)));
      const r = this.options.preserveRngState
        ? withDrawObserver((g) => { if (!this.rng.has(g)) this.rng.set(g, g.getState()); }, go)
        : go();
      if (r instanceof Promise) throw new InvalidArgumentError('checkpoint takes a synchronous function');
      return r;
    } catch (e) {
      this.finish();
      throw e;
    } finally {
      this.forwardDone = true;
      this.maybeFinish();
    }
  }

  // ---- forward ----

  private decide(op: string, isRecompute: boolean): boolean {
    const d = this.options.policy!({ op, module: currentModulePath(), isRecompute });
    if (!CHECKPOINT_DECISIONS.includes(d)) throw new InvalidArgumentError(`checkpoint policy returned ${describeValue(d)} for ${op}; expected one of ${CHECKPOINT_DECISIONS.join(', ')}`);
    return isSave(d);
  }

  private readonly forwardIntercept = (op: string, inputs: readonly Variable[], run: () => Variable): Variable => {
    const index = this.decisions.length;
    const save = this.options.policy ? this.decide(op, false) : false;
    this.decisions.push(save);
    this.forwardOps.push({ op, inputs: inputs.length });
    const prev = this.current;
    this.current = save ? { index, inputs } : null;
    this.opStack.push({ index, inputs });
    let out: Variable;
    try { out = run(); } finally { this.current = prev; this.opStack.pop(); }
    if (save) this.opCache.set(index, new SavedTensor(out.data, { op, module: currentModulePath(), slot: 'output' }, keepSavedTensors));
    return out;
  };

  private readonly forwardHooks: SavedTensorsHooks<number> = {
    views: true, // holders keep references (and match op inputs by identity)
    pack: (t, ctx) => {
      const i = this.holders.length;
      const what = `${ctx.op}'s ${ctx.slot}${ctx.module ? ` in ${ctx.module}` : ''}`;
      const base = { shape: [...t.shape], dtype: t.dtype, what, alive: true, value: null, kept: null };
      const cur = this.current;
      if (cur) {
        // An op whose output the policy keeps: its saved inputs and output come back without running
        // it; anything else it saves (a statistic, a rounded copy) is kept from the forward.
        const k = cur.inputs.findIndex((v) => v.data === t);
        if (k >= 0 || ctx.slot === 'output') {
          this.holders.push({ ...base, kind: 'replay', op: cur.index, source: k >= 0 ? k : 'output' });
          const list = this.opSaved.get(cur.index) ?? [];
          list.push(i);
          this.opSaved.set(cur.index, list);
        } else {
          this.holders.push({ ...base, kind: 'kept', kept: new SavedTensor(t, ctx, keepSavedTensors) });
        }
      } else {
        this.holders.push({ ...base, kind: 'recompute' });
        this.recomputeOrder.push(i);
        const op = this.opStack[this.opStack.length - 1];
        if (op) {
          const list = this.opHolders.get(op.index) ?? [];
          list.push({ holder: i, source: op.inputs.findIndex((v) => v.data === t) });
          this.opHolders.set(op.index, list);
        }
      }
      this.live++;
      return i;
    },
    unpack: (i) => this.unpack(i),
    release: (i) => this.releaseHolder(i),
    bytes: () => 0, // a holder keeps nothing (a kept statistic is counted by its own SavedTensor)
  };

  // ---- backward ----

  private unpack(i: number): Tensor {
    const h = this.holders[i];
    if (!h.alive) throw new CheckpointError(`checkpoint: ${h.what} was unpacked twice`);
    let t: Tensor;
    if (h.kind === 'kept') {
      t = h.kept!.take();
      h.kept = null;
    } else {
      if (!h.value) {
        if (this.recomputed) throw new CheckpointError(`checkpoint: the recompute did not produce ${h.what}`);
        this.recompute();
      }
      t = h.value!;
      h.value = null;
    }
    h.alive = false;
    this.live--;
    this.maybeFinish();
    return t;
  }

  private releaseHolder(i: number): void {
    const h = this.holders[i];
    if (!h.alive) return;
    h.alive = false;
    h.value?.dispose();
    h.value = null;
    h.kept?.release();
    h.kept = null;
    this.live--;
    this.maybeFinish();
  }

  private fill(h: Holder, t: Tensor): void {
    if (t.dtype !== h.dtype || t.shape.join() !== h.shape.join()) {
      throw new CheckpointError(
        `checkpoint: the recompute saved ${describeTensor(t.shape, t.dtype)} where the forward saved ${describeTensor(h.shape, h.dtype)} ` +
        `(${h.what}): fn must run the same ops on the same shapes both times`,
      );
    }
    h.value = t.reshape(t.shape);
    this.pending--;
  }

  private readonly recomputeHooks: SavedTensorsHooks<null> = {
    views: true,
    pack: (t, ctx) => {
      const i = this.recomputeOrder[this.recomputePacks++];
      if (i === undefined) throw new CheckpointError(`checkpoint: the recompute saved more tensors than the forward (at ${ctx.op}'s ${ctx.slot}${ctx.module ? ` in ${ctx.module}` : ''})`);
      const h = this.holders[i];
      if (h.alive && !h.value) {
        this.fill(h, t);
        if (this.pending === 0) throw this.stop;
      }
      return null;
    },
    unpack: () => { throw new CheckpointError('checkpoint: internal: backward through a recomputed graph'); },
    bytes: () => 0,
  };

  private readonly recomputeIntercept = (op: string, inputs: readonly Variable[], run: () => Variable): Variable => {
    const index = this.recomputeOps++;
    const save = this.decisions[index];
    if (save === undefined) throw new CheckpointError(`checkpoint: the recompute ran more ops than the forward (${op} is op ${index + 1}; the forward ran ${this.decisions.length}): fn must run the same ops both times (deterministic in the ops it runs)`);
    const fwd = this.forwardOps[index];
    if (fwd.op !== op || fwd.inputs !== inputs.length) {
      throw new CheckpointError(
        `checkpoint: the recompute ran ${op} (${inputs.length} input${inputs.length === 1 ? '' : 's'}) as op ${index + 1} where the forward ran ${fwd.op} (${fwd.inputs} input${fwd.inputs === 1 ? '' : 's'}): ` +
        'fn must run the same ops in the same order both times (deterministic in the ops it runs, whatever state it reads)',
      );
    }
    if (this.options.policy && this.decide(op, true) !== save) {
      throw new CheckpointError(`checkpoint: the policy decided ${save ? 'recompute' : 'save'} for ${op} in the recompute but ${save ? 'save' : 'recompute'} in the forward`);
    }
    if (!save) {
      // When every tensor backward still needs is an input this op saved (the decoder layer's
      // down projection), they exist already: the recompute stops before running the op.
      const mine = this.opHolders.get(index);
      if (mine) {
        const open = mine.filter((p) => this.holders[p.holder].alive && !this.holders[p.holder].value);
        if (open.length > 0 && open.length === this.pending && open.every((p) => p.source >= 0)) {
          for (const p of open) this.fill(this.holders[p.holder], inputs[p.source].data);
          throw this.stop;
        }
      }
      return run();
    }
    const cached = this.opCache.get(index)!;
    this.opCache.delete(index);
    const y = cached.take();
    try {
      for (const i of this.opSaved.get(index) ?? []) {
        const h = this.holders[i];
        if (h.alive && !h.value) this.fill(h, h.source === 'output' ? y : inputs[h.source as number].data);
      }
    } catch (e) {
      y.dispose();
      throw e;
    }
    const needs = isGradEnabled() && y.dtype !== 'int32' && inputs.some((v) => v.requiresGrad);
    const out = trackOutput(new Variable(y, { requiresGrad: needs }));
    if (this.pending === 0) throw this.stop;
    return out;
  };

  private recompute(): void {
    this.recomputed = true;
    this.pending = this.holders.filter((h) => h.alive && h.kind !== 'kept' && !h.value).length;
    const owned: Tensor[] = [];
    const restore = new Map<Generator, ReturnType<Generator['getState']>>();
    try {
      const args = this.args.map((a) => {
        if (a.kind === 'value') return a.value;
        const t = a.saved!.take();
        a.saved = null;
        owned.push(t);
        if (a.kind !== 'variable') return t;
        // An input that was an op's output in the forward is one in the recompute too (a node that
        // is never run: the recompute's graph is discarded). Ops that look at leaf-ness see the same:
        // autocast casts a leaf that requires grad once and saves it as a parameter, which would
        // change what the recompute saves.
        return new Variable(t, { requiresGrad: a.requiresGrad }, a.leaf ? null : new Node('checkpoint input', [], [], [], () => []));
      });
      for (const [g, s] of this.rng) {
        restore.set(g, g.getState());
        g.setState(s);
      }
      withModuleContext(this.env.modules, () => withoutOpPolicies(() => reenterPolicies(this.env.policies, () =>
        withSavedTensorsHooks(this.recomputeHooks, () => withOpInterceptor(this.recomputeIntercept, () => enableGrad(() =>
          discardGraph(() => {
            try {
              this.fn(...args);
            } catch (e) {
              if (e !== this.stop) throw e;
            }
          }),
        ))),
      )));
    } finally {
      for (const [g, s] of restore) g.setState(s);
      for (const t of owned) t.dispose();
      for (const c of this.opCache.values()) c.release(); // outputs past the early stop: never needed
      this.opCache.clear();
    }
    if (this.pending > 0) {
      const missing = this.holders.find((h) => h.alive && h.kind !== 'kept' && !h.value);
      throw new CheckpointError(`checkpoint: the recompute ended before saving ${this.pending} of the tensors the forward saved (first: ${missing?.what}): fn must run the same ops both times`);
    }
  }

  /** Drops a frame whose run never started (a later piece of a chunked checkpoint failed, or an enclosing recompute stopped). */
  abandon(): void {
    this.finish();
  }

  private maybeFinish(): void {
    if (this.forwardDone && this.live === 0) this.finish();
  }

  /** Drops what the frame keeps (its inputs and the outputs a policy saved). */
  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    for (const a of this.args) if (a.kind !== 'value') { a.saved?.release(); a.saved = null; }
    for (const c of this.opCache.values()) c.release();
    this.opCache.clear();
    this.rng.clear();
  }
}

// ---- public API ----------------------------------------------------------------------------------

/** checkpoint with the inputs as an array and the options apart (no guessing which argument is which). */
export function checkpointWith<R>(fn: (...args: any[]) => R, inputs: readonly unknown[], options?: CheckpointOptions): R {
  if (typeof fn !== 'function') throw new InvalidArgumentError(`checkpoint: fn must be a function, got ${describeValue(fn)}`);
  if (fn.constructor?.name === 'AsyncFunction') throw new InvalidArgumentError('checkpoint takes a synchronous function: ops after an await would run outside it');
  const o = checkCheckpointOptions(options, 'checkpoint');
  if (!isGradEnabled()) return fn(...inputs); // nothing is saved: nothing to recompute (as PyTorch)
  const env = { modules: moduleContext(), policies: opPolicyStack() };
  if (o.chunks > 1) return checkpointChunks(fn as (...args: unknown[]) => unknown, inputs, o, env) as R;
  const frame = new Frame(fn as (...args: unknown[]) => unknown, inputs, o, env);
  return frame.run(inputs) as R;
}

/** The `chunks` option: fn on pieces of the inputs' first dimension, each under its own checkpoint, joined by cat. */
function checkpointChunks(fn: (...args: unknown[]) => unknown, inputs: readonly unknown[], o: ReturnType<typeof checkCheckpointOptions>, env: Env): Variable {
  const split = inputs.filter((x): x is Variable | Tensor => x instanceof Variable || x instanceof Tensor);
  if (split.length === 0) throw new InvalidArgumentError('checkpoint: chunks needs at least one Variable or Tensor input to split');
  const rows = split[0].shape[0];
  for (const x of split) {
    if (x.shape.length === 0 || x.shape[0] !== rows) {
      throw new InvalidArgumentError(`checkpoint: chunks splits every Variable and Tensor input along its first dimension, so they must share it; got [${split.map((t) => `[${t.shape.join(', ')}]`).join(', ')}]`);
    }
  }
  const k = Math.max(1, Math.min(o.chunks, rows));
  const bounds = Array.from({ length: k }, (_, i) => [Math.floor((i * rows) / k), Math.floor(((i + 1) * rows) / k)] as const);
  const pieces = bounds.map(([a, b]) => inputs.map((x) => (x instanceof Variable ? narrow(x, a, b) : x instanceof Tensor ? x.slice(a, b) : x)));
  // Every piece's inputs are saved before any piece runs: an enclosing checkpoint's recompute stops
  // here (it needs these inputs and nothing fn computes from them), without running fn on any piece.
  const frames: Frame[] = [];
  try {
    try {
      for (const p of pieces) frames.push(new Frame(fn, p, o, env));
    } catch (e) {
      for (const f of frames) f.abandon();
      throw e;
    }
    // ownGradients: backward frees the joined gradient at once and each piece's gradient when that
    // piece is done, instead of keeping the whole until the last piece (one piece's worth at its peak).
    return cat(frames.map((f, i) => runPiece(f, i)), true);
  } finally {
    // The Tensor pieces (views): each frame saved its own reference.
    for (const p of pieces) for (const x of p) if (x instanceof Tensor) x.dispose();
  }

  function runPiece(f: Frame, i: number): Variable {
    try {
      const y = f.run(pieces[i]);
      const [a, b] = bounds[i];
      if (!(y instanceof Variable) || y.shape.length === 0 || y.shape[0] !== b - a) {
        throw new InvalidArgumentError(`checkpoint: with chunks, fn must return one Variable with a row for each input row (first dimension ${b - a} for this piece), got ${y instanceof Variable ? `[${y.shape.join(', ')}]` : describeValue(y)}`);
      }
      return y;
    } catch (e) {
      for (const g of frames.slice(i + 1)) g.abandon(); // the pieces that will not run
      throw e;
    }
  }
}

/**
 * Runs fn(...inputs) keeping only its inputs for backward; what fn's ops save is recomputed by
 * running fn again when backward first needs it (torch.utils.checkpoint.checkpoint with
 * use_reentrant=False). Gradients are identical to those without the checkpoint. The options
 * may follow the inputs as a last argument: a plain object whose keys are all option names
 * (`preserveRngState`, `policy`) is taken as the options.
 */
export function checkpoint<A extends unknown[], R>(fn: (...args: A) => R, ...inputs: A): R;
export function checkpoint<A extends unknown[], R>(fn: (...args: A) => R, ...inputsAndOptions: [...A, CheckpointOptions]): R;
export function checkpoint(fn: (...args: unknown[]) => unknown, ...rest: unknown[]): unknown {
  const last = rest[rest.length - 1];
  if (rest.length > 0 && isOptionsObject(last)) return checkpointWith(fn, rest.slice(0, -1), last);
  return checkpointWith(fn, rest);
}

/**
 * Checkpoints every submodule of `model` whose dotted name matches `pattern` (a RegExp tested
 * against the name, or a predicate), without touching the model's code: each one's forward runs
 * inside checkpoint(). The state-dict keys do not change. A match inside a module already wrapped
 * here is not wrapped again (its forward is recomputed as part of the outer one). A pattern that
 * matches no module is an error listing the names.
 */
export function checkpointModules(
  model: Module, pattern: RegExp | ((name: string, module: Module) => boolean), options: CheckpointOptions = {},
): CheckpointModulesResult {
  if (!(model instanceof Module)) throw new InvalidArgumentError(`checkpointModules: model must be a Module, got ${describeValue(model)}`);
  const o = checkCheckpointOptions(options, 'checkpointModules');
  let test: (name: string, m: Module) => boolean;
  if (pattern instanceof RegExp) {
    const re = new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, '')); // test() without lastIndex state
    test = (name) => re.test(name);
  } else if (typeof pattern === 'function') test = pattern;
  else throw new InvalidArgumentError(`checkpointModules: pattern must be a RegExp or a function (name, module) => boolean, got ${describeValue(pattern)}`);

  const all = model.namedModules().filter(([name]) => name !== '');
  const chosen: [string, Module][] = [];
  for (const [name, m] of all) {
    if (!test(name, m)) continue;
    if (chosen.some(([outer]) => name.startsWith(`${outer}.`))) continue;
    chosen.push([name, m]);
  }
  if (chosen.length === 0) {
    const names = all.map(([n]) => n);
    const shown = names.length > 60 ? [...names.slice(0, 60), `... and ${names.length - 60} more`] : names;
    throw new InvalidArgumentError(
      `checkpointModules: ${pattern instanceof RegExp ? String(pattern) : 'the predicate'} matches none of ${model.constructor.name}'s submodules: ${shown.length ? shown.join(', ') : '(it has none)'}`,
    );
  }
  for (const [name, m] of chosen) {
    if (forwardWrapper(m)) throw new InvalidArgumentError(`checkpointModules: ${name} is already checkpointed (undo the earlier checkpointModules first)`);
  }
  const wrappers = new Map<Module, ForwardWrapper>();
  for (const [, m] of chosen) {
    const w: ForwardWrapper = (call, args) => checkpointWith(call, args, o);
    setForwardWrapper(m, w);
    wrappers.set(m, w);
  }
  return {
    wrapped: chosen.map(([n]) => n),
    undo(): void {
      for (const [m, w] of wrappers) if (forwardWrapper(m) === w) setForwardWrapper(m, null);
      wrappers.clear();
    },
  };
}
