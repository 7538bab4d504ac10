// Gradient checks: autograd gradients on a backend against central finite differences of an
// independent float64 reference of the same function.
import * as assert from 'uvu/assert';
import type { Backend } from '../../src/backend/backend.js';
import { Variable, tidy } from '../../src/autograd/index.js';
import { randValues } from './values.js';

export { randValues };

export const numel = (s: readonly number[]): number => s.reduce((p, d) => p * d, 1);

export interface GradCase {
  /** Shapes of the differentiable inputs. */
  shapes: number[][];
  /** The scalar loss with autograd ops. */
  run(xs: Variable[]): Variable;
  /** The same loss in float64. */
  ref(xs: Float64Array[]): number;
  /** Input values (default: randValues), e.g. positive values for log. */
  values?: Float64Array[];
  /** Relative tolerance of gradients (default 1e-3). */
  tol?: number;
}

/** Runs the case on backend `b` and asserts loss and every gradient element against the reference. */
export async function gradcheck(b: Backend, name: string, c: GradCase): Promise<void> {
  const values = c.values ?? c.shapes.map((s, i) => randValues(numel(s), 1000 + 77 * i + name.length));
  const xs = c.shapes.map((s, i) => Variable.from(b, Float32Array.from(values[i]), s, { requiresGrad: true, category: 'parameter' }));
  const loss = tidy(() => c.run(xs));
  const got = (await loss.data.toArray())[0];
  loss.backward();
  const grads: Float32Array[] = [];
  for (const x of xs) grads.push(x.grad ? ((await x.grad.toArray()) as Float32Array) : new Float32Array(x.data.size));
  loss.dispose();
  for (const x of xs) x.dispose();
  const want = c.ref(values);
  assert.ok(Math.abs(got - want) <= 1e-4 * (1 + Math.abs(want)), `${name}: loss ${got} vs float64 ${want}`);
  const h = 1e-6, tol = c.tol ?? 1e-3;
  values.forEach((v, i) => {
    for (let j = 0; j < v.length; j++) {
      const plus = values.map((x) => x.slice()), minus = values.map((x) => x.slice());
      plus[i][j] += h;
      minus[i][j] -= h;
      const fd = (c.ref(plus) - c.ref(minus)) / (2 * h);
      assert.ok(Math.abs(grads[i][j] - fd) <= tol * (1 + Math.abs(fd)), `${name}: d/dx${i}[${j}] autograd ${grads[i][j]} vs finite difference ${fd}`);
    }
  });
}

/** sum(y * w) for fixed pseudo-random weights w: a scalar whose gradient is non-uniform. */
export function weightedSum(y: ArrayLike<number>, seed = 99): number {
  const w = randValues(y.length, seed);
  let s = 0;
  for (let i = 0; i < y.length; i++) s += y[i] * w[i];
  return s;
}

import { Tensor } from '../../src/tensor/tensor.js';
import { mul, sum } from '../../src/autograd/index.js';

/** The autograd twin of weightedSum: sum(y * w). */
export function weighted(y: Variable, seed = 99): Variable {
  const w = new Variable(Tensor.from(y.backend, Float32Array.from(randValues(y.data.size, seed)), y.shape, { category: 'data' }));
  const l = sum(mul(y, w));
  w.dispose();
  return l;
}

/** Float64 matmul of row-major a [..., M, K] @ b [..., K, N] (transposes and one-sided batch broadcast). */
export function refMatmul(
  a: ArrayLike<number>, sa: readonly number[], b: ArrayLike<number>, sb: readonly number[], transA = false, transB = false,
): { data: Float64Array; shape: number[] } {
  const ra = sa.length, rb = sb.length;
  const [m, k] = transA ? [sa[ra - 1], sa[ra - 2]] : [sa[ra - 2], sa[ra - 1]];
  const n = transB ? sb[rb - 2] : sb[rb - 1];
  const ba = sa.slice(0, -2), bb = sb.slice(0, -2);
  const batchShape = numel(ba) !== 1 ? ba : bb;
  const nb = numel(batchShape);
  const out = new Float64Array(nb * m * n);
  for (let p = 0; p < nb; p++) {
    const oa = numel(ba) === 1 ? 0 : p * m * k, ob = numel(bb) === 1 ? 0 : p * k * n;
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
      let s = 0;
      for (let q = 0; q < k; q++) {
        const av = transA ? a[oa + q * m + i] : a[oa + i * k + q];
        const bv = transB ? b[ob + j * k + q] : b[ob + q * n + j];
        s += av * bv;
      }
      out[p * m * n + i * n + j] = s;
    }
  }
  return { data: out, shape: [...batchShape, m, n] };
}
