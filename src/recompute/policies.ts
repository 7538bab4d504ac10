// Ready-made selective-checkpoint policies (see CheckpointPolicy in checkpoint.ts).
import type { CheckpointDecision, CheckpointPolicy, PolicyContext } from './checkpoint.js';

/** The ops whose outputs saveMatmuls keeps: the matrix products (their recompute is the costly part). */
export const MATMUL_OPS: ReadonlySet<string> = new Set([
  'matmul', 'mm', 'bmm', 'addmm', 'linear', 'scaled_dot_product_attention', 'conv2d', 'scaled_mm',
]);

/** Keep the outputs of these ops (by PyTorch name), recompute every other op. */
export function saveOps(ops: Iterable<string>): CheckpointPolicy {
  const set = new Set(ops);
  return (ctx: PolicyContext): CheckpointDecision => (set.has(ctx.op) ? 'preferSave' : 'preferRecompute');
}

/**
 * Save matmul/linear/attention outputs, recompute pointwise ops and norms (PyTorch's usual
 * selective-checkpoint choice): the recompute costs little time, the pointwise and norm
 * activations (the most bytes per flop) are not kept.
 */
export const saveMatmuls: CheckpointPolicy = saveOps(MATMUL_OPS);

/** Recompute every op (the same as no policy: plain checkpointing). */
export const recomputeAll: CheckpointPolicy = () => 'preferRecompute';

/** Keep every op's output (nothing is recomputed; the recompute only replays saved outputs). */
export const saveAll: CheckpointPolicy = () => 'preferSave';
