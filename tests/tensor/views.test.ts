// Strided views: permute and transpose change strides only (no allocation, no kernel); contiguous()
// copies codes bit for bit on both backends; ops take views (copying them first) and a kernel that
// reaches for a view's storage gets an error, never a wrong answer.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpuBackend, WasmBackend, type WebGPUBackend } from '../helpers/backends.js';
import { MemfitError, Tensor, type Backend } from '../../src/index.js';

let g: WebGPUBackend;
const w = new WasmBackend();
test.before(async () => { g = await gpuBackend(); });
test.after(() => g.destroy());

const shape = [2, 3, 4, 5];
const vals = Float32Array.from({ length: 120 }, (_, i) => ((i * 37) % 29 - 14) * 0.25);

/** x (row-major, of `shape`) permuted by dims, in plain JavaScript. */
function permuted(x: ArrayLike<number>, sh: readonly number[], dims: readonly number[]): number[] {
  const strides = sh.map((_, i) => sh.slice(i + 1).reduce((a, b) => a * b, 1));
  const out: number[] = [];
  const osh = dims.map((d) => sh[d]);
  const idx = osh.map(() => 0);
  for (let n = 0; n < x.length; n++) {
    out.push(x[idx.reduce((a, v, i) => a + v * strides[dims[i]], 0)]);
    for (let i = osh.length - 1; i >= 0; i--) { if (++idx[i] < osh[i]) break; idx[i] = 0; }
  }
  return out;
}

for (const name of ['wasm', 'webgpu'] as const) {
  const get = (): Backend => (name === 'wasm' ? w : g);

  test(`${name}: permute is a view; contiguous() and toArray() read it in order, every dtype`, async () => {
    const b = get();
    for (const dtype of ['float32', 'bf16', 'e4m3', 'e3m2', 'fp4', 'int32', 'uint8'] as const) {
      const data = dtype === 'int32' ? Int32Array.from(vals, (v) => v * 4) : dtype === 'uint8' ? Uint8Array.from(vals, (v) => v * 4 + 56) : vals;
      const x = Tensor.from(b, data, shape, { dtype });
      const ref = await x.toArray();
      for (const dims of [[0, 2, 1, 3], [3, 1, 0, 2], [1, 0, 3, 2]]) {
        const before = b.memory.memoryAllocated();
        const v = x.permute(dims);
        assert.is(b.memory.memoryAllocated(), before, `${dtype} ${dims}: a view allocates nothing`);
        assert.not.ok(v.isContiguous);
        assert.equal(v.shape, dims.map((d) => shape[d]));
        assert.equal(Array.from(await v.toArray()), permuted(ref, shape, dims), `${dtype} permute ${dims}`);
        const c = v.contiguous();
        assert.ok(c.isContiguous);
        assert.equal(Array.from(await c.toArray()), permuted(ref, shape, dims), `${dtype} contiguous ${dims}`);
        // a slice of a view is a view; a reshape of it copies
        const s = v.slice(1, 2);
        assert.equal(Array.from(await s.toArray()), permuted(ref, shape, dims).slice(s.size, 2 * s.size), `${dtype} slice of ${dims}`);
        const r = v.reshape([-1]);
        assert.ok(r.isContiguous);
        assert.equal(Array.from(await r.toArray()), permuted(ref, shape, dims), `${dtype} reshape of ${dims}`);
        for (const t of [v, c, s, r]) t.dispose();
      }
      x.dispose();
    }
  });

  test(`${name}: ops take views; matmul reads a transposed view without a copy`, async () => {
    const b = get();
    const x = Tensor.from(b, vals, [2, 3, 4, 5]);
    const v = x.transpose(1, 2); // [2, 4, 3, 5]
    const c = v.contiguous();
    const pairs: [string, (t: Tensor) => Tensor][] = [
      ['exp', (t) => t.unary('exp')], ['add', (t) => t.add(t)], ['sum', (t) => t.sum(1)], ['softmax', (t) => t.softmax()],
      ['to bf16', (t) => t.to('bf16')],
    ];
    for (const [what, f] of pairs) {
      const a = f(v), e = f(c);
      assert.equal(Array.from(await a.toArray()), Array.from(await e.toArray()), what);
      a.dispose(); e.dispose();
    }
    const m = Tensor.from(b, vals.subarray(0, 30), [6, 5]);
    const mt = m.transpose(); // [5, 6]
    const mc = mt.contiguous();
    const before = b.memory.memoryAllocated();
    const y = mt.matmul(m), ye = mc.matmul(m);
    assert.is(b.memory.memoryAllocated() - before, 2 * 5 * 5 * 4, 'only the two results: the view is read transposed, not copied');
    assert.equal(Array.from(await y.toArray()), Array.from(await ye.toArray()));
    for (const t of [x, v, c, m, mt, mc, y, ye]) t.dispose();
  });

  test(`${name}: a kernel given a view's storage is an error, naming contiguous()`, () => {
    const b = get();
    const x = Tensor.from(b, vals.subarray(0, 6), [2, 3]);
    const v = x.transpose();
    const out = Tensor.empty(b, [3, 2]);
    assert.throws(() => b.unary('exp', v, out), (e: unknown) => e instanceof MemfitError && e.code === 'STRIDED_VIEW' && /contiguous\(\)/.test(e.message));
    // a view whose strides are row-major again is contiguous
    const back = v.transpose();
    assert.ok(back.isContiguous);
    b.unary('exp', back, x);
    for (const t of [x, v, out, back]) t.dispose();
  });
}

for (const name of ['wasm', 'webgpu'] as const) {
  test(`${name}: copy refuses views that reach outside their storage, bad strides and mismatched outputs`, () => {
    const b: Backend = name === 'wasm' ? w : g;
    const x = Tensor.from(b, vals.subarray(0, 12), [3, 4]);
    const out = Tensor.empty(b, [4, 3]);
    const ref = { storage: x.storage, offset: 0, shape: [4, 3], dtype: 'float32' as const };
    const bad: [string, object, RegExp][] = [
      ['beyond the storage', { strides: [1, 5] }, /reaches element 13, beyond its 48-byte storage/],
      ['offset beyond', { strides: [1, 4], offset: 1 }, /reaches element 12/],
      ['negative stride', { strides: [1, -4] }, /non-negative integer/],
      ['fractional stride', { strides: [1, 0.5] }, /non-negative integer/],
      ['one stride short', { strides: [1] }, /one non-negative integer a dimension/],
    ];
    for (const [what, patch, re] of bad) assert.throws(() => b.copy({ ...ref, ...patch }, out), re, what);
    const bf = Tensor.empty(b, [4, 3], { dtype: 'bf16' }), longer = Tensor.empty(b, [5, 3]);
    assert.throws(() => b.copy({ ...ref, strides: [1, 4] }, bf), /copy moves codes/);
    assert.throws(() => b.copy({ ...ref, strides: [1, 4] }, longer), /different numbers of elements/);
    assert.throws(() => b.attention({ ...ref, shape: [1, 1, 4, 3], strides: [99, 99, 1, 99] }, ref, ref, out, out, null, 1, true), /attention: the view/);
    for (const t of [x, out, bf, longer]) t.dispose();
  });
}

test('permute checks its dims', () => {
  const x = Tensor.from(w, vals.subarray(0, 6), [2, 3]);
  for (const bad of [[0], [0, 0], [0, 2], [0.5, 1], 'ab' as unknown as number[]]) {
    assert.throws(() => x.permute(bad), /each of the 2 dimensions once/, JSON.stringify(bad));
  }
  const v = x.permute([-1, -2]);
  assert.equal(v.shape, [3, 2]);
  v.dispose();
  x.dispose();
});

test.run();
