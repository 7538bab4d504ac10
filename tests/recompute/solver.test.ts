// The planner's choice as a pure function (src/recompute/solver.ts): the exact search and the
// Pareto front against brute force over every subset, conflicts between nested modules, the greedy
// ratio rule beyond EXACT_LIMIT candidates; the peak prediction (src/recompute/predict.ts) on a
// hand-made memory curve; memory budgets (src/recompute/plan.ts parseMemoryBudget).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mulberry32 } from '../helpers/values.js';
import { EXACT_LIMIT, allSets, candidateFront, exactFront, greedyFront, overlaps, paretoFront, type SolverItem, type SolverSet } from '../../src/recompute/solver.js';
import { curvePeak, peakModelOf, predictPeak } from '../../src/recompute/predict.js';
import { budgetBytes, parseMemoryBudget } from '../../src/recompute/plan.js';
import { invalid } from '../helpers/errors.js';
import { InvalidArgumentError } from '../../src/errors.js';
import type { MemoryEvent } from '../../src/backend/memory.js';

/** Items for `layers` decoder layers: the layer, its attention and its MLP, plain and under one policy. */
function items(layers: number, rand: () => number): SolverItem[] {
  const out: SolverItem[] = [];
  for (let l = 0; l < layers; l++) {
    for (const m of [`layers.${l}`, `layers.${l}.selfAttn`, `layers.${l}.mlp`]) {
      for (const p of ['', ' [saveMatmuls]']) out.push({ name: m + p, modules: [m], bytesSaved: Math.floor(rand() * 1000), msAdded: Math.round(rand() * 100) }); // integer ms: sums exact in any order
    }
  }
  return out;
}

/** Every conflict-free subset by brute force. */
function brute(xs: readonly SolverItem[]): SolverSet[] {
  const out: SolverSet[] = [];
  for (let mask = 0; mask < 1 << xs.length; mask++) {
    const chosen = xs.filter((_, i) => mask & (1 << i));
    let ok = true;
    for (let a = 0; a < chosen.length && ok; a++) for (let b = a + 1; b < chosen.length && ok; b++) if (overlaps(chosen[a].modules[0], chosen[b].modules[0])) ok = false;
    if (ok) out.push({ names: chosen.map((c) => c.name), bytesSaved: chosen.reduce((s, c) => s + c.bytesSaved, 0), msAdded: chosen.reduce((s, c) => s + c.msAdded, 0) });
  }
  return out;
}

const key = (s: SolverSet): string => [...s.names].sort().join('|');

test('overlaps: a module and the modules inside it, not siblings that share a prefix', () => {
  assert.ok(overlaps('layers.1', 'layers.1.mlp'));
  assert.ok(overlaps('layers.1.mlp', 'layers.1'));
  assert.ok(overlaps('layers.1', 'layers.1'));
  assert.not.ok(overlaps('layers.1', 'layers.10'));
  assert.not.ok(overlaps('layers.1.mlp', 'layers.1.selfAttn'));
});

test('allSets enumerates exactly the conflict-free subsets; exactFront is their Pareto front', () => {
  const rand = mulberry32(7);
  for (let trial = 0; trial < 5; trial++) {
    const xs = items(2, rand); // 12 candidates: 4096 subsets by brute force
    const all = brute(xs);
    const got = allSets(xs)!;
    assert.equal(new Set(got.map(key)), new Set(all.map(key)));
    assert.is(got.length, all.length);
    assert.is(got.length, 11 * 11, 'per layer: none, the layer (2 ways), or attention x MLP (3 x 3 - 1)');
    const front = exactFront(xs);
    const best = paretoFront(all);
    assert.equal(front.map((s) => [s.bytesSaved, s.msAdded]), best.map((s) => [s.bytesSaved, s.msAdded]));
    // No set beats a front set: more bytes for no more time.
    for (const f of front) for (const s of all) assert.not.ok(s.bytesSaved > f.bytesSaved && s.msAdded <= f.msAdded - 1e-12, `${key(s)} dominates ${key(f)}`);
  }
});

test('a negative measured time counts as 0; the empty set is always on the front', () => {
  const xs: SolverItem[] = [{ name: 'a', modules: ['a'], bytesSaved: 10, msAdded: -3 }, { name: 'b', modules: ['b'], bytesSaved: 5, msAdded: 2 }];
  const f = exactFront(xs);
  assert.equal(f.map((s) => s.names), [['a'], ['a', 'b']]);
  assert.is(f[0].msAdded, 0);
  assert.throws(() => exactFront([xs[0], xs[0]]), /listed twice/);
});

test('beyond EXACT_LIMIT candidates: the greedy ratio rule (most bytes per ms first, conflicts skipped)', () => {
  const rand = mulberry32(3);
  const xs = items(Math.ceil((EXACT_LIMIT + 1) / 6), rand);
  assert.ok(xs.length > EXACT_LIMIT);
  assert.is(allSets(xs), null);
  const { front, method } = candidateFront(xs);
  assert.is(method, 'greedy');
  assert.equal(front, greedyFront(xs));
  for (const s of front) {
    const chosen = xs.filter((x) => s.names.includes(x.name));
    for (let a = 0; a < chosen.length; a++) for (let b = a + 1; b < chosen.length; b++) assert.not.ok(overlaps(chosen[a].modules[0], chosen[b].modules[0]));
  }
  const small = items(1, rand);
  assert.is(candidateFront(small).method, 'exact');
  // The greedy front takes the best ratio first.
  const g = greedyFront([{ name: 'x', modules: ['x'], bytesSaved: 100, msAdded: 10 }, { name: 'y', modules: ['y'], bytesSaved: 100, msAdded: 1 }]);
  assert.equal(g.map((s) => s.names), [[], ['y'], ['y', 'x']]);
});

/** Events of a toy step: forward allocates a (2), b (3) in modules m0, m1; backward frees them in reverse. */
function toyEvents(): MemoryEvent[] {
  let seq = 0;
  const ev = (kind: 'alloc' | 'free', id: number, bytes: number, label: string): MemoryEvent => ({ kind, id, bytes, category: 'activation', label, seq: seq++ });
  return [
    ev('alloc', 1, 2, 'm0/op'), ev('alloc', 2, 3, 'm1/op'), ev('alloc', 3, 4, 'Model/loss'), // forward: 3 events
    ev('free', 3, 4, 'Model/loss.backward'), ev('alloc', 4, 1, 'm1/op.backward'), ev('free', 2, 3, 'm1/op.backward'), ev('free', 4, 1, 'm1/op.backward'),
    ev('free', 1, 2, 'm0/op.backward'),
  ];
}

test('predictPeak: the curve less each checkpointed module\'s held bytes between its forward and backward, and recompute peaks', () => {
  const model = peakModelOf(10, toyEvents(), 3, ['m0', 'm1']);
  assert.equal(model.curve, [10, 12, 15, 19, 15, 16, 13, 12, 10]);
  assert.equal(model.windows.m0, { forwardEnd: 1, backwardStart: 7 });
  assert.equal(model.windows.m1, { forwardEnd: 2, backwardStart: 4 });
  assert.is(curvePeak(model, []), 19);
  assert.is(curvePeak(model, [{ module: 'm1', heldBytesSaved: 3, recomputePeakBytes: null }]), 16, 'the m1 backward (16) is now the highest');
  assert.is(curvePeak(model, [{ module: 'm0', heldBytesSaved: 2, recomputePeakBytes: null }]), 17);
  const both = [{ module: 'm0', heldBytesSaved: 2, recomputePeakBytes: null }, { module: 'm1', heldBytesSaved: 3, recomputePeakBytes: 18 }];
  // m1's recompute peak (18, measured alone) is lower by m0's bytes (not held while m1 recomputes): 16; the curve gives 14.
  assert.is(predictPeak(model, both), 16);
  assert.is(predictPeak(model, [both[1]]), 18);
});

test('memory budgets: bytes with units, percentages of the unplanned activation memory, clear errors', () => {
  assert.equal(parseMemoryBudget(1000), { bytes: 1000 });
  assert.equal(parseMemoryBudget('256MiB'), { bytes: 256 * 2 ** 20 });
  assert.equal(parseMemoryBudget('1.5 GB'), { bytes: 1.5e9 });
  assert.equal(parseMemoryBudget('2e6'), { bytes: 2e6 });
  assert.equal(parseMemoryBudget('50%'), { percent: 50 });
  for (const bad of ['', 'lots', '-5', '0', '150%', '0%', '12 parsecs', Number.NaN, -1]) {
    assert.throws(() => parseMemoryBudget(bad as string), (e: unknown) => e instanceof InvalidArgumentError && /memory budget/.test((e as Error).message), String(bad));
  }
  // numbers and strings follow one rule: a whole number of bytes from 1 to 2^53 - 1
  assert.equal(parseMemoryBudget('1.1GB'), { bytes: 1.1e9 }, 'whole up to floating-point rounding');
  assert.equal(parseMemoryBudget('1.5KiB'), { bytes: 1536 });
  assert.equal(parseMemoryBudget(2e6), { bytes: 2e6 });
  for (const frac of [0.5, '0.4', 2.5, '2.5', '1.3KiB']) {
    invalid(() => parseMemoryBudget(frac), /must be (a whole number of bytes|at least 1 byte)/);
  }
  for (const huge of [1e300, '1e300', 1e20, '1e20', Number.POSITIVE_INFINITY, '1e400']) {
    invalid(() => parseMemoryBudget(huge), /must be at most 9007199254740991 bytes/);
  }
  const profile = { baseline: { peakBytes: 1000, beforeBytes: 100, heldBytes: 700, stepMs: 1 }, baselineAtPeak: { parameter: 100, gradient: 0, optimizer: 0, activation: 800, data: 0, temporary: 100 } };
  assert.is(budgetBytes('50%', profile), 600, 'half the 800 activation bytes at the peak: 1000 - 400');
  assert.is(budgetBytes('100%', profile), 1000);
  assert.is(budgetBytes('4KiB', profile), 4096);
});

test.run();
