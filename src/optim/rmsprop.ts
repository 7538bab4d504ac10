// RMSprop with PyTorch's update rule (torch.optim.RMSprop): centered variant, momentum, L2 weight
// decay, maximize; composed from elementwise kernels in float32.
import type { Tensor } from '../tensor/tensor.js';
import type { Variable } from '../autograd/variable.js';
import {
  Optimizer, type OptimizerHyper, checkBool, checkNumber, withStepOps,
  type ParamGroup, type ParamState, type ParamsInput, type SkipContext, type StateSpec,
} from './optimizer.js';

/** Hyperparameters of RMSprop (PyTorch's names in camelCase). */
export interface RMSpropHyper extends OptimizerHyper {
  /** Learning rate (default 1e-2). */
  lr: number;
  /** Smoothing constant of the squared-gradient average (default 0.99). */
  alpha: number;
  /** Added to the denominator (default 1e-8). */
  eps: number;
  /** L2 penalty added to the gradient (default 0). */
  weightDecay: number;
  /** Momentum factor (default 0). */
  momentum: number;
  /** Normalize by an estimate of the gradient's variance (default false). */
  centered: boolean;
  /** Maximize the objective instead of minimizing it (default false). */
  maximize: boolean;
}

const DEFAULTS: RMSpropHyper = { lr: 1e-2, alpha: 0.99, eps: 1e-8, weightDecay: 0, momentum: 0, centered: false, maximize: false };

/**
 * RMSprop (torch.optim.RMSprop). Per parameter: g = ±grad + weightDecay * p;
 * s = alpha s + (1 - alpha) g^2; centered: a = alpha a + (1 - alpha) g, avg = sqrt(s - a^2) + eps,
 * else avg = sqrt(s) + eps; momentum > 0: buf = momentum buf + g / avg, p -= lr buf; else p -= lr g / avg.
 * State: step (number), squareAvg, gradAvg (centered), momentumBuffer (momentum > 0).
 */
export class RMSprop extends Optimizer<RMSpropHyper> {
  /** PyTorch's defaults. */
  static readonly DEFAULTS: Readonly<RMSpropHyper> = DEFAULTS;

  constructor(params: ParamsInput<RMSpropHyper>, options: Partial<RMSpropHyper> = {}) {
    super(params, (new.target as typeof RMSprop).DEFAULTS, options); // RMSprop8bit's defaults for RMSprop8bit
  }

  protected override get name(): string { return 'RMSprop'; }

  protected override validateGroup(g: RMSpropHyper): void {
    checkNumber('RMSprop', 'lr', g.lr);
    checkNumber('RMSprop', 'alpha', g.alpha);
    checkNumber('RMSprop', 'eps', g.eps);
    checkNumber('RMSprop', 'weightDecay', g.weightDecay);
    checkNumber('RMSprop', 'momentum', g.momentum);
    checkBool('RMSprop', 'centered', g.centered);
    checkBool('RMSprop', 'maximize', g.maximize);
  }

  protected override stateSpec(g: RMSpropHyper): StateSpec {
    const tensors = ['squareAvg'];
    if (g.momentum > 0) tensors.push('momentumBuffer');
    if (g.centered) tensors.push('gradAvg');
    return { tensors, numbers: ['step'] };
  }

  protected override updateParam(param: Variable, grad: Tensor, g: ParamGroup<RMSpropHyper>, state: ParamState, skip: SkipContext | null): void {
    if (state.step === undefined) {
      state.step = 0;
      state.squareAvg = this.newState(param, 'squareAvg');
    }
    // Buffers for options switched on after the first step start at zero, as they would have.
    if (g.momentum > 0 && !state.momentumBuffer) state.momentumBuffer = this.newState(param, 'momentumBuffer');
    if (g.centered && !state.gradAvg) state.gradAvg = this.newState(param, 'gradAvg');
    const shape = param.shape;
    withStepOps(param.backend, (ops) => ops.withFloat32(param.data, (p0) => {
      const tx = ops.transaction(skip?.foundInf ?? null);
      const d = ops.direction(p0, grad, g.weightDecay, g.maximize);
      const p = tx.stage(p0);
      const sq = tx.stage(state.squareAvg as Tensor);
      const t = ops.temp(shape);
      ops.unary('scale', sq, sq, g.alpha);
      ops.unary('square', d, t);
      ops.unary('scale', t, t, 1 - g.alpha);
      ops.binary('add', sq, t, sq);
      const avg = ops.temp(shape);
      if (g.centered) {
        const ga = tx.stage(state.gradAvg as Tensor);
        ops.unary('scale', ga, ga, g.alpha);
        ops.unary('scale', d, t, 1 - g.alpha);
        ops.binary('add', ga, t, ga);
        ops.unary('square', ga, t);
        ops.binary('sub', sq, t, avg);
        ops.unary('sqrt', avg, avg);
      } else ops.unary('sqrt', sq, avg);
      ops.unary('addScalar', avg, avg, g.eps);
      ops.binary('div', d, avg, t); // t = g / avg
      if (g.momentum > 0) {
        const buf = tx.stage(state.momentumBuffer as Tensor);
        ops.unary('scale', buf, buf, g.momentum);
        ops.binary('add', buf, t, buf);
        ops.unary('scale', buf, t, -g.lr);
      } else ops.unary('scale', t, t, -g.lr);
      ops.binary('add', p, t, p);
      tx.commit();
    }));
    state.step = (state.step as number) + 1;
  }
}
