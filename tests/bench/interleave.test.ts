// The interleaving of bench:memory and bench:train --checkpoint (bench/interleave.ts): every round
// runs every arm once, the order rotating so that each arm takes each place equally often, and the
// step-time ratio pairs steps of the same round.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { median, pairedRatio, roundOrder, warmedRounds } from '../../bench/interleave.js';

test('roundOrder runs every arm once a round, and each arm takes each place once in n rounds', () => {
  const n = 4;
  const places = Array.from({ length: n }, () => new Set<number>());
  for (let r = 0; r < n; r++) {
    const order = roundOrder(n, r);
    assert.equal([...order].sort(), [0, 1, 2, 3]);
    order.forEach((arm, place) => places[arm].add(place));
  }
  for (const p of places) assert.is(p.size, n);
  assert.equal(roundOrder(3, 0), [0, 1, 2]);
  assert.equal(roundOrder(3, 4), [1, 2, 0]);
});

test('pairedRatio: a slowdown shared by the arms of a round cancels out; the spread is the per-round range', () => {
  // The baseline and an arm 1.2x slower, measured in the same rounds while the machine slows down.
  const base = [100, 200, 400, 800, 1600], arm = base.map((x) => 1.2 * x);
  assert.equal(pairedRatio(arm, base), { median: 1.2, spread: [1.2, 1.2] });
  const r = pairedRatio([110, 90, 130], [100, 100, 100]);
  assert.is(r.median, 1.1);
  assert.equal(r.spread, [0.9, 1.3]);
  assert.throws(() => pairedRatio([1, 2], [1]), /as many steps/);
  assert.throws(() => pairedRatio([], []), /as many steps/);
});

test('median takes the middle value (the upper one of an even count)', () => {
  assert.is(median([3, 1, 2]), 2);
  assert.is(median([4, 1, 3, 2]), 3);
  assert.throws(() => median([]), /no values/);
});

test('warmedRounds: at least `warmup` rounds and minMs of them, then exactly `steps` measured rounds, numbered on', async () => {
  const calls: [number, boolean][] = [];
  // Rounds that take no time: the warm-up count is the minimum.
  assert.is(await warmedRounds(3, 4, async (i, m) => { calls.push([i, m]); }, 0), 3);
  assert.equal(calls, [[0, false], [1, false], [2, false], [3, true], [4, true], [5, true], [6, true]]);
  // A clock that each round moves 15 ms, and 60 ms of warm-up: rounds until 60 ms have passed (more
  // than the one asked), none measured early.
  calls.length = 0;
  let clock = 0;
  const w = await warmedRounds(1, 2, async (i, m) => { calls.push([i, m]); clock += 15; }, 60, () => clock);
  assert.is(w, 4, 'rounds start at 0, 15, 30, 45 ms; at 60 the warm-up is over');
  assert.equal(calls, [[0, false], [1, false], [2, false], [3, false], [4, true], [5, true]]);
});

test.run();
