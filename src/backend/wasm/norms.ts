// RMSNorm and LayerNorm on the wasm backend (kernels in assembly/kernels/nn.ts). Inputs of any
// dtype are staged to float32; out and dx are rounded once into their dtype; rstd and mean are
// float32; dweight and dbias are float32 and accumulated into.
import type { TensorRef } from '../backend.js';
import { numel } from '../shape.js';
import type { WasmBackend } from './backend.js';
import { kernelExports, type MemfitWasm } from './exports.js';
import { splitRange, type KernelPart } from './threads.js';

export function nnExports(): MemfitWasm {
  return kernelExports();
}

/** Rows and row length of a tensor normalised over its last axis. */
export function rowsCols(x: TensorRef): [number, number] {
  const cols = x.shape[x.shape.length - 1] ?? 1;
  return [cols === 0 ? 0 : numel(x.shape) / cols, cols];
}

/** Byte address of a float32 tensor's element 0 (float32 statistics and accumulators). */
export function f32Ptr(backend: WasmBackend, t: TensorRef): number {
  return backend.ptr(t.storage) + t.offset * 4;
}

/** Runs fn with float32 views of `inputs`, then releases them (also on error). */
function staged(backend: WasmBackend, inputs: readonly TensorRef[], fn: (ptrs: number[]) => void): void {
  const s = backend.stageAll(inputs);
  try {
    fn(s.map((v) => v.ptr));
  } finally {
    for (const v of s) v.release();
  }
}

export function rmsNorm(backend: WasmBackend, x: TensorRef, weight: TensorRef, out: TensorRef, rstd: TensorRef, eps: number): void {
  const [rows, cols] = rowsCols(x);
  if (rows * cols === 0) return;
  staged(backend, [x, weight], ([px, pw]) => {
    const o = backend.stageOut(out);
    const pr = f32Ptr(backend, rstd);
    // Rows in parallel (each row is computed as on one thread).
    backend.parallelFor(rows, 1, normWork(rows, cols), (a, b) => ({ fn: 'rmsNormF32', args: [px + a * cols * 4, pw, o.ptr + a * cols * 4, pr + a * 4, b - a, cols, eps] }));
    o.commit();
  });
}

export function rmsNormBackward(backend: WasmBackend, dy: TensorRef, x: TensorRef, weight: TensorRef, rstd: TensorRef, dx: TensorRef, dweight: TensorRef): void {
  const [rows, cols] = rowsCols(x);
  if (rows * cols === 0) return;
  staged(backend, [dy, x, weight, rstd], ([pdy, px, pw, pr]) => {
    const o = backend.stageOut(dx);
    const pdw = f32Ptr(backend, dweight);
    // dx by rows and dweight by columns in parallel (each column sums its rows in order, as on one thread).
    rowsAndColumns(backend, rows, cols, normWork(rows, cols), (r0, r1, c0, c1) => ({ fn: 'rmsNormBackwardF32Part', args: [pdy, px, pw, pr, o.ptr, pdw, rows, cols, r0, r1, c0, c1] }));
    o.commit();
  });
}

export function layerNorm(backend: WasmBackend, x: TensorRef, weight: TensorRef, bias: TensorRef, out: TensorRef, mean: TensorRef, rstd: TensorRef, eps: number): void {
  const [rows, cols] = rowsCols(x);
  if (rows * cols === 0) return;
  staged(backend, [x, weight, bias], ([px, pw, pb]) => {
    const o = backend.stageOut(out);
    const pm = f32Ptr(backend, mean), pr = f32Ptr(backend, rstd);
    backend.parallelFor(rows, 1, normWork(rows, cols), (a, b) => ({
      fn: 'layerNormF32', args: [px + a * cols * 4, pw, pb, o.ptr + a * cols * 4, pm + a * 4, pr + a * 4, b - a, cols, eps],
    }));
    o.commit();
  });
}

export function layerNormBackward(
  backend: WasmBackend, dy: TensorRef, x: TensorRef, weight: TensorRef, mean: TensorRef, rstd: TensorRef, dx: TensorRef, dweight: TensorRef, dbias: TensorRef,
): void {
  const [rows, cols] = rowsCols(x);
  if (rows * cols === 0) return;
  staged(backend, [dy, x, weight, mean, rstd], ([pdy, px, pw, pm, pr]) => {
    const o = backend.stageOut(dx);
    const pdw = f32Ptr(backend, dweight), pdb = f32Ptr(backend, dbias);
    // As RMSNorm backward: dx by rows, dweight and dbias by columns.
    rowsAndColumns(backend, rows, cols, normWork(rows, cols), (r0, r1, c0, c1) => ({
      fn: 'layerNormBackwardF32Part', args: [pdy, px, pw, pm, pr, o.ptr, pdw, pdb, rows, cols, r0, r1, c0, c1],
    }));
    o.commit();
  });
}

/**
 * Runs part(r0, r1, c0, c1) over pieces that together cover rows [0, rows) and columns [0, cols)
 * once each (rows for per-row outputs, columns for per-column sums over every row); one piece
 * (every row and column) when the call is too small to split.
 */
/**
 * The work of a norm kernel (forward or backward) over rows x cols: a unit an element, so that rows
 * split among threads from 64K elements. Measured on 2 cores (2026-11-30, calls 20 us apart):
 * RMSNorm at 128 x 256 took 1.56x less time on two threads than on one, its backward 1.25x less; at
 * 512 x 64 1.4x and 1.2x less alone, but tiny's training step (whose norms are 512 x 64) took 1.06x
 * longer with them split.
 */
function normWork(rows: number, cols: number): number {
  return rows * cols;
}

function rowsAndColumns(backend: WasmBackend, rows: number, cols: number, work: number, part: (r0: number, r1: number, c0: number, c1: number) => KernelPart): void {
  const pieces = backend.pieces(backend.lanes(work), Math.max(rows, Math.ceil(cols / 4)));
  if (pieces <= 1) return backend.runParts([part(0, rows, 0, cols)]);
  const rr = splitRange(rows, pieces), cc = splitRange(cols, pieces, 4);
  backend.runParts(Array.from({ length: Math.max(rr.length, cc.length) }, (_, i) => {
    const [r0, r1] = rr[i] ?? [0, 0], [c0, c1] = cc[i] ?? [0, 0];
    return part(r0, r1, c0, c1);
  }));
}
