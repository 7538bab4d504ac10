// Cross-entropy on the wasm backend (assembly/kernels/nn.ts).
//
// loss (shape []) = mean over rows whose target != ignoreIndex of logsumexp(row) - row[target].
// When every row is ignored we follow PyTorch: the loss is NaN (0 / 0) and dlogits are all zero.
// dlogits (optional) = (softmax - onehot(target)) * gradScale / count on counted rows, 0 on
// ignored rows. A target outside [0, C) that is not ignoreIndex makes the loss NaN (PyTorch raises).
//
// Rows run in parallel (each row's loss term and dlogits computed as on one thread, into scratch);
// the loss terms are then summed here in row order, so the loss is the same for every thread count.
import type { TensorRef } from '../backend.js';
import type { WasmBackend } from './backend.js';
import { f32Ptr, nnExports, rowsCols } from './norms.js';

export function crossEntropy(
  backend: WasmBackend, logits: TensorRef, targets: TensorRef, loss: TensorRef, dlogits: TensorRef | null, ignoreIndex: number, gradScale: number,
): void {
  const [rows, cols] = rowsCols(logits);
  const pt = f32Ptr(backend, targets), ignore = ignoreIndex | 0;
  const x = backend.stageIn(logits);
  try {
    const l = backend.stageOut(loss);
    const d = dlogits ? backend.stageOut(dlogits) : null;
    const nn = nnExports();
    const count = nn.crossEntropyCount(pt, rows, ignore);
    const k = nn.crossEntropyGradFactor(gradScale, count);
    backend.withScratch(rows * 4, (rowLoss) => {
      backend.parallelFor(rows, 1, rows * cols * (d ? 6 : 3), (r0, r1) => ({ fn: 'crossEntropyF32Rows', args: [x.ptr, pt, rowLoss, d ? d.ptr : 0, cols, ignore, k, r0, r1] }));
      nn.crossEntropyF32Sum(pt, rowLoss, l.ptr, rows, ignore, count);
    });
    l.commit();
    d?.commit();
  } finally {
    x.release();
  }
}
