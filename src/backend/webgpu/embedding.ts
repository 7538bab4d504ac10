// Embedding lookup and scatter-add backward on the GPU (shaders/embedding.wgsl; twins of
// assembly/kernels/nn.ts). The backward needs no float atomics: a links pass (one workgroup,
// positions in order 64 at a time, a last-position-per-id table; O(64 n)) chains equal ids in
// order of position, then one invocation per (first position of an id, column) adds the chain
// into dtable, in the same order as the wasm kernel (bit-identical results).
import type { TensorRef } from '../backend.js';
import { numel } from '../shape.js';
import type { WebGPUBackend } from './backend.js';
import { fmtId } from './wgsl.js';
import { f32Target, stagePipeline } from './stages.js';

const WG = 256;

const pipelineFor = (g: WebGPUBackend, name: string, inputs: readonly string[], constants: Record<string, number>) => stagePipeline(g, 'embedding', name, inputs, constants);

function params(n: number, cols: number, rows: number, idoff: number, toff: number, dyoff: number): ArrayBuffer {
  return new Uint32Array([n, cols, rows, idoff, toff, dyoff, 0, 0]).buffer;
}

export function embedding(g: WebGPUBackend, ids: TensorRef, table: TensorRef, out: TensorRef): void {
  const n = numel(ids.shape);
  const [rows, cols] = [table.shape[0] ?? 0, table.shape[1] ?? 1];
  if (n * cols === 0) return;
  const o = f32Target(g, out, 'embedding f32');
  const p = pipelineFor(g, 'emb_fwd', ['ids', 'table'], { FT: fmtId(table.dtype) });
  g.dispatch(p, [{ storage: ids.storage }, { storage: table.storage }, { storage: o.ref.storage, what: 'embedding output' }],
    params(n, cols, rows, ids.offset, table.offset, 0), Math.ceil((n * cols) / WG), 15);
  o.done();
}

export function embeddingBackward(g: WebGPUBackend, ids: TensorRef, dy: TensorRef, dtable: TensorRef): void {
  const n = numel(ids.shape);
  const [rows, cols] = [dtable.shape[0] ?? 0, dtable.shape[1] ?? 1];
  if (n * cols === 0 || rows === 0) return;
  const u = params(n, cols, rows, ids.offset, dtable.offset, dy.offset);
  // [next (n) | head (n) | last position per table row (rows)]
  const links = g.alloc((2 * n + rows) * 4, 'temporary', 'embedding links');
  g.dispatch(pipelineFor(g, 'emb_links', ['ids'], {}), [{ storage: ids.storage }, { storage: links }], u, 1, 15);
  const q = pipelineFor(g, 'emb_bwd', ['ids', 'dy'], { FDY: fmtId(dy.dtype) });
  g.dispatch(q, [{ storage: ids.storage }, { storage: dy.storage }, { storage: links }, { storage: dtable.storage, what: 'dtable' }], u, Math.ceil((n * cols) / WG), 15);
  g.free(links);
}
