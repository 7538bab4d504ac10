// torch._scaled_mm on the wasm backend, per-tensor scales: the dtype layer's reference kernel
// (assembly/scaled_mm.ts) with float32 accumulation in increasing k, the order the WGSL kernel uses.
import { InvalidArgumentError } from '../../errors.js';
import { formatOf } from '../../dtype/formats.js';
import { wasm } from '../../dtype/wasm.js';
import type { TensorRef } from '../backend.js';
import { kernelExports, type WasmBackend } from './backend.js';

const SCALE_TENSOR = 0;

/** Codes of an fp8 (or narrower) operand, one a byte: a pointer and a release(). */
function codesOf(backend: WasmBackend, t: TensorRef, n: number): { ptr: number; release(): void } {
  if (t.dtype === 'int32') throw new InvalidArgumentError('scaledMatmul operands must be float formats of 8 bits or fewer');
  const f = formatOf(t.dtype);
  if (f.bits > 8) throw new InvalidArgumentError(`scaledMatmul takes formats of 8 bits or fewer, got ${f.name}`);
  const base = backend.ptr(t.storage);
  if (f.bits === 8) return { ptr: base + t.offset, release() {} };
  const c = backend.temp(n, 'scaled_mm codes');
  kernelExports().unpackRange(f.bits, base, t.offset, c.ptr, n);
  return { ptr: c.ptr, release: () => backend.free(c.storage) };
}

/** out[M, N] = (A * scaleA) @ (B * scaleB), A [M, K] and B [K, N] fp8 codes; float32 accumulation, rounded once to out.dtype. */
export function scaledMatmul(backend: WasmBackend, a: TensorRef, b: TensorRef, out: TensorRef, scaleA: number, scaleB: number): void {
  const [m, k] = a.shape.slice(-2);
  const n = b.shape[b.shape.length - 1];
  if (a.shape.length !== 2 || b.shape.length !== 2 || b.shape[0] !== k) {
    throw new InvalidArgumentError(`scaledMatmul takes A [M, K] and B [K, N], got [${a.shape}] and [${b.shape}]`);
  }
  if (out.offset !== 0) throw new InvalidArgumentError('kernel outputs must start at offset 0');
  if (out.dtype === 'int32') throw new InvalidArgumentError('scaledMatmul output must be a float dtype');
  if (m === 0 || n === 0) return;
  const fo = formatOf(out.dtype);
  const w = wasm();
  const ca = codesOf(backend, a, m * k);
  const cb = codesOf(backend, b, k * n);
  const scales = backend.temp(8, 'scaled_mm scales');
  const narrow = fo.bits < 8 ? backend.temp(m * n, 'scaled_mm out codes') : null;
  try {
    new Float32Array(kernelExports().memory.buffer, scales.ptr, 2).set([scaleA, scaleB]);
    if (k === 0) {
      // an empty sum: zeros of the output format
      new Uint8Array(kernelExports().memory.buffer, backend.ptr(out.storage), out.storage.byteLength).fill(0);
      return;
    }
    const dst = narrow ? narrow.ptr : backend.ptr(out.storage);
    w.scaledMatmul(formatOf(a.dtype).id, formatOf(b.dtype).id, ca.ptr, cb.ptr, m, k, n, scales.ptr, SCALE_TENSOR, scales.ptr + 4, SCALE_TENSOR, 32, 1, fo.id, dst);
    if (narrow) kernelExports().pack(fo.bits, narrow.ptr, backend.ptr(out.storage), m * n);
  } finally {
    ca.release();
    cb.release();
    backend.free(scales.storage);
    if (narrow) backend.free(narrow.storage);
  }
}
