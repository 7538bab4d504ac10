// The kernel families' case table (scripts/family-cases.ts: the same cases the unit tests and
// `npm run conformance` compare) timed on one backend, for `npm run bench:kernels`: per family and
// case, the milliseconds of one `run` (its kernel calls; GPU: then synchronize()), and GB/s and/or
// GFLOP/s where the case states its work. Inputs are prepared (allocated, written) before timing
// and freed after each case; nothing is read back.
import type { Backend } from '../src/backend/backend.js';
import { Ctx, FAMILIES, type CaseSize, type Family } from '../scripts/family-cases.js';

/** Four significant digits (the bench's figures). */
export const round = (x: number): number => (Number.isFinite(x) ? Number(x.toPrecision(4)) : x);

export interface Timing { bestMs: number; medianMs: number; reps: number }
/** Times an awaited function: bench/kernels.ts passes its timeIt (the best repetition after warm-up). */
export type Timer = (fn: () => Promise<void>) => Promise<Timing>;

export interface CaseTiming {
  /** Best repetition, ms. */
  ms: number;
  medianMs: number;
  reps: number;
  /** bytes / ms (the case's `work`, read + written once each). */
  gbps?: number;
  /** flops / ms. */
  gflops?: number;
}

export interface FamilyTimings {
  size: CaseSize;
  /** By case name; a case that threw has its error instead. */
  cases: Record<string, CaseTiming | { error: string }>;
}

/**
 * Times every case of every family (FAMILIES unless `families` is given) at `size` on `be`.
 * `sync`: await be.synchronize() after each run (GPU backends). `into`: the record to fill, case by
 * case (what a run stopped midway has gathered); returned.
 */
export async function benchFamilies(
  be: Backend, size: CaseSize, time: Timer,
  options: { sync: boolean; log?: (msg: string) => void; families?: readonly Family[]; into?: Record<string, FamilyTimings> },
): Promise<Record<string, FamilyTimings>> {
  const res = options.into ?? {};
  for (const f of options.families ?? FAMILIES) {
    const cases: FamilyTimings['cases'] = {};
    res[f.family] = { size, cases };
    for (const c of f.cases(size)) {
      if (c.name in cases) throw new Error(`family ${f.family}: two cases named ${c.name}`);
      const ctx = new Ctx(be);
      try {
        const p = c.prepare(ctx);
        if (options.sync) await be.synchronize();
        const t = await time(async () => {
          p.run();
          if (options.sync) await be.synchronize();
        });
        const row: CaseTiming = { ms: t.bestMs, medianMs: t.medianMs, reps: t.reps };
        if (c.work?.bytes !== undefined) row.gbps = round(c.work.bytes / t.bestMs / 1e6);
        if (c.work?.flops !== undefined) row.gflops = round(c.work.flops / t.bestMs / 1e6);
        cases[c.name] = row;
        options.log?.(`${be.kind} ${f.family}: ${c.name}: ${t.bestMs} ms${row.gbps !== undefined ? `, ${row.gbps} GB/s` : ''}${row.gflops !== undefined ? `, ${row.gflops} GFLOP/s` : ''}`);
      } catch (e) {
        const error = (e as Error).message.split('\n')[0];
        cases[c.name] = { error };
        options.log?.(`${be.kind} ${f.family}: ${c.name}: error: ${error}`);
      } finally {
        ctx.free();
      }
    }
  }
  return res;
}
