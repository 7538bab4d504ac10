// Op ids: the one source. scripts/gen-constants.ts generates the AssemblyScript and WGSL constants
// (U_*, B_*, R_*: build/constants.ts and build/constants.wgsl) that the kernels switch on.
import type { BinaryOp, ReduceOp, UnaryOp } from './backend.js';

export const UNARY_IDS: Record<UnaryOp, number> = {
  neg: 0, exp: 1, log: 2, sqrt: 3, rsqrt: 4, relu: 5, gelu: 6, silu: 7, sigmoid: 8, tanh: 9, abs: 10, square: 11,
  scale: 12, powScalar: 13, addScalar: 14,
};
export const BINARY_IDS: Record<BinaryOp, number> = { add: 0, sub: 1, mul: 2, div: 3, pow: 4, maximum: 5, minimum: 6,
  reluBackward: 7, geluBackward: 8, siluBackward: 9, sigmoidBackwardY: 10, tanhBackwardY: 11 };
export const REDUCE_IDS: Record<ReduceOp, number> = { sum: 0, mean: 1, max: 2, amax: 3 };
