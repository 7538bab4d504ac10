// Placeholder: this kernel family is not implemented on this backend yet.
import { missing } from '../not_implemented.js';

export const rmsNorm = missing('rmsNorm', 'wasm');
export const rmsNormBackward = missing('rmsNormBackward', 'wasm');
export const layerNorm = missing('layerNorm', 'wasm');
export const layerNormBackward = missing('layerNormBackward', 'wasm');
