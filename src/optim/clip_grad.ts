// Gradient clipping (torch.nn.utils.clip_grad_norm_ and clip_grad_value_), entirely on the device:
// the total norm and the clip coefficient are shape-[] tensors, never read back, so clipping does
// not make a training step wait for the GPU.
import { InvalidArgumentError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { Variable } from '../autograd/variable.js';
import type { Backend } from '../backend/backend.js';
import { GradientReleaseError, releasingOptimizer, withStepOps } from './optimizer.js';

function gradsOf(params: Iterable<Variable> | Variable, fn: string): { backend: Backend | null; grads: Tensor[] } {
  const vars = params instanceof Variable ? [params] : [...params];
  let backend: Backend | null = null;
  const grads: Tensor[] = [];
  vars.forEach((v, i) => {
    if (!(v instanceof Variable)) throw new InvalidArgumentError(`${fn}: parameter ${i} is not a Variable`);
    const owner = releasingOptimizer(v);
    if (owner !== undefined && !(params instanceof Variable)) { // a lone Variable is per-parameter clipping
      throw new GradientReleaseError(`${fn}: parameter ${i} is updated inside backward by ${owner} (gradient release), so its gradient is gone before the others exist: a global norm cannot be computed. Clip per parameter with attachToBackward({ maxGradNorm })`);
    }
    backend ??= v.backend;
    if (!v.grad) return;
    if (v.grad.backend !== backend) throw new InvalidArgumentError(`${fn}: gradients are on different backends (${backend.kind} and ${v.grad.backend.kind})`);
    if (v.grad.offset !== 0) throw new InvalidArgumentError(`${fn}: the grad of parameter ${i} is a view at offset ${v.grad.offset}; gradients are clipped in place and must start at their storage's beginning`);
    grads.push(v.grad);
  });
  return { backend, grads };
}

/**
 * Scales the gradients in place so that their total norm is at most maxNorm
 * (torch.nn.utils.clip_grad_norm_): total = the normType-norm of all gradients together (2 by
 * default; Infinity for the largest absolute value), coef = min(maxNorm / (total + 1e-6), 1),
 * every grad *= coef. Parameters without a grad are skipped. Returns the total norm before
 * clipping as a shape-[] float32 tensor (the caller disposes it); nothing is read back. As in
 * PyTorch, a NaN or infinite norm makes the gradients NaN (check the returned norm to skip a step).
 */
export function clipGradNorm(params: Iterable<Variable> | Variable, maxNorm: number, normType = 2): Tensor {
  if (typeof maxNorm !== 'number' || !(maxNorm >= 0)) throw new InvalidArgumentError(`clipGradNorm: maxNorm must be a number >= 0, got ${String(maxNorm)}`);
  if (typeof normType !== 'number' || !(normType > 0)) throw new InvalidArgumentError(`clipGradNorm: normType must be a number > 0 or Infinity, got ${String(normType)}`);
  const { backend, grads } = gradsOf(params, 'clipGradNorm');
  if (!backend) throw new InvalidArgumentError('clipGradNorm: no parameters given (the norm needs a backend to live on)');
  if (grads.length === 0) return Tensor.from(backend, [0], [], { dtype: 'float32', category: 'temporary', label: 'grad norm' });
  const total = Tensor.empty(backend, [], { dtype: 'float32', category: 'temporary', label: 'grad norm' });
  try {
    withStepOps(backend, (ops) => {
      if (normType === 2) backend.globalNorm(grads, total);
      else if (normType === Infinity) {
        const m = ops.temp([]);
        grads.forEach((g, i) => {
          backend.reduce('amax', g, i === 0 ? total : m, null);
          if (i > 0) ops.binary('maximum', total, m, total);
        });
      } else {
        // (sum over all elements of |g|^p)^(1/p), the p-norm of the per-tensor p-norms.
        const s = ops.temp([]);
        grads.forEach((g, i) => {
          const a = ops.temp(g.shape);
          ops.unary('abs', g, a);
          if (normType !== 1) ops.unary('powScalar', a, a, normType);
          backend.reduce('sum', a, i === 0 ? total : s, null);
          if (i > 0) ops.binary('add', total, s, total);
        });
        if (normType !== 1) ops.unary('powScalar', total, total, 1 / normType);
      }
      const coef = ops.temp([]);
      ops.unary('addScalar', total, coef, 1e-6);
      const max = Tensor.from(backend, [maxNorm], [], { dtype: 'float32', category: 'temporary', label: 'max norm' });
      const one = Tensor.from(backend, [1], [], { dtype: 'float32', category: 'temporary', label: 'one' });
      try {
        ops.binary('div', max, coef, coef);
        ops.binary('minimum', coef, one, coef);
      } finally {
        max.dispose();
        one.dispose();
      }
      for (const g of grads) ops.binary('mul', g, coef, g);
    });
  } catch (e) {
    total.dispose();
    throw e;
  }
  return total;
}

/**
 * Clamps every gradient element to [-clipValue, clipValue] in place
 * (torch.nn.utils.clip_grad_value_). Parameters without a grad are skipped; NaN stays NaN.
 */
export function clipGradValue(params: Iterable<Variable> | Variable, clipValue: number): void {
  if (typeof clipValue !== 'number' || !(clipValue >= 0)) throw new InvalidArgumentError(`clipGradValue: clipValue must be a number >= 0, got ${String(clipValue)}`);
  const { backend, grads } = gradsOf(params, 'clipGradValue');
  if (!backend || grads.length === 0) return;
  const hi = Tensor.from(backend, [clipValue], [], { dtype: 'float32', category: 'temporary', label: 'clip value' });
  const lo = Tensor.from(backend, [-clipValue], [], { dtype: 'float32', category: 'temporary', label: 'clip value' });
  try {
    withStepOps(backend, (ops) => {
      for (const g of grads) {
        ops.binary('minimum', g, hi, g);
        ops.binary('maximum', g, lo, g);
      }
    });
  } finally {
    hi.dispose();
    lo.dispose();
  }
}
