// The vision kernels on the wasm backend (assembly/kernels/vision.ts; NCHW). conv2d is im2col +
// the matmul kernel, one sample at a time: its temporary memory is one sample's column matrix,
// C * kh * kw * OH * OW float32 ('temporary', freed before the kernel returns; none for 1x1
// convolutions with stride 1 and no padding, whose input already is that matrix), plus an
// [O / groups, C / groups * kh * kw] float32 block for the weight gradient. Inputs of any dtype
// are staged to float32; outputs are rounded once into their dtype.
import type { Conv2dGeometry, Pool2dGeometry, TensorRef } from '../backend.js';
import { numel } from '../shape.js';
import type { WasmBackend } from './backend.js';
import { kernelExports } from './exports.js';
import { f32Ptr } from './norms.js';

const ex = kernelExports;

function staged(backend: WasmBackend, inputs: readonly TensorRef[], fn: (ptrs: number[]) => void): void {
  const s = inputs.map((t) => backend.stageIn(t));
  try {
    fn(s.map((v) => v.ptr));
  } finally {
    for (const v of s) v.release();
  }
}

/** staged, with `out` staged as float32 too: fn writes it at outPtr, rounded into out afterwards. */
function stagedInto(backend: WasmBackend, inputs: readonly TensorRef[], out: TensorRef, fn: (ptrs: number[], outPtr: number) => void): void {
  staged(backend, inputs, (ptrs) => {
    const o = backend.stageOut(out);
    fn(ptrs, o.ptr);
    o.commit();
  });
}

/** im2col's and col2im's geometry arguments: c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow. */
type ConvGeometryArgs = [number, number, number, number, number, number, number, number, number, number, number, number, number];

/** Everything a convolution loop needs, from the shapes and the geometry. */
export interface ConvDims {
  n: number; c: number; h: number; w: number; o: number; kh: number; kw: number; oh: number; ow: number;
  groups: number; og: number; cg: number;
  /** Rows of one group's column matrix (C / groups * kh * kw) and its columns (OH * OW). */
  k: number; l: number;
  /** 1x1, stride 1, no padding: the input is its own column matrix. */
  direct: boolean;
  /** [C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW] for im2col / col2im. */
  geom: ConvGeometryArgs;
}

export function convDims(x: TensorRef, weight: TensorRef, y: TensorRef, g: Conv2dGeometry): ConvDims {
  const [n, c, h, w] = x.shape, [o, cg, kh, kw] = weight.shape, [, , oh, ow] = y.shape;
  const [sh, sw] = g.stride, [ph, pw] = g.padding, [dh, dw] = g.dilation;
  return {
    n, c, h, w, o, kh, kw, oh, ow, groups: g.groups, og: o / g.groups, cg, k: cg * kh * kw, l: oh * ow,
    direct: kh === 1 && kw === 1 && sh === 1 && sw === 1 && ph === 0 && pw === 0,
    geom: [c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow],
  };
}

/** Bytes of the column matrix of one sample (0 when the convolution needs none). */
export function im2colBytes(d: ConvDims): number {
  return d.direct ? 0 : d.c * d.kh * d.kw * d.l * 4;
}

export function conv2d(be: WasmBackend, x: TensorRef, weight: TensorRef, out: TensorRef, geom: Conv2dGeometry): void {
  const d = convDims(x, weight, out, geom);
  if (numel(out.shape) === 0) return;
  const e = ex();
  staged(be, [x, weight], ([px, pw]) => {
    const o = be.stageOut(out);
    const cols = d.direct ? null : be.temp(im2colBytes(d), 'conv2d im2col');
    try {
      for (let s = 0; s < d.n; s++) {
        const xs = px + s * d.c * d.h * d.w * 4;
        if (cols) e.im2colF32(xs, cols.ptr, ...d.geom);
        const src = cols ? cols.ptr : xs;
        for (let gi = 0; gi < d.groups; gi++) {
          e.matmulF32(pw + gi * d.og * d.k * 4, src + gi * d.k * d.l * 4, o.ptr + (s * d.o + gi * d.og) * d.l * 4, 1, d.og, d.k, d.l, false, false, 1, 0, 0);
        }
      }
      o.commit();
    } finally {
      if (cols) be.free(cols.storage);
    }
  });
}

export function conv2dBackwardInput(be: WasmBackend, dy: TensorRef, weight: TensorRef, dx: TensorRef, geom: Conv2dGeometry): void {
  const d = convDims(dx, weight, dy, geom);
  if (numel(dx.shape) === 0) return;
  const e = ex();
  staged(be, [dy, weight], ([pdy, pw]) => {
    const o = be.stageOut(dx);
    const cols = d.direct ? null : be.temp(im2colBytes(d), 'conv2d col2im');
    try {
      new Uint8Array(kernelExports().memory.buffer, o.ptr, numel(dx.shape) * 4).fill(0);
      for (let s = 0; s < d.n; s++) {
        const xs = o.ptr + s * d.c * d.h * d.w * 4;
        const dst = cols ? cols.ptr : xs;
        if (d.o * d.l !== 0) {
          for (let gi = 0; gi < d.groups; gi++) {
            // W_g^T [K, Og] @ dy_g [Og, L] -> [K, L]
            e.matmulF32(pw + gi * d.og * d.k * 4, pdy + (s * d.o + gi * d.og) * d.l * 4, dst + gi * d.k * d.l * 4, 1, d.k, d.og, d.l, true, false, 1, 0, 0);
          }
          if (cols) e.col2imF32(cols.ptr, xs, ...d.geom);
        }
      }
      o.commit();
    } finally {
      if (cols) be.free(cols.storage);
    }
  });
}

export function conv2dBackwardWeight(be: WasmBackend, dy: TensorRef, x: TensorRef, dweight: TensorRef, geom: Conv2dGeometry): void {
  const d = convDims(x, dweight, dy, geom);
  if (d.n * d.l === 0 || numel(dweight.shape) === 0) return;
  const e = ex();
  const pdw = f32Ptr(be, dweight);
  staged(be, [dy, x], ([pdy, px]) => {
    const cols = d.direct ? null : be.temp(im2colBytes(d), 'conv2d im2col');
    const part = be.temp(d.og * d.k * 4, 'conv2d weight-gradient part');
    try {
      for (let s = 0; s < d.n; s++) {
        const xs = px + s * d.c * d.h * d.w * 4;
        if (cols) e.im2colF32(xs, cols.ptr, ...d.geom);
        const src = cols ? cols.ptr : xs;
        for (let gi = 0; gi < d.groups; gi++) {
          // dy_g [Og, L] @ cols_g^T [L, K] -> [Og, K], added into dweight
          e.matmulF32(pdy + (s * d.o + gi * d.og) * d.l * 4, src + gi * d.k * d.l * 4, part.ptr, 1, d.og, d.l, d.k, false, true, 1, 0, 0);
          e.addIntoF32(pdw + gi * d.og * d.k * 4, part.ptr, d.og * d.k);
        }
      }
    } finally {
      be.free(part.storage);
      if (cols) be.free(cols.storage);
    }
  });
}

/** [N, C, S] of an NCHW (or N, C, ...) tensor. */
function ncs(x: TensorRef): [number, number, number] {
  const [n, c] = x.shape;
  return [n, c, numel(x.shape.slice(2))];
}

export function batchNormStats(be: WasmBackend, x: TensorRef, mean: TensorRef, variance: TensorRef): void {
  const [n, c, s] = ncs(x);
  if (c === 0) return;
  staged(be, [x], ([px]) => ex().batchNormStatsF32(px, f32Ptr(be, mean), f32Ptr(be, variance), n, c, s));
}

export function batchNorm(be: WasmBackend, x: TensorRef, mean: TensorRef, rstd: TensorRef, weight: TensorRef, bias: TensorRef, out: TensorRef): void {
  const [n, c, s] = ncs(x);
  if (n * c * s === 0) return;
  stagedInto(be, [x, mean, rstd, weight, bias], out, ([px, pm, pr, pw, pb], optr) => ex().batchNormF32(px, pm, pr, pw, pb, optr, n, c, s));
}

export function batchNormBackward(
  be: WasmBackend, dy: TensorRef, x: TensorRef, mean: TensorRef, rstd: TensorRef, weight: TensorRef, dx: TensorRef, dweight: TensorRef, dbias: TensorRef, training: boolean,
): void {
  const [n, c, s] = ncs(x);
  if (c === 0) return;
  stagedInto(be, [dy, x, mean, rstd, weight], dx, ([pdy, px, pm, pr, pw], optr) => ex().batchNormBackwardF32(pdy, px, pm, pr, pw, optr, f32Ptr(be, dweight), f32Ptr(be, dbias), n, c, s, training ? 1 : 0));
}

/** Planes (N C), H, W, OH, OW of a pooling. */
function planes(x: TensorRef, y: TensorRef): [number, number, number, number, number] {
  const [n, c, h, w] = x.shape, [, , oh, ow] = y.shape;
  return [n * c, h, w, oh, ow];
}

export function maxPool2d(be: WasmBackend, x: TensorRef, out: TensorRef, indices: TensorRef, g: Pool2dGeometry): void {
  const [p, h, w, oh, ow] = planes(x, out);
  if (p * oh * ow === 0) return;
  stagedInto(be, [x], out, ([px], optr) => ex().maxPool2dF32(px, optr, f32Ptr(be, indices), p, h, w, ...g.kernel, ...g.stride, ...g.padding, ...g.dilation, oh, ow));
}

export function maxPool2dBackward(be: WasmBackend, dy: TensorRef, indices: TensorRef, dx: TensorRef, _geom: Pool2dGeometry): void {
  const [p, h, w, oh, ow] = planes(dx, dy);
  if (p * h * w === 0) return;
  stagedInto(be, [dy], dx, ([pdy], optr) => ex().maxPool2dBackwardF32(pdy, f32Ptr(be, indices), optr, p, h * w, oh * ow));
}

export function adaptiveAvgPool2d(be: WasmBackend, x: TensorRef, out: TensorRef): void {
  const [p, h, w, oh, ow] = planes(x, out);
  if (p * oh * ow === 0) return;
  stagedInto(be, [x], out, ([px], optr) => ex().adaptiveAvgPool2dF32(px, optr, p, h, w, oh, ow));
}

export function adaptiveAvgPool2dBackward(be: WasmBackend, dy: TensorRef, dx: TensorRef): void {
  const [p, h, w, oh, ow] = planes(dx, dy);
  if (p * h * w === 0) return;
  stagedInto(be, [dy], dx, ([pdy], optr) => ex().adaptiveAvgPool2dBackwardF32(pdy, optr, p, h, w, oh, ow));
}
