// torch._scaled_mm on the wasm backend, per-tensor scales read from device tensors: the dtype
// layer's reference kernel (assembly/scaled_mm.ts) with float32 accumulation in increasing k, the
// order the WGSL kernel uses; and float8 training's scale update (twin of shaders/float8.wgsl).
import { InvalidArgumentError } from '../../errors.js';
import { formatOf } from '../../dtype/formats.js';
import { wasm } from '../../dtype/wasm.js';
import { FLOAT8_AMAX_EPS, type Float8ScaleOptions, type TensorRef } from '../backend.js';
import { numel } from '../shape.js';
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

/** The address of a float32 one-element tensor (a scale on the device). */
export function scalarPtr(backend: WasmBackend, t: TensorRef, what: string): number {
  if (t.dtype !== 'float32') throw new InvalidArgumentError(`${what} must be float32, got ${t.dtype}`);
  if (numel(t.shape) !== 1) throw new InvalidArgumentError(`${what} must have one element, got shape [${t.shape.join(', ')}]`);
  return backend.ptr(t.storage) + t.offset * 4;
}

/** out[M, N] = (A * scaleA) @ (B * scaleB), A [M, K] and B [K, N] fp8 codes, scales float32 [1] tensors; float32 accumulation, rounded once to out.dtype. */
export function scaledMatmul(backend: WasmBackend, a: TensorRef, b: TensorRef, out: TensorRef, scaleA: TensorRef, scaleB: TensorRef): void {
  const [m, k] = a.shape.slice(-2);
  const n = b.shape[b.shape.length - 1];
  if (a.shape.length !== 2 || b.shape.length !== 2 || b.shape[0] !== k) {
    throw new InvalidArgumentError(`scaledMatmul takes A [M, K] and B [K, N], got [${a.shape}] and [${b.shape}]`);
  }
  if (out.offset !== 0) throw new InvalidArgumentError('kernel outputs must start at offset 0');
  if (out.dtype === 'int32') throw new InvalidArgumentError('scaledMatmul output must be a float dtype');
  const sa = scalarPtr(backend, scaleA, 'scaleA'), sb = scalarPtr(backend, scaleB, 'scaleB');
  if (m === 0 || n === 0) return;
  const fo = formatOf(out.dtype);
  const w = wasm();
  if (k === 0) {
    // an empty sum: zeros of the output format
    new Uint8Array(kernelExports().memory.buffer, backend.ptr(out.storage), out.storage.byteLength).fill(0);
    return;
  }
  const ca = codesOf(backend, a, m * k);
  const cb = codesOf(backend, b, k * n);
  const narrow = fo.bits < 8 ? backend.temp(m * n, 'scaled_mm out codes') : null;
  try {
    const dst = narrow ? narrow.ptr : backend.ptr(out.storage);
    w.scaledMatmul(formatOf(a.dtype).id, formatOf(b.dtype).id, ca.ptr, cb.ptr, m, k, n, sa, SCALE_TENSOR, sb, SCALE_TENSOR, 32, 1, fo.id, dst);
    if (narrow) kernelExports().pack(fo.bits, narrow.ptr, backend.ptr(out.storage), m * n);
  } finally {
    ca.release();
    cb.release();
    if (narrow) backend.free(narrow.storage);
  }
}

/** Float8 training's scale update (Kernels.float8ScaleUpdate): float32 arithmetic on the tensors in place. */
export function float8ScaleUpdate(backend: WasmBackend, history: TensorRef, scale: TensorRef, scaleInv: TensorRef, options: Float8ScaleOptions): void {
  if (history.dtype !== 'float32' || history.shape.length !== 1 || history.shape[0] < 1) {
    throw new InvalidArgumentError(`float8ScaleUpdate: history must be float32 [L] with L >= 1, got ${history.dtype} [${history.shape.join(', ')}]`);
  }
  const mem = kernelExports().memory.buffer;
  const h = new Float32Array(mem, backend.ptr(history.storage) + history.offset * 4, history.shape[0]);
  const s = new Float32Array(mem, scalarPtr(backend, scale, 'scale'), 1);
  const inv = new Float32Array(mem, scalarPtr(backend, scaleInv, 'scaleInv'), 1);
  const f = Math.fround;
  const fp8Max = f(options.fp8Max);
  if (options.algorithm === 'current') {
    s[0] = f(fp8Max / Math.max(h[0], FLOAT8_AMAX_EPS)); // Math.max(NaN, eps) is NaN, as torch.clamp
  } else {
    let amax = h[0];
    if (options.algorithm === 'max') for (let i = 1; i < h.length; i++) amax = Number.isNaN(amax) || Number.isNaN(h[i]) ? NaN : Math.max(amax, h[i]);
    // torch.roll(history, -1) then history[0] = 0 (TE's _update_amax_history)
    const newest = h[0];
    h.copyWithin(0, 1);
    h[h.length - 1] = newest;
    h[0] = 0;
    if (amax > 0 && Number.isFinite(amax)) s[0] = f(f(fp8Max / amax) / 2 ** (options.margin ?? 0));
  }
  inv[0] = f(1 / s[0]);
}
