// Vision ops and layers: every differentiable op (conv2d with bias, stride, padding, dilation and
// groups; batchNorm in training and eval mode; maxPool2d; adaptiveAvgPool2d) against central finite
// differences of the float64 references; BatchNorm2d's running statistics, momentum and
// num_batches_tracked; Conv2d's initialisation; the op-policy names; ResNet's configurations
// against torchvision's full-size state dicts (keys, shapes, dtypes: tests/fixtures/models/resnet_shapes.json).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Variable, noGrad, withOpPolicy } from '../../src/autograd/index.js';
import { autocast } from '../../src/amp/autocast.js';
import { adaptiveAvgPool2d, batchNorm, conv2d, maxPool2d, maxPool2dGeometry } from '../../src/nn/vision.js';
import { BatchNorm2d, Conv2d, Flatten } from '../../src/nn/vision_layers.js';
import { RESNET_CONFIGS, ResNet, resnet, type ResNetName } from '../../src/nn/resnet.js';
import { Generator } from '../../src/random.js';
import { gradcheck, weighted, weightedSum } from '../helpers/gradcheck.js';
import { refAdaptiveAvg, refBatchNorm, refConv2d, refMaxPool, type ConvGeom } from '../helpers/vision_ref.js';
import { MODEL_FIXTURES } from '../helpers/model_fixtures.js';

const w = new WasmBackend();
const G = (g: Partial<ConvGeom>): ConvGeom => ({ stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1, ...g });

test('gradcheck conv2d: bias, stride 2, padding 1, groups 2', () => gradcheck(w, 'conv2d', {
  shapes: [[2, 4, 5, 5], [6, 2, 3, 3], [6]],
  run: ([x, wt, b]) => weighted(conv2d(x, wt, b, { stride: 2, padding: 1, groups: 2 })),
  ref: ([x, wt, b]) => weightedSum(refConv2d(x, [2, 4, 5, 5], wt, [6, 2, 3, 3], G({ stride: [2, 2], padding: [1, 1], groups: 2 }), b).y),
}));

test('gradcheck conv2d: dilation [2, 1], non-square kernel, no bias', () => gradcheck(w, 'conv2d dilated', {
  shapes: [[1, 2, 6, 5], [3, 2, 2, 3]],
  run: ([x, wt]) => weighted(conv2d(x, wt, null, { dilation: [2, 1], padding: [1, 0] })),
  ref: ([x, wt]) => weightedSum(refConv2d(x, [1, 2, 6, 5], wt, [3, 2, 2, 3], G({ dilation: [2, 1], padding: [1, 0] })).y),
}));

test('gradcheck batchNorm, training (batch statistics; weight and bias)', () => gradcheck(w, 'batchNorm train', {
  shapes: [[3, 2, 2, 2], [2], [2]],
  run: ([x, wt, b]) => weighted(batchNorm(x, null, null, wt, b, { training: true, eps: 1e-3 })),
  ref: ([x, wt, b]) => weightedSum(refBatchNorm(x, 3, 2, 4, wt, b, 1e-3, new Float64Array(24), null).y),
  tol: 2e-3,
}));

test('gradcheck batchNorm, eval (running statistics are constants)', () => {
  const rm = Tensor.from(w, [0.1, -0.2], [2], { category: 'data' }), rv = Tensor.from(w, [0.8, 1.3], [2], { category: 'data' });
  return gradcheck(w, 'batchNorm eval', {
    shapes: [[2, 2, 3, 1], [2], [2]],
    run: ([x, wt, b]) => weighted(batchNorm(x, rm, rv, wt, b, { training: false })),
    ref: ([x, wt, b]) => weightedSum(refBatchNorm(x, 2, 2, 3, wt, b, 1e-5, new Float64Array(12), { mean: [0.1, -0.2], var: [0.8, 1.3] }).y),
  }).finally(() => { rm.dispose(); rv.dispose(); });
});

test('gradcheck maxPool2d 3x3 stride 2 padding 1 and adaptiveAvgPool2d 5x4 -> 2x3', async () => {
  const { geom } = maxPool2dGeometry([1, 2, 5, 6], 3, { stride: 2, padding: 1 });
  await gradcheck(w, 'maxPool2d', {
    shapes: [[1, 2, 5, 6]],
    run: ([x]) => weighted(maxPool2d(x, 3, { stride: 2, padding: 1 })),
    ref: ([x]) => weightedSum(refMaxPool(x, 2, 5, 6, 3, 3, geom as never, new Float64Array(18)).y),
  });
  await gradcheck(w, 'adaptiveAvgPool2d', {
    shapes: [[2, 1, 5, 4]],
    run: ([x]) => weighted(adaptiveAvgPool2d(x, [2, 3])),
    ref: ([x]) => weightedSum(refAdaptiveAvg(x, 2, 5, 4, 2, 3, new Float64Array(12)).y),
  });
});

test('the ops run on the one road with PyTorch names (conv2d, batch_norm, max_pool2d, adaptive_avg_pool2d)', () => {
  const seen: string[] = [];
  const x = Variable.from(w, new Float32Array(2 * 2 * 4 * 4).map((_, i) => Math.sin(i)), [2, 2, 4, 4], { requiresGrad: true });
  const c = new Conv2d(2, 2, 3, { padding: 1, backend: w }), bn = new BatchNorm2d(2, { backend: w });
  withOpPolicy((op, xs) => { seen.push(op); return xs; }, () => {
    const y = adaptiveAvgPool2d(maxPool2d(bn.forward(c.forward(x)), 2), 1);
    y.dispose();
  });
  assert.equal(seen.filter((op) => op !== 'relu'), ['conv2d', 'batch_norm', 'max_pool2d', 'adaptive_avg_pool2d']);
  c.dispose(); bn.dispose(); x.dispose();
});

test('BatchNorm2d: running statistics with momentum and the unbiased variance, num_batches_tracked, eval uses them, PyTorch state-dict names', async () => {
  const bn = new BatchNorm2d(2, { momentum: 0.3, backend: w });
  assert.equal(Object.keys(bn.stateDict()), ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']);
  const v = Float32Array.from({ length: 2 * 2 * 3 }, (_, i) => (i * 7) % 5 - 1.5);
  const x = Variable.from(w, v, [2, 2, 3, 1]);
  const r = refBatchNorm(v, 2, 2, 3, [1, 1], [0, 0], 1e-5, new Float64Array(12), null);
  bn.forward(x).dispose();
  bn.forward(x).dispose();
  const m1 = r.mean.map((m) => 0.3 * m), v1 = r.var.map((s) => 0.7 + 0.3 * s * 6 / 5);
  const m2 = m1.map((m, i) => 0.7 * m + 0.3 * r.mean[i]), v2 = v1.map((s, i) => 0.7 * s + 0.3 * r.var[i] * 6 / 5);
  const close = (a: ArrayLike<number>, e: ArrayLike<number>) => Array.from(a).forEach((x, i) => assert.ok(Math.abs(x - e[i]) < 1e-6, `${x} vs ${e[i]}`));
  close(await bn.runningMean!.toArray(), m2);
  close(await bn.runningVar!.toArray(), v2);
  assert.equal([...await bn.numBatchesTracked!.toArray()], [2]);
  bn.eval();
  const y = bn.forward(x);
  const e = refBatchNorm(v, 2, 2, 3, [1, 1], [0, 0], 1e-5, new Float64Array(12), { mean: m2, var: v2 }).y;
  close(await y.data.toArray(), e);
  assert.equal([...await bn.numBatchesTracked!.toArray()], [2]); // eval does not count
  y.dispose(); x.dispose(); bn.dispose();
});

test('BatchNorm2d: clear errors (momentum null, one value per channel while training, wrong rank); trackRunningStats false has no buffers', () => {
  assert.throws(() => new BatchNorm2d(3, { momentum: null }), /momentum null/);
  const bn = new BatchNorm2d(3, { backend: w });
  const x = Variable.from(w, [1, 2, 3], [1, 3, 1, 1]);
  assert.throws(() => bn.forward(x), /more than 1 value per channel/);
  assert.throws(() => bn.forward(Variable.from(w, [1, 2, 3], [1, 3])), /\[N, C, H, W\]/);
  const nb = new BatchNorm2d(3, { trackRunningStats: false, affine: false, backend: w });
  assert.equal(Object.keys(nb.stateDict()), []);
  x.dispose(); bn.dispose(); nb.dispose();
});

test('Conv2d: PyTorch default init bounds, names, shapes; shape errors name the problem', () => {
  const c = new Conv2d(4, 6, [3, 2], { groups: 2, generator: new Generator(1), backend: w });
  assert.equal(Object.fromEntries(Object.entries(c.stateDict()).map(([k, t]) => [k, t.shape])), { weight: [6, 2, 3, 2], bias: [6] });
  assert.throws(() => new Conv2d(4, 6, 3, { groups: 4 }), /groups 4 must divide/);
  const x = Variable.from(w, new Float32Array(3 * 5 * 5), [1, 3, 5, 5]);
  assert.throws(() => c.forward(x), /3 channels, weight \[6, 2, 3, 2\] expects 2 x 2 groups = 4/);
  assert.throws(() => conv2d(x, new Conv2d(3, 1, 7, { backend: w }).weight), /smaller than the kernel/);
  const f = new Flatten().forward(Variable.from(w, new Float32Array(24), [2, 3, 2, 2]));
  assert.equal([...f.shape], [2, 12]);
  c.dispose(); x.dispose(); f.dispose();
});

test('ResNet-18/34/50/101/152: the state-dict keys, shapes and dtypes of torchvision\'s own models, in order', () => {
  const ref = JSON.parse(readFileSync(join(MODEL_FIXTURES, 'resnet_shapes.json'), 'utf8')) as { models: Record<string, [string, number[], string][]> };
  for (const name of Object.keys(RESNET_CONFIGS) as ResNetName[]) {
    const m = noGrad(() => resnet(name, {}, { backend: w }));
    try {
      const got = Object.entries(m.stateDict()).map(([k, t]) => [k, [...t.shape], t.dtype === 'int32' ? 'int64' : t.dtype]);
      assert.equal(got, ref.models[name], name);
    } finally {
      m.dispose();
    }
  }
});

test('ResNet under autocast (bfloat16): convolutions in bfloat16, pooling and batch norm keep their input dtype, loss and gradients near float32', async () => {
  const m = new ResNet({ block: 'bottleneck', layers: [1, 1, 1, 1], width: 4, numClasses: 3 }, { backend: w, generator: new Generator(4) });
  const x = Variable.from(w, new Float32Array(2 * 3 * 32 * 32).map((_, i) => Math.sin(i * 0.37)), [2, 3, 32, 32]);
  const labels = Tensor.from(w, [0, 2], [2], { dtype: 'int32' });
  const run = async (amp: boolean) => {
    const loss = amp ? autocast({ dtype: 'bfloat16' }, () => m.loss(x, labels)) : m.loss(x, labels);
    loss.backward();
    const g = await m.fc.weight.grad!.toArray(), g1 = await m.conv1.weight.grad!.toArray();
    const v = (await loss.data.toArray())[0];
    loss.dispose(); m.zeroGrad();
    return { v, g, g1 };
  };
  m.eval(); // running statistics: train-mode batch norm over 2 values a channel (layer4 at 1 x 1) would amplify any rounding
  const a = await run(false), b = await run(true);
  assert.ok(Math.abs(a.v - b.v) < 0.02 * Math.abs(a.v), `loss ${b.v} vs float32 ${a.v}`);
  let num = 0, den = 0;
  a.g.forEach((e, i) => { num += (b.g[i] - e) ** 2; den += e * e; });
  assert.ok(Math.sqrt(num / den) < 0.02, `fc gradient relative error ${Math.sqrt(num / den)}`);
  // conv1's gradient went back through every bfloat16 layer: PyTorch's CPU autocast misses the float32
  // one by 16% (RMS) on this model; it must still point the same way
  let dot = 0, na = 0, nb = 0;
  a.g1.forEach((e, i) => { dot += e * b.g1[i]; na += e * e; nb += b.g1[i] ** 2; });
  assert.ok(dot / Math.sqrt(na * nb) > 0.95, `conv1 gradient cosine ${dot / Math.sqrt(na * nb)}`);
  const y = autocast({ dtype: 'bfloat16' }, () => noGrad(() => {
    const c = m.conv1.forward(x), n = m.bn1.forward(c), p = m.maxpool.forward(n);
    const dt = [c.data.dtype, n.data.dtype, p.data.dtype];
    for (const t of [c, n, p]) t.dispose();
    return dt;
  }));
  assert.equal(y, ['bfloat16', 'bfloat16', 'bfloat16']);
  x.dispose(); labels.dispose(); m.dispose();
});

test('ResNet forward/backward on a small image batch; errors for bad input', () => {
  const m = new ResNet({ block: 'bottleneck', layers: [1, 1, 1, 1], width: 4, numClasses: 3 }, { backend: w, generator: new Generator(3) });
  const x = Variable.from(w, new Float32Array(2 * 3 * 32 * 32).map((_, i) => Math.sin(i * 0.37)), [2, 3, 32, 32]);
  const labels = Tensor.from(w, [0, 2], [2], { dtype: 'int32' });
  const loss = m.loss(x, labels);
  loss.backward();
  for (const [k, p] of m.namedParameters()) assert.ok(p.grad, `${k} has a gradient`);
  assert.throws(() => m.forward(Variable.from(w, new Float32Array(16), [1, 1, 4, 4])), /\[N, 3, H, W\]/);
  assert.throws(() => new ResNet({ block: 'basic', layers: [2, 2, 2] as never }), /4 block counts/);
  loss.dispose(); x.dispose(); labels.dispose(); m.dispose();
});

test.run();
