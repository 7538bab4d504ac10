// torch._scaled_mm on the wasm backend, per-tensor scales read from device tensors, in the steps
// of the WGSL kernel (the dtype layer's reference, assembly/scaled_mm.ts, rounds once from
// float64 instead); and float8 training's scale update (twin of shaders/float8.wgsl).
import { InvalidArgumentError } from '../../errors.js';
import { formatOf } from '../../dtype/formats.js';
import { FLOAT8_AMAX_EPS, type Float8ScaleOptions, type TensorRef } from '../backend.js';
import { numel } from '../shape.js';
import type { WasmBackend } from './backend.js';
import { kernelExports } from './exports.js';

/** The address of a float32 one-element tensor (a scale on the device). */
export function scalarPtr(backend: WasmBackend, t: TensorRef, what: string): number {
  if (t.dtype !== 'float32') throw new InvalidArgumentError(`${what} must be float32, got ${t.dtype}`);
  if (numel(t.shape) !== 1) throw new InvalidArgumentError(`${what} must have one element, got shape [${t.shape.join(', ')}]`);
  return backend.ptr(t.storage) + t.offset * 4;
}

/**
 * out[M, N] = (A * scaleA) @ (B * scaleB), A [M, K] and B [K, N] codes of 8 bits or fewer, scales
 * float32 [1] tensors. The operands are decoded exactly into float32 and multiplied by the backend's
 * float32 matmul (products of two fp8 values are exact in float32; sums in increasing k within K
 * blocks of 256, so for K <= 256 the order of the WGSL kernel); the sum is multiplied by scaleA,
 * then by scaleB, in float32, and rounded to out.dtype: the WGSL kernel's steps.
 */
export function scaledMatmul(backend: WasmBackend, a: TensorRef, b: TensorRef, out: TensorRef, scaleA: TensorRef, scaleB: TensorRef): void {
  const [m, k] = a.shape.slice(-2);
  const n = b.shape[b.shape.length - 1];
  if (a.shape.length !== 2 || b.shape.length !== 2 || b.shape[0] !== k) {
    throw new InvalidArgumentError(`scaledMatmul takes A [M, K] and B [K, N], got [${a.shape}] and [${b.shape}]`);
  }
  for (const t of [a, b]) {
    if (t.dtype === 'int32' || formatOf(t.dtype).bits > 8) throw new InvalidArgumentError(`scaledMatmul takes formats of 8 bits or fewer, got ${t.dtype}`);
  }
  if (out.offset !== 0) throw new InvalidArgumentError('kernel outputs must start at offset 0');
  if (out.dtype === 'int32') throw new InvalidArgumentError('scaledMatmul output must be a float dtype');
  scalarPtr(backend, scaleA, 'scaleA');
  scalarPtr(backend, scaleB, 'scaleB');
  if (m === 0 || n === 0) return;
  const made: TensorRef[] = [];
  const f32 = (shape: number[], label: string): TensorRef => {
    const t: TensorRef = { storage: backend.alloc(Math.max(numel(shape), 1) * 4, 'temporary', label), offset: 0, shape, dtype: 'float32' };
    made.push(t);
    return t;
  };
  try {
    const af = f32([m, k], 'scaled_mm A'), bf = f32([k, n], 'scaled_mm B');
    backend.cast(a, af);
    backend.cast(b, bf);
    const target = out.dtype === 'float32' ? out : f32([m, n], 'scaled_mm f32');
    if (k === 0) backend.fill(target, 0);
    else backend.matmul(af, bf, target);
    backend.binary('mul', target, scaleA, target);
    backend.binary('mul', target, scaleB, target);
    if (target !== out) backend.cast(target, out);
  } finally {
    for (const t of made) backend.free(t.storage);
  }
}

/** Float8 training's scale update (Kernels.float8ScaleUpdate): float32 arithmetic on the tensors in place. */
export function float8ScaleUpdate(backend: WasmBackend, history: TensorRef, scale: TensorRef, scaleInv: TensorRef, options: Float8ScaleOptions): void {
  if (history.dtype !== 'float32' || history.shape.length !== 1 || history.shape[0] < 1) {
    throw new InvalidArgumentError(`float8ScaleUpdate: history must be float32 [L] with L >= 1, got ${history.dtype} [${history.shape.join(', ')}]`);
  }
  const mem = kernelExports().memory.buffer;
  const h = new Float32Array(mem, backend.ptr(history.storage) + history.offset * 4, history.shape[0]);
  const s = new Float32Array(mem, scalarPtr(backend, scale, 'scale'), 1);
  const inv = new Float32Array(mem, scalarPtr(backend, scaleInv, 'scaleInv'), 1);
  const f = Math.fround;
  const fp8Max = f(options.fp8Max);
  if (options.algorithm === 'current') {
    s[0] = f(fp8Max / Math.max(h[0], FLOAT8_AMAX_EPS)); // Math.max(NaN, eps) is NaN, as torch.clamp
  } else {
    let amax = h[0];
    if (options.algorithm === 'max') { // fmaxf from 0: NaN entries are skipped, an inf is kept
      amax = 0;
      for (let i = 0; i < h.length; i++) if (h[i] > amax) amax = h[i];
    }
    // torch.roll(history, -1) then history[0] = 0 (TE's _update_amax_history)
    const newest = h[0];
    h.copyWithin(0, 1);
    h[h.length - 1] = newest;
    h[0] = 0;
    const scaledMax = f(fp8Max * 2 ** -(options.margin ?? 0)); // TE's fp8_max * 2^-margin, then one division
    if (amax > 0 && Number.isFinite(amax)) s[0] = f(scaledMax / amax);
  }
  inv[0] = f(1 / s[0]);
}
