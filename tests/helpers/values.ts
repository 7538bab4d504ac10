// Deterministic test values (one module for all the generators) and the parameter/gradient set-up of the optimizer tests.
import type { Backend } from '../../src/backend/backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Variable } from '../../src/autograd/index.js';

/** Deterministic pseudo-random float32 values in [-scale, scale) (xorshift32); `awayFromZero` keeps |v| >= 0.1 scale. */
export function rand(n: number, seed: number, scale = 1, awayFromZero = false): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    const u = (s / 2 ** 32) * 2 - 1;
    out[i] = (awayFromZero ? Math.sign(u) * 0.1 + u * 0.9 : u) * scale;
  }
  return out;
}

/** Float64 values in [-1, 1) from a 32-bit LCG, at least 0.05 from 0 (kinks of relu, |x|); the gradient checks' inputs. */
export function randValues(n: number, seed: number): Float64Array {
  let s = seed >>> 0 || 1;
  return Float64Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const v = (s / 2 ** 32) * 2 - 1;
    return Math.abs(v) < 0.05 ? v + Math.sign(v || 1) * 0.1 : v;
  });
}

/** A float32 Variable of `shape` holding rand(size, seed, 0.5): requires grad unless told otherwise. */
export function randVariable(b: Backend, shape: number[], seed: number, requiresGrad = true): Variable {
  return Variable.from(b, rand(shape.reduce((x, y) => x * y, 1), seed, 0.5), shape, { requiresGrad });
}

/** The float32 bit patterns of t's values (bit-identity checks); t must exist. */
export async function floatBits(t: Tensor | null): Promise<number[]> {
  if (!t) throw new Error('floatBits: no tensor (a gradient that was never made?)');
  const a = await t.to('float32').toArray();
  return [...new Uint32Array(a.buffer, a.byteOffset, a.length)];
}

/** A float32 (or `dtype`) leaf in the 'parameter' category that requires grad. */
export function param(b: Backend, values: ArrayLike<number>, shape: number[], dtype = 'float32'): Variable {
  return new Variable(Tensor.from(b, values, shape, { category: 'parameter', dtype }), { requiresGrad: true });
}

/** Replaces v.grad with these values (category 'gradient'). */
export function setGrad(v: Variable, values: ArrayLike<number>): void {
  v.grad?.dispose();
  v.grad = Tensor.from(v.backend, values, v.shape, { category: 'gradient' });
}

/** A seeded PRNG (mulberry32) of floats in [0, 1), so that failures reproduce. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
