// Scaled-dot-product attention (causal or not) on the GPU (shaders/attention.wgsl; twin of
// assembly/kernels/attention.ts). Workgroups of 64 rows of one (b, h), one row an invocation held
// in registers, looping over the other axis: no [T, T] score matrix in device memory,
// deterministic sums, no atomics. The forward is one pass over the keys (online softmax rescaled
// once per chunk of KC keys, FlashAttention-2 style); the backward is three stages (di, dq, dkdv),
// one pass each. The head dim is compiled in (one pipeline per d). out, dq, dk,
// dv are written as float32 (into a temporary cast once to their dtype when that is not float32);
// lse is float32. A query row with no allowed key gets out = 0 and lse = -inf, and no gradient.
import { InvalidArgumentError } from '../../errors.js';
import type { TensorRef } from '../backend.js';
import { attentionStrides } from '../shape.js';
import type { WebGPUBackend } from './backend.js';
import { fmtId } from './wgsl.js';
import { f32Target, stagePipeline } from './stages.js';

/** Rows a workgroup (one an invocation). */
const ROWS = 64;
/** Keys a forward chunk on the untiled layout (as many as a tile of KT would hold, at most this). */
const UNTILED_CHUNK = 16;
/** Largest head dim: two tiles of one row of d floats must fit in 16 KiB of workgroup memory. */
export const MAX_HEAD_DIM = 1024;

/** Compile-time constants of shaders/attention.wgsl (see there). */
export interface AttentionLayout {
  readonly DH: number;
  readonly D4: number;
  readonly DF: number;
  /** 1: the other axis staged through workgroup memory in tiles of KT rows; 0: read from storage. */
  readonly TILED: number;
  readonly KT: number;
  readonly KSTEP: number;
  /** Keys a forward chunk (scores held in registers, one rescale a chunk): KT when tiled, else min(16, KT's bound). */
  readonly KC: number;
}

/**
 * The layout for head dim d:
 * - hardware adapters: tiled, KT rows a tile, at most 64 and at most 1536 floats (6 KiB) a tile, so
 *   that the two tiles and their per-row floats stay under 16 KiB of workgroup memory;
 * - software adapters (SwiftShader, llvmpipe): untiled. There a barrier costs each invocation about
 *   a hundred loop iterations and compile time grows with workgroup memory (~75 ms a KiB): the
 *   untiled stages run ~1.5-2x faster and compile ~10x faster at d = 16.
 * `tiled` overrides the choice: a boolean, or a number of tile rows (1..64, tiled; tests run the
 * hardware layout on SwiftShader with small tiles: several a block, and quick to compile).
 */
export function attentionLayout(adapter: { readonly software: boolean }, d: number, tiled: boolean | number = !adapter.software): AttentionLayout {
  const D4 = Math.max(1, Math.ceil(d / 4));
  const fit = Math.max(1, Math.min(ROWS, Math.floor(384 / D4)));
  if (typeof tiled === 'number' && !(Number.isInteger(tiled) && tiled >= 1 && tiled <= fit)) {
    throw new InvalidArgumentError(`attention tile rows must be an integer in [1, ${fit}] at head dim ${d}, got ${tiled}`);
  }
  const KT = tiled === false ? 1 : tiled === true ? fit : tiled;
  return { DH: d, D4, DF: Math.floor(d / 4), TILED: tiled === false ? 0 : 1, KT, KSTEP: tiled === false ? 2 ** 30 : KT, KC: tiled === false ? Math.min(UNTILED_CHUNK, fit) : KT };
}

function dims(q: TensorRef): [number, number, number, number] {
  if (q.shape.length !== 4) throw new InvalidArgumentError(`attention expects q of shape [B, H, T, D], got [${q.shape.join(', ')}]`);
  const d = q.shape[3];
  if (d > MAX_HEAD_DIM) throw new InvalidArgumentError(`attention supports head dims up to ${MAX_HEAD_DIM}, got ${d}`);
  return q.shape as unknown as [number, number, number, number];
}

function atZero(...ts: TensorRef[]): void {
  for (const t of ts) if (t.offset !== 0) throw new InvalidArgumentError('kernel outputs must start at offset 0');
}

interface Offsets { q?: number; k?: number; v?: number; m?: number; o?: number; l?: number; dout?: number }

function params(bh: number, heads: number, t: number, d: number, scale: number, hasMask: boolean, o: Offsets, hs: number, ts: number): ArrayBuffer {
  const u = new ArrayBuffer(64);
  const u32 = new Uint32Array(u);
  u32.set([bh, heads, t, d, 0, hasMask ? 1 : 0, o.q ?? 0, o.k ?? 0, o.v ?? 0, o.m ?? 0, o.o ?? 0, o.l ?? 0, o.dout ?? 0, hs, ts, 0]);
  new Float32Array(u)[4] = scale;
  return u;
}

/** Format ids of the inputs, by accessor name, and the override constants naming them. */
function formatsOf(t: Partial<Record<'q' | 'k' | 'val' | 'm' | 'dout' | 'o' | 'l', TensorRef | null>>): { formats: Record<string, number>; F: Record<string, number> } {
  const formats: Record<string, number> = { ld: 0 };
  const F: Record<string, number> = {};
  const names = { q: 'FQ', k: 'FK', val: 'FV', m: 'FM', dout: 'FDO', o: 'FO', l: 'FL' } as const;
  for (const [n, ref] of Object.entries(t) as [keyof typeof names, TensorRef | null][]) {
    const f = ref ? fmtId(ref.dtype) : 0; // no mask: m is bound (to q) but never read
    formats[n] = f;
    F[names[n]] = f;
  }
  return { formats, F };
}

const pick = (F: Record<string, number>, ...keys: string[]): Record<string, number> => Object.fromEntries(keys.map((k) => [k, F[k]]));

/** Workgroups of the row stages: one per 64 rows of each (b, h). */
const rowGroups = (bh: number, t: number): number => bh * Math.ceil(t / ROWS);

export function attention(
  g: WebGPUBackend, q0: TensorRef, k0: TensorRef, v0: TensorRef, out0: TensorRef, lse: TensorRef, mask: TensorRef | null, scale: number, causal = true, tiled?: boolean | number,
): void {
  const [B, H, T, D] = dims(q0);
  if (B * H * T === 0) return;
  const { hs, ts, memory } = attentionStrides(q0, [k0, v0, out0]);
  const [q, k, v, out] = [q0, k0, v0, out0].map(memory);
  atZero(out);
  const m = mask ?? q; // bound but unread when there is no mask
  const o = f32Target(g, out, 'attention f32');
  const { formats, F } = formatsOf({ q, k, val: v, m: mask });
  const defs = attentionLayout(g, D, tiled) as unknown as Record<string, number>;
  const p = stagePipeline(g, 'attention', 'fwd', ['q', 'k', 'val', 'm'], { ...pick(F, 'FQ', 'FK', 'FV', 'FM'), CAUSAL: causal ? 1 : 0 }, { defs, formats });
  g.dispatch(p, [{ storage: q.storage }, { storage: k.storage }, { storage: v.storage }, { storage: m.storage }, { storage: o.ref.storage, what: 'attention output' }, { storage: lse.storage, what: 'lse' }],
    params(B * H, H, T, D, scale, mask !== null, { q: q.offset, k: k.offset, v: v.offset, m: mask?.offset ?? 0, l: lse.offset }, hs, ts), rowGroups(B * H, T), 15);
  o.done();
}

export function attentionBackward(
  g: WebGPUBackend, dout0: TensorRef, q0: TensorRef, k0: TensorRef, v0: TensorRef, out0: TensorRef, lse: TensorRef, mask: TensorRef | null, scale: number,
  dq0: TensorRef, dk0: TensorRef, dv0: TensorRef, causal = true, tiled?: boolean | number,
): void {
  const [B, H, T, D] = dims(q0);
  const { hs, ts, memory } = attentionStrides(q0, [k0, v0, out0, dout0, dq0, dk0, dv0]);
  const [dout, q, k, v, out, dq, dk, dv] = [dout0, q0, k0, v0, out0, dq0, dk0, dv0].map(memory);
  const rows = B * H * T;
  if (rows === 0) return;
  atZero(dq, dk, dv);
  const m = mask ?? q;
  const u = params(B * H, H, T, D, scale, mask !== null, { q: q.offset, k: k.offset, v: v.offset, m: mask?.offset ?? 0, o: out.offset, l: lse.offset, dout: dout.offset }, hs, ts);
  const { formats, F } = formatsOf({ q, k, val: v, m: mask, dout, o: out, l: lse });
  const defs = attentionLayout(g, D, tiled) as unknown as Record<string, number>;
  const stage = (name: string, inputs: string[], keys: string[]) => stagePipeline(g, 'attention', name, inputs, { ...pick(F, ...keys), ...(name === 'di' ? {} : { CAUSAL: causal ? 1 : 0 }) }, { defs, formats });
  // [lse as float32 | di = rowwise dout . out], one buffer so that dq and dkdv stay within 8 storage buffers
  const ld = g.alloc(2 * rows * 4, 'temporary', 'attention lse/di');
  try {
    g.dispatch(stage('di', ['dout', 'o', 'l'], ['FDO', 'FO', 'FL']),
      [{ storage: dout.storage }, { storage: out.storage }, { storage: lse.storage }, { storage: ld, what: 'attention lse/di' }], u, Math.ceil(rows / ROWS), 15);
    const ins = [{ storage: dout.storage }, { storage: q.storage }, { storage: k.storage }, { storage: v.storage }, { storage: m.storage }, { storage: ld }];
    const names = ['dout', 'q', 'k', 'val', 'm', 'ld'];
    const keys = ['FDO', 'FQ', 'FK', 'FV', 'FM'];
    const wg = rowGroups(B * H, T);
    const oq = f32Target(g, dq, 'attentionBackward dq f32');
    g.dispatch(stage('dq', names, keys), [...ins, { storage: oq.ref.storage, what: 'dq' }], u, wg, 15);
    oq.done();
    const ok = f32Target(g, dk, 'attentionBackward dk f32');
    const ov = f32Target(g, dv, 'attentionBackward dv f32');
    g.dispatch(stage('dkdv', names, keys), [...ins, { storage: ok.ref.storage, what: 'dk' }, { storage: ov.ref.storage, what: 'dv' }], u, wg, 15);
    ok.done();
    ov.done();
  } finally {
    g.free(ld);
  }
}
