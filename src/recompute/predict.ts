// The planner's prediction of a training step's peak memory with a set of modules checkpointed,
// from the unplanned step's memory curve and what each module checkpointed alone measured:
// - between the end of a module's forward and the start of its backward, the step holds less by
//   the saved-activation bytes its checkpointing removes (exact from the memory tracker, measured
//   alone; cumulative across modules because those bytes are disjoint);
// - while its backward recomputes it, the step reaches the peak measured with it checkpointed alone
//   (when that peak lies above the curve's prediction), less the bytes of the other checkpointed
//   modules that run before it in the forward (not held at that moment).
// The predicted peak is the highest of these. Browser-safe.
import type { MemoryEvent } from '../backend/memory.js';

export interface ModuleWindow {
  /** Index into the curve right after the module's last forward allocation or free. */
  forwardEnd: number;
  /** Index into the curve right before the module's first backward allocation or free. */
  backwardStart: number;
}

/** The unplanned step's memory curve and each candidate module's window in it. */
export interface PeakModel {
  /** memoryAllocated() before the step (index 0) and after each of its allocations and frees. */
  curve: number[];
  /** Per module name. */
  windows: Record<string, ModuleWindow>;
}

/** A checkpointed module as the prediction needs it. */
export interface PeakItem {
  module: string;
  /** Held bytes its checkpointing removes (measured alone). */
  heldBytesSaved: number;
  /** The peak measured with it checkpointed alone where the curve alone does not explain it (its recompute), else null. */
  recomputePeakBytes: number | null;
}

/** The module path of an allocation label ('layers.0.mlp.upProj/matmul' -> 'layers.0.mlp.upProj'). */
const pathOf = (label: string): string => label.split('/')[0];
const inside = (path: string, module: string): boolean => path === module || path.startsWith(`${module}.`);

/** The model of one unplanned step: its curve from `beforeBytes` and `events`, windows of `modules` (forward: the first `forwardEnd` events). */
export function peakModelOf(beforeBytes: number, events: readonly MemoryEvent[], forwardEnd: number, modules: readonly string[]): PeakModel {
  const curve = [beforeBytes];
  for (const e of events) curve.push(curve[curve.length - 1] + (e.kind === 'alloc' ? e.bytes : -e.bytes));
  const windows: Record<string, ModuleWindow> = {};
  for (const m of modules) {
    let fwd = 0, bwd = events.length;
    for (let i = 0; i < forwardEnd; i++) if (inside(pathOf(events[i].label), m)) fwd = i + 1;
    for (let i = forwardEnd; i < events.length; i++) if (inside(pathOf(events[i].label), m)) { bwd = i; break; }
    windows[m] = { forwardEnd: fwd, backwardStart: Math.max(fwd, bwd) };
  }
  return { curve, windows };
}

/** The curve cut at every window's ends: within a segment every set shifts the curve by one amount, so its maximum is all that matters. */
const segmentCache = new WeakMap<PeakModel, { starts: number[]; max: number[] }>();
function segments(model: PeakModel): { starts: number[]; max: number[] } {
  let s = segmentCache.get(model);
  if (s) return s;
  const cuts = new Set([0]);
  for (const w of Object.values(model.windows)) { cuts.add(w.forwardEnd); cuts.add(w.backwardStart + 1); }
  const starts = [...cuts].filter((c) => c < model.curve.length).sort((a, b) => a - b);
  const max = starts.map((st, i) => {
    const end = i + 1 < starts.length ? starts[i + 1] : model.curve.length;
    let m = -Infinity;
    for (let t = st; t < end; t++) if (model.curve[t] > m) m = model.curve[t];
    return m;
  });
  s = { starts, max };
  segmentCache.set(model, s);
  return s;
}

/** The curve's prediction alone (no recompute peaks). */
export function curvePeak(model: PeakModel, items: readonly PeakItem[]): number {
  const { starts, max } = segments(model);
  let peak = -Infinity;
  for (let i = 0; i < starts.length; i++) {
    let v = max[i];
    for (const it of items) {
      const w = model.windows[it.module];
      if (!w) throw new RangeError(`no window for module ${it.module}`);
      if (w.forwardEnd <= starts[i] && starts[i] <= w.backwardStart) v -= it.heldBytesSaved;
    }
    if (v > peak) peak = v;
  }
  return peak;
}

/** The predicted peak of the step with `items` checkpointed. */
export function predictPeak(model: PeakModel, items: readonly PeakItem[]): number {
  let peak = curvePeak(model, items);
  for (const c of items) {
    if (c.recomputePeakBytes === null) continue;
    const at = model.windows[c.module].backwardStart;
    let r = c.recomputePeakBytes;
    for (const d of items) {
      if (d === c) continue;
      const w = model.windows[d.module];
      if (w.forwardEnd <= at && at <= w.backwardStart) r -= d.heldBytesSaved;
    }
    if (r > peak) peak = r;
  }
  return peak;
}
