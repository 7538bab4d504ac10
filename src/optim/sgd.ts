// SGD with momentum, dampening, Nesterov momentum, L2 weight decay and maximize: PyTorch's update
// rule (torch.optim.SGD), composed from elementwise kernels in float32.
import { InvalidArgumentError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Variable } from '../autograd/variable.js';
import {
  Optimizer, checkBool, checkNumber, withStepOps,
  type ParamGroup, type ParamState, type ParamsInput, type StateSpec,
} from './optimizer.js';

/** Hyperparameters of SGD (PyTorch's names in camelCase). */
export interface SGDHyper {
  /** Learning rate (default 1e-3). */
  lr: number;
  /** Momentum factor (default 0: no momentum buffer). */
  momentum: number;
  /** Dampening of the momentum (default 0). */
  dampening: number;
  /** L2 penalty added to the gradient (default 0). */
  weightDecay: number;
  /** Nesterov momentum (default false; needs momentum > 0 and dampening 0). */
  nesterov: boolean;
  /** Maximize the objective instead of minimizing it (default false). */
  maximize: boolean;
}

const DEFAULTS: SGDHyper = { lr: 1e-3, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false };

/**
 * Stochastic gradient descent (torch.optim.SGD). Per parameter, with g the gradient:
 * g = ±g + weightDecay * p; buf = g on the first step, else momentum * buf + (1 - dampening) * g;
 * g = nesterov ? g + momentum * buf : buf (when momentum != 0); p -= lr * g.
 */
export class SGD extends Optimizer<SGDHyper> {
  /** PyTorch's defaults. */
  static readonly DEFAULTS: Readonly<SGDHyper> = DEFAULTS;

  constructor(params: ParamsInput<SGDHyper>, options: Partial<SGDHyper> = {}) {
    super(params, DEFAULTS, options);
  }

  protected override get name(): string { return 'SGD'; }

  protected override validateGroup(g: SGDHyper): void {
    checkNumber('SGD', 'lr', g.lr);
    checkNumber('SGD', 'momentum', g.momentum);
    checkNumber('SGD', 'weightDecay', g.weightDecay);
    if (typeof g.dampening !== 'number' || !Number.isFinite(g.dampening)) throw new InvalidArgumentError(`SGD: invalid dampening ${String(g.dampening)}: expected a finite number`);
    checkBool('SGD', 'nesterov', g.nesterov);
    checkBool('SGD', 'maximize', g.maximize);
    if (g.nesterov && (g.momentum <= 0 || g.dampening !== 0)) throw new InvalidArgumentError('SGD: Nesterov momentum requires a momentum > 0 and zero dampening');
  }

  protected override stateSpec(g: SGDHyper): StateSpec {
    // As PyTorch: no step count; the buffer's absence marks the first step.
    return { tensors: g.momentum !== 0 ? ['momentumBuffer'] : [], numbers: [] };
  }

  protected override updateParam(param: Variable, grad: Tensor, g: ParamGroup<SGDHyper>, state: ParamState): void {
    withStepOps(param.backend, (ops) => ops.withFloat32(param.data, (p) => {
      const shape = param.shape;
      // d: the gradient after maximize and weight decay (the gradient itself when neither applies).
      let d = ops.direction(p, grad, g.weightDecay, g.maximize);
      if (g.momentum !== 0) {
        let buf = state.momentumBuffer as Tensor | undefined;
        if (!buf) {
          buf = this.newState(param, 'momentumBuffer', null); // a copy of d, as PyTorch's clone
          state.momentumBuffer = buf;
          ops.copy(d, buf);
        } else {
          ops.unary('scale', buf, buf, g.momentum);
          if (g.dampening === 0) ops.binary('add', buf, d, buf);
          else {
            const t = ops.temp(shape);
            ops.unary('scale', d, t, 1 - g.dampening);
            ops.binary('add', buf, t, buf);
          }
        }
        if (g.nesterov) {
          const t = ops.temp(shape);
          ops.unary('scale', buf, t, g.momentum);
          ops.binary('add', d, t, t);
          d = t;
        } else d = buf;
      }
      const u = ops.temp(shape);
      ops.unary('scale', d, u, -g.lr);
      ops.binary('add', p, u, p);
    }));
  }
}
