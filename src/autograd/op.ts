// The one road of an op. Every op is declared once as an OpDef: its PyTorch name, its output-dtype
// rule, and a forward that computes into outputs allocated for it and returns what it saves for
// backward and the backward itself, written beside it. `apply` runs every op the same way:
//   1. the innermost policy (autocast's hook) chooses the inputs (e.g. casts) and may choose the
//      output dtype (else the op's rule: float32 for most ops);
//   2. outputs are allocated in that dtype, in the 'activation' category while a graph is recorded
//      ('temporary' otherwise), labelled with the op and the module path;
//   3. the node is recorded while grad is enabled, and each saved tensor goes to the pack hook with
//      its context (op, module, slot);
//   4. observers (a profiler) are told when the op begins and ends, forward and backward.
// Tensor methods, nn.functional and the optimizers' updates travel the same road (Tensor methods
// and optimizer steps through `observeOp`, the part of it that applies without a graph).
import type { TensorDType } from '../backend/backend.js';
import type { Category } from '../backend/memory.js';
import { Tensor, resultDType, withOutputs } from '../tensor/tensor.js';
import { observeOp } from '../backend/op_context.js';
import { checkVariables, decideOp, isGradEnabled, record, type BackwardFn, type Variable } from './variable.js';
import { outCategory } from './kernels.js';

/** What an op's forward returns. */
export interface OpResult {
  /** The output (allocated with io.output or io.like). */
  readonly y: Tensor;
  /** The tensors backward needs, given which inputs need a gradient (default: none). */
  readonly save?: (needs: boolean[]) => (Tensor | null)[];
  /** Names of the saved tensors' slots, in order (default: input0.., output, or the tensor's label). */
  readonly slots?: readonly string[];
  /** One gradient per input (null where not needed), from the output gradient and the saved tensors. */
  readonly backward: BackwardFn;
  /** Tensors made only to be saved (statistics): released once saved, or at once when nothing is recorded. */
  readonly temps?: readonly Tensor[];
}

/** How a forward allocates: its output in the dtype chosen for it, and statistics. */
export interface OpIO {
  /** The output dtype chosen for this call (policy, else the op's rule). */
  readonly dtype: TensorDType;
  /** The category op outputs take now: 'activation' while recording, else 'temporary'. */
  readonly category: Category;
  /** The op's output of this shape, on the backend of `like`. */
  output(like: Tensor, shape: readonly number[]): Tensor;
  /** A float32 tensor in the output category (statistics saved for backward: rstd, lse, ...). */
  stat(like: Tensor, shape: readonly number[], label: string): Tensor;
  /** The dtype the policy lets this op keep float32 tensors it saves in (float32 unless a policy says otherwise). */
  readonly saveDtype: TensorDType;
  /**
   * What to save of a float32 tensor t: t itself, or (when the policy chose a lower saveDtype) a
   * rounded copy in the output category that the op lists in its temps.
   */
  forSaving(t: Tensor, label: string): Tensor;
}

export interface OpDef<A extends unknown[] = []> {
  /** PyTorch's name of the op ('matmul', 'linear', 'softmax', 'log_softmax', 'rms_norm', ...): what policies match. */
  readonly name: string;
  /** The output dtype when no policy chooses one (default float32: kernels compute in float32). */
  readonly outputDtype?: (inputs: readonly Variable[]) => TensorDType;
  /** Policies do not see this op: the casts a policy itself inserts ('to'). */
  readonly bypassPolicy?: boolean;
  /**
   * The forward takes strided views (permute's output) as they are, and the backward takes a
   * strided output gradient. Otherwise apply hands the forward contiguous copies (through
   * `contiguous`, recorded like any op) and backward gets a contiguous gradient.
   */
  readonly views?: boolean;
  readonly forward: (io: OpIO, inputs: readonly Variable[], ...args: A) => OpResult;
}

/** Declares an op (a record: nothing runs until apply). */
export function defineOp<A extends unknown[] = []>(def: OpDef<A>): OpDef<A> {
  return def;
}

/**
 * The output dtype rule of elementwise ops, dropout, sum and mean: the inputs' float dtype when they
 * all share one, else float32 (PyTorch keeps bf16 + bf16 in bfloat16). Tensor's elementwise methods
 * use the same rule; Tensor.sum(), .mean() and .max() (no autograd) keep bfloat16 and float16 and
 * give float32 for every other dtype.
 */
export function sameDtypeOrFloat32(inputs: readonly Variable[]): TensorDType {
  return inputs.length ? resultDType(...inputs.map((v) => v.data)) : 'float32';
}

/**
 * Sees every op (except the casts policies insert) after its policy step: it may run it (`run`)
 * and look at the result, or return a Variable without running it. Installed for a scope by a
 * checkpoint (src/recompute): its forward notes which outputs a selective policy keeps, and its
 * recompute hands those back instead of computing them again. The innermost one decides.
 */
export type OpInterceptor = (op: string, inputs: readonly Variable[], run: () => Variable) => Variable;

const interceptors: OpInterceptor[] = [];

/** Runs fn with `interceptor` seeing each op inside it (see OpInterceptor). */
export function withOpInterceptor<T>(interceptor: OpInterceptor, fn: () => T): T {
  interceptors.push(interceptor);
  try { return fn(); } finally { interceptors.pop(); }
}

/** Runs op on inputs: policy, allocation, recording, saved-tensor context, labels, observers. */
export function apply<A extends unknown[]>(op: OpDef<A>, inputs: readonly Variable[], ...args: A): Variable {
  checkVariables(op.name, inputs);
  if (!op.views && inputs.some((v) => !v.data.isContiguous)) inputs = inputs.map((v) => (v.data.isContiguous ? v : contiguous(v)));
  return observeOp(op.name, () => {
    const decided: { inputs: readonly Variable[]; outputDtype?: TensorDType; saveDtype?: TensorDType } = op.bypassPolicy ? { inputs } : decideOp(op.name, inputs);
    const dtype = decided.outputDtype ?? op.outputDtype?.(decided.inputs) ?? 'float32';
    const saveDtype = decided.saveDtype ?? 'float32';
    const category = outCategory();
    const io: OpIO = {
      dtype, category, saveDtype,
      output: (like, shape) => Tensor.empty(like.backend, shape, { dtype, category }),
      stat: (like, shape, label) => Tensor.empty(like.backend, shape, { dtype: 'float32', category, label }),
      forSaving: (t, label) => {
        if (t.dtype !== 'float32' || saveDtype === 'float32' || !isGradEnabled()) return t;
        const c = Tensor.empty(t.backend, t.shape, { dtype: saveDtype, category, label });
        t.backend.cast(t, c);
        return c;
      },
    };
    // A forward that throws frees every tensor it made (withOutputs); record frees the output if recording fails.
    const run = (): Variable => {
      const r = withOutputs(() => op.forward(io, decided.inputs, ...args));
      return record(op.name, r.y, [...decided.inputs], r.save ?? (() => []), r.backward, r.temps ?? [], r.slots, op.views);
    };
    const intercept = op.bypassPolicy ? undefined : interceptors[interceptors.length - 1];
    return intercept ? intercept(op.name, decided.inputs, run) : run();
  });
}

const CONTIGUOUS = defineOp({
  name: 'contiguous', bypassPolicy: true, views: true, outputDtype: ([x]) => x.data.dtype,
  forward: (io, [x]) => {
    const y = io.output(x.data, x.shape);
    x.backend.copy(x.data, y);
    return { y, backward: (gy) => [gy.reshape(gy.shape)] };
  },
});
/** x itself when contiguous, else a contiguous copy (recorded: the gradient passes through). PyTorch's Tensor.contiguous. */
export function contiguous(x: Variable): Variable {
  return x.data.isContiguous ? x : apply(CONTIGUOUS, [x]);
}
