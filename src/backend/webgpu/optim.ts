// Placeholder: this kernel family is not implemented on this backend yet.
import { missing } from '../not_implemented.js';

export const nonFiniteCheckAndUnscale = missing('nonFiniteCheckAndUnscale', 'webgpu');
export const globalNorm = missing('globalNorm', 'webgpu');
export const adamw = missing('adamw', 'webgpu');
