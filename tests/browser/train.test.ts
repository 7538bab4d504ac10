// Training in the browser: the bundle (dist/browser/memfit.js) in headless Chromium trains the tiny
// Llama for a few steps on the wasm backend (losses bit-identical to Node with the plain-SIMD build) and on WebGPU through
// navigator.gpu (SwiftShader here; losses within 1e-3 of wasm).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { withPage } from '../helpers/chromium.js';
import { BUNDLE_FILES, bundlePage, config, nodeLosses, text } from '../helpers/browser_training.js';

const PAGE = bundlePage('memfit training');

test('the browser bundle trains a tiny Llama on wasm (same losses as Node) and on WebGPU via navigator.gpu', async () => {
  const node = await nodeLosses();

  await withPage(PAGE, BUNDLE_FILES, async ({ page, log }) => {
    // Page code as a string: the test file's own functions are rewritten by the TypeScript loader.
    const got = await page.evaluate(`(async () => {
      const m = globalThis.memfit, text = ${JSON.stringify(text)}, config = ${JSON.stringify(config)};
      m.setWasmSimd('plain'); // Node 20 loads the plain-SIMD build; Chromium could load the relaxed one (fused multiply-add)
      async function run(backend) {
        const tr = new m.LanguageModelTrainer(backend, new m.ByteTextDataset(text), config);
        const losses = [];
        for (let i = 0; i < config.steps; i++) losses.push((await tr.trainStep()).loss);
        const mem = tr.memoryStats().byCategory;
        tr.dispose();
        return { losses, optimizerBytes: mem.optimizer.peak, parameterBytes: mem.parameter.peak };
      }
      const wasm = await run(new m.WasmBackend());
      const gpuBackend = await m.createBackend({ backend: 'webgpu', log: null });
      const gpu = await run(gpuBackend);
      const description = gpuBackend.description;
      gpuBackend.destroy();
      return { wasm, gpu, description };
    })()`) as { wasm: { losses: number[]; optimizerBytes: number; parameterBytes: number }; gpu: { losses: number[] }; description: string };
    const ctx = log.length ? `\npage log:\n${log.join('\n')}` : '';
    assert.equal(got.wasm.losses, node, `wasm in the browser = wasm in Node${ctx}`);
    assert.is(got.wasm.optimizerBytes, 2 * got.wasm.parameterBytes);
    assert.match(got.description, /webgpu/i);
    got.gpu.losses.forEach((v, i) => assert.ok(Math.abs(v - node[i]) <= 1e-3 * node[i], `step ${i + 1}: webgpu ${v} vs wasm ${node[i]}${ctx}`));
  });
});

test.run();
