// Differentiable ops on Variables, each declared once as an op record (op.ts): its PyTorch name,
// its output-dtype rule, and a forward that says what it saves with its backward right beside it.
// `apply` runs them all the same way (policy, allocation in the chosen dtype, recording, saved-tensor
// context, labels, observers). Inputs may be any float dtype (kernels compute in float32);
// gradients are float32.
import { checkOptions, describeValue, InvalidArgumentError, ShapeMismatchError } from '../errors.js';
import { canonicalDType, type DTypeName } from '../dtype/formats.js';
import { checkTensor, Tensor, matmulShape, withOutputs } from '../tensor/tensor.js';
import type { BinaryOp, MatmulOptions, TensorDType, UnaryOp } from '../backend/backend.js';
import type { Category } from '../backend/memory.js';
import { normAxis, numel, broadcastShapes } from '../backend/shape.js';
import { dtypeBits } from '../backend/storage.js';
import { rowsGradient, Variable } from './variable.js';
import { apply, defineOp, sameDtypeOrFloat32, type OpIO } from './op.js';
import { expand, floating, kBinary, kBinaryGrad, kSum, kSumKeep, kUnary, pass, sameBackend, scalar, unbroadcast, zeros } from './kernels.js';

export { unbroadcast } from './kernels.js';

/** Throws unless `c` is a number (a string or null would become NaN or 0 in the kernel). */
function constantArg(op: string, c: unknown): void {
  if (typeof c !== 'number') throw new InvalidArgumentError(`${op}: the constant must be a number, got ${describeValue(c)}`);
}

/** io's output holding op(x) (a unary kernel). */
function unaryOut(io: OpIO, op: UnaryOp, x: Tensor, alpha?: number): Tensor {
  const y = io.output(x, x.shape);
  x.backend.unary(op, x, y, alpha);
  return y;
}

/** io's output holding op(a, b) with broadcasting. */
function binaryOut(io: OpIO, op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  sameBackend(a, b);
  const y = io.output(a, broadcastShapes(a.shape, b.shape));
  a.backend.binary(op, a, b, y);
  return y;
}

// ---- elementwise ------------------------------------------------------------------------------

/** A binary elementwise op record (its output keeps the inputs' dtype when they share one). */
function binaryOp(name: string, op: BinaryOp, backward: (io: { a: Variable; b: Variable }) => OpDefBackward) {
  return defineOp({
    name, outputDtype: sameDtypeOrFloat32,
    forward: (io, [a, b]) => {
      floating(a.data, name); floating(b.data, name);
      const y = binaryOut(io, op, a.data, b.data);
      return { y, ...backward({ a, b }) };
    },
  });
}
type OpDefBackward = Pick<import('./op.js').OpResult, 'save' | 'backward' | 'slots'>;

const ADD = binaryOp('add', 'add', ({ a, b }) => ({
  backward: (gy, _s, needs) => [needs[0] ? unbroadcast(pass(gy), a.shape) : null, needs[1] ? unbroadcast(pass(gy), b.shape) : null],
}));
const SUB = binaryOp('sub', 'sub', ({ a, b }) => ({
  backward: (gy, _s, needs) => [needs[0] ? unbroadcast(pass(gy), a.shape) : null, needs[1] ? unbroadcast(kUnary('neg', gy, 'temporary'), b.shape) : null],
}));
// d(a*b)/da = b, d/db = a: each input is saved only if the other one needs its gradient.
const MUL = binaryOp('mul', 'mul', ({ a, b }) => ({
  save: (needs) => [needs[1] ? a.data : null, needs[0] ? b.data : null],
  slots: ['input0', 'input1'],
  backward: (gy, [sa, sb], needs) => [
    needs[0] ? unbroadcast(kBinary('mul', gy, sb!, 'temporary'), a.shape) : null,
    // The last use of gy: written in place where autograd holds it alone (kBinaryGrad).
    needs[1] ? unbroadcast(kBinaryGrad('mul', gy, sa!), b.shape) : null,
  ],
}));

export const add = (a: Variable, b: Variable): Variable => apply(ADD, [a, b]);
export const sub = (a: Variable, b: Variable): Variable => apply(SUB, [a, b]);
export const mul = (a: Variable, b: Variable): Variable => apply(MUL, [a, b]);

const DIV = defineOp({
  name: 'div', outputDtype: sameDtypeOrFloat32,
  forward: (io, [a, b]) => {
    floating(a.data, 'div'); floating(b.data, 'div');
    const y = binaryOut(io, 'div', a.data, b.data);
    // da = gy / b; db = -gy * y / b (= -gy a / b^2, from the saved output: a is not kept).
    return {
      y, save: (needs) => [b.data, needs[1] ? y : null], slots: ['input1', 'output'],
      backward: (gy, [sb, sy], needs) => {
        const ga = kBinary('div', gy, sb!, 'temporary');
        let gb: Tensor | null = null;
        if (needs[1]) {
          const t = kBinary('mul', ga, sy!, 'temporary');
          gb = unbroadcast(kUnary('neg', t, 'temporary'), b.shape);
          t.dispose();
        }
        if (!needs[0]) { ga.dispose(); return [null, gb]; }
        return [unbroadcast(ga, a.shape), gb];
      },
    };
  },
});
/** a / b with broadcasting. */
export const div = (a: Variable, b: Variable): Variable => apply(DIV, [a, b]);

/** A unary op whose gradient is a constant multiple of the output gradient (neg, x * c, x + c). */
const LINEAR_UNARY = (name: string, op: UnaryOp, gradScale: (c: number) => number | null) => defineOp({
  name, outputDtype: sameDtypeOrFloat32,
  forward: (io, [x], c: number) => {
    floating(x.data, name);
    const y = unaryOut(io, op, x.data, c);
    const k = gradScale(c);
    return { y, backward: (gy) => [k === null ? pass(gy) : kUnary('scale', gy, 'temporary', k)] };
  },
});
const NEG = LINEAR_UNARY('neg', 'neg', () => -1);
const SCALE = LINEAR_UNARY('mul', 'scale', (c) => c);
const ADD_SCALAR = LINEAR_UNARY('add', 'addScalar', () => null);

export const neg = (x: Variable): Variable => apply(NEG, [x], 0);
/** x * c for a constant c (PyTorch's mul with a scalar). */
export const scale = (x: Variable, c: number): Variable => { constantArg('scale', c); return apply(SCALE, [x], c); };
/** x + c for a constant c (PyTorch's add with a scalar). */
export const addScalar = (x: Variable, c: number): Variable => { constantArg('addScalar', c); return apply(ADD_SCALAR, [x], c); };

/** A unary op with its backward from the saved input or output. */
function unaryOp(name: string, op: UnaryOp, saveOutput: boolean, grad: (gy: Tensor, s: Tensor) => Tensor) {
  return defineOp({
    name, outputDtype: sameDtypeOrFloat32,
    forward: (io, [x]) => {
      floating(x.data, name);
      const y = unaryOut(io, op, x.data);
      return { y, save: () => [saveOutput ? y : x.data], backward: (gy, [s]) => [grad(gy, s!)] };
    },
  });
}
const EXP = unaryOp('exp', 'exp', true, (gy, y) => kBinaryGrad('mul', gy, y));
const LOG = unaryOp('log', 'log', false, (gy, x) => kBinaryGrad('div', gy, x));
const SQUARE = unaryOp('pow', 'square', false, (gy, x) => { // torch.square is pow(x, 2)
  const t = kBinary('mul', gy, x, 'temporary');
  const g = kUnary('scale', t, 'temporary', 2);
  t.dispose();
  return g;
});
const SQRT = unaryOp('sqrt', 'sqrt', true, (gy, y) => { // dx = gy / (2 sqrt(x))
  const t = kBinary('div', gy, y, 'temporary');
  const g = kUnary('scale', t, 'temporary', 0.5);
  t.dispose();
  return g;
});
export const exp = (x: Variable): Variable => apply(EXP, [x]);
export const log = (x: Variable): Variable => apply(LOG, [x]);
export const square = (x: Variable): Variable => apply(SQUARE, [x]);
export const sqrt = (x: Variable): Variable => apply(SQRT, [x]);

/** where(cond != 0, a, 0) as a new temporary float32 tensor (cond, a broadcast). */
function keepWhere(cond: Tensor, a: Tensor, zero: Tensor): Tensor {
  return withOutputs(() => {
    const out = Tensor.empty(a.backend, broadcastShapes(cond.shape, a.shape), { dtype: 'float32', category: 'temporary', label: 'where' });
    a.backend.where(cond, a, zero, out);
    return out;
  });
}

// x ** e, PyTorch's pow: C's powf for a tensor exponent, torch.pow(x, number)'s fast paths for a
// number (the kernels, src/backend/backend.ts). Backward as PyTorch's pow_backward_self /
// pow_backward_exponent: dx = gy (e x^(e - 1)), 0 where e = 0 (so 0^0 has gradient 0, not NaN);
// de = gy (y log x), 0 where x = 0 and e >= 0.
const POW = defineOp({
  name: 'pow', outputDtype: sameDtypeOrFloat32,
  forward: (io, [a, b]) => {
    floating(a.data, 'pow'); floating(b.data, 'pow');
    const y = binaryOut(io, 'pow', a.data, b.data);
    return {
      y, save: (needs) => [a.data, b.data, needs[1] ? y : null], slots: ['input0', 'input1', 'output'],
      backward: (gy, [sx, se, sy], needs) => {
        const x = sx!, e = se!, zero = scalar(gy.backend, 0);
        const dispose = (...ts: Tensor[]) => { for (const t of ts) t.dispose(); };
        try {
          let gx: Tensor | null = null, ge: Tensor | null = null;
          if (needs[0]) {
            const em1 = kUnary('addScalar', e, 'temporary', -1);
            const p = kBinary('pow', x, em1, 'temporary');
            const ep = kBinary('mul', e, p, 'temporary');
            const g = kBinary('mul', gy, ep, 'temporary');
            dispose(em1, p, ep);
            const m = keepWhere(e, g, zero);
            g.dispose();
            gx = unbroadcast(m, a.shape);
          }
          if (needs[1]) {
            const lx = kUnary('log', x, 'temporary');
            const yl = kBinary('mul', sy!, lx, 'temporary');
            // Kept where x != 0, or else where e < 0 or NaN (relu(-e) != 0): zero where x = 0 and e >= 0.
            const ne = kUnary('neg', e, 'temporary');
            const below = kUnary('relu', ne, 'temporary');
            const k1 = keepWhere(below, yl, zero);
            const k = withOutputs(() => {
              const out = Tensor.empty(gy.backend, broadcastShapes(x.shape, yl.shape), { dtype: 'float32', category: 'temporary', label: 'where' });
              gy.backend.where(x, yl, k1, out);
              return out;
            });
            dispose(lx, yl, ne, below, k1);
            const g = kBinary('mul', gy, k, 'temporary');
            k.dispose();
            ge = unbroadcast(g, b.shape);
          }
          return [gx, ge];
        } finally {
          zero.dispose();
        }
      },
    };
  },
});

const POW_SCALAR = defineOp({
  name: 'pow', outputDtype: sameDtypeOrFloat32,
  forward: (io, [x], c: number) => {
    floating(x.data, 'pow');
    const y = unaryOut(io, 'powScalar', x.data, c);
    return {
      y, save: () => [c === 0 ? null : x.data], slots: ['input0'],
      backward: (gy, [sx]) => {
        if (c === 0) return [zeros(gy.backend, x.shape, 'temporary')];
        const p = kUnary('powScalar', sx!, 'temporary', c - 1); // PyTorch: exp - 1 in float64, then its fast paths
        const cp = kUnary('scale', p, 'temporary', c);
        p.dispose();
        const g = kBinaryGrad('mul', gy, cp);
        cp.dispose();
        return [g];
      },
    };
  },
});

/**
 * x ** exponent, as torch.pow: a Variable exponent (broadcast) is C's powf elementwise (1^NaN =
 * NaN^0 = 1, (-2)^3 = -8, (-2)^0.5 = NaN); a number takes torch.pow(x, number)'s exact paths for
 * 2, 3, -2, 0.5 (sqrt: (-0)^0.5 = -0), -0.5 and -1, powf otherwise.
 */
export function pow(x: Variable, exponent: Variable | number): Variable {
  if (exponent instanceof Variable) return apply(POW, [x, exponent]);
  constantArg('pow', exponent);
  return apply(POW_SCALAR, [x], exponent);
}

/** An activation whose backward is one kernel: gx = backwardOp(gy, saved), saved = x or y. */
const activation = (op: UnaryOp, backwardOp: BinaryOp, fromOutput: boolean) =>
  unaryOp(op, op, fromOutput, (gy, s) => kBinaryGrad(backwardOp, gy, s));
const RELU = activation('relu', 'reluBackward', true);
const GELU = activation('gelu', 'geluBackward', false);
const SILU = activation('silu', 'siluBackward', false);
const SIGMOID = activation('sigmoid', 'sigmoidBackwardY', true);
const TANH = activation('tanh', 'tanhBackwardY', true);

/** max(x, 0); saves its output, as PyTorch does. */
export const relu = (x: Variable): Variable => apply(RELU, [x]);
/** The exact (erf) GELU, torch's default approximate='none'. */
export const gelu = (x: Variable): Variable => apply(GELU, [x]);
/** x * sigmoid(x). */
export const silu = (x: Variable): Variable => apply(SILU, [x]);
export const sigmoid = (x: Variable): Variable => apply(SIGMOID, [x]);
export const tanh = (x: Variable): Variable => apply(TANH, [x]);

// ---- shape ------------------------------------------------------------------------------------

const RESHAPE = defineOp({
  name: 'reshape',
  forward: (_io, [x], shape: readonly number[]) => {
    const xs = x.shape;
    return { y: x.data.reshape(shape), backward: (gy) => [gy.reshape(xs)] };
  },
});
/** A view with another shape (no copy); -1 infers one dimension. */
export const reshape = (x: Variable, shape: readonly number[]): Variable => apply(RESHAPE, [x], shape);

const PERMUTE = defineOp({
  name: 'permute', views: true, outputDtype: ([x]) => x.data.dtype,
  forward: (_io, [x], dims: readonly number[]) => {
    const y = x.data.permute(dims);
    const order = dims.map((d) => (d < 0 ? d + dims.length : d));
    const inverse = order.map((_, i) => order.indexOf(i));
    return { y, backward: (gy) => [gy.permute(inverse)] };
  },
});
/** The dimensions in the order `dims` gives, as a strided view (no copy; ops that need contiguous data copy it when they run). */
export const permute = (x: Variable, dims: readonly number[]): Variable => apply(PERMUTE, [x], dims);

const TRANSPOSE = defineOp({
  name: 'transpose', outputDtype: ([x]) => x.data.dtype,
  forward: (io, [x]) => {
    const r = x.data.rank;
    if (r < 2) throw new InvalidArgumentError(`transpose needs a tensor of rank >= 2, got [${x.shape.join(', ')}]`);
    const y = io.output(x.data, [...x.shape.slice(0, -2), x.shape[r - 1], x.shape[r - 2]]);
    x.backend.transpose(x.data, y);
    return {
      y, backward: (gy) => {
        const g = Tensor.empty(gy.backend, x.shape, { dtype: 'float32', category: 'temporary' });
        gy.backend.transpose(gy, g);
        return [g];
      },
    };
  },
});
/** The last two dimensions swapped (a contiguous copy). */
export const transpose = (x: Variable): Variable => apply(TRANSPOSE, [x]);

// ---- pieces along the first dimension ----------------------------------------------------------

function checkRows(op: string, n: number, start: unknown, end: unknown): void {
  if (!(Number.isInteger(start) && Number.isInteger(end) && (start as number) >= 0 && (start as number) <= (end as number) && (end as number) <= n)) {
    throw new InvalidArgumentError(`${op}: rows [${describeValue(start)}, ${describeValue(end)}) are not a range inside the first dimension of size ${n}`);
  }
}

const NARROW = defineOp({
  name: 'narrow', views: true, outputDtype: ([x]) => x.data.dtype,
  forward: (_io, [x], start: number, end: number) => ({
    y: x.data.slice(start, end),
    // The rows' gradient in a zero gradient of x's shape: backward adds gy into its rows of the
    // sum it builds (rowsGradient), no zero tensor a piece.
    backward: (gy) => [rowsGradient(pass(gy), x.shape, start)],
  }),
});
/** Rows [start, end) of the first dimension, as a view (no copy): torch.narrow(x, 0, start, end - start). */
export function narrow(x: Variable, start: number, end: number): Variable {
  if (!(x instanceof Variable)) throw new InvalidArgumentError(`narrow: x must be a Variable, got ${describeValue(x)}`);
  if (x.data.rank < 1) throw new InvalidArgumentError('narrow: x must have at least one dimension');
  checkRows('narrow', x.shape[0], start, end);
  return apply(NARROW, [x], start, end);
}

/** Copies each of xs into its rows of y (rows `starts[i]` on), converting to y's dtype. */
function copyRows(y: Tensor, xs: readonly Tensor[], starts: readonly number[]): void {
  xs.forEach((x, i) => {
    const part = y.slice(starts[i], starts[i] + x.shape[0]);
    const src = x.dtype === y.dtype ? x : x.to(y.dtype);
    try { y.backend.copy(src, part); } finally { part.dispose(); if (src !== x) src.dispose(); }
  });
}

const CAT = defineOp({
  name: 'cat', outputDtype: sameDtypeOrFloat32,
  forward: (io, xs, ownGradients: boolean) => {
    const rows = xs.map((x) => x.shape[0]);
    const y = io.output(xs[0].data, [rows.reduce((a, b) => a + b, 0), ...xs[0].shape.slice(1)]);
    let at = 0;
    const starts = rows.map((r) => (at += r) - r);
    // A GPU kernel writes whole 32-bit words: pieces of a narrower dtype that start or end inside a
    // word are joined in float32 and cast (exactly: every code of y's dtype is a float32).
    const rowBits = (y.size / Math.max(y.shape[0], 1)) * dtypeBits(y.dtype);
    if (starts.every((s, i) => (s * rowBits) % 32 === 0 && (i === xs.length - 1 || (rows[i] * rowBits) % 32 === 0))) {
      copyRows(y, xs.map((x) => x.data), starts);
    } else {
      const wide = Tensor.empty(y.backend, y.shape, { dtype: 'float32', category: 'temporary', label: 'cat' });
      try {
        copyRows(wide, xs.map((x) => x.data), starts);
        y.backend.cast(wide, y);
      } finally {
        wide.dispose();
      }
    }
    // Each input's gradient is its rows of gy: views, no copy; with ownGradients, copies, so that gy
    // is freed now and each input's gradient when its own backward is done.
    return {
      y, backward: (gy, _s, needs) => xs.map((x, i) => {
        if (!needs[i]) return null;
        const rows = gy.slice(starts[i], starts[i] + x.shape[0]);
        if (!ownGradients) return rows;
        try {
          return withOutputs(() => {
            const g = Tensor.empty(gy.backend, rows.shape, { dtype: gy.dtype, category: 'temporary', label: 'grad' });
            gy.backend.copy(rows, g);
            return g;
          });
        } finally {
          rows.dispose();
        }
      }),
    };
  },
});
/**
 * The inputs joined along the first dimension (torch.cat(xs, 0)); every other dimension must agree.
 * ownGradients (memfit's; default false): backward gives each input a copy of its rows of the
 * gradient instead of a view, so the joined gradient is freed at once and each piece's as soon as
 * that input's backward is done (what a chunked checkpoint wants: its pieces run backward one by one).
 */
export function cat(xs: readonly Variable[], ownGradients = false): Variable {
  if (!Array.isArray(xs) || xs.length === 0 || !xs.every((x) => x instanceof Variable)) throw new InvalidArgumentError(`cat: xs must be a non-empty array of Variables, got ${describeValue(xs)}`);
  const rest = xs[0].shape.slice(1).join();
  for (const x of xs) {
    if (x.data.rank < 1 || x.shape.slice(1).join() !== rest) {
      throw new ShapeMismatchError(`cat: every input must have the shape [n, ${xs[0].shape.slice(1).join(', ')}] (all but the first dimension equal), got [${x.shape.join(', ')}]`);
    }
  }
  if (typeof ownGradients !== 'boolean') throw new InvalidArgumentError(`cat: ownGradients must be a boolean, got ${describeValue(ownGradients)}`);
  return apply(CAT, xs, ownGradients);
}

// ---- reductions ---------------------------------------------------------------------------------

export interface ReduceOptions {
  /** Keep the reduced axis as a dimension of size 1. */
  keepDim?: boolean;
}

/** sum/mean options: keepDim (PyTorch's keepdim, in camelCase) a boolean, nothing else. */
function checkReduceOptions(options: ReduceOptions | undefined, fn: string): ReduceOptions {
  if (options !== null && typeof options === 'object' && Object.hasOwn(options, 'keepdim')) {
    throw new InvalidArgumentError(`${fn}: unknown option "keepdim"; memfit spells PyTorch's keepdim keepDim (camelCase)`);
  }
  const o = checkOptions(options, ['keepDim'], fn);
  if (o.keepDim !== undefined && typeof o.keepDim !== 'boolean') throw new InvalidArgumentError(`${fn}: keepDim must be a boolean, got ${describeValue(o.keepDim)}`);
  return o;
}

const reduceOp = (name: 'sum' | 'mean') => defineOp({
  // The input's dtype, as PyTorch (summed in float32 and rounded once); autocast gives sum float32.
  name, outputDtype: sameDtypeOrFloat32,
  forward: (io, [x], axis: number | null, options: ReduceOptions) => {
    floating(x.data, name);
    const ax = axis === null ? null : normAxis(axis, x.data.rank);
    const outShape = ax === null ? [] : x.shape.filter((_, i) => i !== ax);
    const y0 = io.output(x.data, outShape);
    x.backend.reduce(name, x.data, y0, ax);
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
    return {
      y, backward: (gy) => {
        const keep = ax === null ? gy.reshape(shape.map(() => 1)) : gy.reshape([...shape.slice(0, ax), 1, ...shape.slice(ax + 1)]);
        const s = name === 'mean' ? kUnary('scale', keep, 'temporary', 1 / n) : pass(keep);
        keep.dispose();
        const g = expand(s, shape);
        s.dispose();
        return [g];
      },
    };
  },
});
const SUM = reduceOp('sum');
const MEAN = reduceOp('mean');

/** Sum over `axis`, or over everything (shape []) when axis is null. */
export function sum(x: Variable, axis: number | null = null, options: ReduceOptions = {}): Variable {
  return apply(SUM, [x], axis, checkReduceOptions(options, 'sum'));
}

/** Mean over `axis`, or over everything (shape []) when axis is null. */
export function mean(x: Variable, axis: number | null = null, options: ReduceOptions = {}): Variable {
  return apply(MEAN, [x], axis, checkReduceOptions(options, 'mean'));
}

// ---- softmax ----------------------------------------------------------------------------------

const SOFTMAX = defineOp({
  name: 'softmax',
  forward: (io, [x]) => {
    floating(x.data, 'softmax');
    if (x.data.rank === 0) throw new InvalidArgumentError('softmax needs a tensor of rank >= 1');
    const y = io.output(x.data, x.shape);
    x.backend.softmax(x.data, y, false);
    return {
      y, save: () => [y], backward: (gy, [sy]) => { // dx = y (gy - sum(gy y))
        const gyy = kBinary('mul', gy, sy!, 'temporary');
        const s = kSumKeep(gyy, gy.rank - 1);
        gyy.dispose();
        const d = kBinary('sub', gy, s, 'temporary');
        s.dispose();
        const g = kBinary('mul', d, sy!, 'temporary');
        d.dispose();
        return [g];
      },
    };
  },
});
const LOG_SOFTMAX = defineOp({
  name: 'log_softmax',
  forward: (io, [x]) => {
    floating(x.data, 'log_softmax');
    if (x.data.rank === 0) throw new InvalidArgumentError('logSoftmax needs a tensor of rank >= 1');
    const y = io.output(x.data, x.shape);
    x.backend.softmax(x.data, y, true);
    return {
      y, save: () => [y], backward: (gy, [sy]) => { // dx = gy - exp(y) sum(gy)
        const s = kSumKeep(gy, gy.rank - 1);
        const p = kUnary('exp', sy!, 'temporary');
        const t = kBinary('mul', p, s, 'temporary');
        p.dispose(); s.dispose();
        const g = kBinary('sub', gy, t, 'temporary');
        t.dispose();
        return [g];
      },
    };
  },
});
/** Softmax over the last axis. */
export const softmax = (x: Variable): Variable => apply(SOFTMAX, [x]);
/** log(softmax(x)) over the last axis. */
export const logSoftmax = (x: Variable): Variable => apply(LOG_SOFTMAX, [x]);

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

const MATMUL = defineOp({
  name: 'matmul',
  forward: (io, [a, b], options: Pick<MatmulOptions, 'transA' | 'transB'>) => {
    floating(a.data, 'matmul'); floating(b.data, 'matmul');
    sameBackend(a.data, b.data);
    const transA = options.transA ?? false, transB = options.transB ?? false;
    const { batch, m, k, n } = matmulShape(a.data, b.data, { transA, transB });
    const be = a.backend;
    const y = io.output(a.data, [...batch, m, n]);
    be.matmul(a.data, b.data, y, { transA, transB });
    return {
      y, save: (needs) => [needs[1] ? a.data : null, needs[0] ? b.data : null], slots: ['input0', 'input1'],
      backward: (gy, [sa, sb], needs) => {
        let ga: Tensor | null = null, gb: Tensor | null = null;
        if (needs[0]) { // dA = dY @ op(B)^T, or its transpose when A was used transposed
          ga = Tensor.empty(be, [...batch, ...(transA ? [k, m] : [m, k])], { dtype: 'float32', category: 'temporary' });
          if (transA) be.matmul(sb!, gy, ga, { transA: transB, transB: true });
          else be.matmul(gy, sb!, ga, { transB: !transB });
          ga = reduceBatch(ga, a.shape);
        }
        if (needs[1]) { // dB = op(A)^T @ dY, or its transpose when B was used transposed
          gb = Tensor.empty(be, [...batch, ...(transB ? [n, k] : [k, n])], { dtype: 'float32', category: 'temporary' });
          if (transB) be.matmul(gy, sa!, gb, { transA: true, transB: transA });
          else be.matmul(sa!, gy, gb, { transA: !transA });
          gb = reduceBatch(gb, b.shape);
        }
        return [ga, gb];
      },
    };
  },
});

/**
 * a [..., M, K] @ b [..., K, N] (either side may be transposed with transA/transB; batch dims equal,
 * or one side without batch dims: it is broadcast and its gradient summed over the batch).
 */
export function matmul(a: Variable, b: Variable, options: Pick<MatmulOptions, 'transA' | 'transB'> = {}): Variable {
  const o = checkOptions(options, ['transA', 'transB'], 'matmul');
  if ((o.transA !== undefined && typeof o.transA !== 'boolean') || (o.transB !== undefined && typeof o.transB !== 'boolean')) {
    throw new InvalidArgumentError(`matmul: transA and transB must be booleans, got ${describeValue(o.transA)} and ${describeValue(o.transB)}`);
  }
  return apply(MATMUL, [a, b], o);
}

const CAST = defineOp({
  name: 'to', bypassPolicy: true, // what policies insert: they never see it
  forward: (io, [x], dtype: TensorDType, category?: Category) => {
    floating(x.data, 'cast');
    const y = Tensor.empty(x.backend, x.shape, { dtype, category: category ?? io.category });
    x.backend.cast(x.data, y);
    return { y, backward: (gy) => [pass(gy)] };
  },
});

/**
 * x converted to `dtype` (rounded once, nearest-even; bit-identical to Tensor.to). Differentiable:
 * the gradient passes through unchanged (in float32), as torch's .to(dtype) does up to rounding.
 * What an autocast policy inserts before an op.
 */
export function cast(x: Variable, dtype: DTypeName, options: { category?: Category } = {}): Variable {
  if ((dtype as string) === 'int32') throw new InvalidArgumentError('cast: a differentiable cast needs a float dtype, got int32');
  return apply(CAST, [x], canonicalDType(dtype), options.category);
}

/** A Variable that never needs a gradient, around `t` (a new reference to its storage). */
export function constant(t: Tensor): Variable {
  checkTensor(t, 'constant');
  checkTensor(t, 'constant');
  return new Variable(t.reshape(t.shape), { requiresGrad: false });
}

export { scalar };
