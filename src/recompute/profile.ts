// profileMemory: what each candidate submodule costs in memory and time, and what checkpointing it
// changes, measured on a sample batch. For every candidate (by default each decoder layer and its
// attention and MLP blocks) it measures the saved-activation bytes the module's forward leaves held
// (exact: the memory tracker's live allocations labelled with the module's path), its forward time
// (median of repeated runs of the module alone on the inputs it received, each timed between two
// backend.synchronize() calls), and, by running whole training steps (forward + backward) with that
// candidate alone checkpointed, the peak bytes saved and the step time added. Chosen combinations
// are measured too: their savings against the sums of their members' (the planner's assumption that
// separate checkpoints are independent and cumulative).
import { timeRegion, type Backend, type TimedRegion } from '../backend/backend.js';
import { withOpObserver, type OpObserver } from '../backend/op_context.js';
import { CATEGORIES, type Category, type MemoryEvent } from '../backend/memory.js';
import { tidy, Variable } from '../autograd/variable.js';
import { InvalidArgumentError, checkOptions, describeValue } from '../errors.js';
import { forwardWrapper, Module, setForwardWrapper } from '../nn/module.js';
import { Tensor } from '../tensor/tensor.js';
import { checkpointModules } from './checkpoint.js';
import { curvePeak, peakModelOf, predictPeak, type PeakItem, type PeakModel } from './predict.js';
import { saveMatmuls } from './policies.js';
import type { CheckpointPolicy } from './checkpoint.js';

/** A language-model batch: token ids and the targets each position predicts, both [B, T] int32. */
export interface TokenBatchTensors {
  readonly ids: Tensor;
  readonly targets: Tensor;
}

/** A candidate: modules checkpointed together, under an optional per-op policy. */
export interface CandidateSpec {
  /** Dotted module names (as in model.namedModules()). */
  readonly modules: readonly string[];
  /** The name of a policy of `ProfileOptions.policies`; absent: recompute everything inside (plain checkpointing). */
  readonly policy?: string;
}

export interface ProfileOptions<B> {
  /** The training loss of one batch (default: `model.loss(batch.ids, batch.targets)`, the language models' method). */
  loss?: (model: Module, batch: B) => Variable;
  /**
   * The candidate modules: names, a RegExp over the dotted names, or a predicate. Default: each
   * decoder layer (`layers.N`) and its `selfAttn` and `mlp` blocks.
   */
  modules?: readonly string[] | RegExp | ((name: string, module: Module) => boolean);
  /**
   * Per-op policies to try inside each candidate module besides plain checkpointing, by name
   * (default: { saveMatmuls }; {} for plain checkpointing only).
   */
  policies?: Readonly<Record<string, CheckpointPolicy>>;
  /** Extra combinations to measure, e.g. [['layers.0', 'layers.1']] (always measured: all layers, all attention, all MLP blocks). */
  combinations?: readonly (readonly CandidateSpec[])[];
  /** Timed training steps per configuration (default 5), after `warmup` (default 1) untimed ones. */
  repeats?: number;
  warmup?: number;
  /** Timed forwards of each module alone (default 7). */
  forwardRepeats?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

/** One training step (forward + backward) as measured. */
export interface StepMeasurement {
  /** Highest memoryAllocated() during the step, bytes (parameters, data and everything else included). */
  peakBytes: number;
  /** memoryAllocated() before the step. */
  beforeBytes: number;
  /** Bytes the forward left held until backward (saved activations and the loss). */
  heldBytes: number;
  /** Median step time, ms (forward, backward, synchronize). */
  stepMs: number;
}

/** A module's own figures, without checkpointing. */
export interface ModuleProfile {
  name: string;
  /** Saved-activation bytes allocated while the module's forward runs and still held when the whole forward ends. */
  heldBytes: number;
  /** Median time of the module's forward alone, ms: GPU time where the backend has timestamps, else wall time between two synchronize calls (MemoryProfile.forwardTiming says which). */
  forwardMs: number;
}

/** A candidate checkpointed alone (or a combination), measured. */
export interface CandidateProfile extends StepMeasurement {
  /** 'layers.0', 'layers.0.mlp [saveMatmuls]', 'layers.0+layers.1'. */
  name: string;
  modules: string[];
  policy: string | null;
  /** Peak bytes saved against the unplanned step. */
  bytesSaved: number;
  /** Held (saved-activation) bytes saved against the unplanned step. */
  heldBytesSaved: number;
  /** Step time added against the unplanned step, ms (median of paired differences; may be negative: noise). */
  msAdded: number;
  /** Wall time of the forward ops re-run during backward, ms (median over the timed steps). */
  recomputeMs: number;
  /**
   * What the planner counts as its added time, ms: on a backend whose ops run synchronously (wasm)
   * recomputeMs (measured directly, far less noisy than a difference of step times on a shared
   * machine); on WebGPU, where ops are only encoded, msAdded.
   */
  costMs: number;
  /** The planner's prediction of peakBytes (predict.ts). */
  predictedPeakBytes: number;
  /**
   * A single candidate's measured peak where the unplanned curve does not explain it (the peak of
   * its recompute), else null: what the prediction of sets containing it uses.
   */
  recomputePeakBytes: number | null;
}

/** A combination: measured, and as predicted from its members measured alone. */
export interface CombinationProfile extends CandidateProfile {
  members: string[];
  predictedBytesSaved: number;
  predictedMsAdded: number;
}

/** A memory timeline: bytes by category after each allocation or free of one step. */
export interface MemoryTimeline {
  /** Bytes by category when the step began. */
  start: Record<Category, number>;
  /** [event index, bytes by category] after each event; at most a few thousand points. */
  points: { index: number; bytes: Record<Category, number> }[];
  events: number;
}

/** How a forward was timed (backend.timeRegion). */
export type ForwardTiming = TimedRegion<unknown>['timing'];

export interface MemoryProfile {
  backend: string;
  /** The unplanned step. */
  baseline: StepMeasurement;
  /** The unplanned step's memory curve and the candidate modules' windows in it (for predictions). */
  peakModel: PeakModel;
  /** Bytes by category at the unplanned step's peak (they sum to baseline.peakBytes). */
  baselineAtPeak: Record<Category, number>;
  /** The unplanned step's memory by category, event by event (PyTorch's memory-snapshot view). */
  timeline: MemoryTimeline;
  modules: ModuleProfile[];
  candidates: CandidateProfile[];
  combinations: CombinationProfile[];
  /** How times were taken. */
  timing: string;
  /** How the modules' forwards were timed: GPU timestamps (WebGPU's 'timestamp-query' feature) or wall time after a synchronize. */
  forwardTiming: ForwardTiming;
}

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b), n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};

/** The name of a candidate: its modules joined with '+', and its policy in brackets. */
export function candidateName(spec: CandidateSpec): string {
  return `${spec.modules.join('+')}${spec.policy ? ` [${spec.policy}]` : ''}`;
}

/** The default candidate modules: `layers.N`, `layers.N.selfAttn`, `layers.N.mlp` (those present). */
export function defaultCandidateModules(model: Module): string[] {
  return model.namedModules().map(([n]) => n).filter((n) => /^(?:.*\.)?layers\.\d+(?:\.(?:selfAttn|mlp))?$/.test(n));
}

/** The candidate module names that `modules` selects, checked against the model. */
export function selectModules(model: Module, modules: ProfileOptions<unknown>['modules']): string[] {
  const all = model.namedModules().filter(([n]) => n !== '');
  const names = all.map(([n]) => n);
  let out: string[];
  if (modules === undefined) out = defaultCandidateModules(model);
  else if (Array.isArray(modules)) {
    for (const n of modules) if (!names.includes(n)) throw new InvalidArgumentError(`no submodule ${JSON.stringify(n)} in the model; its modules are ${names.join(', ')}`);
    out = [...modules];
  } else if (modules instanceof RegExp) {
    const re = new RegExp(modules.source, modules.flags.replace(/[gy]/g, '')); // test() without lastIndex state, as checkpointModules
    out = names.filter((n) => re.test(n));
  }
  else if (typeof modules === 'function') out = all.filter(([n, m]) => (modules as (n: string, m: Module) => boolean)(n, m)).map(([n]) => n);
  else throw new InvalidArgumentError(`modules must be an array of names, a RegExp or a predicate, got ${describeValue(modules)}`);
  if (out.length === 0) throw new InvalidArgumentError(`no candidate module: ${modules === undefined ? 'the model has no decoder layers named layers.N; pass options.modules' : 'options.modules selects none'}; its modules are ${names.join(', ')}`);
  return out;
}

/** The default loss: `model.loss(batch.ids, batch.targets)` (the language models' method). */
export function defaultLoss(model: Module, batch: unknown): Variable {
  const m = model as Module & { loss?: (ids: Tensor, targets: Tensor) => Variable };
  const b = batch as Partial<TokenBatchTensors> | null;
  if (typeof m.loss !== 'function' || !b || !(b.ids instanceof Tensor) || !(b.targets instanceof Tensor)) {
    throw new InvalidArgumentError(`profileMemory: the default loss needs a model with loss(ids, targets) and a batch { ids, targets } of Tensors; got ${describeValue(model)} and ${describeValue(batch)} (pass options.loss)`);
  }
  return m.loss(b.ids, b.targets);
}

/**
 * Runs `fn` with the candidate's modules checkpointed (non-invasively, undone afterwards).
 * The empty spec runs fn as it is.
 */
export async function withCheckpointed<T>(model: Module, specs: readonly CandidateSpec[], policies: Readonly<Record<string, CheckpointPolicy>>, fn: () => Promise<T>): Promise<T> {
  const undos: (() => void)[] = [];
  try {
    for (const s of specs) {
      const set = new Set(s.modules);
      const policy = s.policy === undefined ? undefined : policies[s.policy];
      if (s.policy !== undefined && !policy) throw new InvalidArgumentError(`unknown policy ${JSON.stringify(s.policy)}; known: ${Object.keys(policies).join(', ') || 'none'}`);
      undos.push(checkpointModules(model, (name: string) => set.has(name), policy ? { policy } : {}).undo);
    }
    return await fn();
  } finally {
    for (const u of undos.reverse()) u();
  }
}

/** The state of the memory tracker's categories now. */
function categoryBytes(backend: Backend): Record<Category, number> {
  return Object.fromEntries(CATEGORIES.map((c) => [c, backend.memory.memoryAllocated(c)])) as Record<Category, number>;
}

/** At most `max` points of a timeline: in each bucket of consecutive events, the moment the total was highest. */
export function timelineOf(start: Record<Category, number>, events: readonly MemoryEvent[], max = 2000): MemoryTimeline {
  const now = { ...start };
  const total = (r: Record<Category, number>): number => CATEGORIES.reduce((a, c) => a + r[c], 0);
  const size = Math.max(1, Math.ceil(events.length / max));
  const points: MemoryTimeline['points'] = [{ index: 0, bytes: { ...now } }];
  let best: MemoryTimeline['points'][number] | null = null;
  events.forEach((e, i) => {
    now[e.category] += e.kind === 'alloc' ? e.bytes : -e.bytes;
    if (!best || total(now) > total(best.bytes)) best = { index: i + 1, bytes: { ...now } };
    if ((i + 1) % size === 0 || i === events.length - 1) { points.push(best); best = null; }
  });
  return { start: { ...start }, points, events: events.length };
}

/** The bytes by category at the timeline's highest total (the first such moment). */
export function atPeak(t: MemoryTimeline): Record<Category, number> {
  const total = (r: Record<Category, number>): number => CATEGORIES.reduce((a, c) => a + r[c], 0);
  let best = t.points[0].bytes;
  for (const p of t.points) if (total(p.bytes) > total(best)) best = p.bytes;
  return { ...best };
}

/** Runs training steps and measures them. */
export class StepRunner<B> {
  constructor(readonly model: Module, readonly batch: B, readonly loss: (model: Module, batch: B) => Variable) {}

  get backend(): Backend {
    const p = this.model.parameters()[0];
    if (!p) throw new InvalidArgumentError('profileMemory: the model has no parameters');
    return p.data.backend;
  }

  /** One step: forward (tidy), backward, gradients freed. Returns its measurement (stepMs of this one step) and its trace. */
  async step(withTimeline = false): Promise<StepRecord> {
    const be = this.backend, mem = be.memory;
    this.model.zeroGrad();
    await be.synchronize();
    const beforeBytes = mem.memoryAllocated();
    const start = categoryBytes(be);
    mem.startTrace();
    let heldBytes = 0, forwardLive: readonly MemoryEvent[] = [], forwardEnd = 0, recomputeMs = 0;
    const t0 = performance.now();
    let trace;
    try {
      mem.startTrace();
      let loss: Variable;
      try {
        loss = tidy(() => this.loss(this.model, this.batch));
      } finally {
        const f = mem.stopTrace();
        forwardLive = f.live;
        forwardEnd = f.events.length;
      }
      heldBytes = mem.memoryAllocated() - beforeBytes;
      // Forward ops that run inside backward are recomputation: their wall time is summed (outermost ones only).
      let open = 0, since = 0;
      const observer: OpObserver = {
        begin: (ctx) => { if (!ctx.op.endsWith('.backward') && open++ === 0) since = performance.now(); },
        end: (ctx) => { if (!ctx.op.endsWith('.backward') && --open === 0) recomputeMs += performance.now() - since; },
      };
      try { withOpObserver(observer, () => loss.backward()); } finally { loss.releaseGraph(); loss.dispose(); }
      this.model.zeroGrad();
      await be.synchronize();
    } finally {
      trace = mem.stopTrace();
    }
    const stepMs = performance.now() - t0;
    return {
      m: { peakBytes: beforeBytes + trace.peakIncrease, beforeBytes, heldBytes, stepMs },
      timeline: withTimeline ? timelineOf(start, trace.events) : undefined,
      forwardLive, events: trace.events, forwardEnd, recomputeMs,
    };
  }
}

/** One measured step with its trace. */
export interface StepRecord {
  m: StepMeasurement;
  timeline?: MemoryTimeline;
  /** Allocations of the forward still live at its end. */
  forwardLive: readonly MemoryEvent[];
  /** Every allocation and free of the step, and how many of them the forward made. */
  events: readonly MemoryEvent[];
  forwardEnd: number;
  /** Wall time of the forward ops run during backward (recomputation), ms. */
  recomputeMs: number;
}

/**
 * Held bytes and forward time of each module. One step runs with each module's forward wrapped:
 * the allocations made while it is on the stack (shared submodules it calls included, whatever
 * their labels) that are still live when the whole forward ends are its held bytes; the inputs it
 * received are kept, and its forward alone is then timed on them.
 */
async function moduleFigures<B>(runner: StepRunner<B>, names: readonly string[], repeats: number): Promise<{ held: Map<string, number>; ms: Map<string, number>; timing: ForwardTiming }> {
  const modules = new Map(runner.model.namedModules());
  const captured = new Map<string, unknown[]>();
  const made = new Map<string, Set<number>>(names.map((n) => [n, new Set()]));
  const mem = runner.backend.memory;
  const restore: (() => void)[] = [];
  for (const n of names) {
    const m = modules.get(n)!;
    const prev = setForwardWrapper(m, (call, args) => {
      if (!captured.has(n)) captured.set(n, args.map((a) => (a instanceof Variable ? a.detach() : a instanceof Tensor ? a.reshape(a.shape) : a)));
      mem.startTrace();
      try {
        return prev ? prev(call, args) : call(...args);
      } finally {
        for (const e of mem.stopTrace().live) made.get(n)!.add(e.id);
      }
    });
    restore.push(() => setForwardWrapper(m, prev));
  }
  let live: readonly MemoryEvent[];
  try {
    live = (await runner.step()).forwardLive;
  } finally {
    for (const r of restore) r();
  }
  const held = new Map(names.map((n) => [n, live.filter((e) => made.get(n)!.has(e.id)).reduce((a, e) => a + e.bytes, 0)]));
  const be = runner.backend, out = new Map<string, number>();
  let timing: ForwardTiming = 'wall'; // until a forward is timed
  try {
    for (const n of names) {
      const args = captured.get(n);
      if (!args) { out.set(n, NaN); continue; } // not called by the loss
      const m = modules.get(n)! as unknown as { forward: (...a: unknown[]) => unknown };
      const ms: number[] = [];
      for (let i = 0; i <= repeats; i++) {
        const r = await timeRegion(be, () => tidy(() => m.forward(...args)));
        timing = r.timing;
        const y = r.result;
        if (y instanceof Variable) { y.releaseGraph(); y.dispose(); }
        if (i > 0) ms.push(r.ms); // the first run warms up
      }
      out.set(n, median(ms));
    }
  } finally {
    for (const args of captured.values()) for (const a of args) if (a instanceof Variable || a instanceof Tensor) a.dispose();
  }
  return { held, ms: out, timing };
}

/** A single candidate as the peak prediction needs it. */
export function peakItem(c: CandidateProfile): PeakItem {
  return { module: c.modules[0], heldBytesSaved: c.heldBytesSaved, recomputePeakBytes: c.recomputePeakBytes };
}

/** The default combinations: every candidate module of one kind together (all layers, all attention blocks, all MLP blocks). */
function defaultCombinations(names: readonly string[]): CandidateSpec[][] {
  const kinds = new Map<string, string[]>();
  for (const n of names) {
    const kind = n.replace(/\.\d+(?=\.|$)/g, '.N');
    if (!kinds.has(kind)) kinds.set(kind, []);
    kinds.get(kind)!.push(n);
  }
  return [...kinds.values()].filter((ns) => ns.length > 1).map((ns) => ns.map((n) => ({ modules: [n] })));
}

/**
 * Measures, for every candidate module, its saved-activation bytes and forward time, and what
 * checkpointing it alone (plainly, and under each policy) changes in the training step's peak
 * memory and time; then measures combinations against the sums of their members. The model must
 * be in a state to train (its gradients are freed by each step); nothing is changed afterwards.
 */
/** The keys of ProfileOptions. */
export const PROFILE_OPTION_KEYS = ['loss', 'modules', 'policies', 'combinations', 'repeats', 'warmup', 'forwardRepeats', 'log'] as const;

/**
 * The checks of profileMemory's options that need no profiling (planCheckpoints runs them first
 * too): loss and log functions, policies a record of functions, and candidate modules that are not
 * checkpointed already (the profile wraps each in turn; not checked with `modules: false`, for a
 * plan from a profile made before). Returns the candidate module names.
 */
export function checkProfileOptions(model: Module, options: ProfileOptions<unknown>, where: string, modules = true): string[] {
  for (const k of ['loss', 'log'] as const) {
    if (options[k] !== undefined && typeof options[k] !== 'function') throw new InvalidArgumentError(`${where}: ${k} must be a function, got ${describeValue(options[k])}`);
  }
  const policies: unknown = options.policies;
  if (policies !== undefined) {
    if (policies === null || typeof policies !== 'object' || Array.isArray(policies)) throw new InvalidArgumentError(`${where}: policies must be an object of named policies ({ saveMatmuls }), got ${describeValue(policies)}`);
    for (const [name, p] of Object.entries(policies)) {
      if (typeof p !== 'function') throw new InvalidArgumentError(`${where}: policies.${name} must be a policy function (ctx) => 'save' | 'recompute' | ..., got ${describeValue(p)}`);
    }
  }
  if (!modules) return [];
  const names = selectModules(model, options.modules);
  const byName = new Map(model.namedModules());
  for (const n of names) {
    if (forwardWrapper(byName.get(n)!)) throw new InvalidArgumentError(`${where}: ${n} is already checkpointed; profile the model before checkpointing it (undo the earlier checkpointModules first)`);
  }
  return names;
}

/** Checks the counts of ProfileOptions (unknown keys are the caller's to check); returns them with their defaults. */
export function profileCounts(options: ProfileOptions<unknown>, fn: string): { repeats: number; warmup: number; forwardRepeats: number } {
  const counts = { repeats: options.repeats ?? 5, warmup: options.warmup ?? 1, forwardRepeats: options.forwardRepeats ?? 7 };
  for (const [k, v, min] of [['repeats', counts.repeats, 1], ['warmup', counts.warmup, 0], ['forwardRepeats', counts.forwardRepeats, 1]] as const) {
    if (!Number.isSafeInteger(v) || v < min) throw new InvalidArgumentError(`${fn}: ${k} must be an integer >= ${min}, got ${describeValue(v)}`);
  }
  return counts;
}

export async function profileMemory<B = TokenBatchTensors>(model: Module, sampleBatch: B, options: ProfileOptions<B> = {}): Promise<MemoryProfile> {
  if (!(model instanceof Module)) throw new InvalidArgumentError(`profileMemory: model must be a Module, got ${describeValue(model)}`);
  checkOptions(options, PROFILE_OPTION_KEYS, 'profileMemory');
  const { repeats, warmup, forwardRepeats: fwdRepeats } = profileCounts(options as ProfileOptions<unknown>, 'profileMemory');
  const names = checkProfileOptions(model, options as ProfileOptions<unknown>, 'profileMemory');
  const policies = options.policies ?? { saveMatmuls };
  const log = options.log ?? (() => {});
  const runner = new StepRunner<B>(model, sampleBatch, options.loss ?? defaultLoss);
  const singles: CandidateSpec[] = names.flatMap((n) => [{ modules: [n] }, ...Object.keys(policies).map((p) => ({ modules: [n], policy: p }))]);
  const combos: CandidateSpec[][] = [...defaultCombinations(names), ...(options.combinations ?? []).map((c) => [...c])];
  const singleNames = new Set(singles.map(candidateName));
  for (const c of combos) for (const s of c) {
    if (!singleNames.has(candidateName(s))) throw new InvalidArgumentError(`combination member ${JSON.stringify(candidateName(s))} is not a candidate; the candidates are ${[...singleNames].join(', ')}`);
  }

  // Warm-up, then the unplanned step with its timeline and the modules' held bytes.
  for (let i = 0; i < warmup; i++) await runner.step();
  const first = await runner.step(true);
  log(`unplanned step: peak ${first.m.peakBytes} bytes, ${first.m.heldBytes} held after forward`);
  const figures = await moduleFigures(runner, names, fwdRepeats);
  const modules: ModuleProfile[] = names.map((n) => ({ name: n, heldBytes: figures.held.get(n)!, forwardMs: figures.ms.get(n)! }));

  // Each candidate alone, and the combinations: memory from one step (exact), time from `repeats`
  // rounds that alternate the unplanned step with each configuration (paired differences).
  const configs: CandidateSpec[][] = [...singles.map((s) => [s]), ...combos];
  const measured = configs.map(() => ({ peak: 0, held: 0, before: 0, ms: [] as number[], diff: [] as number[], rec: [] as number[] }));
  for (const [i, cfg] of configs.entries()) {
    await withCheckpointed(model, cfg, policies, async () => {
      for (let w = 0; w < warmup; w++) await runner.step();
      const r = await runner.step();
      Object.assign(measured[i], { peak: r.m.peakBytes, held: r.m.heldBytes, before: r.m.beforeBytes });
    });
    log(`${cfg.map(candidateName).join(' + ')}: peak ${measured[i].peak} bytes`);
  }
  const baseMs: number[] = [];
  for (let round = 0; round < repeats; round++) {
    for (const [i, cfg] of configs.entries()) {
      const base = (await runner.step()).m.stepMs;
      baseMs.push(base);
      const rec = await withCheckpointed(model, cfg, policies, () => runner.step());
      const ms = rec.m.stepMs;
      measured[i].rec.push(rec.recomputeMs);
      measured[i].ms.push(ms);
      measured[i].diff.push(ms - base);
    }
  }
  const baseline: StepMeasurement = { ...first.m, stepMs: median(baseMs.length ? baseMs : [first.m.stepMs]) };
  const peakModel = peakModelOf(first.m.beforeBytes, first.events, first.forwardEnd, names);
  const synchronous = runner.backend.kind === 'wasm';
  const profileOf = (cfg: readonly CandidateSpec[], i: number): Omit<CandidateProfile, 'predictedPeakBytes' | 'recomputePeakBytes'> => ({
    name: cfg.map(candidateName).join(' + '),
    modules: cfg.flatMap((s) => s.modules),
    policy: cfg.every((s) => s.policy === cfg[0].policy) ? cfg[0].policy ?? null : cfg.map((s) => s.policy ?? 'none').join(','),
    peakBytes: measured[i].peak, beforeBytes: measured[i].before, heldBytes: measured[i].held, stepMs: median(measured[i].ms),
    bytesSaved: baseline.peakBytes - measured[i].peak,
    heldBytesSaved: baseline.heldBytes - measured[i].held,
    msAdded: median(measured[i].diff),
    recomputeMs: median(measured[i].rec),
    costMs: synchronous ? median(measured[i].rec) : Math.max(0, median(measured[i].diff)),
  });
  const candidates: CandidateProfile[] = singles.map((s, i) => {
    const p = profileOf([s], i);
    const alone = curvePeak(peakModel, [{ module: s.modules[0], heldBytesSaved: p.heldBytesSaved, recomputePeakBytes: null }]);
    const c = { ...p, predictedPeakBytes: alone, recomputePeakBytes: p.peakBytes > alone ? p.peakBytes : null };
    return { ...c, predictedPeakBytes: predictPeak(peakModel, [peakItem(c)]) };
  });
  const combinations: CombinationProfile[] = combos.map((cfg, k) => {
    const p = profileOf(cfg, singles.length + k);
    const members = cfg.map(candidateName);
    const mine = members.map((n) => candidates.find((c) => c.name === n)).filter((c): c is CandidateProfile => c !== undefined);
    const predictedPeakBytes = predictPeak(peakModel, mine.map(peakItem));
    return {
      ...p, members, predictedPeakBytes, recomputePeakBytes: null,
      predictedBytesSaved: baseline.peakBytes - predictedPeakBytes, predictedMsAdded: mine.reduce((a, c) => a + c.costMs, 0),
    };
  });
  return {
    backend: runner.backend.description,
    baseline,
    timeline: first.timeline!,
    peakModel,
    baselineAtPeak: atPeak(first.timeline!),
    modules,
    candidates,
    combinations,
    forwardTiming: figures.timing,
    timing: `steps: wall time between backend.synchronize() calls, medians of ${repeats} (paired with unplanned steps); forwards: ${figures.timing === 'wall' ? 'wall time between backend.synchronize() calls' : 'GPU time (timestamp-query)'}, medians of ${fwdRepeats}; the planner counts ${synchronous ? 'the time of the ops recomputed in backward' : 'the step time added'}`,
  };
}
