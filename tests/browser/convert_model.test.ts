// The bytes-in/bytes-out model-file tools in the browser bundle (headless Chromium): convertSafetensorsBytes
// and inspectSafetensorsBytes give the same bytes and reports as in Node.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { withPage } from '../helpers/chromium.js';
import { convertSafetensorsBytes, inspectSafetensorsBytes, type ConvertModelOptions } from '../../src/io/convert_model.js';

const BUNDLE = fileURLToPath(new URL('../../dist/browser/memfit.js', import.meta.url));
const MODEL = fileURLToPath(new URL('../fixtures/io/convert/model-f32.safetensors', import.meta.url));

const PAGE = `<!doctype html>
<meta charset="utf-8">
<script>window.__ready = false;</script>
<script type="module">
import * as memfit from '/memfit.js';
window.memfit = memfit;
window.__ready = true;
</script>`;

const CASES: ConvertModelOptions[] = [
  { to: 'bf16', memfitVersion: 'test' },
  { to: 'float8_e4m3fn', scale: 'row', memfitVersion: 'test' },
  { to: 'mxfp4', exclude: ['embed'], memfitVersion: 'test' },
];

test('convertSafetensorsBytes / inspectSafetensorsBytes in Chromium equal Node byte for byte', async () => {
  assert.ok(existsSync(BUNDLE), `${BUNDLE} is missing: build it first (node scripts/build.mjs)`);
  const model = new Uint8Array(readFileSync(MODEL));
  await withPage(PAGE, { '/memfit.js': { file: BUNDLE }, '/model.safetensors': { file: MODEL, type: 'application/octet-stream' } }, async ({ page, log }) => {
    const got = await page.evaluate(async (cases) => {
      const m = (globalThis as any).memfit;
      const bytes = new Uint8Array(await (await fetch('/model.safetensors')).arrayBuffer());
      const out: { bytes: number[]; converted: number }[] = [];
      for (const c of cases) {
        const r = await m.convertSafetensorsBytes(bytes, c);
        out.push({ bytes: Array.from(r.bytes as Uint8Array), converted: r.report.converted });
      }
      const ins = await m.inspectSafetensorsBytes(bytes, { stats: true });
      let error = null;
      try {
        await m.convertSafetensorsBytes(bytes, { to: 'float7' });
      } catch (e) {
        error = { name: (e as Error).name, code: (e as { code?: string }).code };
      }
      return { out, inspect: JSON.stringify(ins), error };
    }, CASES);
    const ctx = log.length ? `\npage log:\n${log.join('\n')}` : '';
    for (let k = 0; k < CASES.length; k++) {
      const want = await convertSafetensorsBytes(model, CASES[k]);
      assert.is(got.out[k].converted, want.report.converted, `${CASES[k].to}${ctx}`);
      assert.equal(got.out[k].bytes, Array.from(want.bytes), `${CASES[k].to}: same file${ctx}`);
    }
    assert.is(got.inspect, JSON.stringify(await inspectSafetensorsBytes(model, { stats: true })));
    assert.equal(got.error, { name: 'ConvertError', code: 'CONVERT' });
  });
});

test.run();
