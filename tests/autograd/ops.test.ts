// Every differentiable op's backward against central finite differences of a float64 reference
// (wasm backend), plus the ops' shape errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { gpuBackend } from '../helpers/backends.js';
import {
  Variable, div, neg, addScalar, exp, log, square, sqrt, relu, gelu, silu, sigmoid, tanh, reshape, transpose, sum, mean,
  softmax, logSoftmax, matmul, cast, withOpPolicy, tidy, mul, narrow, cat, pow,
} from '../../src/autograd/index.js';
import { gradcheck, weighted, weightedSum, refMatmul, numel, randValues, type GradCase } from '../helpers/gradcheck.js';

const w = new WasmBackend();

/** erf by its Taylor series (|x| <= 3 here: 60 terms are exact to float64 rounding). */
function erf(x: number): number {
  let term = x, s = x;
  for (let n = 1; n < 60; n++) {
    term *= (-x * x) / n;
    s += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * s;
}

const unaryCases: [string, (x: Variable) => Variable, (v: number) => number, boolean?][] = [
  ['neg', neg, (v) => -v],
  ['addScalar', (x) => addScalar(x, 2.5), (v) => v + 2.5],
  ['exp', exp, Math.exp],
  ['log', log, Math.log, true],
  ['sqrt', sqrt, Math.sqrt, true],
  ['square', square, (v) => v * v],
  ['pow 3 (a number)', (x) => pow(x, 3), (v) => v ** 3],
  ['pow -1.5 (a number)', (x) => pow(x, -1.5), (v) => v ** -1.5, true],
  ['relu', relu, (v) => Math.max(v, 0)],
  ['gelu', gelu, (v) => 0.5 * v * (1 + erf(v / Math.SQRT2))],
  ['silu', silu, (v) => v / (1 + Math.exp(-v))],
  ['sigmoid', sigmoid, (v) => 1 / (1 + Math.exp(-v))],
  ['tanh', tanh, Math.tanh],
];

for (const [name, f, r, positive] of unaryCases) {
  test(`gradcheck ${name}`, async () => {
    const shape = [3, 5];
    const x = randValues(15, 7).map((v) => (positive ? 0.2 + Math.abs(v) : v * 2));
    await gradcheck(w, name, {
      shapes: [shape], values: [x],
      run: ([a]) => weighted(f(a)),
      ref: ([a]) => weightedSum(a.map(r)),
    });
  });
}

const cases: Record<string, GradCase> = {
  'pow with broadcasting [3,4] ** [4] (both gradients)': {
    shapes: [[3, 4], [4]],
    values: [randValues(12, 3).map((v) => 0.5 + Math.abs(v)), randValues(4, 4).map((v) => v * 2)],
    run: ([a, b]) => weighted(pow(a, b)),
    ref: ([a, b]) => weightedSum(a.map((v, i) => v ** b[i % 4])),
  },
  'div with broadcasting [3,4] / [4]': {
    shapes: [[3, 4], [4]],
    values: [randValues(12, 1), randValues(4, 2).map((v) => 1.5 + v * 0.5)],
    run: ([a, b]) => weighted(div(a, b)),
    ref: ([a, b]) => weightedSum(a.map((v, i) => v / b[i % 4])),
  },
  'reshape then transpose [4,6] -> [2,3,4] -> [2,4,3]': {
    shapes: [[4, 6]],
    run: ([a]) => weighted(transpose(reshape(a, [2, 3, 4]))),
    ref: ([a]) => {
      const y = new Float64Array(24);
      for (let p = 0; p < 2; p++) for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) y[p * 12 + j * 3 + i] = a[p * 12 + i * 4 + j];
      return weightedSum(y);
    },
  },
  'sum over axis 1 with keepDim, times x': {
    shapes: [[2, 3, 4]],
    run: ([a]) => weighted(reshape(sum(a, 1, { keepDim: true }), [2, 4])),
    ref: ([a]) => {
      const y = new Float64Array(8);
      for (let p = 0; p < 2; p++) for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) y[p * 4 + j] += a[p * 12 + i * 4 + j];
      return weightedSum(y);
    },
  },
  'mean over axis -1': {
    shapes: [[3, 5]],
    run: ([a]) => weighted(mean(a, -1)),
    ref: ([a]) => weightedSum([0, 1, 2].map((i) => a.slice(i * 5, i * 5 + 5).reduce((p, v) => p + v, 0) / 5)),
  },
  'sum over everything with keepDim': {
    shapes: [[2, 3]],
    run: ([a]) => weighted(sum(a, null, { keepDim: true })),
    ref: ([a]) => weightedSum([a.reduce((p, v) => p + v, 0)]),
  },
  'mean over axis 0 with keepDim, broadcast back against x': {
    shapes: [[3, 4]],
    run: ([a]) => weighted(mul(mean(a, 0, { keepDim: true }), a)),
    ref: ([a]) => {
      const m = [0, 1, 2, 3].map((j) => (a[j] + a[4 + j] + a[8 + j]) / 3);
      return weightedSum(a.map((v, i) => m[i % 4] * v));
    },
  },
  'narrow rows 1..3 of [4,3]': {
    shapes: [[4, 3]],
    run: ([a]) => weighted(narrow(a, 1, 3)),
    ref: ([a]) => weightedSum(a.slice(3, 9)),
  },
  'cat of rows 2..4 and 0..1 of [4,3], times rows 1..4 (pieces joined along dimension 0)': {
    shapes: [[4, 3]],
    run: ([a]) => weighted(mul(cat([narrow(a, 2, 4), narrow(a, 0, 1)]), narrow(a, 1, 4))),
    ref: ([a]) => {
      const row = (r: number) => [...a.slice(r * 3, r * 3 + 3)];
      return weightedSum([2, 3, 0].flatMap((r, i) => row(r).map((v, j) => v * row(1 + i)[j])));
    },
  },
  softmax: {
    shapes: [[3, 5]],
    run: ([a]) => weighted(softmax(a)),
    ref: ([a]) => weightedSum(softmaxRef(a, 5, false)),
  },
  logSoftmax: {
    shapes: [[3, 5]],
    run: ([a]) => weighted(logSoftmax(a)),
    ref: ([a]) => weightedSum(softmaxRef(a, 5, true)),
  },
};

function softmaxRef(a: Float64Array, c: number, logOut: boolean): Float64Array {
  const y = new Float64Array(a.length);
  for (let r = 0; r < a.length / c; r++) {
    const row = a.slice(r * c, r * c + c);
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((p, v) => p + Math.exp(v - m), 0));
    row.forEach((v, j) => { y[r * c + j] = logOut ? v - lse : Math.exp(v - lse); });
  }
  return y;
}

const mm: [number[], number[], boolean, boolean][] = [
  [[3, 4], [4, 5], false, false],
  [[4, 3], [4, 5], true, false],
  [[3, 4], [5, 4], false, true],
  [[4, 3], [5, 4], true, true],
  [[2, 3, 4], [2, 4, 5], false, false],
  [[2, 3, 4], [2, 5, 4], false, true],
  [[2, 3, 4], [4, 5], false, false],
  [[3, 4], [2, 4, 5], false, false],
  [[2, 4, 3], [5, 4], true, true],
  [[1, 1, 3, 4], [4, 5], false, false],
  [[3, 4], [1, 4, 5], false, false],
];
for (const [sa, sb, tA, tB] of mm) {
  cases[`matmul [${sa}]${tA ? '^T' : ''} @ [${sb}]${tB ? '^T' : ''}`] = {
    shapes: [sa, sb],
    run: ([a, b]) => weighted(matmul(a, b, { transA: tA, transB: tB })),
    ref: ([a, b]) => weightedSum(refMatmul(a, sa, b, sb, tA, tB).data),
  };
}

for (const [name, c] of Object.entries(cases)) test(`gradcheck ${name}`, () => gradcheck(w, name, c));

test('cast passes the gradient straight through (float32), rounding only the forward', async () => {
  const x = Variable.from(w, [1.001, -2.5, 3.3], [3], { requiresGrad: true });
  const y = cast(x, 'bfloat16');
  assert.equal(Array.from(await y.data.toArray()), [1, -2.5, 3.296875]);
  const l = tidy(() => weighted(y));
  l.backward();
  assert.equal(Array.from(await x.grad!.toArray()), Array.from(Float32Array.from(randValues(3, 99))));
  l.dispose(); y.dispose(); x.dispose();
});

test('matmul keeps size-1 batch dims as PyTorch does', () => {
  const a = Variable.from(w, new Float32Array(12), [1, 1, 3, 4]);
  const b = Variable.from(w, new Float32Array(20), [4, 5]);
  const y = matmul(a, b);
  assert.equal(y.shape, [1, 1, 3, 5]);
  y.dispose(); a.dispose(); b.dispose();
});

test('shape errors name the shapes', () => {
  const a = Variable.from(w, new Float32Array(12), [3, 4], { requiresGrad: true });
  const b = Variable.from(w, new Float32Array(10), [2, 5], { requiresGrad: true });
  assert.throws(() => matmul(a, b), /inner dimensions differ: \[3, 4\] @ \[2, 5\]/);
  assert.throws(() => reshape(a, [5, 3]), /cannot reshape \[3, 4\]/);
  assert.throws(() => transpose(reshape(a, [12])), /rank >= 2/);
  assert.throws(() => sum(a, 2), /axis/);
  a.dispose(); b.dispose();
  assert.is(numel([2, 3]), 6);
});

test('a bfloat16 leaf gets a float32 gradient', async () => {
  const x = Variable.from(w, [1, 2, 3], [3], { requiresGrad: true });
  const xb = new Variable(x.data.to('bfloat16'), { requiresGrad: true });
  const l = sum(square(xb));
  l.backward();
  assert.is(xb.grad!.dtype, 'float32');
  assert.equal(Array.from(await xb.grad!.toArray()), [2, 4, 6]);
  l.dispose(); xb.dispose(); x.dispose();
});

test('sum and mean keep a low-precision input\'s dtype (as PyTorch), summed in float32 and rounded once (wasm and WebGPU)', async () => {
  // 256 + 1 + 1 + 1 + 1 = 260 in float32; bfloat16 rounds 260 to 260 (exact), where adding in
  // bfloat16 would stay at 256. The mean, 52, is exact too. Several outputs: packed two a word.
  for (const be of [w, await gpuBackend()]) {
    const x = new Variable(Tensor.from(be, [256, 1, 1, 1, 1, 2, 2, 2, 2, 2], [2, 5], { dtype: 'bfloat16' }), { requiresGrad: true });
    const s = sum(x), m = mean(x), m1 = mean(x, 1), s1 = sum(x, 1, { keepDim: true }), s0 = sum(x, 0);
    for (const y of [s, m, m1, s1, s0]) assert.is(y.data.dtype, 'bfloat16');
    assert.equal([...await s.data.toArray()], [270], be.kind);
    assert.equal([...await m.data.toArray()], [27], be.kind);
    assert.equal([...await m1.data.toArray()], [52, 2], be.kind);
    assert.equal([...await s1.data.toArray()], [260, 10], be.kind);
    assert.equal([...await s0.data.toArray()], [258, 3, 3, 3, 3], be.kind);
    m.backward();
    assert.is(x.grad!.dtype, 'float32');
    assert.equal([...await x.grad!.toArray()], Array(10).fill(0.1).map(Math.fround));
    for (const t of [s, m, m1, s1, s0]) { t.releaseGraph(); t.dispose(); }
    x.dispose();
    if (be !== w) be.destroy();
  }
});

test('op policy (the autocast hook): casting matmul inputs to bfloat16 equals casting by hand, gradients reach the float32 leaves', async () => {
  const run = async (viaPolicy: boolean) => {
    const a = Variable.from(w, Float32Array.from(randValues(12, 3)), [3, 4], { requiresGrad: true });
    const b = Variable.from(w, Float32Array.from(randValues(20, 4)), [4, 5], { requiresGrad: true });
    const seen: string[] = [];
    const loss = tidy(() => viaPolicy
      ? withOpPolicy((op, xs) => { seen.push(op); return op === 'matmul' ? xs.map((x) => cast(x, 'bfloat16')) : xs; }, () => weighted(matmul(a, b)))
      : weighted(matmul(cast(a, 'bfloat16'), cast(b, 'bfloat16'))));
    loss.backward();
    const r = { loss: await loss.data.toArray(), ga: await a.grad!.toArray(), gb: await b.grad!.toArray(), seen };
    loss.dispose(); a.dispose(); b.dispose();
    return r;
  };
  const p = await run(true), m = await run(false);
  assert.ok(p.seen.includes('matmul') && p.seen.includes('mul') && p.seen.includes('sum'), p.seen.join());
  assert.equal(p.loss, m.loss);
  assert.equal(p.ga, m.ga);
  assert.equal(p.gb, m.gb);
  const plain = Variable.from(w, Float32Array.from(randValues(12, 3)), [3, 4]);
  const c = cast(plain, 'bf16');
  assert.is(c.data.dtype, 'bfloat16');
  assert.throws(() => cast(plain, 'int32' as never), /float dtype/);
  c.dispose(); plain.dispose();
});

test.run();
