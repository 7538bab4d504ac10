// Reverse-mode autograd over Tensor.
export {
  Variable, Node, record, noGrad, inferenceMode, enableGrad, isGradEnabled, isInferenceMode,
  withSavedTensorsHooks, keepSavedTensors, savedTensorStats, tidy, keep, withOpPolicy, applyOpPolicy,
} from './variable.js';
export type { SavedTensorsHooks, BackwardFn, VariableOptions, OpPolicy, ZeroGradOptions } from './variable.js';
export {
  add, sub, mul, div, neg, scale, addScalar, exp, log, square, sqrt, relu, gelu, silu, sigmoid, tanh,
  reshape, transpose, sum, mean, softmax, logSoftmax, matmul, cast, constant, unbroadcast,
} from './ops.js';
export type { ReduceOptions } from './ops.js';
