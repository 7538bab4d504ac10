// Shared setup for backend tests: one wasm backend and one WebGPU backend (SwiftShader in CI).
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { WebGPUBackend } from '../../src/backend/webgpu/backend.js';
import type { Backend, TensorDType, TensorRef } from '../../src/backend/backend.js';
import { storageBytes } from '../../src/backend/storage.js';
import { numel } from '../../src/backend/shape.js';

let gpu: WebGPUBackend | undefined;

/** The WebGPU backend (a new one after a test file destroyed the last). Fails, never skips, when no adapter can be had. */
export async function gpuBackend(): Promise<WebGPUBackend> {
  if (!gpu || gpu.isDestroyed) gpu = await WebGPUBackend.create();
  return gpu;
}

/** A tensor on `b` holding raw bytes of `dtype` (float32/int32 data as typed arrays, other dtypes as codes). */
export function tensor(b: Backend, shape: number[], dtype: TensorDType, data?: ArrayBufferView): TensorRef {
  const bytes = storageBytes(dtype, numel(shape));
  const storage = b.alloc(bytes, 'data', 'test');
  if (data) b.write(storage, data);
  return { storage, offset: 0, shape, dtype };
}

export async function readF32(b: Backend, t: TensorRef): Promise<Float32Array> {
  const bytes = await b.read(t.storage, 0, numel(t.shape) * 4);
  return new Float32Array(bytes.buffer, bytes.byteOffset, numel(t.shape));
}

export { WasmBackend, WebGPUBackend };
