// Reverse-mode autograd over Tensor.
export {
  Variable, Node, record, noGrad, inferenceMode, enableGrad, isGradEnabled, isInferenceMode,
  withSavedTensorsHooks, keepSavedTensors, savedTensorStats, tidy, keep, withOpPolicy, applyOpPolicy, decideOp,
} from './variable.js';
export { apply, contiguous, defineOp, sameDtypeOrFloat32 } from './op.js';
export type { OpDef, OpIO, OpResult } from './op.js';
export { withOpObserver, observeOp, currentModulePath } from '../backend/op_context.js';
export type { OpContext, OpObserver } from '../backend/op_context.js';
export type { SavedTensorsHooks, SavedTensorContext, BackwardFn, VariableOptions, OpPolicy, OpDecision, ZeroGradOptions, PostAccumulateGradHook } from './variable.js';
export {
  add, sub, mul, div, neg, scale, addScalar, exp, log, square, sqrt, pow, relu, gelu, silu, sigmoid, tanh,
  reshape, transpose, permute, narrow, cat, sum, mean, softmax, logSoftmax, matmul, cast, constant, unbroadcast,
} from './ops.js';
export type { ReduceOptions } from './ops.js';
