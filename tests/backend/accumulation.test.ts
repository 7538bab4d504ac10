// Long sums on the wasm backend accumulate in float64 and round once: a float32 running sum stops
// growing at 2^24 and drifts long before (0.1 summed 2^20 times gives 105891.8 in float32). Checked
// against float64 sums written here, through the public ops: sum, mean, softmax, cross-entropy and
// gradient clipping's global norm.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Variable } from '../../src/autograd/variable.js';
import { mean, softmax, sum } from '../../src/autograd/ops.js';
import { crossEntropy } from '../../src/nn/functional.js';
import { clipGradNorm } from '../../src/optim/clip_grad.js';

const w = new WasmBackend();
const f = Math.fround;
const v = (data: Float32Array, shape: number[]): Variable => new Variable(Tensor.from(w, data, shape));
const scalar = async (x: Variable): Promise<number> => (await x.data.toArray())[0];

test('sum and mean of 2^24 + 4096 ones, and of 0.1 taken 2^20 times, are the float64 sums rounded once', async () => {
  const ones = v(new Float32Array(2 ** 24 + 4096).fill(1), [2 ** 24 + 4096]);
  assert.is(await scalar(sum(ones)), 2 ** 24 + 4096); // float32 accumulation: 2^24
  assert.is(await scalar(mean(ones)), 1);
  ones.data.dispose();
  const tenth = v(new Float32Array(2 ** 20).fill(0.1), [2 ** 20]);
  assert.is(await scalar(sum(tenth)), f(f(0.1) * 2 ** 20)); // exact in float64, float32: 105891.8
  assert.is(await scalar(mean(tenth)), f(0.1));
  tenth.data.dispose();
  // along an axis (inner stride): rows of [3, 2^20, 2]
  const n = 2 ** 20, x = new Float32Array(3 * n * 2);
  for (let i = 0; i < x.length; i++) x[i] = f(0.1 * ((i % 7) + 1));
  const want = new Float64Array(6);
  for (let o = 0; o < 3; o++) for (let k = 0; k < n; k++) for (let j = 0; j < 2; j++) want[o * 2 + j] += x[(o * n + k) * 2 + j];
  const got = await sum(v(x, [3, n, 2]), 1).data.toArray();
  assert.equal([...got], [...want].map(f));
});

test('softmax and cross-entropy over 2^20 rows (and a row of 2^20 classes) sum their exponentials in float64', async () => {
  const rows = 2 ** 20;
  const loss = crossEntropy(v(new Float32Array(rows * 2), [rows, 2]), Tensor.from(w, new Int32Array(rows).fill(1), [rows], { dtype: 'int32' }));
  assert.is(await scalar(loss), f(Math.log(2))); // float32 accumulation gave 0.68864
  // one 0 and 2^20 - 1 entries of -ln 10: exponentials 1 and about 0.1, whose float32 running sum drifts by about 1%
  const wide = new Float32Array(rows).fill(f(-Math.log(10)));
  wide[0] = 0;
  const p = await softmax(v(wide, [1, rows]), -1).data.toArray();
  const e = Math.exp(wide[1]), want = 1 / (1 + (rows - 1) * e);
  assert.ok(Math.abs(p[0] - want) <= want * 1e-6, `softmax: ${p[0]}, float64 ${want}`);
  assert.ok(Math.abs(p[1] - e * want) <= e * want * 1e-6, `softmax: ${p[1]}, float64 ${e * want}`);
});

test('clipGradNorm over a gradient of 2^22 elements: the float64 norm', async () => {
  const n = 2 ** 22;
  const p = new Variable(Tensor.from(w, new Float32Array(n), [n]), { requiresGrad: true });
  p.grad = Tensor.from(w, new Float32Array(n).fill(0.01), [n]);
  const norm = await clipGradNorm([p], 1e9).toArray();
  assert.is(norm[0], f(Math.sqrt(n * f(0.01) ** 2))); // float32 accumulation gave 20.30
});

test.run();
