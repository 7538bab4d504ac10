// Multi-stage shader files: a common part, then `//#stage NAME` sections, each compiled (with the
// dtype and workgroup libraries and the accessors it reads) as its own pipeline with entry 'main'.
import type { TensorRef } from '../backend.js';
import { numel } from '../shape.js';
import { accessor, type WebGPUBackend } from './backend.js';

/** The common part of `source` plus stage `name`. */
export function shaderStage(source: string, name: string): string {
  const parts = source.split(/^\/\/#stage /m);
  const body = parts.slice(1).find((p) => p.startsWith(`${name}\n`));
  if (body === undefined) throw new Error(`shader stage ${name} not found`);
  return parts[0] + body.slice(name.length + 1);
}

/** Compiles stage `name` of shaders/<file>.wgsl with read accessors for `inputs` at bindings 0... */
export function stagePipeline(g: WebGPUBackend, file: string, name: string, inputs: readonly string[], constants: Record<string, number>): GPUComputePipeline {
  return g.pipeline(`${file}:${name}`, () => g.shader('dtype') + g.shader('workgroup') + inputs.map((n, i) => accessor(n, i, 'read')).join('') + shaderStage(g.shader(file), name), constants);
}

/** A float32 tensor to write `out` into: out itself, or a temporary that done() casts into out and frees. */
export function f32Target(g: WebGPUBackend, out: TensorRef, label: string): { ref: TensorRef; done(): void } {
  if (out.dtype === 'float32') return { ref: out, done() {} };
  const ref: TensorRef = { storage: g.alloc(Math.max(numel(out.shape), 1) * 4, 'temporary', label), offset: 0, shape: out.shape, dtype: 'float32' };
  return { ref, done() { g.cast(ref, out); g.free(ref.storage); } };
}
