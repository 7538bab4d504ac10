// Cross-entropy on the wasm backend (assembly/kernels/nn.ts).
//
// loss (shape []) = mean over rows whose target != ignoreIndex of logsumexp(row) - row[target].
// When every row is ignored we follow PyTorch: the loss is NaN (0 / 0) and dlogits are all zero.
// dlogits (optional) = (softmax - onehot(target)) * gradScale / count on counted rows, 0 on
// ignored rows. A target outside [0, C) that is not ignoreIndex makes the loss NaN (PyTorch raises).
import type { TensorRef } from '../backend.js';
import type { WasmBackend } from './backend.js';
import { f32Ptr, nnExports, rowsCols } from './norms.js';

export function crossEntropy(
  backend: WasmBackend, logits: TensorRef, targets: TensorRef, loss: TensorRef, dlogits: TensorRef | null, ignoreIndex: number, gradScale: number,
): void {
  const [rows, cols] = rowsCols(logits);
  const x = backend.stageIn(logits);
  try {
    const l = backend.stageOut(loss);
    const d = dlogits ? backend.stageOut(dlogits) : null;
    nnExports().crossEntropyF32(x.ptr, f32Ptr(backend, targets), l.ptr, d ? d.ptr : 0, rows, cols, ignoreIndex | 0, gradScale);
    l.commit();
    d?.commit();
  } finally {
    x.release();
  }
}
