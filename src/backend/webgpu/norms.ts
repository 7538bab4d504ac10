// RMSNorm and LayerNorm on the GPU (shaders/norms.wgsl; twins of assembly/kernels/nn.ts). Row
// kernels write float32 (out/dx into a temporary cast once to their dtype when that is not
// float32); rstd/mean are float32; dweight/dbias are float32 accumulators (+=). Row kernels run
// rowThreads() invocations a row (1 on software adapters); `threads` overrides it (tests).
import type { TensorRef } from '../backend.js';
import { numel } from '../shape.js';
import type { WebGPUBackend } from './backend.js';
import { fmtId } from './wgsl.js';
import { checkRowThreads, f32Target, rowGroups, rowThreads, stagePipeline } from './stages.js';

const WG = 256;

function rowsCols(x: TensorRef): [number, number] {
  const cols = x.shape[x.shape.length - 1] ?? 1;
  return [cols === 0 ? 0 : numel(x.shape) / cols, cols];
}

interface Offsets { x?: number; w?: number; b?: number; dy?: number; m?: number; r?: number; dw?: number; db?: number }

function params(rows: number, cols: number, eps: number, o: Offsets): ArrayBuffer {
  const u = new ArrayBuffer(48);
  const u32 = new Uint32Array(u);
  u32.set([rows, cols, 0, o.x ?? 0, o.w ?? 0, o.b ?? 0, o.dy ?? 0, o.m ?? 0, o.r ?? 0, o.dw ?? 0, o.db ?? 0, 0]);
  new Float32Array(u)[2] = eps;
  return u;
}

const rt = (g: WebGPUBackend, cols: number, threads?: number): number => (threads === undefined ? rowThreads(g, cols) : checkRowThreads(threads));

const stage = (g: WebGPUBackend, name: string, inputs: readonly string[], constants: Record<string, number>): GPUComputePipeline => stagePipeline(g, 'norms', name, inputs, constants);

export function rmsNorm(g: WebGPUBackend, x: TensorRef, weight: TensorRef, out: TensorRef, rstd: TensorRef, eps: number, threads?: number): void {
  const [rows, cols] = rowsCols(x);
  if (rows * cols === 0) return;
  const RT = rt(g, cols, threads);
  const o = f32Target(g, out, 'rmsNorm f32');
  const p = stage(g, 'rms_fwd', ['x', 'w'], { FX: fmtId(x.dtype), FW: fmtId(weight.dtype), RT });
  g.dispatch(p, [{ storage: x.storage }, { storage: weight.storage }, { storage: o.ref.storage, what: 'rmsNorm output' }, { storage: rstd.storage }],
    params(rows, cols, eps, { x: x.offset, w: weight.offset, r: rstd.offset }), rowGroups(rows, RT), 15);
  o.done();
}

export function rmsNormBackward(g: WebGPUBackend, dy: TensorRef, x: TensorRef, weight: TensorRef, rstd: TensorRef, dx: TensorRef, dweight: TensorRef, threads?: number): void {
  const [rows, cols] = rowsCols(x);
  if (rows * cols === 0) return;
  const RT = rt(g, cols, threads);
  const u = params(rows, cols, 0, { x: x.offset, w: weight.offset, dy: dy.offset, r: rstd.offset, dw: dweight.offset });
  const o = f32Target(g, dx, 'rmsNormBackward dx f32');
  const p = stage(g, 'rms_bwd_dx', ['dy', 'x', 'w', 'rstd'], { FDY: fmtId(dy.dtype), FX: fmtId(x.dtype), FW: fmtId(weight.dtype), FR: fmtId(rstd.dtype), RT });
  g.dispatch(p, [{ storage: dy.storage }, { storage: x.storage }, { storage: weight.storage }, { storage: rstd.storage }, { storage: o.ref.storage, what: 'dx' }], u, rowGroups(rows, RT), 15);
  o.done();
  const q = stage(g, 'rms_bwd_dw', ['dy', 'x', 'rstd'], { FDY: fmtId(dy.dtype), FX: fmtId(x.dtype), FR: fmtId(rstd.dtype) });
  g.dispatch(q, [{ storage: dy.storage }, { storage: x.storage }, { storage: rstd.storage }, { storage: dweight.storage, what: 'dweight' }], u, Math.ceil(cols / WG), 15);
}

export function layerNorm(g: WebGPUBackend, x: TensorRef, weight: TensorRef, bias: TensorRef, out: TensorRef, mean: TensorRef, rstd: TensorRef, eps: number, threads?: number): void {
  const [rows, cols] = rowsCols(x);
  if (rows * cols === 0) return;
  const RT = rt(g, cols, threads);
  const o = f32Target(g, out, 'layerNorm f32');
  const p = stage(g, 'ln_fwd', ['x', 'w', 'b'], { FX: fmtId(x.dtype), FW: fmtId(weight.dtype), FB: fmtId(bias.dtype), RT });
  g.dispatch(p, [{ storage: x.storage }, { storage: weight.storage }, { storage: bias.storage }, { storage: o.ref.storage, what: 'layerNorm output' }, { storage: mean.storage }, { storage: rstd.storage }],
    params(rows, cols, eps, { x: x.offset, w: weight.offset, b: bias.offset, m: mean.offset, r: rstd.offset }), rowGroups(rows, RT), 15);
  o.done();
}

export function layerNormBackward(
  g: WebGPUBackend, dy: TensorRef, x: TensorRef, weight: TensorRef, mean: TensorRef, rstd: TensorRef, dx: TensorRef, dweight: TensorRef, dbias: TensorRef, threads?: number,
): void {
  const [rows, cols] = rowsCols(x);
  if (rows * cols === 0) return;
  const RT = rt(g, cols, threads);
  const u = params(rows, cols, 0, { x: x.offset, w: weight.offset, dy: dy.offset, m: mean.offset, r: rstd.offset, dw: dweight.offset, db: dbias.offset });
  const o = f32Target(g, dx, 'layerNormBackward dx f32');
  const p = stage(g, 'ln_bwd_dx', ['dy', 'x', 'w', 'mean', 'rstd'], {
    FDY: fmtId(dy.dtype), FX: fmtId(x.dtype), FW: fmtId(weight.dtype), FM: fmtId(mean.dtype), FR: fmtId(rstd.dtype), RT,
  });
  g.dispatch(p, [{ storage: dy.storage }, { storage: x.storage }, { storage: weight.storage }, { storage: mean.storage }, { storage: rstd.storage }, { storage: o.ref.storage, what: 'dx' }], u, rowGroups(rows, RT), 15);
  o.done();
  const q = stage(g, 'ln_bwd_dwb', ['dy', 'x', 'mean', 'rstd'], { FDY: fmtId(dy.dtype), FX: fmtId(x.dtype), FM: fmtId(mean.dtype), FR: fmtId(rstd.dtype) });
  g.dispatch(q, [{ storage: dy.storage }, { storage: x.storage }, { storage: mean.storage }, { storage: rstd.storage }, { storage: dweight.storage, what: 'dweight' }, { storage: dbias.storage, what: 'dbias' }],
    u, Math.ceil(cols / WG), 15);
}
