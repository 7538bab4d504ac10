// Differentiable vision ops (torch.nn.functional's conv2d, batch_norm, max_pool2d,
// adaptive_avg_pool2d) on NCHW tensors: each one op record (defineOp, PyTorch's name) of one
// backend kernel (src/backend/*/vision.ts) with its saved tensors and backward beside it, run by
// apply (policy, allocation, recording). Outputs are in the dtype apply chooses (float32 unless a
// policy says otherwise); gradients are float32.
import { InvalidArgumentError, ShapeMismatchError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import type { Conv2dGeometry, Pool2dGeometry, TensorDType } from '../backend/backend.js';
import type { Category } from '../backend/memory.js';
import { numel } from '../backend/shape.js';
import type { Variable } from '../autograd/variable.js';
import { apply, defineOp } from '../autograd/op.js';
import { floating, kSum, kUnary, sameBackend, zeros } from '../autograd/kernels.js';

const dims = (s: readonly number[]): string => `[${s.join(', ')}]`;

/** Pooling and batch norm keep their input's float dtype (bfloat16 in, bfloat16 out, as PyTorch; autocast leaves them alone). */
const inputDtype = (inputs: readonly Variable[]): TensorDType => (inputs[0].data.dtype === 'int32' ? 'float32' : inputs[0].data.dtype);

/** A size given as one number (both dimensions) or [height, width]. */
export type Size2d = number | readonly [number, number];

export function pair(name: string, v: Size2d, min: number): [number, number] {
  const p: [number, number] = typeof v === 'number' ? [v, v] : [v[0], v[1]];
  if (!(Array.isArray(v) ? v.length === 2 : true) || !p.every((x) => Number.isInteger(x) && x >= min)) {
    throw new InvalidArgumentError(`${name} must be an integer >= ${min} or a pair of them, got ${JSON.stringify(v)}`);
  }
  return p;
}

// ---- conv2d -------------------------------------------------------------------------------------

export interface Conv2dOptions {
  /** Default 1. */
  stride?: Size2d;
  /** Zero padding on each side, default 0. */
  padding?: Size2d;
  /** Default 1. */
  dilation?: Size2d;
  /** Default 1: C and O must be multiples of it. */
  groups?: number;
}

/** The geometry and output size of a convolution, checked (PyTorch's messages, in memfit's words). */
export function conv2dGeometry(xShape: readonly number[], wShape: readonly number[], options: Conv2dOptions = {}): { geom: Conv2dGeometry; outShape: number[] } {
  const stride = pair('conv2d stride', options.stride ?? 1, 1);
  const padding = pair('conv2d padding', options.padding ?? 0, 0);
  const dilation = pair('conv2d dilation', options.dilation ?? 1, 1);
  const groups = options.groups ?? 1;
  if (!Number.isInteger(groups) || groups < 1) throw new InvalidArgumentError(`conv2d groups must be a positive integer, got ${groups}`);
  if (wShape.length !== 4) throw new ShapeMismatchError(`conv2d: weight must be [O, C / groups, kh, kw], got ${dims(wShape)}`);
  const [n, c, h, w] = xShape, [o, cg, kh, kw] = wShape;
  if (c !== cg * groups) throw new ShapeMismatchError(`conv2d: input ${dims(xShape)} has ${c} channels, weight ${dims(wShape)} expects ${cg} x ${groups} groups = ${cg * groups}`);
  if (o % groups !== 0) throw new ShapeMismatchError(`conv2d: ${o} output channels are not a multiple of groups ${groups}`);
  const oh = Math.floor((h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) / stride[0]) + 1;
  const ow = Math.floor((w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) / stride[1]) + 1;
  if (oh < 1 || ow < 1) throw new ShapeMismatchError(`conv2d: input ${dims(xShape)} (padded) is smaller than the kernel ${kh}x${kw} (dilation ${dilation.join('x')}): output would be ${oh}x${ow}`);
  return { geom: { stride, padding, dilation, groups }, outShape: [n, o, oh, ow] };
}

const CONV2D = defineOp({
  name: 'conv2d',
  forward: (io, [x, weight, bias], geom: Conv2dGeometry, outShape: number[]) => {
    floating(x.data, 'conv2d');
    floating(weight.data, 'conv2d');
    sameBackend(x.data, weight.data);
    const be = x.backend;
    const o = outShape[1];
    const y = io.output(x.data, outShape);
    try {
      be.conv2d(x.data, weight.data, y, geom);
      if (bias) {
        const b = bias.data.reshape([o, 1, 1]);
        try { be.binary('add', y, b, y); } finally { b.dispose(); }
      }
    } catch (e) {
      y.dispose();
      throw e;
    }
    const xShape = x.shape, wShape = weight.shape;
    return {
      y, save: (needs) => [needs[1] ? x.data : null, needs[0] ? weight.data : null], slots: ['input0', 'input1'],
      backward: (gy, [sx, sw], needs) => {
        let dx: Tensor | null = null, dw: Tensor | null = null, db: Tensor | null = null;
        if (needs[0]) {
          dx = Tensor.empty(be, xShape, { dtype: 'float32', category: 'temporary' });
          be.conv2dBackwardInput(gy, sw!, dx, geom);
        }
        if (needs[1]) {
          dw = zeros(be, wShape, 'temporary');
          be.conv2dBackwardWeight(gy, sx!, dw, geom);
        }
        if (bias && needs[2]) {
          const flat = gy.reshape([outShape[0], o, outShape[2] * outShape[3]]);
          const s = kSum(flat, 2, 'temporary');
          flat.dispose();
          db = kSum(s, 0, 'temporary');
          s.dispose();
        }
        return bias ? [dx, dw, db] : [dx, dw];
      },
    };
  },
});

/**
 * 2-D convolution (cross-correlation, as PyTorch): x [N, C, H, W], weight [O, C / groups, kh, kw],
 * bias [O] or null -> [N, O, OH, OW]. Saves x (for the weight gradient) and weight (for the input
 * gradient), each only when the other's gradient is needed. PyTorch's name: conv2d.
 */
export function conv2d(x: Variable, weight: Variable, bias: Variable | null = null, options: Conv2dOptions = {}): Variable {
  if (x.data.rank !== 4) throw new ShapeMismatchError(`conv2d: input must be [N, C, H, W], got ${dims(x.shape)}`);
  const { geom, outShape } = conv2dGeometry(x.shape, weight.shape, options);
  if (bias && (bias.data.rank !== 1 || bias.shape[0] !== outShape[1])) throw new ShapeMismatchError(`conv2d: bias ${dims(bias.shape)} does not fit ${outShape[1]} output channels`);
  return apply(CONV2D, bias ? [x, weight, bias] : [x, weight], geom, outShape);
}

// ---- batch norm ---------------------------------------------------------------------------------

export interface BatchNormOptions {
  /** Batch statistics (and running-statistics updates) when true; running statistics when false. */
  training: boolean;
  /** Weight of the new batch's statistics in the running ones (PyTorch's default 0.1). */
  momentum?: number;
  /** Default 1e-5. */
  eps?: number;
}

interface BatchNormArgs {
  runningMean: Tensor | null;
  runningVar: Tensor | null;
  hasWeight: boolean;
  hasBias: boolean;
  training: boolean;
  momentum: number;
  eps: number;
}

const BATCH_NORM = defineOp({
  name: 'batch_norm',
  outputDtype: inputDtype,
  forward: (io, inputs, a: BatchNormArgs) => {
    const x = inputs[0];
    const weight = a.hasWeight ? inputs[1] : null, bias = a.hasBias ? inputs[a.hasWeight ? 2 : 1] : null;
    floating(x.data, 'batch_norm');
    const c = x.shape[1];
    const perChannel = numel(x.shape) / Math.max(c, 1);
    for (const [name, t] of [['weight', weight?.data], ['bias', bias?.data], ['runningMean', a.runningMean], ['runningVar', a.runningVar]] as const) {
      if (t && (t.rank !== 1 || t.shape[0] !== c)) throw new ShapeMismatchError(`batchNorm: ${name} ${dims(t.shape)} does not fit ${c} channels of input ${dims(x.shape)}`);
      if (t) sameBackend(x.data, t);
    }
    const be = x.backend;
    if (a.training && perChannel <= 1) throw new InvalidArgumentError(`batchNorm: expected more than 1 value per channel when training, got input ${dims(x.shape)}`);
    const made: Tensor[] = [];
    const mk = (t: Tensor): Tensor => { made.push(t); return t; };
    let mean: Tensor, rstd: Tensor;
    if (a.training) {
      mean = mk(io.stat(x.data, [c], 'mean'));
      const variance = mk(Tensor.empty(be, [c], { dtype: 'float32', category: 'temporary', label: 'batch_norm var' }));
      be.batchNormStats(x.data, mean, variance);
      rstd = mk(rsqrtPlus(variance, a.eps, io.category));
      if (a.runningMean && a.runningVar) updateRunning(a.runningMean, a.runningVar, mean, variance, a.momentum, perChannel);
    } else {
      mean = mk(a.runningMean!.reshape([c]));
      rstd = mk(rsqrtPlus(a.runningVar!, a.eps, io.category));
    }
    const w = weight?.data ?? mk(filled(be, c, 1)), b = bias?.data ?? mk(filled(be, c, 0));
    const y = io.output(x.data, x.shape);
    try {
      be.batchNorm(x.data, mean, rstd, w, b, y);
    } catch (e) {
      y.dispose();
      for (const t of made) t.dispose();
      throw e;
    }
    const xShape = x.shape, training = a.training;
    return {
      y, temps: made, save: () => [x.data, w, mean, rstd], slots: ['input0', 'weight', 'mean', 'rstd'],
      backward: (gy, [sx, sw, sm, sr], needs) => {
        const dx = Tensor.empty(be, xShape, { dtype: 'float32', category: 'temporary' });
        const dw = zeros(be, [c], 'temporary'), db = zeros(be, [c], 'temporary');
        be.batchNormBackward(gy, sx!, sm!, sr!, sw!, dx, dw, db, training);
        const grads: (Tensor | null)[] = [needs[0] ? dx : (dx.dispose(), null)];
        if (weight) grads.push(needs[1] ? dw : (dw.dispose(), null)); else dw.dispose();
        if (bias) grads.push(needs[grads.length] ? db : (db.dispose(), null)); else db.dispose();
        return grads;
      },
    };
  },
});

/**
 * Batch normalisation over x [N, C, ...] per channel (torch.nn.functional.batch_norm). training:
 * normalises with the batch's mean and biased variance and, when running statistics are given,
 * updates them in place: running = (1 - momentum) running + momentum batch, with the unbiased
 * variance for runningVar (as PyTorch). Not training: normalises with runningMean/runningVar.
 * weight and bias may be null (no affine transform).
 */
export function batchNorm(
  x: Variable, runningMean: Tensor | null, runningVar: Tensor | null, weight: Variable | null, bias: Variable | null, options: BatchNormOptions,
): Variable {
  if (x.data.rank < 2) throw new ShapeMismatchError(`batchNorm: input must be [N, C, ...], got ${dims(x.shape)}`);
  const eps = options.eps ?? 1e-5, momentum = options.momentum ?? 0.1;
  if (!(eps >= 0)) throw new InvalidArgumentError(`batchNorm: eps must be >= 0, got ${eps}`);
  if (!options.training && (!runningMean || !runningVar)) throw new InvalidArgumentError('batchNorm: eval mode (training false) needs runningMean and runningVar');
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  return apply(BATCH_NORM, inputs, { runningMean, runningVar, hasWeight: weight !== null, hasBias: bias !== null, training: options.training, momentum, eps });
}

/** 1 / sqrt(v + eps) as a new [C] float32 tensor. */
function rsqrtPlus(v: Tensor, eps: number, category: Category): Tensor {
  const t = kUnary('addScalar', v, 'temporary', eps);
  try {
    return kUnary('rsqrt', t, category);
  } finally {
    t.dispose();
  }
}

function filled(be: Tensor['backend'], c: number, value: number): Tensor {
  return Tensor.from(be, new Float32Array(c).fill(value), [c], { dtype: 'float32', category: 'temporary' });
}

/** running = (1 - m) running + m batch (in place; unbiased variance: var * count / (count - 1)). */
function updateRunning(runningMean: Tensor, runningVar: Tensor, mean: Tensor, variance: Tensor, momentum: number, count: number): void {
  const be = mean.backend;
  const blend = (running: Tensor, batch: Tensor, k: number): void => {
    const a = kUnary('scale', running, 'temporary', 1 - momentum);
    const b = kUnary('scale', batch, 'temporary', momentum * k);
    try {
      be.binary('add', b, a, running);
    } finally {
      a.dispose();
      b.dispose();
    }
  };
  blend(runningMean, mean, 1);
  blend(runningVar, variance, count / (count - 1));
}

// ---- pooling ------------------------------------------------------------------------------------

export interface MaxPool2dOptions {
  /** Default: the kernel size. */
  stride?: Size2d;
  /** Implicit -inf padding on each side, at most half the kernel; default 0. */
  padding?: Size2d;
  /** Default 1. */
  dilation?: Size2d;
  /** Round the output size up (PyTorch's ceil_mode); default false. */
  ceilMode?: boolean;
}

function poolOut(size: number, k: number, s: number, p: number, d: number, ceil: boolean): number {
  const span = size + 2 * p - d * (k - 1) - 1;
  let o = Math.floor((span + (ceil ? s - 1 : 0)) / s) + 1;
  if (ceil && (o - 1) * s >= size + p) o--; // the last window must start inside the input or the left padding
  return o;
}

/** The geometry and output shape of a max pooling, checked. */
export function maxPool2dGeometry(xShape: readonly number[], kernelSize: Size2d, options: MaxPool2dOptions = {}): { geom: Pool2dGeometry; outShape: number[] } {
  const kernel = pair('maxPool2d kernelSize', kernelSize, 1);
  const stride = pair('maxPool2d stride', options.stride ?? kernel, 1);
  const padding = pair('maxPool2d padding', options.padding ?? 0, 0);
  const dilation = pair('maxPool2d dilation', options.dilation ?? 1, 1);
  for (let i = 0; i < 2; i++) {
    if (padding[i] * 2 > kernel[i]) throw new InvalidArgumentError(`maxPool2d: padding ${padding[i]} must be at most half the kernel size ${kernel[i]}`);
  }
  const [n, c, h, w] = xShape;
  const oh = poolOut(h, kernel[0], stride[0], padding[0], dilation[0], options.ceilMode ?? false);
  const ow = poolOut(w, kernel[1], stride[1], padding[1], dilation[1], options.ceilMode ?? false);
  if (oh < 1 || ow < 1) throw new ShapeMismatchError(`maxPool2d: input ${dims(xShape)} is too small for the window (output ${oh}x${ow})`);
  return { geom: { kernel, stride, padding, dilation }, outShape: [n, c, oh, ow] };
}

const MAX_POOL2D = defineOp({
  name: 'max_pool2d',
  outputDtype: inputDtype,
  forward: (io, [x], geom: Pool2dGeometry, outShape: number[]) => {
    floating(x.data, 'max_pool2d');
    const be = x.backend;
    const y = io.output(x.data, outShape);
    const idx = Tensor.empty(be, outShape, { dtype: 'int32', category: io.category, label: 'max_pool2d indices' });
    try {
      be.maxPool2d(x.data, y, idx, geom);
    } catch (e) {
      y.dispose();
      idx.dispose();
      throw e;
    }
    const xShape = x.shape;
    return {
      y, temps: [idx], save: () => [idx], slots: ['indices'],
      backward: (gy, [si]) => {
        const dx = Tensor.empty(be, xShape, { dtype: 'float32', category: 'temporary' });
        be.maxPool2dBackward(gy, si!, dx, geom);
        return [dx];
      },
    };
  },
});

/**
 * Max pooling, x [N, C, H, W] -> [N, C, OH, OW] (torch.nn.functional.max_pool2d). Saves int32
 * indices of the maxima (PyTorch keeps int64) for backward.
 */
export function maxPool2d(x: Variable, kernelSize: Size2d, options: MaxPool2dOptions = {}): Variable {
  if (x.data.rank !== 4) throw new ShapeMismatchError(`maxPool2d: input must be [N, C, H, W], got ${dims(x.shape)}`);
  const { geom, outShape } = maxPool2dGeometry(x.shape, kernelSize, options);
  return apply(MAX_POOL2D, [x], geom, outShape);
}

const ADAPTIVE_AVG_POOL2D = defineOp({
  name: 'adaptive_avg_pool2d',
  outputDtype: inputDtype,
  forward: (io, [x], outShape: number[]) => {
    floating(x.data, 'adaptive_avg_pool2d');
    const be = x.backend;
    const y = io.output(x.data, outShape);
    be.adaptiveAvgPool2d(x.data, y);
    const xShape = x.shape;
    return {
      y,
      backward: (gy) => {
        const dx = Tensor.empty(be, xShape, { dtype: 'float32', category: 'temporary' });
        be.adaptiveAvgPool2dBackward(gy, dx);
        return [dx];
      },
    };
  },
});

/**
 * Adaptive average pooling to `outputSize` (torch.nn.functional.adaptive_avg_pool2d): output cell
 * (i, j) averages rows [floor(i H / OH), ceil((i + 1) H / OH)) and the same for columns.
 */
export function adaptiveAvgPool2d(x: Variable, outputSize: Size2d): Variable {
  if (x.data.rank !== 4) throw new ShapeMismatchError(`adaptiveAvgPool2d: input must be [N, C, H, W], got ${dims(x.shape)}`);
  const [oh, ow] = pair('adaptiveAvgPool2d outputSize', outputSize, 1);
  const [n, c, h, w] = x.shape;
  if (h < 1 || w < 1) throw new ShapeMismatchError(`adaptiveAvgPool2d: input ${dims(x.shape)} has an empty plane`);
  return apply(ADAPTIVE_AVG_POOL2D, [x], [n, c, oh, ow]);
}
