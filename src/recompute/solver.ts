// The planner's choice, as a pure function: which checkpoint candidates to take so that the memory
// they save reaches a target at the least added time. Candidates that touch the same module (a
// decoder layer and its attention block, or one module under two policies) exclude each other.
// Exact for up to EXACT_LIMIT candidates (a multiple-choice 0/1 knapsack solved by dynamic
// programming over the Pareto front of (bytes saved, time added)); beyond that, the greedy ratio
// rule (most bytes saved per millisecond first). Browser-safe.
import { InvalidArgumentError } from '../errors.js';

/** What one candidate is predicted to change, measured alone. */
export interface SolverItem {
  /** Unique name (e.g. 'layers.0', 'layers.0.mlp [saveMatmuls]'). */
  readonly name: string;
  /** Dotted module names it wraps: candidates whose modules are equal, or one inside the other, exclude each other. */
  readonly modules: readonly string[];
  /** Peak bytes it saves alone (> 0 to be worth anything). */
  readonly bytesSaved: number;
  /** Step time it adds alone, ms (negative measurements count as 0). */
  readonly msAdded: number;
}

/** A set of candidates and its predicted effect (the sums of theirs). */
export interface SolverSet {
  readonly names: readonly string[];
  readonly bytesSaved: number;
  readonly msAdded: number;
}

/** Up to this many candidates the choice is exact; more use the greedy ratio rule. */
export const EXACT_LIMIT = 40;

/** True when module path a is b or lies inside it (or the other way round). */
export function overlaps(a: string, b: string): boolean {
  return a === b || a.startsWith(`${b}.`) || b.startsWith(`${a}.`);
}

const conflict = (x: SolverItem, y: SolverItem): boolean => x.modules.some((a) => y.modules.some((b) => overlaps(a, b)));
const cost = (i: SolverItem): number => Math.max(0, i.msAdded);

function check(items: readonly SolverItem[]): void {
  const seen = new Set<string>();
  for (const i of items) {
    if (seen.has(i.name)) throw new InvalidArgumentError(`checkpoint candidate ${JSON.stringify(i.name)} is listed twice`);
    seen.add(i.name);
    if (!Number.isFinite(i.bytesSaved) || !Number.isFinite(i.msAdded)) throw new InvalidArgumentError(`checkpoint candidate ${JSON.stringify(i.name)}: bytesSaved and msAdded must be finite`);
  }
}

/** Groups of candidates that can exclude each other (connected components of the conflict graph). */
function groups(items: readonly SolverItem[]): SolverItem[][] {
  const parent = items.map((_, i) => i);
  const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i])));
  for (let i = 0; i < items.length; i++) for (let j = i + 1; j < items.length; j++) if (conflict(items[i], items[j])) parent[find(i)] = find(j);
  const byRoot = new Map<number, SolverItem[]>();
  items.forEach((it, i) => { const r = find(i); if (!byRoot.has(r)) byRoot.set(r, []); byRoot.get(r)!.push(it); });
  return [...byRoot.values()];
}

/** Every conflict-free subset of one group (the empty one included), as sets. */
function groupOptions(group: readonly SolverItem[]): SolverSet[] {
  const out: SolverSet[] = [];
  const walk = (k: number, chosen: SolverItem[]): void => {
    if (k === group.length) {
      out.push({ names: chosen.map((c) => c.name), bytesSaved: chosen.reduce((a, c) => a + c.bytesSaved, 0), msAdded: chosen.reduce((a, c) => a + cost(c), 0) });
      return;
    }
    walk(k + 1, chosen);
    if (!chosen.some((c) => conflict(c, group[k]))) walk(k + 1, [...chosen, group[k]]);
  };
  walk(0, []);
  return out;
}

/** The sets no other set beats (more bytes saved for no more time, or the same bytes for less), by bytes saved ascending. */
export function paretoFront(sets: readonly SolverSet[]): SolverSet[] {
  const sorted = [...sets].sort((a, b) => a.msAdded - b.msAdded || b.bytesSaved - a.bytesSaved || a.names.length - b.names.length);
  const front: SolverSet[] = [];
  let best = -Infinity;
  for (const s of sorted) if (s.bytesSaved > best) { front.push(s); best = s.bytesSaved; }
  return front;
}

/**
 * The Pareto front of all conflict-free candidate sets (exact: dynamic programming group by group,
 * keeping only undominated partial sets). The empty set is its first element.
 */
export function exactFront(items: readonly SolverItem[]): SolverSet[] {
  check(items);
  let front: SolverSet[] = [{ names: [], bytesSaved: 0, msAdded: 0 }];
  for (const g of groups(items)) {
    const opts = groupOptions(g);
    const next: SolverSet[] = [];
    for (const a of front) for (const o of opts) next.push({ names: [...a.names, ...o.names], bytesSaved: a.bytesSaved + o.bytesSaved, msAdded: a.msAdded + o.msAdded });
    front = paretoFront(next);
  }
  return front;
}

/**
 * The greedy ratio rule: candidates by bytes saved per ms added (free ones first), each taken when
 * it saves something and conflicts with none taken; the sets after each step form the front.
 */
export function greedyFront(items: readonly SolverItem[]): SolverSet[] {
  check(items);
  const ratio = (i: SolverItem): number => (cost(i) === 0 ? Infinity : i.bytesSaved / cost(i));
  const order = items.filter((i) => i.bytesSaved > 0).sort((a, b) => ratio(b) - ratio(a) || b.bytesSaved - a.bytesSaved);
  const taken: SolverItem[] = [];
  const sets: SolverSet[] = [{ names: [], bytesSaved: 0, msAdded: 0 }];
  for (const i of order) {
    if (taken.some((t) => conflict(t, i))) continue;
    taken.push(i);
    const prev = sets[sets.length - 1];
    sets.push({ names: [...prev.names, i.name], bytesSaved: prev.bytesSaved + i.bytesSaved, msAdded: prev.msAdded + cost(i) });
  }
  return paretoFront(sets);
}

/** At most this many candidate sets are enumerated (the exact search); more use the greedy front. */
export const MAX_SETS = 200_000;

/**
 * Every conflict-free set of candidates (the empty one first), or null when there are more than
 * `limit` (default MAX_SETS) or more than EXACT_LIMIT candidates.
 */
export function allSets(items: readonly SolverItem[], limit = MAX_SETS): SolverSet[] | null {
  check(items);
  if (items.length > EXACT_LIMIT) return null;
  const opts = groups(items).map(groupOptions);
  if (opts.reduce((a, o) => a * o.length, 1) > limit) return null;
  let sets: SolverSet[] = [{ names: [], bytesSaved: 0, msAdded: 0 }];
  for (const o of opts) {
    const next: SolverSet[] = [];
    for (const a of sets) for (const b of o) next.push({ names: [...a.names, ...b.names], bytesSaved: a.bytesSaved + b.bytesSaved, msAdded: a.msAdded + b.msAdded });
    sets = next;
  }
  return sets;
}

/** The front the planner uses: exact up to EXACT_LIMIT candidates, greedy beyond. */
export function candidateFront(items: readonly SolverItem[]): { front: SolverSet[]; method: 'exact' | 'greedy' } {
  return items.length <= EXACT_LIMIT ? { front: exactFront(items), method: 'exact' } : { front: greedyFront(items), method: 'greedy' };
}

/**
 * The cheapest set (least time added; of equal time, the one saving most) that saves at least
 * `bytesNeeded`, or null when no set does.
 */
export function cheapestSaving(front: readonly SolverSet[], bytesNeeded: number): SolverSet | null {
  let best: SolverSet | null = null;
  for (const s of front) {
    if (s.bytesSaved < bytesNeeded) continue;
    if (!best || s.msAdded < best.msAdded || (s.msAdded === best.msAdded && s.bytesSaved > best.bytesSaved)) best = s;
  }
  return best;
}
