// Reverse-mode autograd over Tensor.
export {
  Variable, Node, record, noGrad, inferenceMode, enableGrad, isGradEnabled, isInferenceMode,
  withSavedTensorsHooks, keepSavedTensors, savedTensorStats,
} from './variable.js';
export type { SavedTensorsHooks, BackwardFn, VariableOptions } from './variable.js';
export { add, sub, mul, matmul, relu, exp, scale, sum, mean, unbroadcast } from './ops.js';
