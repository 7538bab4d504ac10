// The vision kernels on the GPU (shaders/vision.wgsl; twins of assembly/kernels/vision.ts). The
// convolution is direct: one invocation per output element looping over its window, so it needs
// no column buffer (no temporary memory beyond a float32 staging copy for outputs of other
// dtypes); it is simple rather than fast (a tiled implicit GEMM is the next step for hardware
// GPUs). Outputs are written as float32 (into a temporary cast once to their dtype when that is
// not float32); batch-norm statistics and weight/bias gradients are float32.
import type { Conv2dGeometry, Pool2dGeometry, TensorRef } from '../backend.js';
import { numel } from '../shape.js';
import type { WebGPUBackend } from './backend.js';
import { fmtId } from './wgsl.js';
import { f32Target, stagePipeline } from './stages.js';

const WG = 256;

interface P {
  n?: number; c?: number; h?: number; w?: number; o?: number; kh?: number; kw?: number; oh?: number; ow?: number;
  sh?: number; sw?: number; ph?: number; pw?: number; dh?: number; dw?: number; groups?: number;
  off?: number[]; total?: number; training?: number; pad?: number;
}

function params(p: P): ArrayBuffer {
  const off = p.off ?? [];
  return new Uint32Array([
    p.n ?? 0, p.c ?? 0, p.h ?? 0, p.w ?? 0, p.o ?? 0, p.kh ?? 1, p.kw ?? 1, p.oh ?? 0,
    p.ow ?? 0, p.sh ?? 1, p.sw ?? 1, p.ph ?? 0, p.pw ?? 0, p.dh ?? 1, p.dw ?? 1, p.groups ?? 1,
    off[0] ?? 0, off[1] ?? 0, off[2] ?? 0, off[3] ?? 0, off[4] ?? 0, p.total ?? 0, p.training ?? 0, p.pad ?? 0,
  ]).buffer;
}

const stage = (g: WebGPUBackend, name: string, inputs: readonly string[], constants: Record<string, number>, formats?: Record<string, number>) =>
  stagePipeline(g, 'vision', name, inputs, constants, formats ? { formats } : {});

function convParams(x: TensorRef, weight: TensorRef, y: TensorRef, geom: Conv2dGeometry, off: number[], total: number): ArrayBuffer {
  const [n, c, h, w] = x.shape, [o, , kh, kw] = weight.shape, [, , oh, ow] = y.shape;
  return params({
    n, c, h, w, o, kh, kw, oh, ow, sh: geom.stride[0], sw: geom.stride[1], ph: geom.padding[0], pw: geom.padding[1],
    dh: geom.dilation[0], dw: geom.dilation[1], groups: geom.groups, off, total,
  });
}

export function conv2d(g: WebGPUBackend, x: TensorRef, weight: TensorRef, out: TensorRef, geom: Conv2dGeometry): void {
  const total = numel(out.shape);
  if (total === 0) return;
  const o = f32Target(g, out, 'conv2d f32');
  const p = stage(g, 'conv_fwd', ['x', 'wt'], { FX: fmtId(x.dtype), FW: fmtId(weight.dtype) });
  g.dispatch(p, [{ storage: x.storage }, { storage: weight.storage }, { storage: o.ref.storage, what: 'conv2d output' }],
    convParams(x, weight, out, geom, [x.offset, weight.offset], total), Math.ceil(total / WG), 15);
  o.done();
}

export function conv2dBackwardInput(g: WebGPUBackend, dy: TensorRef, weight: TensorRef, dx: TensorRef, geom: Conv2dGeometry): void {
  const total = numel(dx.shape);
  if (total === 0) return;
  const o = f32Target(g, dx, 'conv2d dx f32');
  const p = stage(g, 'conv_bwd_x', ['dy', 'wt'], { FDY: fmtId(dy.dtype), FW: fmtId(weight.dtype) });
  g.dispatch(p, [{ storage: dy.storage }, { storage: weight.storage }, { storage: o.ref.storage, what: 'conv2d dx' }],
    convParams(dx, weight, dy, geom, [dy.offset, weight.offset], total), Math.ceil(total / WG), 15);
  o.done();
}

export function conv2dBackwardWeight(g: WebGPUBackend, dy: TensorRef, x: TensorRef, dweight: TensorRef, geom: Conv2dGeometry): void {
  const total = numel(dweight.shape);
  if (total === 0) return;
  const p = stage(g, 'conv_bwd_w', ['dy', 'x'], { FDY: fmtId(dy.dtype), FX: fmtId(x.dtype) });
  g.dispatch(p, [{ storage: dy.storage }, { storage: x.storage }, { storage: dweight.storage, what: 'conv2d dweight' }],
    convParams(x, dweight, dy, geom, [dy.offset, x.offset, dweight.offset], total), Math.ceil(total / WG), 15);
}

/** n, c, s (= h: the flattened spatial size) of x [N, C, ...]. */
function ncs(x: TensorRef): { n: number; c: number; h: number } {
  return { n: x.shape[0], c: x.shape[1], h: numel(x.shape.slice(2)) };
}

export function batchNormStats(g: WebGPUBackend, x: TensorRef, mean: TensorRef, variance: TensorRef): void {
  const d = ncs(x);
  if (d.c === 0) return;
  const p = stage(g, 'bn_stats', ['x'], { FX: fmtId(x.dtype) });
  g.dispatch(p, [{ storage: x.storage }, { storage: mean.storage, what: 'mean' }, { storage: variance.storage, what: 'variance' }],
    params({ ...d, off: [x.offset, mean.offset, variance.offset] }), Math.ceil(d.c / WG), 15);
}

export function batchNorm(g: WebGPUBackend, x: TensorRef, mean: TensorRef, rstd: TensorRef, weight: TensorRef, bias: TensorRef, out: TensorRef): void {
  const d = ncs(x);
  const total = numel(x.shape);
  if (total === 0) return;
  const o = f32Target(g, out, 'batchNorm f32');
  const p = stage(g, 'bn_fwd', ['x', 'mean', 'rstd', 'wt', 'bias'], {
    FX: fmtId(x.dtype), FM: fmtId(mean.dtype), FR: fmtId(rstd.dtype), FW: fmtId(weight.dtype), FB: fmtId(bias.dtype),
  });
  g.dispatch(p, [{ storage: x.storage }, { storage: mean.storage }, { storage: rstd.storage }, { storage: weight.storage }, { storage: bias.storage }, { storage: o.ref.storage, what: 'batchNorm output' }],
    params({ ...d, total, off: [x.offset, mean.offset, rstd.offset, weight.offset, bias.offset] }), Math.ceil(total / WG), 15);
  o.done();
}

export function batchNormBackward(
  g: WebGPUBackend, dy: TensorRef, x: TensorRef, mean: TensorRef, rstd: TensorRef, weight: TensorRef, dx: TensorRef, dweight: TensorRef, dbias: TensorRef, training: boolean,
): void {
  const d = ncs(x);
  const total = numel(x.shape);
  if (d.c === 0) return;
  const F = { FDY: fmtId(dy.dtype), FX: fmtId(x.dtype), FM: fmtId(mean.dtype), FR: fmtId(rstd.dtype) };
  const sums = g.alloc(2 * d.c * 4, 'temporary', 'batchNorm sums');
  try {
    const u = params({ ...d, total, training: training ? 1 : 0, off: [dy.offset, x.offset, mean.offset, rstd.offset, dweight.offset], pad: dbias.offset });
    g.dispatch(stage(g, 'bn_sums', ['dy', 'x', 'mean', 'rstd'], F),
      [{ storage: dy.storage }, { storage: x.storage }, { storage: mean.storage }, { storage: rstd.storage }, { storage: dweight.storage, what: 'dweight' }, { storage: dbias.storage, what: 'dbias' }, { storage: sums }],
      u, Math.ceil(d.c / WG), 15);
    if (total === 0) return;
    const o = f32Target(g, dx, 'batchNorm dx f32');
    const v = params({ ...d, total, training: training ? 1 : 0, off: [dy.offset, x.offset, mean.offset, rstd.offset, weight.offset] });
    g.dispatch(stage(g, 'bn_dx', ['dy', 'x', 'mean', 'rstd', 'wt', 'sums'], { ...F, FW: fmtId(weight.dtype) }, { sums: 0 }),
      [{ storage: dy.storage }, { storage: x.storage }, { storage: mean.storage }, { storage: rstd.storage }, { storage: weight.storage }, { storage: sums }, { storage: o.ref.storage, what: 'batchNorm dx' }],
      v, Math.ceil(total / WG), 15);
    o.done();
  } finally {
    g.free(sums);
  }
}

function poolParams(x: TensorRef, y: TensorRef, geom: Pool2dGeometry | null, off: number[], total: number): ArrayBuffer {
  const [, , h, w] = x.shape, [, , oh, ow] = y.shape;
  const k = geom ?? { kernel: [1, 1], stride: [1, 1], padding: [0, 0], dilation: [1, 1] };
  return params({
    h, w, oh, ow, kh: k.kernel[0], kw: k.kernel[1], sh: k.stride[0], sw: k.stride[1], ph: k.padding[0], pw: k.padding[1],
    dh: k.dilation[0], dw: k.dilation[1], off, total,
  });
}

export function maxPool2d(g: WebGPUBackend, x: TensorRef, out: TensorRef, indices: TensorRef, geom: Pool2dGeometry): void {
  const total = numel(out.shape);
  if (total === 0) return;
  if (indices.offset !== 0) throw new Error('maxPool2d: indices must start at offset 0');
  const o = f32Target(g, out, 'maxPool2d f32');
  g.dispatch(stage(g, 'mp_fwd', ['x'], { FX: fmtId(x.dtype) }), [{ storage: x.storage }, { storage: o.ref.storage, what: 'maxPool2d output' }, { storage: indices.storage, what: 'indices' }],
    poolParams(x, out, geom, [x.offset], total), Math.ceil(total / WG), 15);
  o.done();
}

export function maxPool2dBackward(g: WebGPUBackend, dy: TensorRef, indices: TensorRef, dx: TensorRef, geom: Pool2dGeometry): void {
  const total = numel(dx.shape);
  if (total === 0) return;
  const o = f32Target(g, dx, 'maxPool2d dx f32');
  g.dispatch(stage(g, 'mp_bwd', ['dy', 'ind'], { FDY: fmtId(dy.dtype) }, { ind: 9 }), [{ storage: dy.storage }, { storage: indices.storage }, { storage: o.ref.storage, what: 'maxPool2d dx' }],
    poolParams(dx, dy, geom, [dy.offset, indices.offset], total), Math.ceil(total / WG), 15);
  o.done();
}

export function adaptiveAvgPool2d(g: WebGPUBackend, x: TensorRef, out: TensorRef): void {
  const total = numel(out.shape);
  if (total === 0) return;
  const o = f32Target(g, out, 'adaptiveAvgPool2d f32');
  g.dispatch(stage(g, 'aap_fwd', ['x'], { FX: fmtId(x.dtype) }), [{ storage: x.storage }, { storage: o.ref.storage, what: 'adaptiveAvgPool2d output' }],
    poolParams(x, out, null, [x.offset], total), Math.ceil(total / WG), 15);
  o.done();
}

export function adaptiveAvgPool2dBackward(g: WebGPUBackend, dy: TensorRef, dx: TensorRef): void {
  const total = numel(dx.shape);
  if (total === 0) return;
  const o = f32Target(g, dx, 'adaptiveAvgPool2d dx f32');
  g.dispatch(stage(g, 'aap_bwd', ['dy'], { FDY: fmtId(dy.dtype) }), [{ storage: dy.storage }, { storage: o.ref.storage, what: 'adaptiveAvgPool2d dx' }],
    poolParams(dx, dy, null, [dy.offset], total), Math.ceil(total / WG), 15);
  o.done();
}
