// Scaled-dot-product attention (causal or not) on the wasm backend (kernels in assembly/kernels/attention.ts).
// q, k, v, out: [B, H, T, D], contiguous or views of [B, T, H, D] memory (attentionStrides); mask [B, T] (1 keep, 0 pad) or null; lse [B, H, T] float32. Inputs of
// any dtype are staged to float32; out, dq, dk, dv are rounded once into their dtype. A query row
// with no allowed key (all of its keys masked) gets out = 0 and lse = -inf, and no gradient.
import { InvalidArgumentError } from '../../errors.js';
import type { TensorRef } from '../backend.js';
import { attentionStrides, numel } from '../shape.js';
import type { WasmBackend } from './backend.js';
import { kernelExports, type MemfitWasm } from './exports.js';
import { f32Ptr } from './norms.js';

function exportsOf(): MemfitWasm {
  return kernelExports();
}

/** [B, H, T, D] of q; checks the rank. */
export function attentionDims(q: TensorRef): [number, number, number, number] {
  if (q.shape.length !== 4) throw new InvalidArgumentError(`attention expects q of shape [B, H, T, D], got [${q.shape.join(', ')}]`);
  return q.shape as unknown as [number, number, number, number];
}

/** Rows [b0, b0 + nb) of a tensor whose first dimension is the batch B. */
function batchPart(t: TensorRef, B: number, b0: number, nb: number): TensorRef {
  return { storage: t.storage, dtype: t.dtype, offset: t.offset + (b0 * numel(t.shape)) / B, shape: [nb, ...t.shape.slice(1)] };
}

/**
 * Runs fn over groups of whole batch entries, staging inputs (any dtype but float32) and outputs
 * one group at a time: a bfloat16 attention holds float32 copies of a few batch entries, not of
 * the whole batch. fn gets the group's size and the pointers of its staged inputs and outputs
 * (float32 tensors are read and written in place). The kernels index heads from the pointers
 * they are given, so a group is computed exactly as in one call over the batch.
 */
function byBatch(
  backend: WasmBackend, B: number, H: number, inputs: readonly (TensorRef | null)[], outputs: readonly TensorRef[],
  fn: (b0: number, nb: number, ins: number[], outs: number[]) => void,
): void {
  const f32 = [...inputs, ...outputs].every((t) => !t || t.dtype === 'float32');
  // Enough heads a group to keep every thread busy.
  const group = f32 ? B : Math.min(B, Math.max(1, Math.ceil((2 * backend.threads) / H)));
  for (let b0 = 0; b0 < B; b0 += group) {
    const nb = Math.min(group, B - b0);
    const s = backend.stageAll(inputs.map((t) => t && batchPart(t, B, b0, nb)));
    const outs: ReturnType<WasmBackend['stageOut']>[] = [];
    try {
      for (const t of outputs) outs.push(backend.stageOut(batchPart(t, B, b0, nb)));
      fn(b0, nb, s.map((v) => v.ptr), outs.map((o) => o.ptr));
      for (const o of outs) o.commit();
    } catch (e) {
      for (const o of outs) o.release();
      throw e;
    } finally {
      for (const v of s) v.release();
    }
  }
}

export function attention(backend: WasmBackend, q: TensorRef, k: TensorRef, v: TensorRef, out: TensorRef, lse: TensorRef, mask: TensorRef | null, scale: number, causal = true): void {
  const [B, H, T, D] = attentionDims(q);
  if (B * H * T === 0) return;
  const { hs, ts, memory } = attentionStrides(q, [k, v, out]);
  const pl = f32Ptr(backend, lse), c = causal ? 1 : 0;
  // Heads run in parallel (each head's rows are computed as on one thread); scratch per thread: a head's K packed, four rows of scores.
  const stride = (exportsOf().attentionScratchBytes(T, D) + 15) & ~15;
  byBatch(backend, B, H, [memory(q), memory(k), memory(v), mask], [memory(out)], (b0, nb, [pq, pk, pv, pm], [po]) => {
    backend.withThreadScratch(stride, (scores) => backend.parallelFor(nb * H, 1, nb * H * T * T * D, (r0, r1) => ({
      fn: 'attentionF32Heads', args: [pq, pk, pv, pm, po, pl + b0 * H * T * 4, H, T, D, scale, c, r0, r1, hs, ts, scores],
    }), stride));
  });
}

export function attentionBackward(
  backend: WasmBackend, dout: TensorRef, q: TensorRef, k: TensorRef, v: TensorRef, out: TensorRef, lse: TensorRef, mask: TensorRef | null, scale: number,
  dq: TensorRef, dk: TensorRef, dv: TensorRef, causal = true,
): void {
  const [B, H, T, D] = attentionDims(q);
  if (B * H * T === 0) return;
  const { hs, ts, memory } = attentionStrides(q, [k, v, out, dout, dq, dk, dv]);
  const pl = f32Ptr(backend, lse), c = causal ? 1 : 0;
  const di = backend.temp(B * H * T * 4, 'attention di');
  try {
    // Heads in parallel; scratch per thread: a head's K and V packed, and its P and dS (a cache of the whole head up to T = 1024, else recomputed).
    const bytes = (exportsOf().attentionBackwardScratchBytes(T, D) + 15) & ~15;
    const ins = [memory(dout), memory(q), memory(k), memory(v), memory(out), mask];
    byBatch(backend, B, H, ins, [memory(dq), memory(dk), memory(dv)], (b0, nb, [pdo, pq, pk, pv, po, pm], [oq, ok, ov]) => {
      const rows = b0 * H * T * 4;
      backend.withThreadScratch(bytes, (scratch) => backend.parallelFor(nb * H, 1, 2 * nb * H * T * T * D, (r0, r1) => ({
        fn: 'attentionBackwardF32Heads', args: [pdo, pq, pk, pv, po, pl + rows, pm, oq, ok, ov, di.ptr + rows, H, T, D, scale, c, r0, r1, hs, ts, scratch],
      }), bytes));
    });
  } finally {
    backend.free(di.storage);
  }
}
