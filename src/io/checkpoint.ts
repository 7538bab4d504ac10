// Training checkpoints: model, optimizer, scheduler, step, generator states (and, later, the grad
// scaler) in ONE safetensors file, written atomically (temp file, fsync, rename over the target),
// so a crash mid-write leaves the previous checkpoint whole. Tensors are stored under `model.<key>`
// and `optimizer.<param index>.<state key>`; everything else is JSON in the metadata key
// `memfit.checkpoint`. Resuming restores every piece, so the next step equals an uninterrupted run.
import { InvalidArgumentError, MemfitError } from '../errors.js';
import type { Module } from '../nn/module.js';
import type { Optimizer, OptimizerStateDict, OptimizerHyper, ParamState } from '../optim/optimizer.js';
import type { LRScheduler, SchedulerStateDict } from '../optim/lr_scheduler.js';
import type { Generator, GeneratorState } from '../random.js';
import type { Tensor } from '../tensor/tensor.js';
import { loadSafetensors, saveSafetensors } from './safetensors_file.js';

/** The metadata key holding a checkpoint's JSON part. */
export const CHECKPOINT_KEY = 'memfit.checkpoint';
const FORMAT = 1;

/** JSON-able values (for `extra`). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue };

/** What a checkpoint holds; the same object shape is passed to save and to load (which fills it in). */
export interface TrainingState {
  model: Module;
  optimizer?: Optimizer<OptimizerHyper>;
  scheduler?: LRScheduler;
  /** Optimizer steps taken. */
  step: number;
  /** Generators whose state is saved and restored (data order, dropout, ...), by name. */
  generators?: Record<string, Generator>;
  /** Anything else JSON-able (a config, a data position). */
  extra?: Record<string, JsonValue>;
}

interface CheckpointJson {
  format: number;
  step: number;
  optimizer: { paramGroups: unknown[]; numbers: Record<string, Record<string, number>> } | null;
  scheduler: SchedulerStateDict | null;
  generators: Record<string, { words: GeneratorState; spare: number | null }>;
  extra: Record<string, JsonValue>;
}

/** A checkpoint file that is not one, or does not fit the model/optimizer it is loaded into. */
export class CheckpointError extends MemfitError {
  constructor(message: string) {
    super('CHECKPOINT', message);
  }
}

/** Writes the training state to `path` atomically. */
export async function saveCheckpoint(path: string, state: TrainingState): Promise<void> {
  if (!Number.isInteger(state.step) || state.step < 0) throw new InvalidArgumentError(`checkpoint step must be an integer >= 0, got ${state.step}`);
  const tensors: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(state.model.stateDict())) tensors[`model.${k}`] = t;
  let optimizer: CheckpointJson['optimizer'] = null;
  if (state.optimizer) {
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
    generators: Object.fromEntries(Object.entries(state.generators ?? {}).map(([k, g]) => [k, g.getState()])),
    extra: state.extra ?? {},
  };
  await saveSafetensors(path, tensors, { [CHECKPOINT_KEY]: JSON.stringify(json) });
}

/**
 * Restores a checkpoint into `state` (model weights, optimizer state, scheduler, generators) and
 * returns its step and extra. Everything is checked before the model is written (strict keys and
 * shapes); tensors are loaded onto the model's backend.
 */
export async function loadCheckpoint(path: string, state: Omit<TrainingState, 'step'>): Promise<{ step: number; extra: Record<string, JsonValue> }> {
  const params = state.model.parameters();
  if (params.length === 0) throw new InvalidArgumentError('loadCheckpoint: the model has no parameters');
  const { tensors, metadata } = await loadSafetensors(path, params[0].backend, { category: 'temporary' });
  try {
    const raw = metadata[CHECKPOINT_KEY];
    if (raw === undefined) throw new CheckpointError(`${path}: not a memfit checkpoint (no '${CHECKPOINT_KEY}' metadata)`);
    let json: CheckpointJson;
    try {
      json = JSON.parse(raw) as CheckpointJson;
    } catch {
      throw new CheckpointError(`${path}: the '${CHECKPOINT_KEY}' metadata is not valid JSON`);
    }
    if (json.format !== FORMAT) throw new CheckpointError(`${path}: checkpoint format ${String(json.format)} is not supported (expected ${FORMAT})`);
    const model: Record<string, Tensor> = {};
    const opt: Record<string, ParamState> = {};
    for (const [name, t] of Object.entries(tensors)) {
      if (name.startsWith('model.')) model[name.slice(6)] = t;
      else if (name.startsWith('optimizer.')) {
        const [, idx, ...key] = name.split('.');
        (opt[idx] ??= {})[key.join('.')] = t;
      } else throw new CheckpointError(`${path}: unexpected tensor '${name}'`);
    }
    if (state.optimizer && !json.optimizer) throw new CheckpointError(`${path}: the checkpoint has no optimizer state`);
    if (state.scheduler && !json.scheduler) throw new CheckpointError(`${path}: the checkpoint has no scheduler state`);
    for (const name of Object.keys(state.generators ?? {})) {
      if (!json.generators?.[name]) throw new CheckpointError(`${path}: the checkpoint has no state for generator '${name}'`);
    }
    state.model.loadStateDict(model); // strict: checks every key and shape before writing
    if (state.optimizer && json.optimizer) {
      for (const [idx, nums] of Object.entries(json.optimizer.numbers)) Object.assign((opt[idx] ??= {}), nums);
      state.optimizer.loadStateDict({ state: opt, paramGroups: json.optimizer.paramGroups } as OptimizerStateDict<OptimizerHyper>);
    }
    if (state.scheduler && json.scheduler) state.scheduler.loadStateDict(json.scheduler);
    for (const [name, g] of Object.entries(state.generators ?? {})) g.setState(json.generators[name]);
    return { step: json.step, extra: json.extra ?? {} };
  } finally {
    for (const t of Object.values(tensors)) t.dispose(); // model and optimizer copied what they keep
  }
}
