// Optimizer kernels on the WebGPU backend (shaders/optim.wgsl; wasm twins in assembly/kernels/optim.ts).
import { InvalidArgumentError } from '../../errors.js';
import type { AdamWDeviceInputs, AdamWHyper, TensorRef } from '../backend.js';
import { numel } from '../shape.js';
import { adamwScalars } from '../adamw.js';
import type { Binding, WebGPUBackend } from './backend.js';
import { accessor, fmtId } from './wgsl.js';
import { readAccessor, shaderStage } from './stages.js';

const WG = 256;
/** Most workgroups one tensor's sum-of-squares pass uses (each then strides over the tensor). */
const MAX_PARTIALS = 1024;

/** One "//#stage NAME" section of shaders/optim.wgsl (its header is comments only). */
function section(g: WebGPUBackend, name: string): string {
  return shaderStage(g.shader('optim'), name);
}

function requireF32(t: TensorRef, what: string): void {
  if (t.dtype !== 'float32') throw new InvalidArgumentError(`${what} must be float32, got ${t.dtype}`);
}

/** A float32 tensor of one element (the GradScaler's scalars on the device). */
function requireScalar(t: TensorRef, what: string, dtype: 'float32' | 'int32' = 'float32'): void {
  if (t.dtype !== dtype) throw new InvalidArgumentError(`${what} must be ${dtype}, got ${t.dtype}`);
  if (numel(t.shape) !== 1) throw new InvalidArgumentError(`${what} must have one element, got shape [${t.shape.join(', ')}]`);
}

/** GradScaler: every float32 tensor *= invScale (read on the device) in place; foundInf = 1 if any element was inf or NaN. */
export function nonFiniteCheckAndUnscale(g: WebGPUBackend, tensors: readonly TensorRef[], foundInf: TensorRef, invScale: TensorRef): void {
  requireScalar(foundInf, 'foundInf');
  requireScalar(invScale, 'invScale');
  const p = g.pipeline('optim.unscale', () => section(g, 'unscale'));
  for (const t of tensors) {
    requireF32(t, 'nonFiniteCheckAndUnscale tensors');
    const n = numel(t.shape);
    if (n === 0) continue;
    g.dispatch(p, [{ storage: t.storage, what: 'tensor' }, { storage: foundInf.storage, what: 'foundInf' }, { storage: invScale.storage, what: 'invScale' }],
      new Uint32Array([n, t.offset, foundInf.offset, invScale.offset]).buffer, Math.ceil(n / WG));
  }
}

/** GradScaler's scale update (torch._amp_update_scale_), one invocation; see Kernels.ampUpdateScale. */
export function ampUpdateScale(
  g: WebGPUBackend, scale: TensorRef, invScale: TensorRef, growthTracker: TensorRef, foundInf: TensorRef,
  growthFactor: number, backoffFactor: number, growthInterval: number,
): void {
  requireScalar(scale, 'scale');
  requireScalar(invScale, 'invScale');
  requireScalar(growthTracker, 'growthTracker', 'int32');
  requireScalar(foundInf, 'foundInf');
  const p = g.pipeline('optim.update_scale', () => section(g, 'update_scale'));
  const u = new ArrayBuffer(32);
  new Uint32Array(u).set([scale.offset, invScale.offset, growthTracker.offset, foundInf.offset]);
  new Float32Array(u).set([growthFactor, backoffFactor], 4);
  new Int32Array(u)[6] = growthInterval;
  g.dispatch(p, [
    { storage: scale.storage, what: 'scale' }, { storage: invScale.storage, what: 'invScale' },
    { storage: growthTracker.storage, what: 'growthTracker' }, { storage: foundInf.storage, what: 'foundInf' },
  ], u, 1);
}

/** Tensors one sum-of-squares dispatch reads: seven, with the partial sums the eighth storage binding (WebGPU's default limit). */
const SUMSQ_TENSORS = 7;

/**
 * out (float32, shape []) = sqrt(sum over tensors of sum(x^2)): workgroup partial sums (at most
 * MAX_PARTIALS a tensor, seven tensors a dispatch), then one final workgroup.
 */
export function globalNorm(g: WebGPUBackend, tensors: readonly TensorRef[], out: TensorRef): void {
  requireF32(out, 'globalNorm out');
  const plan = tensors.map((t) => {
    const n = numel(t.shape);
    return { t, n, groups: Math.min(Math.ceil(n / WG), MAX_PARTIALS) };
  }).filter((e) => e.n > 0);
  const count = plan.reduce((s, e) => s + e.groups, 0);
  const partial = g.alloc(Math.max(count, 1) * 4, 'temporary', 'globalNorm partials');
  try {
    let base = 0;
    for (let c = 0; c < plan.length; c += SUMSQ_TENSORS) {
      const chunk = plan.slice(c, c + SUMSQ_TENSORS);
      // Unused slots read the first tensor again (groups 0: nothing is read).
      const slots = Array.from({ length: SUMSQ_TENSORS }, (_, k) => chunk[k] ?? chunk[0]);
      const fmts = slots.map((e) => fmtId(e.t.dtype));
      const p = g.pipeline(`optim.sumsq:${fmts.join(',')}`, () => g.shader('dtype') + fmts.map((f, k) => `const FX${k}: u32 = ${f}u;\n${readAccessor(`x${k}`, k, f)}`).join('') + section(g, 'sumsq'));
      const u = new Uint32Array(4 * SUMSQ_TENSORS);
      let groups = 0;
      chunk.forEach(({ t, n, groups: gr }, k) => {
        u.set([n, t.offset, base + groups, gr], 4 * k);
        groups += gr;
      });
      const bindings = slots.map((e): Binding => ({ storage: e.t.storage, what: 'tensor' }));
      bindings.push({ storage: partial });
      g.dispatch(p, bindings, u.buffer, groups);
      base += groups;
    }
    const p = g.pipeline('optim.norm', () => section(g, 'norm'));
    g.dispatch(p, [{ storage: partial }, { storage: out.storage, what: 'globalNorm out' }], new Uint32Array([count, out.offset, 0, 0]).buffer, 1);
  } finally {
    g.free(partial); // the pool reuses it only for later-recorded work, which runs after this
  }
}

/**
 * One AdamW step in place. float32 params are updated directly; other dtypes through a float32 copy
 * rounded back once (a skipped step rounds back the exact copy: the same bits). With `device`, the
 * adamw_amp stage skips on the device's found-inf flag and may take its scalars from the device.
 */
export function adamw(g: WebGPUBackend, param: TensorRef, grad: TensorRef, m: TensorRef, v: TensorRef, hyper: AdamWHyper, device?: AdamWDeviceInputs): void {
  requireF32(m, 'adamw m');
  requireF32(v, 'adamw v');
  if (param.dtype === 'int32' || grad.dtype === 'int32') throw new InvalidArgumentError('adamw param and grad must be float dtypes');
  if (device) {
    requireScalar(device.foundInf, 'adamw foundInf');
    if (device.scalars && (device.scalars.dtype !== 'float32' || numel(device.scalars.shape) !== 2)) {
      throw new InvalidArgumentError(`adamw scalars must be float32 with 2 elements, got ${device.scalars.dtype} [${device.scalars.shape.join(', ')}]`);
    }
  }
  const n = numel(param.shape);
  if (n === 0) return;
  const s = adamwScalars(hyper);
  let work = param;
  if (param.dtype !== 'float32') {
    if (param.offset !== 0) throw new InvalidArgumentError('a low-precision adamw param must start at offset 0');
    work = { storage: g.alloc(n * 4, 'temporary', 'adamw param f32'), offset: 0, shape: param.shape, dtype: 'float32' };
    g.cast(param, work); // exact
  }
  const stage = device ? 'adamw_amp' : 'adamw';
  const p = g.pipeline(`optim.${stage}`, () => g.shader('dtype') + accessor('g', 1, 'read') + section(g, stage), { FG: fmtId(grad.dtype) });
  const u = new ArrayBuffer(80);
  const u32 = new Uint32Array(u);
  const f32 = new Float32Array(u);
  u32.set([n, work.offset, grad.offset, m.offset, v.offset]);
  f32.set([s.gradScale, s.decay, s.beta1, s.omb1, s.beta2, s.omb2, s.stepSize, s.bc2Sqrt, s.eps], 5);
  const bindings = [{ storage: work.storage, what: 'param' }, { storage: grad.storage, what: 'grad' }, { storage: m.storage, what: 'm' }, { storage: v.storage, what: 'v' }];
  if (device) {
    const sc = device.scalars ?? device.foundInf; // bound but unread without scalars (use_sc 0)
    u32.set([device.foundInf.offset, sc.offset, device.scalars ? 1 : 0], 14);
    bindings.push({ storage: device.foundInf.storage, what: 'foundInf' }, { storage: sc.storage, what: 'adamw scalars' });
  }
  g.dispatch(p, bindings, u, Math.ceil(n / WG));
  if (work !== param) {
    g.cast(work, param); // rounded once, nearest-even
    g.free(work.storage);
  }
}
