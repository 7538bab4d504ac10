// Placeholder: this kernel family is not implemented on this backend yet.
import { missing } from '../not_implemented.js';

export const crossEntropy = missing('crossEntropy', 'webgpu');
