// Scaled-dot-product attention (causal or not) on the wasm backend (kernels in assembly/kernels/attention.ts).
// q, k, v, out: [B, H, T, D], contiguous or views of [B, T, H, D] memory (attentionStrides); mask [B, T] (1 keep, 0 pad) or null; lse [B, H, T] float32. Inputs of
// any dtype are staged to float32; out, dq, dk, dv are rounded once into their dtype. A query row
// with no allowed key (all of its keys masked) gets out = 0 and lse = -inf, and no gradient.
import { InvalidArgumentError } from '../../errors.js';
import type { TensorRef } from '../backend.js';
import { attentionStrides } from '../shape.js';
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

function staged(backend: WasmBackend, inputs: readonly (TensorRef | null)[], fn: (ptrs: number[]) => void): void {
  const s = backend.stageAll(inputs);
  try {
    fn(s.map((v) => v.ptr));
  } finally {
    for (const v of s) v.release();
  }
}

export function attention(backend: WasmBackend, q: TensorRef, k: TensorRef, v: TensorRef, out: TensorRef, lse: TensorRef, mask: TensorRef | null, scale: number, causal = true): void {
  const [B, H, T, D] = attentionDims(q);
  if (B * H * T === 0) return;
  const { hs, ts, memory } = attentionStrides(q, [k, v, out]);
  staged(backend, [memory(q), memory(k), memory(v), mask], ([pq, pk, pv, pm]) => {
    const o = backend.stageOut(memory(out));
    const pl = f32Ptr(backend, lse), c = causal ? 1 : 0;
    // Heads run in parallel (each head's rows are computed as on one thread); scratch: a row of scores per thread.
    const stride = (T * 4 + 15) & ~15;
    backend.withThreadScratch(stride, (scores) => backend.parallelFor(B * H, 1, B * H * T * T * D, (r0, r1) => ({
      fn: 'attentionF32Heads', args: [pq, pk, pv, pm, o.ptr, pl, H, T, D, scale, c, r0, r1, hs, ts, scores],
    }), stride));
    o.commit();
  });
}

export function attentionBackward(
  backend: WasmBackend, dout: TensorRef, q: TensorRef, k: TensorRef, v: TensorRef, out: TensorRef, lse: TensorRef, mask: TensorRef | null, scale: number,
  dq: TensorRef, dk: TensorRef, dv: TensorRef, causal = true,
): void {
  const [B, H, T, D] = attentionDims(q);
  if (B * H * T === 0) return;
  const { hs, ts, memory } = attentionStrides(q, [k, v, out, dout, dq, dk, dv]);
  staged(backend, [memory(dout), memory(q), memory(k), memory(v), memory(out), lse, mask], ([pdo, pq, pk, pv, po, pl, pm]) => {
    const di = backend.temp(B * H * T * 4, 'attention di');
    const oq = backend.stageOut(memory(dq)), ok = backend.stageOut(memory(dk)), ov = backend.stageOut(memory(dv));
    try {
      const c = causal ? 1 : 0;
      // Heads in parallel; scratch: each thread's cache of one head's P and dS (none for long sequences: recomputed).
      const bytes = (exportsOf().attentionBackwardCacheBytes(T) + 15) & ~15;
      const heads = (cache: number) => backend.parallelFor(B * H, 1, 2 * B * H * T * T * D, (r0, r1) => ({
        fn: 'attentionBackwardF32Heads', args: [pdo, pq, pk, pv, po, pl, pm, oq.ptr, ok.ptr, ov.ptr, di.ptr, H, T, D, scale, c, r0, r1, hs, ts, cache],
      }), cache ? bytes : 0);
      if (bytes) backend.withThreadScratch(bytes, heads);
      else heads(0);
      oq.commit();
      ok.commit();
      ov.commit();
    } finally {
      backend.free(di.storage);
    }
  });
}
