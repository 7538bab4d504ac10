// Pointwise kernels at the edges where a formula, not rounding, decides: tanh near 0 against
// float64 (1 - e over 1 + e cancelled there: 11% off at 1e-7, 0 below 1e-8), and relu with NaN
// and -0 as torch.relu and its threshold_backward treat them, in the SIMD body and the scalar tail
// alike, on wasm and WebGPU (SwiftShader).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpuBackend, readF32, tensor, WasmBackend, type WebGPUBackend } from '../helpers/backends.js';
import type { Backend } from '../../src/backend/backend.js';

const w = new WasmBackend();
let g: WebGPUBackend;
test.before(async () => { g = await gpuBackend(); });
test.after(() => g.destroy());

async function unary(b: Backend, op: 'tanh' | 'relu', x: Float32Array): Promise<Float32Array> {
  const xt = tensor(b, [x.length], 'float32', x), out = tensor(b, [x.length], 'float32');
  b.unary(op, xt, out);
  const r = await readF32(b, out);
  b.free(xt.storage); b.free(out.storage);
  return r;
}

test('tanh is within a few float32 ulps of float64 tanh from 1e-30 to 20, both signs, on both backends', async () => {
  const x = new Float32Array(400);
  for (let i = 0; i < 200; i++) x[i] = Math.fround(10 ** (-30 + (31.3 * i) / 199)); // 1e-30 .. 20
  for (let i = 0; i < 200; i++) x[200 + i] = -x[i];
  for (const b of [w, g] as Backend[]) {
    const y = await unary(b, 'tanh', x);
    for (let i = 0; i < x.length; i++) {
      const want = Math.tanh(x[i]);
      assert.ok(Math.abs(y[i] - want) <= Math.abs(want) * 2 ** -21, `${b.kind}: tanh(${x[i]}) = ${y[i]}, float64 ${want}`);
    }
  }
});

test('relu keeps NaN and gives +0 for -0 (body and tail); its backward passes the gradient where x is NaN', async () => {
  const x = Float32Array.of(NaN, -0, 1, -1, 0, 2.5, NaN); // 7: four in the SIMD body, three in the tail
  for (const b of [w, g] as Backend[]) {
    const y = await unary(b, 'relu', x);
    assert.ok(Number.isNaN(y[0]) && Number.isNaN(y[6]), `${b.kind}: relu(NaN) is NaN, got ${y[0]}, ${y[6]}`);
    assert.equal([...y.slice(1, 6)], [0, 1, 0, 0, 2.5], b.kind);
    assert.ok(Object.is(y[1], 0), `${b.kind}: relu(-0) is +0`);
    const gy = tensor(b, [7], 'float32', new Float32Array(7).fill(3)), xt = tensor(b, [7], 'float32', x), gx = tensor(b, [7], 'float32');
    b.binary('reluBackward', gy, xt, gx);
    assert.equal([...await readF32(b, gx)], [3, 0, 3, 0, 0, 3, 3], `${b.kind}: threshold_backward`);
    for (const t of [gy, xt, gx]) b.free(t.storage);
  }
});

test('log and sqrt keep IEEE\'s edges on both backends (WGSL leaves x < 0 undefined), log within 2 ulps near 1; where takes a NaN condition as true', async () => {
  const x = Float32Array.of(-1, -0, 0, NaN, Infinity, 0.9, 1.0000001, 3e-5);
  const ulps = (a: number, b: number) => Math.abs(a - b) / (2 ** (Math.floor(Math.log2(Math.abs(b))) - 23));
  for (const b of [w, g] as Backend[]) {
    const xt = tensor(b, [x.length], 'float32', x), out = tensor(b, [x.length], 'float32');
    b.unary('log', xt, out);
    const l = await readF32(b, out);
    assert.ok(Number.isNaN(l[0]) && Number.isNaN(l[3]), `${b.kind}: log(-1), log(NaN) are NaN, got ${l[0]}, ${l[3]}`);
    assert.equal([l[1], l[2], l[4]], [-Infinity, -Infinity, Infinity], `${b.kind}: log(-0), log(0), log(inf)`);
    for (const i of [5, 6, 7]) assert.ok(ulps(l[i], Math.log(x[i])) <= 2, `${b.kind}: log(${x[i]}) = ${l[i]}, float64 ${Math.log(x[i])}`);
    b.unary('sqrt', xt, out);
    const r = await readF32(b, out);
    assert.ok(Number.isNaN(r[0]) && Object.is(r[1], -0) && r[4] === Infinity, `${b.kind}: sqrt(-1), sqrt(-0), sqrt(inf) = ${r[0]}, ${r[1]}, ${r[4]}`);
    const c = tensor(b, [2], 'float32', Float32Array.of(NaN, 0)), a = tensor(b, [2], 'float32', Float32Array.of(1, 1)), z = tensor(b, [2], 'float32', Float32Array.of(2, 2));
    b.where(c, a, z, out);
    assert.equal([...(await readF32(b, out)).slice(0, 2)], [1, 2], `${b.kind}: where(NaN) takes a, where(0) takes b`);
    for (const t of [xt, out, c, a, z]) b.free(t.storage);
  }
});

test.run();
