// Causal scaled-dot-product attention on the GPU (shaders/attention.wgsl; twin of
// assembly/kernels/attention.ts). One invocation per (b, h, row) looping over the other axis: no
// [T, T] score matrix in device memory, deterministic sums, no atomics. out, dq, dk, dv are written
// as float32 (into a temporary cast once to their dtype when that is not float32); lse is float32.
// A query row with no allowed key gets out = 0 and lse = -inf, and no gradient.
import { InvalidArgumentError } from '../../errors.js';
import type { TensorRef } from '../backend.js';
import { fmtId, type WebGPUBackend } from './backend.js';
import { f32Target, stagePipeline } from './stages.js';

const WG = 64;

function dims(q: TensorRef): [number, number, number, number] {
  if (q.shape.length !== 4) throw new InvalidArgumentError(`attention expects q of shape [B, H, T, D], got [${q.shape.join(', ')}]`);
  return q.shape as unknown as [number, number, number, number];
}

function atZero(...ts: TensorRef[]): void {
  for (const t of ts) if (t.offset !== 0) throw new InvalidArgumentError('kernel outputs must start at offset 0');
}

interface Offsets { q?: number; k?: number; v?: number; m?: number; o?: number; l?: number; dout?: number }

function params(bh: number, heads: number, t: number, d: number, scale: number, hasMask: boolean, o: Offsets): ArrayBuffer {
  const u = new ArrayBuffer(64);
  const u32 = new Uint32Array(u);
  u32.set([bh, heads, t, d, 0, hasMask ? 1 : 0, o.q ?? 0, o.k ?? 0, o.v ?? 0, o.m ?? 0, o.o ?? 0, o.l ?? 0, o.dout ?? 0, 0, 0, 0]);
  new Float32Array(u)[4] = scale;
  return u;
}

const stage = (g: WebGPUBackend, name: string, inputs: readonly string[], constants: Record<string, number>): GPUComputePipeline => stagePipeline(g, 'attention', name, inputs, constants);

export function attention(g: WebGPUBackend, q: TensorRef, k: TensorRef, v: TensorRef, out: TensorRef, lse: TensorRef, mask: TensorRef | null, scale: number): void {
  const [B, H, T, D] = dims(q);
  const rows = B * H * T;
  if (rows === 0) return;
  atZero(out);
  const m = mask ?? q; // bound but unread when there is no mask
  const o = f32Target(g, out, 'attention f32');
  const p = stage(g, 'fwd', ['q', 'k', 'val', 'm'], { FQ: fmtId(q.dtype), FK: fmtId(k.dtype), FV: fmtId(v.dtype), FM: mask ? fmtId(mask.dtype) : 0 });
  g.dispatch(p, [{ storage: q.storage }, { storage: k.storage }, { storage: v.storage }, { storage: m.storage }, { storage: o.ref.storage, what: 'attention output' }, { storage: lse.storage, what: 'lse' }],
    params(B * H, H, T, D, scale, mask !== null, { q: q.offset, k: k.offset, v: v.offset, m: mask?.offset ?? 0, l: lse.offset }), Math.ceil(rows / WG), 15);
  o.done();
}

export function attentionBackward(
  g: WebGPUBackend, dout: TensorRef, q: TensorRef, k: TensorRef, v: TensorRef, out: TensorRef, lse: TensorRef, mask: TensorRef | null, scale: number,
  dq: TensorRef, dk: TensorRef, dv: TensorRef,
): void {
  const [B, H, T, D] = dims(q);
  const rows = B * H * T;
  if (rows === 0) return;
  atZero(dq, dk, dv);
  const m = mask ?? q;
  const u = params(B * H, H, T, D, scale, mask !== null, { q: q.offset, k: k.offset, v: v.offset, m: mask?.offset ?? 0, o: out.offset, l: lse.offset, dout: dout.offset });
  const wg = Math.ceil(rows / WG);
  const F = { FDO: fmtId(dout.dtype), FQ: fmtId(q.dtype), FK: fmtId(k.dtype), FV: fmtId(v.dtype), FL: fmtId(lse.dtype), FM: mask ? fmtId(mask.dtype) : 0 };
  const di: TensorRef = { storage: g.alloc(rows * 4, 'temporary', 'attention di'), offset: 0, shape: [rows], dtype: 'float32' };
  try {
    g.dispatch(stage(g, 'di', ['dout', 'o'], { FDO: F.FDO, FO: fmtId(out.dtype) }), [{ storage: dout.storage }, { storage: out.storage }, { storage: di.storage, what: 'di' }], u, wg, 15);
    const ins = [{ storage: dout.storage }, { storage: q.storage }, { storage: k.storage }, { storage: v.storage }, { storage: lse.storage }, { storage: m.storage }, { storage: di.storage }];
    const names = ['dout', 'q', 'k', 'val', 'l', 'm', 'di'];
    const oq = f32Target(g, dq, 'attentionBackward dq f32');
    g.dispatch(stage(g, 'dq', names, F), [...ins, { storage: oq.ref.storage, what: 'dq' }], u, wg, 15);
    oq.done();
    const ok = f32Target(g, dk, 'attentionBackward dk f32');
    g.dispatch(stage(g, 'dk', names, F), [...ins, { storage: ok.ref.storage, what: 'dk' }], u, wg, 15);
    ok.done();
    const ov = f32Target(g, dv, 'attentionBackward dv f32');
    g.dispatch(stage(g, 'dv', ['dout', 'q', 'k', 'l', 'm'], { FDO: F.FDO, FQ: F.FQ, FK: F.FK, FL: F.FL, FM: F.FM }),
      [{ storage: dout.storage }, { storage: q.storage }, { storage: k.storage }, { storage: lse.storage }, { storage: m.storage }, { storage: ov.ref.storage, what: 'dv' }], u, wg, 15);
    ov.done();
  } finally {
    g.free(di.storage);
  }
}
