// Adam and AdamW with PyTorch's update rules (torch.optim.Adam, torch.optim.AdamW). Both run the
// backend's fused adamw kernel: AdamW with its decoupled weight decay, Adam with weight decay 0
// after adding the L2 term to (a temporary copy of) the gradient. AMSGrad, which the kernel does
// not do, is composed from elementwise kernels. Under a GradScaler the fused kernel itself skips on
// the found-inf flag; the bias corrections come from the host (several candidates chosen on the
// device while the step count is not back from it, see optimizer.ts).
import { Tensor } from '../tensor/tensor.js';
import type { Variable } from '../autograd/variable.js';
import { adamwScalars } from '../backend/adamw.js';
import {
  Optimizer, type OptimizerHyper, checkBetas, checkBool, checkNumber, withStepOps,
  type ParamGroup, type ParamState, type ParamsInput, type SkipContext, type StateSpec, type StepOps,
} from './optimizer.js';

/** Hyperparameters of Adam and AdamW (PyTorch's names in camelCase). */
export interface AdamHyper extends OptimizerHyper {
  /** Learning rate (default 1e-3). */
  lr: number;
  /** Decay rates of the first and second moment averages (default [0.9, 0.999]). */
  betas: [number, number];
  /** Added to the denominator (default 1e-8). */
  eps: number;
  /** Adam: L2 penalty added to the gradient (default 0). AdamW: decoupled decay, p *= 1 - lr * weightDecay (default 1e-2). */
  weightDecay: number;
  /** The AMSGrad variant: divide by the running maximum of the second moment (default false). */
  amsgrad: boolean;
  /** Maximize the objective instead of minimizing it (default false). */
  maximize: boolean;
}

const ADAM_DEFAULTS: AdamHyper = { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, amsgrad: false, maximize: false };
const ADAMW_DEFAULTS: AdamHyper = { ...ADAM_DEFAULTS, betas: [0.9, 0.999], weightDecay: 1e-2 };

/**
 * Adam (torch.optim.Adam). Per parameter at step t: g = ±grad + weightDecay * p;
 * m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 * p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)  (v: its running max with amsgrad).
 * State: step (number), expAvg, expAvgSq (and maxExpAvgSq), float32 in the 'optimizer' category.
 */
export class Adam extends Optimizer<AdamHyper> {
  /** PyTorch's defaults. */
  static readonly DEFAULTS: Readonly<AdamHyper> = ADAM_DEFAULTS;

  constructor(params: ParamsInput<AdamHyper>, options: Partial<AdamHyper> = {}) {
    super(params, (new.target as typeof Adam).DEFAULTS, options); // AdamW's defaults for AdamW
  }

  protected override get name(): string { return 'Adam'; }

  /** True for AdamW: weight decay multiplies the parameter instead of joining the gradient. */
  protected get decoupled(): boolean { return false; }

  protected override validateGroup(g: AdamHyper): void {
    checkNumber(this.name, 'lr', g.lr);
    checkNumber(this.name, 'eps', g.eps);
    checkBetas(this.name, g.betas);
    checkNumber(this.name, 'weightDecay', g.weightDecay);
    checkBool(this.name, 'amsgrad', g.amsgrad);
    checkBool(this.name, 'maximize', g.maximize);
  }

  protected override stateSpec(g: AdamHyper): StateSpec {
    return { tensors: g.amsgrad ? ['expAvg', 'expAvgSq', 'maxExpAvgSq'] : ['expAvg', 'expAvgSq'], numbers: ['step'] };
  }

  protected override updateParam(param: Variable, grad: Tensor, g: ParamGroup<AdamHyper>, state: ParamState, skip: SkipContext | null): void {
    if (state.step === undefined) {
      state.step = 0;
      state.expAvg = this.newState(param, 'expAvg');
      state.expAvgSq = this.newState(param, 'expAvgSq');
      if (g.amsgrad) state.maxExpAvgSq = this.newState(param, 'maxExpAvgSq');
    }
    // amsgrad switched on after the first steps (PyTorch would fail on the missing key): start its max now.
    if (g.amsgrad && !state.maxExpAvgSq) state.maxExpAvgSq = this.newState(param, 'maxExpAvgSq');
    const step = (state.step as number) + 1;
    const m = state.expAvg as Tensor, v = state.expAvgSq as Tensor;
    withStepOps(param.backend, (ops) => {
      if (g.amsgrad) return this.amsgradStep(ops, param, grad, g, m, v, state.maxExpAvgSq as Tensor, step, skip);
      let gr: Tensor = grad;
      let gradScale = g.maximize ? -1 : 1;
      if (!this.decoupled && g.weightDecay !== 0) {
        // L2: the kernel sees -grad + wd * p (maximize) or grad + wd * p, in a float32 temporary
        // (maximize alone needs none: the kernel's gradScale -1 does it).
        gr = ops.direction(param.data, grad, g.weightDecay, g.maximize);
        gradScale = 1;
      }
      const hyper = {
        lr: g.lr, beta1: g.betas[0], beta2: g.betas[1], eps: g.eps,
        weightDecay: this.decoupled ? g.weightDecay : 0, step, gradScale,
      };
      if (!skip) return param.backend.adamw(param.data, gr, m, v, hyper);
      // The kernel's own scalars for the step the host knows, or the device's choice among candidates.
      const sc = ops.stepScalars(skip, step, (t) => {
        const s = adamwScalars({ ...hyper, step: t });
        return [s.stepSize, s.bc2Sqrt];
      });
      param.backend.adamw(param.data, gr, m, v, hyper, { foundInf: skip.foundInf, scalars: sc instanceof Tensor ? sc : undefined });
    });
    state.step = step;
  }

  private amsgradStep(ops: StepOps, param: Variable, grad: Tensor, g: AdamHyper, m0: Tensor, v0: Tensor, vmax0: Tensor, step: number, skip: SkipContext | null): void {
    const [b1, b2] = g.betas;
    const shape = param.shape;
    const invBc2Sqrt = ops.stepScalar(skip, step, (t) => 1 / Math.sqrt(1 - b2 ** t));
    const negStepSize = ops.stepScalar(skip, step, (t) => -g.lr / (1 - b1 ** t));
    ops.withFloat32(param.data, (p0) => {
      const tx = ops.transaction(skip?.foundInf ?? null);
      const d = ops.direction(p0, grad, this.decoupled ? 0 : g.weightDecay, g.maximize);
      const [p, m, v, vmax] = [p0, m0, v0, vmax0].map((x) => tx.stage(x));
      if (this.decoupled && g.weightDecay !== 0) ops.unary('scale', p, p, 1 - g.lr * g.weightDecay);
      const t = ops.temp(shape);
      ops.unary('scale', m, m, b1);
      ops.unary('scale', d, t, 1 - b1);
      ops.binary('add', m, t, m);
      ops.unary('scale', v, v, b2);
      ops.unary('square', d, t);
      ops.unary('scale', t, t, 1 - b2);
      ops.binary('add', v, t, v);
      ops.binary('maximum', vmax, v, vmax);
      ops.unary('sqrt', vmax, t);
      ops.scaleBy(t, t, invBc2Sqrt);
      ops.unary('addScalar', t, t, g.eps);
      ops.binary('div', m, t, t);
      ops.scaleBy(t, t, negStepSize);
      ops.binary('add', p, t, p);
      tx.commit();
    });
  }
}

/**
 * AdamW (torch.optim.AdamW): Adam with decoupled weight decay, p *= 1 - lr * weightDecay before
 * the Adam update; weightDecay defaults to 1e-2. Runs the backend's fused adamw kernel.
 */
export class AdamW extends Adam {
  /** PyTorch's defaults (weightDecay 1e-2). */
  static override readonly DEFAULTS: Readonly<AdamHyper> = ADAMW_DEFAULTS;

  protected override get name(): string { return 'AdamW'; }
  protected override get decoupled(): boolean { return true; }
}
