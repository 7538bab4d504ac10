// The hand-written checkpointing choices `bench:train --checkpoint regexes` measures beside the
// planner: what a user would write as a checkpointModules regex for a Llama, to check the goal that
// the planner at a budget is never slower than the best such choice that fits the same budget.
import { median } from './interleave.js';

/** A hand-written choice: checkpointModules(model, new RegExp(regex)). */
export interface RegexChoice {
  /** A short name for the logs and the JSON ('layers 0-1 + mlp 2-3'). */
  name: string;
  regex: string;
}

const alt = (xs: readonly number[]) => (xs.length === 1 ? `${xs[0]}` : `(${xs.join('|')})`);
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
const span = (xs: readonly number[]) => (xs.length === 1 ? `${xs[0]}` : `${xs[0]}-${xs[xs.length - 1]}`);

/**
 * The choices for a Llama of `layers` decoder layers (module names `layers.N`, `layers.N.selfAttn`,
 * `layers.N.mlp`): every MLP; every attention block; the first k layers (k = 1 .. layers - 1); the
 * first k layers and the MLPs of the rest. Every layer (`^layers\.\d+$`) is the benchmark's own
 * 'layers' mode and is not repeated here.
 */
export function regexChoices(layers: number): RegexChoice[] {
  if (!Number.isInteger(layers) || layers < 1) throw new Error(`regexChoices needs a positive whole number of layers, got ${layers}`);
  const out: RegexChoice[] = [
    { name: 'every mlp', regex: '^layers\\.\\d+\\.mlp$' },
    { name: 'every selfAttn', regex: '^layers\\.\\d+\\.selfAttn$' },
  ];
  for (let k = 1; k < layers; k++) out.push({ name: `layers ${span(range(0, k))}`, regex: `^layers\\.${alt(range(0, k))}$` });
  for (let k = 1; k < layers; k++) {
    out.push({ name: `layers ${span(range(0, k))} + mlp ${span(range(k, layers))}`, regex: `^layers\\.${alt(range(0, k))}$|^layers\\.${alt(range(k, layers))}\\.mlp$` });
  }
  return out;
}

/** One measured arm: its step times (one a round, paired with every other arm's) and its median peak. */
export interface MeasuredChoice {
  name: string;
  stepMs: readonly number[];
  peakBytes: number;
}

/**
 * The fastest of the choices whose peak fits `budgetBytes`: the smallest median step time (the
 * rounds are paired, so medians compare fairly); undefined when none fits.
 */
export function fastestFitting<T extends MeasuredChoice>(choices: readonly T[], budgetBytes: number): T | undefined {
  let best: T | undefined, bestMs = Infinity;
  for (const c of choices) {
    if (c.peakBytes > budgetBytes || c.stepMs.length === 0) continue;
    const ms = median(c.stepMs);
    if (ms < bestMs) { best = c; bestMs = ms; }
  }
  return best;
}
