// The demo page (`npm run demo`) in headless Chromium: the server (127.0.0.1, cross-origin isolated)
// serves the page, the bundles and the corpus; a visitor's run on the wasm backend draws the three
// charts, the loss falls, generated text appears and "Save report" downloads a memfit report. A
// screenshot is saved to scratch/demo-page.png (or $MEMFIT_DEMO_SCREENSHOT) for a human to look at.
// Needs the bundles (npm run build).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium } from '../helpers/chromium.js';
import { startDemoServer } from '../../src/demo/server.js';
import { isTrainingReportHtml } from '../../src/report/html.js';

const SCREENSHOT = process.env.MEMFIT_DEMO_SCREENSHOT || fileURLToPath(new URL('../../scratch/demo-page.png', import.meta.url));

test('the demo server: 127.0.0.1 only, COOP/COEP on every response, the corpus, 404 and 405', async () => {
  const server = await startDemoServer({ port: 0, text: 'Madam Speaker, Mr. Vice President' });
  try {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    for (const path of ['', 'demo.js', 'memfit.js', 'sotu.txt', 'nothing-here']) {
      const r = await fetch(server.url + path);
      assert.is(r.headers.get('cross-origin-opener-policy'), 'same-origin', path);
      assert.is(r.headers.get('cross-origin-embedder-policy'), 'require-corp', path);
      assert.is(r.status, path === 'nothing-here' ? 404 : 200, path);
      if (path === 'sotu.txt') assert.is(await r.text(), 'Madam Speaker, Mr. Vice President');
      else await r.arrayBuffer();
    }
    assert.is((await fetch(server.url, { method: 'POST', body: 'x' })).status, 405);
    const busy = await startDemoServer({ port: server.port }).then(() => null, (e: Error) => e);
    assert.match(busy?.message ?? 'it started', /port \d+ on 127\.0\.0\.1 is in use: pass another with --port/);
  } finally {
    await server.close();
  }
});

/** The points of a path's d attribute (M x y L x y ...). */
function points(d: string | null): [number, number][] {
  return [...(d ?? '').matchAll(/[ML]([-\d.]+) ([-\d.]+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
}

test('a visitor trains the tiny Llama on wasm: the charts draw, the loss falls, text is generated, the report saves', async () => {
  const server = await startDemoServer({ port: 0 });
  const browser = await launchChromium();
  const log: string[] = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
    page.on('console', (m) => log.push(`console.${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
    const ctx = (): string => (log.length ? `\npage log:\n${log.join('\n')}` : '');
    await page.goto(server.url);
    await page.waitForSelector('body[data-state=ready], body[data-state=error]', { timeout: 60_000 });
    assert.is(await page.getAttribute('body', 'data-state'), 'ready', `${await page.textContent('#error')}${ctx()}`);
    assert.ok(await page.evaluate('crossOriginIsolated'), 'the page is cross-origin isolated');
    // WebGPU is offered exactly when navigator.gpu gives an adapter.
    const adapter = await page.evaluate('(async () => !!(navigator.gpu && await navigator.gpu.requestAdapter()))()');
    assert.is(await page.isDisabled('option[value=webgpu]'), !adapter, `WebGPU offered: ${!adapter ? 'no' : 'yes'}`);
    assert.match(await page.textContent('#corpus') ?? '', /^1,\d{3},\d{3} characters/);
    // Every option has landed: precision (fp8 and half-precision weights too), checkpointing, 8-bit optimizers.
    for (const v of ['bf16-true', '16-true', 'fp8']) assert.ok(await page.$(`#precision option[value="${v}"]`), v);
    assert.ok(await page.$('#optimizer option[value=adamw8bit]'));
    assert.not.ok(await page.isDisabled('#checkpointing'));
    await page.selectOption('#precision', 'bf16-mixed'); // the run below trains under bfloat16 autocast
    await page.selectOption('#checkpointing', '^layers\\.\\d+$'); // with every decoder layer checkpointed

    await page.selectOption('#backend', 'wasm');
    await page.selectOption('#optimizer', 'sgd');
    assert.is(await page.inputValue('#lr'), '0.1', 'SGD brings its own lr');
    await page.selectOption('#optimizer', 'adamw');
    assert.is(await page.inputValue('#lr'), '0.003');
    await page.fill('#steps', '40');
    await page.fill('#batchSize', '4');
    await page.fill('#seqLen', '32');
    await page.click('#train');
    await page.waitForSelector('body[data-state=done], body[data-state=error]', { timeout: 180_000 });
    assert.is(await page.getAttribute('body', 'data-state'), 'done', `${await page.textContent('#error')}${ctx()}`);

    const first = Number(await page.getAttribute('#status', 'data-first-loss'));
    const last = Number(await page.getAttribute('#status', 'data-last-loss'));
    assert.ok(Math.abs(first - Math.log(256)) < 0.1, `the first loss ${first} is about ln 256`);
    assert.ok(last < first - 0.5, `the loss falls: ${first} -> ${last}`);
    assert.match(await page.textContent('#status') ?? '', /done after 40 steps on wasm: loss 5\.\d+ → \d\.\d+/);

    const series = await page.evaluate(`Object.fromEntries([...document.querySelectorAll('svg[data-chart] path[data-series]')]
      .map((p) => [p.closest('svg').dataset.chart + '/' + p.dataset.series, p.getAttribute('d')]))`) as Record<string, string>;
    const n = (key: string): number => points(series[key]).length;
    assert.is(n('loss/train loss'), 40, 'one loss point per step');
    assert.is(n('loss/train, mean of 3 steps'), 40);
    assert.is(n('loss/validation loss'), 4, 'validation after steps 10, 20, 30 and 40');
    assert.is(n('throughput/tokens/s per step'), 40);
    for (const c of ['parameter', 'gradient', 'optimizer', 'activation', 'data', 'temporary']) assert.is(n(`memory/${c}`), 40, c);
    // Stacked: the top edge (the step's peak) lies above the parameter band at every step (SVG y grows downwards).
    const top = points(series['memory/temporary']), params = points(series['memory/parameter']);
    assert.ok(top.every(([, y], i) => y < params[i][1] - 1), 'the stack rises above the parameters');
    assert.match(await page.textContent('svg[data-chart=memory]') ?? '', /allocated \((KiB|MiB)\)/);
    assert.match(await page.textContent('svg[data-chart=loss]') ?? '', /cross-entropy \(nats per byte\)/);

    const samples = await page.$$eval('#samples div', (divs) => divs.map((d) => d.textContent ?? ''));
    assert.is(samples.length, 2, 'a sample after step 25 and one at the end');
    assert.match(samples[1], /^after step 40: The /);
    assert.ok(samples[1].length > 'after step 40: The '.length + 100, samples[1]);

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#save')]);
    const html = readFileSync(await download.path(), 'utf8');
    assert.ok(isTrainingReportHtml(html), 'the saved file is a memfit report');
    assert.match(html, /precision bf16-mixed, checkpointed layers\.0 layers\.1,/);
    for (const c of ['loss', 'throughput', 'memory']) assert.ok(html.includes(`data-chart="${c}"`), c);

    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    console.log(`demo screenshot: ${SCREENSHOT}`);
    assert.not.ok(log.some((l) => l.startsWith('pageerror')), ctx());
  } finally {
    await browser.close();
    await server.close();
  }
});

test.run();
