// autocast: PyTorch's automatic mixed precision as an op policy on the one road of ops (op.ts).
// Ops are classed by their PyTorch name, as torch.autocast('cuda') classes them:
// - lower precision (matmul, linear, scaled_dot_product_attention, conv): inputs cast to the
//   autocast dtype, output in it;
// - float32 (softmax, log_softmax, layer_norm, rms_norm, cross_entropy, sum, exp, log, pow, ...):
//   computed in float32, output float32. memfit does not cast their inputs up first: the kernels
//   decode bfloat16/float16 exactly into float32, so the result is identical to PyTorch's
//   cast-then-compute, and the tensor the op saves for backward stays in the lower dtype (PyTorch
//   saves the float32 copy);
// - promote (none of memfit's ops yet): the widest input type;
// - every other op runs in its inputs' types.
// Inside one region each float32 leaf that requires grad (a parameter) is cast once (the cast
// cache) and the copies are released when the region ends.
import { checkOptions, describeValue, InvalidArgumentError, MemfitError } from '../errors.js';
import { canonicalDType } from '../dtype/formats.js';
import type { TensorDType } from '../backend/backend.js';
import { isGradEnabled, markRecomputable, withOpPolicy, type OpDecision, type OpPolicy, type Variable } from '../autograd/variable.js';
import { cast } from '../autograd/ops.js';
import { Module } from '../nn/module.js';

/** The dtypes autocast can compute in. */
export type AutocastDType = 'bfloat16' | 'float16';

export interface AutocastOptions {
  /** 'bfloat16' (default) or 'float16' (aliases such as 'bf16', 'fp16', 'half' too). */
  dtype?: AutocastDType | 'bf16' | 'fp16' | 'half' | 'f16';
  /** false turns autocast off inside an enabled region (ops run in their inputs' types). */
  enabled?: boolean;
  /**
   * Reuse casts (default true), as PyTorch's cast cache: a float32 parameter is cast once per
   * region and module call (a copy made inside a tidy, such as a module's forward, is freed when
   * the tidy ends, so a model's weight copies are not all held at once; PyTorch holds them to the
   * region's end), and a variable read by several ops (q, k and v's input) once while a graph is recorded.
   */
  cacheEnabled?: boolean;
  /**
   * Let float32-class ops keep the float32 tensors they save for backward in bfloat16 under
   * bfloat16 autocast (rms_norm/layer_norm's input, cross_entropy's gradient): default true;
   * float16 autocast never does (its range would flush small gradient entries). Forward results are
   * unchanged; gradients differ by the rounding of those tensors (bounded in the tests). false saves
   * them in float32, as PyTorch does.
   */
  saveLowerPrecision?: boolean;
}

/** Ops that compute in the autocast dtype (PyTorch's CUDA lower-precision list, by memfit's and torch's names). */
export const AUTOCAST_LOWER_PRECISION_OPS: ReadonlySet<string> = new Set([
  'matmul', 'mm', 'bmm', 'addmm', 'addbmm', 'baddbmm', 'linear', 'scaled_dot_product_attention',
  'conv1d', 'conv2d', 'conv3d', 'conv_transpose1d', 'conv_transpose2d', 'conv_transpose3d', 'prelu', 'chain_matmul', 'multi_dot',
]);

/** Ops that compute and output float32 (PyTorch's CUDA float32 list). */
export const AUTOCAST_FLOAT32_OPS: ReadonlySet<string> = new Set([
  'softmax', 'log_softmax', 'layer_norm', 'rms_norm', 'group_norm', 'cross_entropy', 'nll_loss', 'mse_loss', 'l1_loss',
  'smooth_l1_loss', 'huber_loss', 'kl_div', 'binary_cross_entropy_with_logits', 'sum', 'prod', 'cumsum', 'cumprod',
  'exp', 'expm1', 'log', 'log10', 'log2', 'log1p', 'pow', 'rsqrt', 'reciprocal', 'norm', 'logsumexp', 'softplus',
  'acos', 'asin', 'cosh', 'sinh', 'tan', 'erfinv', 'dist', 'cdist', 'cosine_similarity',
]);

/** Ops that run in the widest of their inputs' types. */
export const AUTOCAST_PROMOTE_OPS: ReadonlySet<string> = new Set([
  'addcdiv', 'addcmul', 'atan2', 'bilinear', 'cross', 'dot', 'grid_sampler', 'index_put', 'scatter_add', 'tensordot', 'cat', 'stack',
]);

/** How autocast treats an op: 'lower', 'float32', 'promote' or 'same' (its inputs' types). */
export function autocastClass(op: string): 'lower' | 'float32' | 'promote' | 'same' {
  if (AUTOCAST_LOWER_PRECISION_OPS.has(op)) return 'lower';
  if (AUTOCAST_FLOAT32_OPS.has(op)) return 'float32';
  if (AUTOCAST_PROMOTE_OPS.has(op)) return 'promote';
  return 'same';
}

interface Region {
  readonly dtype: AutocastDType | null;
  readonly cache: Map<Variable, Variable> | null;
  readonly saveLowered: boolean;
}

const regions: Region[] = [];

/** The dtype autocast computes in here, or null outside autocast (or where it is disabled). */
export function autocastDtype(): AutocastDType | null {
  return regions[regions.length - 1]?.dtype ?? null;
}

function resolveDtype(dtype: AutocastOptions['dtype']): AutocastDType {
  if (dtype === undefined) return 'bfloat16';
  let d: string;
  try {
    d = canonicalDType(dtype as string);
  } catch {
    throw new InvalidArgumentError(`autocast: unsupported dtype ${JSON.stringify(dtype)}; use 'bfloat16' or 'float16'`);
  }
  if (d !== 'bfloat16' && d !== 'float16') throw new InvalidArgumentError(`autocast: unsupported dtype ${JSON.stringify(dtype)} (${d}); use 'bfloat16' or 'float16'`);
  return d;
}

function lowered(region: Region, x: Variable, dtype: AutocastDType): Variable {
  // Every floating input of another dtype is cast (PyTorch's is_eligible: float16 under bfloat16
  // autocast too, and the reverse); integer tensors (ids) pass as they are.
  if (x.data.dtype === dtype || x.data.dtype === 'int32' || x.data.dtype === 'uint8') return x;
  if (region.cache === null) return cast(x, dtype);
  const leaf = x.isLeaf && x.requiresGrad;
  // PyTorch caches the casts of parameters. memfit also reuses the cast of any other variable
  // while a graph is recorded (variables never change; the q, k and v projections read one
  // normalised input: one bfloat16 copy is made and saved, not three); without a graph it would
  // only hold memory longer.
  if (!leaf && !isGradEnabled()) return cast(x, dtype);
  let c = region.cache.get(x);
  // A copy lives until the tidy it was made in ends (a module's forward: a layer's weight copies are
  // not all held at once), or the region: a later use after that casts again (the same bits).
  if (!c || c.data.isDisposed) {
    // Parameters' copies are 'temporary' memory, labelled 'to'.
    c = cast(x, dtype, leaf ? { category: 'temporary' } : {});
    // A node that saves a parameter's copy keeps the parameter instead and casts it again in
    // backward: the same bits, and no copy of the weights is held between forward and backward.
    if (leaf) markRecomputable(c.data, x.data, (p) => p.to(dtype, {}));
    region.cache.set(x, c);
  }
  return c;
}

function widest(inputs: readonly Variable[]): TensorDType {
  const ds = new Set(inputs.map((v) => v.data.dtype));
  if (ds.has('float32') || (ds.has('bfloat16') && ds.has('float16'))) return 'float32';
  return [...ds].find((d) => d !== 'int32') ?? 'float32';
}

function policyFor(region: Region) {
  return (op: string, inputs: readonly Variable[]): readonly Variable[] | OpDecision => {
    const dtype = region.dtype;
    if (dtype === null) return inputs;
    switch (autocastClass(op)) {
      case 'lower': return { inputs: inputs.map((x) => lowered(region, x, dtype)), outputDtype: dtype };
      // Kernels read the inputs exactly: no up-cast copy is made or saved. The float32 tensors the op
      // saves for backward (rms_norm's input, cross_entropy's gradient) may be kept in the autocast dtype.
      // Only bfloat16 (float32's exponent range: nothing overflows or flushes): float16 would lose
      // cross_entropy's small gradient entries to its subnormal range before the GradScaler scales them.
      case 'float32': return { inputs, outputDtype: 'float32', saveDtype: region.saveLowered && dtype === 'bfloat16' ? dtype : 'float32' };
      case 'promote': {
        const d = widest(inputs);
        return { inputs: inputs.map((x) => (x.data.dtype === d || x.data.dtype === 'int32' ? x : cast(x, d as AutocastDType | 'float32'))), outputDtype: d };
      }
      default: return inputs;
    }
  };
}

/** The options each live autocast policy was made from (a checkpoint's recompute re-enters them). */
const policyOptions = new WeakMap<OpPolicy, AutocastOptions>();

/** The autocast options behind `policy` (undefined when it is not an autocast region's). */
export function autocastOptionsOf(policy: OpPolicy): AutocastOptions | undefined {
  return policyOptions.get(policy);
}

/**
 * Runs fn with autocast: torch.autocast(device, dtype) as a scope. Nestable; the innermost region
 * decides, and `{ enabled: false }` turns it off for a subgraph (run it in float32 by hand).
 * fn must be synchronous: ops after an `await` would run outside the region.
 */
const AUTOCAST_OPTIONS = ['dtype', 'enabled', 'cacheEnabled', 'saveLowerPrecision'] as const;

/** Checks autocast options (no unknown keys: a typo such as `enable: false` would leave autocast on; booleans; the dtype). */
function checkAutocastOptions(options: AutocastOptions | undefined, fn: string): AutocastOptions {
  const o = checkOptions(options, AUTOCAST_OPTIONS, fn);
  for (const k of ['enabled', 'cacheEnabled', 'saveLowerPrecision'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'boolean') throw new InvalidArgumentError(`${fn}: ${k} must be a boolean, got ${describeValue(o[k])}`);
  }
  if (o.enabled !== false) resolveDtype(o.dtype); // bad options fail here, not at the first op
  return o;
}

export function autocast<T>(options: AutocastOptions, fn: () => T): T {
  options = checkAutocastOptions(options, 'autocast');
  if (typeof fn !== 'function') throw new InvalidArgumentError('autocast(options, fn): fn must be a function');
  if (fn.constructor?.name === 'AsyncFunction') throw new InvalidArgumentError('autocast takes a synchronous function: ops after an await would run outside the region');
  const enabled = options.enabled ?? true;
  const region: Region = {
    dtype: enabled ? resolveDtype(options.dtype) : null,
    cache: enabled && (options.cacheEnabled ?? true) ? new Map() : null,
    saveLowered: options.saveLowerPrecision ?? true,
  };
  regions.push(region);
  try {
    const policy = policyFor(region);
    policyOptions.set(policy, { ...options });
    const r = withOpPolicy(policy, fn);
    if (r instanceof Promise) throw new MemfitError('INVALID_ARGUMENT', 'autocast: fn returned a Promise; autocast takes a synchronous function');
    return r;
  } finally {
    regions.pop();
    // The cached casts: released here (a node that saved one keeps its own reference until backward).
    if (region.cache) for (const c of region.cache.values()) c.data.dispose();
  }
}

/** Makes `module`'s forward run under autocast (a module wrapper); returns a function that undoes it. */
export function autocastModule(module: Module, options: AutocastOptions = {}): () => void {
  if (!(module instanceof Module)) throw new InvalidArgumentError(`autocastModule: expected a Module, got ${describeValue(module)}`);
  options = checkAutocastOptions(options, 'autocastModule'); // bad options fail here, not at the first forward
  const m = module as unknown as { forward: (...args: unknown[]) => unknown };
  const inner = (Object.getPrototypeOf(module) as { forward?: unknown }).forward as ((...args: unknown[]) => unknown) | undefined;
  if (typeof inner !== 'function') throw new InvalidArgumentError(`autocastModule: ${module.constructor.name} has no forward`);
  m.forward = function (this: unknown, ...args: unknown[]) { return autocast(options, () => inner.apply(module, args)); };
  return () => { m.forward = inner; };
}
