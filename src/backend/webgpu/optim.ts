// Optimizer kernels on the WebGPU backend (shaders/optim.wgsl; wasm twins in assembly/kernels/optim.ts).
import { InvalidArgumentError } from '../../errors.js';
import type { AdamWHyper, TensorRef } from '../backend.js';
import { numel } from '../shape.js';
import { adamwScalars } from '../adamw.js';
import { accessor, fmtId, type Binding, type WebGPUBackend } from './backend.js';
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

/** GradScaler: every float32 tensor *= invScale in place; foundInf = 1 if any element was inf or NaN. */
export function nonFiniteCheckAndUnscale(g: WebGPUBackend, tensors: readonly TensorRef[], foundInf: TensorRef, invScale: number): void {
  requireF32(foundInf, 'foundInf');
  const p = g.pipeline('optim.unscale', () => section(g, 'unscale'));
  for (const t of tensors) {
    requireF32(t, 'nonFiniteCheckAndUnscale tensors');
    const n = numel(t.shape);
    if (n === 0) continue;
    const u = new ArrayBuffer(16);
    new Uint32Array(u).set([n, t.offset, foundInf.offset]);
    new Float32Array(u)[3] = invScale;
    g.dispatch(p, [{ storage: t.storage, what: 'tensor' }, { storage: foundInf.storage, what: 'foundInf' }], u, Math.ceil(n / WG));
  }
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

/** One AdamW step in place. float32 params are updated directly; other dtypes through a float32 copy rounded back once. */
export function adamw(g: WebGPUBackend, param: TensorRef, grad: TensorRef, m: TensorRef, v: TensorRef, hyper: AdamWHyper): void {
  requireF32(m, 'adamw m');
  requireF32(v, 'adamw v');
  if (param.dtype === 'int32' || grad.dtype === 'int32') throw new InvalidArgumentError('adamw param and grad must be float dtypes');
  const n = numel(param.shape);
  if (n === 0) return;
  const s = adamwScalars(hyper);
  let work = param;
  if (param.dtype !== 'float32') {
    if (param.offset !== 0) throw new InvalidArgumentError('a low-precision adamw param must start at offset 0');
    work = { storage: g.alloc(n * 4, 'temporary', 'adamw param f32'), offset: 0, shape: param.shape, dtype: 'float32' };
    g.cast(param, work); // exact
  }
  const p = g.pipeline('optim.adamw', () => g.shader('dtype') + accessor('g', 1, 'read') + section(g, 'adamw'), { FG: fmtId(grad.dtype) });
  const u = new ArrayBuffer(64);
  const u32 = new Uint32Array(u);
  const f32 = new Float32Array(u);
  u32.set([n, work.offset, grad.offset, m.offset, v.offset]);
  f32.set([s.gradScale, s.decay, s.beta1, s.omb1, s.beta2, s.omb2, s.stepSize, s.bc2Sqrt, s.eps], 5);
  g.dispatch(p, [{ storage: work.storage, what: 'param' }, { storage: grad.storage, what: 'grad' }, { storage: m.storage, what: 'm' }, { storage: v.storage, what: 'v' }], u, Math.ceil(n / WG));
  if (work !== param) {
    g.cast(work, param); // rounded once, nearest-even
    g.free(work.storage);
  }
}
