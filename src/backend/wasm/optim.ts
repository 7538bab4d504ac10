// Optimizer kernels on the wasm backend (AssemblyScript twins in assembly/kernels/optim.ts).
import { adamwScalars } from '../adamw.js';
import { InvalidArgumentError } from '../../errors.js';
import type { AdamWDeviceInputs, AdamWHyper, TensorRef } from '../backend.js';
import { numel } from '../shape.js';
import type { WasmBackend } from './backend.js';
import { kernelExports, type MemfitWasm } from './exports.js';

function k(): MemfitWasm {
  return kernelExports();
}

function f32Ptr(backend: WasmBackend, t: TensorRef, what: string): number {
  if (t.dtype !== 'float32') throw new InvalidArgumentError(`${what} must be float32, got ${t.dtype}`);
  return backend.ptr(t.storage) + t.offset * 4;
}

/** The float32 at a one-element tensor (this backend's memory is the host's: reading it waits for nothing). */
function f32At(backend: WasmBackend, t: TensorRef, what: string): number {
  if (numel(t.shape) !== 1) throw new InvalidArgumentError(`${what} must have one element, got shape [${t.shape.join(', ')}]`);
  return new Float32Array(kernelExports().memory.buffer, f32Ptr(backend, t, what), 1)[0];
}

/** GradScaler: every float32 tensor *= invScale in place; foundInf = 1 if any element was inf or NaN. */
export function nonFiniteCheckAndUnscale(backend: WasmBackend, tensors: readonly TensorRef[], foundInf: TensorRef, invScale: TensorRef): void {
  const found = f32Ptr(backend, foundInf, 'foundInf');
  const inv = f32At(backend, invScale, 'invScale');
  for (const t of tensors) {
    const n = numel(t.shape);
    if (n === 0) continue;
    const x = f32Ptr(backend, t, 'nonFiniteCheckAndUnscale tensors');
    // Element ranges in parallel: each scales its own elements and may only set the flag to 1.
    backend.parallelFor(n, 16, n, (a, b) => ({ fn: 'unscaleF32', args: [x + a * 4, b - a, inv, found] }));
  }
}

/** GradScaler's scale update (torch._amp_update_scale_); see Kernels.ampUpdateScale. */
export function ampUpdateScale(
  backend: WasmBackend, scale: TensorRef, invScale: TensorRef, growthTracker: TensorRef, foundInf: TensorRef,
  growthFactor: number, backoffFactor: number, growthInterval: number,
): void {
  if (growthTracker.dtype !== 'int32') throw new InvalidArgumentError(`growthTracker must be int32, got ${growthTracker.dtype}`);
  k().ampUpdateScaleF32(
    f32Ptr(backend, scale, 'scale'), f32Ptr(backend, invScale, 'invScale'), backend.ptr(growthTracker.storage) + growthTracker.offset * 4,
    f32Ptr(backend, foundInf, 'foundInf'), growthFactor, backoffFactor, growthInterval,
  );
}

/** out (float32, shape []) = sqrt(sum over tensors of sum(x^2)), accumulated in float64 and rounded once. */
export function globalNorm(backend: WasmBackend, tensors: readonly TensorRef[], out: TensorRef): void {
  let total = 0;
  for (const t of tensors) {
    const n = numel(t.shape);
    if (n === 0) continue;
    const s = backend.stageIn(t);
    try {
      total += k().sumSquaresF32(s.ptr, n);
    } finally {
      s.release();
    }
  }
  new Float32Array(kernelExports().memory.buffer, f32Ptr(backend, out, 'globalNorm out'), 1)[0] = Math.sqrt(total);
}

/**
 * One AdamW step in place; param may be any float dtype (updated in float32, rounded once), m and v
 * float32. With `device`: nothing is written when device.foundInf is nonzero, and device.scalars
 * replace (stepSize, bc2Sqrt).
 */
export function adamw(backend: WasmBackend, param: TensorRef, grad: TensorRef, m: TensorRef, v: TensorRef, hyper: AdamWHyper, device?: AdamWDeviceInputs): void {
  const n = numel(param.shape);
  const s = adamwScalars(hyper);
  if (device) {
    if (f32At(backend, device.foundInf, 'foundInf') !== 0) return; // skipped: param, m and v untouched (NaN counts as set)
    if (device.scalars) {
      if (numel(device.scalars.shape) !== 2) throw new InvalidArgumentError(`adamw scalars must have 2 elements, got shape [${device.scalars.shape.join(', ')}]`);
      const sc = new Float32Array(kernelExports().memory.buffer, f32Ptr(backend, device.scalars, 'adamw scalars'), 2);
      s.stepSize = sc[0];
      s.bc2Sqrt = sc[1];
    }
  }
  if (n === 0) return;
  const pm = f32Ptr(backend, m, 'adamw m');
  const pv = f32Ptr(backend, v, 'adamw v');
  const g = backend.stageIn(grad);
  try {
    // Element ranges in parallel (each element's update is the same on any thread), from 131K
    // elements (half a unit of work each): measured on 2 cores (2026-11-30, calls 20 us apart), 65K
    // took as long on two threads as on one, 180K 1.5x less time, 720K 1.77x less.
    const step = (pp: number) => backend.parallelFor(n, 16, Math.ceil(n / 2), (a, b) => ({
      fn: 'adamwF32', args: [pp + a * 4, g.ptr + a * 4, pm + a * 4, pv + a * 4, b - a, s.gradScale, s.decay, s.beta1, s.omb1, s.beta2, s.omb2, s.stepSize, s.bc2Sqrt, s.eps],
    }));
    if (param.dtype === 'float32') step(backend.ptr(param.storage) + param.offset * 4);
    else {
      if (param.dtype === 'int32') throw new InvalidArgumentError('adamw param must be a float dtype');
      const p = backend.stageIn(param); // a float32 copy: decoded exactly
      try {
        const o = backend.stageOut(param); // a float32 buffer rounded into param's storage on commit
        new Float32Array(kernelExports().memory.buffer, o.ptr, n).set(new Float32Array(kernelExports().memory.buffer, p.ptr, n));
        step(o.ptr);
        o.commit();
      } finally {
        p.release();
      }
    }
  } finally {
    g.release();
  }
}
