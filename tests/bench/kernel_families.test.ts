// bench:kernels' family section (bench/families.ts) iterates the kernel families' case table
// (scripts/family-cases.ts): every family and every case of it appears, with rates where the case
// states its work. Run on wasm at the small sizes with a one-shot timer: no timing is asserted.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { benchFamilies, type Timer } from '../../bench/families.js';
import { Ctx, FAMILIES, type Family } from '../../scripts/family-cases.js';

const w = new WasmBackend();
let calls = 0;
const once: Timer = async (fn) => {
  calls++;
  const t0 = performance.now();
  await fn();
  const ms = Math.max(performance.now() - t0, 1e-3);
  return { bestMs: ms, medianMs: ms, reps: 1 };
};

test('benchFamilies times every case of every family in FAMILIES, with GB/s and GFLOP/s where the case states its work', async () => {
  const res = await benchFamilies(w, 'small', once, { sync: false });
  assert.equal(Object.keys(res), FAMILIES.map((f) => f.family), 'every family, in order');
  let total = 0;
  for (const f of FAMILIES) {
    const cases = f.cases('small');
    total += cases.length;
    assert.equal(res[f.family].size, 'small');
    assert.equal(Object.keys(res[f.family].cases), cases.map((c) => c.name), `${f.family}: every case, names unique`);
    for (const c of cases) {
      const row = res[f.family].cases[c.name];
      assert.ok(!('error' in row), `${f.family}: ${c.name}: ${'error' in row ? row.error : ''}`);
      if ('error' in row) continue;
      assert.ok(Number.isFinite(row.ms) && row.ms > 0 && row.reps === 1, `${c.name}: ms ${row.ms}`);
      assert.is(row.gbps !== undefined, c.work?.bytes !== undefined, `${c.name}: GB/s iff the case states bytes`);
      assert.is(row.gflops !== undefined, c.work?.flops !== undefined, `${c.name}: GFLOP/s iff the case states flops`);
      if (row.gbps !== undefined) assert.ok(row.gbps > 0 && Number.isFinite(row.gbps));
      if (row.gflops !== undefined) assert.ok(row.gflops > 0 && Number.isFinite(row.gflops));
    }
  }
  assert.is(calls, total, 'one timed run per case');
  // Most cases state their work (the ones that do not: composite checks such as in-place chains, flag handling).
  const stated = FAMILIES.flatMap((f) => f.cases('small')).filter((c) => c.work).length;
  assert.ok(stated >= total * 0.8, `${stated} of ${total} cases state their work`);
});

test('benchFamilies frees what each case allocated, also when a case throws, records the error, and fills the record given', async () => {
  const before = w.memory.memoryAllocated();
  const broken: Family = {
    family: 'broken',
    cases: () => [{
      name: 'throws in run', tolerance: { kind: 'exact' },
      prepare: (c: Ctx) => {
        c.t([1000], 'float32', new Float32Array(1000));
        return { run: () => { throw new Error('kernel refused\nsecond line'); }, outputs: async () => ({}) };
      },
    }],
  };
  const into = {};
  const res = await benchFamilies(w, 'small', once, { sync: false, families: [broken, FAMILIES.find((f) => f.family === 'softmax')!], into });
  assert.is(res, into, 'fills the record given (bench:kernels prints it when stopped midway)');
  assert.equal(Object.keys(res), ['broken', 'softmax']);
  assert.equal(res.broken.cases['throws in run'], { error: 'kernel refused' });
  assert.ok(!('error' in Object.values(res.softmax.cases)[0]), 'the next family still runs');
  assert.is(w.memory.memoryAllocated(), before);
});

test.run();
