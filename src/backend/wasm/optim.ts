// Optimizer kernels on the wasm backend (AssemblyScript twins in assembly/kernels/optim.ts).
import { adamwScalars } from '../adamw.js';
import { InvalidArgumentError } from '../../errors.js';
import type { AdamWHyper, TensorRef } from '../backend.js';
import { numel } from '../shape.js';
import { kernelExports, type WasmBackend } from './backend.js';

interface OptimExports {
  unscaleF32(x: number, n: number, invScale: number, found: number): number;
  sumSquaresF32(x: number, n: number): number;
  adamwF32(
    p: number, grad: number, m: number, v: number, n: number,
    gradScale: number, decay: number, beta1: number, omb1: number, beta2: number, omb2: number, stepSize: number, bc2Sqrt: number, eps: number,
  ): void;
}

function k(): OptimExports {
  return kernelExports() as unknown as OptimExports;
}

function f32Ptr(backend: WasmBackend, t: TensorRef, what: string): number {
  if (t.dtype !== 'float32') throw new InvalidArgumentError(`${what} must be float32, got ${t.dtype}`);
  return backend.ptr(t.storage) + t.offset * 4;
}

/** GradScaler: every float32 tensor *= invScale in place; foundInf = 1 if any element was inf or NaN. */
export function nonFiniteCheckAndUnscale(backend: WasmBackend, tensors: readonly TensorRef[], foundInf: TensorRef, invScale: number): void {
  const found = f32Ptr(backend, foundInf, 'foundInf');
  for (const t of tensors) {
    const n = numel(t.shape);
    if (n === 0) continue;
    k().unscaleF32(f32Ptr(backend, t, 'nonFiniteCheckAndUnscale tensors'), n, invScale, found);
  }
}

/** out (float32, shape []) = sqrt(sum over tensors of sum(x^2)); float32 accumulation. */
export function globalNorm(backend: WasmBackend, tensors: readonly TensorRef[], out: TensorRef): void {
  let total = Math.fround(0);
  for (const t of tensors) {
    const n = numel(t.shape);
    if (n === 0) continue;
    const s = backend.stageIn(t);
    try {
      total = Math.fround(total + k().sumSquaresF32(s.ptr, n));
    } finally {
      s.release();
    }
  }
  new Float32Array(kernelExports().memory.buffer, f32Ptr(backend, out, 'globalNorm out'), 1)[0] = Math.sqrt(total);
}

/** One AdamW step in place; param may be any float dtype (updated in float32, rounded once), m and v float32. */
export function adamw(backend: WasmBackend, param: TensorRef, grad: TensorRef, m: TensorRef, v: TensorRef, hyper: AdamWHyper): void {
  const n = numel(param.shape);
  if (n === 0) return;
  const s = adamwScalars(hyper);
  const pm = f32Ptr(backend, m, 'adamw m');
  const pv = f32Ptr(backend, v, 'adamw v');
  const g = backend.stageIn(grad);
  try {
    const step = (pp: number) => k().adamwF32(pp, g.ptr, pm, pv, n, s.gradScale, s.decay, s.beta1, s.omb1, s.beta2, s.omb2, s.stepSize, s.bc2Sqrt, s.eps);
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
