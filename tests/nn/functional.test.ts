// nn.functional ops: forward and backward against float64 references (wasm), WebGPU against wasm.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import type { Backend } from '../../src/backend/backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Variable, noGrad, savedTensorStats, tidy, logSoftmax } from '../../src/autograd/index.js';
import { autocast } from '../../src/amp/autocast.js';
import { linear, embedding, rmsNorm, layerNorm, scaledDotProductAttention, crossEntropy, dropout } from '../../src/nn/functional.js';
import { Generator } from '../../src/random.js';
import { gradcheck, weighted, weightedSum, refMatmul, randValues, numel, type GradCase } from '../helpers/gradcheck.js';
import { gpuBackend } from '../helpers/backends.js';

const w = new WasmBackend();

function normRef(x: Float64Array, c: number, f: (row: Float64Array) => Float64Array): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / c; r++) y.set(f(x.slice(r * c, r * c + c)), r * c);
  return y;
}

/** Causal attention with key padding, [B, H, T, D], in float64. */
function attnRef(q: Float64Array, k: Float64Array, v: Float64Array, [B, H, T, D]: number[], mask: number[] | null, scale?: number, causal = true): Float64Array {
  const out = new Float64Array(q.length);
  const sc = scale ?? 1 / Math.sqrt(D);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let t = 0; t < T; t++) {
    const base = (b * H + h) * T * D;
    const keys: number[] = [];
    for (let j = 0; j < (causal ? t + 1 : T); j++) if (!mask || mask[b * T + j] !== 0) keys.push(j);
    const s = keys.map((j) => {
      let d = 0;
      for (let e = 0; e < D; e++) d += q[base + t * D + e] * k[base + j * D + e];
      return d * sc;
    });
    const m = Math.max(...s);
    const z = s.reduce((p, x) => p + Math.exp(x - m), 0);
    keys.forEach((j, i) => {
      const p = Math.exp(s[i] - m) / z;
      for (let e = 0; e < D; e++) out[base + t * D + e] += p * v[base + j * D + e];
    });
  }
  return out;
}

const ids = [2, 0, 5, 2, 1, 2];
const targets = [0, 3, -100, 5, 2];
const mask = [1, 1, 0, 1, 1, 1, 1, 0];

function cases(b: Backend): Record<string, GradCase> {
  return {
    'linear [2,3,4] x [5,4] + [5]': {
      shapes: [[2, 3, 4], [5, 4], [5]],
      run: ([x, wt, bias]) => weighted(linear(x, wt, bias)),
      ref: ([x, wt, bias]) => weightedSum(refMatmul(x, [6, 4], wt, [5, 4], false, true).data.map((v, i) => v + bias[i % 5])),
    },
    embedding: {
      shapes: [[6, 4]],
      run: ([t]) => {
        const i = Tensor.from(b, Int32Array.from(ids), [2, 3], { dtype: 'int32' });
        const y = embedding(i, t);
        i.dispose();
        return weighted(y);
      },
      ref: ([t]) => weightedSum(ids.flatMap((id) => Array.from(t.slice(id * 4, id * 4 + 4)))),
    },
    rmsNorm: {
      shapes: [[3, 8], [8]],
      run: ([x, g]) => weighted(rmsNorm(x, g, 1e-5)),
      ref: ([x, g]) => weightedSum(normRef(x, 8, (r) => {
        const rs = 1 / Math.sqrt(r.reduce((p, v) => p + v * v, 0) / 8 + 1e-5);
        return r.map((v, j) => v * rs * g[j]);
      })),
    },
    layerNorm: {
      shapes: [[3, 8], [8], [8]],
      run: ([x, g, bb]) => weighted(layerNorm(x, g, bb, 1e-5)),
      ref: ([x, g, bb]) => weightedSum(normRef(x, 8, (r) => {
        const mu = r.reduce((p, v) => p + v, 0) / 8;
        const rs = 1 / Math.sqrt(r.reduce((p, v) => p + (v - mu) ** 2, 0) / 8 + 1e-5);
        return r.map((v, j) => (v - mu) * rs * g[j] + bb[j]);
      })),
    },
    'causal attention with a key padding mask [2,2,4,3]': {
      shapes: [[2, 2, 4, 3], [2, 2, 4, 3], [2, 2, 4, 3]],
      run: ([q, k, v]) => {
        const m = Tensor.from(b, mask, [2, 4]);
        const y = scaledDotProductAttention(q, k, v, { isCausal: true, mask: m });
        m.dispose();
        return weighted(y);
      },
      ref: ([q, k, v]) => weightedSum(attnRef(q, k, v, [2, 2, 4, 3], mask)),
    },
    'bidirectional attention (isCausal false) with a key padding mask [2,2,4,3]': {
      shapes: [[2, 2, 4, 3], [2, 2, 4, 3], [2, 2, 4, 3]],
      run: ([q, k, v]) => {
        const m = Tensor.from(b, mask, [2, 4]);
        const y = scaledDotProductAttention(q, k, v, { isCausal: false, mask: m });
        m.dispose();
        return weighted(y);
      },
      ref: ([q, k, v]) => weightedSum(attnRef(q, k, v, [2, 2, 4, 3], mask, undefined, false)),
    },
    'attention with scale 0.3, no mask [1,1,5,4]': {
      shapes: [[1, 1, 5, 4], [1, 1, 5, 4], [1, 1, 5, 4]],
      run: ([q, k, v]) => weighted(scaledDotProductAttention(q, k, v, { isCausal: true, scale: 0.3 })),
      ref: ([q, k, v]) => weightedSum(attnRef(q, k, v, [1, 1, 5, 4], null, 0.3)),
    },
    'dropout backward (the same seeded mask in the reference)': {
      shapes: [[4, 5]],
      run: ([x]) => weighted(dropout(x, 0.3, true, new Generator(11))),
      ref: ([x]) => {
        const g = new Generator(11);
        return weightedSum(x.map((v) => (g.random() < 0.3 ? 0 : v / 0.7)));
      },
    },
    'cross-entropy with an ignored target': {
      shapes: [[5, 6]],
      run: ([x]) => {
        const t = Tensor.from(b, Int32Array.from(targets), [5], { dtype: 'int32' });
        const l = crossEntropy(x, t);
        t.dispose();
        return l;
      },
      ref: ([x]) => {
        let s = 0, n = 0;
        targets.forEach((t, r) => {
          if (t === -100) return;
          const row = x.slice(r * 6, r * 6 + 6);
          const m = Math.max(...row);
          s += m + Math.log(row.reduce((p, v) => p + Math.exp(v - m), 0)) - row[t];
          n++;
        });
        return s / n;
      },
    },
  };
}

for (const [name, c] of Object.entries(cases(w))) test(`gradcheck ${name}`, () => gradcheck(w, name, c));

const inputs = (b: Backend, c: GradCase, seed: number) =>
  c.shapes.map((s, i) => Variable.from(b, Float32Array.from(randValues(numel(s), seed + i)), s, { requiresGrad: true }));

test('saved tensors of every op are released by backward (no leak of rstd, lse, dlogits)', () => {
  const before = w.memory.memoryAllocated('activation');
  for (const [name, c] of Object.entries(cases(w))) {
    const xs = inputs(w, c, 3);
    const l = tidy(() => c.run(xs));
    l.backward();
    l.dispose();
    for (const x of xs) x.dispose();
    assert.equal(savedTensorStats(), { count: 0, bytes: 0 }, name);
    assert.is(w.memory.memoryAllocated('activation'), before, name);
    assert.is(w.memory.memoryAllocated('temporary'), 0, name);
  }
  const [x, g] = inputs(w, { shapes: [[3, 8], [8]], run: (v) => v[0], ref: () => 0 }, 1);
  const y = noGrad(() => rmsNorm(x, g, 1e-5));
  assert.is(w.memory.memoryAllocated('activation'), before, 'under noGrad nothing is an activation');
  assert.is(w.memory.memoryAllocated('temporary'), 3 * 8 * 4, 'only the output is kept (no rstd)');
  y.dispose(); x.dispose(); g.dispose();
});

test('tidy disposes op outputs made inside it except the returned ones; backward still works', async () => {
  const before = w.memory.memoryAllocated('activation');
  const x = Variable.from(w, [1, 2, 3, 4, 5, 6], [2, 3], { requiresGrad: true });
  const wt = Variable.from(w, [1, 0, -1, 2, 1, 0], [2, 3], { requiresGrad: true });
  const { loss, hidden } = tidy(() => {
    const h = linear(x, wt);
    const dropped = rmsNorm(h, Variable.from(w, [1, 1], [2]), 1e-5); // not returned: disposed
    return { loss: crossEntropy(dropped, Tensor.from(w, Int32Array.of(0, 1), [2], { dtype: 'int32' })), hidden: [h] };
  });
  assert.ok(!hidden[0].data.isDisposed && !loss.data.isDisposed);
  loss.backward();
  assert.ok(x.grad && wt.grad);
  loss.dispose(); hidden[0].dispose();
  assert.is(w.memory.memoryAllocated('activation'), before);
  x.dispose(); wt.dispose();
});

test('only some inputs need a gradient: the partial branches give the same gradients as the full ones', async () => {
  const xs = randValues(24, 1), ws = randValues(8, 2), bs = randValues(8, 3);
  const qkv = [4, 5, 6].map((s) => randValues(2 * 2 * 4 * 3, s));
  const grads = async (needs: boolean[], run: (v: Variable[]) => Variable, inputs: [Float64Array, number[]][]) => {
    const vs = inputs.map(([d, shape], i) => Variable.from(w, Float32Array.from(d), shape, { requiresGrad: needs[i] }));
    const l = tidy(() => run(vs));
    l.backward();
    const out = await Promise.all(vs.map(async (v) => (v.grad ? Array.from(await v.grad.toArray()) : null)));
    l.dispose(); vs.forEach((v) => v.dispose());
    return out;
  };
  const cases: [string, (v: Variable[]) => Variable, [Float64Array, number[]][]][] = [
    ['rmsNorm', ([x, g]) => weighted(rmsNorm(x, g, 1e-5)), [[xs, [3, 8]], [ws, [8]]]],
    ['layerNorm', ([x, g, b]) => weighted(layerNorm(x, g, b, 1e-5)), [[xs, [3, 8]], [ws, [8]], [bs, [8]]]],
    ['attention', ([q, k, v]) => weighted(scaledDotProductAttention(q, k, v, { isCausal: true })), qkv.map((d) => [d, [2, 2, 4, 3]] as [Float64Array, number[]])],
  ];
  for (const [name, run, inputs] of cases) {
    const all = await grads(inputs.map(() => true), run, inputs);
    for (let i = 0; i < inputs.length; i++) {
      const only = await grads(inputs.map((_, j) => j === i), run, inputs);
      assert.equal(only[i], all[i], `${name}: input ${i} alone`);
      assert.ok(only.every((g, j) => j === i || g === null), `${name}: no gradient for the others`);
    }
  }
});

test('cross-entropy with every target ignored: NaN loss (0 / 0, as PyTorch) and a zero gradient', async () => {
  const x = Variable.from(w, Float32Array.from(randValues(6, 9)), [2, 3], { requiresGrad: true });
  const t = Tensor.from(w, Int32Array.of(-100, -100), [2], { dtype: 'int32' });
  const l = crossEntropy(x, t);
  assert.ok(Number.isNaN((await l.data.toArray())[0]));
  l.backward();
  assert.equal(Array.from(await x.grad!.toArray()), [0, 0, 0, 0, 0, 0]);
  assert.throws(() => scaledDotProductAttention(x, x, x, {} as { isCausal: boolean }), /pass \{ isCausal: true \}/); // no silent default
  l.dispose(); t.dispose(); x.dispose();
});

test('dropout: seeded and reproducible, scales kept values by 1/(1-p), identity in eval', async () => {
  const x = Variable.from(w, new Float32Array(1000).fill(1), [1000], { requiresGrad: true });
  const a = dropout(x, 0.25, true, new Generator(7));
  const b = dropout(x, 0.25, true, new Generator(7));
  const va = await a.data.toArray(), vb = await b.data.toArray();
  assert.equal(va, vb);
  const kept = va.filter((v) => v !== 0);
  assert.ok(kept.every((v) => Math.abs(v - 1 / 0.75) < 1e-6));
  assert.ok(Math.abs(kept.length / 1000 - 0.75) < 0.05, `kept ${kept.length}`);
  assert.is(dropout(x, 0.25, false), x);
  assert.throws(() => dropout(x, 1.5, true), /probability/);
  a.releaseGraph(); b.releaseGraph();
  a.dispose(); b.dispose(); x.dispose();
});

/** float32 -> bfloat16, nearest-even (finite values), as a number. */
function bf16(v: number): number {
  const u = new Uint32Array(Float32Array.of(v).buffer)[0];
  const r = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16;
  return new Float32Array(Uint32Array.of(r >>> 0).buffer)[0];
}

test('dropout keeps a low-precision input\'s dtype in training, whatever p (as PyTorch)', async () => {
  const x = new Variable(Tensor.from(w, [1, 2, 3, 4, 5, 6], [2, 3], { dtype: 'bfloat16' }));
  for (const p of [0, 0.5, 1]) for (const training of [true, false]) assert.is(dropout(x, p, training, new Generator(3)).data.dtype, 'bfloat16', `p ${p} training ${training}`);
  const y = dropout(x, 0.5, true, new Generator(3));
  for (const v of await y.data.toArray()) assert.ok(v === 0 || [2, 4, 6, 8, 10, 12].includes(v), `${v}`);
  y.dispose(); x.dispose();
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
});

test('linear with a bias rounds a low-precision output once: the product and the bias summed in float32 (PyTorch\'s addmm)', async () => {
  // Under bfloat16 autocast: 256 + 1 = 257, and 257 + bf16(0.9) = 257.898..., which rounds to 258;
  // rounding 257 first gives 256, and 256.898... again 256 (PyTorch: 258).
  const bfLinear = (x: Variable, wt: Variable, b: Variable) => autocast({ dtype: 'bfloat16' }, () => linear(x, wt, b));
  const y = bfLinear(Variable.from(w, [1, 1], [1, 2]), Variable.from(w, [256, 1], [1, 2]), Variable.from(w, [0.9], [1]));
  assert.is(y.data.dtype, 'bfloat16');
  assert.equal([...await y.data.toArray()], [258]);
  // Random small integers: every product sum is exact in float32, so the one rounding is the reference's.
  const [m, k, n] = [4, 16, 8];
  const xv = randValues(m * k, 3).map((v) => Math.round(v * 30)), wv = randValues(n * k, 4).map((v) => Math.round(v * 30));
  const bv = randValues(n, 5).map((v) => bf16(v * 50));
  const got = await bfLinear(Variable.from(w, xv, [m, k]), Variable.from(w, wv, [n, k]), Variable.from(w, bv, [n])).data.toArray();
  let differs = 0;
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let dot = 0;
    for (let t = 0; t < k; t++) dot += xv[i * k + t] * wv[j * k + t];
    assert.is(got[i * n + j], bf16(Math.fround(dot + bv[j])), `[${i}, ${j}]`);
    if (bf16(Math.fround(bf16(dot) + bv[j])) !== bf16(Math.fround(dot + bv[j]))) differs++;
  }
  assert.ok(differs > 0, 'the case tells one rounding from two');
});

test('logSoftmax and crossEntropy of rows with a large common offset: (x - max) - log(sum), as PyTorch, within 2 ulp of float64', async () => {
  const vals = [100000, 100001, 99999, 1000.5, 1001.25, 999.75];
  const ref = (row: number[]) => {
    const m = Math.max(...row), ls = Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
    return row.map((v) => v - m - ls);
  };
  const expect = [...ref(vals.slice(0, 3)), ...ref(vals.slice(3))];
  const close = (a: number, e: number, what: string) => assert.ok(Math.abs(a - e) <= 2.5e-7 * Math.abs(e), `${what}: ${a} against ${e}`);
  const backends: Backend[] = [w, await gpuBackend()];
  for (const be of backends) {
    const x = Variable.from(be, Float32Array.from(vals), [2, 3], { requiresGrad: true });
    const y = logSoftmax(x);
    (await y.data.toArray()).forEach((v, i) => close(v, expect[i], `${be.kind} logSoftmax [${i}]`));
    y.releaseGraph();
    y.dispose();
    const t = Tensor.from(be, Int32Array.of(0, 2), [2], { dtype: 'int32' });
    const l = crossEntropy(x, t);
    close((await l.data.toArray())[0], -(expect[0] + expect[5]) / 2, `${be.kind} crossEntropy`);
    l.backward();
    const g = await x.grad!.toArray();
    const onehot = [1, 0, 0, 0, 0, 1];
    g.forEach((v, i) => assert.ok(Math.abs(v - (Math.exp(expect[i]) - onehot[i]) / 2) <= 1e-6, `${be.kind} grad [${i}]: ${v}`));
    l.dispose(); t.dispose(); x.dispose();
    if (be !== w) be.destroy();
  }
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
});

test('errors name shapes and dtypes', () => {
  const x = Variable.from(w, new Float32Array(12), [3, 4], { requiresGrad: true });
  const wt = Variable.from(w, new Float32Array(15), [5, 3], { requiresGrad: true });
  assert.throws(() => linear(x, wt), /input \[3, 4\] does not fit weight \[5, 3\]/);
  const t = Tensor.from(w, [0, 1], [2]);
  assert.throws(() => crossEntropy(x, t), /int32/);
  const ti = Tensor.from(w, Int32Array.of(0, 1), [2], { dtype: 'int32' });
  assert.throws(() => crossEntropy(x, ti), /logits \[3, 4\] and targets \[2\]/);
  assert.throws(() => embedding(t, wt), /int32/);
  t.dispose(); ti.dispose(); x.dispose(); wt.dispose();
});

test('WebGPU matches wasm: loss and gradients of every functional op', async () => {
  const g = await gpuBackend();
  const gpuCases = cases(g);
  for (const [name, c] of Object.entries(cases(w))) {
    const results: Float32Array[][] = [];
    for (const [be, cc] of [[w, c], [g, gpuCases[name]]] as const) {
      const xs = inputs(be, cc, 5);
      const l = tidy(() => cc.run(xs));
      const out = [(await l.data.toArray()) as Float32Array];
      l.backward();
      for (const x of xs) out.push((await x.grad!.toArray()) as Float32Array);
      l.dispose();
      xs.forEach((x) => x.dispose());
      results.push(out);
    }
    results[0].forEach((a, i) => {
      const bb = results[1][i];
      for (let j = 0; j < a.length; j++) assert.ok(Math.abs(a[j] - bb[j]) <= 1e-5 * (1 + Math.abs(a[j])), `${name} [${i}][${j}]: wasm ${a[j]} webgpu ${bb[j]}`);
    });
  }
  g.destroy();
});

test('embedding: paddingIdx outside [-rows, rows) or not an integer is refused (torch); a negative one counts from the end', async () => {
  const table = new Variable(Tensor.from(w, [1, 2, 3, 4, 5, 6], [3, 2]), { requiresGrad: true });
  const ids = Tensor.from(w, [0, 2, 2], [3], { dtype: 'int32' });
  for (const bad of [3, -4, 1.5, '0']) {
    assert.throws(() => embedding(ids, table, { paddingIdx: bad as never }), /embedding: paddingIdx must be an integer in \[-3, 3\) \(the table's rows\)/);
  }
  assert.throws(() => embedding(ids, table, { paddingIdz: 0 } as never), /embedding: unknown option "paddingIdz"/);
  const y = embedding(ids, table, { paddingIdx: -1 }); // row 2
  const gy = Tensor.from(w, [1, 1, 1, 1, 1, 1], [3, 2]);
  y.backward(gy);
  assert.equal(Array.from(await table.grad!.toArray()), [1, 1, 0, 0, 0, 0]);
  gy.dispose(); y.dispose(); ids.dispose(); table.dispose();
});

test.run();
