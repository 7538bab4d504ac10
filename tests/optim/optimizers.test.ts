// SGD, Adam, AdamW, RMSprop and Adagrad on the wasm backend: several steps with fixed gradients
// against float64 implementations written from PyTorch's documented algorithms (and, where the
// documentation and torch's code differ, the code: see sgdRef), plus defaults, parameter groups,
// bfloat16 parameters and argument errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Variable } from '../../src/autograd/variable.js';
import { scale } from '../../src/autograd/ops.js';
import { decode, encode, InvalidArgumentError, ShapeMismatchError } from '../../src/index.js';
import {
  SGD, Adam, AdamW, RMSprop, Adagrad, type Optimizer, type OptimizerHyper,
  type SGDHyper, type AdamHyper, type RMSpropHyper, type AdagradHyper,
} from '../../src/optim/index.js';
import { AdamW8bit, SGD8bit, RMSprop8bit } from '../../src/optim/optim8bit.js';
import { rand, param, setGrad } from '../helpers/values.js';
import { Linear } from '../../src/nn/layers.js';

/** Values in [-scale, scale) kept at least 0.1 scale away from 0. */
const randAway = (n: number, seed: number, scale = 1): Float32Array => rand(n, seed, scale, true);

const w = new WasmBackend();

async function values(t: Tensor): Promise<Float64Array> {
  return Float64Array.from(await t.toArray());
}

// ---- float64 references ------------------------------------------------------------------------

type RefState = Record<string, Float64Array | number>;
type RefStep = (p: Float64Array, grad: Float64Array, s: RefState) => void;

const zeros = (n: number) => new Float64Array(n);

/**
 * torch.optim.SGD. The documentation's pseudo-code applies maximize at the end
 * (p += lr * g, weight decay on the unnegated gradient); torch's code negates the gradient first
 * (_single_tensor_sgd: grad = -grad, then weight decay, momentum, p -= lr * g). memfit follows
 * the code, and so does this reference.
 */
function sgdRef(h: SGDHyper): RefStep {
  return (p, grad, s) => {
    for (let i = 0; i < p.length; i++) {
      let g = h.maximize ? -grad[i] : grad[i];
      if (h.weightDecay !== 0) g += h.weightDecay * p[i];
      if (h.momentum !== 0) {
        const b = (s.buf ??= new Float64Array(p.length)) as Float64Array;
        b[i] = (s.started ? h.momentum * b[i] + (1 - h.dampening) * g : g);
        g = h.nesterov ? g + h.momentum * b[i] : b[i];
      }
      p[i] -= h.lr * g;
    }
    s.started = 1;
  };
}

/** torch.optim.Adam / AdamW (decoupled): the documented algorithm; AMSGrad keeps the max of v_t, divided by the current bias correction (as torch's code does). */
function adamRef(h: AdamHyper, decoupled: boolean): RefStep {
  return (p, grad, s) => {
    const n = p.length;
    const t = (s.t = ((s.t as number | undefined) ?? 0) + 1) as number;
    const m = (s.m ??= zeros(n)) as Float64Array, v = (s.v ??= zeros(n)) as Float64Array, vmax = (s.vmax ??= zeros(n)) as Float64Array;
    const [b1, b2] = h.betas;
    for (let i = 0; i < n; i++) {
      let g = h.maximize ? -grad[i] : grad[i];
      if (decoupled) p[i] *= 1 - h.lr * h.weightDecay;
      else g += h.weightDecay * p[i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      const mhat = m[i] / (1 - b1 ** t);
      let vv = v[i];
      if (h.amsgrad) vv = vmax[i] = Math.max(vmax[i], v[i]);
      p[i] -= (h.lr * mhat) / (Math.sqrt(vv / (1 - b2 ** t)) + h.eps);
    }
  };
}

/** torch.optim.RMSprop, the documented algorithm. */
function rmspropRef(h: RMSpropHyper): RefStep {
  return (p, grad, s) => {
    const n = p.length;
    const sq = (s.sq ??= zeros(n)) as Float64Array, ga = (s.ga ??= zeros(n)) as Float64Array, buf = (s.buf ??= zeros(n)) as Float64Array;
    for (let i = 0; i < n; i++) {
      let g = h.maximize ? -grad[i] : grad[i];
      g += h.weightDecay * p[i];
      sq[i] = h.alpha * sq[i] + (1 - h.alpha) * g * g;
      let vt = sq[i];
      if (h.centered) {
        ga[i] = h.alpha * ga[i] + (1 - h.alpha) * g;
        vt -= ga[i] * ga[i];
      }
      const upd = g / (Math.sqrt(vt) + h.eps);
      if (h.momentum > 0) {
        buf[i] = h.momentum * buf[i] + upd;
        p[i] -= h.lr * buf[i];
      } else p[i] -= h.lr * upd;
    }
  };
}

/** torch.optim.Adagrad, the documented algorithm. */
function adagradRef(h: AdagradHyper): RefStep {
  return (p, grad, s) => {
    const n = p.length;
    const t = (s.t = ((s.t as number | undefined) ?? 0) + 1) as number;
    const sum = (s.sum ??= new Float64Array(n).fill(h.initialAccumulatorValue)) as Float64Array;
    const clr = h.lr / (1 + (t - 1) * h.lrDecay);
    for (let i = 0; i < n; i++) {
      let g = h.maximize ? -grad[i] : grad[i];
      g += h.weightDecay * p[i];
      sum[i] += g * g;
      p[i] -= (clr * g) / (Math.sqrt(sum[i]) + h.eps);
    }
  };
}

// ---- the comparison ----------------------------------------------------------------------------

const SHAPES = [[3, 4], [5]];
const GRAD_SCALES = [1, 0.1, 3, 0.5, 2]; // varying magnitudes so that AMSGrad's max matters

/** |got - want| <= tol * max(1, |want|) elementwise; returns the worst ratio. */
function worst(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let r = 0;
  for (let i = 0; i < want.length; i++) r = Math.max(r, Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i])));
  return r;
}

async function compare<H extends OptimizerHyper>(
  label: string, make: (params: Variable[]) => Optimizer<H>, ref: RefStep, steps = 5, tol = 1e-6,
): Promise<void> {
  const init = SHAPES.map((s, k) => randAway(s.reduce((a, b) => a * b, 1), 10 + k));
  const params = SHAPES.map((s, k) => param(w, init[k], s));
  const opt = make(params);
  const refP = init.map((x) => Float64Array.from(x));
  const refS: RefState[] = init.map(() => ({}));
  let moved = 0;
  for (let t = 0; t < steps; t++) {
    params.forEach((p, k) => {
      const g = randAway(init[k].length, 100 * t + k, GRAD_SCALES[t % GRAD_SCALES.length]);
      setGrad(p, g);
      ref(refP[k], Float64Array.from(g), refS[k]);
    });
    opt.step();
  }
  for (let k = 0; k < params.length; k++) {
    const got = await values(params[k].data);
    const err = worst(got, refP[k]);
    assert.ok(err <= tol, `${label}: param ${k} off by ${err} (tol ${tol})`);
    moved = Math.max(moved, worst(got, init[k]));
  }
  assert.ok(moved > 1e-3, `${label}: parameters barely moved (${moved}); the comparison would be weak`);
  assert.is(w.memory.memoryAllocated('temporary'), 0, `${label}: temporaries left allocated`);
  opt.dispose();
  for (const p of params) p.dispose();
}

const SGD_CASES: Partial<SGDHyper>[] = [
  { lr: 0.1 },
  { lr: 0.1, momentum: 0.9 },
  { lr: 0.05, momentum: 0.9, dampening: 0.3 },
  { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.01 },
  { lr: 0.1, weightDecay: 0.1, maximize: true },
  { lr: 0.1, momentum: 0.5, maximize: true, weightDecay: 0.05, dampening: 0.1 },
];

test('SGD: 5 steps match the float64 reference (momentum, dampening, nesterov, weight decay, maximize)', async () => {
  for (const c of SGD_CASES) {
    const h = { ...SGD.DEFAULTS, ...c };
    await compare(`SGD ${JSON.stringify(c)}`, (ps) => new SGD(ps, c), sgdRef(h));
  }
});

const ADAM_CASES: Partial<AdamHyper>[] = [
  { lr: 0.01 },
  { lr: 0.01, weightDecay: 0.1 },
  { lr: 0.02, weightDecay: 0.1, maximize: true, betas: [0.8, 0.99] },
  { lr: 0.01, amsgrad: true },
  { lr: 0.01, amsgrad: true, weightDecay: 0.05, maximize: true, eps: 1e-3 },
];

test('Adam: 5 steps match the float64 reference (L2 weight decay, maximize, betas, AMSGrad)', async () => {
  for (const c of ADAM_CASES) {
    const h = { ...Adam.DEFAULTS, ...c };
    await compare(`Adam ${JSON.stringify(c)}`, (ps) => new Adam(ps, c), adamRef(h, false));
  }
});

test('AdamW: 5 steps match the float64 reference (decoupled weight decay, maximize, AMSGrad)', async () => {
  for (const c of [{ lr: 0.01 }, { lr: 0.01, weightDecay: 0.3 }, { lr: 0.01, weightDecay: 0.1, maximize: true }, { lr: 0.01, weightDecay: 0.2, amsgrad: true }] as Partial<AdamHyper>[]) {
    const h = { ...AdamW.DEFAULTS, ...c };
    await compare(`AdamW ${JSON.stringify(c)}`, (ps) => new AdamW(ps, c), adamRef(h, true));
  }
});

test('RMSprop: 5 steps match the float64 reference (centered, momentum, weight decay, maximize, alpha)', async () => {
  const cases: Partial<RMSpropHyper>[] = [
    { lr: 0.01 },
    { lr: 0.01, centered: true },
    { lr: 0.01, momentum: 0.9 },
    { lr: 0.01, centered: true, momentum: 0.5, weightDecay: 0.1 },
    { lr: 0.01, maximize: true, alpha: 0.9, eps: 1e-4 },
  ];
  for (const c of cases) {
    const h = { ...RMSprop.DEFAULTS, ...c };
    await compare(`RMSprop ${JSON.stringify(c)}`, (ps) => new RMSprop(ps, c), rmspropRef(h));
  }
});

test('Adagrad: 5 steps match the float64 reference (lrDecay, weight decay, initial accumulator, maximize, eps)', async () => {
  const cases: Partial<AdagradHyper>[] = [
    { lr: 0.1 },
    { lr: 0.1, lrDecay: 0.1, weightDecay: 0.1 },
    { lr: 0.1, initialAccumulatorValue: 0.5, maximize: true },
    { lr: 0.1, eps: 1e-3 },
  ];
  for (const c of cases) {
    const h = { ...Adagrad.DEFAULTS, ...c };
    await compare(`Adagrad ${JSON.stringify(c)}`, (ps) => new Adagrad(ps, c), adagradRef(h));
  }
});

test('defaults are PyTorch\'s', () => {
  const p = param(w, [1, 2], [2]);
  const group = <H extends OptimizerHyper>(o: Optimizer<H>) => {
    const { params, ...h } = o.paramGroups[0];
    assert.is(params[0], p);
    return h;
  };
  assert.equal(group(new SGD([p])), { lr: 1e-3, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false });
  assert.equal(group(new Adam([p])), { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, amsgrad: false, maximize: false });
  assert.equal(group(new AdamW([p])), { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, amsgrad: false, maximize: false });
  assert.equal(group(new RMSprop([p])), { lr: 1e-2, alpha: 0.99, eps: 1e-8, weightDecay: 0, momentum: 0, centered: false, maximize: false });
  assert.equal(group(new Adagrad([p])), { lr: 1e-2, lrDecay: 0, weightDecay: 0, initialAccumulatorValue: 0, eps: 1e-10, maximize: false });
  p.dispose();
});

test('parameter groups: each group uses its own hyperparameters; params without grad are skipped', async () => {
  const a = param(w, [1, -2, 3], [3]), b = param(w, [0.5, 0.25], [2]), frozen = param(w, [7, 8], [2]);
  const opt = new SGD([{ params: [a], lr: 0.5, momentum: 0.9 }, { params: [b, frozen] }], { lr: 0.1 });
  assert.is(opt.paramGroups[0].lr, 0.5);
  assert.is(opt.paramGroups[1].lr, 0.1);
  assert.is(opt.paramGroups[1].momentum, 0);
  for (let t = 0; t < 2; t++) {
    setGrad(a, [1, 1, 1]);
    setGrad(b, [2, -2]);
    opt.step();
  }
  // a: buf 1 then 1.9: p = 1 - 0.5 - 0.95; b: p -= 0.1 * g twice
  assert.equal(Array.from(await a.data.toArray()), Array.from(Float32Array.from([1 - 0.5 - 0.95, -2 - 0.5 - 0.95, 3 - 0.5 - 0.95])));
  assert.equal(Array.from(await b.data.toArray()), Array.from(Float32Array.from([Math.fround(Math.fround(0.5 - 0.2) - 0.2), Math.fround(Math.fround(0.25 + 0.2) + 0.2)])));
  assert.equal(Array.from(await frozen.data.toArray()), [7, 8]);
  assert.is(opt.getState(frozen), undefined);
  assert.ok(opt.getState(a)?.momentumBuffer instanceof Tensor);
  assert.is(opt.getState(b), undefined, 'no momentum: no state (as PyTorch)');
  // a group added later gets the defaults
  const c = param(w, [1], [1]);
  opt.addParamGroup({ params: [c], weightDecay: 0.5 });
  assert.equal({ lr: opt.paramGroups[2].lr, wd: opt.paramGroups[2].weightDecay }, { lr: 0.1, wd: 0.5 });
  opt.dispose();
  for (const p of [a, b, frozen, c]) p.dispose();
});

/** bfloat16 rounding (nearest-even) of float64 values, through float32 as memfit stores them. */
function roundBf16(x: Float64Array): Float64Array {
  return Float64Array.from(decode(encode(Float32Array.from(x), 'bfloat16'), 'bfloat16'));
}

test('bfloat16 parameters: float32 math, rounded once per step into bfloat16 (SGD momentum, RMSprop, Adam, AdamW AMSGrad)', async () => {
  const cases: [string, (ps: Variable[]) => Optimizer<OptimizerHyper>, RefStep][] = [
    ['SGD', (ps) => new SGD(ps, { lr: 0.1, momentum: 0.9, weightDecay: 0.1 }), sgdRef({ ...SGD.DEFAULTS, lr: 0.1, momentum: 0.9, weightDecay: 0.1 })],
    ['RMSprop', (ps) => new RMSprop(ps, { lr: 0.01, centered: true }), rmspropRef({ ...RMSprop.DEFAULTS, lr: 0.01, centered: true })],
    ['Adam', (ps) => new Adam(ps, { lr: 0.05, weightDecay: 0.1 }), adamRef({ ...Adam.DEFAULTS, lr: 0.05, weightDecay: 0.1 }, false)],
    ['AdamW', (ps) => new AdamW(ps, { lr: 0.05, amsgrad: true }), adamRef({ ...AdamW.DEFAULTS, lr: 0.05, amsgrad: true }, true)],
  ];
  const n = 64;
  for (const [label, make, ref] of cases) {
    const init = roundBf16(Float64Array.from(randAway(n, 5, 2)));
    const p = param(w, init, [n], 'bfloat16');
    const opt = make([p]);
    const refP = Float64Array.from(init);
    const st: RefState = {};
    for (let t = 0; t < 3; t++) {
      const g = randAway(n, 50 + t, GRAD_SCALES[t]);
      setGrad(p, g);
      opt.step();
      ref(refP, Float64Array.from(g), st);
      refP.set(roundBf16(refP)); // the parameter holds bfloat16 values between steps
    }
    assert.is(p.data.dtype, 'bfloat16');
    const got = await values(p.data);
    let off = 0;
    for (let i = 0; i < n; i++) {
      // one bfloat16 ulp: float32 vs float64 math can round a value near a tie the other way
      const ulp = 2 ** (Math.floor(Math.log2(Math.abs(refP[i]) || 1e-30)) - 7);
      if (got[i] !== refP[i]) off++;
      assert.ok(Math.abs(got[i] - refP[i]) <= ulp * 1.01, `${label} bf16 param ${i}: ${got[i]} vs ${refP[i]}`);
    }
    assert.ok(off <= n / 16, `${label}: ${off} of ${n} bfloat16 values differ from the reference`);
    assert.ok(worst(got, init) > 1e-2, `${label}: bfloat16 params did not move`);
    opt.dispose();
    p.dispose();
  }
});

test('errors: invalid hyperparameters, unknown and unsupported options, bad params', () => {
  const p = param(w, [1, 2], [2]);
  const bad: [string, () => unknown, RegExp][] = [
    ['negative lr', () => new SGD([p], { lr: -1 }), /invalid lr -1/],
    ['NaN lr', () => new Adam([p], { lr: NaN }), /invalid lr NaN/],
    ['beta1 = 1', () => new Adam([p], { betas: [1, 0.999] }), /beta parameter at index 0/],
    ['beta2 < 0', () => new AdamW([p], { betas: [0.9, -0.1] }), /beta parameter at index 1/],
    ['betas not a pair', () => new Adam([p], { betas: [0.9] as unknown as [number, number] }), /pair/],
    ['negative eps', () => new Adam([p], { eps: -1e-8 }), /invalid eps/],
    ['negative weight decay', () => new AdamW([p], { weightDecay: -0.1 }), /invalid weightDecay/],
    ['negative momentum', () => new SGD([p], { momentum: -0.5 }), /invalid momentum/],
    ['nesterov without momentum', () => new SGD([p], { nesterov: true }), /Nesterov momentum requires/],
    ['nesterov with dampening', () => new SGD([p], { nesterov: true, momentum: 0.9, dampening: 0.1 }), /Nesterov momentum requires/],
    ['negative alpha', () => new RMSprop([p], { alpha: -0.1 }), /invalid alpha/],
    ['negative lrDecay', () => new Adagrad([p], { lrDecay: -1 }), /invalid lrDecay/],
    ['negative initialAccumulatorValue', () => new Adagrad([p], { initialAccumulatorValue: -1 }), /initialAccumulatorValue/],
    ['non-boolean maximize', () => new SGD([p], { maximize: 1 as unknown as boolean }), /maximize must be true or false/],
    ['unknown option', () => new SGD([p], { lr: 0.1, momentun: 0.9 } as Partial<SGDHyper>), /unknown option 'momentun'/],
    ['unsupported foreach', () => new Adam([p], { foreach: true } as Partial<AdamHyper>), /'foreach' is not supported/],
    ['unsupported capturable', () => new AdamW([p], { capturable: true } as Partial<AdamHyper>), /'capturable' is not supported/],
    ['unknown option in a group', () => new SGD([{ params: [p], nesterow: true } as never]), /unknown option 'nesterow'/],
    ['bad value in a group', () => new SGD([{ params: [p], lr: -0.1 }]), /invalid lr -0.1/],
    ['empty parameter list', () => new SGD([]), /empty parameter list/],
    ['a single Variable', () => new SGD(p as unknown as Variable[]), /wrap a single Variable in an array/],
    ['duplicate parameter', () => new SGD([{ params: [p] }, { params: [p] }]), /more than once/],
    ['not a Variable', () => new SGD([{ params: [p.data as unknown as Variable] }]), /not a Variable/],
  ];
  for (const [label, fn, re] of bad) {
    try {
      fn();
      assert.unreachable(`${label}: no error`);
    } catch (e) {
      assert.instance(e, InvalidArgumentError, label);
      assert.match((e as Error).message, re, label);
    }
  }
  const nonLeaf = scale(p, 2);
  assert.throws(() => new SGD([nonLeaf]), /not a leaf/);
  nonLeaf.releaseGraph();
  nonLeaf.dispose();
  // errors found at step time: a changed hyperparameter, a grad of the wrong shape
  const opt = new SGD([p], { lr: 0.1 });
  opt.paramGroups[0].lr = -0.5;
  setGrad(p, [1, 1]);
  assert.throws(() => opt.step(), /invalid lr -0.5/);
  opt.paramGroups[0].lr = 0.1;
  const wrong = Tensor.from(w, [1, 2, 3], [3], { category: 'gradient' });
  assert.throws(() => { p.grad = wrong; }, (e: unknown) => e instanceof ShapeMismatchError && /a grad of shape \[3\] for a variable of shape \[2\]/.test((e as Error).message));
  wrong.dispose();
  // .data replaced after the grad was set: found at step time
  const old = p.data;
  p.data = Tensor.from(w, [1, 2, 3], [3], { category: 'parameter' });
  try {
    opt.step();
    assert.unreachable('grad shape');
  } catch (e) {
    assert.instance(e, ShapeMismatchError);
    assert.match((e as Error).message, /parameter 0 has shape \[3\] but its grad has shape \[2\]/);
  }
  p.data.dispose();
  p.data = old;
  p.dispose();
});

test('a strided grad (transpose) steps like its contiguous copy; no half-made step', async () => {
  for (const make of [(ps: Variable[]) => new SGD(ps, { lr: 0.1, momentum: 0.9 }), (ps: Variable[]) => new AdamW(ps, { lr: 0.1 })]) {
    const a = param(w, [1, 2, 3, 4], [2, 2]), b = param(w, [1, 2, 3, 4], [2, 2]);
    const a2 = param(w, [1, 2, 3, 4], [2, 2]), b2 = param(w, [1, 2, 3, 4], [2, 2]);
    setGrad(a, [1, 1, 1, 1]); setGrad(a2, [1, 1, 1, 1]);
    b.grad = Tensor.from(w, [1, 2, 3, 4], [2, 2], { category: 'gradient' }).transpose();
    setGrad(b2, [1, 3, 2, 4]);
    make([a, b]).step();
    make([a2, b2]).step();
    assert.equal(await values(a.data), await values(a2.data));
    assert.equal(await values(b.data), await values(b2.data));
    assert.ok(b.grad.strides, 'the grad the user set is left as it was');
    for (const v of [a, b, a2, b2]) v.dispose();
  }
});

test('Optimizer.zeroGrad and Module.zeroGrad refuse unknown options (setToNon would free instead of zeroing)', async () => {
  const lin = new Linear(2, 2, { backend: w });
  const opt = new SGD(lin.parameters(), { lr: 0.1 });
  for (const p of lin.parameters()) setGrad(p, new Array(p.data.size).fill(1));
  assert.throws(() => opt.zeroGrad({ setToNon: false } as never), (e: unknown) => e instanceof InvalidArgumentError && /SGD\.zeroGrad: unknown option "setToNon" \(known: setToNone\)/.test((e as Error).message));
  assert.throws(() => lin.zeroGrad({ setToNon: false } as never), (e: unknown) => e instanceof InvalidArgumentError && /Linear\.zeroGrad: unknown option "setToNon"/.test((e as Error).message));
  assert.ok(lin.weight.grad, 'nothing was freed');
  opt.zeroGrad({ setToNone: false });
  assert.equal(Array.from(await lin.weight.grad!.toArray()), [0, 0, 0, 0]);
  lin.dispose();
});

test('stateBytesToCome: the optimizer bytes the first step allocates, to the byte, for every optimizer (8-bit and master weights too); 0 after it', () => {
  const b = new WasmBackend();
  try {
    // a 64 x 80 matrix (5120 elements: 8-bit state from 4096 on), a bias of 80, a bfloat16 vector of 300
    const make = () => [param(b, rand(5120, 1), [64, 80]), param(b, rand(80, 2), [80]), param(b, rand(300, 3), [300], 'bfloat16')];
    const cases: [string, (ps: Variable[]) => Optimizer<OptimizerHyper>, number][] = [
      ['AdamW', (ps) => new AdamW(ps), 8 * 5500],
      ['Adam amsgrad', (ps) => new Adam(ps, { amsgrad: true }), 12 * 5500],
      ['SGD momentum', (ps) => new SGD(ps, { lr: 0.1, momentum: 0.9 }), 4 * 5500],
      ['SGD', (ps) => new SGD(ps, { lr: 0.1 }), 0],
      ['RMSprop', (ps) => new RMSprop(ps), 4 * 5500],
      ['Adagrad', (ps) => new Adagrad(ps), 4 * 5500],
      ['AdamW masterWeights', (ps) => new AdamW(ps, { masterWeights: true }), 8 * 5500 + 4 * 300],
      // codes a byte an element and a float32 absmax per block of 256 (20 blocks), for each of two states
      ['AdamW8bit', (ps) => new AdamW8bit(ps), 2 * (5120 + 4 * 20) + 8 * 380],
      ['AdamW8bit blockSize 2048', (ps) => new AdamW8bit(ps, { blockSize: 2048 }), 2 * (5120 + 4 * 3) + 8 * 380],
      ['SGD8bit', (ps) => new SGD8bit(ps, { lr: 0.1, momentum: 0.9 }), 5120 + 4 * 20 + 4 * 380],
      ['RMSprop8bit', (ps) => new RMSprop8bit(ps), 5120 + 4 * 20 + 4 * 380],
    ];
    for (const [name, make8, want] of cases) {
      const ps = make();
      const opt = make8(ps);
      assert.is(opt.stateBytesToCome(), want, name);
      const before = b.memory.memoryAllocated('optimizer');
      for (const [i, p] of ps.entries()) setGrad(p, rand(p.data.size, 10 + i, 0.1));
      opt.step();
      assert.is(b.memory.memoryAllocated('optimizer') - before, want, `${name}: the step allocated that`);
      assert.is(opt.stateBytesToCome(), 0, `${name}: nothing more to come`);
      opt.dispose();
      for (const p of ps) p.dispose();
    }
  } finally {
    b.destroy();
  }
});

test.run();
