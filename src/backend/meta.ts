// The meta backend (PyTorch's meta device): tensors have shapes, dtypes and exact memory
// accounting but no values, and kernels do nothing. A forward, a backward or a whole training step
// runs in milliseconds and tells what it allocates, by category and label, for models far larger
// than this machine could compute (the seedlike Llama's 3.7 GB of float32 activations, say).
// What it counts: every tensor memfit allocates (parameters, activations, gradients, optimizer
// state, temporaries), in the same order with the same labels as a real backend. What it cannot:
// scratch that a real backend's kernels take for themselves (the wasm backend's shape metadata,
// attention's delta rows, float32 staging copies of low-precision inputs), so a peak here is a
// lower bound of the wasm backend's (within 3% on a Llama training step, tested). Values read back
// are zeros; initialisers draw nothing.
import { InvalidArgumentError, MemfitError } from '../errors.js';
import type { Backend, BackendStats, Kernels, Storage } from './backend.js';
import { MemoryTracker, type Category } from './memory.js';

class MetaStorage implements Storage {
  freed = false;
  constructor(readonly backend: MetaBackend, readonly byteLength: number, readonly category: Category, readonly label: string, readonly memId: number) {}
}

/** Every kernel of the Backend interface; the check below fails to compile when one is missing. */
export const KERNELS = [
  'cast', 'fill', 'transpose', 'copy', 'unary', 'binary', 'where', 'reduce', 'softmax', 'matmul', 'rmsNorm', 'rmsNormBackward',
  'layerNorm', 'layerNormBackward', 'embedding', 'embeddingBackward', 'attention', 'attentionBackward', 'crossEntropy',
  'scaledMatmul', 'nonFiniteCheckAndUnscale', 'ampUpdateScale', 'globalNorm', 'adamw', 'conv2d', 'conv2dBackwardInput',
  'conv2dBackwardWeight', 'batchNormStats', 'batchNorm', 'batchNormBackward', 'maxPool2d', 'maxPool2dBackward',
  'adaptiveAvgPool2d', 'adaptiveAvgPool2dBackward', 'float8ScaleUpdate', 'quantizeBlockwise', 'dequantizeBlockwise', 'optimizer8bit',
] as const satisfies readonly (keyof Kernels)[];
type Missing = Exclude<keyof Kernels, (typeof KERNELS)[number]>;
const everyKernel: [Missing] extends [never] ? true : Missing = true;
void everyKernel;

/** A backend with exact memory accounting and no values: kernels are no-ops, reads give zeros. */
export class MetaBackend implements Backend {
  readonly kind = 'meta' as const;
  readonly description = 'meta backend: shapes and memory accounting only, no values';
  readonly memory = new MemoryTracker();
  readonly maxBufferSize = Number.MAX_SAFE_INTEGER;
  private destroyed = false;

  alloc(byteLength: number, category: Category, label = ''): Storage {
    if (this.destroyed) throw new MemfitError('BACKEND_DESTROYED', 'the meta backend was destroyed');
    const id = this.memory.onAlloc(byteLength, category, label);
    this.memory.onReserve(byteLength);
    return new MetaStorage(this, byteLength, category, label, id);
  }

  free(storage: Storage): void {
    if (storage instanceof MetaStorage && storage.backend === this && storage.freed) throw new InvalidArgumentError(`storage ${storage.label || ''} freed twice`);
    const s = this.own(storage);
    s.freed = true;
    this.memory.onFree(s.memId);
    this.memory.onReserve(-s.byteLength);
  }

  write(storage: Storage, data: ArrayBufferView, byteOffset = 0): void {
    const s = this.own(storage);
    if (byteOffset + data.byteLength > s.byteLength) throw new InvalidArgumentError(`write of ${data.byteLength} bytes at ${byteOffset} overruns a ${s.byteLength}-byte storage`);
  }

  async read(storage: Storage, byteOffset: number, byteLength: number): Promise<Uint8Array> {
    const s = this.own(storage);
    if (byteOffset + byteLength > s.byteLength) throw new InvalidArgumentError(`read of ${byteLength} bytes at ${byteOffset} overruns a ${s.byteLength}-byte storage`);
    return new Uint8Array(byteLength);
  }

  async synchronize(): Promise<void> {}
  emptyCache(): void {}

  stats(): BackendStats {
    return {
      deviceAllocations: 0, bytesUploaded: 0, bytesRead: 0, dispatches: 0, computePasses: 0, submits: 0,
      uniformBuffersCreated: 0, bindGroupsCreated: 0, pipelinesCreated: 0,
    };
  }

  destroy(): void {
    this.destroyed = true;
  }

  private own(storage: Storage): MetaStorage {
    if (!(storage instanceof MetaStorage) || storage.backend !== this) throw new InvalidArgumentError('storage belongs to another backend');
    if (storage.freed) throw new InvalidArgumentError(`storage ${storage.label || ''} used after it was freed`);
    return storage;
  }
}

// The kernels: each does nothing (there are no values to compute).
export interface MetaBackend extends Kernels {}
for (const name of KERNELS) {
  Object.defineProperty(MetaBackend.prototype, name, { value: function noValues(): void {}, writable: true, configurable: true });
}
