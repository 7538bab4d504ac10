// Reverse-mode autograd as a layer over Tensor. A Variable wraps a Tensor; every op on Variables
// that needs a gradient records a Node (its inputs, the tensors it saved for backward, and the
// backward closure written beside its forward in ops.ts). backward() walks the recorded nodes in
// reverse order of creation (the tape), frees each node's saved tensors as soon as its backward has
// run, and accumulates (+=) into the .grad of leaf Variables (float32, category 'gradient').
//
// Saved tensors go through pack/unpack hooks (PyTorch's saved_tensors_hooks), installable for a
// scope with withSavedTensorsHooks(). The default keeps a tensor as it is (a view holding a
// reference to its storage, so an activation the user disposes stays alive until backward).
import { currentModulePath, observeOp, setAllocationOp, withModulePath, type OpContext } from '../backend/op_context.js';
import { checkOptions, describeValue, InvalidArgumentError, ShapeMismatchError } from '../errors.js';
import { onContiguous, Tensor, withOutputs } from '../tensor/tensor.js';
import type { Backend, TensorDType } from '../backend/backend.js';
import { storageBytes } from '../backend/storage.js';

// ---- grad mode --------------------------------------------------------------------------------

let gradEnabled = true;
let inferenceDepth = 0;

/** True when ops record a graph (not inside noGrad or inferenceMode). */
export function isGradEnabled(): boolean { return gradEnabled; }
/** True inside inferenceMode(). */
export function isInferenceMode(): boolean { return inferenceDepth > 0; }

function withMode<T>(enabled: boolean, inference: boolean, fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = enabled;
  if (inference) inferenceDepth++;
  try {
    const r = fn();
    if (r instanceof Promise) throw new InvalidArgumentError('noGrad/inferenceMode take a synchronous function');
    return r;
  } finally {
    gradEnabled = prev;
    if (inference) inferenceDepth--;
  }
}

/** Runs fn without recording: no graph, nothing saved for backward. torch.no_grad. */
export function noGrad<T>(fn: () => T): T { return withMode(false, false, fn); }

/**
 * Like noGrad, and the Variables created are inference variables: they can never be saved for
 * backward later (using one in a recorded op that would save it throws). torch.inference_mode.
 */
export function inferenceMode<T>(fn: () => T): T { return withMode(false, true, fn); }

/** Runs fn with recording on (inside noGrad, say). torch.enable_grad. */
export function enableGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  if (inferenceDepth > 0) throw new InvalidArgumentError('enableGrad inside inferenceMode is not supported');
  gradEnabled = true;
  try { return fn(); } finally { gradEnabled = prev; }
}

// ---- op policy ----------------------------------------------------------------------------------

/** What a policy decides for one op: the inputs to compute from, and the dtype of its output. */
export interface OpDecision {
  /** The inputs to use (e.g. cast to bfloat16 with the differentiable `cast` op); default: unchanged. */
  readonly inputs?: readonly Variable[];
  /** The output's dtype; default: the op's own rule (float32 for most ops). */
  readonly outputDtype?: TensorDType;
  /**
   * The dtype the op may keep float32 tensors it saves for backward in (a rounded copy instead of
   * the float32 tensor): ops that support it say so; default float32 (exact).
   */
  readonly saveDtype?: TensorDType;
}

/**
 * A per-op policy (autocast's hook): called by every op with its PyTorch name ('matmul', 'linear',
 * 'softmax', 'rms_norm', ...) and its float inputs before the forward runs. It returns the inputs
 * to use (an array), or an OpDecision that can also choose the output dtype. Installed for a scope;
 * the innermost policy decides.
 */
export type OpPolicy = (op: string, inputs: readonly Variable[]) => readonly Variable[] | OpDecision;

let policyStack: OpPolicy[] = [];

/** Runs fn with `policy` deciding the inputs (and output dtype) of every op inside it. */
export function withOpPolicy<T>(policy: OpPolicy, fn: () => T): T {
  policyStack.push(policy);
  try { return fn(); } finally { policyStack.pop(); }
}

/** The installed policies, outermost first (a copy): what a recompute re-enters (src/recompute). */
export function opPolicyStack(): readonly OpPolicy[] { return [...policyStack]; }

/** Runs fn with no op policy installed (the stack is restored afterwards). */
export function withoutOpPolicies<T>(fn: () => T): T {
  const prev = policyStack;
  policyStack = [];
  try { return fn(); } finally { policyStack = prev; }
}

/** Throws an InvalidArgumentError naming the argument unless every input is a Variable. */
export function checkVariables(op: string, inputs: readonly unknown[]): void {
  inputs.forEach((v, i) => {
    if (!(v instanceof Variable)) {
      throw new InvalidArgumentError(`${op}: argument ${i + 1} must be a Variable, got ${describeValue(v)}${v instanceof Tensor ? ' (wrap it: new Variable(tensor))' : ''}`);
    }
  });
}

/** The innermost policy's decision for `op` (inputs unchanged and no dtype when there is none). */
export function decideOp<V extends readonly Variable[]>(op: string, inputs: V): { inputs: V; outputDtype?: TensorDType; saveDtype?: TensorDType } {
  const p = policyStack[policyStack.length - 1];
  if (!p) return { inputs };
  const d = p(op, inputs);
  const decision: OpDecision = Array.isArray(d) ? { inputs: d as readonly Variable[] } : (d as OpDecision);
  const out = decision.inputs ?? inputs;
  if (!Array.isArray(out) || out.length !== inputs.length) throw new InvalidArgumentError(`op policy for ${op} returned ${Array.isArray(out) ? out.length : describeValue(out)} inputs, expected ${inputs.length}`);
  checkVariables(`op policy for ${op}`, out);
  if (decision.outputDtype !== undefined && decision.outputDtype === 'int32') throw new InvalidArgumentError(`op policy for ${op}: the output dtype must be a float dtype`);
  if (decision.saveDtype === 'int32') throw new InvalidArgumentError(`op policy for ${op}: the save dtype must be a float dtype`);
  return { inputs: out as unknown as V, outputDtype: decision.outputDtype, saveDtype: decision.saveDtype };
}

/**
 * The policy step of an op written by hand (ops outside `apply`): the inputs after the innermost
 * policy, with the op's allocations labelled with its name until record() ends it. Ops defined
 * with defineOp get this (and the output dtype) from apply.
 */
export function applyOpPolicy<V extends readonly Variable[]>(op: string, inputs: V): V {
  checkVariables(op, inputs);
  setAllocationOp(op);
  return decideOp(op, inputs).inputs;
}

// ---- saved-tensor hooks --------------------------------------------------------------------------

/** Which tensor a pack hook receives: the op that saves it, the module it runs in, and the slot. */
export interface SavedTensorContext extends OpContext {
  /** 'input0', 'input1', ... (the op's inputs, after its policy), 'output', or the name of a statistic ('rstd', 'lse', ...). */
  readonly slot: string;
}

/**
 * pack(t, ctx) is called when an op saves t for backward; t is borrowed (do not dispose it; take a
 * view or a copy to keep it); ctx says which op, module and slot. unpack(packed) is called once,
 * when backward needs the tensor: it returns a Tensor that autograd owns and disposes right after
 * use. release(packed), if given, is called when the saved value is dropped without being unpacked
 * (releaseGraph).
 */
export interface SavedTensorsHooks<P = unknown> {
  pack(t: Tensor, ctx: SavedTensorContext): P;
  unpack(packed: P): Tensor;
  release?(packed: P): void;
  /**
   * The bytes of memory the packed value holds on the tensor's device, for savedTensorStats()
   * (default: the tensor's own bytes). Hooks that keep nothing there (a checkpoint, which
   * recomputes; an offload to the host) say 0; a compressed copy says its size.
   */
  bytes?(packed: P, t: Tensor): number;
  /**
   * pack takes a strided view (permute's output) as it is: hooks that only keep references (the
   * default, checkpoints). Other hooks get a contiguous tensor (a copy of a view, freed after pack),
   * so that they may read its storage or run any kernel on it.
   */
  readonly views?: boolean;
}

/** The default: keep the tensor as it is (a new reference to the same storage). */
export const keepSavedTensors: SavedTensorsHooks<Tensor> = {
  views: true,
  pack: (t) => t.reshape(t.shape),
  unpack: (t) => t,
  release: (t) => t.dispose(),
};

const hookStack: SavedTensorsHooks<any>[] = [];

/** Runs fn with these hooks applied to every tensor saved for backward inside it. */
export function withSavedTensorsHooks<T, P>(hooks: SavedTensorsHooks<P>, fn: () => T): T {
  hookStack.push(hooks);
  try { return fn(); } finally { hookStack.pop(); }
}

const saved = { count: 0, bytes: 0 };

/** Tensors currently saved for backward (packed and not yet used or released), and their bytes as tensors. */
export function savedTensorStats(): { count: number; bytes: number } { return { ...saved }; }

/**
 * Tensors that are an exact, cheap function of another tensor that stays resident (autocast's
 * casts of float32 parameters): saving one keeps a reference to its source and recomputes it in
 * backward, so no copy is held between forward and backward. Registered by whoever makes them.
 */
const recomputable = new WeakMap<Tensor, { source: Tensor; make: (source: Tensor) => Tensor }>();

/** Registers t as recomputable from `source` (which must not change before backward) by `make`. */
export function markRecomputable(t: Tensor, source: Tensor, make: (source: Tensor) => Tensor): void {
  recomputable.set(t, { source, make });
}

/** The hooks of a recomputable tensor: the source is kept (a new reference), the tensor made again on unpack. */
const recomputeHooks: SavedTensorsHooks<{ source: Tensor; make: (source: Tensor) => Tensor }> = {
  views: true,
  pack: (t) => { const r = recomputable.get(t)!; return { source: r.source.reshape(r.source.shape), make: r.make }; },
  unpack: (p) => { try { return p.make(p.source); } finally { p.source.dispose(); } },
  release: (p) => p.source.dispose(),
};

/** The hooks a tensor saved now goes through (the innermost installed, else keepSavedTensors). */
export function currentSavedTensorsHooks(): SavedTensorsHooks<unknown> {
  return hookStack[hookStack.length - 1] ?? keepSavedTensors;
}

/**
 * One tensor saved for backward: packed by the hooks in force when it is made (or by `hooks`),
 * unpacked once by take(), or dropped by release(). Nodes hold these; so do checkpoints (their
 * inputs), so that what they keep is counted and goes through the same hooks.
 */
export class SavedTensor {
  private hooks: SavedTensorsHooks<any> | null;
  private packed: unknown;
  private readonly bytes: number;

  constructor(t: Tensor, ctx: SavedTensorContext, hooks?: SavedTensorsHooks<any>) {
    const again = recomputable.has(t);
    this.hooks = again ? recomputeHooks : hooks ?? currentSavedTensorsHooks();
    // Hooks that do not take views get contiguous tensors (a strided view copied for the call).
    const given = this.hooks.views || t.isContiguous ? t : t.contiguous();
    try {
      this.packed = this.hooks.pack(given, ctx);
    } finally {
      if (given !== t) given.dispose();
    }
    // a recomputed tensor holds no new memory; hooks may say what they hold
    this.bytes = again ? 0 : this.hooks.bytes ? this.hooks.bytes(this.packed, t) : storageBytes(t.dtype, t.size);
    saved.count++;
    saved.bytes += this.bytes;
  }

  /** The tensor back (owned by the caller); the saved value is gone afterwards. */
  take(): Tensor {
    if (!this.hooks) throw new InvalidArgumentError('a saved tensor was used after it was freed: backward through the same graph twice?');
    const t = this.hooks.unpack(this.packed);
    this.drop();
    return t;
  }

  release(): void {
    if (!this.hooks) return;
    this.hooks.release?.(this.packed);
    this.drop();
  }

  private drop(): void {
    this.hooks = null;
    this.packed = undefined;
    saved.count--;
    saved.bytes -= this.bytes;
  }
}

// ---- graph --------------------------------------------------------------------------------------

/** backward(gy, saved, needs) returns one gradient per input (null where not needed); it owns none of its arguments. */
export type BackwardFn = (gy: Tensor, saved: (Tensor | null)[], needs: boolean[]) => (Tensor | null)[];

let nextSeq = 0;

/** One recorded op. */
export class Node {
  readonly seq = nextSeq++;
  /** The module whose forward recorded this node ('' outside modules): its backward allocations are labelled with it. */
  readonly modulePath = currentModulePath();
  private saved: (SavedTensor | null)[];
  private freed = false;

  constructor(
    readonly name: string,
    readonly inputs: readonly Variable[],
    readonly needs: readonly boolean[],
    toSave: (Tensor | null)[],
    private readonly backwardFn: BackwardFn,
    slots: readonly string[] = [],
    /** The backward takes a strided output gradient as it is (else it gets a contiguous copy). */
    readonly takesViews = false,
  ) {
    const saved: (SavedTensor | null)[] = [];
    try {
      toSave.forEach((t, i) => saved.push(t ? new SavedTensor(t, { op: name, module: this.modulePath, slot: slots[i] ?? `saved${i}` }) : null));
    } catch (e) { // a pack hook failed: release what was packed
      for (const x of saved) x?.release();
      throw e;
    }
    this.saved = saved;
    discarded?.push(this);
  }

  /** Runs the backward closure; the saved tensors are unpacked, used and disposed. */
  apply(gy: Tensor): (Tensor | null)[] {
    if (!gy.isContiguous && !this.takesViews) return onContiguous([gy], (c) => this.apply(c));
    return withModulePath(this.modulePath, () => observeOp(`${this.name}.backward`, () => this.run(gy)));
  }

  private run(gy: Tensor): (Tensor | null)[] {
    if (this.freed) throw new InvalidArgumentError(`${this.name}: its saved tensors were already freed (backward through the same graph twice, or after releaseGraph)`);
    this.freed = true;
    const ts: (Tensor | null)[] = [];
    try {
      for (const s of this.saved) ts.push(s ? s.take() : null);
    } catch (e) { // an unpack hook failed: free what was taken and release the rest
      for (const t of ts) t?.dispose();
      for (const s of this.saved) s?.release();
      throw e;
    } finally {
      this.saved = [];
    }
    try {
      // A backward function that throws midway frees every tensor it made (withOutputs).
      return withOutputs(() => this.backwardFn(gy, ts, [...this.needs]));
    } finally {
      for (const t of ts) t?.dispose();
    }
  }

  releaseSaved(): void {
    this.freed = true;
    for (const s of this.saved) s?.release();
    this.saved = [];
  }
}

/** Called by backward() when a leaf's gradient is complete (Variable.registerPostAccumulateGradHook). */
export type PostAccumulateGradHook = (v: Variable) => void;

const postAccumulateHooks = new WeakMap<Variable, { hook: PostAccumulateGradHook }[]>();
/** Hooks registered on any leaf: backward counts pending contributions only when there are some. */
let hookedLeaves = 0;

function runPostAccumulateHooks(v: Variable): void {
  for (const { hook } of [...(postAccumulateHooks.get(v) ?? [])]) hook(v);
}

/** Options of zeroGrad() (Variable, Module, Optimizer). */
export interface ZeroGradOptions {
  /** Free the gradients (default true) rather than filling them with zeros. */
  setToNone?: boolean;
}

export interface VariableOptions {
  requiresGrad?: boolean;
}

/** Checks zeroGrad's options (Variable, Module and Optimizer share them): only a boolean setToNone. */
export function checkZeroGradOptions(options: ZeroGradOptions | undefined, fn: string): ZeroGradOptions {
  const o = checkOptions(options, ['setToNone'], fn);
  if (o.setToNone !== undefined && typeof o.setToNone !== 'boolean') throw new InvalidArgumentError(`${fn}: setToNone must be a boolean, got ${describeValue(o.setToNone)}`);
  return o;
}

/** A Tensor with autograd: requiresGrad, grad, and the Node that produced it (null for leaves). */
export class Variable {
  #grad: Tensor | null = null;
  #requiresGrad = false;
  /** Created inside inferenceMode: may never be saved for backward. */
  readonly isInference: boolean;

  constructor(public data: Tensor, options: VariableOptions = {}, readonly gradFn: Node | null = null) {
    if (!(data instanceof Tensor)) throw new InvalidArgumentError(`Variable: data must be a Tensor, got ${describeValue(data)}`);
    const o = checkOptions(options, ['requiresGrad'], 'Variable');
    this.requiresGrad = o.requiresGrad ?? gradFn !== null;
    this.isInference = inferenceDepth > 0;
  }

  /** Whether backward computes a gradient for this variable; only float variables may (as PyTorch). */
  get requiresGrad(): boolean { return this.#requiresGrad; }
  set requiresGrad(v: boolean) {
    if (typeof v !== 'boolean') throw new InvalidArgumentError(`requiresGrad must be a boolean, got ${describeValue(v)}`);
    if (v && (this.data.dtype === 'int32' || this.data.dtype === 'uint8')) {
      throw new InvalidArgumentError(`${this.data.dtype === 'int32' ? 'an' : 'a'} ${this.data.dtype} variable cannot require grad: only float dtypes can`);
    }
    this.#requiresGrad = v;
  }

  /**
   * The accumulated gradient (null until a backward reaches this leaf). Assigning checks the
   * tensor as PyTorch does: the variable's shape and backend, a float dtype; null frees nothing.
   */
  get grad(): Tensor | null { return this.#grad; }
  set grad(g: Tensor | null) {
    if (g !== null) checkGrad(this, g, 'grad assignment');
    this.#grad = g;
  }

  static from(backend: Backend, data: ArrayLike<number> | Float32Array, shape: readonly number[], options: VariableOptions & { category?: 'parameter' | 'data' | 'activation' } = {}): Variable {
    return new Variable(Tensor.from(backend, data, shape, { category: options.category ?? 'data' }), { requiresGrad: options.requiresGrad });
  }

  get shape(): readonly number[] { return this.data.shape; }
  get backend(): Backend { return this.data.backend; }
  get isLeaf(): boolean { return this.gradFn === null; }

  /** A Variable on the same storage (a new reference), outside the graph. */
  detach(): Variable { return new Variable(this.data.reshape(this.shape), { requiresGrad: false }); }

  /**
   * Backpropagates from this variable. A scalar (shape []) is seeded with 1; otherwise pass
   * gradOutput (same shape; not taken over). Saved tensors are freed as they are used, so the graph
   * can be walked once.
   */
  backward(gradOutput?: Tensor): void {
    if (!this.requiresGrad) throw new InvalidArgumentError('backward() on a variable that does not require grad');
    let seed: Tensor;
    if (gradOutput) {
      if (gradOutput.shape.join() !== this.shape.join()) throw new InvalidArgumentError(`gradOutput shape [${gradOutput.shape.join(', ')}] differs from [${this.shape.join(', ')}]`);
      seed = gradOutput.reshape(gradOutput.shape);
    } else {
      if (this.shape.length !== 0) throw new InvalidArgumentError(`backward() without gradOutput needs a scalar (shape []), got [${this.shape.join(', ')}]`);
      seed = Tensor.from(this.backend, [1], [], { dtype: 'float32', category: 'temporary', label: 'backward seed' });
    }
    runBackward(this, seed);
  }

  /**
   * Registers hook(v), called during backward() once this leaf's gradient for that backward is
   * complete: every contribution of the graph has been accumulated into .grad (PyTorch's
   * register_post_accumulate_grad_hook). It runs inside backward, before the rest of the graph is
   * walked, so it may use .grad and free it (gradient release: src/optim/release.ts). A leaf that
   * gets no gradient in a backward is not called. Returns a function that removes the hook.
   */
  registerPostAccumulateGradHook(hook: PostAccumulateGradHook): () => void {
    if (typeof hook !== 'function') throw new InvalidArgumentError(`registerPostAccumulateGradHook: expected a function, got ${describeValue(hook)}`);
    if (!this.isLeaf) throw new InvalidArgumentError('registerPostAccumulateGradHook: only leaf Variables accumulate gradients (this one is the output of an op)');
    if (!this.requiresGrad) throw new InvalidArgumentError('registerPostAccumulateGradHook: the variable does not require grad');
    let hooks = postAccumulateHooks.get(this);
    if (!hooks) postAccumulateHooks.set(this, hooks = []);
    const entry = { hook };
    hooks.push(entry);
    hookedLeaves++;
    return () => {
      const list = postAccumulateHooks.get(this);
      const i = list ? list.indexOf(entry) : -1;
      if (i < 0) return;
      list!.splice(i, 1);
      hookedLeaves--;
      if (list!.length === 0) postAccumulateHooks.delete(this);
    };
  }

  /** Drops the graph behind this variable without running backward (frees its saved tensors). */
  releaseGraph(): void {
    if (!this.gradFn || this.gradFn.seq < graphFloor) return;
    for (const n of collect(this.gradFn, graphFloor)) n.releaseSaved();
  }

  /**
   * Frees .grad (setToNone, the default, as PyTorch), or with setToNone: false writes zeros into it
   * (no allocation; NaN and inf become 0 too).
   */
  zeroGrad(options: ZeroGradOptions = {}): void {
    const o = checkZeroGradOptions(options, 'zeroGrad');
    if (!this.grad) return;
    if (o.setToNone ?? true) {
      this.grad.dispose();
      this.grad = null;
      return;
    }
    // Gradients are whole float32 tensors (accumulate() makes them): byte offset = element offset * 4.
    this.grad.backend.fill(this.grad, 0); // on the device: no zeros uploaded
  }

  /** Frees the data (and the grad); the graph's saved tensors are freed by backward or releaseGraph. */
  dispose(): void {
    this.data.dispose();
    this.zeroGrad();
  }
}

/**
 * Records an op's output: a Node when grad mode is on and an input requires grad. `temps` are
 * tensors the op made only to be saved (statistics such as rstd): record disposes the op's
 * reference to them once they are saved (or at once when nothing is recorded).
 */
export function record(
  name: string, out: Tensor, inputs: Variable[],
  save: (needs: boolean[]) => (Tensor | null)[], backward: BackwardFn, temps: readonly Tensor[] = [],
  slots?: readonly string[], takesViews = false,
): Variable {
  const needs = inputs.map((v) => v.requiresGrad);
  let recorded = false;
  try {
    if (!gradEnabled || !needs.some(Boolean)) {
      recorded = true;
      return track(new Variable(out, { requiresGrad: false }));
    }
    const toSave = save(needs);
    for (const t of toSave) {
      if (!t) continue;
      const owner = inputs.find((v) => v.data === t);
      if (owner?.isInference) throw new InvalidArgumentError(`${name}: an inference variable cannot be saved for backward (it was made inside inferenceMode)`);
    }
    const v = track(new Variable(out, { requiresGrad: true }, new Node(name, inputs, needs, toSave, backward, slots ?? savedSlots(toSave, inputs, out), takesViews)));
    recorded = true;
    return v;
  } finally {
    if (!recorded) out.dispose(); // the op failed: its output must not leak
    for (const t of temps) t.dispose();
    setAllocationOp(null);
  }
}

/** The slot of each saved tensor: an input ('input0', ...), the output, or the statistic's own name ('rstd', ...). */
function savedSlots(toSave: readonly (Tensor | null)[], inputs: readonly Variable[], out: Tensor): string[] {
  return toSave.map((t, i) => {
    if (!t) return '';
    const k = inputs.findIndex((v) => v.data === t);
    if (k >= 0) return `input${k}`;
    if (t === out) return 'output';
    const label = t.storage.label;
    return label ? label.slice(label.lastIndexOf('/') + 1) : `saved${i}`;
  });
}

// ---- tidy ---------------------------------------------------------------------------------------

const scopes: Set<Variable>[] = [];

function track(v: Variable): Variable {
  scopes[scopes.length - 1]?.add(v);
  return v;
}

function collectVariables(x: unknown, into: Set<Variable>, depth = 0): void {
  if (x instanceof Variable) into.add(x);
  else if (depth < 4 && Array.isArray(x)) for (const e of x) collectVariables(e, into, depth + 1);
  else if (depth < 4 && x !== null && typeof x === 'object' && Object.getPrototypeOf(x) === Object.prototype) {
    for (const e of Object.values(x)) collectVariables(e, into, depth + 1);
  }
}

/**
 * Runs fn and then disposes every op output (Variable made by a differentiable op) created inside
 * it, except those it returns (found in the result, in arrays or plain objects), which move to the
 * enclosing scope. Saved tensors, gradients, parameters and optimizer state are not op outputs and
 * are untouched, so a forward pass can be wrapped whole: what backward needs stays saved.
 * (tf.tidy's role; PyTorch leaves this to the garbage collector, which does not see GPU memory.)
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Variable>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
    if (result instanceof Promise) throw new InvalidArgumentError('tidy takes a synchronous function');
  } catch (e) {
    // Nothing escapes: free every op output made inside, with the graphs (saved tensors) behind them.
    for (const v of scope) {
      v.releaseGraph();
      if (!v.data.isDisposed) v.dispose();
    }
    throw e;
  } finally {
    scopes.pop();
  }
  const keep = new Set<Variable>();
  collectVariables(result, keep);
  const parent = scopes[scopes.length - 1];
  for (const v of scope) {
    if (keep.has(v)) parent?.add(v);
    else if (!v.data.isDisposed) v.dispose();
  }
  return result;
}

/** Takes v out of every tidy scope (it will not be disposed by them). */
export function keep<T extends Variable>(v: T): T {
  for (const s of scopes) s.delete(v);
  return v;
}

/** Nodes recorded before this seq are not released by releaseGraph (set while a recompute runs). */
let graphFloor = 0;
/** The nodes recorded inside the innermost discardGraph (all released at its end, reachable or not). */
let discarded: Node[] | null = null;

/**
 * Runs fn as a throwaway forward (a checkpoint's recompute): every op output made inside is
 * disposed and every graph recorded inside released when it ends, whether it returns or throws;
 * graphs recorded before it started are never released from inside (a closure may hold a
 * Variable of the outer graph). Errors propagate.
 */
export function discardGraph(fn: () => void): void {
  const scope = new Set<Variable>();
  const prevFloor = graphFloor, prevDiscarded = discarded;
  const nodes: Node[] = [];
  graphFloor = nextSeq;
  discarded = nodes;
  scopes.push(scope);
  try {
    fn();
  } finally {
    scopes.pop();
    discarded = prevDiscarded;
    graphFloor = prevFloor;
    for (const n of nodes) n.releaseSaved();
    for (const v of scope) if (!v.data.isDisposed) v.dispose();
  }
}

/** Puts an op output made by hand (not by record) into the innermost tidy scope. */
export function trackOutput<T extends Variable>(v: T): T {
  track(v);
  return v;
}

function collect(root: Node, floor = 0): Node[] {
  const seen = new Set<Node>();
  const stack = [root];
  while (stack.length) {
    const n = stack.pop()!;
    if (seen.has(n)) continue;
    seen.add(n);
    for (const v of n.inputs) if (v.gradFn && v.gradFn.seq >= floor && !seen.has(v.gradFn)) stack.push(v.gradFn);
  }
  // A node is always created after the nodes of its inputs: descending seq is a topological order.
  return [...seen].sort((a, b) => b.seq - a.seq);
}

/** g when contiguous, else a contiguous copy of it (g is then disposed): what sums and .grad take. */
function dense(g: Tensor): Tensor {
  if (g.isContiguous) return g;
  try { return g.contiguous(); } finally { g.dispose(); }
}

/** Throws unless g can be v's .grad: v's shape and backend, a float dtype, not disposed. */
function checkGrad(v: Variable, g: Tensor, what: string): void {
  if (!(g instanceof Tensor)) throw new InvalidArgumentError(`${what}: a grad must be a Tensor or null, got ${describeValue(g)}`);
  if (g.isDisposed) throw new InvalidArgumentError(`${what}: the grad tensor was disposed`);
  if (g.shape.join() !== v.shape.join() || g.rank !== v.data.rank) {
    throw new ShapeMismatchError(`${what}: a grad of shape [${g.shape.join(', ')}] for a variable of shape [${v.shape.join(', ')}] (they must be equal)`);
  }
  if (g.dtype === 'int32' || g.dtype === 'uint8') throw new InvalidArgumentError(`${what}: a grad must have a float dtype, got ${g.dtype}`);
  if (g.backend !== v.backend) throw new InvalidArgumentError(`${what}: the grad is on the ${g.backend.kind} backend but the variable on ${v.backend.kind}`);
}

function accumulate(v: Variable, g: Tensor): void {
  if (!g.isContiguous) return onContiguous([g], (c) => accumulate(v, c));
  if (g.shape.join() !== v.shape.join()) throw new InvalidArgumentError(`internal: gradient shape [${g.shape.join(', ')}] for a variable of shape [${v.shape.join(', ')}]`);
  if (v.grad) checkGrad(v, v.grad, 'backward: accumulating into .grad'); // .data may have been replaced since
  const be = v.backend;
  if (!v.grad) {
    v.grad = withOutputs(() => {
      const grad = Tensor.empty(be, v.shape, { dtype: 'float32', category: 'gradient', label: 'grad' });
      be.unary('scale', g, grad, 1);
      return grad;
    });
  } else if (v.grad.isSoleOwner && v.grad.dtype === 'float32') {
    // In place, as PyTorch accumulates .grad (every backend may write a binary op's output over
    // an input): no third gradient-sized buffer while a parameter used several times accumulates.
    be.binary('add', v.grad, g, v.grad);
  } else {
    // Out of place: a view of .grad (or a saved copy) shares its storage.
    const prev = v.grad;
    const sum = withOutputs(() => {
      const t = Tensor.empty(be, v.shape, { dtype: 'float32', category: 'gradient', label: 'grad' });
      be.binary('add', prev, g, t);
      return t;
    });
    prev.dispose();
    v.grad = sum;
  }
}

let backwardRoots: Variable[] = [];

/** The Variable whose backward() is running (the innermost), or null outside backward. */
export function currentBackwardRoot(): Variable | null {
  return backwardRoots[backwardRoots.length - 1] ?? null;
}

function runBackward(root: Variable, seed: Tensor): void {
  backwardRoots.push(root);
  try {
    walkBackward(root, seed);
  } finally {
    backwardRoots.pop();
  }
}

/**
 * Internal (gradient release): `start` runs when a backward begins, before any gradient is
 * computed, with the leaves holding post-accumulate hooks that the backward reaches, and may throw
 * to refuse it; `failed` runs with the same leaves when a started backward throws.
 */
export interface BackwardGuard {
  start(root: Variable, hooked: readonly Variable[]): void;
  failed(root: Variable, hooked: readonly Variable[]): void;
}
const backwardGuards: BackwardGuard[] = [];

/** Adds a BackwardGuard (for the life of the process). */
export function addBackwardGuard(guard: BackwardGuard): void {
  backwardGuards.push(guard);
}

function walkBackward(root: Variable, seed: Tensor): void {
  if (!root.gradFn) {
    const hooked = hookedLeaves > 0 && postAccumulateHooks.has(root) ? [root] : [];
    guarded(root, hooked, seed, () => {
      try { accumulate(root, seed); } finally { seed.dispose(); }
      if (hookedLeaves > 0) runPostAccumulateHooks(root);
    });
    return;
  }
  const rootNode = root.gradFn;
  const order = collect(rootNode);
  // With post-accumulate hooks: the contributions each hooked leaf still awaits (one per edge from
  // a node to it), and the leaves that got a gradient; a leaf is complete when its count is 0.
  const pending = new Map<Variable, number>();
  if (hookedLeaves > 0) {
    for (const node of order) {
      node.inputs.forEach((v, i) => {
        if (node.needs[i] && !v.gradFn && postAccumulateHooks.has(v)) pending.set(v, (pending.get(v) ?? 0) + 1);
      });
    }
  }
  guarded(root, [...pending.keys()], seed, () => walkNodes(rootNode, seed, order, pending));
}

/** Runs the guards' start (disposing seed if one refuses), then walk; the guards' failed if walk throws. */
function guarded(root: Variable, hooked: Variable[], seed: Tensor, walk: () => void): void {
  if (hooked.length === 0 || backwardGuards.length === 0) return walk();
  try {
    for (const g of backwardGuards) g.start(root, hooked);
  } catch (e) {
    seed.dispose();
    throw e;
  }
  try {
    walk();
  } catch (e) {
    for (const g of backwardGuards) g.failed(root, hooked);
    throw e;
  }
}

/** The tensors backwards return for a leaf whose .grad they wrote themselves (leafGradOutput). */
const WRITTEN = new WeakSet<Tensor>();

/**
 * For a backward whose gradient for input `v` is one kernel's output (a linear layer's weight
 * gradient): where that kernel may write it straight into v's .grad, as accumulate would have put
 * it: v a leaf that requires grad, whose .grad is a float32 tensor of v's shape no other tensor
 * shares ({ grad, accumulate: true }: add into it, as the in-place accumulation does) or which has
 * no .grad yet ({ grad: a new .grad, accumulate: false }: write it); null otherwise (return the
 * gradient as usual). After writing, the backward returns leafGradWritten(v) in v's place. The same
 * bits as a temporary accumulated afterwards, without the temporary.
 */
export function leafGradOutput(v: Variable): { grad: Tensor; accumulate: boolean } | null {
  if (!v.isLeaf || !v.requiresGrad) return null;
  const g = v.grad;
  if (!g) {
    const grad = Tensor.empty(v.backend, v.shape, { dtype: 'float32', category: 'gradient', label: 'grad' });
    v.grad = grad;
    return { grad, accumulate: false };
  }
  if (g.isDisposed || g.backend !== v.backend || g.dtype !== 'float32' || !g.isSoleOwner || g.shape.join() !== v.shape.join()) return null;
  return { grad: g, accumulate: true };
}

/** What a backward returns for v after writing its gradient into v's .grad (leafGradOutput). */
export function leafGradWritten(v: Variable): Tensor {
  const t = v.grad!.reshape(v.shape);
  WRITTEN.add(t);
  return t;
}

/** Gradients that stand for rows [start, ...) of a zero gradient of `shape` (rowsGradient). */
const ROWS = new WeakMap<Tensor, { readonly shape: readonly number[]; readonly start: number }>();

/**
 * A backward's gradient that is zero but for rows [start, start + g.shape[0]) of the first
 * dimension, which are g (taken over): narrow's. backward adds g into those
 * rows of a pending sum it alone holds, in place, instead of a zero tensor of `shape` with g copied
 * in and a sum of two whole tensors: the pieces of a chunked checkpoint then assemble their input's
 * gradient in one buffer. The same values (0 + y = y; the rows add as before), except that a -0
 * outside the rows stays -0 where 0 + -0 gave +0.
 */
export function rowsGradient(g: Tensor, shape: readonly number[], start: number): Tensor { // g may be strided (see addRowsInPlace)
  ROWS.set(g, { shape: [...shape], start });
  return g;
}

/** g (a rowsGradient) as the whole zero-padded gradient it stands for; takes over g. */
function wholeRows(g: Tensor): Tensor {
  const r = ROWS.get(g);
  if (!r) return g;
  try {
    return withOutputs(() => {
      const t = Tensor.empty(g.backend, r.shape, { dtype: 'float32', category: 'temporary', label: 'grad' });
      g.backend.fill(t, 0);
      const rows = t.slice(r.start, r.start + g.shape[0]);
      try { g.backend.copy(g, rows); } finally { rows.dispose(); }
      return t;
    });
  } finally {
    g.dispose();
  }
}

/**
 * Adds g (a rowsGradient) into its rows of prev in place when prev is a float32 buffer no one else
 * holds and g is contiguous (a narrow's gradient may arrive strided: it then takes the whole-tensor
 * path, which copies it); whether it did (g is then disposed).
 */
function addRowsInPlace(prev: Tensor, g: Tensor): boolean {
  const r = ROWS.get(g);
  if (!r || !g.isContiguous || prev.backend !== g.backend || prev.dtype !== 'float32' || !prev.isSoleOwner || prev.shape.join() !== r.shape.join()) return false;
  const rows = prev.slice(r.start, r.start + g.shape[0]);
  try { prev.backend.binary('add', rows, g, rows); } finally { rows.dispose(); }
  g.dispose();
  return true;
}

function walkNodes(rootNode: Node, seed: Tensor, order: Node[], pending: Map<Variable, number>): void {
  const touched = new Set<Variable>();
  /** Counts the node's edges to hooked leaves as done; runs the hooks of leaves now complete. */
  const settle = (node: Node): void => {
    if (pending.size === 0) return;
    node.inputs.forEach((v, i) => {
      const n = node.needs[i] ? pending.get(v) : undefined;
      if (n === undefined) return;
      if (n > 1) { pending.set(v, n - 1); return; }
      pending.delete(v);
      if (touched.has(v)) runPostAccumulateHooks(v);
    });
  };
  const grads = new Map<Node, Tensor>([[rootNode, seed]]);
  try {
    for (const node of order) {
      const gy = grads.get(node);
      grads.delete(node);
      if (!gy) { node.releaseSaved(); settle(node); continue; }
      let gins: (Tensor | null)[];
      try { gins = node.apply(gy); } finally { gy.dispose(); }
      try {
        node.inputs.forEach((v, i) => {
          const g0 = gins[i];
          if (!g0) return;
          let g: Tensor = g0;
          if (!v.requiresGrad) { g.dispose(); return; }
          if (WRITTEN.has(g)) { // the backward wrote v's .grad itself (leafGradOutput)
            g.dispose();
            if (pending.size > 0) touched.add(v);
            return;
          }
          if (v.gradFn) {
            const pending0 = grads.get(v.gradFn);
            if (pending0 && addRowsInPlace(pending0, g)) return;
            g = gins[i] = wholeRows(g);
            if (pending0) {
              // Two contributions: their sum is contiguous (strided ones are copied first).
              const prev = dense(pending0);
              grads.set(v.gradFn, prev);
              g = gins[i] = dense(g);
              // Out of place: prev or g may be a view sharing storage with another pending gradient.
              const sum = withOutputs(() => {
                const t = Tensor.empty(v.backend, prev.shape, { dtype: 'float32', category: 'temporary', label: 'grad' });
                v.backend.binary('add', prev, g, t);
                return t;
              });
              prev.dispose();
              g.dispose();
              grads.set(v.gradFn, sum);
            } else grads.set(v.gradFn, g);
          } else {
            // a .grad that cannot take the rows in place (disposed, shared, another backend or
            // shape) goes through accumulate, whose checks name the problem
            if (!v.grad || !addRowsInPlace(v.grad, g)) {
              g = gins[i] = wholeRows(g);
              accumulate(v, g);
              g.dispose();
            }
            if (pending.size > 0) touched.add(v);
          }
        });
      } catch (e) {
        for (const g of gins) g?.dispose(); // dispose is idempotent: those already used are unaffected
        throw e;
      }
      settle(node);
    }
  } finally {
    for (const g of grads.values()) g.dispose();
    for (const n of order) n.releaseSaved();
  }
}
