// The vision kernel family (conv2d forward / input gradient / weight gradient, batch-norm
// statistics, apply and backward, max pooling with indices, adaptive average pooling): the wasm
// backend against the float64 references of tests/helpers/vision_ref.ts, and the WebGPU backend
// against wasm. Geometries cover stride, padding, dilation, groups (depthwise too), the 1x1 path
// without im2col, non-square kernels, ceil mode and overlapping adaptive windows.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Backend, Conv2dGeometry, Pool2dGeometry, TensorDType, TensorRef } from '../../src/backend/backend.js';
import { conv2dGeometry, maxPool2dGeometry } from '../../src/nn/vision.js';
import { encode } from '../../src/dtype/encode.js';
import { decode } from '../../src/dtype/encode.js';
import { gpuBackend, readF32, tensor, WasmBackend } from '../helpers/backends.js';
import { randValues } from '../helpers/values.js';
import { refAdaptiveAvg, refBatchNorm, refConv2d, refConv2dBackward, refMaxPool, type ConvGeom } from '../helpers/vision_ref.js';

const w = new WasmBackend();
const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
const f32 = (n: number, seed: number, scale = 1): Float32Array => Float32Array.from(randValues(n, seed), (v) => v * scale);

/** |a - e| <= rel |e| + abs * max |e|. */
function close(what: string, a: ArrayLike<number>, e: ArrayLike<number>, rel = 1e-5, abs = 1e-6): void {
  assert.is(a.length, e.length, `${what}: length`);
  let s = 0;
  for (let i = 0; i < e.length; i++) if (!Number.isNaN(e[i])) s = Math.max(s, Math.abs(e[i]));
  for (let i = 0; i < e.length; i++) {
    if (Number.isNaN(e[i])) { if (!Number.isNaN(a[i])) assert.unreachable(`${what}[${i}]: ${a[i]} vs NaN`); continue; }
    if (!(Math.abs(a[i] - e[i]) <= rel * Math.abs(e[i]) + abs * s)) assert.unreachable(`${what}[${i}]: got ${a[i]}, expected ${e[i]}`);
  }
}

type Made = { b: Backend; list: TensorRef[] };
function mk(m: Made, shape: number[], data?: Float32Array | Int32Array, dtype: TensorDType = 'float32'): TensorRef {
  let bytes: ArrayBufferView | undefined = data;
  if (data && dtype === 'bfloat16') bytes = encode(data as Float32Array, 'bfloat16');
  const t = tensor(m.b, shape, dtype, bytes ?? new Uint8Array(numel(shape) * (dtype === 'bfloat16' ? 2 : 4)).fill(0x3f));
  m.list.push(t);
  return t;
}
async function rdI32(b: Backend, t: TensorRef): Promise<Int32Array> {
  const bytes = await b.read(t.storage, 0, numel(t.shape) * 4);
  return new Int32Array(bytes.buffer, bytes.byteOffset, numel(t.shape)).slice();
}
async function on<T>(b: Backend, body: (m: Made) => Promise<T>): Promise<T> {
  const m: Made = { b, list: [] };
  try { return await body(m); } finally { for (const t of m.list) b.free(t.storage); }
}

// ---- conv2d ---------------------------------------------------------------------------------------

interface ConvCase { name: string; x: number[]; w: number[]; g: ConvGeom; dtype?: TensorDType }
const g0 = (g: Partial<ConvGeom>): ConvGeom => ({ stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1, ...g });
const CONV: ConvCase[] = [
  { name: '3x3 pad 1', x: [2, 3, 7, 6], w: [4, 3, 3, 3], g: g0({ padding: [1, 1] }) },
  { name: 'non-square kernel, stride [2, 1], padding [0, 2], dilation [2, 1]', x: [2, 2, 9, 7], w: [3, 2, 3, 2], g: g0({ stride: [2, 1], padding: [0, 2], dilation: [2, 1] }) },
  { name: 'groups 2, stride 2', x: [1, 4, 8, 8], w: [6, 2, 3, 3], g: g0({ stride: [2, 2], padding: [1, 1], groups: 2 }) },
  { name: 'depthwise, dilation 2', x: [2, 4, 6, 6], w: [4, 1, 3, 3], g: g0({ padding: [2, 2], dilation: [2, 2], groups: 4 }) },
  { name: '1x1 (no im2col)', x: [2, 6, 5, 4], w: [5, 6, 1, 1], g: g0({}) },
  { name: '1x1 groups 3 (no im2col)', x: [2, 6, 3, 3], w: [9, 2, 1, 1], g: g0({ groups: 3 }) },
  { name: '1x1 stride 2 (downsample)', x: [2, 4, 7, 7], w: [8, 4, 1, 1], g: g0({ stride: [2, 2] }) },
  { name: '7x7 stride 2 pad 3 (ResNet stem)', x: [1, 3, 12, 10], w: [4, 3, 7, 7], g: g0({ stride: [2, 2], padding: [3, 3] }) },
  { name: 'bfloat16 inputs', x: [2, 3, 6, 5], w: [4, 3, 3, 3], g: g0({ padding: [1, 1] }), dtype: 'bfloat16' },
];

async function runConv(b: Backend, c: ConvCase, seed: number): Promise<Record<string, Float32Array>> {
  const geom: Conv2dGeometry = c.g;
  const { outShape } = conv2dGeometry(c.x, c.w, c.g);
  const x = f32(numel(c.x), seed), wt = f32(numel(c.w), seed + 1, 0.5), dy = f32(numel(outShape), seed + 2);
  return on(b, async (m) => {
    const tx = mk(m, c.x, x, c.dtype), tw = mk(m, c.w, wt, c.dtype), tdy = mk(m, outShape, dy, c.dtype);
    const y = mk(m, outShape), dx = mk(m, c.x), dw = mk(m, c.w, new Float32Array(numel(c.w)).fill(1)); // dw accumulates onto ones
    b.conv2d(tx, tw, y, geom);
    b.conv2dBackwardInput(tdy, tw, dx, geom);
    b.conv2dBackwardWeight(tdy, tx, dw, geom);
    return { y: await readF32(b, y), dx: await readF32(b, dx), dw: await readF32(b, dw) };
  });
}

const seenBy = (v: Float32Array, dtype?: TensorDType): Float32Array => (dtype === 'bfloat16' ? decode(encode(v, 'bfloat16'), 'bfloat16') : v);

for (const [i, c] of CONV.entries()) {
  test(`conv2d ${c.name}: wasm matches float64, WebGPU matches wasm`, async () => {
    const seed = 100 + 10 * i;
    const got = await runConv(w, c, seed);
    const { outShape } = conv2dGeometry(c.x, c.w, c.g);
    const x = seenBy(f32(numel(c.x), seed), c.dtype), wt = seenBy(f32(numel(c.w), seed + 1, 0.5), c.dtype), dy = seenBy(f32(numel(outShape), seed + 2), c.dtype);
    const r = refConv2d(x, c.x, wt, c.w, c.g);
    assert.equal(r.shape, outShape);
    const rb = refConv2dBackward(x, c.x, wt, c.w, c.g, dy);
    close('y', got.y, r.y);
    close('dx', got.dx, rb.dx);
    close('dw', got.dw, Float64Array.from(rb.dw, (v) => v + 1));
    const gg = await runConv(await gpuBackend(), c, seed);
    for (const k of ['y', 'dx', 'dw']) close(`gpu ${k}`, gg[k], got[k], 1e-5, 1e-6);
  });
}

test('conv2d on wasm: im2col scratch is temporary and freed (one sample\'s column matrix at the peak)', async () => {
  const c = CONV[0];
  const { outShape } = conv2dGeometry(c.x, c.w, c.g);
  await on(w, async (m) => {
    const tx = mk(m, c.x, f32(numel(c.x), 1)), tw = mk(m, c.w, f32(numel(c.w), 2)), y = mk(m, outShape);
    w.memory.resetPeakMemoryStats();
    const before = w.memory.memoryAllocated('temporary');
    w.conv2d(tx, tw, y, c.g);
    assert.is(w.memory.memoryAllocated('temporary'), before);
    assert.is(w.memory.maxMemoryAllocated('temporary'), before + 3 * 3 * 3 * outShape[2] * outShape[3] * 4); // C kh kw OH OW float32
  });
});

// ---- batch norm -------------------------------------------------------------------------------------

async function runBn(b: Backend, n: number, c: number, s: number, training: boolean, seed: number): Promise<Record<string, Float32Array>> {
  const x = f32(n * c * s, seed, 2), wt = f32(c, seed + 1), bs = f32(c, seed + 2), dy = f32(n * c * s, seed + 3);
  const rm = f32(c, seed + 4, 0.3), rv = Float32Array.from(f32(c, seed + 5), (v) => 1 + 0.5 * v);
  return on(b, async (m) => {
    const shape = [n, c, s];
    const tx = mk(m, shape, x), tw = mk(m, [c], wt), tb = mk(m, [c], bs), tdy = mk(m, shape, dy);
    const mean = mk(m, [c]), vr = mk(m, [c]), rstd = mk(m, [c]);
    b.batchNormStats(tx, mean, vr);
    const useMean = training ? mean : mk(m, [c], rm);
    const useVar = training ? await readF32(b, vr) : rv;
    b.write(rstd.storage, Float32Array.from(useVar, (v) => 1 / Math.sqrt(v + 1e-5)));
    const y = mk(m, shape), dx = mk(m, shape), dw = mk(m, [c], new Float32Array(c).fill(1)), db = mk(m, [c], new Float32Array(c).fill(2));
    b.batchNorm(tx, useMean, rstd, tw, tb, y);
    b.batchNormBackward(tdy, tx, useMean, rstd, tw, dx, dw, db, training);
    return { mean: await readF32(b, mean), var: await readF32(b, vr), y: await readF32(b, y), dx: await readF32(b, dx), dw: await readF32(b, dw), db: await readF32(b, db) };
  });
}

for (const training of [true, false]) {
  test(`batch norm (${training ? 'training: batch statistics' : 'eval: running statistics'}): wasm matches float64, WebGPU matches wasm`, async () => {
    const [n, c, s] = [3, 4, 10];
    const seed = training ? 7 : 8;
    const got = await runBn(w, n, c, s, training, seed);
    const x = f32(n * c * s, seed, 2), wt = f32(c, seed + 1), bs = f32(c, seed + 2), dy = f32(n * c * s, seed + 3);
    const rm = f32(c, seed + 4, 0.3), rv = Float32Array.from(f32(c, seed + 5), (v) => 1 + 0.5 * v);
    const r = refBatchNorm(x, n, c, s, wt, bs, 1e-5, dy, training ? null : { mean: rm, var: rv });
    close('mean', got.mean, r.mean);
    close('var', got.var, r.var);
    close('y', got.y, r.y, 1e-5, 1e-5);
    close('dx', got.dx, r.dx, 1e-4, 1e-5);
    close('dw', got.dw, Float64Array.from(r.dw, (v) => v + 1), 1e-5, 1e-5);
    close('db', got.db, Float64Array.from(r.db, (v) => v + 2), 1e-5, 1e-5);
    const gg = await runBn(await gpuBackend(), n, c, s, training, seed);
    for (const k of Object.keys(got)) close(`gpu ${k}`, gg[k], got[k], 1e-5, 1e-6);
  });
}

// ---- max pooling ------------------------------------------------------------------------------------

interface PoolCase { name: string; x: number[]; k: [number, number]; opts: { stride?: [number, number]; padding?: [number, number]; dilation?: [number, number]; ceilMode?: boolean } }
const POOL: PoolCase[] = [
  { name: '3x3 stride 2 pad 1 (ResNet)', x: [2, 3, 9, 8], k: [3, 3], opts: { stride: [2, 2], padding: [1, 1] } },
  { name: '2x2 stride 2', x: [1, 2, 6, 6], k: [2, 2], opts: {} },
  { name: 'non-square, dilation [2, 1], padding [1, 0]', x: [1, 2, 9, 7], k: [3, 2], opts: { stride: [1, 2], padding: [1, 0], dilation: [2, 1] } },
  { name: 'ceil mode', x: [1, 2, 7, 8], k: [3, 3], opts: { stride: [2, 3], ceilMode: true } },
];

async function runPool(b: Backend, c: PoolCase, x: Float32Array, dy: Float32Array): Promise<{ y: Float32Array; idx: Int32Array; dx: Float32Array }> {
  const { geom, outShape } = maxPool2dGeometry(c.x, c.k, c.opts);
  return on(b, async (m) => {
    const tx = mk(m, c.x, x), y = mk(m, outShape), idx = mk(m, outShape, undefined, 'int32'), tdy = mk(m, outShape, dy), dx = mk(m, c.x);
    b.maxPool2d(tx, y, idx, geom as Pool2dGeometry);
    b.maxPool2dBackward(tdy, idx, dx, geom);
    return { y: await readF32(b, y), idx: await rdI32(b, idx), dx: await readF32(b, dx) };
  });
}

for (const [i, c] of POOL.entries()) {
  test(`maxPool2d ${c.name}: wasm matches float64 (values, indices, gradient), WebGPU matches wasm exactly`, async () => {
    const { geom, outShape } = maxPool2dGeometry(c.x, c.k, c.opts);
    // values on a coarse grid: ties (the first maximum wins) and a NaN (it wins and propagates)
    const x = Float32Array.from(randValues(numel(c.x), 300 + i), (v) => Math.round(v * 4) / 4);
    x[5] = NaN;
    const dy = f32(numel(outShape), 400 + i);
    const got = await runPool(w, c, x, dy);
    const [n, ch, h, wd] = c.x, [, , oh, ow] = outShape;
    const r = refMaxPool(x, n * ch, h, wd, oh, ow, geom as never, dy);
    close('y', got.y, r.y, 0, 0);
    assert.equal([...got.idx], [...r.idx]);
    close('dx', got.dx, r.dx, 1e-6, 1e-7); // float32 sums where windows overlap
    const gg = await runPool(await gpuBackend(), c, x, dy);
    close('gpu y', gg.y, got.y, 0, 0);
    assert.equal([...gg.idx], [...got.idx]);
    close('gpu dx', gg.dx, got.dx, 0, 0); // same sums in the same order
  });
}

test('maxPool2d geometry: PyTorch output sizes (ceil mode drops a window starting in the right padding); padding over half the kernel refused', () => {
  assert.equal(maxPool2dGeometry([1, 1, 112, 112], 3, { stride: 2, padding: 1 }).outShape, [1, 1, 56, 56]);
  assert.equal(maxPool2dGeometry([1, 1, 7, 8], 3, { stride: [2, 3], ceilMode: true }).outShape, [1, 1, 3, 3]);
  assert.equal(maxPool2dGeometry([1, 1, 5, 5], 2, { stride: 2, padding: 1, ceilMode: true }).outShape, [1, 1, 3, 3]);
  assert.equal(maxPool2dGeometry([1, 1, 6, 6], 2, { stride: 2, padding: 1, ceilMode: true }).outShape, [1, 1, 4, 4]);
  assert.throws(() => maxPool2dGeometry([1, 1, 8, 8], 2, { padding: 2 }), /at most half/);
});

// ---- adaptive average pooling ------------------------------------------------------------------------

for (const [h, wd, oh, ow] of [[7, 5, 3, 2], [4, 4, 1, 1], [5, 5, 5, 5], [3, 3, 5, 4]]) {
  test(`adaptiveAvgPool2d ${h}x${wd} -> ${oh}x${ow}: wasm matches float64, WebGPU matches wasm`, async () => {
    const p = 6, x = f32(p * h * wd, h * 10 + oh), dy = f32(p * oh * ow, wd * 10 + ow);
    const run = (b: Backend) => on(b, async (m) => {
      const tx = mk(m, [2, 3, h, wd], x), y = mk(m, [2, 3, oh, ow]), tdy = mk(m, [2, 3, oh, ow], dy), dx = mk(m, [2, 3, h, wd]);
      b.adaptiveAvgPool2d(tx, y);
      b.adaptiveAvgPool2dBackward(tdy, dx);
      return { y: await readF32(b, y), dx: await readF32(b, dx) };
    });
    const got = await run(w);
    const r = refAdaptiveAvg(x, p, h, wd, oh, ow, dy);
    close('y', got.y, r.y);
    close('dx', got.dx, r.dx);
    const gg = await run(await gpuBackend());
    close('gpu y', gg.y, got.y);
    close('gpu dx', gg.dx, got.dx);
  });
}

test.run();
