// A training report as ONE self-contained HTML file: inline CSS and SVG charts (src/report/charts.ts),
// a summary table, the generated sample and the per-step records as inert JSON; a Content-Security-
// Policy that forbids every request. Written by `memfit train --report` and the demo page's "Save
// report" button. Browser-safe.
import { memoryTimelineChart, trainingCharts, tradeoffChart, type ChartStep, type TimelinePoint, type TradeoffPoint, type ValidationPoint } from './charts.js';

/** The <meta name="generator"> content that marks a file as a memfit report (and so replaceable). */
export const REPORT_GENERATOR = 'memfit training report';
/** The same for a checkpoint plan report (`memfit plan --report`). */
export const PLAN_REPORT_GENERATOR = 'memfit plan report';

export interface TrainingReportData {
  title?: string;
  /** Rows of the summary table: [label, value]. */
  summary: readonly (readonly [string, string])[];
  steps: readonly ChartStep[];
  validation?: readonly ValidationPoint[];
  /** Text the model generated at the end. */
  sample?: string;
  /** When the run ended (default: now). */
  date?: Date;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const STYLE = `
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px; color: #222; background: #f4f5f7; }
h1 { font-size: 20px; margin: 0 0 4px; }
.when { color: #666; font-size: 13px; margin-bottom: 16px; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
.charts svg { max-width: 100%; height: auto; border: 1px solid #ddd; border-radius: 6px; background: #fff; }
table { border-collapse: collapse; background: #fff; margin: 16px 0; font-size: 13px; }
td, th { border: 1px solid #ddd; padding: 4px 10px; vertical-align: top; }
th { background: #eef0f3; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
td:first-child { color: #555; white-space: nowrap; }
pre { white-space: pre-wrap; background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 10px; max-width: 1000px; font-size: 13px; }
`;

/**
 * The page both reports share: generator and CSP meta tags, the title, the date, a summary table,
 * the charts, what follows them, and the records as JSON in an inert script element ('<' escaped
 * so that no string can close it).
 */
function reportPage(generator: string, title: string, date: Date | undefined, summary: readonly (readonly [string, string])[], charts: readonly string[], after: string, records: unknown): string {
  const rows = summary.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join('\n');
  const json = JSON.stringify(records).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="generator" content="${generator}">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${esc(title)}</h1>
<div class="when">${esc((date ?? new Date()).toISOString())}</div>
<table>
${rows}
</table>
<div class="charts">
${charts.join('\n')}
</div>
${after}<script type="application/json" id="memfit-records">${json}</script>
</body>
</html>
`;
}

/** The report document. */
export function trainingReportHtml(data: TrainingReportData): string {
  const charts = trainingCharts(data.steps, data.validation ?? []);
  const sample = data.sample ? `<h2 style="font-size:16px">Generated text</h2>\n<pre>${esc(data.sample)}</pre>\n` : '';
  return reportPage(REPORT_GENERATOR, data.title ?? 'memfit training report', data.date, data.summary, [charts.loss, charts.throughput, charts.memory], sample,
    { steps: data.steps, validation: data.validation ?? [] });
}

const headOf = (generator: string): RegExp => new RegExp(`^<!doctype html>\\s*<html[^>]*>\\s*<head>\\s*<meta charset="utf-8">\\s*<meta name="generator" content="${generator}">`, 'i');
const HEAD = headOf(REPORT_GENERATOR);
const PLAN_HEAD = headOf(PLAN_REPORT_GENERATOR);

/** True when `head` (the start of a file) is a training report this module wrote. */
export function isTrainingReportHtml(head: string): boolean {
  return HEAD.test(head);
}

/** True when `head` is any report this module writes (a training report or a plan report). */
export function isMemfitReportHtml(head: string): boolean {
  return HEAD.test(head) || PLAN_HEAD.test(head);
}

/** A table of a plan report: a caption, column names, rows of cells (numbers right-aligned). */
export interface ReportTable {
  caption: string;
  columns: readonly string[];
  rows: readonly (readonly (string | number)[])[];
}

export interface PlanReportData {
  title?: string;
  summary: readonly (readonly [string, string])[];
  tables: readonly ReportTable[];
  /** The trade-off chart's points (charts.ts tradeoffChart). */
  tradeoff: { sets: readonly TradeoffPoint[]; front: readonly TradeoffPoint[]; measured?: readonly TradeoffPoint[]; chosen?: TradeoffPoint | null };
  /** Memory timelines of one training step (unplanned, planned). */
  timelines: readonly { title: string; points: readonly TimelinePoint[] }[];
  /** Anything to keep as inert JSON for re-plotting (the profile and plan). */
  records?: unknown;
  date?: Date;
}

function tableHtml(t: ReportTable): string {
  const head = `<tr>${t.columns.map((c) => `<th>${esc(c)}</th>`).join('')}</tr>`;
  const rows = t.rows.map((r) => `<tr>${r.map((v) => (typeof v === 'number' ? `<td class="num">${esc(String(v))}</td>` : `<td>${esc(v)}</td>`)).join('')}</tr>`).join('\n');
  return `<table data-table="${esc(t.caption)}">\n<caption>${esc(t.caption)}</caption>\n${head}\n${rows}\n</table>`;
}

/** The checkpoint plan report (`memfit plan --report`): one self-contained file, as the training report. */
export function planReportHtml(data: PlanReportData): string {
  const charts = [tradeoffChart(data.tradeoff, { width: 720, height: 380 }), ...data.timelines.map((t) => memoryTimelineChart(t.points, { title: t.title, width: 720, height: 320 }))];
  const tables = data.tables.map(tableHtml).join('\n');
  return reportPage(PLAN_REPORT_GENERATOR, data.title ?? 'memfit checkpoint plan', data.date, data.summary, charts, tables ? `${tables}\n` : '', data.records ?? null);
}
