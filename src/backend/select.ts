// Choosing a backend: WebGPU on a hardware adapter first; else (Node on Linux) SwiftShader found
// by itself; else the wasm backend. One line says which backend runs and why.
import { InvalidArgumentError } from '../errors.js';
import type { Backend, BackendKind } from './backend.js';
import { WasmBackend } from './wasm/backend.js';
import type { WebGPUOptions } from './webgpu/device.js';

export interface BackendOptions extends WebGPUOptions {
  /** 'auto' (default), 'webgpu' or 'wasm'; the MEMFIT_BACKEND environment variable overrides 'auto'. */
  backend?: 'auto' | BackendKind;
  /** Where the one-line message goes (default console.error); null for silence. */
  log?: ((line: string) => void) | null;
}

function envOf(name: string): string | undefined {
  return typeof process !== 'undefined' ? process.env?.[name] : undefined;
}

/** Creates a backend. With backend 'webgpu' a missing device is an error; with 'auto' it falls back to wasm. */
export async function createBackend(options: BackendOptions = {}): Promise<Backend> {
  let want = options.backend ?? 'auto';
  const env = envOf('MEMFIT_BACKEND');
  if (want === 'auto' && env) want = env as BackendKind;
  if (!['auto', 'webgpu', 'wasm'].includes(want)) throw new InvalidArgumentError(`unknown backend ${JSON.stringify(want)}; use 'auto', 'webgpu' or 'wasm'`);
  const toggles = [...(options.dawnToggles ?? []), ...(envOf('MEMFIT_DAWN_TOGGLES')?.split(',').filter(Boolean) ?? [])];
  const log = options.log === undefined ? (l: string) => console.error(l) : options.log;
  let backend: Backend;
  if (want === 'wasm') backend = new WasmBackend('requested');
  else {
    const { WebGPUBackend } = await import('./webgpu/backend.js');
    try {
      backend = await WebGPUBackend.create({ ...options, dawnToggles: toggles });
    } catch (e) {
      if (want === 'webgpu') throw e;
      backend = new WasmBackend(`no WebGPU device (${(e as Error).message})`);
    }
  }
  log?.(`memfit: ${backend.description}`);
  return backend;
}
