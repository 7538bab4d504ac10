// planCheckpoints: choose what to checkpoint so that a training step's predicted peak memory fits a
// budget at the least added step time, from a profile (profile.ts) of each candidate alone. The
// prediction assumes separate checkpoints are independent and cumulative (the profile measures
// combinations to check it): peak = unplanned peak - the sum of the chosen candidates' savings,
// step time = unplanned time + the sum of their added times. The plan is applied non-invasively
// (checkpointModules) and can be undone.
import type { Category } from '../backend/memory.js';
import { checkOptions, humanBytes, InvalidArgumentError, MemfitError, describeValue } from '../errors.js';
import { Module } from '../nn/module.js';
import { checkpointModules } from './checkpoint.js';
import type { CheckpointPolicy } from './checkpoint.js';
import { saveMatmuls } from './policies.js';
import { predictPeak } from './predict.js';
import { atPeak, checkProfileOptions, defaultLoss, median, peakItem, profileCounts, profileMemory, PROFILE_OPTION_KEYS, StepRunner, type CandidateProfile, type MemoryProfile, type MemoryTimeline, type ProfileOptions, type TokenBatchTensors } from './profile.js';
import { allSets, greedyFront, paretoFront, type SolverItem } from './solver.js';

/** A budget that no plan of the candidates fits: it names the smallest peak they reach. */
export class MemoryBudgetError extends MemfitError {
  constructor(readonly budgetBytes: number, readonly minimumPeakBytes: number, readonly unplannedPeakBytes: number) {
    super('MEMORY_BUDGET', `memory budget ${humanBytes(budgetBytes)} (${budgetBytes} bytes) is below the smallest peak checkpointing can reach, ${humanBytes(minimumPeakBytes)} (${minimumPeakBytes} bytes; unplanned ${humanBytes(unplannedPeakBytes)}); raise the budget to at least ${minimumPeakBytes} bytes`);
  }
}

/**
 * A memory budget: bytes (a number, or text such as '64MiB', '1.5 GB', '2e6'), or a percentage
 * ('50%') of the unplanned step's activation memory at its peak: '50%' asks for a peak lower than
 * the unplanned one by half the activation bytes held at that moment.
 */
export type MemoryBudget = number | string;

const UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30 };

/**
 * A budget parsed: bytes, or a percentage. Numbers and strings follow one rule: the bytes (after
 * the unit) must be a whole number from 1 to Number.MAX_SAFE_INTEGER; a fraction of a byte
 * (0.5, '0.4', '1.3KiB') is an error. Throws InvalidArgumentError for anything else.
 */
export function parseMemoryBudget(budget: MemoryBudget): { bytes: number } | { percent: number } {
  const bad = (why: string): never => { throw new InvalidArgumentError(`memory budget ${describeValue(budget)}: ${why}; give bytes (e.g. 268435456, '256MiB', '1.5GB') or a percentage of the unplanned activation memory (e.g. '50%')`); };
  const whole = (bytes: number): { bytes: number } => {
    if (Number.isNaN(bytes) || bytes < 1) bad('must be at least 1 byte');
    if (bytes > Number.MAX_SAFE_INTEGER) bad(`must be at most ${Number.MAX_SAFE_INTEGER} bytes`);
    // '1.1GB' is 1100000000.0000002 in binary floating point: a whole number up to rounding error
    const r = Math.round(bytes);
    if (Math.abs(bytes - r) > bytes * 1e-12) bad(`must be a whole number of bytes, got ${bytes}`);
    return { bytes: r };
  };
  if (typeof budget === 'number') return whole(budget);
  if (typeof budget !== 'string') return bad('must be a number or a string');
  const t = budget.trim();
  const pct = /^(\d+(?:\.\d*)?|\.\d+)\s*%$/.exec(t);
  if (pct) {
    const p = Number(pct[1]);
    if (!(p > 0 && p <= 100)) bad('a percentage must be above 0 and at most 100');
    return { percent: p };
  }
  const m = /^((?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)\s*([a-z]*)$/i.exec(t);
  if (!m) return bad('not a size');
  const unit = m[2].toLowerCase();
  if (unit && !(unit in UNITS)) bad(`unknown unit ${JSON.stringify(m[2])} (use B, KiB, MiB, GiB, KB, MB, GB)`);
  return whole(Number(m[1]) * (unit ? UNITS[unit] : 1));
}

/** The budget in bytes of peak memory, for a profile. */
export function budgetBytes(budget: MemoryBudget, profile: Pick<MemoryProfile, 'baseline' | 'baselineAtPeak'>): number {
  const b = parseMemoryBudget(budget);
  if ('bytes' in b) return b.bytes;
  const act = profile.baselineAtPeak.activation;
  return Math.floor(profile.baseline.peakBytes - (1 - b.percent / 100) * act);
}

export interface PlanOptions<B> extends ProfileOptions<B> {
  /** Peak memory of a training step: bytes, or a percentage of the unplanned activation memory ('50%'). */
  budget: MemoryBudget;
  /** A profile already taken of this model and batch (skips profiling). */
  profile?: MemoryProfile;
  /** Measure the planned step after applying the plan (default true): measuredPeakBytes and measuredStepMs. */
  measure?: boolean;
  /**
   * Bytes every step of the real run will hold that the sample step does not (an optimizer's state,
   * allocated by its first step): added to every predicted peak (default 0).
   */
  reserveBytes?: number;
}

const PLAN_OPTION_KEYS = [...PROFILE_OPTION_KEYS, 'budget', 'profile', 'measure', 'reserveBytes'] as const;

export interface CheckpointPlan {
  /** The budget as bytes of peak memory. */
  budgetBytes: number;
  /** The chosen candidates (as profiled alone). */
  chosen: CandidateProfile[];
  /** Module names wrapped by checkpointModules. */
  wrapped: string[];
  /** Unplanned step: peak bytes and median step time. */
  unplannedPeakBytes: number;
  unplannedStepMs: number;
  /** Unplanned peak minus the chosen candidates' savings. */
  predictedPeakBytes: number;
  /** Unplanned step time plus the chosen candidates' added times. */
  predictedStepMs: number;
  /** The smallest predicted peak any plan of these candidates reaches. */
  minimumPeakBytes: number;
  /** Measured after applying (absent with measure: false); the peak, like the predictions, with reserveBytes added. */
  measuredPeakBytes?: number;
  measuredStepMs?: number;
  /** Bytes by category at the planned step's peak (with measure). */
  measuredAtPeak?: Record<Category, number>;
  /** The planned step's memory by category, event by event (with measure). */
  measuredTimeline?: MemoryTimeline;
  /** 'exact' (knapsack over the Pareto front) or 'greedy' (ratio rule, many candidates). */
  method: 'exact' | 'greedy';
  /** Every candidate set on the Pareto front (saved-activation bytes vs time added), with its predicted peak; the chosen one among them. */
  front: PlanSet[];
  profile: MemoryProfile;
  /** Removes the checkpoints the plan added. */
  undo(): void;
}

/** A candidate set as the planner sees it. */
export interface PlanSet {
  names: string[];
  /** Saved-activation bytes it removes (the sum of its members', exact). */
  heldBytesSaved: number;
  /** Step time it adds (the sum of its members'), ms. */
  msAdded: number;
  /** The step's predicted peak with it (predict.ts). */
  predictedPeakBytes: number;
}

/** The solver's items for a profile's candidates (those that remove saved activations). */
export function solverItems(profile: MemoryProfile): SolverItem[] {
  return profile.candidates.filter((c) => c.heldBytesSaved > 0).map((c) => ({ name: c.name, modules: c.modules, bytesSaved: c.heldBytesSaved, msAdded: c.costMs }));
}

/**
 * The candidate sets the planner chooses from, each with its predicted peak, and their Pareto front
 * (peak bytes saved vs time added). Exact: every conflict-free set (up to EXACT_LIMIT candidates and
 * MAX_SETS sets); beyond, the greedy ratio rule's sets (most saved-activation bytes per ms first).
 */
export function planSets(profile: MemoryProfile): { sets: PlanSet[]; front: PlanSet[]; method: 'exact' | 'greedy' } {
  const byName = new Map(profile.candidates.map((c) => [c.name, c]));
  const items = solverItems(profile);
  const exact = allSets(items);
  const sets = (exact ?? greedyFront(items)).map((s) => ({
    names: [...s.names], heldBytesSaved: s.bytesSaved, msAdded: s.msAdded,
    predictedPeakBytes: predictPeak(profile.peakModel, s.names.map((n) => peakItem(byName.get(n)!))),
  }));
  const base = profile.baseline.peakBytes;
  const front = paretoFront(sets.map((s, i) => ({ names: [String(i)], bytesSaved: base - s.predictedPeakBytes, msAdded: s.msAdded }))).map((f) => sets[Number(f.names[0])]);
  return { sets, front, method: exact ? 'exact' : 'greedy' };
}

/** The cheapest set of the front whose predicted peak fits `budget` (least time added; of equal time, the lowest peak), or null. */
export function cheapestFit(front: readonly PlanSet[], budget: number): PlanSet | null {
  let best: PlanSet | null = null;
  for (const s of front) {
    if (s.predictedPeakBytes > budget) continue;
    if (!best || s.msAdded < best.msAdded || (s.msAdded === best.msAdded && s.predictedPeakBytes < best.predictedPeakBytes)) best = s;
  }
  return best;
}

/** Wraps the chosen candidates with checkpointModules, one call per policy; returns what was wrapped and the undo. */
export function applyCandidates(model: Module, chosen: readonly CandidateProfile[], policies: Readonly<Record<string, CheckpointPolicy>>): { wrapped: string[]; undo(): void } {
  const byPolicy = new Map<string | null, Set<string>>();
  for (const c of chosen) {
    if (!byPolicy.has(c.policy)) byPolicy.set(c.policy, new Set());
    for (const m of c.modules) byPolicy.get(c.policy)!.add(m);
  }
  const undos: (() => void)[] = [];
  const wrapped: string[] = [];
  try {
    for (const [p, set] of byPolicy) {
      const policy = p === null ? undefined : policies[p];
      if (p !== null && !policy) throw new InvalidArgumentError(`unknown policy ${JSON.stringify(p)}`);
      const r = checkpointModules(model, (name: string) => set.has(name), policy ? { policy } : {});
      undos.push(r.undo);
      wrapped.push(...r.wrapped);
    }
  } catch (e) {
    for (const u of undos.reverse()) u();
    throw e;
  }
  return { wrapped, undo: () => { for (const u of undos.splice(0).reverse()) u(); } };
}

/**
 * Profiles the model on the sample batch (or uses options.profile), chooses the candidates whose
 * checkpointing brings the predicted peak within the budget at the least added time, applies them
 * with checkpointModules and returns the plan (call plan.undo() to remove them). A budget below the
 * smallest reachable peak throws a MemoryBudgetError that states that minimum.
 */
export async function planCheckpoints<B = TokenBatchTensors>(model: Module, sampleBatch: B, options: PlanOptions<B>): Promise<CheckpointPlan> {
  // Every option is checked before the (slow) profile.
  checkOptions(options, PLAN_OPTION_KEYS, 'planCheckpoints');
  if (options === undefined || options.budget === undefined) throw new InvalidArgumentError('planCheckpoints: options.budget is required (bytes, or a percentage such as \'50%\')');
  parseMemoryBudget(options.budget);
  const extra = options.reserveBytes ?? 0;
  if (!Number.isSafeInteger(extra) || extra < 0) throw new InvalidArgumentError(`planCheckpoints: reserveBytes must be an integer >= 0, got ${describeValue(options.reserveBytes)}`);
  const { repeats } = profileCounts(options as ProfileOptions<unknown>, 'planCheckpoints');
  if (options.measure !== undefined && typeof options.measure !== 'boolean') throw new InvalidArgumentError(`planCheckpoints: measure must be a boolean, got ${describeValue(options.measure)}`);
  const givenProfile: unknown = options.profile;
  if (givenProfile !== undefined) {
    const p = givenProfile as Partial<MemoryProfile> | null;
    if (p === null || typeof p !== 'object' || !Array.isArray(p.candidates) || typeof p.baseline?.peakBytes !== 'number') {
      throw new InvalidArgumentError(`planCheckpoints: profile must be what profileMemory returned, got ${describeValue(givenProfile)}`);
    }
  }
  if (!(model instanceof Module)) throw new InvalidArgumentError(`planCheckpoints: model must be a Module, got ${describeValue(model)}`);
  checkProfileOptions(model, options as ProfileOptions<unknown>, 'planCheckpoints', givenProfile === undefined);
  const { budget: _budget, profile: given, measure: _measure, reserveBytes: _reserve, ...profileOptions } = options;
  const policies = options.policies ?? { saveMatmuls };
  const profile = given ?? await profileMemory(model, sampleBatch, profileOptions);
  const budget = budgetBytes(options.budget, profile) + ('percent' in parseMemoryBudget(options.budget) ? extra : 0);
  const base = profile.baseline;
  const { sets, front, method } = planSets(profile);
  const minimumPeakBytes = Math.min(...sets.map((s) => s.predictedPeakBytes)) + extra;
  const set = cheapestFit(sets, budget - extra);
  if (!set) throw new MemoryBudgetError(budget, minimumPeakBytes, base.peakBytes + extra);
  const chosen = set.names.map((n) => profile.candidates.find((c) => c.name === n)!);
  const applied = applyCandidates(model, chosen, policies);
  const plan: CheckpointPlan = {
    budgetBytes: budget, chosen, wrapped: applied.wrapped,
    unplannedPeakBytes: base.peakBytes + extra, unplannedStepMs: base.stepMs,
    predictedPeakBytes: set.predictedPeakBytes + extra, predictedStepMs: base.stepMs + set.msAdded,
    minimumPeakBytes, method, front, profile, undo: applied.undo,
  };
  if (options.measure ?? true) {
    try {
      const runner = new StepRunner<B>(model, sampleBatch, options.loss ?? defaultLoss);
      const first = await runner.step(true);
      const ms: number[] = [];
      for (let i = 0; i < repeats; i++) ms.push((await runner.step()).m.stepMs);
      plan.measuredPeakBytes = first.m.peakBytes + extra;
      plan.measuredStepMs = median(ms);
      plan.measuredAtPeak = atPeak(first.timeline!);
      plan.measuredTimeline = first.timeline;
    } catch (e) {
      applied.undo();
      throw e;
    }
  }
  return plan;
}
