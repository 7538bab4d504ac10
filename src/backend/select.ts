// Choosing a backend. The automatic choice takes WebGPU on a hardware adapter, else the wasm
// backend: a software adapter (SwiftShader, lavapipe, a browser's fallback adapter) is about 100x
// slower than wasm, so it is used only when asked for (`backend: 'webgpu'` or MEMFIT_BACKEND=webgpu).
// One line says which backend runs and why; driver messages appear only with `verbose`.
import { checkOptions, describeValue, InvalidArgumentError } from '../errors.js';
import type { Backend, BackendKind } from './backend.js';
import { MetaBackend } from './meta.js';
import { WasmBackend } from './wasm/backend.js';
import { defaultThreads, DEFAULT_MAX_THREADS } from './wasm/threads.js';
import type { WebGPUOptions } from './webgpu/device.js';

export interface BackendOptions extends WebGPUOptions {
  /**
   * 'auto' (default): WebGPU on a hardware adapter, else wasm. 'webgpu': WebGPU on any adapter,
   * software included, or an error. 'wasm'. 'meta': no values, only shapes and memory accounting
   * (PyTorch's meta device). The MEMFIT_BACKEND environment variable overrides 'auto'.
   */
  backend?: 'auto' | BackendKind;
  /** Where the one-line message goes (default console.error); null for silence. */
  log?: ((line: string) => void) | null;
  /** Also log what the WebGPU probe saw (driver messages, adapters refused); MEMFIT_VERBOSE=1 does the same. */
  verbose?: boolean;
  /**
   * Threads of the wasm backend, this one included. Default: the cores available, at most
   * 4 (DEFAULT_MAX_THREADS; the MEMFIT_THREADS environment variable overrides it); 1 runs every kernel
   * on the calling thread. Results are bit-identical for every count. In a browser, more than one
   * needs a cross-origin isolated page (else one thread, and a line in the log says why).
   */
  threads?: number;
}

function envOf(name: string): string | undefined {
  return typeof process !== 'undefined' ? process.env?.[name] : undefined;
}

const BACKENDS = ['auto', 'webgpu', 'wasm', 'meta'] as const;

const BACKEND_OPTIONS = [
  'backend', 'log', 'verbose', 'threads',
  'dawnToggles', 'swiftshaderIcd', 'requireHardware', 'quietProbe', 'forceSoftware', 'powerPreference', 'subgroupMatrix',
] as const;

/** createBackend's options checked: an object of known keys (a typo is an error, never ignored), each of its type. */
function checkBackendOptions(options: BackendOptions): BackendOptions {
  if (typeof options === 'string') throw new InvalidArgumentError(`createBackend: options must be an object, got ${describeValue(options)}; to ask for a backend by name, write createBackend({ backend: ${JSON.stringify(options)} })`);
  const o = checkOptions(options, BACKEND_OPTIONS, 'createBackend');
  if (o.log !== undefined && o.log !== null && typeof o.log !== 'function') throw new InvalidArgumentError(`createBackend: log must be a function (line: string) => void or null, got ${describeValue(o.log)}`);
  for (const k of ['verbose', 'requireHardware', 'quietProbe', 'forceSoftware', 'subgroupMatrix'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'boolean') throw new InvalidArgumentError(`createBackend: ${k} must be a boolean, got ${describeValue(o[k])}`);
  }
  if (o.threads !== undefined && !(typeof o.threads === 'number' && Number.isInteger(o.threads) && o.threads >= 1)) throw new InvalidArgumentError(`createBackend: threads must be a positive integer, got ${describeValue(o.threads)}`);
  if (o.dawnToggles !== undefined && !(Array.isArray(o.dawnToggles) && o.dawnToggles.every((t) => typeof t === 'string'))) throw new InvalidArgumentError(`createBackend: dawnToggles must be an array of strings, got ${describeValue(o.dawnToggles)}`);
  return o;
}

/** Creates a backend. With backend 'webgpu' a missing device is an error; with 'auto' it falls back to wasm. */
export async function createBackend(options: BackendOptions = {}): Promise<Backend> {
  options = checkBackendOptions(options);
  let want: string = options.backend ?? 'auto';
  const env = envOf('MEMFIT_BACKEND');
  if (want === 'auto' && env) want = env;
  if (!(BACKENDS as readonly string[]).includes(want)) throw new InvalidArgumentError(`unknown backend ${JSON.stringify(want)}; use 'auto', 'webgpu', 'wasm' or 'meta'`);
  const toggles = [...(options.dawnToggles ?? []), ...(envOf('MEMFIT_DAWN_TOGGLES')?.split(',').filter(Boolean) ?? [])];
  const log = options.log === undefined ? (l: string) => console.error(l) : options.log;
  const verbose = options.verbose ?? /^(1|true|yes)$/i.test(envOf('MEMFIT_VERBOSE') ?? '');
  const envThreads = envOf('MEMFIT_THREADS');
  if (options.threads === undefined && envThreads && !/^[1-9]\d*$/.test(envThreads)) throw new InvalidArgumentError(`MEMFIT_THREADS must be a positive integer, got ${JSON.stringify(envThreads)}`);
  const threads = options.threads ?? (envThreads ? Number(envThreads) : defaultThreads());
  const wasmOptions = { threads, log };
  let backend: Backend;
  if (want === 'meta') backend = new MetaBackend();
  else if (want === 'wasm') backend = await WasmBackend.create(options.backend === 'wasm' ? 'requested' : 'requested by MEMFIT_BACKEND', wasmOptions);
  else {
    const auto = want === 'auto';
    const { WebGPUBackend } = await import('./webgpu/backend.js');
    try {
      backend = await WebGPUBackend.create({ ...options, dawnToggles: toggles, requireHardware: auto || options.requireHardware, quietProbe: auto });
    } catch (e) {
      if (!auto) throw e;
      const why = (e as Error).message;
      backend = await WasmBackend.create(`automatic choice: ${why}; software WebGPU is ~100x slower than wasm, use backend 'webgpu' to ask for it`, wasmOptions);
      if (verbose) for (const d of (e as { details?: readonly string[] }).details ?? []) log?.(`memfit: webgpu probe: ${d}`);
    }
  }
  log?.(`memfit: ${backend.description}`);
  return backend;
}
