// Embedding lookup and its scatter-add backward on the wasm backend (assembly/kernels/nn.ts).
// ids are int32 and read as they are stored; the table/dy may be any dtype (staged to float32).
import type { TensorRef } from '../backend.js';
import { numel } from '../shape.js';
import type { WasmBackend } from './backend.js';
import { f32Ptr, nnExports } from './norms.js';

/** out[..., :] = table[ids[...], :]; ids outside [0, rows) give zero rows. */
export function embedding(backend: WasmBackend, ids: TensorRef, table: TensorRef, out: TensorRef): void {
  const n = numel(ids.shape);
  const [rows, cols] = [table.shape[0] ?? 0, table.shape[1] ?? 1];
  if (n * cols === 0) return;
  const t = backend.stageIn(table);
  try {
    const o = backend.stageOut(out);
    nnExports().embeddingF32(f32Ptr(backend, ids), t.ptr, o.ptr, n, rows, cols);
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
  const d = backend.stageIn(dy);
  try {
    nnExports().embeddingBackwardF32(f32Ptr(backend, ids), d.ptr, f32Ptr(backend, dtable), n, rows, cols);
  } finally {
    d.release();
  }
}
