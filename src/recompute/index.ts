// Gradient recompute: checkpointing, non-invasive wrapping, per-op policies, saved-tensor hooks.
export { checkpoint, checkpointWith, checkpointModules, CHECKPOINT_DECISIONS } from './checkpoint.js';
export type { CheckpointOptions, CheckpointPolicy, CheckpointDecision, PolicyContext, CheckpointModulesResult } from './checkpoint.js';
export { saveMatmuls, saveOps, saveAll, recomputeAll, MATMUL_OPS } from './policies.js';
export { saveOnHost, compressSavedTensors, activationsOnly } from './hooks.js';
export type { SaveOnHostOptions, SaveOnHostHooks, CompressOptions, CompressDType, SavedTensorFilter } from './hooks.js';
// The profiler and the planner.
export { profileMemory, defaultCandidateModules } from './profile.js';
export type { ProfileOptions, MemoryProfile, ModuleProfile, CandidateProfile, CombinationProfile, StepMeasurement, MemoryTimeline, TokenBatchTensors, CandidateSpec } from './profile.js';
export { planCheckpoints, parseMemoryBudget, MemoryBudgetError } from './plan.js';
export type { PlanOptions, CheckpointPlan, PlanSet, MemoryBudget } from './plan.js';
