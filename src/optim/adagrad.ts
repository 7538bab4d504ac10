// Adagrad with PyTorch's update rule (torch.optim.Adagrad): learning-rate decay, initial
// accumulator value, L2 weight decay, maximize; composed from elementwise kernels in float32.
import type { Tensor } from '../tensor/tensor.js';
import type { Variable } from '../autograd/variable.js';
import {
  Optimizer, type OptimizerHyper, checkBool, checkNumber, withStepOps,
  type ParamGroup, type ParamState, type ParamsInput, type SkipContext, type StateSpec,
} from './optimizer.js';

/** Hyperparameters of Adagrad (PyTorch's names in camelCase). */
export interface AdagradHyper extends OptimizerHyper {
  /** Learning rate (default 1e-2). */
  lr: number;
  /** Learning-rate decay: step t uses lr / (1 + (t - 1) lrDecay) (default 0). */
  lrDecay: number;
  /** L2 penalty added to the gradient (default 0). */
  weightDecay: number;
  /** Starting value of the sum of squared gradients (default 0). */
  initialAccumulatorValue: number;
  /** Added to the denominator (default 1e-10). */
  eps: number;
  /** Maximize the objective instead of minimizing it (default false). */
  maximize: boolean;
}

const DEFAULTS: AdagradHyper = { lr: 1e-2, lrDecay: 0, weightDecay: 0, initialAccumulatorValue: 0, eps: 1e-10, maximize: false };

/**
 * Adagrad (torch.optim.Adagrad). Per parameter at step t: g = ±grad + weightDecay * p;
 * sum += g^2; p -= lr / (1 + (t - 1) lrDecay) * g / (sqrt(sum) + eps).
 * State: step (number), sum (float32, starting at initialAccumulatorValue). Unlike PyTorch, which
 * fills the state in the constructor, it is allocated at a parameter's first step like the others.
 */
export class Adagrad extends Optimizer<AdagradHyper> {
  /** PyTorch's defaults. */
  static readonly DEFAULTS: Readonly<AdagradHyper> = DEFAULTS;

  constructor(params: ParamsInput<AdagradHyper>, options: Partial<AdagradHyper> = {}) {
    super(params, DEFAULTS, options);
  }

  protected override get name(): string { return 'Adagrad'; }

  protected override validateGroup(g: AdagradHyper): void {
    checkNumber('Adagrad', 'lr', g.lr);
    checkNumber('Adagrad', 'lrDecay', g.lrDecay);
    checkNumber('Adagrad', 'weightDecay', g.weightDecay);
    checkNumber('Adagrad', 'initialAccumulatorValue', g.initialAccumulatorValue);
    checkNumber('Adagrad', 'eps', g.eps);
    checkBool('Adagrad', 'maximize', g.maximize);
  }

  protected override stateSpec(): StateSpec {
    return { tensors: ['sum'], numbers: ['step'] };
  }

  protected override updateParam(param: Variable, grad: Tensor, g: ParamGroup<AdagradHyper>, state: ParamState, skip: SkipContext | null): void {
    if (state.step === undefined) {
      state.step = 0;
      state.sum = this.newState(param, 'sum', g.initialAccumulatorValue);
    }
    const step = (state.step as number) + 1;
    const shape = param.shape;
    withStepOps(param.backend, (ops) => ops.withFloat32(param.data, (p0) => {
      const negClr = g.lrDecay === 0 ? -g.lr : ops.stepScalar(skip, step, (t) => -(g.lr / (1 + (t - 1) * g.lrDecay)));
      const tx = ops.transaction(skip?.foundInf ?? null);
      const d = ops.direction(p0, grad, g.weightDecay, g.maximize);
      const p = tx.stage(p0);
      const sum = tx.stage(state.sum as Tensor);
      const t = ops.temp(shape);
      ops.unary('square', d, t);
      ops.binary('add', sum, t, sum);
      ops.unary('sqrt', sum, t);
      ops.unary('addScalar', t, t, g.eps);
      ops.binary('div', d, t, t);
      ops.scaleBy(t, t, negClr);
      ops.binary('add', p, t, p);
      tx.commit();
    }));
    state.step = step;
  }
}
