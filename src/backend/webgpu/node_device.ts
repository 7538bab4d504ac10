// Dawn through the npm `webgpu` package, and Vulkan driver discovery: Node only.
import { DEFAULT_SWIFTSHADER_ICD, DEFAULT_TOGGLES, NoWebGPUError, deviceFrom, isSoftware, type AcquiredDevice, type WebGPUOptions } from './device.js';

interface NodeWebGPU {
  create(flags: string[]): GPU;
  globals: Record<string, unknown>;
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
export async function nodeDevice(options: WebGPUOptions): Promise<AcquiredDevice> {
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

