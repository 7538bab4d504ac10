// GPU timestamps (WebGPUBackend.timeRegion): with the 'timestamp-query' feature (SwiftShader in
// Node has it) a region's GPU time is the sum of its compute passes' durations; more work reads as
// more time, a region that records nothing as none; regions do not nest; the wasm backend and
// the generic timeRegion() fall back to wall time.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpuBackend, WasmBackend, type WebGPUBackend } from '../helpers/backends.js';
import { timeRegion } from '../../src/backend/backend.js';
import { InvalidArgumentError } from '../../src/index.js';
import { Tensor } from '../../src/tensor/tensor.js';

let g: WebGPUBackend;
test.before(async () => {
  g = await gpuBackend();
});
test.after(() => g.destroy());

/** n matmuls of a 96x96 matrix by itself, recorded on `be` (returns the last product, the rest freed). */
function work(be: WebGPUBackend, n: number): Tensor {
  const a = Tensor.from(be, Float32Array.from({ length: 96 * 96 }, (_, i) => ((i * 7) % 13) / 13), [96, 96]);
  let y = a.matmul(a);
  for (let i = 1; i < n; i++) { const z = y.matmul(a); y.dispose(); y = z; }
  a.dispose();
  return y;
}

test('the device offers timestamp-query (SwiftShader in Node does)', () => {
  assert.ok(g.features.has('timestamp-query'), `features: ${[...g.features].join(', ')}`);
});

test('timeRegion: more work reads as more GPU time; nothing recorded reads as 0', async () => {
  (await timeRegion(g, () => work(g, 2))).result.dispose(); // compile the pipelines outside the timed regions
  const empty = await g.timeRegion(() => 7);
  assert.is(empty.result, 7);
  assert.is(empty.timing, 'timestamp-query');
  assert.is(empty.ms, 0);
  const small: number[] = [], large: number[] = [];
  for (let i = 0; i < 3; i++) {
    const s = await g.timeRegion(() => work(g, 1));
    s.result.dispose();
    small.push(s.ms);
    const l = await g.timeRegion(async () => { const y = work(g, 20); await g.synchronize(); return y; }); // a submit inside the region is timed too
    l.result.dispose();
    large.push(l.ms);
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[1];
  assert.ok(med(small) > 0, `one matmul: ${small.join(', ')} ms`);
  assert.ok(med(large) > 5 * med(small), `20 matmuls ${large.join(', ')} ms against one ${small.join(', ')} ms`);
});

/** The error fn rejects with (fails when it resolves). */
async function rejection(fn: () => Promise<unknown>): Promise<unknown> {
  try { await fn(); } catch (e) { return e; }
  throw new Error('expected a rejection');
}

test('timeRegion: regions do not nest; the backend still works after a region that threw', async () => {
  await g.timeRegion(async () => {
    const e = await rejection(() => g.timeRegion(() => 1));
    assert.ok(e instanceof InvalidArgumentError && /do not nest/.test(e.message), String(e));
  });
  assert.match(String(await rejection(() => g.timeRegion(() => { work(g, 1).dispose(); throw new Error('boom'); }))), /boom/);
  const r = await g.timeRegion(() => work(g, 1));
  r.result.dispose();
  assert.ok(r.ms > 0);
});

test('timeRegion on wasm is wall time', async () => {
  const w = new WasmBackend();
  const r = await timeRegion(w, () => { let s = 0; for (let i = 0; i < 1e6; i++) s += i; return s; });
  assert.is(r.timing, 'wall');
  assert.is(r.result, 499999500000);
  assert.ok(r.ms >= 0);
});

test.run();
