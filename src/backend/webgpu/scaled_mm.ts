// torch._scaled_mm on the WebGPU backend, per-tensor scales (shaders/scaled_mm.wgsl): float32
// accumulation in increasing k into a float32 result, cast once to out.dtype when it is not float32.
import { InvalidArgumentError } from '../../errors.js';
import { formatOf } from '../../dtype/formats.js';
import type { TensorRef } from '../backend.js';
import { accessor, fmtId, type WebGPUBackend } from './backend.js';

/** out[M, N] = (A * scaleA) @ (B * scaleB), A [M, K] and B [K, N] fp8 codes; float32 accumulation. */
export function scaledMatmul(g: WebGPUBackend, a: TensorRef, b: TensorRef, out: TensorRef, scaleA: number, scaleB: number): void {
  if (a.shape.length !== 2 || b.shape.length !== 2 || b.shape[0] !== a.shape[1]) {
    throw new InvalidArgumentError(`scaledMatmul takes A [M, K] and B [K, N], got [${a.shape}] and [${b.shape}]`);
  }
  for (const t of [a, b]) {
    if (t.dtype === 'int32' || formatOf(t.dtype).bits > 8) throw new InvalidArgumentError(`scaledMatmul takes formats of 8 bits or fewer, got ${t.dtype}`);
  }
  if (out.dtype === 'int32') throw new InvalidArgumentError('scaledMatmul output must be a float dtype');
  const [m, k] = a.shape;
  const n = b.shape[1];
  if (m === 0 || n === 0) return;
  const target = out.dtype === 'float32' ? out : { storage: g.alloc(m * n * 4, 'temporary', 'scaled_mm f32'), offset: 0, shape: out.shape, dtype: 'float32' as const };
  const p = g.pipeline('scaled_mm', () => g.shader('dtype') + accessor('a', 0, 'read') + accessor('b', 1, 'read') + accessor('out', 2, 'read_write') + g.shader('scaled_mm'), {
    FA: fmtId(a.dtype), FB: fmtId(b.dtype),
  });
  const tilesM = Math.ceil(m / 16), tilesN = Math.ceil(n / 16);
  const u = new ArrayBuffer(32);
  new Uint32Array(u).set([m, k, n, tilesN, a.offset, b.offset]);
  new Float32Array(u).set([scaleA, scaleB], 6);
  g.dispatch(p, [{ storage: a.storage, what: 'A' }, { storage: b.storage, what: 'B' }, { storage: target.storage, what: 'scaled_mm output' }], u, tilesM * tilesN);
  if (target !== out) {
    g.cast(target, out);
    g.free(target.storage);
  }
}
