// Prints, as JSON, what the WebGPU adapter memfit finds offers: its info (with subgroup sizes and
// subgroup-matrix configurations), the features memfit asked for, the limits it uses, and whether
// the tensor-core matmul runs (and why not). Used by scripts/gpu-run.sh on the GPU machine.
import { WebGPUBackend } from '../src/backend/webgpu/backend.js';

const g = await WebGPUBackend.create();
const info = (g as unknown as { device: GPUDevice }).device.adapterInfo as GPUAdapterInfo & Record<string, unknown>;
const plain = (o: unknown): unknown => JSON.parse(JSON.stringify(o, (_k, v) => (typeof v === 'bigint' ? String(v) : v)));
const infoOut: Record<string, unknown> = {};
for (const k of ['vendor', 'architecture', 'device', 'description', 'subgroupMinSize', 'subgroupMaxSize', 'isFallbackAdapter', 'subgroupMatrixConfigs']) {
  const v = info?.[k];
  infoOut[k] = v && typeof v === 'object' ? Array.from(v as Iterable<unknown>).map((c) => plain(Object.fromEntries(['componentType', 'resultComponentType', 'M', 'N', 'K'].map((f) => [f, (c as Record<string, unknown>)[f]])))) : v;
}
const l = g.device.limits;
console.log(JSON.stringify({
  date: new Date().toISOString(), description: g.description, software: g.software, adapterInfo: infoOut,
  features: [...g.features], subgroupMatrix: g.subgroupMatrix, probeNotes: g.probeNotes,
  limits: { maxBufferSize: l.maxBufferSize, maxStorageBufferBindingSize: l.maxStorageBufferBindingSize, maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize, maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup },
}, null, 2));
g.destroy();
process.exit(0);
