// Memory accounting: exact byte counts for known allocation sequences, on both backends.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpuBackend, WasmBackend, type WebGPUBackend } from '../helpers/backends.js';
import { Tensor, sizeClass, MemoryTracker, type Backend } from '../../src/index.js';

let g: WebGPUBackend;
test.before(async () => {
  g = await gpuBackend();
});
test.after(() => g.destroy());

test('size classes: 256 B steps to 4 KiB, then four per power of two', () => {
  assert.equal([1, 256, 257, 4096, 4097, 5000, 6000, 7000, 8000, 8193].map(sizeClass), [256, 256, 512, 4096, 5120, 5120, 6144, 7168, 8192, 10240]);
});

for (const name of ['wasm', 'webgpu'] as const) {
  const get = (): Backend => (name === 'wasm' ? new WasmBackend() : g);

  test(`${name}: allocated / peak / per-category counts are exact; frees return them`, () => {
    const b = get();
    const m = b.memory;
    const base = m.memoryAllocated();
    m.resetPeakMemoryStats();
    const p = Tensor.empty(b, [10, 10], { category: 'parameter' }); // 400 B
    const h = Tensor.empty(b, [7], { dtype: 'bf16', category: 'activation' }); // 14 B
    const q = Tensor.empty(b, [9], { dtype: 'fp4', category: 'activation' }); // 5 B packed
    const s = Tensor.empty(b, [5], { dtype: 'e3m2', category: 'optimizer' }); // 4 B (30 bits)
    assert.is(m.memoryAllocated() - base, 400 + 14 + 5 + 4);
    assert.is(m.memoryAllocated('parameter'), 400);
    assert.is(m.memoryAllocated('activation'), 19);
    assert.is(m.memoryAllocated('optimizer'), 4);
    h.dispose();
    q.dispose();
    assert.is(m.memoryAllocated('activation'), 0);
    assert.is(m.maxMemoryAllocated('activation'), 19);
    assert.is(m.maxMemoryAllocated() - base, 423);
    m.resetPeakMemoryStats();
    assert.is(m.maxMemoryAllocated() - base, 404);
    const st = m.memoryStats();
    assert.is(st.byCategory.parameter.current, 400);
    assert.ok(st.reserved.current >= st.allocated.current);
    p.dispose();
    s.dispose();
    assert.is(m.memoryAllocated(), base);
  });

  test(`${name}: views share storage; the last dispose frees it`, () => {
    const b = get();
    const m = b.memory;
    const base = m.memoryAllocated();
    const t = Tensor.from(b, [1, 2, 3, 4, 5, 6], [2, 3]);
    const v = t.reshape([3, 2]);
    const r = t.slice(1);
    assert.is(m.memoryAllocated() - base, 24);
    t.dispose();
    v.dispose();
    assert.is(m.memoryAllocated() - base, 24);
    r.dispose();
    assert.is(m.memoryAllocated() - base, 0);
    assert.throws(() => t.storage, /after dispose/);
  });

  test(`${name}: a steady loop allocates nothing new from the device (pool)`, () => {
    const b = get();
    const m = b.memory;
    const step = () => {
      const x = Tensor.empty(b, [64, 64], { category: 'activation' });
      const y = Tensor.empty(b, [64], { category: 'gradient' });
      x.dispose();
      y.dispose();
    };
    step();
    const before = m.memoryStats();
    for (let i = 0; i < 20; i++) step();
    const after = m.memoryStats();
    assert.is(after.deviceAllocations, before.deviceAllocations);
    assert.is(after.poolHits - before.poolHits, 40);
    assert.is(after.reserved.current, before.reserved.current);
    b.emptyCache();
    assert.is(m.memoryStats().pooledBytes, 0);
  });

  test(`${name}: memoryTrace lists allocations and frees with sizes, categories and labels`, () => {
    const b = get();
    const { result, trace } = b.memory.memoryTrace(() => {
      const a = Tensor.empty(b, [100], { category: 'activation', label: 'h1' });
      const c = Tensor.empty(b, [50], { dtype: 'f16', category: 'temporary', label: 'tmp' });
      c.dispose();
      return a;
    });
    assert.equal(trace.events.map((e) => [e.kind, e.bytes, e.category, e.label]), [
      ['alloc', 400, 'activation', 'h1'], ['alloc', 100, 'temporary', 'tmp'], ['free', 100, 'temporary', 'tmp'],
    ]);
    assert.equal(trace.live.map((e) => e.label), ['h1']);
    assert.is(trace.netBytes.activation, 400);
    assert.is(trace.netBytes.total, 400);
    assert.is(trace.peakIncrease, 500);
    result.dispose();
  });
}

test('tracker errors: double free, unknown category', () => {
  const m = new MemoryTracker();
  const id = m.onAlloc(10, 'data');
  m.onFree(id);
  assert.throws(() => m.onFree(id), /freed twice/);
  assert.throws(() => m.onAlloc(1, 'weights' as never), /unknown memory category "weights"/);
  assert.throws(() => m.stopTrace(), /without a matching startTrace/);
});

test('memoryTrace of an async fn awaits it: the trace holds what was allocated after an await; a trace nested inside ends on its own', async () => {
  const m = new MemoryTracker();
  const tick = () => new Promise((r) => setTimeout(r, 1));
  const p = m.memoryTrace(async () => {
    const a = m.onAlloc(10, 'activation', 'before await');
    await tick();
    const inner = m.memoryTrace(() => m.onAlloc(5, 'temporary', 'inner'));
    assert.equal(inner.trace.events.map((e) => e.label), ['inner']);
    m.onFree(inner.result);
    const b = m.onAlloc(20, 'activation', 'after await');
    m.onFree(a);
    return b;
  });
  assert.instance(p, Promise);
  const { result, trace } = await p;
  assert.equal(trace.events.map((e) => [e.kind, e.label]), [['alloc', 'before await'], ['alloc', 'inner'], ['free', 'inner'], ['alloc', 'after await'], ['free', 'before await']]);
  assert.is(trace.netBytes.activation, 20);
  assert.is(trace.peakIncrease, 30); // 10 + 20 (the inner 5 was freed first)
  m.onFree(result);
  assert.throws(() => m.stopTrace(), /without a matching startTrace/); // nothing left open
  // a rejected fn ends its trace too
  try {
    await m.memoryTrace(async () => { await tick(); throw new Error('boom'); });
    assert.unreachable();
  } catch (e) { assert.match((e as Error).message, /boom/); }
  assert.throws(() => m.stopTrace(), /without a matching startTrace/);
  assert.throws(() => m.memoryTrace(5 as never), /memoryTrace: fn must be a function, got 5/);
});

test('stopTrace ends the innermost startTrace trace, never one a running async memoryTrace owns', async () => {
  const m = new MemoryTracker();
  m.startTrace();
  const a = m.onAlloc(8, 'data', 'outer');
  const p = m.memoryTrace(async () => {
    await null;
    m.onFree(m.onAlloc(4, 'temporary', 'async'));
  });
  const t = m.stopTrace();
  assert.equal(t.events.map((e) => e.label), ['outer']);
  const { trace } = await p;
  assert.equal(trace.events.map((e) => [e.kind, e.label]), [['alloc', 'async'], ['free', 'async']]);
  assert.throws(() => m.stopTrace(), /without a matching startTrace/); // nothing left open
  // nested startTraces around a running memoryTrace: the inner one ends first
  m.startTrace();
  m.startTrace();
  const q = m.memoryTrace(async () => { await null; m.onFree(a); });
  assert.is(m.stopTrace().events.length, 0);
  await q;
  assert.equal(m.stopTrace().events.map((e) => e.kind), ['free']);
  assert.throws(() => m.stopTrace(), /without a matching startTrace/);
});

test.run();
