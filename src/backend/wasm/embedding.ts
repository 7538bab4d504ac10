// Embedding lookup and its scatter-add backward on the wasm backend (assembly/kernels/nn.ts).
// ids are int32 and read as they are stored; the table/dy may be any dtype (staged to float32).
import type { TensorRef } from '../backend.js';
import { numel } from '../shape.js';
import type { WasmBackend } from './backend.js';
import { f32Ptr } from './norms.js';

/** out[..., :] = table[ids[...], :]; ids outside [0, rows) give zero rows. */
export function embedding(backend: WasmBackend, ids: TensorRef, table: TensorRef, out: TensorRef): void {
  const n = numel(ids.shape);
  const [rows, cols] = [table.shape[0] ?? 0, table.shape[1] ?? 1];
  if (n * cols === 0) return;
  const pi = f32Ptr(backend, ids);
  const t = backend.stageIn(table);
  try {
    const o = backend.stageOut(out);
    // Positions in parallel (each output row is one copy).
    backend.parallelFor(n, 1, n * cols, (s, e) => ({ fn: 'embeddingF32', args: [pi + s * 4, t.ptr, o.ptr + s * cols * 4, e - s, rows, cols] }));
    o.commit();
  } finally {
    t.release();
  }
}

/** dtable[ids[i], :] += dy[i, :] (dtable float32; ids outside [0, rows) are skipped). */
export function embeddingBackward(backend: WasmBackend, ids: TensorRef, dy: TensorRef, dtable: TensorRef): void {
  const n = numel(ids.shape);
  const [rows, cols] = [dtable.shape[0] ?? 0, dtable.shape[1] ?? 1];
  if (n * cols === 0) return;
  const pi = f32Ptr(backend, ids), pt = f32Ptr(backend, dtable);
  const d = backend.stageIn(dy);
  try {
    // Table rows in parallel: every part reads every position in order and adds only into its own
    // rows, so each row gets the same additions in the same order for every thread count.
    backend.parallelFor(rows, 1, n * cols, (v0, v1) => ({ fn: 'embeddingBackwardF32Rows', args: [pi, d.ptr, pt, n, cols, v0, v1] }));
  } finally {
    d.release();
  }
}
