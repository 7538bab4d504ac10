// Block-wise 8-bit quantization and the fused 8-bit optimizer step on the WebGPU backend
// (shaders/optim8bit.wgsl; wasm twins in assembly/kernels/optim8bit.ts; rules in src/backend/quant.ts).
import { InvalidArgumentError, ShapeMismatchError } from '../../errors.js';
import type { AdamWDeviceInputs, Optim8bitStep, QuantizedStateRef, TensorRef } from '../backend.js';
import { blockCount, checkOptimizer8bit, checkQuantized, quantTable } from '../quant.js';
import { numel } from '../shape.js';
import type { Binding, WebGPUBackend } from './backend.js';
import { accessor, fmtId } from './wgsl.js';
import { shaderStage } from './stages.js';

/** The uniform block: 8 u32, h (12 f32), then two tables of 512 f32. */
function uniform(n: number, block: number, h: readonly number[], tables: readonly Float32Array[], extra: readonly number[] = []): ArrayBuffer {
  const u = new ArrayBuffer(32 + 48 + 2 * 2048);
  new Uint32Array(u).set([n, block, ...extra]);
  new Float32Array(u).set(h, 8);
  tables.forEach((t, i) => new Float32Array(u).set(t, 20 + i * 512));
  return u;
}

function section(g: WebGPUBackend, name: string): string {
  return shaderStage(g.shader('optim8bit'), name);
}

export function quantizeBlockwise(g: WebGPUBackend, x: TensorRef, codes: TensorRef, absmax: TensorRef, signed: boolean, blockSize: number): void {
  const n = numel(x.shape);
  checkQuantized(codes, absmax, n, blockSize, 'quantizeBlockwise');
  if (x.dtype !== 'float32') throw new InvalidArgumentError(`quantizeBlockwise: x must be float32, got ${x.dtype}`);
  if (n === 0) return;
  const p = g.pipeline('optim8bit.quantize', () => section(g, 'quantize'));
  g.dispatch(p, [{ storage: x.storage, what: 'x' }, { storage: codes.storage, what: 'codes' }, { storage: absmax.storage, what: 'absmax' }],
    uniform(n, blockSize, [], [quantTable(signed)], [x.offset]), blockCount(n, blockSize));
}

export function dequantizeBlockwise(g: WebGPUBackend, codes: TensorRef, absmax: TensorRef, out: TensorRef, signed: boolean, blockSize: number): void {
  const n = numel(out.shape);
  checkQuantized(codes, absmax, n, blockSize, 'dequantizeBlockwise');
  if (out.dtype !== 'float32' || out.offset !== 0) throw new InvalidArgumentError(`dequantizeBlockwise: out must be float32 at offset 0, got ${out.dtype}`);
  if (n === 0) return;
  const p = g.pipeline('optim8bit.dequantize', () => section(g, 'dequantize'));
  g.dispatch(p, [{ storage: codes.storage, what: 'codes' }, { storage: absmax.storage, what: 'absmax' }, { storage: out.storage, what: 'out' }],
    uniform(n, blockSize, [], [quantTable(signed)]), Math.ceil(Math.ceil(n / 4) / 256));
}

export function optimizer8bit(
  g: WebGPUBackend, param: TensorRef, grad: TensorRef, state1: QuantizedStateRef, state2: QuantizedStateRef | null, step: Optim8bitStep, device?: AdamWDeviceInputs,
): void {
  const { n, kind, signs } = checkOptimizer8bit(param, grad, state1, state2, step);
  if (device) {
    if (device.foundInf.dtype !== 'float32' || numel(device.foundInf.shape) !== 1) throw new InvalidArgumentError('optimizer8bit: foundInf must be float32 with one element');
    if (device.scalars && (device.scalars.dtype !== 'float32' || numel(device.scalars.shape) !== 2)) throw new InvalidArgumentError('optimizer8bit: scalars must be float32 with 2 elements');
  }
  if (n === 0) return;
  let work = param;
  if (param.dtype !== 'float32') {
    if (param.offset !== 0) throw new InvalidArgumentError('a low-precision optimizer8bit param must start at offset 0');
    work = { storage: g.alloc(n * 4, 'temporary', 'optimizer8bit param f32'), offset: 0, shape: param.shape, dtype: 'float32' };
    g.cast(param, work); // exact
  }
  // Without a second state (SGD, RMSprop) its two bindings still need buffers, one each: one buffer
  // bound twice as writable storage is refused by WebGPU (writable binding aliasing).
  const dummies = state2 ? [] : [g.alloc(4, 'temporary', 'optimizer8bit unused codes'), g.alloc(4, 'temporary', 'optimizer8bit unused absmax')];
  try {
    const stage = device ? 'step_amp' : 'step';
    const p = g.pipeline(`optim8bit.${stage}`, () => g.shader('dtype') + accessor('g', 1, 'read') + section(g, stage), { FG: fmtId(grad.dtype), KIND: kind });
    const bindings: Binding[] = [
      { storage: work.storage, what: 'param' }, { storage: grad.storage, what: 'grad' },
      { storage: state1.codes.storage, what: 'codes' }, { storage: state1.absmax.storage, what: 'absmax' },
      { storage: state2?.codes.storage ?? dummies[0], what: 'codes 2' }, { storage: state2?.absmax.storage ?? dummies[1], what: 'absmax 2' },
    ];
    let extra = [work.offset, grad.offset];
    if (device) {
      const sc = device.scalars ?? device.foundInf; // bound but unread without scalars
      extra = [...extra, device.foundInf.offset, sc.offset, device.scalars ? 1 : 0];
      bindings.push({ storage: device.foundInf.storage, what: 'foundInf' }, { storage: sc.storage, what: 'scalars' });
    }
    g.dispatch(p, bindings, uniform(n, step.blockSize, step.h, signs.map(quantTable), extra), blockCount(n, step.blockSize));
  } finally {
    for (const d of dummies) g.free(d);
  }
  if (work !== param) {
    g.cast(work, param, step.rounding ?? {});
    g.free(work.storage);
  }
}
