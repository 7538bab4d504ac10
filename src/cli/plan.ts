// `memfit plan --config <name> --budget <bytes | %>`: profiles a Llama config's training step on a
// sample batch (each decoder layer and its attention and MLP blocks checkpointed alone, plainly
// and under the saveMatmuls policy), chooses what to checkpoint to fit the budget at the least
// added time, applies the plan, measures it, and prints the candidates, the plan and the
// predicted/measured peak and step time; with --report, an HTML page with the trade-off chart
// (memory saved vs throughput lost, Pareto front) and the memory timelines of one step.
import { Option, type Command } from 'commander';
import { createBackend } from '../backend/select.js';
import { ByteTextDataset } from '../data/byte_text.js';
import { loadSotuText } from '../data/sotu.js';
import { Llama } from '../nn/llama.js';
import { MemoryBudgetError, parseMemoryBudget, planCheckpoints, planSets, type CheckpointPlan } from '../recompute/plan.js';
import { planReportHtml, type PlanReportData } from '../report/html.js';
import { Generator } from '../random.js';
import { Tensor } from '../tensor/tensor.js';
import { checkBatchFits, MEDIUM_LLAMA, TINY_LLAMA, type TrainConfig } from '../train/language_model.js';
import { checkOutputPath } from '../io/fs_sync.js';
import { CliError } from './format.js';
import { humanBytes, table } from './inspect.js';
import { checkReportTarget, writeReportFile } from './report.js';

/** The configs `memfit plan` knows. */
export const PLAN_CONFIGS: Readonly<Record<string, TrainConfig>> = { tiny: TINY_LLAMA, medium: MEDIUM_LLAMA };

export interface PlanCommandOptions {
  config: string;
  budget: string;
  backend: 'auto' | 'wasm' | 'webgpu';
  batchSize?: number;
  seqLen?: number;
  seed: number;
  /** Timed steps per configuration. */
  repeats: number;
  report?: string;
  force?: boolean;
  json?: boolean;
}

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
const ms = (x: number): string => `${x.toFixed(1)} ms`;
const signedMs = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(1)} ms`;

/** The planned timeline's title: the chosen candidates, or their count when the names do not fit. */
function plannedTitle(plan: CheckpointPlan): string {
  const names = plan.chosen.map((c) => c.name).join(', ');
  const title = `One training step, planned (${names || 'nothing checkpointed'})`;
  return title.length <= 72 ? title : `One training step, planned (${plan.chosen.length} checkpoints: see the summary)`;
}

/** The report's data for a plan (exported for tests). */
export function planReportData(plan: CheckpointPlan, summary: readonly (readonly [string, string])[]): PlanReportData {
  const p = plan.profile, base = p.baseline;
  const lost = (added: number): number => added / (base.stepMs + added); // fraction of tokens/s lost
  const { sets, front } = planSets(p);
  const chosen = front.find((s) => s.names.join() === plan.chosen.map((c) => c.name).join()) ?? null;
  return {
    title: 'memfit checkpoint plan',
    summary,
    tradeoff: {
      sets: sets.map((s) => ({ bytesSaved: base.peakBytes - s.predictedPeakBytes, throughputLost: lost(Math.max(0, s.msAdded)) })),
      front: front.map((s) => ({ bytesSaved: base.peakBytes - s.predictedPeakBytes, throughputLost: lost(Math.max(0, s.msAdded)) })),
      measured: [...p.candidates, ...p.combinations].map((c) => ({ bytesSaved: c.bytesSaved, throughputLost: lost(c.costMs) })),
      chosen: chosen && { bytesSaved: base.peakBytes - (plan.measuredPeakBytes ?? chosen.predictedPeakBytes), throughputLost: lost(chosen.msAdded) },
    },
    timelines: [
      { title: 'One training step, unplanned: memory by category', points: p.timeline.points },
      ...(plan.measuredTimeline ? [{ title: plannedTitle(plan), points: plan.measuredTimeline.points }] : []),
    ],
    tables: [
      {
        caption: 'Candidates, each checkpointed alone (measured)',
        columns: ['candidate', 'saved activations removed (bytes)', 'peak (bytes)', 'peak saved (bytes)', 'module forward (ms)', 'recompute (ms)', 'step time added (ms)'],
        rows: p.candidates.map((c) => [c.name, c.heldBytesSaved, c.peakBytes, c.bytesSaved, Number((p.modules.find((m) => m.name === c.modules[0])?.forwardMs ?? NaN).toFixed(2)), Number(c.recomputeMs.toFixed(2)), Number(c.msAdded.toFixed(2))]),
      },
      {
        caption: 'Combinations: measured peak vs predicted from the candidates alone',
        columns: ['combination', 'measured peak (bytes)', 'predicted peak (bytes)', 'error', 'added time counted (ms)', 'sum of members (ms)', 'step time added (ms)'],
        rows: p.combinations.map((c) => [c.name, c.peakBytes, c.predictedPeakBytes, pct(c.peakBytes / c.predictedPeakBytes - 1), Number(c.costMs.toFixed(2)), Number(c.predictedMsAdded.toFixed(2)), Number(c.msAdded.toFixed(2))]),
      },
    ],
    records: {
      baseline: base, baselineAtPeak: p.baselineAtPeak, modules: p.modules, candidates: p.candidates, combinations: p.combinations,
      plan: { budgetBytes: plan.budgetBytes, chosen: plan.chosen.map((c) => c.name), wrapped: plan.wrapped, predictedPeakBytes: plan.predictedPeakBytes, predictedStepMs: plan.predictedStepMs, measuredPeakBytes: plan.measuredPeakBytes, measuredStepMs: plan.measuredStepMs, method: plan.method },
    },
  };
}

/** Runs `memfit plan`; `out` receives the lines. */
export async function planCommand(opts: PlanCommandOptions, out: (line: string) => void): Promise<void> {
  const config = PLAN_CONFIGS[opts.config];
  if (!config) throw new CliError(`unknown --config ${JSON.stringify(opts.config)}; use one of ${Object.keys(PLAN_CONFIGS).join(', ')}`);
  try { parseMemoryBudget(opts.budget); } catch (e) { throw new CliError(`--budget: ${(e as Error).message}`); }
  for (const k of ['batchSize', 'seqLen'] as const) {
    const v = opts[k];
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 1)) throw new CliError(`--${k === 'batchSize' ? 'batch-size' : 'seq-len'} must be a positive integer, got ${v}`);
  }
  if (!Number.isSafeInteger(opts.repeats) || opts.repeats < 1) throw new CliError(`--repeats must be a positive integer, got ${opts.repeats}`);
  if (!Number.isSafeInteger(opts.seed) || opts.seed < 0) throw new CliError(`--seed must be an integer >= 0, got ${opts.seed}`);
  // The report path, the data and the batch size are checked before any work.
  if (opts.report !== undefined) {
    await checkOutputPath(opts.report, '--report');
    checkReportTarget(opts.report, { force: opts.force });
  }
  const batchSize = opts.batchSize ?? config.batchSize, seqLen = opts.seqLen ?? config.seqLen;
  const data = new ByteTextDataset(new TextEncoder().encode(loadSotuText({ fromYear: 1990 })));
  data.checkWindow(seqLen);
  const modelConfig = { ...config.model, maxPositionEmbeddings: Math.max(config.model.maxPositionEmbeddings, seqLen) };
  const backend = await createBackend({ backend: opts.backend, log: opts.json ? null : (l) => out(l) });
  checkBatchFits(backend, batchSize, seqLen);
  const model = new Llama(modelConfig, { backend, generator: new Generator(opts.seed) });
  const b = data.batch(new Generator(opts.seed + 1), batchSize, seqLen);
  const ids = Tensor.from(backend, b.ids, [batchSize, seqLen], { dtype: 'int32', category: 'data', label: 'ids' });
  const targets = Tensor.from(backend, b.targets, [batchSize, seqLen], { dtype: 'int32', category: 'data', label: 'targets' });
  const m = modelConfig;
  const describe = `Llama ${opts.config}: ${m.numHiddenLayers} layers, hidden ${m.hiddenSize}, ${m.numAttentionHeads} heads, intermediate ${m.intermediateSize}, vocabulary ${m.vocabSize}; batch ${batchSize} x ${seqLen}; ${backend.description}`;
  if (!opts.json) out(`memfit plan: ${describe}`);
  let plan: CheckpointPlan;
  try {
    try {
      plan = await planCheckpoints(model, { ids, targets }, { budget: opts.budget, repeats: opts.repeats });
    } catch (e) {
      if (e instanceof MemoryBudgetError) throw new CliError(e.message);
      throw e;
    }
    plan.undo();
  } finally {
    ids.dispose(); targets.dispose(); model.dispose(); backend.destroy();
  }
  const p = plan.profile, base = p.baseline;
  const err = plan.measuredPeakBytes === undefined ? NaN : plan.measuredPeakBytes / plan.predictedPeakBytes - 1;
  const summary: [string, string][] = [
    ['model', describe],
    ['unplanned step', `peak ${humanBytes(base.peakBytes)} (activations ${humanBytes(p.baselineAtPeak.activation)} of it), saved activations ${humanBytes(base.heldBytes)}, ${ms(base.stepMs)}`],
    ['budget', `${opts.budget} = ${humanBytes(plan.budgetBytes)} (${plan.budgetBytes} bytes) of peak memory`],
    ['plan', `${plan.chosen.length ? plan.chosen.map((c) => c.name).join(', ') : 'nothing to checkpoint (the unplanned step fits)'} (${plan.method} search)`],
    ['predicted', `peak ${humanBytes(plan.predictedPeakBytes)} (${plan.predictedPeakBytes} bytes), step ${ms(plan.predictedStepMs)}`],
    ['measured', `peak ${humanBytes(plan.measuredPeakBytes!)} (${plan.measuredPeakBytes} bytes, ${err >= 0 ? '+' : ''}${pct(err)} vs predicted), step ${ms(plan.measuredStepMs!)} (${pct(plan.measuredStepMs! / base.stepMs - 1)} vs unplanned)`],
    ['smallest reachable peak', `${humanBytes(plan.minimumPeakBytes)} (${plan.minimumPeakBytes} bytes)`],
    ['timing', p.timing],
  ];
  if (opts.report !== undefined) await writeReportFile(opts.report, planReportHtml(planReportData(plan, summary)), { force: opts.force });
  if (opts.json) {
    out(JSON.stringify({
      config: opts.config, backend: p.backend, budgetBytes: plan.budgetBytes, unplanned: base, unplannedAtPeak: p.baselineAtPeak,
      modules: p.modules, candidates: p.candidates, combinations: p.combinations,
      plan: { chosen: plan.chosen.map((c) => c.name), wrapped: plan.wrapped, method: plan.method, predictedPeakBytes: plan.predictedPeakBytes, predictedStepMs: plan.predictedStepMs, measuredPeakBytes: plan.measuredPeakBytes, measuredStepMs: plan.measuredStepMs, minimumPeakBytes: plan.minimumPeakBytes },
      ...(opts.report !== undefined ? { report: opts.report } : {}),
    }, null, 2));
    return;
  }
  out(`unplanned step: peak ${humanBytes(base.peakBytes)}, saved activations ${humanBytes(base.heldBytes)}, ${ms(base.stepMs)}`);
  out('');
  out('candidates, each checkpointed alone (measured):');
  const rows = [['candidate', 'activations removed', 'peak', 'peak saved', 'forward', 'recompute', 'step added']];
  for (const c of p.candidates) {
    const fwd = p.modules.find((x) => x.name === c.modules[0])?.forwardMs ?? NaN;
    rows.push([c.name, humanBytes(c.heldBytesSaved), humanBytes(c.peakBytes), pct(c.bytesSaved / base.peakBytes), ms(fwd), ms(c.recomputeMs), signedMs(c.msAdded)]);
  }
  for (const l of table(rows, [false, true, true, true, true, true, true])) out(`  ${l}`);
  out('');
  out('combinations (independent and cumulative? measured peak vs predicted from the candidates alone):');
  const crow = [['combination', 'measured peak', 'predicted', 'error', 'added (counted)', 'sum alone', 'step added']];
  for (const c of p.combinations) crow.push([c.name, humanBytes(c.peakBytes), humanBytes(c.predictedPeakBytes), pct(c.peakBytes / c.predictedPeakBytes - 1), ms(c.costMs), ms(c.predictedMsAdded), signedMs(c.msAdded)]);
  for (const l of table(crow, [false, true, true, true, true, true, true])) out(`  ${l}`);
  out('');
  for (const [k, v] of summary.slice(2, 7)) out(`${k}: ${v}`);
  if (opts.report !== undefined) out(`report: ${opts.report}`);
}

/** Adds `memfit plan` to the program. */
export function addPlanCommand(program: Command, out: (line: string) => void, int: (name: string) => (v: string) => number): void {
  program
    .command('plan')
    .description('choose what to checkpoint (activation recomputation) so that a training step of a Llama config fits a memory budget at the least added time')
    .addOption(new Option('--config <name>', 'model and batch').choices(Object.keys(PLAN_CONFIGS)).default('tiny'))
    .requiredOption('--budget <bytes|%>', 'peak memory of a training step: bytes (268435456, 256MiB, 1.5GB) or a percentage of the unplanned activation memory at the peak (50%)')
    .addOption(new Option('--backend <kind>', 'auto: a hardware GPU if present, else wasm').choices(['auto', 'wasm', 'webgpu']).default('wasm'))
    .option('--batch-size <n>', 'sequences per batch (default: the config\'s)', int('--batch-size'))
    .option('--seq-len <n>', 'tokens per sequence (default: the config\'s)', int('--seq-len'))
    .option('--seed <n>', 'seed of the weights and the sample batch', int('--seed'), 0)
    .option('--repeats <n>', 'timed steps per configuration (medians)', int('--repeats'), 5)
    .option('--report <file>', 'write an HTML report: memory saved vs throughput lost with the Pareto front, and memory timelines of one step (replaced atomically)')
    .option('--force', 'overwrite an existing --report file that is not a memfit report', false)
    .option('--json', 'print one JSON object instead of the tables', false)
    .addHelpText('after', '\nExample:\n  memfit plan --config medium --budget 50% --report plan.html')
    .action(async (o: PlanCommandOptions) => {
      await planCommand(o, out);
    });
}
