// The published entry points (dist/node/index.js = 'memfit', dist/node/node.js = 'memfit/node')
// share one copy of every module: a model built with one is saved with the other.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

test('memfit and memfit/node share classes; a model from one is checkpointed with the other', async () => {
  const main = await import('../../dist/node/index.js');
  const node = await import('../../dist/node/node.js');
  assert.is(main.Tensor, node.Tensor);
  assert.is(main.Module, node.Module);
  assert.is(main.isGradEnabled, node.isGradEnabled);
  const dir = mkdtempSync(join(tmpdir(), 'memfit-dist-'));
  try {
    const be = new main.WasmBackend();
    const model = new main.Linear(3, 2, { backend: be, generator: new main.Generator(1) });
    const path = join(dir, 'm.safetensors');
    await node.saveSafetensors(path, model.stateDict());
    const { tensors } = await node.loadSafetensors(path, be);
    assert.equal(await tensors.weight.toArray(), await model.weight.data.toArray());
    for (const t of Object.values(tensors)) (t as { dispose(): void }).dispose();
    model.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('memfit/node has the model-file tools; the main entry their bytes versions', async () => {
  const main = await import('../../dist/node/index.js');
  const node = await import('../../dist/node/node.js');
  assert.is(typeof node.inspectSafetensors, 'function');
  assert.is(typeof node.convertSafetensors, 'function');
  assert.is(main.convertSafetensorsBytes, node.convertSafetensorsBytes);
  assert.is(main.ConvertError, node.ConvertError);
  assert.not.ok('convertSafetensors' in main, 'the file version needs node:fs: memfit/node only');
});

test.run();
