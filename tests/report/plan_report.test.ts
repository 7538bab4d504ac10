// The checkpoint plan report (`memfit plan --report`, src/report/html.ts planReportHtml with the
// charts of src/report/charts.ts): built from a real plan of a small Llama, rendered in headless
// Chromium: the trade-off chart has one point per candidate set, the front and the chosen plan;
// the timelines have one band per memory category; a screenshot is written for a person to look at.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withPage } from '../helpers/chromium.js';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { CATEGORIES } from '../../src/backend/memory.js';
import { Llama } from '../../src/nn/llama.js';
import { Generator } from '../../src/random.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { TINY_LLAMA } from '../../src/train/language_model.js';
import { planCheckpoints, planSets } from '../../src/recompute/plan.js';
import { planReportData } from '../../src/cli/plan.js';
import { isMemfitReportHtml, isTrainingReportHtml, planReportHtml } from '../../src/report/html.js';
import { tradeoffChart } from '../../src/report/charts.js';

const be = new WasmBackend();
const model = new Llama(TINY_LLAMA.model, { backend: be, generator: new Generator(0) });
const B = 4, T = 32, g = new Generator(3);
const tokens = () => Int32Array.from({ length: B * T }, () => Math.floor(g.random() * 256));
const batch = { ids: Tensor.from(be, tokens(), [B, T], { dtype: 'int32' }), targets: Tensor.from(be, tokens(), [B, T], { dtype: 'int32' }) };

test('tradeoffChart: one marker per set, the front as a line, the chosen plan', () => {
  const svg = tradeoffChart({
    sets: [{ bytesSaved: 0, throughputLost: 0 }, { bytesSaved: 2 ** 20, throughputLost: 0.1 }, { bytesSaved: 2 ** 19, throughputLost: 0.2 }],
    front: [{ bytesSaved: 0, throughputLost: 0 }, { bytesSaved: 2 ** 20, throughputLost: 0.1 }],
    chosen: { bytesSaved: 2 ** 20, throughputLost: 0.1 },
  });
  assert.match(svg, /data-chart="tradeoff"/);
  assert.match(svg, /peak memory saved \(MiB\)/);
  assert.match(svg, /throughput lost \(%\)/);
  assert.is((svg.match(/<circle /g) ?? []).length, 3 + 1 + 2, 'three sets, the chosen plan, and two legend dots');
  assert.match(svg, /<path data-series="Pareto front" d="M[\d.]+ [\d.]+L[\d.]+ [\d.]+"/);
});

test('the plan report renders in Chromium: the points are there, the timelines have every category; screenshot', async () => {
  const plan = await planCheckpoints(model, batch, { budget: '90%', repeats: 1, forwardRepeats: 1 });
  plan.undo();
  const data = planReportData(plan, [['budget', '90%']]);
  const html = planReportHtml(data);
  assert.ok(isMemfitReportHtml(html));
  assert.not.ok(isTrainingReportHtml(html), 'a plan report is not a training report');
  const { sets } = planSets(plan.profile);
  const shot = join(mkdtempSync(join(tmpdir(), 'memfit-plan-report-')), 'plan.png');
  await withPage(html, {}, async ({ page, log }) => {
    const got = await page.evaluate(`(() => {
      const chart = document.querySelector('svg[data-chart="tradeoff"]');
      const box = chart.getBoundingClientRect();
      const timelines = [...document.querySelectorAll('svg[data-chart="timeline"]')];
      return {
        width: box.width, height: box.height,
        circles: chart.querySelectorAll('circle').length,
        front: chart.querySelector('path[data-series="Pareto front"]').getAttribute('d').split(/[ML]/).filter(Boolean).length,
        timelines: timelines.map((t) => t.querySelectorAll('path[data-area]').length),
        rows: [...document.querySelectorAll('table[data-table] tr')].length,
      };
    })()`) as { width: number; height: number; circles: number; front: number; timelines: number[]; rows: number };
    assert.ok(got.width > 600 && got.height > 300, `chart size ${got.width} x ${got.height}`);
    const legendDots = 3; // sets, measured, chosen
    assert.is(got.circles, sets.length + data.tradeoff.measured!.length + 1 + legendDots, 'every candidate set, every measurement and the plan');
    assert.is(got.front, data.tradeoff.front.length);
    assert.equal(got.timelines, [CATEGORIES.length, CATEGORIES.length], 'unplanned and planned step');
    assert.is(got.rows, 1 + plan.profile.candidates.length + 1 + plan.profile.combinations.length);
    assert.equal(log.filter((l) => /error/i.test(l)), []);
    await page.setViewportSize({ width: 1500, height: 1000 });
    await page.screenshot({ path: shot, fullPage: true });
  });
  assert.ok(statSync(shot).size > 20_000, `screenshot ${shot}`);
  process.stderr.write(`plan report screenshot: ${shot}\n`);
});

test.run();
