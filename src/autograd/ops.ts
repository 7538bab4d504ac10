// Differentiable ops on Variables. Each op computes its forward with the backend kernels (outputs
// in the 'activation' category), says what it saves for backward, and gives its backward closure
// right beside it. Gradients made during backward are 'temporary' tensors; leaves' .grad are
// 'gradient' tensors (see variable.ts).
import { InvalidArgumentError, ShapeMismatchError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import type { BinaryOp, UnaryOp } from '../backend/backend.js';
import type { Category } from '../backend/memory.js';
import { broadcastShapes, numel } from '../backend/shape.js';
import { record, Variable } from './variable.js';

// ---- kernel helpers (explicit categories; dispatch() always allocates 'activation') ----------

function same(a: Tensor, b: Tensor): void {
  if (a.backend !== b.backend) throw new InvalidArgumentError(`variables are on different backends (${a.backend.kind} and ${b.backend.kind})`);
}

function f32(t: Tensor, op: string): void {
  if (t.dtype !== 'float32') throw new InvalidArgumentError(`autograd ${op}: float32 tensors only, got ${t.dtype}`);
}

function kUnary(op: UnaryOp, x: Tensor, category: Category, alpha?: number): Tensor {
  const out = Tensor.empty(x.backend, x.shape, { category });
  x.backend.unary(op, x, out, alpha);
  return out;
}

function kBinary(op: BinaryOp, a: Tensor, b: Tensor, category: Category, shape: readonly number[] = broadcastShapes(a.shape, b.shape)): Tensor {
  same(a, b);
  const out = Tensor.empty(a.backend, shape, { category });
  a.backend.binary(op, a, b, out);
  return out;
}

function kSum(x: Tensor, axis: number | null, category: Category): Tensor {
  const shape = axis === null ? [] : x.shape.filter((_, i) => i !== axis);
  const out = Tensor.empty(x.backend, shape, { category });
  x.backend.reduce('sum', x, out, axis);
  return out;
}

/** g broadcast to `shape` (a new tensor). */
function expand(g: Tensor, shape: readonly number[], category: Category = 'temporary'): Tensor {
  const zero = Tensor.from(g.backend, [0], [], { category: 'temporary' });
  try {
    return kBinary('add', g, zero, category, shape);
  } finally {
    zero.dispose();
  }
}

function sumKeep(t: Tensor, axis: number): Tensor {
  const s = kSum(t, axis, 'temporary');
  const r = s.reshape([...t.shape.slice(0, axis), 1, ...t.shape.slice(axis + 1)]);
  s.dispose();
  return r;
}

/** Sums g (a broadcast of `shape`) over the broadcast dimensions back to `shape`; takes over g. */
export function unbroadcast(g: Tensor, shape: readonly number[]): Tensor {
  let t = g;
  const swap = (n: Tensor) => { t.dispose(); t = n; };
  while (t.rank > shape.length) swap(kSum(t, 0, 'temporary'));
  for (let i = 0; i < shape.length; i++) if (shape[i] === 1 && t.shape[i] !== 1) swap(sumKeep(t, i));
  return t;
}

/** A new reference to g (same storage), the gradient passed straight through. */
const pass = (g: Tensor): Tensor => g.reshape(g.shape);

// ---- ops --------------------------------------------------------------------------------------

export function add(a: Variable, b: Variable): Variable {
  f32(a.data, 'add'); f32(b.data, 'add');
  const y = kBinary('add', a.data, b.data, 'activation');
  return record('add', y, [a, b], () => [], (gy, _s, needs) => [
    needs[0] ? unbroadcast(pass(gy), a.shape) : null,
    needs[1] ? unbroadcast(pass(gy), b.shape) : null,
  ]);
}

export function sub(a: Variable, b: Variable): Variable {
  f32(a.data, 'sub'); f32(b.data, 'sub');
  const y = kBinary('sub', a.data, b.data, 'activation');
  return record('sub', y, [a, b], () => [], (gy, _s, needs) => [
    needs[0] ? unbroadcast(pass(gy), a.shape) : null,
    needs[1] ? unbroadcast(kUnary('neg', gy, 'temporary'), b.shape) : null,
  ]);
}

export function mul(a: Variable, b: Variable): Variable {
  f32(a.data, 'mul'); f32(b.data, 'mul');
  const y = kBinary('mul', a.data, b.data, 'activation');
  // d(a*b)/da = b, d/db = a: each input is saved only if the other one needs its gradient.
  return record('mul', y, [a, b], (needs) => [needs[1] ? a.data : null, needs[0] ? b.data : null], (gy, [sa, sb], needs) => [
    needs[0] ? unbroadcast(kBinary('mul', gy, sb!, 'temporary'), a.shape) : null,
    needs[1] ? unbroadcast(kBinary('mul', gy, sa!, 'temporary'), b.shape) : null,
  ]);
}

/** 2-D matrix product a [M, K] @ b [K, N]. */
export function matmul(a: Variable, b: Variable): Variable {
  f32(a.data, 'matmul'); f32(b.data, 'matmul');
  same(a.data, b.data);
  if (a.data.rank !== 2 || b.data.rank !== 2) throw new ShapeMismatchError(`autograd matmul is 2-D only, got [${a.shape.join(', ')}] @ [${b.shape.join(', ')}]`);
  const [m, k] = a.shape, [k2, n] = b.shape;
  if (k !== k2) throw new ShapeMismatchError(`matmul inner dimensions differ: [${a.shape.join(', ')}] @ [${b.shape.join(', ')}]`);
  const be = a.backend;
  const y = Tensor.empty(be, [m, n], { category: 'activation' });
  be.matmul(a.data, b.data, y);
  return record('matmul', y, [a, b], (needs) => [needs[1] ? a.data : null, needs[0] ? b.data : null], (gy, [sa, sb], needs) => {
    let ga: Tensor | null = null, gb: Tensor | null = null;
    if (needs[0]) { // dA = dY @ B^T
      ga = Tensor.empty(be, [m, k], { category: 'temporary' });
      be.matmul(gy, sb!, ga, { transB: true });
    }
    if (needs[1]) { // dB = A^T @ dY
      gb = Tensor.empty(be, [k, n], { category: 'temporary' });
      be.matmul(sa!, gy, gb, { transA: true });
    }
    return [ga, gb];
  });
}

export function relu(x: Variable): Variable {
  f32(x.data, 'relu');
  const y = kUnary('relu', x.data, 'activation');
  // Saves its output (as PyTorch does): dx = dy where y > 0, else 0.
  return record('relu', y, [x], () => [y], (gy, [sy]) => {
    const be = gy.backend;
    const zero = Tensor.from(be, [0], [], { category: 'temporary' });
    const gx = Tensor.empty(be, gy.shape, { category: 'temporary' });
    be.where(sy!, gy, zero, gx);
    zero.dispose();
    return [gx];
  });
}

export function exp(x: Variable): Variable {
  f32(x.data, 'exp');
  const y = kUnary('exp', x.data, 'activation');
  return record('exp', y, [x], () => [y], (gy, [sy]) => [kBinary('mul', gy, sy!, 'temporary')]);
}

/** x * c for a constant c. */
export function scale(x: Variable, c: number): Variable {
  f32(x.data, 'scale');
  const y = kUnary('scale', x.data, 'activation', c);
  return record('scale', y, [x], () => [], (gy) => [kUnary('scale', gy, 'temporary', c)]);
}

/** Sum of every element (shape []). */
export function sum(x: Variable): Variable {
  f32(x.data, 'sum');
  const y = kSum(x.data, null, 'activation');
  const shape = x.shape;
  return record('sum', y, [x], () => [], (gy) => [expand(gy, shape)]);
}

/** Mean of every element (shape []). */
export function mean(x: Variable): Variable {
  f32(x.data, 'mean');
  const y = Tensor.empty(x.backend, [], { category: 'activation' });
  x.backend.reduce('mean', x.data, y, null);
  const shape = x.shape, n = numel(shape);
  return record('mean', y, [x], () => [], (gy) => {
    const s = kUnary('scale', gy, 'temporary', 1 / n);
    const g = expand(s, shape);
    s.dispose();
    return [g];
  });
}
