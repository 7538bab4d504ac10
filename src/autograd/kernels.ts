// Kernel calls with explicit memory categories, shared by the differentiable ops. Forward outputs
// are 'activation' tensors while a graph is recorded (the memory training holds) and 'temporary'
// under noGrad/inferenceMode, so an inference forward never counts as activations; gradients made
// during backward are 'temporary' (a leaf's .grad is a 'gradient' tensor, see variable.ts).
import { InvalidArgumentError } from '../errors.js';
import { isGradEnabled } from './variable.js';
import { Tensor, withOutputs } from '../tensor/tensor.js';
import type { Backend, BinaryOp, UnaryOp } from '../backend/backend.js';
import type { Category } from '../backend/memory.js';
import { broadcastShapes } from '../backend/shape.js';

/** The category of op outputs: 'activation' while recording, 'temporary' under noGrad / inferenceMode. */
export function outCategory(): Category {
  return isGradEnabled() ? 'activation' : 'temporary';
}

export function sameBackend(a: Tensor, b: Tensor): void {
  if (a.backend !== b.backend) throw new InvalidArgumentError(`variables are on different backends (${a.backend.kind} and ${b.backend.kind})`);
}

/** Differentiable ops take any float dtype (computed in float32); int32 tensors are ids, not values. */
export function floating(t: Tensor, op: string): void {
  if (t.dtype === 'int32') throw new InvalidArgumentError(`${op}: expected a floating tensor, got int32`);
}

// Every kernel call here frees its output when the kernel throws (withOutputs).

export function kUnary(op: UnaryOp, x: Tensor, category: Category, alpha?: number): Tensor {
  return withOutputs(() => {
    const out = Tensor.empty(x.backend, x.shape, { dtype: 'float32', category, label: op });
    x.backend.unary(op, x, out, alpha);
    return out;
  });
}

export function kBinary(op: BinaryOp, a: Tensor, b: Tensor, category: Category, shape: readonly number[] = broadcastShapes(a.shape, b.shape)): Tensor {
  sameBackend(a, b);
  return withOutputs(() => {
    const out = Tensor.empty(a.backend, shape, { dtype: 'float32', category, label: op });
    a.backend.binary(op, a, b, out);
    return out;
  });
}

/**
 * A backward's elementwise gradient op(gy, b), computed in place into gy when autograd holds the
 * only reference to it (float32, not broadcast, no view or saved copy sharing it: autograd frees gy
 * right after the backward anyway), else into a new float32 'temporary' tensor. Same values either
 * way (every backend may write a binary op's output over an input); one gradient-sized buffer less
 * at the moment backward is at its largest.
 */
export function kBinaryGrad(op: BinaryOp, gy: Tensor, b: Tensor): Tensor {
  const shape = broadcastShapes(gy.shape, b.shape);
  if (gy.dtype !== 'float32' || !gy.isSoleOwner || shape.length !== gy.rank || shape.some((d, i) => d !== gy.shape[i])) return kBinary(op, gy, b, 'temporary', shape);
  sameBackend(gy, b);
  return withOutputs(() => {
    const out = gy.reshape(gy.shape);
    gy.backend.binary(op, gy, b, out);
    return out;
  });
}

/** Sum over `axis` (removed), or over everything (shape []). */
export function kSum(x: Tensor, axis: number | null, category: Category): Tensor {
  const shape = axis === null ? [] : x.shape.filter((_, i) => i !== axis);
  return withOutputs(() => {
    const out = Tensor.empty(x.backend, shape, { dtype: 'float32', category, label: 'sum' });
    x.backend.reduce('sum', x, out, axis);
    return out;
  });
}

/** Sum over `axis`, keeping it as a dimension of size 1. */
export function kSumKeep(t: Tensor, axis: number, category: Category = 'temporary'): Tensor {
  const s = kSum(t, axis, category);
  const r = s.reshape([...t.shape.slice(0, axis), 1, ...t.shape.slice(axis + 1)]);
  s.dispose();
  return r;
}

/** A float32 scalar constant (shape []). */
export function scalar(backend: Backend, value: number): Tensor {
  return Tensor.from(backend, [value], [], { dtype: 'float32', category: 'temporary' });
}

/** A float32 tensor of zeros (accumulators of kernels that add into their output). */
export function zeros(backend: Backend, shape: readonly number[], category: Category): Tensor {
  return withOutputs(() => {
    const t = Tensor.empty(backend, shape, { dtype: 'float32', category, label: 'zeros' });
    backend.fill(t, 0);
    return t;
  });
}

/** g broadcast to `shape` (a new tensor). */
export function expand(g: Tensor, shape: readonly number[], category: Category = 'temporary'): Tensor {
  const zero = scalar(g.backend, 0);
  try {
    return kBinary('add', g, zero, category, shape);
  } finally {
    zero.dispose();
  }
}

/** Sums g (a broadcast of `shape`) over the broadcast dimensions back to `shape`; takes over g. */
export function unbroadcast(g: Tensor, shape: readonly number[]): Tensor {
  let t = g;
  const swap = (n: Tensor) => { t.dispose(); t = n; };
  while (t.rank > shape.length) swap(kSum(t, 0, 'temporary'));
  for (let i = 0; i < shape.length; i++) if (shape[i] === 1 && t.shape[i] !== 1) swap(kSumKeep(t, i));
  return t;
}

/** A new reference to g (same storage): the gradient passed straight through. */
export const pass = (g: Tensor): Tensor => g.reshape(g.shape);

/**
 * out = product + bias (bias broadcast over rows; none: the product alone), rounded once into out:
 * a low-precision out gets the product in a float32 temporary and the sum rounded, as PyTorch's
 * addmm (rounding the product first and again after the bias is one step off in about a quarter of
 * bfloat16 outputs). `product(into)` writes the product into a tensor of out's shape.
 */
export function productPlusBias(be: Backend, out: Tensor, bias: Tensor | null, product: (into: Tensor) => void): void {
  if (!bias || out.dtype === 'float32') {
    product(out);
    if (bias) be.binary('add', out, bias, out);
    return;
  }
  const acc = Tensor.empty(be, out.shape, { dtype: 'float32', category: 'temporary' });
  try {
    product(acc);
    be.binary('add', acc, bias, out);
  } finally {
    acc.dispose();
  }
}
