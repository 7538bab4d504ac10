// Block-wise 8-bit quantization and the fused 8-bit optimizer step on the wasm backend
// (AssemblyScript in assembly/kernels/optim8bit.ts; rules in src/backend/quant.ts).
import { InvalidArgumentError, ShapeMismatchError } from '../../errors.js';
import type { AdamWDeviceInputs, Optim8bitStep, QuantizedStateRef, TensorRef } from '../backend.js';
import { checkOptimizer8bit, checkQuantized, KERNEL_TABLE_BYTES, quantKernelTable } from '../quant.js';
import { numel } from '../shape.js';
import { dtypeBits } from '../storage.js';
import { checkCastOptions } from '../cast_options.js';
import type { WasmBackend } from './backend.js';
import { ELEMENTWISE_BLOCK } from './staging.js';
import { kernelExports } from './exports.js';
import type { KernelPart } from './threads.js';

/** Bytes of scratch requantize takes for its scaled thresholds (259 float32). */
const REQUANTIZE_SCRATCH = 1040;

/** Runs fn with the tables of the given maps in wasm memory (a 'temporary' block freed afterwards). */
function withTables<R>(backend: WasmBackend, signed: readonly boolean[], fn: (ptrs: number[]) => R): R {
  const t = backend.temp(signed.length * KERNEL_TABLE_BYTES, 'quantization tables');
  try {
    signed.forEach((s, i) => new Uint8Array(kernelExports().memory.buffer, t.ptr + i * KERNEL_TABLE_BYTES, KERNEL_TABLE_BYTES).set(quantKernelTable(s)));
    return fn(signed.map((_, i) => t.ptr + i * KERNEL_TABLE_BYTES));
  } finally {
    backend.free(t.storage);
  }
}

export function quantizeBlockwise(backend: WasmBackend, x: TensorRef, codes: TensorRef, absmax: TensorRef, signed: boolean, blockSize: number): void {
  const n = numel(x.shape);
  checkQuantized(codes, absmax, n, blockSize, 'quantizeBlockwise');
  if (x.dtype !== 'float32') throw new InvalidArgumentError(`quantizeBlockwise: x must be float32, got ${x.dtype}`);
  if (n === 0) return;
  const c = backend.ptr(codes.storage), a = backend.ptr(absmax.storage);
  const px = backend.ptr(x.storage) + x.offset * 4;
  withTables(backend, [signed], ([t]) => byBlocks(backend, n, blockSize, REQUANTIZE_SCRATCH, (s, e, b, q) => (
    { fn: 'quantizeBlockwiseF32', args: [px + s * 4, e - s, c + s, a + b * 4, blockSize, t, q] }
  )));
}

export function dequantizeBlockwise(backend: WasmBackend, codes: TensorRef, absmax: TensorRef, out: TensorRef, signed: boolean, blockSize: number): void {
  const n = numel(out.shape);
  checkQuantized(codes, absmax, n, blockSize, 'dequantizeBlockwise');
  if (out.dtype !== 'float32' || out.offset !== 0) throw new InvalidArgumentError(`dequantizeBlockwise: out must be float32 at offset 0, got ${out.dtype}`);
  if (n === 0) return;
  const c = backend.ptr(codes.storage), a = backend.ptr(absmax.storage), o = backend.ptr(out.storage);
  withTables(backend, [signed], ([t]) => byBlocks(backend, n, blockSize, 0, (s, e, b) => (
    { fn: 'dequantizeBlockwiseF32', args: [c + s, a + b * 4, e - s, blockSize, t, o + s * 4] }
  )));
}

export function optimizer8bit(
  backend: WasmBackend, param: TensorRef, grad: TensorRef, state1: QuantizedStateRef, state2: QuantizedStateRef | null, step: Optim8bitStep, device?: AdamWDeviceInputs,
): void {
  const { n, kind, signs } = checkOptimizer8bit(param, grad, state1, state2, step);
  const h = [...step.h];
  if (device) {
    const mem = () => new Float32Array(kernelExports().memory.buffer);
    if (device.foundInf.dtype !== 'float32' || numel(device.foundInf.shape) !== 1) throw new InvalidArgumentError('optimizer8bit: foundInf must be float32 with one element');
    if (mem()[(backend.ptr(device.foundInf.storage) >> 2) + device.foundInf.offset] !== 0) return; // skipped (NaN counts as set)
    if (device.scalars) {
      if (device.scalars.dtype !== 'float32' || numel(device.scalars.shape) !== 2) throw new InvalidArgumentError('optimizer8bit: scalars must be float32 with 2 elements');
      const at = (backend.ptr(device.scalars.storage) >> 2) + device.scalars.offset;
      h[6] = mem()[at];
      h[7] = mem()[at + 1];
    }
  }
  if (n === 0) return;
  const c1 = backend.ptr(state1.codes.storage), a1 = backend.ptr(state1.absmax.storage);
  const c2 = state2 ? backend.ptr(state2.codes.storage) : 0, a2 = state2 ? backend.ptr(state2.absmax.storage) : 0;
  const rounding = checkCastOptions(step.rounding ?? {}, 'optimizer8bit rounding');
  const g = backend.stageIn(grad);
  try {
    withTables(backend, signs, ([t1, t2]) => {
      // Elements [base, base + len) (base a multiple of the block), the parameter's at pp (float32).
      const run = (pp: number, base: number, len: number) => byBlocks(backend, len, step.blockSize, step.blockSize * 8 + REQUANTIZE_SCRATCH, (s, e, b, scratch) => {
        const i = base + s, blk = base / step.blockSize + b;
        return {
          fn: 'optimizer8bitF32',
          args: [kind, pp + s * 4, g.ptr + i * 4, c1 + i, a1 + blk * 4, t1, c2 && c2 + i, a2 && a2 + blk * 4, t2 ?? 0, e - s, step.blockSize, ...h, scratch],
        };
      });
      if (param.dtype === 'float32') return run(backend.ptr(param.storage) + param.offset * 4, 0, n);
      // A lower-precision parameter: a span of whole blocks at a time is decoded to float32
      // (exactly), stepped and rounded back (step.rounding; a stochastic stream indexed by the
      // element's place in the parameter, as one cast of the whole would be): float32 copies of a
      // span, not of the whole parameter. Packed sub-byte codes go whole (they are rounded into
      // whole bytes).
      const span = dtypeBits(param.dtype) < 8 ? n : Math.max(step.blockSize, Math.floor(ELEMENTWISE_BLOCK / step.blockSize) * step.blockSize);
      for (let base = 0; base < n; base += span) {
        const len = Math.min(span, n - base);
        const part: TensorRef = { storage: param.storage, dtype: param.dtype, offset: param.offset + base, shape: [len] };
        const p = backend.stageIn(part); // exact float32 copy
        try {
          run(p.ptr, base, len);
          backend.encodeFloat32(p.ptr, part, rounding, BigInt(base));
        } finally {
          p.release();
        }
      }
    });
  } finally {
    g.release();
  }
}

/**
 * Runs a kernel over n elements in parts of whole blocks (split among threads for large calls:
 * each block is computed by the same operations whichever thread holds it, so the results are the
 * same bits). part(start, end, firstBlock, scratch) gives the call for elements [start, end); with
 * scratchBytes > 0, its last argument is `scratch`, that many bytes of each thread's kernel scratch
 * (module memory outside the tensor accounting, as matmul's packing buffers).
 */
function byBlocks(
  backend: WasmBackend, n: number, block: number, scratchBytes: number, part: (start: number, end: number, firstBlock: number, scratch: number) => KernelPart,
): void {
  const run = (scratch: number, stride: number) => backend.parallelFor(Math.ceil(n / block), 1, n, (b0, b1) => part(b0 * block, Math.min(n, b1 * block), b0, scratch), stride);
  if (scratchBytes === 0) return run(0, 0);
  const stride = (scratchBytes + 15) & ~15;
  backend.withThreadScratch(stride, (scratch) => run(scratch, stride));
}
