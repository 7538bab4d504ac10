// Finding a WebGPU device: in a browser navigator.gpu; in Node the `webgpu` package (Dawn), with
// a hardware adapter first and else SwiftShader (Debian chromium's Vulkan ICD) found by itself.
import { MemfitError } from '../../errors.js';

export interface WebGPUOptions {
  /** Dawn toggles to enable (Node), added to the defaults (allow_unsafe_apis, vulkan_enable_f16_on_nvidia). */
  dawnToggles?: readonly string[];
  /** Path of a Vulkan ICD JSON for the software adapter; default Debian chromium's SwiftShader. */
  swiftshaderIcd?: string;
  /** Refuse a software adapter (SwiftShader, lavapipe, a browser's fallback adapter): hardware or nothing. */
  requireHardware?: boolean;
  /** Node: ask a child process for the adapter first, so driver messages never reach this process's stderr (automatic choice). */
  quietProbe?: boolean;
  /** Force the software adapter even where hardware exists (tests). */
  forceSoftware?: boolean;
  powerPreference?: GPUPowerPreference;
  /** Run float16 (and fp8/fp6/fp4) matmuls on subgroup matrices (tensor cores) where the adapter has them; default true. */
  subgroupMatrix?: boolean;
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
export const DEFAULT_TOGGLES = ['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia'];
/** Toggles for hardware adapters in Node only: Dawn's Vulkan backend runs subgroup matrices only under the Vulkan memory model. */
export const HARDWARE_TOGGLES = ['use_vulkan_memory_model'];
export const WANTED_FEATURES = ['shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix', 'timestamp-query'];

/** Why no device could be had (used for the one-line backend message). */
export class NoWebGPUError extends MemfitError {
  /** What the probe saw (driver messages, adapters refused): shown under `verbose`. */
  readonly details: readonly string[];
  constructor(reason: string, details: readonly string[] = []) {
    super('NO_WEBGPU', reason);
    this.details = details;
  }
}

export function isSoftware(info: GPUAdapterInfo | undefined): boolean {
  if ((info as (GPUAdapterInfo & { isFallbackAdapter?: boolean }) | undefined)?.isFallbackAdapter) return true;
  const s = `${info?.vendor ?? ''} ${info?.architecture ?? ''} ${info?.device ?? ''} ${info?.description ?? ''}`.toLowerCase();
  return s.includes('swiftshader') || s.includes('llvmpipe') || s.includes('lavapipe');
}

export function describe(info: GPUAdapterInfo): string {
  return [info.vendor, info.architecture, info.device, info.description].filter((x) => x).join(' ') || 'unknown adapter';
}

export async function deviceFrom(adapter: GPUAdapter, software: boolean, why: string, release: () => void): Promise<AcquiredDevice> {
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
  const software = isSoftware(adapter.info) || !!(adapter as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter;
  if (software && options.requireHardware) throw new NoWebGPUError(`the browser offers only a software adapter (${describe(adapter.info)})`);
  return deviceFrom(adapter, software, software ? 'the browser offers only a software adapter' : 'browser adapter', () => {});
}

/** A WebGPU device, or a NoWebGPUError saying why not. */
export async function acquireDevice(options: WebGPUOptions = {}): Promise<AcquiredDevice> {
  const inNode = typeof process !== 'undefined' && !!process.versions?.node && !(globalThis.navigator as Navigator | undefined)?.gpu;
  if (!inNode) return browserDevice(options);
  // Node-only code (Dawn, fs) lives in its own module; the browser bundle replaces it with a stub.
  const { nodeDevice } = await import('./node_device.js');
  return nodeDevice(options);
}
