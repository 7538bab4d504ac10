// torch._scaled_mm on the WebGPU backend, per-tensor scales read from device tensors: the product on
// the matmul kernels (float32 accumulation; subgroup matrices where the device has them) into a
// float32 result, scaled on the device (shaders/scaled_mm.wgsl), cast once to out.dtype when it is
// not float32; and float8 training's scale update (shaders/float8.wgsl).
import { InvalidArgumentError } from '../../errors.js';
import { formatOf } from '../../dtype/formats.js';
import type { Float8ScaleOptions, TensorRef } from '../backend.js';
import { numel } from '../shape.js';
import type { WebGPUBackend } from './backend.js';
import { matmul } from './matmul.js';

function requireScalar(t: TensorRef, what: string): void {
  if (t.dtype !== 'float32') throw new InvalidArgumentError(`${what} must be float32, got ${t.dtype}`);
  if (numel(t.shape) !== 1) throw new InvalidArgumentError(`${what} must have one element, got shape [${t.shape.join(', ')}]`);
}

/** out[M, N] = (A * scaleA) @ (B * scaleB), A [M, K] and B [K, N] fp8 codes, scales float32 [1] tensors; float32 accumulation. */
export function scaledMatmul(g: WebGPUBackend, a: TensorRef, b: TensorRef, out: TensorRef, scaleA: TensorRef, scaleB: TensorRef): void {
  if (a.shape.length !== 2 || b.shape.length !== 2 || b.shape[0] !== a.shape[1]) {
    throw new InvalidArgumentError(`scaledMatmul takes A [M, K] and B [K, N], got [${a.shape}] and [${b.shape}]`);
  }
  for (const t of [a, b]) {
    if (t.dtype === 'int32' || formatOf(t.dtype).bits > 8) throw new InvalidArgumentError(`scaledMatmul takes formats of 8 bits or fewer, got ${t.dtype}`);
  }
  if (out.dtype === 'int32') throw new InvalidArgumentError('scaledMatmul output must be a float dtype');
  requireScalar(scaleA, 'scaleA');
  requireScalar(scaleB, 'scaleB');
  const [m, k] = a.shape;
  const n = b.shape[1];
  if (m === 0 || n === 0) return;
  const target = out.dtype === 'float32' ? out : { storage: g.alloc(m * n * 4, 'temporary', 'scaled_mm f32'), offset: 0, shape: out.shape, dtype: 'float32' as const };
  // The product on the matmul kernels (tensor cores where the device has them), then the scales.
  matmul(g, a, b, target);
  const p = g.pipeline('scaled_mm', () => g.shader('scaled_mm'));
  const u = new Uint32Array([m * n, scaleA.offset, scaleB.offset, 0]);
  g.dispatch(p, [
    { storage: target.storage, what: 'scaled_mm output' }, { storage: scaleA.storage, what: 'scaleA' }, { storage: scaleB.storage, what: 'scaleB' },
  ], u.buffer, Math.ceil((m * n) / 256));
  if (target !== out) {
    g.cast(target, out);
    g.free(target.storage);
  }
}

const ALGORITHMS = { max: 0, mostRecent: 1, current: 2 } as const;

/** Float8 training's scale update (Kernels.float8ScaleUpdate), one invocation. */
export function float8ScaleUpdate(g: WebGPUBackend, history: TensorRef, scale: TensorRef, scaleInv: TensorRef, options: Float8ScaleOptions): void {
  if (history.dtype !== 'float32' || history.shape.length !== 1 || history.shape[0] < 1) {
    throw new InvalidArgumentError(`float8ScaleUpdate: history must be float32 [L] with L >= 1, got ${history.dtype} [${history.shape.join(', ')}]`);
  }
  requireScalar(scale, 'scale');
  requireScalar(scaleInv, 'scaleInv');
  const p = g.pipeline('float8.scale_update', () => g.shader('float8'));
  const u = new ArrayBuffer(32);
  new Uint32Array(u).set([history.shape[0], history.offset, scale.offset, scaleInv.offset, ALGORITHMS[options.algorithm]]);
  new Float32Array(u).set([options.fp8Max, Math.fround(options.fp8Max * 2 ** -(options.margin ?? 0))], 5);
  g.dispatch(p, [{ storage: history.storage, what: 'amax history' }, { storage: scale.storage, what: 'scale' }, { storage: scaleInv.storage, what: 'scaleInv' }], u, 1);
}
