// Cross-entropy on the GPU (shaders/loss.wgsl; twin of crossEntropyF32 in assembly/kernels/nn.ts).
// Same contract as the wasm kernel: mean over rows whose target != ignoreIndex; when every row is
// ignored the loss is NaN (as PyTorch) and dlogits are zero; ignored rows get zero gradient. The
// row stage runs rowThreads() invocations a row (1 on software adapters); `threads` overrides it (tests).
import type { TensorRef } from '../backend.js';
import { numel } from '../shape.js';
import type { WebGPUBackend } from './backend.js';
import { fmtId } from './wgsl.js';
import { checkRowThreads, f32Target, rowGroups, rowThreads, stagePipeline } from './stages.js';

const WG = 256;

const pipelineFor = (g: WebGPUBackend, name: string, inputs: readonly string[], constants: Record<string, number>) => stagePipeline(g, 'loss', name, inputs, constants);

export function crossEntropy(
  g: WebGPUBackend, logits: TensorRef, targets: TensorRef, loss: TensorRef, dlogits: TensorRef | null, ignoreIndex: number, gradScale: number, threads?: number,
): void {
  const cols = logits.shape[logits.shape.length - 1] ?? 1;
  const rows = cols === 0 ? 0 : numel(logits.shape) / cols;
  const u = new ArrayBuffer(32);
  new Uint32Array(u).set([rows, cols, logits.offset, targets.offset]);
  new Int32Array(u)[4] = ignoreIndex | 0;
  new Float32Array(u)[5] = gradScale;
  const scratch = g.alloc((4 * rows + 1) * 4, 'temporary', 'crossEntropy scratch');
  const fx = { FX: fmtId(logits.dtype) };
  if (rows > 0) {
    const RT = threads === undefined ? rowThreads(g, cols) : checkRowThreads(threads);
    g.dispatch(pipelineFor(g, 'ce_rows', ['x', 'tg'], { ...fx, RT }), [{ storage: logits.storage }, { storage: targets.storage }, { storage: scratch }], u, rowGroups(rows, RT), 15);
  }
  const l = f32Target(g, loss, 'crossEntropy loss f32');
  g.dispatch(pipelineFor(g, 'ce_total', [], {}), [{ storage: scratch }, { storage: l.ref.storage, what: 'loss' }], u, 1, 15);
  l.done();
  if (dlogits && rows * cols > 0) {
    const d = f32Target(g, dlogits, 'crossEntropy dlogits f32');
    g.dispatch(pipelineFor(g, 'ce_grad', ['x', 'tg'], fx), [{ storage: logits.storage }, { storage: targets.storage }, { storage: scratch }, { storage: d.ref.storage, what: 'dlogits' }],
      u, Math.ceil((rows * cols) / WG), 15);
    d.done();
  }
  g.free(scratch);
}
