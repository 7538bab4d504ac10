// Training charts as self-contained SVG strings (no DOM, no styles from outside: every colour and
// font is an attribute), shared by the demo page (src/demo/page.ts) and `memfit train --report`
// (src/report/html.ts): loss vs step, tokens/s vs step, and memory by category at each step's peak
// as a stacked area. Browser-safe.
import { CATEGORIES, type Category } from '../backend/memory.js';
import type { StepResult } from '../train/language_model.js';

/** What the charts read from each step (a StepResult has it all). */
export type ChartStep = Pick<StepResult, 'step' | 'loss' | 'tokensPerSecond' | 'memory'>;

/** A validation loss measured after `step` optimizer steps. */
export interface ValidationPoint {
  step: number;
  loss: number;
}

export type Point = readonly [number, number];

export interface ChartSeries {
  label: string;
  points: readonly Point[];
  color: string;
  /** 'line' (default), 'markers' (a dot per point, no line) or 'area' (stacked on the areas before it). */
  kind?: 'line' | 'markers' | 'area';
  /** Stroke width (default 1.5). */
  width?: number;
  /** Marker radius of a 'markers' series (default 3.5). */
  radius?: number;
}

export interface ChartOptions {
  /** Identifies the chart (data-chart attribute): 'loss', 'throughput', 'memory'. */
  id: string;
  title: string;
  /** Axis labels, with units. */
  xLabel: string;
  yLabel: string;
  /** A second line under the title (e.g. how the points were averaged). */
  note?: string;
  width?: number;
  height?: number;
  /** Include 0 in the y range (default true). */
  yFromZero?: boolean;
}

/** Okabe-Ito colours (distinguishable with colour-blindness), one per memory category. */
export const CATEGORY_COLORS: Readonly<Record<Category, string>> = {
  parameter: '#0072B2', gradient: '#E69F00', optimizer: '#009E73', activation: '#CC79A7', data: '#56B4E9', temporary: '#D55E00',
};

/** At most this many points a series; longer runs are averaged in buckets of consecutive steps. */
export const MAX_POINTS = 600;

const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

/** The opening of a chart's SVG: the element (data-chart = id, already escaped), its title, white ground, heading and note. */
function chartHead(id: string, W: number, H: number, left: number, title: string, note?: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" class="memfit-chart" data-chart="${id}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(title)}" ${FONT} font-size="12">`,
    `<title>${esc(title)}</title>`,
    `<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${left}" y="20" font-size="14" font-weight="600" fill="#222">${esc(title)}</text>`,
    ...(note ? [`<text x="${left}" y="36" font-size="11" fill="#666">${esc(note)}</text>`] : []),
  ];
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Coordinates with at most 2 decimals (keeps the files small). */
const c = (v: number): string => String(Math.round(v * 100) / 100);

/** Round tick values covering [min, max]: steps of 1, 2 or 5 times a power of ten. */
export function niceTicks(min: number, max: number, count = 5): { ticks: number[]; step: number } {
  if (!(Number.isFinite(min) && Number.isFinite(max))) return { ticks: [0, 1], step: 1 };
  if (max <= min) { const pad = Math.abs(min) > 0 ? Math.abs(min) * 0.1 : 1; min -= pad; max += pad; }
  const raw = (max - min) / count, mag = 10 ** Math.floor(Math.log10(raw)), n = raw / mag;
  const step = (n < 1.5 ? 1 : n < 3 ? 2 : n < 7 ? 5 : 10) * mag;
  const lo = Math.floor(min / step + 1e-9) * step, hi = Math.ceil(max / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let v = lo; v <= hi + step / 2; v += step) ticks.push(Math.abs(v) < step / 1e6 ? 0 : v);
  return { ticks, step };
}

/** A tick label: as many decimals as the tick step needs, thousands grouped. */
function tickLabel(v: number, step: number): string {
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

/** Means of `points` in buckets of `size` consecutive points (x: the bucket's last x). */
function bucketMeans(points: readonly Point[], size: number): Point[] {
  if (size <= 1) return points.slice();
  const out: Point[] = [];
  for (let i = 0; i < points.length; i += size) {
    const b = points.slice(i, i + size);
    out.push([b[b.length - 1][0], b.reduce((a, p) => a + p[1], 0) / b.length]);
  }
  return out;
}

/** Centred moving average over `window` points (fewer at the ends): no lag behind the raw curve. */
function movingAverage(points: readonly Point[], window: number): Point[] {
  const half = Math.floor(window / 2), prefix = [0];
  for (const p of points) prefix.push(prefix[prefix.length - 1] + p[1]);
  return points.map(([x], i) => {
    const lo = Math.max(0, i - half), hi = Math.min(points.length - 1, i + half);
    return [x, (prefix[hi + 1] - prefix[lo]) / (hi - lo + 1)] as Point;
  });
}

/** The moving-average window for n steps: about a twentieth of the run, odd, at least 3. */
const smoothingWindow = (n: number): number => 2 * Math.max(1, Math.floor(n / 40)) + 1;

/**
 * An SVG line (or stacked-area) chart with axes, grid, tick labels, axis labels and a legend. Each
 * series is one <path data-series="label"> whose d lists its points (M x y L x y ...).
 */
export function lineChart(series: readonly ChartSeries[], options: ChartOptions): string {
  const W = options.width ?? 640, H = options.height ?? 300;
  const legendRows = legendLayout(series, W - 80);
  const legendTop = 30 + (options.note ? 16 : 0);
  const top = legendTop + legendRows.length * 18 + 6;
  const left = 66, right = 18, bottom = 46;
  const pw = W - left - right, ph = H - top - bottom;

  // Stacked areas: each area series sits on the sum of the ones before it (same x values).
  const drawn = series.map((s) => ({ ...s, lower: undefined as Point[] | undefined, upper: s.points.slice() as Point[] }));
  let base: Point[] | undefined;
  for (const s of drawn) {
    if (s.kind !== 'area') continue;
    if (base) {
      if (base.length !== s.points.length) throw new RangeError(`stacked series '${s.label}' has ${s.points.length} points, the one below has ${base.length}`);
      s.lower = base;
      s.upper = s.points.map(([x, y], i) => [x, y + base![i][1]] as Point);
    } else {
      s.lower = s.points.map(([x]) => [x, 0] as Point);
    }
    base = s.upper;
  }
  const all = drawn.flatMap((s) => s.upper).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const parts: string[] = [];
  parts.push(...chartHead(esc(options.id), W, H, left, options.title, options.note));
  legendRows.forEach((row, r) => {
    const y = legendTop + r * 18 + 12;
    for (const { s, x } of row) {
      const sx = left + x;
      if (s.kind === 'markers') parts.push(`<circle cx="${sx + 7}" cy="${y - 4}" r="3.5" fill="${s.color}"/>`);
      else if (s.kind === 'area') parts.push(`<rect x="${sx}" y="${y - 9}" width="14" height="10" fill="${s.color}" fill-opacity="0.75"/>`);
      else parts.push(`<line x1="${sx}" y1="${y - 4}" x2="${sx + 14}" y2="${y - 4}" stroke="${s.color}" stroke-width="${s.width ?? 2}"/>`);
      parts.push(`<text x="${sx + 18}" y="${y}" fill="#333">${esc(s.label)}</text>`);
    }
  });
  parts.push(`<rect x="${left}" y="${top}" width="${pw}" height="${ph}" fill="#fafafa" stroke="#ccc"/>`);

  if (all.length === 0) {
    parts.push(`<text x="${left + pw / 2}" y="${top + ph / 2}" text-anchor="middle" fill="#888">no data yet</text>`);
  } else {
    const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
    const xt = niceTicks(Math.min(...xs), Math.max(...xs), 6);
    const yMin = options.yFromZero === false ? Math.min(...ys) : Math.min(0, ...ys);
    const yt = niceTicks(yMin, Math.max(...ys), 5);
    const x0 = Math.min(Math.min(...xs), xt.ticks[0]), x1 = Math.max(...xs) > x0 ? Math.max(...xs) : x0 + 1;
    const y0 = yt.ticks[0], y1 = yt.ticks[yt.ticks.length - 1];
    const X = (v: number): number => left + ((v - x0) / (x1 - x0)) * pw;
    const Y = (v: number): number => top + ph - ((v - y0) / (y1 - y0)) * ph;
    for (const t of yt.ticks) {
      parts.push(`<line x1="${left}" y1="${c(Y(t))}" x2="${left + pw}" y2="${c(Y(t))}" stroke="#e4e4e4"/>`);
      parts.push(`<text x="${left - 6}" y="${c(Y(t) + 4)}" text-anchor="end" fill="#444">${tickLabel(t, yt.step)}</text>`);
    }
    for (const t of xt.ticks) {
      if (t < x0 - 1e-9 || t > x1 + 1e-9) continue;
      parts.push(`<line x1="${c(X(t))}" y1="${top + ph}" x2="${c(X(t))}" y2="${top + ph + 5}" stroke="#888"/>`);
      parts.push(`<text x="${c(X(t))}" y="${top + ph + 18}" text-anchor="middle" fill="#444">${tickLabel(t, xt.step)}</text>`);
    }
    for (const s of drawn) {
      const pts = s.upper.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
      if (pts.length === 0) continue;
      const d = pts.map(([x, y], i) => `${i ? 'L' : 'M'}${c(X(x))} ${c(Y(y))}`).join('');
      const name = esc(s.label);
      if (s.kind === 'area') {
        const low = s.lower!.slice().reverse().map(([x, y]) => `L${c(X(x))} ${c(Y(y))}`).join('');
        parts.push(`<path data-area="${name}" d="${d}${low}Z" fill="${s.color}" fill-opacity="0.75" stroke="none"/>`);
        parts.push(`<path data-series="${name}" d="${d}" fill="none" stroke="${s.color}" stroke-width="${s.width ?? 1}"/>`);
      } else if (s.kind === 'markers') {
        parts.push(`<path data-series="${name}" d="${d}" fill="none" stroke="none"/>`);
        for (const [x, y] of pts) parts.push(`<circle cx="${c(X(x))}" cy="${c(Y(y))}" r="${s.radius ?? 3.5}" fill="${s.color}" stroke="#fff" stroke-width="1"/>`);
      } else {
        parts.push(`<path data-series="${name}" d="${d}" fill="none" stroke="${s.color}" stroke-width="${s.width ?? 1.5}" stroke-linejoin="round"/>`);
      }
    }
  }
  parts.push(`<text x="${left + pw / 2}" y="${H - 8}" text-anchor="middle" fill="#333">${esc(options.xLabel)}</text>`);
  parts.push(`<text transform="translate(16 ${top + ph / 2}) rotate(-90)" text-anchor="middle" fill="#333">${esc(options.yLabel)}</text>`);
  parts.push('</svg>');
  return parts.join('');
}

/** Legend entries laid out in rows that fit `width` (x offsets from the plot's left edge). */
function legendLayout(series: readonly ChartSeries[], width: number): { s: ChartSeries; x: number }[][] {
  const rows: { s: ChartSeries; x: number }[][] = [[]];
  let x = 0;
  for (const s of series) {
    const w = 18 + s.label.length * 6.6 + 14;
    if (x > 0 && x + w > width) { rows.push([]); x = 0; }
    rows[rows.length - 1].push({ s, x });
    x += w;
  }
  return rows[0].length ? rows : [];
}

/** Bucket size so that a series of n points draws at most MAX_POINTS, and the note that says so. */
function bucketing(n: number): { size: number; note?: string } {
  const size = Math.ceil(n / MAX_POINTS);
  return size > 1 ? { size, note: `each point is the mean of ${size} steps` } : { size: 1 };
}

/** Training loss per step (and its moving average) and validation loss, vs step. */
export function lossChart(steps: readonly ChartStep[], validation: readonly ValidationPoint[] = [], size: { width?: number; height?: number } = {}): string {
  const b = bucketing(steps.length);
  const raw: Point[] = steps.map((s) => [s.step, s.loss]), w = smoothingWindow(raw.length);
  const series: ChartSeries[] = [
    { label: 'train loss', points: bucketMeans(raw, b.size), color: '#9ecae1', width: 1 },
    { label: `train, mean of ${w} steps`, points: bucketMeans(movingAverage(raw, w), b.size), color: '#0072B2', width: 2 },
  ];
  if (validation.length) series.push({ label: 'validation loss', points: validation.map((v) => [v.step, v.loss]), color: '#D55E00', kind: 'markers' });
  return lineChart(series, { id: 'loss', title: 'Loss', note: b.note, xLabel: 'step', yLabel: 'cross-entropy (nats per byte)', ...size });
}

/** Tokens (bytes) per second of each step, vs step. */
export function throughputChart(steps: readonly ChartStep[], size: { width?: number; height?: number } = {}): string {
  const b = bucketing(steps.length);
  const raw: Point[] = steps.map((s) => [s.step, s.tokensPerSecond]), w = smoothingWindow(raw.length);
  return lineChart([
    { label: 'tokens/s per step', points: bucketMeans(raw, b.size), color: '#a1d99b', width: 1 },
    { label: `mean of ${w} steps`, points: bucketMeans(movingAverage(raw, w), b.size), color: '#009E73', width: 2 },
  ], { id: 'throughput', title: 'Throughput', note: b.note ?? 'step 1 includes compiling kernels and first-touch allocation', xLabel: 'step', yLabel: 'tokens/s', ...size });
}

/** The binary unit that shows `maxBytes` as a number between 1 and 1024. */
export function byteUnit(maxBytes: number): { unit: string; scale: number } {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (i < units.length - 1 && maxBytes >= 1024 ** (i + 1)) i++;
  return { unit: units[i], scale: 1024 ** i };
}

/** Memory allocated by category at each step's peak, stacked (the top edge is the step's peak). */
export function memoryChart(steps: readonly ChartStep[], size: { width?: number; height?: number } = {}): string {
  const b = bucketing(steps.length);
  const peak = Math.max(0, ...steps.map((s) => CATEGORIES.reduce((a, k) => a + s.memory[k], 0)));
  const { unit, scale } = byteUnit(peak);
  const series: ChartSeries[] = CATEGORIES.map((k) => ({
    label: k, color: CATEGORY_COLORS[k], kind: 'area' as const,
    points: bucketMeans(steps.map((s) => [s.step, s.memory[k] / scale] as Point), b.size),
  }));
  return lineChart(series, {
    id: 'memory', title: 'Memory by category at each step\u2019s peak', note: b.note ?? 'stacked: the top edge is the peak of memoryAllocated() in the step',
    xLabel: 'step', yLabel: `allocated (${unit})`, ...size,
  });
}

/** The three charts of a training run. */
export function trainingCharts(steps: readonly ChartStep[], validation: readonly ValidationPoint[] = [], size: { width?: number; height?: number } = {}): { loss: string; throughput: string; memory: string } {
  return { loss: lossChart(steps, validation, size), throughput: throughputChart(steps, size), memory: memoryChart(steps, size) };
}

/** One candidate set of a checkpoint plan: the peak bytes it saves and the throughput it loses. */
export interface TradeoffPoint {
  /** Bytes of peak memory saved against the unplanned step. */
  bytesSaved: number;
  /** Fraction of throughput lost against the unplanned step (0.1: 10 % fewer tokens/s). */
  throughputLost: number;
}

/**
 * The checkpoint planner's trade-off: memory saved against throughput lost, one point per candidate
 * set (predicted), the Pareto front through the sets no other beats, the sets measured (candidates
 * alone and combinations) and the chosen plan.
 */
export function tradeoffChart(data: {
  sets: readonly TradeoffPoint[]; front: readonly TradeoffPoint[]; measured?: readonly TradeoffPoint[]; chosen?: TradeoffPoint | null;
}, size: { width?: number; height?: number } = {}): string {
  const max = Math.max(1, ...[...data.sets, ...data.front, ...(data.measured ?? [])].map((p) => Math.abs(p.bytesSaved)));
  const { unit, scale } = byteUnit(max);
  const pts = (ps: readonly TradeoffPoint[]): Point[] => ps.map((p) => [p.bytesSaved / scale, p.throughputLost * 100] as Point);
  const front = pts(data.front).sort((a, b) => a[0] - b[0]);
  const series: ChartSeries[] = [
    { label: 'candidate sets (predicted)', points: pts(data.sets), color: '#9a9a9a', kind: 'markers' },
    { label: 'Pareto front', points: front, color: '#0072B2', width: 2 },
  ];
  if (data.measured?.length) series.push({ label: 'measured', points: pts(data.measured), color: '#E69F00', kind: 'markers' });
  if (data.chosen) series.push({ label: 'chosen plan', points: pts([data.chosen]), color: '#D55E00', kind: 'markers', radius: 6.5 });
  return lineChart(series, {
    id: 'tradeoff', title: 'Checkpointing: memory saved vs throughput lost', note: 'one point per candidate set; lower right is better',
    xLabel: `peak memory saved (${unit})`, yLabel: 'throughput lost (%)', ...size,
  });
}

/** Bytes by category after event `index` of a training step. */
export interface TimelinePoint {
  index: number;
  bytes: Readonly<Record<Category, number>>;
}

/** Memory of one training step by category, allocation by allocation, stacked (PyTorch's memory-snapshot view). */
export function memoryTimelineChart(points: readonly TimelinePoint[], options: { title?: string; note?: string; width?: number; height?: number } = {}): string {
  const peak = Math.max(0, ...points.map((p) => CATEGORIES.reduce((a, k) => a + p.bytes[k], 0)));
  const { unit, scale } = byteUnit(peak);
  const series: ChartSeries[] = CATEGORIES.map((k) => ({
    label: k, color: CATEGORY_COLORS[k], kind: 'area' as const, points: points.map((p) => [p.index, p.bytes[k] / scale] as Point),
  }));
  return lineChart(series, {
    id: 'timeline', title: options.title ?? 'Memory of one training step by category', note: options.note ?? 'stacked: the top edge is memoryAllocated() after each allocation or free',
    xLabel: 'allocation or free (event number)', yLabel: `allocated (${unit})`, width: options.width, height: options.height,
  });
}

/** One bar of stackedBarChart: a label and bytes by category. */
export interface StackedBar {
  label: string;
  bytes: Readonly<Record<Category, number>>;
}

/**
 * Horizontal bars of bytes stacked by category (the peak of a training step per configuration),
 * one panel per group with its own scale, each bar labelled with its total and its ratio to the
 * group's first bar. A category that holds any bytes is drawn at least 2 px wide, so that every
 * category present can be seen. Each segment is a <rect data-bar="label" data-category="k">.
 */
export function stackedBarChart(groups: readonly { title: string; bars: readonly StackedBar[] }[], options: { title: string; note?: string; width?: number } = { title: '' }): string {
  const W = options.width ?? 720, left = 120, right = 130, barH = 16, gap = 6, panelHead = 26;
  const pw = W - left - right;
  const legendTop = 30 + (options.note ? 16 : 0);
  const legend = legendLayout(CATEGORIES.map((k) => ({ label: k, color: CATEGORY_COLORS[k], kind: 'area' as const, points: [] })), W - 80);
  let y = legendTop + legend.length * 18 + 8;
  const parts: string[] = [];
  const body: string[] = [];
  for (const g of groups) {
    const totals = g.bars.map((b) => CATEGORIES.reduce((a, k) => a + b.bytes[k], 0));
    const max = Math.max(1, ...totals);
    const { unit, scale } = byteUnit(max);
    const ticks = niceTicks(0, max / scale, 5);
    const top = ticks.ticks[ticks.ticks.length - 1];
    const X = (v: number): number => left + (v / scale / top) * pw;
    body.push(`<text x="${left}" y="${y + 14}" font-size="13" font-weight="600" fill="#222">${esc(g.title)}</text>`);
    y += panelHead;
    const panelTop = y, panelH = g.bars.length * (barH + gap);
    for (const t of ticks.ticks) {
      const x = c(left + (t / top) * pw);
      body.push(`<line x1="${x}" y1="${panelTop - 4}" x2="${x}" y2="${panelTop + panelH}" stroke="#e4e4e4"/>`);
      body.push(`<text x="${x}" y="${panelTop + panelH + 14}" text-anchor="middle" fill="#444">${tickLabel(t, ticks.step)}</text>`);
    }
    body.push(`<text x="${left + pw}" y="${panelTop + panelH + 28}" text-anchor="end" fill="#333">peak allocated (${unit})</text>`);
    g.bars.forEach((b, i) => {
      const by = panelTop + i * (barH + gap);
      body.push(`<text x="${left - 6}" y="${by + barH - 4}" text-anchor="end" fill="#333">${esc(b.label)}</text>`);
      let x = left;
      for (const k of CATEGORIES) {
        const v = b.bytes[k];
        if (!(v > 0)) continue;
        const w = Math.max(2, X(v) - left);
        body.push(`<rect data-bar="${esc(b.label)}" data-category="${k}" x="${c(x)}" y="${by}" width="${c(w)}" height="${barH}" fill="${CATEGORY_COLORS[k]}" fill-opacity="0.85"><title>${esc(`${b.label}: ${k} ${(v / scale).toFixed(2)} ${unit}`)}</title></rect>`);
        x += w;
      }
      const ratio = totals[0] > 0 ? ` (${(totals[i] / totals[0]).toFixed(2)}x)` : '';
      body.push(`<text x="${c(x + 6)}" y="${by + barH - 4}" fill="#333">${(totals[i] / scale).toFixed(2)} ${unit}${ratio}</text>`);
    });
    y = panelTop + panelH + 40;
  }
  const H = y;
  parts.push(...chartHead('stacked-bars', W, H, left, options.title, options.note));
  legend.forEach((row, r) => {
    const ly = legendTop + r * 18 + 12;
    for (const { s, x } of row) {
      parts.push(`<rect x="${left + x}" y="${ly - 9}" width="14" height="10" fill="${s.color}" fill-opacity="0.85"/>`);
      parts.push(`<text x="${left + x + 18}" y="${ly}" fill="#333">${esc(s.label)}</text>`);
    }
  });
  parts.push(...body, '</svg>');
  return parts.join('');
}
