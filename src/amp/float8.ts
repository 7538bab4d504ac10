// fp8 training of Linear layers (torchao's convert_to_float8_training, Transformer Engine's
// fp8_autocast recipes): the three matmuls of a Linear (y = x W^T, dX = dY W, dW = dY^T X) run on
// fp8 codes through the backend's scaledMatmul with float32 accumulation. Forward operands are
// float8_e4m3fn, the output gradient float8_e5m2 (TE's "hybrid" format). Quantization is
// q = saturate(fp8(x * scale)) with the product in float32, and the matmul multiplies by the
// inverse scales (TE's scale_inv).
//
// Recipes:
// - 'delayed' (TE's DelayedScaling): each of input, weight and output gradient has an amax history
//   [L] (default 1024), a scale and its inverse, all on the device. A tensor is quantized with the
//   scale from earlier steps; then its amax goes into history[0] and the scale is updated as TE's
//   amax_and_scale_update kernel does: amax = the largest entry of the history ('max'; NaN entries
//   skipped, as its fmaxf) or history[0] ('mostRecent'), the history is rolled by one and
//   history[0] zeroed, scale = 448 (57344) * 2^-margin / amax, kept when amax is zero or not finite. So the history is rolled after it is used: the newest amax counts
//   for the next step's scale. The update runs right after each quantization of that tensor (TE
//   runs it once per step, after the forward or backward; with one call of the layer per step that
//   is the same thing). Scales start at 1 and histories at 0, as in TE.
// - 'current' (torchao's tensorwise dynamic scaling, TE's Float8CurrentScaling): the scale is
//   448 / max(amax(x), 1e-12) of the tensor itself, computed on the device at every call; no state.
// - 'mx' (OCP MXFP8, torchao's MXLinear, TE's MXFP8BlockScaling, all tensors e4m3 as their
//   defaults): every 32 elements along the reduction dimension share an E8M0 scale
//   2^(floor(log2(amax)) - 8) (the OCP rule, which floors; torchao's default FLOOR mode; cuBLAS's
//   RCEIL rounds up instead), so each tensor is quantized along the axis its matmul reduces over
//   (x along in-features for y and along tokens for dW, and so on). Emulated: the quantized values
//   are dequantized (exactly) to float32 and multiplied by the backend's float32 matmul, as
//   torchao's emulated MX kernels do; no state. Dimensions must be multiples of 32.
// Nothing is read back to the host. The quantized input and weight (1 byte an element) are what
// the op saves for backward, with the inverse scales they were made with (as TE saves its fp8 casts).
// Biases are added to the output after the matmul (their gradient is a float32 sum). The output is
// in the autocast dtype inside autocast (TE's layers output the activation dtype), else the input's.
import { InvalidArgumentError, ShapeMismatchError, checkOptions, describeValue } from '../errors.js';
import type { Backend, Float8ScaleOptions, TensorRef } from '../backend/backend.js';
import type { Category } from '../backend/memory.js';
import { numel } from '../backend/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { apply, defineOp, sameDtypeOrFloat32 } from '../autograd/op.js';
import { checkVariables, type Variable } from '../autograd/variable.js';
import { floating, kSum, productPlusBias, sameBackend } from '../autograd/kernels.js';
import { Linear } from '../nn/layers.js';
import { autocastDtype } from './autocast.js';
import type { Module } from '../nn/module.js';

/** Transformer Engine's DelayedScaling: scales from a history of amaxes of earlier steps. */
export interface DelayedScalingRecipe {
  readonly scaling: 'delayed';
  /** Length of each amax history (default 1024, TE's default). */
  readonly amaxHistoryLen?: number;
  /** 'max' (default) of the history, or its 'mostRecent' entry. */
  readonly amaxComputeAlgo?: 'max' | 'mostRecent';
  /** The scale is divided by 2^margin (default 0). */
  readonly margin?: number;
}

/** Current (dynamic, tensorwise) scaling: the scale of each tensor from its own amax, every call. */
export interface CurrentScalingRecipe {
  readonly scaling: 'current';
}

/**
 * MXFP8 block scaling (OCP MX; torchao's MXLinear, TE's MXFP8BlockScaling): every 32 consecutive
 * elements along the reduction dimension share an E8M0 scale, all three tensors in float8_e4m3fn.
 * Emulated: the matmuls run on the dequantized values in float32 (see the top of this file).
 */
export interface MXScalingRecipe {
  readonly scaling: 'mx';
}

export type Float8Recipe = DelayedScalingRecipe | CurrentScalingRecipe | MXScalingRecipe;

/** Which Linear layers convertToFloat8Training converts: a RegExp tested on the dotted name, or a predicate. */
export type Float8Filter = RegExp | ((name: string, module: Linear) => boolean);

export interface Float8TrainingOptions {
  /** Layers to convert (default: every Linear). A filter that matches none is an error. */
  filter?: Float8Filter;
  /** Default: delayed scaling with TE's defaults (history 1024, 'max', margin 0). */
  recipe?: Float8Recipe;
}

/** Largest finite values of the two fp8 formats. */
export const FLOAT8_E4M3_MAX = 448;
export const FLOAT8_E5M2_MAX = 57344;

/** The three tensors of a Linear that are quantized, by their names in buffer keys (torchao's). */
export const FLOAT8_ROLES = ['input', 'weight', 'grad_output'] as const;
export type Float8Role = (typeof FLOAT8_ROLES)[number];

/** Delayed scaling's device state of one tensor role: buffers of the Float8Linear. */
interface ScalingState {
  readonly history: Tensor;
  readonly scale: Tensor;
  readonly scaleInv: Tensor;
}

interface ResolvedRecipe {
  readonly scaling: 'delayed' | 'current' | 'mx';
  readonly amaxHistoryLen: number;
  readonly amaxComputeAlgo: 'max' | 'mostRecent';
  readonly margin: number;
}

function resolveRecipe(recipe: Float8Recipe | undefined): ResolvedRecipe {
  if (recipe === undefined) return { scaling: 'delayed', amaxHistoryLen: 1024, amaxComputeAlgo: 'max', margin: 0 };
  if (recipe === null || typeof recipe !== 'object') throw new InvalidArgumentError(`float8 recipe must be an object, got ${describeValue(recipe)}`);
  if (recipe.scaling === 'current') {
    checkOptions(recipe, ['scaling'], 'float8 current-scaling recipe');
    return { scaling: 'current', amaxHistoryLen: 1, amaxComputeAlgo: 'mostRecent', margin: 0 };
  }
  if (recipe.scaling === 'mx') {
    checkOptions(recipe, ['scaling'], 'float8 MX recipe');
    return { scaling: 'mx', amaxHistoryLen: 1, amaxComputeAlgo: 'mostRecent', margin: 0 };
  }
  if (recipe.scaling !== 'delayed') throw new InvalidArgumentError(`float8 recipe.scaling must be 'delayed', 'current' or 'mx', got ${describeValue((recipe as { scaling: unknown }).scaling)}`);
  checkOptions(recipe, ['scaling', 'amaxHistoryLen', 'amaxComputeAlgo', 'margin'], 'float8 delayed-scaling recipe');
  const len = recipe.amaxHistoryLen ?? 1024;
  if (!Number.isSafeInteger(len) || len < 1) throw new InvalidArgumentError(`amaxHistoryLen must be a positive integer, got ${describeValue(len)}`);
  const algo = recipe.amaxComputeAlgo ?? 'max';
  if (algo !== 'max' && algo !== 'mostRecent') throw new InvalidArgumentError(`amaxComputeAlgo must be 'max' or 'mostRecent', got ${describeValue(algo)}`);
  const margin = recipe.margin ?? 0;
  if (!Number.isSafeInteger(margin) || margin < 0 || margin > 100) throw new InvalidArgumentError(`margin must be an integer in [0, 100], got ${describeValue(margin)}`);
  return { scaling: 'delayed', amaxHistoryLen: len, amaxComputeAlgo: algo, margin };
}

/** Element 0 of a float32 tensor as a shape-[] TensorRef (a reduce writes its one value there). */
function first(t: Tensor): TensorRef {
  return { storage: t.storage, offset: t.offset, shape: [], dtype: 'float32' };
}

/** x quantized to fp8 and the inverse scale it was made with (a [1] tensor the caller owns). */
interface Quantized {
  readonly q: Tensor;
  readonly inv: Tensor;
}

function quantize(be: Backend, x: Tensor, dtype: 'float8_e4m3fn' | 'float8_e5m2', recipe: ResolvedRecipe, state: ScalingState | null, category: Category, role: Float8Role): Quantized {
  const fp8Max = dtype === 'float8_e4m3fn' ? FLOAT8_E4M3_MAX : FLOAT8_E5M2_MAX;
  const made: Tensor[] = [];
  const make = (shape: readonly number[], opts: { dtype?: 'float32' | typeof dtype; category: Category; label: string }): Tensor => {
    const t = Tensor.empty(be, shape, { dtype: 'float32', ...opts });
    made.push(t);
    return t;
  };
  try {
    const inv = make([1], { category, label: `${role}_scale_inv` });
    let scale: Tensor;
    if (recipe.scaling === 'current' || state === null) {
      const amax = make([1], { category: 'temporary', label: `${role}_amax` });
      scale = make([1], { category: 'temporary', label: `${role}_scale` });
      be.reduce('amax', x, first(amax), null);
      be.float8ScaleUpdate(amax, scale, inv, { fp8Max, algorithm: 'current' });
    } else {
      scale = state.scale;
      be.cast(state.scaleInv, inv); // the inverse scale of this quantization, before the update below
    }
    const scaled = make(x.shape, { category: 'temporary', label: `${role}_scaled` });
    be.binary('mul', x, scale, scaled);
    const q = make(x.shape, { dtype, category, label: `${role}_fp8` });
    be.cast(scaled, q, { saturate: true });
    if (recipe.scaling === 'delayed' && state !== null) {
      be.reduce('amax', x, first(state.history), null); // the newest amax (history[0] is 0 after every update)
      const options: Float8ScaleOptions = { fp8Max, margin: recipe.margin, algorithm: recipe.amaxComputeAlgo };
      be.float8ScaleUpdate(state.history, state.scale, state.scaleInv, options);
    }
    for (const t of made) if (t !== q && t !== inv) t.dispose();
    return { q, inv };
  } catch (e) {
    for (const t of made) t.dispose();
    throw e;
  }
}

/** What a float8_linear call needs besides its inputs. */
export interface Float8LinearConfig {
  readonly recipe: ResolvedRecipe;
  /** Delayed scaling's state by role (null: current scaling). */
  readonly state: Readonly<Record<Float8Role, ScalingState>> | null;
}

const FLOAT8_LINEAR = defineOp({
  name: 'float8_linear',
  // Under autocast, the autocast dtype (as TE's layers output the activation dtype); else the input's.
  outputDtype: (inputs) => autocastDtype() ?? sameDtypeOrFloat32(inputs.slice(0, 1)),
  forward: (io, [x, weight, bias], config: Float8LinearConfig) => {
    floating(x.data, 'float8_linear');
    sameBackend(x.data, weight.data);
    const be = x.backend;
    const inF = x.shape[x.shape.length - 1];
    const outF = weight.shape[0];
    const rows = numel(x.shape.slice(0, -1));
    const x2 = x.data.reshape([rows, inF]);
    const y = io.output(x.data, [...x.shape.slice(0, -1), outF]);
    const y2 = y.reshape([rows, outF]);
    const st = config.state;
    let xq: Quantized | null = null, wq: Quantized | null = null;
    let wt: Tensor | null = null;
    try {
      xq = quantize(be, x2, 'float8_e4m3fn', config.recipe, st?.input ?? null, io.category, 'input');
      wq = quantize(be, weight.data, 'float8_e4m3fn', config.recipe, st?.weight ?? null, io.category, 'weight');
      wt = transposedCopy(wq.q); // [in, out]: scaledMatmul's B
      const w = wt;
      productPlusBias(be, y2, bias?.data ?? null, (into) => be.scaledMatmul(xq!.q, w, into, xq!.inv, wq!.inv));
    } catch (e) {
      for (const t of [xq?.q, xq?.inv, wq?.q, wq?.inv]) t?.dispose();
      throw e;
    } finally {
      x2.dispose(); y2.dispose(); wt?.dispose();
    }
    const { q: sxq, inv: sxInv } = xq, { q: swq, inv: swInv } = wq;
    return {
      y, temps: [sxq, sxInv, swq, swInv],
      save: (needs) => [needs[1] ? sxq : null, needs[1] ? sxInv : null, needs[0] ? swq : null, needs[0] ? swInv : null],
      slots: ['input_fp8', 'input_scale_inv', 'weight_fp8', 'weight_scale_inv'],
      backward: (gy, [xs, xsInv, ws, wsInv], needs) => {
        const g2 = gy.reshape([rows, outF]);
        let gq: Quantized | null = null;
        let gt: Tensor | null = null;
        const out: (Tensor | null)[] = [null, null, null];
        try {
          gq = quantize(be, g2, 'float8_e5m2', config.recipe, st?.grad_output ?? null, 'temporary', 'grad_output');
          if (needs[0]) { // dX = dY @ W: [rows, out] x [out, in]
            const gx = out[0] = Tensor.empty(be, x.shape, { dtype: 'float32', category: 'temporary' });
            const gx2 = gx.reshape([rows, inF]);
            try { be.scaledMatmul(gq.q, ws!, gx2, gq.inv, wsInv!); } finally { gx2.dispose(); }
          }
          if (needs[1]) { // dW = dY^T @ X: [out, rows] x [rows, in]
            gt = transposedCopy(gq.q);
            out[1] = Tensor.empty(be, weight.shape, { dtype: 'float32', category: 'temporary' });
            be.scaledMatmul(gt, xs!, out[1], gq.inv, xsInv!);
          }
          if (bias && needs[2]) out[2] = kSum(g2, 0, 'temporary'); // db: the rows of dY summed, in float32
          return out;
        } catch (e) {
          for (const t of out) t?.dispose();
          throw e;
        } finally {
          g2.dispose(); gt?.dispose(); gq?.q.dispose(); gq?.inv.dispose();
        }
      },
    };
  },
});

// ---- MXFP8 (emulated) --------------------------------------------------------------------------

/** Elements that share one E8M0 scale. */
export const MX_BLOCK = 32;

/** x [R, C] in MXFP8 along one axis: e4m3 codes [R, C] and E8M0 scales ([R, C / 32] rowwise, [R / 32, C] columnwise). */
interface MXTensor {
  readonly q: Tensor;
  readonly scales: Tensor;
  readonly along: 'rows' | 'columns';
}

/**
 * OCP MX quantization of x [R, C] in blocks of 32 along its rows (each row split in blocks of C)
 * or its columns: scale = 2^(floor(log2(amax of the block)) - 8) (the OCP rule, which floors; 8 is
 * e4m3's largest exponent; clamped to E8M0's [2^-127, 2^127]), q = saturate(e4m3(x / scale)).
 * The floor comes from casting amax * 2^-8 to float8_e8m0fnu rounding toward zero.
 */
function mxQuantize(be: Backend, x: Tensor, along: 'rows' | 'columns', category: Category, role: string): MXTensor {
  const [r, c] = x.shape;
  const blocked = along === 'rows' ? [r, c / MX_BLOCK, MX_BLOCK] : [r / MX_BLOCK, MX_BLOCK, c];
  const scaleShape = along === 'rows' ? [r, c / MX_BLOCK] : [r / MX_BLOCK, c];
  const scaleView = along === 'rows' ? [r, c / MX_BLOCK, 1] : [r / MX_BLOCK, 1, c];
  const made: Tensor[] = [];
  const make = (shape: readonly number[], dtype: 'float32' | 'float8_e4m3fn' | 'float8_e8m0fnu', cat: Category, label: string): Tensor => {
    const t = Tensor.empty(be, shape, { dtype, category: cat, label });
    made.push(t);
    return t;
  };
  const xb = x.reshape(blocked);
  made.push(xb);
  try {
    const amax = make(scaleShape, 'float32', 'temporary', `${role}_mx_amax`);
    be.reduce('amax', xb, amax, along === 'rows' ? 2 : 1);
    be.unary('scale', amax, amax, 2 ** -8);
    const scales = make(scaleShape, 'float8_e8m0fnu', category, `${role}_mx_scales`);
    be.cast(amax, scales, { rounding: 'toward-zero', saturate: true });
    const sf = make(scaleShape, 'float32', 'temporary', `${role}_mx_scale_f32`);
    be.cast(scales, sf);
    const sv = sf.reshape(scaleView);
    made.push(sv);
    const scaled = make(blocked, 'float32', 'temporary', `${role}_mx_scaled`);
    be.binary('div', xb, sv, scaled);
    const q = make([r, c], 'float8_e4m3fn', category, `${role}_mx`);
    const qb = q.reshape(blocked); // cast between tensors of one shape (WebGPU's cast reads rows by the shapes)
    made.push(qb);
    be.cast(scaled, qb, { saturate: true });
    for (const t of made) if (t !== q && t !== scales) t.dispose();
    return { q, scales, along };
  } catch (e) {
    for (const t of made) t.dispose();
    throw e;
  }
}

/** The values of an MX tensor in float32 (exact: fp8 value times a power of two), a temporary. */
function mxDequantize(be: Backend, m: MXTensor, label: string): Tensor {
  const [r, c] = m.q.shape;
  const out = Tensor.empty(be, [r, c], { dtype: 'float32', category: 'temporary', label });
  const parts: Tensor[] = [];
  try {
    const sf = Tensor.empty(be, m.scales.shape, { dtype: 'float32', category: 'temporary', label: `${label}_scales` });
    parts.push(sf);
    be.cast(m.scales, sf);
    const blocked = m.along === 'rows' ? [r, c / MX_BLOCK, MX_BLOCK] : [r / MX_BLOCK, MX_BLOCK, c];
    const ob = out.reshape(blocked), sv = sf.reshape(m.along === 'rows' ? [r, c / MX_BLOCK, 1] : [r / MX_BLOCK, 1, c]);
    parts.push(ob, sv);
    be.cast(m.q, out);
    be.binary('mul', ob, sv, ob);
    return out;
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    for (const t of parts) t.dispose();
  }
}

function mxDims(what: string, dims: Record<string, number>): void {
  const bad = Object.entries(dims).filter(([, v]) => v % MX_BLOCK !== 0);
  if (bad.length) throw new ShapeMismatchError(`${what}: MXFP8 needs ${bad.map(([k, v]) => `${k} (${v})`).join(', ')} to be a multiple of ${MX_BLOCK}`);
}

const MX_LINEAR = defineOp({
  name: 'mx_linear',
  outputDtype: (inputs) => autocastDtype() ?? sameDtypeOrFloat32(inputs.slice(0, 1)),
  forward: (io, [x, weight, bias]) => {
    floating(x.data, 'mx_linear');
    sameBackend(x.data, weight.data);
    const be = x.backend;
    const inF = x.shape[x.shape.length - 1];
    const outF = weight.shape[0];
    const rows = numel(x.shape.slice(0, -1));
    mxDims('mx_linear', { 'in features': inF, 'out features': outF, 'rows (tokens)': rows });
    const x2 = x.data.reshape([rows, inF]);
    const y = io.output(x.data, [...x.shape.slice(0, -1), outF]);
    const y2 = y.reshape([rows, outF]);
    const keep: Tensor[] = [];
    const tmp: Tensor[] = [x2, y2];
    let xc: MXTensor, wc: MXTensor;
    try {
      // y = x W^T: both in blocks along in-features (rows of x and of W)
      const xr = mxQuantize(be, x2, 'rows', 'temporary', 'input');
      const wr = mxQuantize(be, weight.data, 'rows', 'temporary', 'weight');
      tmp.push(xr.q, xr.scales, wr.q, wr.scales);
      const xd = mxDequantize(be, xr, 'input_mx_f32'), wd = mxDequantize(be, wr, 'weight_mx_f32');
      tmp.push(xd, wd);
      productPlusBias(be, y2, bias?.data ?? null, (into) => be.matmul(xd, wd, into, { transB: true }));
      // for backward: x in blocks along tokens (dW), W in blocks along out-features (dX)
      xc = mxQuantize(be, x2, 'columns', io.category, 'input');
      keep.push(xc.q, xc.scales);
      wc = mxQuantize(be, weight.data, 'columns', io.category, 'weight');
      keep.push(wc.q, wc.scales);
    } catch (e) {
      for (const t of keep) t.dispose();
      throw e;
    } finally {
      for (const t of tmp) t.dispose();
    }
    return {
      y, temps: keep,
      save: (needs) => [needs[1] ? xc.q : null, needs[1] ? xc.scales : null, needs[0] ? wc.q : null, needs[0] ? wc.scales : null],
      slots: ['input_mx', 'input_mx_scales', 'weight_mx', 'weight_mx_scales'],
      backward: (gy, [xq, xs, wq, ws], needs) => {
        const g2 = gy.reshape([rows, outF]);
        const tmpB: Tensor[] = [g2];
        const out: (Tensor | null)[] = [null, null, null];
        try {
          if (needs[0]) { // dX = dY W: dY in blocks along out-features (its rows), W along out-features (its columns)
            const gr = mxQuantize(be, g2, 'rows', 'temporary', 'grad_output');
            tmpB.push(gr.q, gr.scales);
            const gd = mxDequantize(be, gr, 'grad_output_mx_f32'), wd = mxDequantize(be, { q: wq!, scales: ws!, along: 'columns' }, 'weight_mx_f32');
            tmpB.push(gd, wd);
            const gx = out[0] = Tensor.empty(be, x.shape, { dtype: 'float32', category: 'temporary' });
            const gx2 = gx.reshape([rows, inF]);
            tmpB.push(gx2);
            be.matmul(gd, wd, gx2);
          }
          if (needs[1]) { // dW = dY^T X: both in blocks along tokens (their columns)
            const gc = mxQuantize(be, g2, 'columns', 'temporary', 'grad_output');
            tmpB.push(gc.q, gc.scales);
            const gd = mxDequantize(be, gc, 'grad_output_mx_f32'), xd = mxDequantize(be, { q: xq!, scales: xs!, along: 'columns' }, 'input_mx_f32');
            tmpB.push(gd, xd);
            out[1] = Tensor.empty(be, weight.shape, { dtype: 'float32', category: 'temporary' });
            be.matmul(gd, xd, out[1], { transA: true });
          }
          if (bias && needs[2]) out[2] = kSum(g2, 0, 'temporary');
          return out;
        } catch (e) {
          for (const t of out) t?.dispose();
          throw e;
        } finally {
          for (const t of tmpB) t.dispose();
        }
      },
    };
  },
});

/** y = x W^T + b with the three matmuls in fp8 (see the top of this file). */
export function float8Linear(x: Variable, weight: Variable, bias: Variable | null, config: Float8LinearConfig): Variable {
  checkVariables('float8_linear', bias === null ? [x, weight] : [x, weight, bias]);
  const inF = x.shape[x.shape.length - 1];
  if (x.data.rank < 1) throw new ShapeMismatchError('float8_linear: the input must have at least one dimension');
  if (weight.data.rank !== 2 || weight.shape[1] !== inF) throw new ShapeMismatchError(`float8_linear: input [${x.shape.join(', ')}] does not fit weight [${weight.shape.join(', ')}]`);
  if (config.recipe.scaling === 'mx') return apply(MX_LINEAR, bias ? [x, weight, bias] : [x, weight]);
  return apply(FLOAT8_LINEAR, bias ? [x, weight, bias] : [x, weight], config);
}

/**
 * A Linear whose matmuls run in fp8 (torchao's Float8Linear). It shares the parameters of the layer
 * it replaced. Delayed scaling keeps, per role (input, weight, grad_output), the buffers
 * `fp8_amax_history_<role>` [L], `fp8_scale_<role>` [1] and `fp8_scale_inv_<role>` [1] (float32,
 * in the state dict and so in checkpoints).
 */
export class Float8Linear extends Linear {
  readonly recipe: Float8Recipe;
  readonly #config: Float8LinearConfig;

  constructor(source: Linear, recipe: Float8Recipe = { scaling: 'delayed' }) {
    super(source.inFeatures, source.outFeatures, { parameters: { weight: source.weight, bias: source.bias } });
    const r = resolveRecipe(recipe);
    this.recipe = recipe;
    this.training = source.training;
    let state: Record<Float8Role, ScalingState> | null = null;
    if (r.scaling === 'delayed') {
      const be = source.weight.data.backend;
      const made: Tensor[] = [];
      const buf = (name: string, values: Float32Array): Tensor => {
        const t = Tensor.from(be, values, [values.length], { dtype: 'float32', category: 'data', label: name });
        made.push(t);
        return t;
      };
      const s = {} as Record<Float8Role, ScalingState>;
      try {
        for (const role of FLOAT8_ROLES) {
          s[role] = {
            history: buf(`fp8_amax_history_${role}`, new Float32Array(r.amaxHistoryLen)),
            scale: buf(`fp8_scale_${role}`, Float32Array.of(1)),
            scaleInv: buf(`fp8_scale_inv_${role}`, Float32Array.of(1)),
          };
        }
      } catch (e) {
        for (const t of made) t.dispose();
        throw e;
      }
      for (const role of FLOAT8_ROLES) {
        this.registerBuffer(`fp8_amax_history_${role}`, s[role].history);
        this.registerBuffer(`fp8_scale_${role}`, s[role].scale);
        this.registerBuffer(`fp8_scale_inv_${role}`, s[role].scaleInv);
      }
      state = s;
    }
    this.#config = { recipe: r, state };
  }

  override forward(x: Variable): Variable {
    return float8Linear(x, this.weight, this.bias, this.#config);
  }
}

/**
 * Replaces the Linear layers of `model` whose dotted names match `filter` by Float8Linear layers
 * sharing their parameters (torchao's convert_to_float8_training), and returns the model. Already
 * converted layers are left as they are. A filter that matches no Linear is an error that lists
 * the Linear names, and nothing is changed.
 */
export function convertToFloat8Training<M extends Module>(model: M, options: Float8TrainingOptions = {}): M {
  checkOptions(options, ['filter', 'recipe'], 'convertToFloat8Training');
  const filter = options.filter;
  if (filter !== undefined && !(filter instanceof RegExp) && typeof filter !== 'function') {
    throw new InvalidArgumentError(`convertToFloat8Training: filter must be a RegExp or a function (name, module) => boolean, got ${describeValue(filter)}`);
  }
  const recipe = options.recipe ?? { scaling: 'delayed' };
  resolveRecipe(recipe); // a bad recipe fails before anything changes
  const linears = model.namedModules().filter((e): e is [string, Linear] => e[1] instanceof Linear && !(e[1] instanceof Float8Linear));
  const matches = (name: string, m: Linear): boolean => {
    if (filter === undefined) return true;
    if (filter instanceof RegExp) { filter.lastIndex = 0; return filter.test(name); }
    return filter(name, m) === true;
  };
  const chosen = linears.filter(([n, m]) => matches(n, m));
  if (chosen.length === 0) {
    const names = linears.map(([n]) => JSON.stringify(n || '(the model itself)'));
    throw new InvalidArgumentError(`convertToFloat8Training: the filter ${filter instanceof RegExp ? String(filter) : 'function'} matches no Linear layer (${linears.length ? `Linear layers: ${names.join(', ')}` : `${model.constructor.name} has no unconverted Linear layer`})`);
  }
  if (resolveRecipe(recipe).scaling === 'mx') {
    const bad = chosen.filter(([, m]) => m.inFeatures % MX_BLOCK !== 0 || m.outFeatures % MX_BLOCK !== 0);
    if (bad.length) throw new InvalidArgumentError(`convertToFloat8Training: MXFP8 needs in and out features that are multiples of ${MX_BLOCK}; not: ${bad.map(([n, m]) => `${JSON.stringify(n)} [${m.outFeatures}, ${m.inFeatures}]`).join(', ')}`);
  }
  if (chosen.some(([n]) => n === '')) throw new InvalidArgumentError('convertToFloat8Training: the model itself is a Linear; wrap it in a module (or use new Float8Linear(linear))');
  for (const [name, m] of chosen) model.setSubmodule(name, new Float8Linear(m, recipe));
  return model;
}

/** t [R, C] as a contiguous [C, R] tensor (scaledMatmul takes contiguous operands). */
function transposedCopy(t: Tensor): Tensor {
  const view = t.transpose();
  try { return view.contiguous(); } finally { view.dispose(); }
}
