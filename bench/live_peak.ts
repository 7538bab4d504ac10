// The replay behind bench:peak (bench/peak.ts): one training step under a memory trace, replayed
// to find the allocations live at its highest total. Importable by tests (no top-level await).
import { CATEGORIES, type Category, type MemoryEvent, type MemoryTrace } from '../src/backend/memory.js';
import type { LanguageModelTrainer } from '../src/train/language_model.js';

/** What was live at a step's peak. */
export interface LivePeak {
  /** The step's highest allocated total (bytes), as trainStep's peakAllocated. */
  readonly peak: number;
  /** Bytes allocated before the step, by category. */
  readonly before: Readonly<Record<Category, number>>;
  /** The step's allocations live at the peak, grouped by category and label, largest first. */
  readonly groups: readonly { readonly category: Category; readonly label: string; readonly count: number; readonly bytes: number }[];
  /** The events around the peak (twelve before it, the peak's own, two after). */
  readonly around: readonly MemoryEvent[];
  /** The index in `around` of the event that reached the peak. */
  readonly at: number;
  /** trainStep's own figure for the same step. */
  readonly stepPeak: number;
}

/** Runs one training step under a trace and replays it to find what is live at its peak. */
export async function livePeak(trainer: LanguageModelTrainer): Promise<LivePeak> {
  const mem = trainer.backend.memory;
  const before = Object.fromEntries(CATEGORIES.map((c) => [c, mem.memoryAllocated(c)])) as Record<Category, number>;
  const start = mem.memoryAllocated();
  mem.startTrace();
  let trace: MemoryTrace | undefined;
  let stepPeak = 0;
  try {
    stepPeak = (await trainer.trainStep()).peakAllocated;
  } finally {
    trace = mem.stopTrace();
  }
  const { events } = trace;
  let now = start, peak = start, at = -1;
  const live = new Map<number, MemoryEvent>();
  let atPeak: MemoryEvent[] = [];
  events.forEach((e, i) => {
    if (e.kind === 'alloc') { now += e.bytes; live.set(e.id, e); } else { now -= e.bytes; live.delete(e.id); }
    if (now > peak) { peak = now; at = i; atPeak = [...live.values()]; }
  });
  const groups = new Map<string, { category: Category; label: string; count: number; bytes: number }>();
  for (const e of atPeak) {
    const key = `${e.category} ${e.label}`;
    const g = groups.get(key) ?? { category: e.category, label: e.label, count: 0, bytes: 0 };
    g.count++;
    g.bytes += e.bytes;
    groups.set(key, g);
  }
  const from = Math.max(0, at - 12);
  return { peak, before, groups: [...groups.values()].sort((x, y) => y.bytes - x.bytes), around: events.slice(from, at + 3), at: at - from, stepPeak };
}
