// The training charts (src/report/charts.ts) and the report document (src/report/html.ts), without
// a browser: axes, series, stacking, bucketing of long runs, empty and non-finite data, escaping.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CATEGORIES, type Category } from '../../src/backend/memory.js';
import { MAX_POINTS, byteUnit, lineChart, niceTicks, stackedBarChart, trainingCharts, type ChartStep } from '../../src/report/charts.js';
import { isTrainingReportHtml, trainingReportHtml } from '../../src/report/html.js';

function run(n: number): ChartStep[] {
  return Array.from({ length: n }, (_, i) => ({
    step: i + 1, loss: 5.5 * Math.exp(-i / 50) + 1, tokensPerSecond: 1000 + i,
    memory: Object.fromEntries(CATEGORIES.map((c, k) => [c, (k + 1) * 1024 * 1024])) as Record<Category, number>,
  }));
}

/** The [x, y] points of the path named `series` in `svg`. */
function series(svg: string, name: string): [number, number][] {
  const m = new RegExp(`<path data-series="${name}" d="([^"]*)"`).exec(svg);
  assert.ok(m, `series ${name}`);
  return [...m![1].matchAll(/[ML]([-\d.]+) ([-\d.]+)/g)].map((p) => [Number(p[1]), Number(p[2])]);
}

test('niceTicks: round steps of 1, 2 or 5 that cover the range', () => {
  assert.equal(niceTicks(0, 5.56, 5), { ticks: [0, 1, 2, 3, 4, 5, 6], step: 1 });
  assert.equal(niceTicks(1, 300, 6).ticks, [0, 50, 100, 150, 200, 250, 300]);
  assert.equal(niceTicks(0, 0.37, 5).ticks.map((t) => +t.toFixed(10)), [0, 0.1, 0.2, 0.3, 0.4]);
  const flat = niceTicks(3, 3, 5);
  assert.ok(flat.ticks[0] <= 3 && flat.ticks[flat.ticks.length - 1] >= 3 && flat.ticks.length >= 2, 'a flat series still gets an axis');
  assert.equal(byteUnit(3.1 * 2 ** 20), { unit: 'MiB', scale: 2 ** 20 });
  assert.equal(byteUnit(900), { unit: 'B', scale: 1 });
});

test('the three charts: one point per step, axes with units, a stacked memory chart whose top is the total', () => {
  const c = trainingCharts(run(50), [{ step: 50, loss: 2 }]);
  assert.is(series(c.loss, 'train loss').length, 50);
  assert.is(series(c.loss, 'validation loss').length, 1);
  assert.match(c.loss, />step</);
  assert.match(c.loss, /cross-entropy \(nats per byte\)/);
  assert.match(c.throughput, />tokens\/s</);
  assert.match(c.memory, /allocated \(MiB\)/);
  // Categories hold 1..6 MiB: the stack's top edge is at 21 MiB, i.e. highest on the plot (smallest y).
  const top = series(c.memory, 'temporary'), bottom = series(c.memory, 'parameter');
  const yTicks = [...c.memory.matchAll(/text-anchor="end" fill="#444">([\d.]+)</g)].map((m) => Number(m[1]));
  assert.equal(yTicks, [0, 5, 10, 15, 20, 25]);
  const y = (v: number): number => { // the y of value v, from the tick gridlines
    const grid = [...c.memory.matchAll(/<line x1="66" y1="([\d.]+)" x2="622"/g)].map((m) => Number(m[1]));
    return grid[0] + (grid[grid.length - 1] - grid[0]) * (v / 25);
  };
  assert.ok(Math.abs(top[0][1] - y(21)) < 0.05, `top edge at 21 MiB: ${top[0][1]} vs ${y(21)}`);
  assert.ok(Math.abs(bottom[0][1] - y(1)) < 0.05, `parameter band up to 1 MiB: ${bottom[0][1]} vs ${y(1)}`);
});

test('long runs are averaged into at most MAX_POINTS points, and the chart says so', () => {
  const n = 3 * MAX_POINTS + 7;
  const c = trainingCharts(run(n));
  const pts = series(c.loss, 'train loss');
  assert.is(pts.length, Math.ceil(n / 4));
  assert.ok(pts.length <= MAX_POINTS);
  assert.is(pts[pts.length - 1][0], 622, 'the last bucket sits at the last step, the right edge of the plot');
  assert.is(series(c.throughput, 'tokens/s per step').length, pts.length);
  assert.match(c.loss, /each point is the mean of 4 steps/);
  assert.is(series(c.memory, 'activation').length, pts.length);
});

test('no data, a single step, and non-finite values draw without breaking the SVG', () => {
  const empty = trainingCharts([]);
  for (const svg of Object.values(empty)) assert.match(svg, /no data yet<\/text><text/);
  const one = trainingCharts(run(1));
  assert.is(series(one.loss, 'train loss').length, 1);
  const nan = run(5);
  nan[2].loss = NaN;
  const c = trainingCharts(nan).loss;
  assert.is(series(c, 'train loss').length, 4, 'the NaN point is left out');
  assert.not.match(c, /NaN|Infinity/);
  assert.throws(() => lineChart([
    { label: 'a', points: [[1, 1], [2, 1]], color: '#000', kind: 'area' },
    { label: 'b', points: [[1, 1]], color: '#000', kind: 'area' },
  ], { id: 'x', title: 't', xLabel: 'x', yLabel: 'y' }), /stacked series 'b' has 1 points, the one below has 2/);
});

test('the report: one document, no external resource, text escaped, recognised as a report', () => {
  const html = trainingReportHtml({
    title: 'run <1>', summary: [['data', 'a & b <script>alert(1)</script>']], steps: run(10),
    validation: [{ step: 10, loss: 2 }], sample: 'The </script><img src=x onerror=alert(1)>',
  });
  assert.ok(isTrainingReportHtml(html));
  assert.not.ok(isTrainingReportHtml('<!doctype html><title>my notes</title>'));
  assert.not.ok(isTrainingReportHtml(`<p>${html}`), 'the marker must open the file');
  assert.not.match(html, /<script>alert|<img src/);
  assert.match(html, /run &lt;1&gt;/);
  assert.is(html.match(/<svg /g)?.length, 3);
  const json = /<script type="application\/json" id="memfit-records">(.*?)<\/script>/s.exec(html)![1];
  assert.is(JSON.parse(json).steps.length, 10);
});

test('stackedBarChart: one rect per nonzero category per bar, widths proportional (2 px at least), totals and ratios to the first bar', () => {
  const zero = Object.fromEntries(CATEGORIES.map((k) => [k, 0])) as Record<Category, number>;
  const bars = [
    { label: 'float32', bytes: { ...zero, parameter: 4 * 2 ** 20, optimizer: 8 * 2 ** 20, activation: 4 * 2 ** 20 } },
    { label: 'least <&>', bytes: { ...zero, parameter: 2 * 2 ** 20, data: 10 } },
  ];
  const svg = stackedBarChart([{ title: 'tiny', bars }], { title: 'Peak' });
  assert.ok(svg.startsWith('<svg') && svg.endsWith('</svg>'));
  const rects = [...svg.matchAll(/<rect data-bar="([^"]*)" data-category="(\w+)" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"/g)];
  assert.equal(rects.map((r) => `${r[1]}:${r[2]}`), ['float32:parameter', 'float32:optimizer', 'float32:activation', 'least &lt;&amp;&gt;:parameter', 'least &lt;&amp;&gt;:data']);
  const w = rects.map((r) => Number(r[4]));
  assert.ok(Math.abs(w[1] - 2 * w[0]) < 0.02, 'optimizer twice parameter');
  assert.ok(Math.abs(w[3] - w[0] / 2) < 0.02, 'half the parameter bytes');
  assert.is(w[4], 2, 'a few bytes still show');
  assert.match(svg, /16\.00 MiB \(1\.00x\)/);
  assert.match(svg, /2\.00 MiB \(0\.13x\)/);
  for (const k of CATEGORIES) assert.match(svg, new RegExp(`>${k}</text>`), `legend: ${k}`);
});

test.run();
