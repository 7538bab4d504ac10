// Dawn through the npm `webgpu` package (an optional peer dependency), and Vulkan driver
// discovery: Node only.
//
// Quiet by design: Dawn and the Vulkan drivers write warnings straight to the process's stderr
// (file descriptor 2), which JavaScript cannot redirect. So a native library is only loaded in this
// process once we know it will give an adapter worth having:
// - on Linux, a hardware adapter needs a GPU device node (/dev/dri/renderD*, /dev/nvidia*, /dev/dxg)
//   and a hardware Vulkan ICD; without both no library is loaded at all;
// - otherwise, an automatic choice asks a child process first (`probeAdapter`), whose stderr is
//   captured (shown only with `verbose`), and loads Dawn here only for a hardware adapter, with the
//   Vulkan loader pinned to the ICD that gave it (so other drivers are not even opened);
// - SwiftShader is loaded with the loader pinned to its ICD alone, which prints nothing.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_SWIFTSHADER_ICD, DEFAULT_TOGGLES, HARDWARE_TOGGLES, NoWebGPUError, deviceFrom, isSoftware, type AcquiredDevice, type WebGPUOptions } from './device.js';

interface NodeWebGPU {
  create(flags: string[]): GPU;
  globals: Record<string, unknown>;
}

const ICD_DIRS = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];
const SOFTWARE_ICD = /lvp|lavapipe|swiftshader/i;

/** Hardware Vulkan ICD files (not lavapipe or SwiftShader) where the loader looks. */
export function hardwareIcds(dirs: readonly string[] = ICD_DIRS): string[] {
  const found: string[] = [];
  for (const dir of dirs) {
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir).sort()) if (f.endsWith('.json') && !SOFTWARE_ICD.test(f)) found.push(join(dir, f));
  }
  return found;
}

/** GPU device nodes a hardware Vulkan driver opens on Linux (DRM render nodes, NVIDIA's, WSL's). */
export function gpuDeviceNodes(): string[] {
  const nodes: string[] = [];
  if (existsSync('/dev/dri')) for (const f of readdirSync('/dev/dri')) if (f.startsWith('renderD')) nodes.push(`/dev/dri/${f}`);
  if (existsSync('/dev')) for (const f of readdirSync('/dev')) if (/^nvidia\d+$/.test(f) || f === 'dxg') nodes.push(`/dev/${f}`);
  return nodes;
}

/** The `webgpu` package's entry, or a NoWebGPUError telling the user how to install it. */
function webgpuEntry(): string {
  try {
    return createRequire(import.meta.url).resolve('webgpu');
  } catch {
    throw new NoWebGPUError("WebGPU in Node needs the optional 'webgpu' package (Dawn), which is not installed: run `npm install webgpu`");
  }
}

async function loadWebGPU(): Promise<NodeWebGPU> {
  const entry = webgpuEntry();
  try {
    return (await import('webgpu')) as unknown as NodeWebGPU;
  } catch (e) {
    throw new NoWebGPUError(`the 'webgpu' package (Dawn for Node, ${entry}) could not be loaded: ${(e as Error).message}`);
  }
}

/** What a child process saw when it asked Dawn for an adapter through one ICD (or the loader's default). */
export interface ProbeResult {
  readonly icd: string | null;
  readonly adapter: { vendor: string; architecture: string; device: string; description: string; software: boolean } | null;
  /** The child's stderr: driver and Dawn messages, shown only with `verbose`. */
  readonly stderr: string;
  readonly error?: string;
}

const PROBE_SCRIPT = `
const [entry, flags, pref] = process.argv.slice(1);
const mod = await import(entry);
for (const [k, v] of Object.entries(mod.globals)) if (!(k in globalThis)) globalThis[k] = v;
const a = await mod.create(JSON.parse(flags)).requestAdapter({ powerPreference: pref });
const i = a?.info;
process.stdout.write(JSON.stringify(a ? { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description, fallback: !!(i.isFallbackAdapter ?? a.isFallbackAdapter) } : null));
process.exit(0);
`;

/**
 * Vulkan drivers (SwiftShader, Mesa) print "XDG_RUNTIME_DIR is invalid or not set" when it is unset
 * or missing, as on a server: such an environment gets a private, empty 0700 directory.
 */
function ensureRuntimeDir(env: NodeJS.ProcessEnv): void {
  if (!env.XDG_RUNTIME_DIR || !existsSync(env.XDG_RUNTIME_DIR)) env.XDG_RUNTIME_DIR = mkdtempSync(join(tmpdir(), 'memfit-xdg-'));
}

/** Asks Dawn for an adapter in a child process (its driver noise captured), through `icd` alone when given. */
export function probeAdapter(icd: string | null, flags: string[], powerPreference: GPUPowerPreference = 'high-performance'): ProbeResult {
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (icd) { env.VK_ICD_FILENAMES = icd; env.VK_DRIVER_FILES = icd; }
  ensureRuntimeDir(env);
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', PROBE_SCRIPT, webgpuEntry(), JSON.stringify(flags), powerPreference], { env, encoding: 'utf8', timeout: 60_000 });
  const stderr = (r.stderr ?? '').trim();
  if (r.status !== 0) return { icd, adapter: null, stderr, error: r.error?.message ?? `probe exited with ${r.status ?? r.signal}` };
  try {
    const a = JSON.parse(r.stdout) as { vendor: string; architecture: string; device: string; description: string; fallback: boolean } | null;
    return { icd, stderr, adapter: a && { ...a, software: a.fallback || isSoftware(a as unknown as GPUAdapterInfo) } };
  } catch {
    return { icd, adapter: null, stderr, error: `probe printed ${JSON.stringify(r.stdout.slice(0, 200))}` };
  }
}

/** Dawn through the `webgpu` package in Node. */
export async function nodeDevice(options: WebGPUOptions): Promise<AcquiredDevice> {
  const toggles = [...DEFAULT_TOGGLES, ...(options.dawnToggles ?? [])];
  const flags = [`enable-dawn-features=${toggles.join(',')}`];
  const pref = options.powerPreference ?? 'high-performance';
  const icd = options.swiftshaderIcd ?? process.env.MEMFIT_SWIFTSHADER_ICD ?? DEFAULT_SWIFTSHADER_ICD;
  const userPointed = process.env.VK_ICD_FILENAMES !== undefined || process.env.VK_DRIVER_FILES !== undefined;
  const linux = process.platform === 'linux';
  const notes: string[] = [];

  const tryAdapter = async (why: string, hardware: boolean) => {
    const mod = await loadWebGPU();
    ensureRuntimeDir(process.env);
    for (const [k, v] of Object.entries(mod.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
    let gpu: GPU | undefined = mod.create(hardware ? [`enable-dawn-features=${[...toggles, ...HARDWARE_TOGGLES].join(',')}`] : flags);
    const adapter = await gpu.requestAdapter({ powerPreference: pref });
    if (!adapter) {
      gpu = undefined;
      return undefined;
    }
    const software = isSoftware(adapter.info);
    return deviceFrom(adapter, software, why, () => { gpu = undefined; });
  };
  /** Points the Vulkan loader at one ICD; it reads these when Dawn creates its instance. */
  const pin = (file: string) => { process.env.VK_ICD_FILENAMES = file; process.env.VK_DRIVER_FILES = file; };

  if (!options.forceSoftware) {
    let hardwareWhy: string | null = null;
    if (userPointed) hardwareWhy = 'adapter from VK_ICD_FILENAMES / VK_DRIVER_FILES';
    else if (!linux) hardwareWhy = 'hardware adapter';
    else {
      const nodes = gpuDeviceNodes();
      const icds = hardwareIcds();
      if (nodes.length && icds.length) hardwareWhy = `hardware adapter (${nodes.join(', ')})`;
      else notes.push(nodes.length ? 'a GPU device node but no hardware Vulkan driver (ICD) is installed' : 'no GPU device found (no /dev/dri render node, /dev/nvidia* or /dev/dxg)');
    }
    if (hardwareWhy && options.quietProbe && !userPointed) {
      // Ask a child first, through each hardware ICD alone on Linux, so no driver speaks in this process.
      const candidates = linux ? hardwareIcds() : [null];
      let chosen: ProbeResult | undefined;
      for (const c of candidates) {
        const p = probeAdapter(c, flags, pref);
        if (p.stderr) notes.push(`${c ?? 'probe'}: ${p.stderr}`);
        if (p.error) notes.push(`${c ?? 'probe'}: ${p.error}`);
        if (p.adapter && !p.adapter.software) { chosen = p; break; }
        if (p.adapter) notes.push(`${c ?? 'probe'}: only a software adapter (${p.adapter.vendor} ${p.adapter.description})`);
      }
      if (!chosen) hardwareWhy = null;
      else if (chosen.icd) pin(chosen.icd);
    }
    if (hardwareWhy) {
      const d = await tryAdapter(hardwareWhy, true);
      if (d && !(d.software && options.requireHardware)) return d;
      notes.push(d ? `only a software adapter (${d.description})` : 'Dawn returned no hardware adapter');
    }
  }
  if (options.requireHardware) throw new NoWebGPUError(`no hardware WebGPU adapter: ${notes[0] ?? 'none found'}`, notes);
  if (!existsSync(icd)) {
    throw new NoWebGPUError(`no hardware adapter, and no SwiftShader Vulkan ICD at ${icd} (install Debian's chromium, or pass swiftshaderIcd / MEMFIT_SWIFTSHADER_ICD)`, notes);
  }
  pin(icd);
  const d = await tryAdapter(`software adapter: SwiftShader at ${icd}${options.forceSoftware ? '' : `, since ${notes[0] ?? 'there is no hardware adapter'}`}`, false);
  if (!d) throw new NoWebGPUError(`Dawn returned no adapter for SwiftShader (${icd}); is the Vulkan loader (Debian libvulkan1) installed?`, notes);
  return d;
}
