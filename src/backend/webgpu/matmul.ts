import type { MatmulOptions, TensorRef } from '../backend.js';
import { numel } from '../shape.js';
import { accessor, fmtId, type WebGPUBackend } from './backend.js';

/** Batched matmul on the GPU (float32 result, cast once to out's dtype when it is not float32). */
export function matmul(g: WebGPUBackend, a: TensorRef, b: TensorRef, out: TensorRef, options: MatmulOptions = {}): void {
  const r = out.shape.length;
  const m = out.shape[r - 2], n = out.shape[r - 1];
  const k = options.transA ? a.shape[a.shape.length - 2] : a.shape[a.shape.length - 1];
  const batch = numel(out.shape.slice(0, r - 2));
  const batchOf = (t: TensorRef) => numel(t.shape.slice(0, t.shape.length - 2));
  const target = out.dtype === 'float32' ? out : { storage: g.alloc(m * n * batch * 4, 'temporary', 'matmul f32'), offset: 0, shape: out.shape, dtype: 'float32' as const };
  const p = g.pipeline('matmul', () => g.shader('dtype') + accessor('a', 0, 'read') + accessor('b', 1, 'read') + accessor('out', 2, 'read_write') + g.shader('matmul'), {
    FA: fmtId(a.dtype), FB: fmtId(b.dtype), TRANS_A: options.transA ? 1 : 0, TRANS_B: options.transB ? 1 : 0,
  });
  const tilesN = Math.ceil(n / 16), tilesM = Math.ceil(m / 16);
  const u = new ArrayBuffer(48);
  new Uint32Array(u).set([m, k, n, batch, batchOf(a) === 1 ? 0 : m * k, batchOf(b) === 1 ? 0 : k * n, a.offset, b.offset]);
  new Float32Array(u)[8] = options.alpha ?? 1;
  new Uint32Array(u)[9] = tilesN;
  g.dispatch(p, [{ storage: a.storage }, { storage: b.storage }, { storage: target.storage, what: 'matmul output' }], u, tilesM * tilesN * batch);
  if (target !== out) {
    g.cast(target, out);
    g.free(target.storage);
  }
}
