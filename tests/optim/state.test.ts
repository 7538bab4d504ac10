// Optimizer state and gradients as memory: zeroGrad (freeing, or zero-filling in place), state
// bytes in the 'optimizer' category, no readbacks in step(), and stateDict/loadStateDict (bitwise
// round trip on wasm, conversion of other float dtypes, and the checks with their messages).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Variable } from '../../src/autograd/variable.js';
import { mul, sum } from '../../src/autograd/ops.js';
import { InvalidArgumentError, ShapeMismatchError } from '../../src/index.js';
import {
  SGD, Adam, AdamW, RMSprop, Adagrad, type Optimizer, type OptimizerHyper, type OptimizerStateDict, type AdamHyper,
} from '../../src/optim/index.js';
import { rand, param, setGrad } from '../helpers/values.js';

const w = new WasmBackend();
const bytes = (c: 'gradient' | 'optimizer' | 'temporary') => w.memory.memoryAllocated(c);

const SHAPES = [[3, 4], [5]];
const N = 17;
const makeParams = (dtype = 'float32') => SHAPES.map((s, k) => param(w, rand(s[0] * (s[1] ?? 1), 1 + k), s, dtype));

// ---- zeroGrad ------------------------------------------------------------------------------------

test('zeroGrad() (setToNone by default) frees the gradients: gradient memory goes to 0', () => {
  const ps = makeParams();
  const opt = new SGD(ps, { lr: 0.1 });
  // one grad from backward, one set by hand
  const loss = sum(mul(ps[0], ps[0]));
  loss.backward();
  loss.dispose();
  setGrad(ps[1], rand(5, 9));
  assert.is(bytes('gradient'), 4 * N);
  opt.zeroGrad();
  assert.is(bytes('gradient'), 0);
  assert.is(ps[0].grad, null);
  assert.is(ps[1].grad, null);
  opt.zeroGrad(); // no grads: nothing to do
  for (const p of ps) p.dispose();
});

test('zeroGrad({ setToNone: false }) keeps the buffers, writes zeros (NaN and inf too), allocates nothing', async () => {
  const ps = makeParams();
  const opt = new Adam(ps);
  setGrad(ps[0], Float32Array.from(rand(12, 3), (x, i) => (i === 2 ? NaN : i === 5 ? -Infinity : x)));
  setGrad(ps[1], [1, 2, Infinity, 4, NaN]);
  const grads = ps.map((p) => p.grad);
  const before = w.memory.memoryStats();
  opt.zeroGrad({ setToNone: false });
  const after = w.memory.memoryStats();
  assert.is(after.allocated.allocations, before.allocated.allocations, 'no allocation');
  assert.is(bytes('gradient'), 4 * N);
  for (let k = 0; k < 2; k++) {
    assert.is(ps[k].grad, grads[k], 'same tensor');
    assert.ok((await ps[k].grad!.toArray()).every((x) => Object.is(x, 0)), 'all +0');
  }
  opt.zeroGrad();
  for (const p of ps) p.dispose();
});

// ---- state memory ----------------------------------------------------------------------------------

test('state lives in the optimizer category, allocated at the first step, exactly its bytes; step leaves no temporaries and reads nothing back', () => {
  const cases: [string, (ps: Variable[]) => Optimizer<OptimizerHyper>, number][] = [
    ['SGD', (ps) => new SGD(ps, { lr: 0.1 }), 0],
    ['SGD momentum', (ps) => new SGD(ps, { lr: 0.1, momentum: 0.9, weightDecay: 0.1 }), 1],
    ['Adam', (ps) => new Adam(ps, { weightDecay: 0.1 }), 2],
    ['AdamW', (ps) => new AdamW(ps), 2],
    ['AdamW amsgrad', (ps) => new AdamW(ps, { amsgrad: true }), 3],
    ['RMSprop', (ps) => new RMSprop(ps), 1],
    ['RMSprop centered momentum', (ps) => new RMSprop(ps, { centered: true, momentum: 0.9 }), 3],
    ['Adagrad', (ps) => new Adagrad(ps, { initialAccumulatorValue: 0.1 }), 1],
  ];
  for (const dtype of ['float32', 'bfloat16']) {
    for (const [label, make, tensors] of cases) {
      const ps = makeParams(dtype);
      const opt = make(ps);
      assert.is(bytes('optimizer'), 0, `${label}: nothing before the first step`);
      const read = w.read;
      w.read = () => { throw new Error('step() read back'); };
      try {
        for (let t = 0; t < 2; t++) {
          ps.forEach((p, k) => setGrad(p, rand(p.data.size, 10 * t + k)));
          const { trace } = w.memory.memoryTrace(() => opt.step());
          assert.is(bytes('optimizer'), tensors * 4 * N, `${label} (${dtype}): ${tensors} float32 tensors per parameter element`);
          assert.is(bytes('temporary'), 0, `${label}: temporaries freed`);
          if (t === 0) {
            for (const e of trace.live) {
              assert.is(e.category, 'optimizer');
              assert.ok(e.label.startsWith(label.split(' ')[0] + '.'), `${label}: label ${e.label}`);
            }
          } else assert.is(trace.live.length, 0, `${label}: the second step allocates nothing that stays`);
        }
      } finally {
        w.read = read;
      }
      opt.dispose();
      assert.is(bytes('optimizer'), 0, `${label}: dispose frees the state`);
      opt.zeroGrad();
      for (const p of ps) p.dispose();
    }
  }
});

// ---- stateDict ------------------------------------------------------------------------------------

const GRADS = (t: number, k: number) => rand(SHAPES[k][0] * (SHAPES[k][1] ?? 1), 1000 + 10 * t + k, [1, 0.1, 3, 0.5, 2][t]);

async function snapshot(ps: Variable[]): Promise<number[][]> {
  return Promise.all(ps.map(async (p) => Array.from(await p.data.toArray())));
}

test('stateDict round trip: 2 steps, save, load into a new optimizer over copies, 3 more steps = 5 uninterrupted steps, bitwise', async () => {
  type Make = (ps: Variable[], lr: number) => Optimizer<OptimizerHyper>;
  const cases: [string, Make, string][] = [
    ['SGD nesterov', (ps, lr) => new SGD(ps, { lr, momentum: 0.9, nesterov: true }), 'float32'],
    ['Adam amsgrad', (ps, lr) => new Adam(ps, { lr, amsgrad: true, weightDecay: 0.1 }), 'float32'],
    ['AdamW', (ps, lr) => new AdamW(ps, { lr }), 'float32'],
    ['AdamW bf16', (ps, lr) => new AdamW(ps, { lr }), 'bfloat16'],
    ['RMSprop', (ps, lr) => new RMSprop(ps, { lr, centered: true, momentum: 0.5 }), 'float32'],
    ['Adagrad', (ps, lr) => new Adagrad(ps, { lr, lrDecay: 0.1 }), 'float32'],
  ];
  for (const [label, make, dtype] of cases) {
    const a = makeParams(dtype), b = makeParams(dtype);
    const optA = make(a, 0.01), optB = make(b, 0.01);
    const run = (opt: Optimizer<OptimizerHyper>, ps: Variable[], from: number, to: number) => {
      for (let t = from; t < to; t++) {
        ps.forEach((p, k) => setGrad(p, GRADS(t, k)));
        opt.step();
      }
    };
    run(optA, a, 0, 5);
    run(optB, b, 0, 2);
    const sd = optB.stateDict();
    // a fresh optimizer over copies of b's parameters, made with another lr (the state dict restores 0.01)
    const c = await Promise.all(b.map(async (p) => param(w, await p.data.toArray(), [...p.shape], dtype)));
    const optC = make(c, 0.5);
    optC.loadStateDict(sd);
    assert.is(optC.paramGroups[0].lr, 0.01, `${label}: lr restored`);
    optB.dispose(); // the loaded state is a copy
    run(optC, c, 2, 5);
    assert.equal(await snapshot(c), await snapshot(a), `${label}: resumed run differs from the uninterrupted one`);
    for (const [i, s] of Object.entries(optC.stateDict().state)) {
      const ref = optA.stateDict().state[Number(i)];
      for (const [k, v] of Object.entries(s)) {
        if (typeof v === 'number') assert.is(v, ref[k], `${label}: ${k}`);
        else assert.equal(Array.from(await v.toArray()), Array.from(await (ref[k] as Tensor).toArray()), `${label}: state ${k}`);
      }
    }
    for (const o of [optA, optC]) { o.zeroGrad(); o.dispose(); }
    for (const p of [...a, ...b, ...c]) { p.zeroGrad(); p.dispose(); }
  }
  assert.is(bytes('optimizer'), 0);
});

test('stateDict layout: PyTorch structure in camelCase, ids across groups, the optimizer\'s own tensors', () => {
  const [p0, p1] = makeParams();
  const p2 = param(w, [1, 2], [2]);
  const opt = new Adam([{ params: [p0, p1] }, { params: [p2], lr: 0.5, betas: [0.8, 0.9] }]);
  setGrad(p0, rand(12, 1));
  setGrad(p2, [1, 1]);
  opt.step();
  const sd = opt.stateDict();
  assert.equal(Object.keys(sd.state), ['0', '2'], 'p1 had no grad: no state');
  assert.equal(Object.keys(sd.state[0]).sort(), ['expAvg', 'expAvgSq', 'step']);
  assert.is(sd.state[2].step, 1);
  assert.is(sd.state[0].expAvg, opt.getState(p0)!.expAvg);
  assert.equal(sd.paramGroups, [
    { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, amsgrad: false, maximize: false, params: [0, 1] },
    { lr: 0.5, betas: [0.8, 0.9], eps: 1e-8, weightDecay: 0, amsgrad: false, maximize: false, params: [2] },
  ]);
  sd.paramGroups[1].betas[0] = 0.1; // a copy: the optimizer is unaffected
  assert.equal(opt.paramGroups[1].betas, [0.8, 0.9]);
  opt.dispose();
  for (const p of [p0, p1, p2]) { p.zeroGrad(); p.dispose(); }
});

test('loadStateDict converts state tensors of another float dtype (bfloat16) into float32 optimizer tensors', async () => {
  const ps = makeParams();
  const opt = new AdamW(ps);
  ps.forEach((p, k) => setGrad(p, GRADS(0, k)));
  opt.step();
  const sd = opt.stateDict();
  const low: OptimizerStateDict<AdamHyper> = {
    paramGroups: sd.paramGroups,
    state: Object.fromEntries(Object.entries(sd.state).map(([i, s]) => [i, { ...s, expAvg: (s.expAvg as Tensor).to('bfloat16') }])),
  };
  const other = new AdamW(makeParams());
  const ps2 = other.paramGroups[0].params;
  other.loadStateDict(low);
  for (let k = 0; k < 2; k++) {
    const m = other.getState(ps2[k])!.expAvg as Tensor;
    assert.is(m.dtype, 'float32');
    assert.is(m.category, 'optimizer');
    assert.equal(Array.from(await m.toArray()), Array.from(await (low.state[k].expAvg as Tensor).toArray()));
  }
  for (const s of Object.values(low.state)) (s.expAvg as Tensor).dispose();
  opt.dispose();
  other.dispose();
  for (const p of [...ps, ...ps2]) { p.zeroGrad(); p.dispose(); }
});

test('loadStateDict checks groups, parameter counts, keys, steps, shapes and hyperparameters first, and changes nothing on error', () => {
  const ps = makeParams();
  const opt = new Adam(ps, { lr: 0.1 });
  ps.forEach((p, k) => setGrad(p, GRADS(0, k)));
  opt.step();
  const good = opt.stateDict();
  const target = new Adam(makeParams(), { lr: 0.2 });
  const tp = target.paramGroups[0].params;
  tp.forEach((p, k) => setGrad(p, GRADS(1, k)));
  target.step();
  const m0 = target.getState(tp[0])!.expAvg;
  const edit = (f: (sd: OptimizerStateDict<AdamHyper>) => void) => {
    const sd: OptimizerStateDict<AdamHyper> = {
      state: Object.fromEntries(Object.entries(good.state).map(([i, s]) => [i, { ...s }])),
      paramGroups: good.paramGroups.map((g) => ({ ...g, params: [...g.params] })),
    };
    f(sd);
    return sd;
  };
  const wrongShape = new Adam([param(w, rand(12, 1), [4, 3]), param(w, rand(5, 2), [5])]);
  const wp = wrongShape.paramGroups[0].params;
  wp.forEach((p, k) => setGrad(p, GRADS(0, k)));
  wrongShape.step();
  const cases: [string, OptimizerStateDict<AdamHyper>, RegExp, typeof InvalidArgumentError | typeof ShapeMismatchError][] = [
    ['two groups', edit((sd) => { sd.paramGroups.push({ ...sd.paramGroups[0], params: [] }); }), /2 parameter groups, this optimizer has 1/, InvalidArgumentError],
    ['param count', edit((sd) => { sd.paramGroups[0].params.pop(); }), /paramGroups\[0\] has 1 parameters in the state dict, 2 here/, InvalidArgumentError],
    ['missing key', edit((sd) => { delete sd.state[1].expAvgSq; }), /state\[1\]\.expAvgSq is missing/, InvalidArgumentError],
    ['extra key', edit((sd) => { sd.state[0].momentumBuffer = sd.state[0].expAvg; }), /state\[0\] has key 'momentumBuffer'/, InvalidArgumentError],
    ['bad step', edit((sd) => { sd.state[0].step = 1.5; }), /state\[0\]\.step must be a non-negative integer/, InvalidArgumentError],
    ['unknown id', edit((sd) => { sd.state[7] = sd.state[0]; }), /parameter id 7/, InvalidArgumentError],
    ['bad hyperparameter', edit((sd) => { sd.paramGroups[0].lr = -1; }), /invalid lr -1/, InvalidArgumentError],
    ['unknown hyperparameter', edit((sd) => { (sd.paramGroups[0] as unknown as Record<string, unknown>).momentum = 0.9; }), /unknown option 'momentum'/, InvalidArgumentError],
    ['amsgrad without its state', edit((sd) => { sd.paramGroups[0].amsgrad = true; }), /state\[0\]\.maxExpAvgSq is missing/, InvalidArgumentError],
    ['wrong shape', wrongShape.stateDict(), /state\[0\]\.expAvg has shape \[4, 3\] but parameter 0 has shape \[3, 4\]/, ShapeMismatchError],
  ];
  const allocs = w.memory.memoryStats().byCategory.optimizer.allocations;
  for (const [label, sd, re, cls] of cases) {
    try {
      target.loadStateDict(sd);
      assert.unreachable(`${label}: no error`);
    } catch (e) {
      assert.instance(e, cls, label);
      assert.match((e as Error).message, re, label);
    }
    assert.is(target.getState(tp[0])!.expAvg, m0, `${label}: state unchanged`);
    assert.is(target.paramGroups[0].lr, 0.2, `${label}: hyperparameters unchanged`);
  }
  assert.is(w.memory.memoryStats().byCategory.optimizer.allocations, allocs, 'nothing allocated by failed loads');
  // and a good one goes through
  target.loadStateDict(good);
  assert.is(target.paramGroups[0].lr, 0.1);
  assert.is(target.getState(tp[0])!.step, 1);
  for (const o of [opt, target, wrongShape]) o.dispose();
  for (const p of [...ps, ...tp, ...wp]) { p.zeroGrad(); p.dispose(); }
});

test.run();
