// `memfit convert-model IN.safetensors OUT.safetensors --to DTYPE`: converts a model file's weights to
// float16 / bfloat16 / scaled float8 / MX (or back to float32), streaming, with a per-tensor error report.
import { Option, type Command } from 'commander';
import type cliProgress from 'cli-progress';
import type { Rounding } from '../dtype/encode.js';
import { CONVERT_TARGETS, type ConvertReport, type ScaleKind } from '../io/convert_model.js';
import { convertSafetensors } from '../io/convert_model_file.js';
import { CliError } from './format.js';
import { humanBytes, jsonText, num, progressBar, table } from './inspect.js';

/** Options of the command, as commander gives them. */
interface ConvertModelCliOptions {
  to: string;
  scale?: ScaleKind;
  blockSize?: number;
  include?: string[];
  exclude?: string[];
  rounding: Rounding;
  seed?: bigint;
  saturate?: boolean;
  json?: boolean;
  quiet?: boolean;
  force?: boolean;
}

const pct = (x: number): string => `${(100 * x).toFixed(x > 0 && x < 0.001 ? 4 : 2)}%`;

/** The report as lines of text. */
export function convertReportLines(input: string, output: string, r: ConvertReport): string[] {
  const lines = [`${input} -> ${output}: to ${r.target.label}${r.seed !== undefined ? `, stochastic rounding seed ${r.seed}` : ''}`, ''];
  const rows = [['name', 'shape', 'from', 'to', 'max abs err', 'rel RMS err', 'clamped', 'non-finite']];
  for (const t of r.tensors) {
    const shape = `[${t.shape.join(', ')}]`;
    if (t.action === 'copied') rows.push([t.name, shape, t.from, 'copied', '', '', '', '']);
    else rows.push([t.name, shape, t.from, t.to, num(t.maxAbsError!), num(t.relRmsError!), `${t.clamped} (${pct(t.clampedShare!)})`, String(t.nonFinite)]);
  }
  lines.push(...table(rows, [false, false, false, false, true, true, true, true]));
  lines.push('', `size: ${humanBytes(r.bytesBefore)} -> ${humanBytes(r.bytesAfter)} (${pct(r.bytesAfter / Math.max(r.bytesBefore, 1))}); ${r.converted} tensor${r.converted === 1 ? '' : 's'} converted, ${r.copied} copied`);
  return lines;
}

const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];

/** Adds `memfit convert-model` to `program`; `parseSeed` and `rounding` are the CLI's own option helpers. */
export function addConvertModelCommand(program: Command, deps: { out: (line: string) => void; parseSeed: (text: string) => bigint; rounding: () => Option }): void {
  const { out } = deps;
  program
    .command('convert-model')
    .description('convert the weights of a safetensors model file to float16, bfloat16, scaled float8 or MX (or back to float32), streaming')
    .argument('<input>', 'a .safetensors file')
    .argument('<output>', 'the converted file (replaced atomically; a device or FIFO is written in place; never the input)')
    .requiredOption('--to <dtype>', `target: ${CONVERT_TARGETS.join(', ')} (aliases work: bf16, e4m3, fp4, ...)`)
    .addOption(new Option('--scale <kind>', 'float8 scaling: one float32 scale per tensor, per row (output channel), MX blocks, or none').choices(['tensor', 'row', 'mx', 'none']))
    .option('--block-size <n>', 'MX block size (default 32; MX targets only)', (v) => {
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < 1) throw new CliError(`--block-size must be a positive integer, got ${JSON.stringify(v)}`);
      return n;
    })
    .option('--include <regex>', 'convert the float tensors whose names match (repeatable; default: every 2-D float tensor)', collect)
    .option('--exclude <regex>', 'but not those whose names match (repeatable)', collect)
    .addOption(deps.rounding())
    .option('--seed <n>', 'seed for --rounding stochastic', deps.parseSeed)
    .option('--saturate', 'clamp overflow and ±inf to ±max (MX always clamps)')
    .option('--json', 'print the report as JSON')
    .option('-q, --quiet', 'no progress bar')
    .option('--force', 'replace an existing output file that is not a model memfit converted')
    .addHelpText('after', `
Scales are stored next to their tensor as <name>_scale (x.weight -> x.weight_scale): float32 [1] per
tensor or [..., 1] per row for float8 (value = code * scale), E8M0 blocks [..., ceil(K/32)] for MX.
1-D tensors (norms, biases) and non-float tensors are copied unchanged unless --include names them.
--to float32 dequantises a converted file.

Examples:
  memfit convert-model model.safetensors model-fp8.safetensors --to float8_e4m3fn --scale row --exclude lm_head
  memfit convert-model model.safetensors model-bf16.safetensors --to bf16
  memfit convert-model model-fp8.safetensors model-f32.safetensors --to float32`)
    .action(async (input: string, output: string, opts: ConvertModelCliOptions) => {
      let bar: cliProgress.SingleBar | undefined;
      let started = false;
      try {
        const report = await convertSafetensors(input, output, {
          to: opts.to, scale: opts.scale, blockSize: opts.blockSize, include: opts.include, exclude: opts.exclude,
          rounding: opts.rounding, seed: opts.seed, saturate: opts.saturate, handleSignals: true, overwrite: opts.force,
          onProgress: (done, total) => {
            if (!started) {
              started = true;
              bar = progressBar('memfit convert-model', total, !opts.quiet);
            }
            bar?.update(done, { done: humanBytes(done) });
          },
        });
        bar?.stop();
        bar = undefined;
        if (opts.json) out(jsonText(report));
        else for (const l of convertReportLines(input, output, report)) out(l);
      } finally {
        bar?.stop();
      }
    });
}
