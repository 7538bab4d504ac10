// Browser stand-in for node_device.ts (scripts/build.mjs swaps it in): browsers use navigator.gpu.
import { NoWebGPUError, type AcquiredDevice, type WebGPUOptions } from './device.js';

export async function nodeDevice(_options: WebGPUOptions): Promise<AcquiredDevice> {
  throw new NoWebGPUError('navigator.gpu is not available in this browser');
}
