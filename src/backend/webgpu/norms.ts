// Placeholder: this kernel family is not implemented on this backend yet.
import { missing } from '../not_implemented.js';

export const rmsNorm = missing('rmsNorm', 'webgpu');
export const rmsNormBackward = missing('rmsNormBackward', 'webgpu');
export const layerNorm = missing('layerNorm', 'webgpu');
export const layerNormBackward = missing('layerNormBackward', 'webgpu');
