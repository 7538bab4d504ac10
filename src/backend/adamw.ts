// The scalars of one AdamW step, in PyTorch's arrangement of the update, shared by the wasm and
// WebGPU kernels (so both backends compute the same float32 sequence).
import { InvalidArgumentError } from '../errors.js';
import type { AdamWHyper } from './backend.js';

export interface AdamWScalars {
  gradScale: number; decay: number; beta1: number; omb1: number; beta2: number; omb2: number; stepSize: number; bc2Sqrt: number; eps: number;
}

export function adamwScalars(h: AdamWHyper): AdamWScalars {
  if (!(h.step >= 1)) throw new InvalidArgumentError(`adamw step must be >= 1, got ${h.step}`);
  const bc1 = 1 - h.beta1 ** h.step;
  const bc2 = 1 - h.beta2 ** h.step;
  return {
    gradScale: h.gradScale ?? 1,
    decay: 1 - h.lr * h.weightDecay,
    beta1: h.beta1, omb1: 1 - h.beta1,
    beta2: h.beta2, omb2: 1 - h.beta2,
    stepSize: h.lr / bc1,
    bc2Sqrt: Math.sqrt(bc2),
    eps: h.eps,
  };
}
