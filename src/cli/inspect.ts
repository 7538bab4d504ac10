// `memfit inspect FILE.safetensors`: every tensor (name, dtype, shape, bytes, scale), totals by dtype,
// and with --stats the value statistics and the values each format would overflow or flush to zero.
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { STAT_DTYPES, type InspectReport } from '../io/convert_model.js';
import { inspectSafetensors } from '../io/convert_model_file.js';
import { terminalSafe } from './format.js';

/** Shows a progress bar on stderr for inputs larger than this (when stderr is a terminal). */
export const PROGRESS_MIN_BYTES = 4 << 20;

/** A byte count for people: 532 B, 1.5 KiB, 256.0 MiB. */
export function humanBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

/** A number in at most 4 significant digits, or inf / nan. */
export function num(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 1e-3 && a < 1e5 ? String(Number(x.toPrecision(4))) : x.toExponential(3);
}

/**
 * Left-aligned columns (right-aligned where `right[i]`). Cells are measured as printed: with their control
 * characters escaped (terminalSafe, as writeLine prints them), so a row naming a hostile tensor stays aligned.
 */
export function table(rows: string[][], right: boolean[] = []): string[] {
  if (rows.length === 0) return [];
  // A cell is one line: its newlines are escaped too (a tensor named "w\nfake  float64" cannot forge a row).
  const shown = rows.map((r) => r.map((c) => terminalSafe(c ?? '').replace(/\n/g, '\\n')));
  const widths = shown[0].map((_, i) => Math.max(...shown.map((r) => (r[i] ?? '').length)));
  return shown.map((r) => r.map((c, i) => (right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd());
}

/** JSON with non-finite numbers as the strings "Infinity", "-Infinity", "NaN". */
export function jsonText(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? String(x) : x), 2);
}

/** A cli-progress bar on stderr for `total` bytes, or undefined when it should not show. */
export function progressBar(label: string, total: number, show: boolean): cliProgress.SingleBar | undefined {
  if (!show || !process.stderr.isTTY || total <= PROGRESS_MIN_BYTES) return undefined;
  const bar = new cliProgress.SingleBar({
    format: `${label} |{bar}| {percentage}% | {done} / {size} | ETA {eta_formatted}`,
    stream: process.stderr, hideCursor: true, clearOnComplete: true,
  }, cliProgress.Presets.shades_classic);
  bar.start(total, 0, { done: humanBytes(0), size: humanBytes(total) });
  return bar;
}

const SHORT: Record<string, string> = {
  float16: 'f16', bfloat16: 'bf16', float8_e4m3fn: 'e4m3', float8_e5m2: 'e5m2', float6_e3m2fn: 'e3m2', float6_e2m3fn: 'e2m3', float4_e2m1fn: 'e2m1',
};

/** The report as lines of text. */
export function inspectLines(path: string, r: InspectReport): string[] {
  const lines: string[] = [];
  const meta = Object.entries(r.metadata).map(([k, v]) => `${k}=${v.length > 40 ? `${v.slice(0, 37)}...` : v}`);
  lines.push(`${path}: ${r.tensors.length} tensors, ${humanBytes(r.fileBytes)} (header ${humanBytes(r.headerBytes)})${meta.length ? `; metadata: ${meta.join(', ')}` : ''}`);
  if (r.conversion) {
    const last = r.conversion.runs[r.conversion.runs.length - 1];
    lines.push(`converted by memfit ${last?.memfit ?? '?'} to ${last?.target ?? '?'} (${Object.keys(r.conversion.tensors).length} tensors recorded)`);
  }
  const stats = r.tensors.some((t) => t.stats !== undefined);
  const head = ['name', 'dtype', 'shape', 'bytes', 'scale'];
  if (stats) head.push('min', 'max', 'absmax', 'mean', 'std', 'non-finite');
  const rows = [head];
  for (const t of r.tensors) {
    const scale = t.scale ? `per ${t.scale.kind === 'mx' ? `block of ${t.scale.blockSize}` : t.scale.kind}: ${t.scale.tensor}` : t.scaleOf ? `scale of ${t.scaleOf}` : '';
    const row = [t.name, t.dtype, `[${t.shape.join(', ')}]`, humanBytes(t.bytes), scale];
    if (stats) {
      const s = t.stats;
      row.push(...(s ? [num(s.min), num(s.max), num(s.absmax), num(s.mean), num(s.std), String(s.nonFinite)] : ['-', '-', '-', '-', '-', '-']));
    }
    rows.push(row);
  }
  lines.push('', ...table(rows, stats ? [false, false, false, true, false, true, true, true, true, true, true] : [false, false, false, true]));
  if (stats) {
    lines.push('', 'values that would overflow / flush to zero in each format (unscaled, nearest-even):');
    const orows = [['name', ...STAT_DTYPES.map((d) => SHORT[d])]];
    for (const t of r.tensors) {
      if (!t.stats) continue;
      orows.push([t.name, ...STAT_DTYPES.map((d) => `${t.stats!.overflow[d]}/${t.stats!.underflow[d]}`)]);
    }
    lines.push(...table(orows, [false, ...STAT_DTYPES.map(() => true)]));
  }
  lines.push('', r.totals.length ? 'totals by dtype:' : 'totals by dtype: none (no tensors)');
  lines.push(...table(r.totals.map((t) => [t.dtype, `${t.tensors} tensor${t.tensors === 1 ? '' : 's'}`, `${t.elements.toLocaleString('en-US')} elements`, humanBytes(t.bytes)]), [false, true, true, true]));
  return lines;
}

/** Adds `memfit inspect` to `program`. */
export function addInspectCommand(program: Command, out: (line: string) => void): void {
  program
    .command('inspect')
    .description('list the tensors of a safetensors file: name, dtype, shape, bytes, scales; --stats for value statistics')
    .argument('<file>', 'a .safetensors file (read tensor by tensor: it may be larger than memory)')
    .option('--stats', 'min/max/absmax/mean/std, non-finite count, and how many values would overflow or underflow each format (reads all the data)')
    .option('--json', 'print the report as JSON')
    .option('-q, --quiet', 'no progress bar')
    .addHelpText('after', `
Scaled tensors (fp8 with <name>_scale, MX blocks) show statistics of their dequantised values.

Example:
  memfit inspect --stats model.safetensors`)
    .action(async (file: string, opts: { stats?: boolean; json?: boolean; quiet?: boolean }) => {
      let bar: cliProgress.SingleBar | undefined;
      let started = false;
      try {
        const r = await inspectSafetensors(file, {
          stats: !!opts.stats,
          onProgress: (done, total) => {
            if (!started) {
              started = true;
              bar = progressBar('memfit inspect', total, !!opts.stats && !opts.quiet);
            }
            bar?.update(done, { done: humanBytes(done) });
          },
        });
        bar?.stop();
        bar = undefined;
        if (opts.json) out(jsonText(r));
        else for (const l of inspectLines(file, r)) out(l);
      } finally {
        bar?.stop();
      }
    });
}
