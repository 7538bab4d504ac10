// Optimizer steps under a GradScaler's found-inf flag, decided on the device: a flagged step leaves
// every parameter and every state tensor bit-identical (its inf/NaN gradients never leak in), the
// step counts do not count it, and the steps that do count equal those of the same optimizer that
// was simply not stepped on those iterations (PyTorch's GradScaler), bit for bit, whether the
// flags have been read back between steps or not (the bias corrections then chosen on the device).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { MemfitError, InvalidArgumentError } from '../../src/index.js';
import { SGD, Adam, AdamW } from '../../src/optim/index.js';
import { setGrad } from '../helpers/values.js';
import { CASES, SKIPS, makeParams, gradsAt, runFlagged, snapshot } from '../helpers/optim_state.js';

const w = new WasmBackend();

for (const [label, make, dtype] of CASES) {
  test(`${label}: flagged steps change nothing; the rest equal an optimizer never stepped on those iterations, bit for bit, flags read back or not`, async () => {
    const plain = await runFlagged(w, make, dtype, 'plain');
    const lazy = await runFlagged(w, make, dtype, 'flag, never awaited');
    let skipped = 0;
    const eager = await runFlagged(w, make, dtype, 'flag, synchronized each step', (before, after, t) => {
      if (!SKIPS.has(t)) return;
      skipped++;
      // The host counts are settled here: a skipped step leaves params, state tensors and counts as they were.
      assert.equal(after, before, `${label}: step ${t} (skipped) changed something`);
    });
    assert.is(skipped, SKIPS.size);
    assert.equal(lazy, plain, `${label}: unsynchronized flagged run differs from the plain run`);
    assert.equal(eager, plain, `${label}: synchronized flagged run differs from the plain run`);
    assert.is(w.memory.memoryAllocated('temporary'), 0, 'temporaries freed');
    assert.is(w.memory.memoryAllocated('optimizer'), 0, 'state freed by dispose');
  });
}

test('a skipped first step leaves no state (as PyTorch, whose step() never ran); stateDict waits for the flags: PENDING_STEPS until synchronize()', async () => {
  const ps = makeParams(w, 'float32');
  const opt = new AdamW(ps, { lr: 0.1 });
  ps.forEach((p, k) => setGrad(p, gradsAt(0, k, p.data.size)));
  const flag = Tensor.from(w, [1], [], { category: 'temporary' });
  opt.step({ foundInf: flag });
  const err = (() => { try { opt.stateDict(); } catch (e) { return e; } })() as MemfitError;
  assert.instance(err, MemfitError);
  assert.is(err.code, 'PENDING_STEPS');
  assert.match(err.message, /await optimizer.synchronize\(\)/);
  await opt.synchronize();
  assert.equal(opt.stateDict().state, {}, 'no state after a skipped first step');
  // A counted step afterwards is the first: step 1
  w.write(flag.storage, Float32Array.of(0));
  opt.step({ foundInf: flag });
  await opt.synchronize();
  assert.equal(Object.values(opt.stateDict().state).map((s) => s.step), [1, 1]);
  // NaN in the flag counts as set
  w.write(flag.storage, Float32Array.of(NaN));
  const before = await snapshot(ps, opt);
  opt.step({ foundInf: flag });
  await opt.synchronize();
  assert.equal(await snapshot(ps, opt), before, 'a NaN flag skips');
  flag.dispose();
  opt.dispose();
  for (const p of ps) p.dispose();
});

test('loadStateDict while flags are out: the loaded counts win, the late flags change nothing', async () => {
  const ps = makeParams(w, 'float32');
  const opt = new Adam(ps, { lr: 0.1 });
  const other = new Adam(makeParams(w, 'float32'), { lr: 0.1 });
  ps.forEach((p, k) => setGrad(p, gradsAt(1, k, p.data.size)));
  other.paramGroups[0].params.forEach((p, k) => setGrad(p, gradsAt(1, k, p.data.size)));
  other.step();
  other.step();
  const flag = Tensor.from(w, [1], [], { category: 'temporary' });
  opt.step({ foundInf: flag }); // its flag is read back after the load below
  opt.loadStateDict(other.stateDict());
  await opt.synchronize();
  assert.equal(Object.values(opt.stateDict().state).map((s) => s.step), [2, 2]);
  flag.dispose();
  for (const o of [opt, other]) { o.zeroGrad(); o.dispose(); }
  for (const p of [...ps, ...other.paramGroups[0].params]) p.dispose();
});

test('step({ foundInf }) refuses a bad flag before changing anything', async () => {
  const ps = makeParams(w, 'float32');
  const opt = new SGD(ps, { lr: 0.1 });
  ps.forEach((p, k) => setGrad(p, gradsAt(1, k, p.data.size)));
  const before = await snapshot(ps, opt);
  const two = Tensor.from(w, [0, 0], [2], { category: 'temporary' });
  const bf = Tensor.from(w, [0], [], { dtype: 'bfloat16', category: 'temporary' });
  assert.throws(() => opt.step({ foundInf: two }), (e: Error) => e instanceof InvalidArgumentError && /float32 with one element/.test(e.message));
  assert.throws(() => opt.step({ foundInf: bf }), /float32 with one element, got bfloat16/);
  assert.throws(() => opt.step({ foundInf: 1 as unknown as Tensor }), /must be a Tensor/);
  assert.throws(() => opt.step({ found: two } as never), /unknown option 'found'/);
  assert.throws(() => opt.step((() => 1) as never), /step\(closure\) is not supported/);
  two.dispose(); bf.dispose();
  assert.throws(() => opt.step({ foundInf: two }), /disposed/);
  assert.equal(await snapshot(ps, opt), before);
  opt.zeroGrad();
  for (const p of ps) p.dispose();
});

test('step() waits for nothing: it starts one asynchronous read of the flag, whose result arrives after step() returned', async () => {
  const ps = makeParams(w, 'float32');
  const opt = new AdamW(ps);
  ps.forEach((p, k) => setGrad(p, gradsAt(1, k, p.data.size)));
  const flag = Tensor.from(w, [0], [], { category: 'temporary' });
  let reads = 0;
  const read = w.read;
  w.read = (...args) => { reads++; return read.apply(w, args); };
  try {
    opt.step({ foundInf: flag });
    opt.step({ foundInf: flag });
  } finally {
    w.read = read;
  }
  assert.is(reads, 2, 'one asynchronous read of the flag per step');
  assert.throws(() => opt.stateDict(), /still on the device/, 'the reads had not been consumed when step() returned');
  await opt.synchronize();
  assert.equal(Object.values(opt.stateDict().state).map((s) => s.step), [2, 2]);
  flag.dispose();
  opt.zeroGrad();
  opt.dispose();
  for (const p of ps) p.dispose();
});

test.run();
