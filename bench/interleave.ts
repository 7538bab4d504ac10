// Interleaved arms for the benchmarks that compare configurations in one run (bench:memory,
// bench:train --checkpoint). Every round runs one step of every arm; the order rotates from round
// to round (round r starts with arm r mod n), so that a background load that rises or falls during
// a round does not always fall on the same arms. A fixed order did: with the load falling, the arms
// late in a round were measured on a quieter machine than the first (bench:memory once put per-layer
// checkpointing on the medium Llama at 1.054x float32 from 4 rounds, against 1.2-1.3x measured
// with the rounds paired). The step-time ratio of an arm to the baseline is the median over rounds
// of the ratio of their steps in the same round (paired, so a load change between rounds cancels),
// with the smallest and largest such ratio as its spread.
import os from 'node:os';

/** The order the arms run in round `round` (0-based) of `n` arms: a rotation. */
export function roundOrder(n: number, round: number): number[] {
  return Array.from({ length: n }, (_, i) => (i + round) % n);
}

/** Median (the upper one of an even count) of xs, which must not be empty. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error('median of no values');
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
}

const round4 = (x: number) => Number(x.toPrecision(4));

/**
 * The step-time ratio of `arm` to `base`, from steps measured in the same rounds (arm[i] and
 * base[i] in round i): the median of the per-round ratios, and their smallest and largest.
 */
export function pairedRatio(arm: readonly number[], base: readonly number[]): { median: number; spread: [number, number] } {
  if (arm.length !== base.length || arm.length === 0) throw new Error(`paired ratio needs as many steps in each arm, got ${arm.length} and ${base.length}`);
  const r = arm.map((x, i) => x / base[i]);
  return { median: round4(median(r)), spread: [round4(Math.min(...r)), round4(Math.max(...r))] };
}

/** The 1-, 5- and 15-minute load averages now (rounded to 2 decimals). */
export function loadNow(): number[] {
  return os.loadavg().map((x) => Math.round(x * 100) / 100);
}

/**
 * Warm-up time before any step is measured. V8 first runs a process's wasm kernels as baseline
 * code and compiles their optimized code in the background, each worker thread's isolate too; on
 * 2 cores that compile also takes the core a worker needs. For about the first second the steps
 * are slower, and the two-thread ones far more: the tiny Llama's speedup from a second thread read
 * 1.18x over its first 30 interleaved steps and 1.47-1.51x from there on (2026-11-30).
 */
export const WARMUP_MS = 2000;

/**
 * The steps of the learning-rate schedule of a benchmark's trainers: more than any run takes with its
 * time-based warm-up, so the cosine never passes its end (where it would rise again).
 */
export const TRAINER_STEPS = 100_000;

/**
 * Runs `warmup` rounds (at least; more until `minMs` has passed), then `steps` measured rounds:
 * round(i, measured) with i counting every round (for roundOrder). Returns the warm-up rounds run.
 */
export async function warmedRounds(
  warmup: number, steps: number, round: (i: number, measured: boolean) => Promise<void>, minMs = WARMUP_MS, now: () => number = () => performance.now(),
): Promise<number> {
  const start = now();
  let w = 0;
  while (w < warmup || now() - start < minMs) await round(w++, false);
  for (let i = 0; i < steps; i++) await round(w + i, true);
  return w;
}
