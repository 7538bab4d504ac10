// SGD with momentum, dampening, Nesterov momentum, L2 weight decay and maximize: PyTorch's update
// rule (torch.optim.SGD), composed from elementwise kernels in float32.
import { InvalidArgumentError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Variable } from '../autograd/variable.js';
import {
  Optimizer, type OptimizerHyper, checkBool, checkNumber, withStepOps,
  type ParamGroup, type ParamState, type ParamsInput, type SkipContext, type StateSpec,
} from './optimizer.js';

/** Hyperparameters of SGD (PyTorch's names in camelCase). */
export interface SGDHyper extends OptimizerHyper {
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
    super(params, (new.target as typeof SGD).DEFAULTS, options); // SGD8bit's defaults for SGD8bit
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

  protected override stepsTaken(state: ParamState): number {
    return state.momentumBuffer ? 1 : 0; // SGD counts no steps; only 'has it stepped' matters (the buffer's first value)
  }

  protected override updateParam(param: Variable, grad: Tensor, g: ParamGroup<SGDHyper>, state: ParamState, skip: SkipContext | null): void {
    withStepOps(param.backend, (ops) => ops.withFloat32(param.data, (p0) => {
      const shape = param.shape;
      const tx = ops.transaction(skip?.foundInf ?? null);
      // d: the gradient after maximize and weight decay (the gradient itself when neither applies).
      let d = ops.direction(p0, grad, g.weightDecay, g.maximize);
      const p = tx.stage(p0);
      if (g.momentum !== 0) {
        let buf = state.momentumBuffer as Tensor | undefined;
        if (!buf && !skip) {
          buf = this.newState(param, 'momentumBuffer', null); // a copy of d, as PyTorch's clone
          state.momentumBuffer = buf;
          ops.copy(d, buf);
        } else {
          // Under a flag the host does not know whether this is the buffer's first step: the
          // device does (its step count is 0), and chooses between d and the running update.
          if (!buf) state.momentumBuffer = buf = this.newState(param, 'momentumBuffer', 0);
          const b = tx.stage(buf);
          ops.unary('scale', b, b, g.momentum);
          if (g.dampening === 0) ops.binary('add', b, d, b);
          else {
            const t = ops.temp(shape);
            ops.unary('scale', d, t, 1 - g.dampening);
            ops.binary('add', b, t, b);
          }
          if (skip) ops.backend.where(skip.step, b, d, b);
          buf = b;
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
      tx.commit();
    }));
  }
}
