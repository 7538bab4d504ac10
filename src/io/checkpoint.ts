// Training checkpoints: model, optimizer, scheduler, step, generator states and the grad scaler
// in ONE safetensors file, written atomically (temp file, fsync, rename over the target),
// so a crash mid-write leaves the previous checkpoint whole. Tensors are stored under `model.<key>`
// and `optimizer.<param index>.<state key>`; everything else is JSON in the metadata key
// `memfit.checkpoint`. Resuming restores every piece, so the next step equals an uninterrupted run.
import { checkOptions, describeValue, InvalidArgumentError, MemfitError } from '../errors.js';
import { MAX_STEP } from '../optim/optimizer.js';
import type { Module } from '../nn/module.js';
import type { Optimizer, OptimizerStateDict, OptimizerHyper, ParamState } from '../optim/optimizer.js';
import type { LRScheduler, SchedulerStateDict } from '../optim/lr_scheduler.js';
import type { GradScaler, GradScalerStateDict } from '../amp/grad_scaler.js';
import { defaultGenerator, type Generator, type GeneratorState } from '../random.js';
import type { Tensor } from '../tensor/tensor.js';
import { loadSafetensors, saveSafetensors } from './safetensors_file.js';

/** The metadata key holding a checkpoint's JSON part. */
export const CHECKPOINT_KEY = 'memfit.checkpoint';
const FORMAT = 1;
/** The name under which the default generator (dropout's, manualSeed's) is saved. */
const DEFAULT_GENERATOR = 'memfit.default';

type GeneratorSnapshot = { words: GeneratorState; spare: number | null };

/** JSON-able values (for `extra`). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue };

/** What a checkpoint holds; the same object shape is passed to save and to load (which fills it in). */
export interface TrainingState {
  model: Module;
  optimizer?: Optimizer<OptimizerHyper>;
  scheduler?: LRScheduler;
  /** The GradScaler of mixed-precision training (its scale and growth tracker; PyTorch's keys). */
  scaler?: GradScaler;
  /** Optimizer steps taken. */
  step: number;
  /** Generators whose state is saved and restored (data order, ...), by name; the default generator always is. */
  generators?: Record<string, Generator>;
  /** Anything else JSON-able (a config, a data position). */
  extra?: Record<string, JsonValue>;
}

interface CheckpointJson {
  format: number;
  step: number;
  optimizer: { paramGroups: unknown[]; numbers: Record<string, Record<string, number>> } | null;
  scheduler: SchedulerStateDict | null;
  /** Absent in checkpoints written before the scaler joined them. */
  scaler?: GradScalerStateDict | Record<string, never> | null;
  generators: Record<string, GeneratorSnapshot>;
  extra: Record<string, JsonValue>;
}

/** A checkpoint file that is not one, or does not fit the model/optimizer it is loaded into. */
export class CheckpointError extends MemfitError {
  constructor(message: string) {
    super('CHECKPOINT', message);
  }
}

/** Writes the training state to `path` atomically. */
/** A plain JSON object (not null, an array or a class instance). */
function isPlainObject(v: unknown): v is Record<string, JsonValue> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** The keys of a TrainingState: any other is refused (a misspelt `schedular` would silently not be saved). */
const STATE_KEYS = ['model', 'optimizer', 'scheduler', 'scaler', 'step', 'generators', 'extra'] as const;

/** Checks the `state` argument of `fn`: an object with known keys only and a model. */
function checkState(state: unknown, fn: string): void {
  if (state === null || typeof state !== 'object') throw new InvalidArgumentError(`${fn}: state must be an object { model, optimizer, scheduler, step, ... }, got ${describeValue(state)}`);
  checkOptions(state, STATE_KEYS, `${fn} state`);
  const model = (state as { model?: Partial<Module> }).model;
  if (model === null || typeof model !== 'object' || typeof model.stateDict !== 'function' || typeof model.parameters !== 'function') {
    throw new InvalidArgumentError(`${fn}: state.model must be a Module, got ${describeValue(model)}`);
  }
}

export async function saveCheckpoint(path: string, state: TrainingState): Promise<void> {
  checkState(state, 'saveCheckpoint');
  if (!(Number.isSafeInteger(state.step) && state.step >= 0 && state.step <= MAX_STEP)) throw new InvalidArgumentError(`checkpoint step must be a non-negative integer no larger than 2^40, got ${describeValue(state.step)}`);
  if (state.extra !== undefined && !isPlainObject(state.extra)) throw new InvalidArgumentError(`checkpoint extra must be a plain object of JSON values, got ${describeValue(state.extra)}`);
  const tensors: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(state.model.stateDict())) tensors[`model.${k}`] = t;
  let optimizer: CheckpointJson['optimizer'] = null;
  const scaler = state.scaler ? await state.scaler.stateDict() : null; // read back from the device
  if (state.optimizer) {
    await state.optimizer.synchronize(); // step counts of steps taken under a GradScaler come back first
    const sd = state.optimizer.stateDict();
    const numbers: Record<string, Record<string, number>> = {};
    for (const [idx, s] of Object.entries(sd.state)) {
      for (const [key, v] of Object.entries(s)) {
        if (typeof v === 'number') (numbers[idx] ??= {})[key] = v;
        else tensors[`optimizer.${idx}.${key}`] = v;
      }
    }
    optimizer = { paramGroups: sd.paramGroups, numbers };
  }
  const json: CheckpointJson = {
    format: FORMAT,
    step: state.step,
    optimizer,
    scheduler: state.scheduler ? state.scheduler.stateDict() : null,
    scaler,
    generators: Object.fromEntries([...Object.entries(state.generators ?? {}), [DEFAULT_GENERATOR, defaultGenerator] as const].map(([k, g]) => [k, g.getState()])),
    extra: state.extra ?? {},
  };
  await saveSafetensors(path, tensors, { [CHECKPOINT_KEY]: JSON.stringify(json) });
}

/**
 * Restores a checkpoint into `state` (model weights, optimizer state, scheduler, generators, and
 * the default generator that dropout draws from) and returns its step and extra. All or nothing:
 * the file, the model's keys and shapes, the step and the generator states are checked first; the
 * scheduler and generators are restored from snapshots if the optimizer then refuses its state;
 * the model is written last. Tensors are loaded onto the model's backend.
 */
export async function loadCheckpoint(path: string, state: Omit<TrainingState, 'step'>): Promise<{ step: number; extra: Record<string, JsonValue> }> {
  checkState(state, 'loadCheckpoint');
  const params = state.model.parameters();
  if (params.length === 0) throw new InvalidArgumentError('loadCheckpoint: the model has no parameters');
  const { tensors, metadata } = await loadSafetensors(path, params[0].backend, { category: 'temporary' });
  const fail = (msg: string): never => { throw new CheckpointError(`${path}: ${msg}`); };
  try {
    const raw = metadata[CHECKPOINT_KEY];
    if (raw === undefined) fail(`not a memfit checkpoint (no '${CHECKPOINT_KEY}' metadata)`);
    let json: CheckpointJson;
    try {
      json = JSON.parse(raw) as CheckpointJson;
    } catch {
      return fail(`the '${CHECKPOINT_KEY}' metadata is not valid JSON`);
    }
    if (typeof json !== 'object' || json === null || json.format !== FORMAT) fail(`checkpoint format ${String(json?.format)} is not supported (expected ${FORMAT})`);
    if (!(Number.isSafeInteger(json.step) && json.step >= 0 && json.step <= MAX_STEP)) fail(`step ${describeValue(json.step)} is not a non-negative integer no larger than 2^40`);
    if (json.extra !== undefined && !isPlainObject(json.extra)) fail(`extra must be a JSON object, got ${describeValue(json.extra)}`);
    if (json.generators !== undefined && !isPlainObject(json.generators)) fail(`generators must be a JSON object, got ${describeValue(json.generators)}`);
    if (json.scheduler !== null && json.scheduler !== undefined && !isPlainObject(json.scheduler)) fail(`scheduler must be a JSON object or null, got ${describeValue(json.scheduler)}`);
    if (json.optimizer !== null && json.optimizer !== undefined && (!isPlainObject(json.optimizer) || !Array.isArray(json.optimizer.paramGroups))) fail('optimizer must be null or { paramGroups: [...], numbers: {...} }');
    // Null-prototype records and numeric indices only: names from the file never reach a prototype.
    const model = Object.create(null) as Record<string, Tensor>;
    const opt = Object.create(null) as Record<string, ParamState>;
    const entry = (idx: string): ParamState => {
      if (!/^(0|[1-9]\d*)$/.test(idx)) fail(`optimizer state index '${idx}' is not a parameter number`);
      return (opt[idx] ??= Object.create(null) as ParamState);
    };
    for (const [name, t] of Object.entries(tensors)) {
      if (name.startsWith('model.')) model[name.slice(6)] = t;
      else if (name.startsWith('optimizer.')) {
        const [, idx, ...key] = name.split('.');
        entry(idx)[key.join('.')] = t;
      } else fail(`unexpected tensor '${name}'`);
    }
    if (state.optimizer && !json.optimizer) fail('the checkpoint has no optimizer state');
    if (state.scheduler && !json.scheduler) fail('the checkpoint has no scheduler state');
    if (state.scaler && !json.scaler) fail('the checkpoint has no grad scaler state');
    const generators: [Generator, GeneratorSnapshot][] = [];
    for (const [name, g] of [...Object.entries(state.generators ?? {}), [DEFAULT_GENERATOR, defaultGenerator] as const]) {
      const saved = (json.generators !== undefined && Object.prototype.hasOwnProperty.call(json.generators, name) ? json.generators[name] : undefined) as GeneratorSnapshot;
      if (!saved) {
        if (name === DEFAULT_GENERATOR) continue; // checkpoints written before it was saved
        fail(`the checkpoint has no state for generator '${name}'`);
      }
      if (!isPlainObject(saved)) fail(`generator '${name}': the state must be a JSON object, got ${describeValue(saved)}`);
      if (!(saved.spare === null || typeof saved.spare === 'number')) fail(`generator '${name}': spare must be a number or null`);
      generators.push([g, saved]);
    }
    state.model.checkStateDict(model); // strict: every key and shape, before anything is written
    // Restore what can be undone first, then the optimizer (which checks everything before it
    // changes anything), then the model.
    const undo = {
      scheduler: state.scheduler?.stateDict(), generators: generators.map(([g]) => g.getState()),
      scaler: state.scaler ? await state.scaler.stateDict() : undefined,
    };
    try {
      if (state.scheduler && json.scheduler) state.scheduler.loadStateDict(json.scheduler);
      if (state.scaler && json.scaler) state.scaler.loadStateDict(json.scaler);
      for (const [g, saved] of generators) g.setState(saved);
      if (state.optimizer && json.optimizer) {
        for (const [idx, nums] of Object.entries(json.optimizer.numbers ?? {})) {
          if (typeof nums !== 'object' || nums === null) fail(`optimizer numbers for ${idx} are not an object`);
          for (const [k, v] of Object.entries(nums)) entry(idx)[k] = v;
        }
        state.optimizer.loadStateDict({ state: opt, paramGroups: json.optimizer.paramGroups } as OptimizerStateDict<OptimizerHyper>);
      }
    } catch (e) {
      if (state.scheduler && undo.scheduler) state.scheduler.loadStateDict(undo.scheduler);
      if (state.scaler && undo.scaler && Object.keys(undo.scaler).length > 0) state.scaler.loadStateDict(undo.scaler);
      generators.forEach(([g], i) => g.setState(undo.generators[i]));
      throw e;
    }
    state.model.loadStateDict(model);
    return { step: json.step, extra: json.extra ?? {} };
  } finally {
    for (const t of Object.values(tensors)) t.dispose(); // model and optimizer copied what they keep
  }
}
