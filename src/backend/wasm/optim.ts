// Placeholder: this kernel family is not implemented on this backend yet.
import { missing } from '../not_implemented.js';

export const nonFiniteCheckAndUnscale = missing('nonFiniteCheckAndUnscale', 'wasm');
export const globalNorm = missing('globalNorm', 'wasm');
export const adamw = missing('adamw', 'wasm');
