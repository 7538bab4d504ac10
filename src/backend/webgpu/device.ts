// Finding a WebGPU device: in a browser navigator.gpu; in Node the `webgpu` package (Dawn), with
// a hardware adapter first and else SwiftShader (Debian chromium's Vulkan ICD) found by itself.
import { MemfitError } from '../../errors.js';

export interface WebGPUOptions {
  /** Dawn toggles to enable (Node), added to the defaults (allow_unsafe_apis, vulkan_enable_f16_on_nvidia). */
  dawnToggles?: readonly string[];
  /** Path of a Vulkan ICD JSON for the software adapter; default Debian chromium's SwiftShader. */
  swiftshaderIcd?: string;
  /** Refuse the software adapter (hardware or nothing). */
  requireHardware?: boolean;
  /** Force the software adapter even where hardware exists (tests). */
  forceSoftware?: boolean;
  powerPreference?: GPUPowerPreference;
}

export interface AcquiredDevice {
  readonly device: GPUDevice;
  readonly adapterInfo: GPUAdapterInfo;
  readonly software: boolean;
  /** One line: which adapter and why. */
  readonly description: string;
  readonly features: ReadonlySet<string>;
  /** Release the Node binding (lets the process exit). */
  release(): void;
}

export const DEFAULT_SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const DEFAULT_TOGGLES = ['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia'];
const WANTED_FEATURES = ['shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix', 'timestamp-query'];

/** Why no device could be had (used for the one-line backend message). */
export class NoWebGPUError extends MemfitError {
  constructor(reason: string) {
    super('NO_WEBGPU', reason);
  }
}

interface NodeWebGPU {
  create(flags: string[]): GPU;
  globals: Record<string, unknown>;
}

function isSoftware(info: GPUAdapterInfo | undefined): boolean {
  const s = `${info?.vendor ?? ''} ${info?.architecture ?? ''} ${info?.device ?? ''} ${info?.description ?? ''}`.toLowerCase();
  return s.includes('swiftshader') || s.includes('llvmpipe') || s.includes('lavapipe');
}

function describe(info: GPUAdapterInfo): string {
  return [info.vendor, info.architecture, info.device, info.description].filter((x) => x).join(' ') || 'unknown adapter';
}

async function deviceFrom(adapter: GPUAdapter, software: boolean, why: string, release: () => void): Promise<AcquiredDevice> {
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      maxBufferSize: l.maxBufferSize,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    },
  });
  const info = adapter.info;
  return {
    device, adapterInfo: info, software, features: new Set(requiredFeatures),
    description: `webgpu backend on ${describe(info)} (${why})`,
    release,
  };
}

/** Asks the browser for a device. */
async function browserDevice(options: WebGPUOptions): Promise<AcquiredDevice> {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) throw new NoWebGPUError('navigator.gpu is not available (WebGPU disabled, or not a secure context)');
  const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
  if (!adapter) throw new NoWebGPUError('the browser returned no WebGPU adapter');
  const software = isSoftware(adapter.info);
  if (software && options.requireHardware) throw new NoWebGPUError(`only a software adapter (${describe(adapter.info)}) is available`);
  return deviceFrom(adapter, software, software ? 'the browser offers only a software adapter' : 'browser adapter', () => {});
}

/** Whether a hardware Vulkan driver (not lavapipe) is installed where the loader looks. */
async function hasHardwareIcd(): Promise<boolean> {
  const { readdirSync, existsSync } = await import('node:fs');
  for (const dir of ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d']) {
    if (!existsSync(dir)) continue;
    if (readdirSync(dir).some((f) => f.endsWith('.json') && !/lvp|lavapipe|swiftshader/i.test(f))) return true;
  }
  return false;
}

/** Dawn through the `webgpu` package in Node. */
async function nodeDevice(options: WebGPUOptions): Promise<AcquiredDevice> {
  let mod: NodeWebGPU;
  try {
    mod = (await import('webgpu')) as unknown as NodeWebGPU;
  } catch (e) {
    throw new NoWebGPUError(`the 'webgpu' package (Dawn for Node) could not be loaded: ${(e as Error).message}`);
  }
  for (const [k, v] of Object.entries(mod.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  const toggles = [...DEFAULT_TOGGLES, ...(options.dawnToggles ?? [])];
  const flags = [`enable-dawn-features=${toggles.join(',')}`];
  const icd = options.swiftshaderIcd ?? process.env.MEMFIT_SWIFTSHADER_ICD ?? DEFAULT_SWIFTSHADER_ICD;
  const userPointed = process.env.VK_ICD_FILENAMES !== undefined || process.env.VK_DRIVER_FILES !== undefined;
  const { existsSync } = await import('node:fs');
  const tryAdapter = async (why: string) => {
    let gpu: GPU | undefined = mod.create(flags);
    const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
    if (!adapter) {
      gpu = undefined;
      return undefined;
    }
    const software = isSoftware(adapter.info);
    return deviceFrom(adapter, software, why, () => { gpu = undefined; });
  };
  const hardware = !options.forceSoftware && (userPointed || (await hasHardwareIcd()));
  if (hardware) {
    const d = await tryAdapter(userPointed ? 'adapter from VK_ICD_FILENAMES / VK_DRIVER_FILES' : 'hardware adapter');
    if (d && !(d.software && options.requireHardware)) return d;
    if (options.requireHardware) throw new NoWebGPUError('no hardware WebGPU adapter found');
  }
  if (options.requireHardware) throw new NoWebGPUError('no hardware Vulkan driver is installed');
  if (!existsSync(icd)) {
    throw new NoWebGPUError(`no hardware adapter, and no SwiftShader Vulkan ICD at ${icd} (install Debian's chromium, or pass swiftshaderIcd / MEMFIT_SWIFTSHADER_ICD)`);
  }
  // The Vulkan loader reads these when Dawn creates its instance, so setting them here works.
  process.env.VK_ICD_FILENAMES = icd;
  process.env.VK_DRIVER_FILES = icd;
  const d = await tryAdapter(hardware ? 'no usable hardware adapter; software fallback' : 'no hardware Vulkan driver; SwiftShader found at ' + icd);
  if (!d) throw new NoWebGPUError(`Dawn returned no adapter for SwiftShader (${icd}); is the Vulkan loader (Debian libvulkan1) installed?`);
  return d;
}

/** A WebGPU device, or a NoWebGPUError saying why not. */
export async function acquireDevice(options: WebGPUOptions = {}): Promise<AcquiredDevice> {
  const inNode = typeof process !== 'undefined' && !!process.versions?.node && !(globalThis.navigator as Navigator | undefined)?.gpu;
  return inNode ? nodeDevice(options) : browserDevice(options);
}
