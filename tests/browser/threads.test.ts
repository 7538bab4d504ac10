// The wasm backend's threads in the browser bundle (headless Chromium): on a cross-origin isolated
// page (COOP/COEP headers) Web Workers share the module's memory and a training run on 3 threads
// gives the same losses as on 1 thread and as in Node; on a page that is not isolated a threaded
// backend runs on one thread, and one log line says why.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { withPage } from '../helpers/chromium.js';
import { BUNDLE_FILES, bundlePage, config, nodeLosses, text } from '../helpers/browser_training.js';

const PAGE = bundlePage('memfit threads');
const ISOLATED = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };

test('on a cross-origin isolated page, training on 3 Web Worker threads gives the losses of 1 thread and of Node', async () => {
  const node = await nodeLosses();
  await withPage(PAGE, BUNDLE_FILES, async ({ page, log }) => {
    const got = await page.evaluate(`(async () => {
      const m = globalThis.memfit, text = ${JSON.stringify(text)}, config = ${JSON.stringify(config)};
      m.setWasmSimd('plain'); // as Node 20 (Chromium could load the relaxed-SIMD build)
      async function run(threads) {
        const backend = await m.WasmBackend.create('page', { threads, parallelMinWork: 1 });
        const tr = new m.LanguageModelTrainer(backend, new m.ByteTextDataset(text), config);
        const losses = [];
        for (let i = 0; i < config.steps; i++) losses.push((await tr.trainStep()).loss);
        tr.dispose();
        const r = { losses, threads: backend.threads, lanes: backend.lanes(Infinity), description: backend.description };
        backend.destroy();
        return r;
      }
      return { isolated: crossOriginIsolated, one: await run(1), three: await run(3), build: m.wasmBuild() };
    })()`) as { isolated: boolean; one: { losses: number[] }; three: { losses: number[]; threads: number; lanes: number; description: string }; build: { sharedMemory: boolean } };
    const ctx = log.length ? `\npage log:\n${log.join('\n')}` : '';
    assert.ok(got.isolated, `the page is cross-origin isolated${ctx}`);
    assert.ok(got.build.sharedMemory, 'the threads build (shared memory) loaded');
    assert.is(got.three.threads, 3);
    assert.is(got.three.lanes, 3, 'both Web Workers started');
    assert.match(got.three.description, /3 threads$/);
    assert.equal(got.three.losses, got.one.losses, `3 threads = 1 thread${ctx}`);
    assert.equal(got.one.losses, node, `the browser = Node${ctx}`);
  }, ISOLATED);
});

test('on a page that is not cross-origin isolated, a threaded backend runs on one thread and says why in one line', async () => {
  await withPage(PAGE, BUNDLE_FILES, async ({ page }) => {
    const got = await page.evaluate(`(async () => {
      const m = globalThis.memfit, lines = [];
      const b = await m.createBackend({ backend: 'wasm', threads: 2, log: (l) => lines.push(l) });
      const x = m.Tensor.from(b, [1, 2, 3, 4], [2, 2]);
      const y = Array.from(await x.matmul(x).toArray());
      return { isolated: crossOriginIsolated, threads: b.threads, lines, y, build: m.wasmBuild() };
    })()`) as { isolated: boolean; threads: number; lines: string[]; y: number[]; build: { sharedMemory: boolean } };
    assert.not.ok(got.isolated);
    assert.not.ok(got.build.sharedMemory, 'the build with its own memory loaded');
    assert.is(got.threads, 1);
    assert.is(got.lines.length, 2, got.lines.join('\n'));
    assert.match(got.lines[0], /^memfit: wasm backend on 1 thread, not 2: threads need shared memory, which a browser allows only on a cross-origin isolated page \(COOP\/COEP headers\)$/);
    assert.match(got.lines[1], /^memfit: wasm backend: requested$/);
    assert.equal(got.y, [7, 10, 15, 22]);
  });
});

test.run();
