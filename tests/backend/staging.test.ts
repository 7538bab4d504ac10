// Staging of low-precision operands on wasm: elementwise ops and matmuls with a staged operand run
// in blocks (WasmBackend.runElementwise, matmul's row bands), so the float32 staging copies hold one
// block each; the results are the same bit for bit as staging everything at once.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../helpers/backends.js';
import { Tensor } from '../../src/index.js';

const values = (n: number, f: (i: number) => number) => Float32Array.from({ length: n }, (_, i) => f(i));
/** Highest 'temporary' bytes held while fn runs, above what was held before. */
function peakTemporary(b: WasmBackend, fn: () => void): number {
  const { result: _, trace } = b.memory.memoryTrace(fn);
  let now = 0, peak = 0;
  for (const e of trace.events) if (e.category === 'temporary') { now += e.kind === 'alloc' ? e.bytes : -e.bytes; peak = Math.max(peak, now); }
  return peak;
}

test('wasm: a bfloat16 multiply and silu of 300,000 elements stage in blocks, equal bit for bit to float32 then rounding', async () => {
  const b = new WasmBackend();
  const n = 300_000, shape = [300, 1000];
  const a = Tensor.from(b, values(n, (i) => Math.sin(i * 0.37) * 3), shape).to('bfloat16');
  const c = Tensor.from(b, values(n, (i) => Math.cos(i * 0.11) * 2), shape).to('bfloat16');
  let prod!: Tensor, act!: Tensor;
  const peak = peakTemporary(b, () => { prod = a.mul(c); });
  const peakSilu = peakTemporary(b, () => { act = a.unary('silu'); });
  assert.ok(peak <= 3 * 4 * 65536 + 4096, `staging peak ${peak} B: one block of each operand, not ${3 * 4 * n} B`);
  assert.ok(peakSilu <= 2 * 4 * 65536 + 4096, `silu staging peak ${peakSilu} B`);
  const a32 = a.to('float32'), c32 = c.to('float32');
  const ref = a32.mul(c32).to('bfloat16'), refSilu = a32.unary('silu').to('bfloat16');
  const [pv, qv] = [await prod.toArray(), await ref.toArray()];
  assert.ok(pv.length === n && pv.every((v, i) => Object.is(v, qv[i])), "mul bit for bit");
  const [sv, tv] = [await act.toArray(), await refSilu.toArray()];
  assert.ok(sv.every((v, i) => Object.is(v, tv[i])), "silu bit for bit");
  b.destroy();
});

test('wasm: a bfloat16 matmul (float32 output) runs in row bands, equal bit for bit to the product of float32 copies', async () => {
  const b = new WasmBackend();
  const [m, k, n] = [4 * 400, 300, 400];
  const x = Tensor.from(b, values(m * k, (i) => Math.sin(i * 0.013)), [4, 400, k]).to('bfloat16');
  const w = Tensor.from(b, values(n * k, (i) => Math.cos(i * 0.007) * 0.1), [n, k]).to('bfloat16');
  let y!: Tensor;
  const peak = peakTemporary(b, () => { y = x.matmul(w, { transB: true }); });
  assert.ok(peak < (n * k + m * k / 2) * 4, `staging peak ${peak} B: the weight and one band of x, not all of x (${(n * k + m * k) * 4} B)`);
  const ref = x.to('float32').matmul(w.to('float32'), { transB: true });
  assert.equal(y.shape, [4, 400, n]);
  const [yv, rv] = [await y.toArray(), await ref.toArray()];
  const bad = yv.reduce((a, v, i) => a + (v === rv[i] ? 0 : 1), 0); const fi = yv.findIndex((v, i) => v !== rv[i]);
  assert.ok(bad === 0, `bit for bit: ${bad} differ, first ${fi} ${yv[fi]} ${rv[fi]}`);
  b.destroy();
});

test('wasm: stageIn of a dtype it cannot decode throws before it allocates (nothing leaks)', () => {
  const w = new WasmBackend();
  try {
    const u = Tensor.from(w, [1, 2, 3], [3], { dtype: 'uint8' });
    const before = w.memory.memoryAllocated();
    assert.throws(() => w.stageIn(u), /unknown dtype "uint8"/);
    assert.is(w.memory.memoryAllocated(), before);
    u.dispose();
  } finally {
    w.destroy();
  }
});

test.run();
