// Learning-rate schedulers: rate sequences against float64 formulas written here, PyTorch's
// documented examples, and PyTorch's chainable (recursive) forms, which the closed forms used by
// memfit must agree with; state dicts; errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Variable } from '../../src/autograd/variable.js';
import { InvalidArgumentError } from '../../src/index.js';
import { invalid } from '../helpers/errors.js';
import {
  SGD, AdamW, StepLR, LambdaLR, LinearLR, CosineAnnealingLR, SequentialLR, cosineWithWarmup, type LRScheduler,
} from '../../src/optim/index.js';

const w = new WasmBackend();

function param(): Variable {
  return new Variable(Tensor.from(w, [1, 2], [2], { category: 'parameter' }), { requiresGrad: true });
}

/** An SGD with one group per lr. */
function sgd(...lrs: number[]): SGD {
  return new SGD(lrs.map((lr) => ({ params: [param()], lr })));
}

/** Rates after construction (epoch 0) and after each of `steps` steps, per group. */
function run(s: LRScheduler, steps: number): number[][] {
  const out = [s.getLastLr()];
  for (let i = 0; i < steps; i++) {
    s.step();
    out.push(s.getLastLr());
    assert.equal(s.optimizer.paramGroups.map((g) => g.lr), s.getLastLr(), 'group lr = getLastLr()');
    assert.is(s.lastEpoch, i + 1);
  }
  return out;
}

function near(got: number[][], want: number[][], tol: number, label: string): void {
  assert.is(got.length, want.length, label);
  got.forEach((row, e) => row.forEach((x, g) => {
    assert.ok(Math.abs(x - want[e][g]) <= tol * Math.max(1e-12, Math.abs(want[e][g])), `${label}: epoch ${e} group ${g}: ${x} vs ${want[e][g]}`);
  }));
}

test('the constructor records initialLr and makes the first step (lastEpoch 0), as PyTorch', () => {
  const opt = sgd(0.1, 0.02);
  const s = new StepLR(opt, 2, 0.5);
  assert.equal(opt.paramGroups.map((g) => g.initialLr), [0.1, 0.02]);
  assert.equal(s.baseLrs, [0.1, 0.02]);
  assert.is(s.lastEpoch, 0);
  assert.equal(s.getLastLr(), [0.1, 0.02]);
  // a second scheduler keeps the recorded initialLr (setdefault), not the current lr
  opt.paramGroups[0].lr = 7;
  const s2 = new LinearLR(opt, { startFactor: 0.5, totalIters: 2 });
  assert.equal(s2.baseLrs, [0.1, 0.02]);
  assert.equal(s2.getLastLr(), [0.05, 0.01]);
});

test('StepLR: PyTorch\'s documented example (0.05 until 30, 0.005 until 60, 0.0005 until 90) and gamma^floor(e / stepSize)', () => {
  const s = new StepLR(sgd(0.05, 1), 30, 0.1);
  const got = run(s, 100);
  for (let e = 0; e <= 100; e++) {
    const doc = e < 30 ? 0.05 : e < 60 ? 0.005 : e < 90 ? 0.0005 : 0.00005;
    assert.ok(Math.abs(got[e][0] - doc) <= 1e-12 * doc, `epoch ${e}: ${got[e][0]} vs ${doc}`);
    assert.ok(Math.abs(got[e][1] - 0.1 ** Math.floor(e / 30)) <= 1e-15);
  }
});

test('LinearLR: PyTorch\'s documented example and agreement with its chainable form', () => {
  const s = new LinearLR(sgd(0.05), { startFactor: 0.5, totalIters: 4 });
  near(run(s, 6), [[0.025], [0.03125], [0.0375], [0.04375], [0.05], [0.05], [0.05]], 1e-12, 'documented');
  for (const [start, end, total] of [[1 / 3, 1, 5], [1, 0.1, 7], [0.25, 0.5, 3]]) {
    const base = 0.3;
    const s2 = new LinearLR(sgd(base), { startFactor: start, endFactor: end, totalIters: total });
    // torch's get_lr: lr * start at 0, then lr * (1 + (end - start) / (total * start + (e - 1) (end - start))) until total
    const want: number[][] = [];
    let lr = base;
    for (let e = 0; e <= 12; e++) {
      if (e === 0) lr *= start;
      else if (e <= total) lr *= 1 + (end - start) / (total * start + (e - 1) * (end - start));
      want.push([lr]);
    }
    near(run(s2, 12), want, 1e-12, `LinearLR(${start}, ${end}, ${total})`);
  }
  const d = new LinearLR(sgd(1));
  near(run(d, 5), [0, 1, 2, 3, 4, 5].map((e) => [1 / 3 + (2 / 3) * (e / 5)]), 1e-12, 'defaults 1/3, 1, 5');
});

test('CosineAnnealingLR: the closed form, equal to PyTorch\'s chainable recursion (over several periods)', () => {
  for (const [tMax, etaMin] of [[10, 0], [7, 0.01], [1, 0.001]]) {
    const base = 0.1;
    const s = new CosineAnnealingLR(sgd(base), tMax, etaMin);
    const closed: number[][] = [], chained: number[][] = [];
    let lr = base;
    for (let e = 0; e <= 3 * tMax + 2; e++) {
      closed.push([etaMin + ((base - etaMin) * (1 + Math.cos((Math.PI * e) / tMax))) / 2]);
      if (e === 0) lr = base;
      else if ((e - 1 - tMax) % (2 * tMax) === 0) lr += ((base - etaMin) * (1 - Math.cos(Math.PI / tMax))) / 2;
      else lr = ((1 + Math.cos((Math.PI * e) / tMax)) / (1 + Math.cos((Math.PI * (e - 1)) / tMax))) * (lr - etaMin) + etaMin;
      chained.push([lr]);
    }
    const got = run(s, 3 * tMax + 2);
    near(got, closed, 1e-12, `closed form T=${tMax}`);
    got.forEach((row, e) => assert.ok(Math.abs(row[0] - chained[e][0]) <= 1e-12 + 1e-9 * base, `chainable T=${tMax} epoch ${e}: ${row[0]} vs ${chained[e][0]}`));
    assert.ok(Math.abs(got[tMax][0] - etaMin) <= 1e-15, 'etaMin at tMax');
  }
});

test('LambdaLR: one function or one per group', () => {
  const s = new LambdaLR(sgd(0.1, 1), (e) => 0.9 ** e);
  near(run(s, 5), [0, 1, 2, 3, 4, 5].map((e) => [0.1 * 0.9 ** e, 0.9 ** e]), 1e-14, 'shared');
  const s2 = new LambdaLR(sgd(0.1, 1), [(e) => e + 1, (e) => 1 / (e + 1)]);
  near(run(s2, 3), [0, 1, 2, 3].map((e) => [0.1 * (e + 1), 1 / (e + 1)]), 1e-14, 'per group');
  assert.throws(() => new LambdaLR(sgd(0.1, 1), [(e) => e]), /expected 2 lrLambdas/);
});

test('SequentialLR: linear warmup then cosine, the second scheduler counting from 0 at the milestone (torch\'s step(0))', () => {
  const opt = sgd(0.1, 0.5);
  const warm = new LinearLR(opt, { startFactor: 0.1, totalIters: 3 });
  const cos = new CosineAnnealingLR(opt, 5, 0.001);
  const s = new SequentialLR(opt, [warm, cos], [3]);
  assert.equal(s.getLastLr(), [0.1 * 0.1, 0.5 * 0.1], 'reset to the first scheduler at epoch 0');
  const want = Array.from({ length: 11 }, (_, e) => [0.1, 0.5].map((b) => (e < 3
    ? b * (0.1 + (0.9 * e) / 3)
    : 0.001 + ((b - 0.001) * (1 + Math.cos((Math.PI * (e - 3)) / 5))) / 2)));
  near(run(s, 10), want, 1e-12, 'SequentialLR');
  // three phases, with StepLR last
  const opt3 = sgd(1);
  const s3 = new SequentialLR(opt3, [new LinearLR(opt3, { startFactor: 0.5, totalIters: 2 }), new LambdaLR(opt3, () => 0.8), new StepLR(opt3, 2, 0.5)], [2, 4]);
  near(run(s3, 8), [[0.5], [0.75], [0.8], [0.8], [1], [1], [0.5], [0.5], [0.25]], 1e-12, 'three phases');
});

test('cosineWithWarmup = transformers get_cosine_schedule_with_warmup (and its min_lr_rate variant)', () => {
  const hf = (step: number, warm: number, total: number, minRate: number) => {
    if (step < warm) return step / Math.max(1, warm);
    const progress = (step - warm) / Math.max(1, total - warm);
    const f = 0.5 * (1 + Math.cos(Math.PI * 0.5 * 2 * progress));
    return Math.max(0, f * (1 - minRate) + minRate);
  };
  for (const [warm, total, minRatio] of [[10, 100, 0], [4, 20, 0.1], [0, 8, 0], [5, 6, 0.2]]) {
    const s = cosineWithWarmup(sgd(3e-4, 1), { warmupSteps: warm, totalSteps: total, minLrRatio: minRatio });
    const got = run(s, total);
    near(got, got.map((_, e) => [3e-4 * hf(e, warm, total, minRatio), hf(e, warm, total, minRatio)]), 1e-12, `warmup ${warm} total ${total} min ${minRatio}`);
    assert.is(got[0][1], warm > 0 ? 0 : 1, 'warmup starts from 0');
    assert.ok(Math.abs(got[total][1] - minRatio) <= 1e-12, 'ends at minLrRatio');
    if (warm > 0) assert.ok(Math.abs(got[warm][1] - 1) <= 1e-12, 'peak after warmup');
  }
  const s = cosineWithWarmup(sgd(1), { warmupSteps: 2, totalSteps: 10 });
  assert.throws(() => cosineWithWarmup(sgd(1), { warmupSteps: 5, totalSteps: 4 }), /totalSteps must be an integer >= warmupSteps/);
  assert.throws(() => cosineWithWarmup(sgd(1), { warmupSteps: -1, totalSteps: 4 }), /warmupSteps/);
  assert.throws(() => cosineWithWarmup(sgd(1), { warmupSteps: 1, totalSteps: 4, minLrRatio: 2 }), /minLrRatio/);
  assert.is(s.lastEpoch, 0);
});

test('a scheduler drives the optimizer: each step uses the scheduled lr', async () => {
  const p = param();
  const opt = new SGD([p], { lr: 0.5 });
  const s = new StepLR(opt, 1, 0.5);
  const want = [1, 2];
  for (let t = 0; t < 3; t++) {
    p.grad?.dispose();
    p.grad = Tensor.from(w, [1, -1], [2], { category: 'gradient' });
    opt.step();
    const lr = 0.5 * 0.5 ** t;
    want[0] -= lr;
    want[1] += lr;
    s.step();
  }
  assert.equal(Array.from(await p.data.toArray()), want);
  opt.zeroGrad();
});

test('stateDict: JSON round trip; a new scheduler resumes the same sequence (SequentialLR with nested states too)', () => {
  const make = (opt: SGD) => new SequentialLR(opt, [new LinearLR(opt, { startFactor: 0.2, totalIters: 4 }), new CosineAnnealingLR(opt, 6, 0.01)], [4]);
  for (const kind of ['step', 'linear', 'cosine', 'sequential'] as const) {
    const build = (opt: SGD): LRScheduler => (kind === 'step' ? new StepLR(opt, 3, 0.3) : kind === 'linear' ? new LinearLR(opt, { totalIters: 6 })
      : kind === 'cosine' ? new CosineAnnealingLR(opt, 8) : make(opt));
    const a = build(sgd(0.1, 0.3));
    const b = build(sgd(0.1, 0.3));
    for (let i = 0; i < 5; i++) { a.step(); b.step(); }
    const saved = JSON.parse(JSON.stringify(b.stateDict()));
    assert.is(saved.lastEpoch, 5);
    // resume: the optimizer's state (lr, initialLr) comes back first, then the scheduler's
    const opt = sgd(9, 9);
    const c = build(opt);
    opt.loadStateDict(b.optimizer.stateDict() as never);
    c.loadStateDict(saved);
    assert.equal(c.getLastLr(), b.getLastLr());
    assert.equal(c.baseLrs, [0.1, 0.3]);
    for (let i = 0; i < 8; i++) {
      a.step(); c.step();
      assert.equal(c.getLastLr(), a.getLastLr(), `${kind}: step ${i}`);
      assert.equal(opt.paramGroups.map((g) => g.lr), a.getLastLr());
    }
  }
  const s = new StepLR(sgd(1), 2);
  assert.throws(() => s.loadStateDict({ ...s.stateDict(), stepSize: 0 }), /stepSize must be an integer >= 1/);
  assert.throws(() => s.loadStateDict({ ...s.stateDict(), baseLrs: [1, 2] }), /baseLrs has 2 rates for 1 parameter groups/);
  assert.throws(() => s.loadStateDict({ ...s.stateDict(), lastEpoch: 0.5 }), /lastEpoch/);
});

test('loadStateDict is all or nothing: a bad later sub-state of a SequentialLR changes no sub-scheduler', () => {
  const opt = sgd(0.1);
  const first = new StepLR(opt, 2, 0.5);
  const seq = new SequentialLR(opt, [first, new CosineAnnealingLR(opt, 5)], [3]);
  seq.step();
  const before = JSON.stringify(seq.stateDict());
  const sd = seq.stateDict() as { schedulers: Record<string, unknown>[] } & Record<string, unknown>;
  sd.schedulers[0] = { ...sd.schedulers[0], lastEpoch: 99, gamma: 0.9 };
  sd.schedulers[1] = { ...sd.schedulers[1], tMax: -3 };
  invalid(() => seq.loadStateDict(sd as never), /CosineAnnealingLR\.loadStateDict: tMax must be an integer >= 1/);
  assert.is(JSON.stringify(seq.stateDict()), before);
  assert.is(first.lastEpoch, 1);
  assert.is(first.gamma, 0.5);
  // a bad outer field after good sub-states changes nothing either
  const sd2 = { ...seq.stateDict(), lastLr: [-1] };
  (sd2.schedulers as Record<string, unknown>[])[0] = { ...(sd2.schedulers as Record<string, unknown>[])[0], lastEpoch: 7 };
  invalid(() => seq.loadStateDict(sd2 as never), /lastLr must be an array of finite numbers >= 0/);
  assert.is(JSON.stringify(seq.stateDict()), before);
});

test('unknown option keys are refused, never ignored', () => {
  const opt = sgd(0.1);
  invalid(() => cosineWithWarmup(opt, { warmupSteps: 1, totalSteps: 2, minLRRatio: 0.1 } as never), /cosineWithWarmup: unknown option "minLRRatio"/);
  invalid(() => new LinearLR(opt, { startfactor: 0.5 } as never), /LinearLR: unknown option "startfactor"/);
  invalid(() => new LinearLR(opt, 0.5 as never), /LinearLR: options must be an object, got 0\.5/);
  // the right spellings still work
  const s = cosineWithWarmup(sgd(1), { warmupSteps: 1, totalSteps: 2, minLrRatio: 0.1 });
  s.step(); s.step();
  assert.ok(Math.abs(s.getLastLr()[0] - 0.1) < 1e-12);
  assert.is(new LinearLR(sgd(1), { startFactor: 0.5 }).getLastLr()[0], 0.5);
});

test('scheduler errors', () => {
  const opt = sgd(0.1);
  const bad: [() => unknown, RegExp][] = [
    [() => new StepLR(opt, 0), /stepSize must be an integer >= 1/],
    [() => new StepLR(opt, 2, -1), /gamma/],
    [() => new LinearLR(opt, { startFactor: 0 }), /startFactor must be in \(0, 1\]/],
    [() => new LinearLR(opt, { endFactor: 1.5 }), /endFactor must be in \[0, 1\]/],
    [() => new LinearLR(opt, { totalIters: 0 }), /totalIters/],
    [() => new CosineAnnealingLR(opt, 0), /tMax must be an integer >= 1/],
    [() => new CosineAnnealingLR(opt, 5, -1), /etaMin/],
    [() => new SequentialLR(opt, [new StepLR(opt, 1)], [3]), /expected 0 milestones/],
    [() => new SequentialLR(opt, [new StepLR(opt, 1), new StepLR(opt, 2)], [0]), /milestones must be increasing integers >= 1/],
    [() => new SequentialLR(opt, [new StepLR(opt, 1), new StepLR(sgd(1), 2)], [2]), /schedulers\[1\] drives another optimizer/],
    [() => new StepLR({} as never, 1), /expected an Optimizer/],
  ];
  for (const [fn, re] of bad) {
    try {
      fn();
      assert.unreachable(`no error for ${re}`);
    } catch (e) {
      assert.instance(e, InvalidArgumentError, String(re));
      assert.match((e as Error).message, re);
    }
  }
  const nan = new LambdaLR(sgd(0.1), (e) => (e === 2 ? NaN : 1));
  nan.step();
  assert.throws(() => nan.step(), /learning rate of group 0 at epoch 2 would be NaN/);
  assert.is(nan.lastEpoch, 1, 'a failed step changes nothing');
  // a group added after the scheduler was made
  const o2 = new AdamW([param()]);
  const s2 = new StepLR(o2, 1);
  o2.addParamGroup({ params: [param()] });
  assert.throws(() => s2.step(), /2 parameter groups but the scheduler was made for 1/);
});

test.run();
