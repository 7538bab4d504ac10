// clipGradNorm and clipGradValue on the wasm backend against float64: the returned norm, the
// scaled gradients, the no-clip case, the infinity and 1-norms, skipped parameters, memory and
// the absence of readbacks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Variable } from '../../src/autograd/variable.js';
import { InvalidArgumentError } from '../../src/index.js';
import { clipGradNorm, clipGradValue } from '../../src/optim/index.js';
import { rand } from '../helpers/values.js';

const w = new WasmBackend();

function withGrads(grads: (Float32Array | null)[]): Variable[] {
  return grads.map((g, k) => {
    const v = new Variable(Tensor.from(w, new Float32Array(g?.length ?? 3), [g?.length ?? 3], { category: 'parameter' }), { requiresGrad: true });
    if (g) v.grad = Tensor.from(w, g, [g.length], { category: 'gradient', label: `g${k}` });
    return v;
  });
}

function free(ps: Variable[]): void {
  for (const p of ps) p.dispose();
}

function norm(gs: Float32Array[], p: number): number {
  if (p === Infinity) return Math.max(...gs.flatMap((g) => Array.from(g, Math.abs)));
  let s = 0;
  for (const g of gs) for (const x of g) s += Math.abs(x) ** p;
  return s ** (1 / p);
}

async function close(got: ArrayLike<number>, want: ArrayLike<number>, rel: number, label: string): Promise<void> {
  let big = 0;
  for (let i = 0; i < want.length; i++) big = Math.max(big, Math.abs(want[i]));
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= rel * big, `${label}[${i}]: ${got[i]} vs ${want[i]}`);
}

test('clipGradNorm (2-norm): returns the total norm, scales every grad by maxNorm / (norm + 1e-6); no readback, temporaries freed', async () => {
  const gs = [rand(300, 1, 2), rand(7, 2, 5), rand(1000, 3, 0.1)];
  const ps = withGrads([gs[0], null, gs[1], gs[2]]);
  const total = norm(gs, 2);
  const read = w.read;
  w.read = () => { throw new Error('clipGradNorm read back'); };
  let n: Tensor;
  try {
    n = clipGradNorm(ps, 1.5);
  } finally {
    w.read = read;
  }
  assert.equal(n.shape, []);
  assert.is(n.dtype, 'float32');
  assert.is(w.memory.memoryAllocated('temporary'), 4, 'only the returned norm is left');
  const got = (await n.toArray())[0];
  assert.ok(Math.abs(got - total) <= 1e-6 * total, `norm ${got} vs ${total}`);
  const coef = 1.5 / (total + 1e-6);
  const withGrad = [ps[0], ps[2], ps[3]];
  for (let k = 0; k < 3; k++) await close(await withGrad[k].grad!.toArray(), Array.from(gs[k], (x) => x * coef), 2e-6, `grad ${k}`);
  assert.is(ps[1].grad, null, 'a parameter without grad is skipped');
  // after clipping, the norm is maxNorm
  const again = clipGradNorm(ps, 1e9);
  assert.ok(Math.abs((await again.toArray())[0] - 1.5) <= 1e-5);
  n.dispose();
  again.dispose();
  assert.is(w.memory.memoryAllocated('temporary'), 0);
  free(ps);
});

test('clipGradNorm: no clipping when the norm is below maxNorm (grads unchanged, bit for bit)', async () => {
  const gs = [rand(50, 4), rand(9, 5)];
  const ps = withGrads(gs);
  const n = clipGradNorm(ps, 100);
  assert.ok(Math.abs((await n.toArray())[0] - norm(gs, 2)) <= 1e-6 * norm(gs, 2));
  for (let k = 0; k < 2; k++) assert.equal(Array.from(await ps[k].grad!.toArray()), Array.from(gs[k]));
  n.dispose();
  free(ps);
});

test('clipGradNorm with normType Infinity (largest |g|) and 1 (sum of |g|)', async () => {
  for (const p of [Infinity, 1, 3]) {
    const gs = [rand(40, 6, 3), rand(11, 7, 0.5)];
    gs[1][4] = -7; // the largest magnitude, negative
    const ps = withGrads(gs);
    const total = norm(gs, p);
    const n = clipGradNorm(ps, 0.5, p);
    const got = (await n.toArray())[0];
    assert.ok(Math.abs(got - total) <= 1e-5 * total, `p=${p}: ${got} vs ${total}`);
    const coef = 0.5 / (total + 1e-6);
    for (let k = 0; k < 2; k++) await close(await ps[k].grad!.toArray(), Array.from(gs[k], (x) => x * coef), 1e-5, `p=${p} grad ${k}`);
    n.dispose();
    free(ps);
  }
});

test('clipGradNorm: no grads gives a zero norm; bad arguments are errors', async () => {
  const ps = withGrads([null]);
  const n = clipGradNorm(ps, 1);
  assert.equal(Array.from(await n.toArray()), [0]);
  n.dispose();
  assert.throws(() => clipGradNorm([], 1), (e: Error) => e instanceof InvalidArgumentError && /no parameters/.test(e.message));
  assert.throws(() => clipGradNorm(ps, -1), /maxNorm must be a number >= 0/);
  assert.throws(() => clipGradNorm(ps, NaN), /maxNorm/);
  assert.throws(() => clipGradNorm(ps, 1, 0), /normType must be a number > 0 or Infinity/);
  assert.throws(() => clipGradNorm(ps, 1, -Infinity), /normType/);
  free(ps);
});

test('clipGradNorm: a NaN gradient gives a NaN norm (and NaN grads), as PyTorch', async () => {
  const g = rand(10, 8);
  g[3] = NaN;
  const ps = withGrads([g]);
  const n = clipGradNorm(ps, 1);
  assert.ok(Number.isNaN((await n.toArray())[0]));
  n.dispose();
  free(ps);
});

test('clipGradValue clamps each element to [-v, v] in place', async () => {
  const gs = [rand(30, 9, 3), rand(5, 10, 0.2)];
  const ps = withGrads([gs[0], null, gs[1]]);
  clipGradValue(ps, 0.75);
  for (const [k, i] of [[0, 0], [1, 2]]) {
    assert.equal(Array.from(await ps[i].grad!.toArray()), Array.from(gs[k], (x) => Math.min(0.75, Math.max(-0.75, x))));
  }
  assert.is(w.memory.memoryAllocated('temporary'), 0);
  assert.throws(() => clipGradValue(ps, -1), /clipValue must be a number >= 0/);
  free(ps);
});

test.run();
