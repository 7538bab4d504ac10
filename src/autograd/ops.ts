// Differentiable ops on Variables. Each op computes its forward with the backend kernels (outputs
// in the 'activation' category while a graph is recorded, 'temporary' otherwise), says what it saves for backward, and gives its backward closure
// right beside it. Inputs may be any float dtype (the kernels compute in float32); outputs and
// gradients are float32.
import { checkOptions, describeValue, InvalidArgumentError, ShapeMismatchError } from '../errors.js';
import { checkTensor, Tensor, withOutputs } from '../tensor/tensor.js';
import type { BinaryOp, MatmulOptions, UnaryOp } from '../backend/backend.js';
import { normAxis, numel } from '../backend/shape.js';
import { applyOpPolicy, checkVariables, record, Variable } from './variable.js';
import { expand, floating, kBinary, kSum, kSumKeep, kUnary, outCategory, pass, sameBackend, scalar, unbroadcast } from './kernels.js';

export { unbroadcast } from './kernels.js';

// ---- elementwise ------------------------------------------------------------------------------

export function add(a: Variable, b: Variable): Variable {
  [a, b] = applyOpPolicy('add', [a, b] as const);
  floating(a.data, 'add'); floating(b.data, 'add');
  const y = kBinary('add', a.data, b.data, outCategory());
  return record('add', y, [a, b], () => [], (gy, _s, needs) => [
    needs[0] ? unbroadcast(pass(gy), a.shape) : null,
    needs[1] ? unbroadcast(pass(gy), b.shape) : null,
  ]);
}

export function sub(a: Variable, b: Variable): Variable {
  [a, b] = applyOpPolicy('sub', [a, b] as const);
  floating(a.data, 'sub'); floating(b.data, 'sub');
  const y = kBinary('sub', a.data, b.data, outCategory());
  return record('sub', y, [a, b], () => [], (gy, _s, needs) => [
    needs[0] ? unbroadcast(pass(gy), a.shape) : null,
    needs[1] ? unbroadcast(kUnary('neg', gy, 'temporary'), b.shape) : null,
  ]);
}

export function mul(a: Variable, b: Variable): Variable {
  [a, b] = applyOpPolicy('mul', [a, b] as const);
  floating(a.data, 'mul'); floating(b.data, 'mul');
  const y = kBinary('mul', a.data, b.data, outCategory());
  // d(a*b)/da = b, d/db = a: each input is saved only if the other one needs its gradient.
  return record('mul', y, [a, b], (needs) => [needs[1] ? a.data : null, needs[0] ? b.data : null], (gy, [sa, sb], needs) => [
    needs[0] ? unbroadcast(kBinary('mul', gy, sb!, 'temporary'), a.shape) : null,
    needs[1] ? unbroadcast(kBinary('mul', gy, sa!, 'temporary'), b.shape) : null,
  ]);
}

/** a / b with broadcasting. */
export function div(a: Variable, b: Variable): Variable {
  [a, b] = applyOpPolicy('div', [a, b] as const);
  floating(a.data, 'div'); floating(b.data, 'div');
  const y = kBinary('div', a.data, b.data, outCategory());
  // da = gy / b; db = -gy * y / b (= -gy a / b^2, from the saved output: a is not kept).
  return record('div', y, [a, b], (needs) => [b.data, needs[1] ? y : null], (gy, [sb, sy], needs) => {
    const ga = kBinary('div', gy, sb!, 'temporary');
    let gb: Tensor | null = null;
    if (needs[1]) {
      const t = kBinary('mul', ga, sy!, 'temporary');
      gb = unbroadcast(kUnary('neg', t, 'temporary'), b.shape);
      t.dispose();
    }
    if (!needs[0]) { ga.dispose(); return [null, gb]; }
    return [unbroadcast(ga, a.shape), gb];
  });
}

export function neg(x: Variable): Variable {
  [x] = applyOpPolicy('neg', [x] as const);
  floating(x.data, 'neg');
  return record('neg', kUnary('neg', x.data, outCategory()), [x], () => [], (gy) => [kUnary('neg', gy, 'temporary')]);
}

/** x * c for a constant c. */
/** Throws unless `c` is a number (a string or null would become NaN or 0 in the kernel). */
function constantArg(op: string, c: unknown): void {
  if (typeof c !== 'number') throw new InvalidArgumentError(`${op}: the constant must be a number, got ${describeValue(c)}`);
}

export function scale(x: Variable, c: number): Variable {
  constantArg('scale', c);
  [x] = applyOpPolicy('scale', [x] as const);
  floating(x.data, 'scale');
  const y = kUnary('scale', x.data, outCategory(), c);
  return record('scale', y, [x], () => [], (gy) => [kUnary('scale', gy, 'temporary', c)]);
}

/** x + c for a constant c. */
export function addScalar(x: Variable, c: number): Variable {
  constantArg('addScalar', c);
  [x] = applyOpPolicy('addScalar', [x] as const);
  floating(x.data, 'addScalar');
  return record('addScalar', kUnary('addScalar', x.data, outCategory(), c), [x], () => [], (gy) => [pass(gy)]);
}

export function exp(x: Variable): Variable {
  [x] = applyOpPolicy('exp', [x] as const);
  floating(x.data, 'exp');
  const y = kUnary('exp', x.data, outCategory());
  return record('exp', y, [x], () => [y], (gy, [sy]) => [kBinary('mul', gy, sy!, 'temporary')]);
}

export function log(x: Variable): Variable {
  [x] = applyOpPolicy('log', [x] as const);
  floating(x.data, 'log');
  const y = kUnary('log', x.data, outCategory());
  return record('log', y, [x], () => [x.data], (gy, [sx]) => [kBinary('div', gy, sx!, 'temporary')]);
}

export function square(x: Variable): Variable {
  [x] = applyOpPolicy('square', [x] as const);
  floating(x.data, 'square');
  const y = kUnary('square', x.data, outCategory());
  return record('square', y, [x], () => [x.data], (gy, [sx]) => {
    const t = kBinary('mul', gy, sx!, 'temporary');
    const g = kUnary('scale', t, 'temporary', 2);
    t.dispose();
    return [g];
  });
}

export function sqrt(x: Variable): Variable {
  [x] = applyOpPolicy('sqrt', [x] as const);
  floating(x.data, 'sqrt');
  const y = kUnary('sqrt', x.data, outCategory());
  return record('sqrt', y, [x], () => [y], (gy, [sy]) => { // dx = gy / (2 sqrt(x))
    const t = kBinary('div', gy, sy!, 'temporary');
    const g = kUnary('scale', t, 'temporary', 0.5);
    t.dispose();
    return [g];
  });
}

/** An activation whose backward is one kernel: gx = backwardOp(gy, saved), saved = x or y. */
function activation(op: UnaryOp, backwardOp: BinaryOp, fromOutput: boolean, x: Variable): Variable {
  [x] = applyOpPolicy(op, [x] as const);
  floating(x.data, op);
  const y = kUnary(op, x.data, outCategory());
  return record(op, y, [x], () => [fromOutput ? y : x.data], (gy, [s]) => [kBinary(backwardOp, gy, s!, 'temporary')]);
}

/** max(x, 0); saves its output, as PyTorch does. */
export const relu = (x: Variable): Variable => activation('relu', 'reluBackward', true, x);
/** The exact (erf) GELU, torch's default approximate='none'. */
export const gelu = (x: Variable): Variable => activation('gelu', 'geluBackward', false, x);
/** x * sigmoid(x). */
export const silu = (x: Variable): Variable => activation('silu', 'siluBackward', false, x);
export const sigmoid = (x: Variable): Variable => activation('sigmoid', 'sigmoidBackwardY', true, x);
export const tanh = (x: Variable): Variable => activation('tanh', 'tanhBackwardY', true, x);

// ---- shape ------------------------------------------------------------------------------------

/** A view with another shape (no copy); -1 infers one dimension. */
export function reshape(x: Variable, shape: readonly number[]): Variable {
  checkVariables('reshape', [x]);
  const y = x.data.reshape(shape);
  const xs = x.shape;
  return record('reshape', y, [x], () => [], (gy) => [gy.reshape(xs)]);
}

/** The last two dimensions swapped (a contiguous copy). */
export function transpose(x: Variable): Variable {
  checkVariables('transpose', [x]);
  const r = x.data.rank;
  if (r < 2) throw new InvalidArgumentError(`transpose needs a tensor of rank >= 2, got [${x.shape.join(', ')}]`);
  const y = withOutputs(() => {
    const t = Tensor.empty(x.backend, [...x.shape.slice(0, -2), x.shape[r - 1], x.shape[r - 2]], { dtype: x.data.dtype, category: outCategory(), label: 'transpose' });
    x.backend.transpose(x.data, t);
    return t;
  });
  return record('transpose', y, [x], () => [], (gy) => {
    const g = Tensor.empty(gy.backend, x.shape, { category: 'temporary' });
    gy.backend.transpose(gy, g);
    return [g];
  });
}

// ---- reductions ---------------------------------------------------------------------------------

export interface ReduceOptions {
  /** Keep the reduced axis as a dimension of size 1. */
  keepDim?: boolean;
}

function reduceSum(name: 'sum' | 'mean', x: Variable, axis: number | null, options: ReduceOptions): Variable {
  [x] = applyOpPolicy(name, [x] as const);
  floating(x.data, name);
  const ax = axis === null ? null : normAxis(axis, x.data.rank);
  const outShape = ax === null ? [] : x.shape.filter((_, i) => i !== ax);
  const y0 = withOutputs(() => {
    const t = Tensor.empty(x.backend, outShape, { category: outCategory(), label: name });
    x.backend.reduce(name, x.data, t, ax);
    return t;
  });
  let y = y0;
  if (options.keepDim && ax !== null) {
    y = y0.reshape([...x.shape.slice(0, ax), 1, ...x.shape.slice(ax + 1)]);
    y0.dispose();
  } else if (options.keepDim) {
    y = y0.reshape(x.shape.map(() => 1));
    y0.dispose();
  }
  const shape = x.shape;
  const n = ax === null ? numel(shape) : shape[ax];
  return record(name, y, [x], () => [], (gy) => {
    const keep = ax === null ? gy.reshape(shape.map(() => 1)) : gy.reshape([...shape.slice(0, ax), 1, ...shape.slice(ax + 1)]);
    const s = name === 'mean' ? kUnary('scale', keep, 'temporary', 1 / n) : pass(keep);
    keep.dispose();
    const g = expand(s, shape);
    s.dispose();
    return [g];
  });
}

/** Sum over `axis`, or over everything (shape []) when axis is null. */
export function sum(x: Variable, axis: number | null = null, options: ReduceOptions = {}): Variable {
  return reduceSum('sum', x, axis, options);
}

/** Mean over `axis`, or over everything (shape []) when axis is null. */
export function mean(x: Variable, axis: number | null = null, options: ReduceOptions = {}): Variable {
  return reduceSum('mean', x, axis, options);
}

// ---- softmax ----------------------------------------------------------------------------------

/** Softmax over the last axis. */
export function softmax(x: Variable): Variable {
  [x] = applyOpPolicy('softmax', [x] as const);
  floating(x.data, 'softmax');
  if (x.data.rank === 0) throw new InvalidArgumentError('softmax needs a tensor of rank >= 1');
  const y = withOutputs(() => {
    const t = Tensor.empty(x.backend, x.shape, { category: outCategory(), label: 'softmax' });
    x.backend.softmax(x.data, t, false);
    return t;
  });
  return record('softmax', y, [x], () => [y], (gy, [sy]) => { // dx = y (gy - sum(gy y))
    const gyy = kBinary('mul', gy, sy!, 'temporary');
    const s = kSumKeep(gyy, gy.rank - 1);
    gyy.dispose();
    const d = kBinary('sub', gy, s, 'temporary');
    s.dispose();
    const g = kBinary('mul', d, sy!, 'temporary');
    d.dispose();
    return [g];
  });
}

/** log(softmax(x)) over the last axis. */
export function logSoftmax(x: Variable): Variable {
  [x] = applyOpPolicy('logSoftmax', [x] as const);
  floating(x.data, 'logSoftmax');
  if (x.data.rank === 0) throw new InvalidArgumentError('logSoftmax needs a tensor of rank >= 1');
  const y = withOutputs(() => {
    const t = Tensor.empty(x.backend, x.shape, { category: outCategory(), label: 'logSoftmax' });
    x.backend.softmax(x.data, t, true);
    return t;
  });
  return record('logSoftmax', y, [x], () => [y], (gy, [sy]) => { // dx = gy - exp(y) sum(gy)
    const s = kSumKeep(gy, gy.rank - 1);
    const p = kUnary('exp', sy!, 'temporary');
    const t = kBinary('mul', p, s, 'temporary');
    p.dispose(); s.dispose();
    const g = kBinary('sub', gy, t, 'temporary');
    t.dispose();
    return [g];
  });
}

// ---- matmul -----------------------------------------------------------------------------------

/** Sums a gradient computed with the output's batch dims down to an operand with fewer (or size-1) batch dims. */
function reduceBatch(g: Tensor, shape: readonly number[]): Tensor {
  if (g.shape.join() === shape.join()) return g;
  const rows = g.shape[g.rank - 2], cols = g.shape[g.rank - 1];
  const flat = g.reshape([numel(g.shape.slice(0, -2)), rows, cols]);
  g.dispose();
  const s = kSum(flat, 0, 'temporary');
  flat.dispose();
  const r = s.reshape(shape);
  s.dispose();
  return r;
}

/**
 * a [..., M, K] @ b [..., K, N] (either side may be transposed with transA/transB; batch dims equal,
 * or one side without batch dims: it is broadcast and its gradient summed over the batch).
 */
export function matmul(a: Variable, b: Variable, options: Pick<MatmulOptions, 'transA' | 'transB'> = {}): Variable {
  [a, b] = applyOpPolicy('matmul', [a, b] as const);
  floating(a.data, 'matmul'); floating(b.data, 'matmul');
  sameBackend(a.data, b.data);
  const o = checkOptions(options, ['transA', 'transB'], 'matmul');
  const transA = o.transA ?? false, transB = o.transB ?? false;
  if (typeof transA !== 'boolean' || typeof transB !== 'boolean') throw new InvalidArgumentError(`matmul: transA and transB must be booleans, got ${describeValue(transA)} and ${describeValue(transB)}`);
  if (a.data.rank < 2 || b.data.rank < 2) throw new ShapeMismatchError(`matmul needs tensors of rank >= 2, got [${a.shape.join(', ')}] and [${b.shape.join(', ')}]`);
  const ra = a.data.rank, rb = b.data.rank;
  const [m, k] = transA ? [a.shape[ra - 1], a.shape[ra - 2]] : [a.shape[ra - 2], a.shape[ra - 1]];
  const [k2, n] = transB ? [b.shape[rb - 1], b.shape[rb - 2]] : [b.shape[rb - 2], b.shape[rb - 1]];
  if (k !== k2) throw new ShapeMismatchError(`matmul inner dimensions differ: [${a.shape.join(', ')}]${transA ? '^T' : ''} @ [${b.shape.join(', ')}]${transB ? '^T' : ''} (${k} vs ${k2})`);
  const ba = a.shape.slice(0, -2), bb = b.shape.slice(0, -2);
  if (numel(ba) !== 1 && numel(bb) !== 1 && ba.join() !== bb.join()) throw new ShapeMismatchError(`matmul batch dimensions differ: [${ba.join(', ')}] vs [${bb.join(', ')}]`);
  // The broadcast batch shape; when both have one element, the longer one (PyTorch keeps [1, 1, M, N]).
  const batch = numel(ba) !== 1 ? ba : numel(bb) !== 1 ? bb : ba.length >= bb.length ? ba : bb;
  const be = a.backend;
  const y = withOutputs(() => {
    const t = Tensor.empty(be, [...batch, m, n], { category: outCategory(), label: 'matmul' });
    be.matmul(a.data, b.data, t, { transA, transB });
    return t;
  });
  return record('matmul', y, [a, b], (needs) => [needs[1] ? a.data : null, needs[0] ? b.data : null], (gy, [sa, sb], needs) => {
    let ga: Tensor | null = null, gb: Tensor | null = null;
    if (needs[0]) { // dA = dY @ op(B)^T, or its transpose when A was used transposed
      ga = Tensor.empty(be, [...batch, ...(transA ? [k, m] : [m, k])], { category: 'temporary' });
      if (transA) be.matmul(sb!, gy, ga, { transA: transB, transB: true });
      else be.matmul(gy, sb!, ga, { transB: !transB });
      ga = reduceBatch(ga, a.shape);
    }
    if (needs[1]) { // dB = op(A)^T @ dY, or its transpose when B was used transposed
      gb = Tensor.empty(be, [...batch, ...(transB ? [n, k] : [k, n])], { category: 'temporary' });
      if (transB) be.matmul(gy, sa!, gb, { transA: true, transB: transA });
      else be.matmul(sa!, gy, gb, { transA: !transA });
      gb = reduceBatch(gb, b.shape);
    }
    return [ga, gb];
  });
}

/**
 * x converted to `dtype` (rounded once, nearest-even; bit-identical to Tensor.to). Differentiable:
 * the gradient passes through unchanged (in float32), as torch's .to(dtype) does up to rounding.
 * What an autocast policy inserts before an op.
 */
export function cast(x: Variable, dtype: string): Variable {
  checkVariables('cast', [x]);
  floating(x.data, 'cast');
  const y = withOutputs(() => {
    const t = Tensor.empty(x.backend, x.shape, { dtype, category: outCategory(), label: 'cast' });
    if (t.dtype === 'int32') throw new InvalidArgumentError('cast: a differentiable cast needs a float dtype, got int32');
    x.backend.cast(x.data, t);
    return t;
  });
  return record('cast', y, [x], () => [], (gy) => [pass(gy)]);
}

/** A Variable that never needs a gradient, around `t` (a new reference to its storage). */
export function constant(t: Tensor): Variable {
  checkTensor(t, 'constant');
  return new Variable(t.reshape(t.shape), { requiresGrad: false });
}

export { scalar };
