import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import {
  Variable, add, sub, mul, matmul, relu, exp, scale, sum, mean, noGrad, inferenceMode,
  withSavedTensorsHooks, savedTensorStats, isGradEnabled, type SavedTensorsHooks,
  tidy,
} from '../../src/autograd/index.js';
import { InvalidArgumentError, ShapeMismatchError } from '../../src/errors.js';

const w = new WasmBackend();
const act = () => w.memory.memoryAllocated('activation');

// ---- a float64 reference of the same ops ------------------------------------------------------

interface Ref { shape: number[]; data: Float64Array }

function bshape(a: number[], b: number[]): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1, y = b[b.length - r + i] ?? 1;
    out.push(x === 1 ? y : x);
  }
  return out;
}

function bin(a: Ref, b: Ref, f: (x: number, y: number) => number): Ref {
  const shape = bshape(a.shape, b.shape);
  const n = shape.reduce((p, d) => p * d, 1);
  const strides = (s: number[]) => {
    const st = new Array(shape.length).fill(0);
    let acc = 1;
    for (let i = s.length - 1; i >= 0; i--) {
      st[shape.length - s.length + i] = s[i] === 1 ? 0 : acc;
      acc *= s[i];
    }
    return st;
  };
  const sa = strides(a.shape), sb = strides(b.shape);
  const data = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let rem = i, ia = 0, ib = 0;
    for (let d = shape.length - 1; d >= 0; d--) {
      const c = rem % shape[d];
      rem = Math.floor(rem / shape[d]);
      ia += c * sa[d];
      ib += c * sb[d];
    }
    data[i] = f(a.data[ia], b.data[ib]);
  }
  return { shape, data };
}

const map = (x: Ref, f: (v: number) => number): Ref => ({ shape: x.shape, data: x.data.map(f) });

interface Ops<T> {
  add(a: T, b: T): T; sub(a: T, b: T): T; mul(a: T, b: T): T; matmul(a: T, b: T): T;
  relu(x: T): T; exp(x: T): T; scale(x: T, c: number): T; sum(x: T): T; mean(x: T): T;
}

const ref: Ops<Ref> = {
  add: (a, b) => bin(a, b, (x, y) => x + y),
  sub: (a, b) => bin(a, b, (x, y) => x - y),
  mul: (a, b) => bin(a, b, (x, y) => x * y),
  matmul: (a, b) => {
    const [m, k] = a.shape, n = b.shape[1];
    const data = new Float64Array(m * n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a.data[i * k + p] * b.data[p * n + j];
      data[i * n + j] = s;
    }
    return { shape: [m, n], data };
  },
  relu: (x) => map(x, (v) => Math.max(v, 0)),
  exp: (x) => map(x, Math.exp),
  scale: (x, c) => map(x, (v) => v * c),
  sum: (x) => ({ shape: [], data: Float64Array.of(x.data.reduce((p, v) => p + v, 0)) }),
  mean: (x) => ({ shape: [], data: Float64Array.of(x.data.reduce((p, v) => p + v, 0) / x.data.length) }),
};

const ag: Ops<Variable> = { add, sub, mul, matmul, relu, exp, scale, sum, mean };

// Deterministic random values, kept away from 0 (relu's kink).
let seed = 12345;
function rand(n: number): Float64Array {
  return Float64Array.from({ length: n }, () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const u = seed / 2 ** 31;
    const v = u * 2 - 1;
    return Math.abs(v) < 0.05 ? v + Math.sign(v || 1) * 0.1 : v;
  });
}

interface Case { name: string; shapes: number[][]; f: <T>(o: Ops<T>, xs: T[]) => T }

const cases: Case[] = [
  { name: 'add', shapes: [[3, 4], [3, 4], [3, 4]], f: (o, [a, b, c]) => o.sum(o.mul(o.add(a, b), c)) },
  { name: 'add broadcast [2,3,4] + [3,1]', shapes: [[2, 3, 4], [3, 1], [2, 3, 4]], f: (o, [a, b, c]) => o.sum(o.mul(o.add(a, b), c)) },
  { name: 'sub broadcast [3,1] - [1,4]', shapes: [[3, 1], [1, 4], [3, 4]], f: (o, [a, b, c]) => o.sum(o.mul(o.sub(a, b), c)) },
  { name: 'mul broadcast [3,4] * [4]', shapes: [[3, 4], [4], [3, 4]], f: (o, [a, b, c]) => o.sum(o.mul(o.mul(a, b), c)) },
  { name: 'mul by a scalar []', shapes: [[], [5], [5]], f: (o, [a, b, c]) => o.sum(o.mul(o.mul(a, b), c)) },
  { name: 'matmul', shapes: [[3, 5], [5, 2], [3, 2]], f: (o, [a, b, c]) => o.sum(o.mul(o.matmul(a, b), c)) },
  { name: 'relu', shapes: [[4, 5], [4, 5]], f: (o, [a, c]) => o.sum(o.mul(o.relu(a), c)) },
  { name: 'exp', shapes: [[3, 3], [3, 3]], f: (o, [a, c]) => o.sum(o.mul(o.exp(a), c)) },
  { name: 'sum', shapes: [[2, 3]], f: (o, [a]) => o.sum(a) },
  { name: 'mean', shapes: [[2, 3], [2, 3]], f: (o, [a, c]) => o.mean(o.mul(a, c)) },
  { name: 'scale', shapes: [[2, 3], [2, 3]], f: (o, [a, c]) => o.sum(o.mul(o.scale(a, -2.5), c)) },
  { name: 'variable used twice (a * a)', shapes: [[6]], f: (o, [a]) => o.mean(o.mul(a, a)) },
  {
    name: 'two-layer MLP',
    shapes: [[4, 3], [3, 5], [5], [5, 2]],
    f: (o, [x, w1, b1, w2]) => {
      const h = o.relu(o.add(o.matmul(x, w1), b1));
      const y = o.matmul(h, w2);
      return o.mean(o.mul(y, o.exp(o.scale(y, 0.5))));
    },
  },
];

const size = (s: number[]) => s.reduce((p, d) => p * d, 1);

async function gradsOf(c: Case, values: Float64Array[]): Promise<{ loss: number; grads: Float32Array[] }> {
  const xs = c.shapes.map((s, i) => Variable.from(w, Float32Array.from(values[i]), s, { requiresGrad: true }));
  const loss = c.f(ag, xs);
  const l = (await loss.data.toArray())[0];
  loss.backward();
  const grads: Float32Array[] = [];
  for (const x of xs) grads.push((await x.grad!.toArray()) as Float32Array);
  loss.dispose();
  for (const x of xs) x.dispose();
  return { loss: l, grads };
}

for (const c of cases) {
  test(`gradcheck (float64 central differences): ${c.name}`, async () => {
    const values = c.shapes.map((s) => rand(size(s)));
    const { loss, grads } = await gradsOf(c, values);
    const f = (vs: Float64Array[]) => c.f(ref, vs.map((d, i) => ({ shape: c.shapes[i], data: d }))).data[0];
    assert.ok(Math.abs(loss - f(values)) <= 1e-4 * (1 + Math.abs(f(values))), `loss ${loss} vs ${f(values)}`);
    const h = 1e-6;
    values.forEach((v, i) => {
      for (let j = 0; j < v.length; j++) {
        const plus = values.map((x) => x.slice()), minus = values.map((x) => x.slice());
        plus[i][j] += h;
        minus[i][j] -= h;
        const fd = (f(plus) - f(minus)) / (2 * h);
        const g = grads[i][j];
        assert.ok(Math.abs(g - fd) <= 1e-3 * (1 + Math.abs(fd)), `${c.name}: d/dx${i}[${j}] autograd ${g} vs finite difference ${fd}`);
      }
    });
  });
}

// ---- memory -----------------------------------------------------------------------------------

function mlp(xs: Variable[], keep: Variable[]): Variable {
  const [x, w1, b1, w2] = xs;
  const t = (v: Variable) => (keep.push(v), v);
  const h = t(relu(t(add(t(matmul(x, w1)), b1))));
  const y = t(matmul(h, w2));
  return mean(t(mul(y, t(exp(t(scale(y, 0.5)))))));
}

const mlpShapes = [[8, 6], [6, 16], [16], [16, 4]];
const mlpValues = mlpShapes.map((s) => Float32Array.from(rand(size(s))));
const mlpInputs = (requiresGrad = true) => mlpShapes.map((s, i) => Variable.from(w, mlpValues[i], s, { requiresGrad }));

test('saved tensors are freed by backward: activation returns to its value before the forward', async () => {
  const xs = mlpInputs();
  const before = act();
  const keep: Variable[] = [];
  const loss = mlp(xs, keep);
  for (const v of keep) v.dispose(); // the user drops the intermediates; what backward needs stays saved
  const saved = savedTensorStats();
  assert.ok(saved.count > 0 && saved.bytes > 0);
  assert.ok(act() > before + 4, 'saved activations held on the device');
  loss.backward();
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
  assert.is(act(), before + 4, 'only the loss itself (shape [], 4 bytes) is left');
  loss.dispose();
  assert.is(act(), before);
  assert.is(w.memory.memoryAllocated('temporary'), 0, 'no temporary gradient left behind');
  assert.is(w.memory.memoryAllocated('gradient'), mlpShapes.reduce((p, s) => p + size(s) * 4, 0), 'grads are in the gradient category');
  for (const x of xs) x.dispose();
  assert.is(w.memory.memoryAllocated('gradient'), 0);
});

test('inferenceMode / noGrad save nothing; a training forward saves activations', () => {
  const xs = mlpInputs();
  const before = act();
  for (const mode of [inferenceMode, noGrad]) {
    const keep: Variable[] = [];
    w.memory.resetPeakMemoryStats();
    const out = mode(() => {
      assert.not.ok(isGradEnabled());
      return mlp(xs, keep);
    });
    assert.is(w.memory.maxMemoryAllocated('activation'), before, 'the activation category stays at its value during the whole inference forward');
    assert.ok(w.memory.memoryAllocated('temporary') > 0, 'its outputs are temporaries');
    assert.ok(isGradEnabled());
    assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
    assert.not.ok(out.requiresGrad);
    assert.is(out.gradFn, null);
    for (const v of keep) v.dispose();
    assert.is(act(), before, 'no activation held');
    out.dispose();
  }
  const keep: Variable[] = [];
  const out = mlp(xs, keep);
  for (const v of keep) v.dispose();
  const saved = savedTensorStats();
  assert.ok(saved.bytes > 0);
  assert.ok(act() - before - 4 > 0, 'training holds saved activations');
  out.releaseGraph();
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
  assert.is(act(), before + 4);
  out.dispose();
  for (const x of xs) x.dispose();
});

test('an inference variable cannot be saved for backward', () => {
  const [a] = mlpInputs(); // [8, 6]
  const b = Variable.from(w, new Float32Array(48).fill(2), [8, 6], { requiresGrad: true });
  const y = inferenceMode(() => scale(a, 2));
  assert.ok(y.isInference);
  assert.throws(() => mul(b, y), /inference/); // d/db needs y saved
  const z = add(b, y); // add saves nothing: allowed
  z.releaseGraph();
  z.dispose(); y.dispose(); a.dispose(); b.dispose();
});

// ---- saved-tensor hooks -------------------------------------------------------------------------

test('saved-tensor hooks: offloading to host memory gives identical gradients and no device activations', async () => {
  const run = async (hooks: SavedTensorsHooks<any> | null) => {
    const xs = mlpInputs();
    const before = act();
    const keep: Variable[] = [];
    const loss = hooks ? withSavedTensorsHooks(hooks, () => mlp(xs, keep)) : mlp(xs, keep);
    for (const v of keep) v.dispose();
    const held = act() - before;
    loss.backward();
    assert.is(act(), before + 4);
    loss.dispose();
    const grads = [];
    for (const x of xs) grads.push(await x.grad!.toArray());
    for (const x of xs) x.dispose();
    return { grads, held };
  };
  let packs = 0, unpacks = 0;
  const offload: SavedTensorsHooks<{ shape: number[]; data: Float32Array }> = {
    pack: (t) => {
      packs++;
      const bytes = w.readSync(t.storage, t.offset * 4, t.size * 4);
      return { shape: [...t.shape], data: new Float32Array(bytes.buffer, bytes.byteOffset, t.size) };
    },
    unpack: (p) => {
      unpacks++;
      return Tensor.from(w, p.data, p.shape, { category: 'activation' });
    },
  };
  const base = await run(null);
  const off = await run(offload);
  assert.ok(packs > 0);
  assert.is(unpacks, packs);
  assert.ok(base.held > 4, 'default hooks keep activations on the device');
  assert.is(off.held, 4, 'offloaded: only the loss is on the device after the forward');
  assert.equal(off.grads, base.grads);
});

test('hooks are scoped: outside withSavedTensorsHooks the default applies again', () => {
  let packs = 0;
  const [a] = mlpInputs();
  const y1 = withSavedTensorsHooks({ pack: (t) => { packs++; return t.reshape(t.shape); }, unpack: (t: Tensor) => t }, () => exp(a));
  const y2 = exp(a);
  assert.is(packs, 1);
  y1.releaseGraph(); y2.releaseGraph();
  y1.dispose(); y2.dispose(); a.dispose();
});

// ---- accumulation, detach -----------------------------------------------------------------------

test('.grad accumulates (+=) across two backward calls', async () => {
  const a = Variable.from(w, [1, -2, 3], [3], { requiresGrad: true });
  const c = Variable.from(w, [0.5, 4, -1], [3]);
  for (let i = 0; i < 2; i++) {
    const l = sum(mul(mul(a, a), c));
    l.backward();
    l.dispose();
    const g = await a.grad!.toArray();
    assert.equal(Array.from(g), [1, -16, -6].map((v) => v * (i + 1)));
  }
  assert.is(c.grad, null, 'a variable without requiresGrad gets no grad');
  a.zeroGrad();
  assert.is(a.grad, null);
  a.dispose(); c.dispose();
});

test('detach stops the gradient; backward on a non-scalar needs gradOutput', async () => {
  const a = Variable.from(w, [1, 2], [2], { requiresGrad: true });
  const d = a.detach();
  assert.not.ok(d.requiresGrad);
  const l = sum(mul(a, d)); // d/da = d = a (treated as a constant)
  l.backward();
  assert.equal(Array.from(await a.grad!.toArray()), [1, 2]);
  const y = scale(a, 3);
  assert.throws(() => y.backward(), /scalar/);
  const go = Tensor.from(w, [1, 10], [2]);
  y.backward(go);
  assert.equal(Array.from(await a.grad!.toArray()), [4, 32]);
  go.dispose(); l.dispose(); y.dispose(); d.dispose(); a.dispose();
  assert.throws(() => sum(a), /dispose/);
});

test('backward through the same graph twice is an error (saved tensors were freed)', () => {
  const a = Variable.from(w, [1, 2], [2], { requiresGrad: true });
  const l = sum(exp(a));
  l.backward();
  assert.throws(() => l.backward(), /freed/);
  l.dispose(); a.dispose();
});

test('errors leak nothing: tidy that throws, an op refused after its forward, a failing pack or unpack hook', async () => {
  const before = act();
  const x = Variable.from(w, [1, 2, 3], [3], { requiresGrad: true });
  assert.throws(() => tidy(() => {
    exp(x); // recorded, with a saved output
    throw new Error('boom');
  }), /boom/);
  assert.is(act(), before, 'the op output of the failed tidy was freed');
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 }, 'and its saved tensors');
  const inf = inferenceMode(() => scale(x, 2)); // temporary: made under inferenceMode
  assert.throws(() => mul(x, inf), /inference/);
  assert.is(act(), before, 'the refused op freed its output');
  const failingPack: SavedTensorsHooks<Tensor> = { pack: () => { throw new Error('pack failed'); }, unpack: (t) => t };
  assert.throws(() => withSavedTensorsHooks(failingPack, () => exp(x)), /pack failed/);
  assert.is(act(), before);
  let calls = 0;
  const failingUnpack: SavedTensorsHooks<Tensor> = {
    pack: (t) => t.reshape(t.shape),
    unpack: (t) => { if (++calls === 2) { t.dispose(); throw new Error('unpack failed'); } return t; },
    release: (t) => t.dispose(),
  };
  const l = tidy(() => withSavedTensorsHooks(failingUnpack, () => sum(mul(exp(x), exp(x)))));
  assert.throws(() => l.backward(), /unpack failed/);
  l.dispose();
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
  assert.is(act(), before, 'no activation left');
  inf.dispose();
  assert.is(w.memory.memoryAllocated('temporary'), 0, 'no temporary left');
  x.dispose();
});

test('.grad assignment is checked (shape, dtype, backend); a grad left stale by a new .data is refused at accumulation', async () => {
  const v = new Variable(Tensor.from(w, new Float32Array(16).fill(1), [4, 4]), { requiresGrad: true });
  const small = Tensor.from(w, [0, 0, 0, 0], [2, 2]);
  const refused = (fn: () => void, cls: new (...a: never[]) => Error, re: RegExp) =>
    assert.throws(fn, (e: unknown) => e instanceof cls && re.test((e as Error).message));
  refused(() => { v.grad = small; }, ShapeMismatchError, /a grad of shape \[2, 2\] for a variable of shape \[4, 4\]/);
  refused(() => { v.grad = Tensor.from(w, new Array(16).fill(0), [16]); }, ShapeMismatchError, /shape \[16\]/);
  refused(() => { v.grad = Tensor.from(w, new Array(16).fill(0), [4, 4], { dtype: 'int32' }); }, InvalidArgumentError, /float dtype, got int32/);
  refused(() => { v.grad = 3 as unknown as Tensor; }, InvalidArgumentError, /a grad must be a Tensor or null, got 3/);
  assert.is(v.grad, null);
  const ok = Tensor.from(w, new Float32Array(16).fill(2), [4, 4]);
  v.grad = ok;
  sum(mul(v, v)).backward(); // += 2v
  assert.equal(Array.from(await v.grad!.toArray()), new Array(16).fill(4));
  // .data swapped for another shape under an existing grad: accumulation refuses instead of adding [2,2] into [4,4]
  const u = new Variable(Tensor.from(w, [1, 2, 3, 4], [2, 2]), { requiresGrad: true });
  u.grad = Tensor.from(w, [0, 0, 0, 0], [2, 2]);
  u.data = Tensor.from(w, new Float32Array(16).fill(1), [4, 4]);
  refused(() => sum(u).backward(), ShapeMismatchError, /accumulating into \.grad: a grad of shape \[2, 2\] for a variable of shape \[4, 4\]/);
  small.dispose(); v.dispose(); u.dispose();
});

test('only float variables can require grad (int32 and uint8 refused, also by the setter)', () => {
  for (const dtype of ['int32', 'uint8'] as const) {
    const t = Tensor.from(w, [1, 2], [2], { dtype });
    assert.throws(() => new Variable(t, { requiresGrad: true }), (e: unknown) => e instanceof InvalidArgumentError && /cannot require grad: only float dtypes can/.test((e as Error).message));
    const v = new Variable(t);
    assert.throws(() => { v.requiresGrad = true; }, /cannot require grad/);
    assert.is(v.requiresGrad, false);
    t.dispose();
  }
  assert.throws(() => new Variable(Tensor.from(w, [1], [1]), { requiresGrad: 'yes' as unknown as boolean }), /requiresGrad must be a boolean, got "yes"/);
  assert.throws(() => new Variable(Tensor.from(w, [1], [1]), { requiresGard: true } as never), /unknown option "requiresGard"/);
});

test('sum/mean refuse unknown options (PyTorch\'s keepdim is keepDim) and a non-boolean keepDim; zeroGrad refuses a misspelt setToNone', async () => {
  const x = new Variable(Tensor.from(w, [1, 2, 3, 4], [2, 2]), { requiresGrad: true });
  for (const [f, name] of [[sum, 'sum'], [mean, 'mean']] as const) {
    assert.throws(() => f(x, 0, { keepdim: true } as never), (e: unknown) => e instanceof InvalidArgumentError && new RegExp(`${name}: unknown option "keepdim"; memfit spells PyTorch's keepdim keepDim`).test((e as Error).message));
    assert.throws(() => f(x, 0, { keepDim: 1 } as never), /keepDim must be a boolean, got 1/);
    assert.throws(() => f(x, 0, { keep: true } as never), /unknown option "keep" \(known: keepDim\)/);
  }
  const y = sum(x, 0, { keepDim: true });
  assert.equal(y.shape, [1, 2]);
  sum(y).backward();
  assert.throws(() => x.zeroGrad({ setToNon: false } as never), /zeroGrad: unknown option "setToNon" \(known: setToNone\)/);
  assert.throws(() => x.zeroGrad({ setToNone: 'no' } as never), /setToNone must be a boolean/);
  assert.ok(x.grad, 'a refused zeroGrad leaves the grad');
  x.zeroGrad({ setToNone: false });
  assert.equal(Array.from(await x.grad!.toArray()), [0, 0, 0, 0]);
  y.dispose(); x.dispose();
});

test.run();
