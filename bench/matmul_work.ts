// The matrix-product work of a training step, counted and predicted: the floor under activation
// checkpointing's added time. A checkpointed layer's recompute runs its forward's matrix products
// again (all but the last, whose output backward does not need: the recompute stops early), and
// no kernel speed-up changes that ratio of work. bench:train --checkpoint reports the counted
// ratio beside the measured step-time ratio; tests/bench/matmul_work.test.ts checks the count
// against llamaStepMacs.
import type { Backend, MatmulOptions, TensorRef } from '../src/backend/backend.js';
import type { LlamaConfig } from '../src/nn/llama.js';

/** Multiply-adds of one backend.matmul call: the output's elements times the shared dimension. */
export function matmulMacs(a: TensorRef, out: TensorRef, options: MatmulOptions = {}): number {
  const k = options.transA ? a.shape[a.shape.length - 2] : a.shape[a.shape.length - 1];
  return out.shape.reduce((p, d) => p * d, 1) * k;
}

/** Runs fn with every backend.matmul call's multiply-adds added up; resolves to fn's result and the sum. */
export async function countMatmulMacs<T>(backend: Backend, fn: () => Promise<T> | T): Promise<{ result: T; macs: number }> {
  const own = Object.prototype.hasOwnProperty.call(backend, 'matmul');
  const matmul = backend.matmul;
  let macs = 0, depth = 0;
  backend.matmul = function (this: Backend, a, b, out, options) {
    // only the outermost call: a backend's matmul may call matmul again for the same product
    // (an accumulate through a temporary)
    if (depth === 0) macs += matmulMacs(a, out, options);
    depth++;
    try {
      return matmul.call(this, a, b, out, options);
    } finally {
      depth--;
    }
  };
  try {
    const result = await fn();
    return { result, macs };
  } finally {
    if (own) backend.matmul = matmul;
    else delete (backend as { matmul?: unknown }).matmul;
  }
}

/** What a step recomputes: nothing, each decoder layer (per-layer checkpointing, in pieces or not), or the layers and the head (recomputeLogits). */
export type RecomputeMode = 'none' | 'layers' | 'layers-logits';

/**
 * The matmul multiply-adds of one training step of a Llama without a tied head (attention is its
 * own kernel, not counted): each token passes the layers' seven linears (q, k, v, o: hidden^2 each;
 * gate, up, down: hidden x intermediate each), the rotary embedding of q and k (rotate-half as a
 * product with a [headDim, headDim] matrix: 2 x hidden x headDim) and the head (hidden x vocab) in
 * the forward; backward computes each linear's input and weight gradients (twice the forward's
 * work) and the rotation's input gradient (once). A recomputed layer adds its forward but the down
 * projection; recomputed logits add the head.
 */
export function llamaStepMacs(
  model: Pick<LlamaConfig, 'hiddenSize' | 'intermediateSize' | 'numHiddenLayers' | 'numAttentionHeads' | 'vocabSize'>, tokens: number, mode: RecomputeMode,
): number {
  const h = model.hiddenSize, i = model.intermediateSize, layers = model.numHiddenLayers;
  const linears = 4 * h * h + 3 * h * i, rope = 2 * h * (h / model.numAttentionHeads), head = h * model.vocabSize;
  const step = layers * (3 * linears + 2 * rope) + 3 * head;
  const recompute = mode === 'none' ? 0 : layers * (linears - h * i + rope) + (mode === 'layers-logits' ? head : 0);
  return tokens * (step + recompute);
}
