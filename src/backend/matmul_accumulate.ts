// MatmulOptions.accumulate, shared by the backends: out += alpha op(A) op(B), the product rounded to
// float32 first and then added, exactly as a matmul into a temporary followed by binary('add').
// The wasm kernel adds in place where the product is one K block; elsewhere (deeper products, the
// WebGPU backend) this temporary path gives the same bits.
import { InvalidArgumentError } from '../errors.js';
import type { Backend, MatmulOptions, TensorRef } from './backend.js';

/** Refuses accumulate into anything but a float32 out; returns true. */
export function checkAccumulate(out: TensorRef, backend: string): true {
  if (out.dtype !== 'float32') throw new InvalidArgumentError(`matmul (${backend}): accumulate adds into a float32 out, got ${out.dtype}`);
  return true;
}

/** out += the product, through a float32 temporary of out's shape (freed before returning). */
export function accumulateViaTemporary(backend: Pick<Backend, 'alloc' | 'free' | 'matmul' | 'binary'>, a: TensorRef, b: TensorRef, out: TensorRef, options: MatmulOptions): void {
  const n = out.shape.reduce((p, d) => p * d, 1);
  const storage = backend.alloc(Math.max(n * 4, 4), 'temporary', 'matmul accumulate');
  try {
    const product: TensorRef = { storage, offset: 0, shape: out.shape, dtype: 'float32' };
    backend.matmul(a, b, product, { ...options, accumulate: false });
    backend.binary('add', out, product, out);
  } finally {
    backend.free(storage);
  }
}
