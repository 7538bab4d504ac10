// Vision layers: Conv2d, BatchNorm2d, MaxPool2d, AdaptiveAvgPool2d, Flatten (torch.nn's, with
// PyTorch's default initialisation and state-dict names). BatchNorm2d's buffers keep PyTorch's
// names (`running_mean`, `running_var`, `num_batches_tracked`) so that torchvision state dicts
// load as they are; the camelCase getters runningMean, runningVar and numBatchesTracked read them.
import type { Variable } from '../autograd/variable.js';
import { reshape } from '../autograd/ops.js';
import { InvalidArgumentError } from '../errors.js';
import { defaultGenerator } from '../random.js';
import { Tensor } from '../tensor/tensor.js';
import { constantParameter, normal, uniform } from './init.js';
import { defaultBackend, positiveInt, type LayerOptions } from './layers.js';
import { Module } from './module.js';
import type { Parameter } from './parameter.js';
import { adaptiveAvgPool2d, batchNorm, conv2d, maxPool2d, pair, type Conv2dOptions, type MaxPool2dOptions, type Size2d } from './vision.js';

/** torch.nn.Conv2d: weight [O, C / groups, kh, kw], bias [O]; both U(-1/sqrt(fanIn), 1/sqrt(fanIn)), fanIn = C / groups * kh * kw. */
export class Conv2d extends Module {
  weight: Parameter;
  bias: Parameter | null;
  readonly kernelSize: [number, number];
  readonly options: Required<Conv2dOptions>;

  constructor(
    readonly inChannels: number, readonly outChannels: number, kernelSize: Size2d,
    options: Conv2dOptions & LayerOptions & { bias?: boolean; initStd?: number } = {},
  ) {
    super();
    positiveInt('inChannels', inChannels);
    positiveInt('outChannels', outChannels);
    this.kernelSize = pair('Conv2d kernelSize', kernelSize, 1);
    const groups = options.groups ?? 1;
    if (!Number.isInteger(groups) || groups < 1 || inChannels % groups !== 0 || outChannels % groups !== 0) {
      throw new InvalidArgumentError(`Conv2d: groups ${groups} must divide inChannels ${inChannels} and outChannels ${outChannels}`);
    }
    this.options = { stride: options.stride ?? 1, padding: options.padding ?? 0, dilation: options.dilation ?? 1, groups };
    const be = options.backend ?? defaultBackend(), g = options.generator ?? defaultGenerator;
    const [kh, kw] = this.kernelSize;
    const bound = 1 / Math.sqrt((inChannels / groups) * kh * kw);
    const shape = [outChannels, inChannels / groups, kh, kw];
    // initStd: N(0, initStd^2) instead (torchvision's kaiming_normal_ for ResNets)
    this.weight = options.initStd !== undefined ? normal(be, shape, options.initStd, g, 'conv2d.weight') : uniform(be, shape, -bound, bound, g, 'conv2d.weight');
    this.bias = options.bias === false ? null : uniform(be, [outChannels], -bound, bound, g, 'conv2d.bias');
  }

  forward(x: Variable): Variable {
    return conv2d(x, this.weight, this.bias, this.options);
  }
}

export interface BatchNormLayerOptions {
  /** Default 1e-5. */
  eps?: number;
  /** Default 0.1 (PyTorch's momentum = None, a cumulative average, is refused: not supported yet). */
  momentum?: number | null;
  /** Learnable weight (ones) and bias (zeros); default true. */
  affine?: boolean;
  /** Keep running statistics (buffers) and use them in eval mode; default true. */
  trackRunningStats?: boolean;
  backend?: LayerOptions['backend'];
}

/**
 * torch.nn.BatchNorm2d over x [N, C, H, W]. Training mode normalises with the batch's statistics
 * and updates the running ones (momentum, unbiased variance) and num_batches_tracked; eval mode
 * uses the running statistics. num_batches_tracked is int32 here (int64 in PyTorch; files from
 * PyTorch load, and files written here load in PyTorch).
 */
export class BatchNorm2d extends Module {
  weight: Parameter | null;
  bias: Parameter | null;
  readonly eps: number;
  readonly momentum: number;
  readonly trackRunningStats: boolean;

  constructor(readonly numFeatures: number, options: BatchNormLayerOptions = {}) {
    super();
    positiveInt('numFeatures', numFeatures);
    this.eps = options.eps ?? 1e-5;
    if (options.momentum === null) throw new InvalidArgumentError('BatchNorm2d: momentum null (a cumulative moving average) is not supported yet; pass a number');
    this.momentum = options.momentum ?? 0.1;
    if (!(this.momentum >= 0 && this.momentum <= 1)) throw new InvalidArgumentError(`BatchNorm2d: momentum must be in [0, 1], got ${this.momentum}`);
    this.trackRunningStats = options.trackRunningStats ?? true;
    const be = options.backend ?? defaultBackend();
    const affine = options.affine ?? true;
    this.weight = affine ? constantParameter(be, [numFeatures], 1, 'batchnorm.weight') : null;
    this.bias = affine ? constantParameter(be, [numFeatures], 0, 'batchnorm.bias') : null;
    if (this.trackRunningStats) {
      this.registerBuffer('running_mean', Tensor.from(be, new Float32Array(numFeatures), [numFeatures], { category: 'data', label: 'running_mean' }));
      this.registerBuffer('running_var', Tensor.from(be, new Float32Array(numFeatures).fill(1), [numFeatures], { category: 'data', label: 'running_var' }));
      this.registerBuffer('num_batches_tracked', Tensor.from(be, [0], [], { dtype: 'int32', category: 'data', label: 'num_batches_tracked' }));
    }
  }

  get runningMean(): Tensor | null { return this.trackRunningStats ? this.getBuffer('running_mean') : null; }
  get runningVar(): Tensor | null { return this.trackRunningStats ? this.getBuffer('running_var') : null; }
  get numBatchesTracked(): Tensor | null { return this.trackRunningStats ? this.getBuffer('num_batches_tracked') : null; }

  forward(x: Variable): Variable {
    if (x.data.rank !== 4) throw new InvalidArgumentError(`BatchNorm2d expects [N, C, H, W], got [${x.shape.join(', ')}]`);
    const useBatch = this.training || !this.trackRunningStats;
    const updating = this.training && this.trackRunningStats;
    const y = batchNorm(x, useBatch && !updating ? null : this.runningMean, useBatch && !updating ? null : this.runningVar, this.weight, this.bias, {
      training: useBatch, momentum: this.momentum, eps: this.eps,
    });
    if (updating) {
      const n = this.getBuffer('num_batches_tracked');
      const one = Tensor.from(n.backend, [1], [], { dtype: 'float32', category: 'temporary' });
      try { n.backend.binary('add', n, one, n); } finally { one.dispose(); }
    }
    return y;
  }
}

/** torch.nn.MaxPool2d. */
export class MaxPool2d extends Module {
  constructor(readonly kernelSize: Size2d, readonly options: MaxPool2dOptions = {}) {
    super();
    pair('MaxPool2d kernelSize', kernelSize, 1);
  }

  forward(x: Variable): Variable {
    return maxPool2d(x, this.kernelSize, this.options);
  }
}

/** torch.nn.AdaptiveAvgPool2d. */
export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: Size2d) {
    super();
    pair('AdaptiveAvgPool2d outputSize', outputSize, 1);
  }

  forward(x: Variable): Variable {
    return adaptiveAvgPool2d(x, this.outputSize);
  }
}

/** torch.nn.Flatten: dimensions startDim..endDim (default 1..-1) merged into one (a view). */
export class Flatten extends Module {
  constructor(readonly startDim = 1, readonly endDim = -1) {
    super();
  }

  forward(x: Variable): Variable {
    const r = x.shape.length;
    const s = this.startDim < 0 ? this.startDim + r : this.startDim, e = this.endDim < 0 ? this.endDim + r : this.endDim;
    if (!(s >= 0 && e < r && s <= e)) throw new InvalidArgumentError(`Flatten(${this.startDim}, ${this.endDim}) does not fit a tensor of rank ${r}`);
    return reshape(x, [...x.shape.slice(0, s), x.shape.slice(s, e + 1).reduce((a, b) => a * b, 1), ...x.shape.slice(e + 1)]);
  }
}
