// Optimizers, gradient clipping and learning-rate schedulers (torch.optim in camelCase).
export { Optimizer, GradientReleaseError } from './optimizer.js';
export type {
  OptimizerHyper, ParamGroup, ParamGroupInput, ParamsInput, ParamState, ParamGroupState, OptimizerStateDict,
  StateSpec, StepOptions, SkipContext, GradientReleaseOptions,
} from './optimizer.js';
export { SGD } from './sgd.js';
export type { SGDHyper } from './sgd.js';
export { Adam, AdamW } from './adam.js';
export type { AdamHyper } from './adam.js';
export { RMSprop } from './rmsprop.js';
export type { RMSpropHyper } from './rmsprop.js';
export { Adagrad } from './adagrad.js';
export { Adam8bit, AdamW8bit, SGD8bit, RMSprop8bit, OPTIM8BIT_DEFAULTS } from './optim8bit.js';
export type { Optim8bitOptions, Adam8bitHyper, SGD8bitHyper, RMSprop8bitHyper } from './optim8bit.js';
export { createDynamicMap } from './dynamic_map.js';
export type { AdagradHyper } from './adagrad.js';
export { clipGradNorm, clipGradValue } from './clip_grad.js';
export {
  LRScheduler, StepLR, LambdaLR, LinearLR, CosineAnnealingLR, SequentialLR, cosineWithWarmup,
} from './lr_scheduler.js';
export type { SchedulerStateDict, AnyOptimizer, LrLambda, LinearLROptions, CosineWithWarmupOptions } from './lr_scheduler.js';
