// Differentiable vision ops (torch.nn.functional's conv2d, batch_norm, max_pool2d,
// adaptive_avg_pool2d) on NCHW tensors. Each op is one backend kernel (src/backend/*/vision.ts)
// with its saved tensors and backward beside it, named as PyTorch names it (camelCase), and calls
// applyOpPolicy first. Outputs and gradients are float32.
import { InvalidArgumentError, ShapeMismatchError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import type { Conv2dGeometry, Pool2dGeometry } from '../backend/backend.js';
import type { Category } from '../backend/memory.js';
import { numel } from '../backend/shape.js';
import { applyOpPolicy, isGradEnabled, record, type Variable } from '../autograd/variable.js';
import { floating, kSum, kUnary, outCategory, sameBackend, zeros } from '../autograd/kernels.js';

const dims = (s: readonly number[]): string => `[${s.join(', ')}]`;

/** A size given as one number (both dimensions) or [height, width]. */
export type Size2d = number | readonly [number, number];

export function pair(name: string, v: Size2d, min: number): [number, number] {
  const p: [number, number] = typeof v === 'number' ? [v, v] : [v[0], v[1]];
  if (!(Array.isArray(v) ? v.length === 2 : true) || !p.every((x) => Number.isInteger(x) && x >= min)) {
    throw new InvalidArgumentError(`${name} must be an integer >= ${min} or a pair of them, got ${JSON.stringify(v)}`);
  }
  return p;
}

function check4d(op: string, x: Variable): void {
  floating(x.data, op);
  if (x.data.rank !== 4) throw new ShapeMismatchError(`${op}: input must be [N, C, H, W], got ${dims(x.shape)}`);
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

/**
 * 2-D convolution (cross-correlation, as PyTorch): x [N, C, H, W], weight [O, C / groups, kh, kw],
 * bias [O] or null -> [N, O, OH, OW]. Saves x (for the weight gradient) and weight (for the input
 * gradient), each only when the other's gradient is needed.
 */
export function conv2d(x: Variable, weight: Variable, bias: Variable | null = null, options: Conv2dOptions = {}): Variable {
  const ins = applyOpPolicy('conv2d', (bias ? [x, weight, bias] : [x, weight]) as readonly Variable[]);
  [x, weight] = [ins[0], ins[1]];
  bias = bias ? ins[2] : null;
  check4d('conv2d', x);
  floating(weight.data, 'conv2d');
  sameBackend(x.data, weight.data);
  const { geom, outShape } = conv2dGeometry(x.shape, weight.shape, options);
  const o = outShape[1];
  if (bias && (bias.data.rank !== 1 || bias.shape[0] !== o)) throw new ShapeMismatchError(`conv2d: bias ${dims(bias.shape)} does not fit ${o} output channels`);
  const be = x.backend;
  const y = Tensor.empty(be, outShape, { category: outCategory() });
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
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record('conv2d', y, inputs, (needs) => [needs[1] ? x.data : null, needs[0] ? weight.data : null], (gy, [sx, sw], needs) => {
    let dx: Tensor | null = null, dw: Tensor | null = null, db: Tensor | null = null;
    if (needs[0]) {
      dx = Tensor.empty(be, xShape, { category: 'temporary' });
      be.conv2dBackwardInput(gy, sw!, dx, geom);
    }
    if (needs[1]) {
      dw = zeros(be, wShape, 'temporary');
      be.conv2dBackwardWeight(gy, sx!, dw, geom);
    }
    if (needs[2]) {
      const flat = gy.reshape([outShape[0], o, outShape[2] * outShape[3]]);
      const s = kSum(flat, 2, 'temporary');
      flat.dispose();
      db = kSum(s, 0, 'temporary');
      s.dispose();
    }
    return bias ? [dx, dw, db] : [dx, dw];
  });
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
  const ins = applyOpPolicy('batchNorm', [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])] as readonly Variable[]);
  x = ins[0];
  if (weight) weight = ins[1];
  if (bias) bias = ins[weight ? 2 : 1];
  floating(x.data, 'batchNorm');
  if (x.data.rank < 2) throw new ShapeMismatchError(`batchNorm: input must be [N, C, ...], got ${dims(x.shape)}`);
  const c = x.shape[1];
  const perChannel = numel(x.shape) / Math.max(c, 1);
  for (const [name, t] of [['weight', weight?.data], ['bias', bias?.data], ['runningMean', runningMean], ['runningVar', runningVar]] as const) {
    if (t && (t.rank !== 1 || t.shape[0] !== c)) throw new ShapeMismatchError(`batchNorm: ${name} ${dims(t.shape)} does not fit ${c} channels of input ${dims(x.shape)}`);
    if (t) sameBackend(x.data, t);
  }
  const eps = options.eps ?? 1e-5, momentum = options.momentum ?? 0.1;
  if (!(eps >= 0)) throw new InvalidArgumentError(`batchNorm: eps must be >= 0, got ${eps}`);
  const be = x.backend;
  const training = options.training;
  if (!training && (!runningMean || !runningVar)) throw new InvalidArgumentError('batchNorm: eval mode (training false) needs runningMean and runningVar');
  if (training && perChannel <= 1) throw new InvalidArgumentError(`batchNorm: expected more than 1 value per channel when training, got input ${dims(x.shape)}`);
  const cat = outCategory();
  const made: Tensor[] = [];
  const mk = (t: Tensor): Tensor => { made.push(t); return t; };
  try {
    let mean: Tensor, rstd: Tensor;
    if (training) {
      mean = mk(Tensor.empty(be, [c], { category: cat, label: 'batchNorm mean' }));
      const variance = mk(Tensor.empty(be, [c], { category: 'temporary', label: 'batchNorm var' }));
      be.batchNormStats(x.data, mean, variance);
      rstd = mk(rsqrtPlus(variance, eps, cat));
      if (runningMean && runningVar) updateRunning(runningMean, runningVar, mean, variance, momentum, perChannel);
    } else {
      mean = mk(runningMean!.reshape([c]));
      rstd = mk(rsqrtPlus(runningVar!, eps, cat));
    }
    const w = weight?.data ?? mk(filled(be, c, 1)), b = bias?.data ?? mk(filled(be, c, 0));
    const y = Tensor.empty(be, x.shape, { category: cat });
    try {
      be.batchNorm(x.data, mean, rstd, w, b, y);
    } catch (e) {
      y.dispose();
      throw e;
    }
    const xShape = x.shape;
    const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
    return record('batchNorm', y, inputs, () => [x.data, w, mean, rstd], (gy, [sx, sw, sm, sr], needs) => {
      const dx = Tensor.empty(be, xShape, { category: 'temporary' });
      const dw = zeros(be, [c], 'temporary'), db = zeros(be, [c], 'temporary');
      be.batchNormBackward(gy, sx!, sm!, sr!, sw!, dx, dw, db, training);
      const grads: (Tensor | null)[] = [needs[0] ? dx : (dx.dispose(), null)];
      if (weight) grads.push(needs[1] ? dw : (dw.dispose(), null)); else dw.dispose();
      if (bias) grads.push(needs[grads.length] ? db : (db.dispose(), null)); else db.dispose();
      return grads;
    });
  } finally {
    for (const t of made) t.dispose(); // record keeps its own references to what it saves
  }
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
  return Tensor.from(be, new Float32Array(c).fill(value), [c], { category: 'temporary' });
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

/**
 * Max pooling, x [N, C, H, W] -> [N, C, OH, OW] (torch.nn.functional.max_pool2d). Saves int32
 * indices of the maxima (PyTorch keeps int64) for backward.
 */
export function maxPool2d(x: Variable, kernelSize: Size2d, options: MaxPool2dOptions = {}): Variable {
  [x] = applyOpPolicy('maxPool2d', [x] as const);
  check4d('maxPool2d', x);
  const { geom, outShape } = maxPool2dGeometry(x.shape, kernelSize, options);
  const be = x.backend;
  const y = Tensor.empty(be, outShape, { category: outCategory() });
  const wantGrad = x.requiresGrad && isGradEnabled();
  const idx = Tensor.empty(be, outShape, { dtype: 'int32', category: wantGrad ? outCategory() : 'temporary', label: 'maxPool2d indices' });
  try {
    be.maxPool2d(x.data, y, idx, geom);
  } catch (e) {
    y.dispose();
    idx.dispose();
    throw e;
  }
  const xShape = x.shape;
  return record('maxPool2d', y, [x], () => [idx], (gy, [si]) => {
    const dx = Tensor.empty(be, xShape, { category: 'temporary' });
    be.maxPool2dBackward(gy, si!, dx, geom);
    return [dx];
  }, [idx]);
}

/**
 * Adaptive average pooling to `outputSize` (torch.nn.functional.adaptive_avg_pool2d): output cell
 * (i, j) averages rows [floor(i H / OH), ceil((i + 1) H / OH)) and the same for columns.
 */
export function adaptiveAvgPool2d(x: Variable, outputSize: Size2d): Variable {
  [x] = applyOpPolicy('adaptiveAvgPool2d', [x] as const);
  check4d('adaptiveAvgPool2d', x);
  const [oh, ow] = pair('adaptiveAvgPool2d outputSize', outputSize, 1);
  const [n, c, h, w] = x.shape;
  if (h < 1 || w < 1) throw new ShapeMismatchError(`adaptiveAvgPool2d: input ${dims(x.shape)} has an empty plane`);
  const be = x.backend;
  const y = Tensor.empty(be, [n, c, oh, ow], { category: outCategory() });
  be.adaptiveAvgPool2d(x.data, y);
  const xShape = x.shape;
  return record('adaptiveAvgPool2d', y, [x], () => [], (gy) => {
    const dx = Tensor.empty(be, xShape, { category: 'temporary' });
    be.adaptiveAvgPool2dBackward(gy, dx);
    return [dx];
  });
}
