// GradScaler on wasm: PyTorch's 20-step trace (tests/fixtures/golden/gradscaler.json) reproduced
// exactly, a fresh scaler's state equal to PyTorch's defaults, PyTorch's misuse errors (nothing
// changed by a refused call), clipGradNorm after unscale, float16 underflow recovered by loss
// scaling, fp16-mixed training (autocast float16 + GradScaler) that converges through injected inf
// and NaN gradients, and checkpoints that resume bit for bit.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  WasmBackend, Tensor, Variable, GradScaler, GradScalerError, MemfitError, InvalidArgumentError, SGD, AdamW, Linear, Llama,
  ByteTextDataset, Generator, manualSeed, autocast, tidy, clipGradNorm, cosineWithWarmup, mul, sum, square, scale as scaleOp,
  defineOp, apply, sameDtypeOrFloat32, add, type GradScalerStateDict, type Optimizer, type OptimizerHyper,
} from '../../src/index.js';
import { saveCheckpoint, loadCheckpoint, CheckpointError, loadSotuText } from '../../src/node.js';
import { f32Bits, snapshot } from '../helpers/optim_state.js';
import { golden, goldenRun } from '../helpers/grad_scaler.js';

const constant = (values: number[], shape: number[] = [values.length]) => new Variable(Tensor.from(be, values, shape));

const be = new WasmBackend();
test('the 20-step trace of torch.amp.GradScaler (gradscaler.json): the scale after every update, whether each step changed the parameter, its value, and the final state dict, exactly', async () => {
  const r = await goldenRun(be);
  assert.equal(r.scales, golden.trace.map((t) => t.scale_after_update));
  assert.equal(r.changed, golden.trace.map((t) => t.param_changed));
  assert.equal(r.param0, golden.trace.map((t) => t.param0));
  assert.equal(r.state, golden.state_dict_after);
  assert.ok(golden.trace.some((t) => t.grad_kind === 'nan') && golden.trace.some((t) => t.grad_kind === 'inf'));
  assert.is(be.memory.memoryAllocated(), 0, 'everything freed');
});

test("a fresh scaler's state equals PyTorch's defaults; options, getters and setters", async () => {
  assert.equal(await new GradScaler().stateDict(), golden.defaults);
  assert.equal({ ...GradScaler.DEFAULTS }, golden.defaults);
  const s = new GradScaler({ initScale: 1000, growthFactor: 3, backoffFactor: 0.25, growthInterval: 7 });
  assert.equal(await s.stateDict(), { scale: 1000, growth_factor: 3, backoff_factor: 0.25, growth_interval: 7, _growth_tracker: 0 });
  assert.is(await s.getScale(), 1000);
  s.setGrowthFactor(4); s.setBackoffFactor(0.125); s.setGrowthInterval(9);
  assert.equal([s.getGrowthFactor(), s.getBackoffFactor(), s.getGrowthInterval(), s.isEnabled()], [4, 0.125, 9, true]);
  for (const [opts, msg] of [
    [{ growthFactor: 1 }, /growthFactor must be a finite number > 1/], [{ backoffFactor: 1 }, /backoffFactor must be a number in \(0, 1\)/],
    [{ growthInterval: 2.5 }, /growthInterval must be an integer/], [{ initScale: 0 }, /initScale must be a finite number > 0/],
    [{ initScale: 1e39 }, /float32's range/], [{ growth: 2 }, /unknown option 'growth'/], [{ enabled: 1 }, /enabled must be true or false/],
  ] as const) {
    assert.throws(() => new GradScaler(opts as never), (e: Error) => e instanceof InvalidArgumentError && msg.test(e.message));
  }
  assert.throws(() => s.setGrowthInterval(0), /growthInterval/);
});

// ---- a small model --------------------------------------------------------------------------------

function tinyModel(seed = 3): { model: Linear; x: Tensor } {
  manualSeed(seed);
  const model = new Linear(6, 3, { backend: be });
  const x = Tensor.from(be, Float32Array.from({ length: 4 * 6 }, (_, i) => Math.sin(i * 1.3)), [4, 6], { category: 'data' });
  return { model, x };
}

/** loss = sum(linear(x)^2), times `bad` (inf/NaN) when given. */
function lossOf(model: Linear, x: Tensor, bad?: number): Variable {
  const k = bad === undefined ? null : constant([bad], []);
  try {
    return tidy(() => {
      const l = sum(square(model.forward(new Variable(x))));
      return k ? mul(l, k) : l;
    });
  } finally {
    k?.data.dispose(); // the product's node keeps its own reference
  }
}

/** Awaits fn's rejection and checks the error. */
async function rejects(fn: () => Promise<unknown>, check: (e: Error) => boolean, message: string): Promise<void> {
  try {
    await fn();
  } catch (e) {
    assert.ok(check(e as Error), `${message}: got ${(e as Error).message}`);
    return;
  }
  assert.unreachable(`${message}: did not reject`);
}

test('a step whose gradients hold inf leaves every parameter and every optimizer state bit-identical; the scale backs off; later steps go on', async () => {
  const { model, x } = tinyModel();
  const opt = new AdamW(model.parameters(), { lr: 0.01 });
  const scaler = new GradScaler({ initScale: 2 ** 10, growthInterval: 100 });
  const run = async (bad?: number) => {
    const loss = lossOf(model, x, bad);
    const scaled = scaler.scale(loss);
    scaled.backward();
    scaler.step(opt);
    scaler.update();
    opt.zeroGrad();
    loss.dispose(); scaled.dispose();
  };
  await run(); await run();
  await opt.synchronize();
  const before = await snapshot(model.parameters(), opt);
  await run(Infinity);
  await opt.synchronize();
  assert.equal(await snapshot(model.parameters(), opt), before, 'inf step changed nothing (params, expAvg, expAvgSq, step)');
  assert.is(await scaler.getScale(), 2 ** 9);
  await run(NaN);
  await opt.synchronize();
  assert.equal(await snapshot(model.parameters(), opt), before, 'NaN step changed nothing');
  assert.is(await scaler.getScale(), 2 ** 8);
  await run();
  await opt.synchronize();
  assert.not.equal(await snapshot(model.parameters(), opt), before, 'a finite step updates again');
  assert.equal(Object.values(opt.stateDict().state).map((s) => s.step), [3, 3], 'skipped steps are not counted');
  scaler.dispose(); opt.dispose(); model.dispose(); x.dispose();
});

test('two optimizers, one scaler: each skips on its own gradients, the update backs off if either held inf', async () => {
  const pa = new Variable(Tensor.from(be, [1, 2], [2], { category: 'parameter' }), { requiresGrad: true });
  const pb = new Variable(Tensor.from(be, [3, 4], [2], { category: 'parameter' }), { requiresGrad: true });
  const a = new SGD([pa], { lr: 0.5 }), b = new SGD([pb], { lr: 0.5 });
  const scaler = new GradScaler({ initScale: 4 });
  const big = constant([1, Infinity]);
  const loss = tidy(() => add(sum(pa), sum(mul(pb, big))));
  const scaled = scaler.scale(loss);
  scaled.backward();
  scaler.step(a);
  scaler.step(b);
  scaler.update();
  assert.equal(Array.from(await pa.data.toArray()), [0.5, 1.5], 'optimizer a (finite gradients) stepped');
  assert.equal(Array.from(await pb.data.toArray()), [3, 4], 'optimizer b (an inf gradient) did not');
  assert.is(await scaler.getScale(), 2, 'the combined flag backed the scale off');
  for (const v of [loss, scaled, big]) v.dispose();
  for (const o of [a, b]) { o.zeroGrad(); o.dispose(); }
  scaler.dispose(); pa.dispose(); pb.dispose();
});

// ---- misuse ---------------------------------------------------------------------------------------

/** What a refused call must leave as it was: parameters, gradients, optimizer state and the scale. */
async function everything(model: Linear, opt: Optimizer<OptimizerHyper>, scaler: GradScaler): Promise<unknown> {
  await opt.synchronize();
  const grads = await Promise.all(model.parameters().map((p) => (p.grad ? f32Bits(p.grad) : null)));
  return { params: await snapshot(model.parameters(), opt), grads, scaler: await scaler.stateDict() };
}

function expectMisuse(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: Error) => e instanceof GradScalerError && e instanceof MemfitError && (e as MemfitError).code === 'GRAD_SCALER' && message.test(e.message), `expected GradScalerError ${message}`);
}

test("PyTorch's misuse errors, each a GradScalerError that changes nothing: step twice, unscale twice, unscale after step, float16 gradients, no scale yet, no inf checks", async () => {
  const { model, x } = tinyModel();
  const opt = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
  const scaler = new GradScaler({ initScale: 256, growthInterval: 2 });
  // before any scale(): nothing to unscale with
  expectMisuse(() => scaler.unscale(opt), /call scale\(loss\) first/);
  expectMisuse(() => scaler.update(), /call scale\(loss\) first/);
  const loss = lossOf(model, x);
  const scaled = scaler.scale(loss);
  expectMisuse(() => scaler.step(opt), /no inf checks were recorded for this optimizer/); // no gradients yet
  expectMisuse(() => scaler.update(), /no inf checks were recorded prior to update/);
  scaled.backward();
  // unscale twice
  scaler.unscale(opt);
  let snap = await everything(model, opt, scaler);
  expectMisuse(() => scaler.unscale(opt), /unscale\(\) has already been called on this optimizer since the last update\(\)/);
  assert.equal(await everything(model, opt, scaler), snap, 'a second unscale changed something');
  // step after unscale does not unscale again: the update uses the once-unscaled gradients
  scaler.step(opt);
  snap = await everything(model, opt, scaler);
  expectMisuse(() => scaler.step(opt), /step\(\) has already been called since the last update\(\)/);
  expectMisuse(() => scaler.unscale(opt), /unscale\(\) is being called after step\(\)/);
  assert.equal(await everything(model, opt, scaler), snap, 'a refused step/unscale changed something');
  scaler.update();
  // float16 gradients (PyTorch: "Attempting to unscale FP16 gradients")
  const w = model.parameters()[0];
  w.grad!.dispose();
  w.grad = Tensor.from(be, new Float32Array(w.data.size).fill(0.5), w.shape, { dtype: 'float16', category: 'gradient' });
  snap = await everything(model, opt, scaler);
  expectMisuse(() => scaler.unscale(opt), /attempting to unscale float16 gradients \(parameter 0\)/);
  expectMisuse(() => scaler.step(opt), /attempting to unscale float16 gradients/);
  assert.equal(await everything(model, opt, scaler), snap, 'float16 gradients: nothing changed');
  // a bad new scale or state dict changes nothing either
  for (const bad of [0, -1, NaN, Infinity]) assert.throws(() => scaler.update(bad), /newScale must be a finite number > 0/);
  for (const [sd, msg] of [
    [{}, /state dict is empty, possibly because it was saved from a disabled GradScaler/],
    [{ ...golden.defaults, scale: -2 }, /scale must be a finite number > 0/],
    [{ ...golden.defaults, _growth_tracker: 1.5 }, /_growth_tracker must be an integer/],
    [{ ...golden.defaults, extra: 1 }, /unknown key 'extra'/],
    [{ scale: 2 }, /missing key 'growth_factor'/],
  ] as const) {
    expectMisuse(() => scaler.loadStateDict(sd as never), msg);
  }
  assert.equal(await everything(model, opt, scaler), snap, 'bad update/loadStateDict: nothing changed');
  loss.dispose(); scaled.dispose();
  opt.zeroGrad(); scaler.dispose(); opt.dispose(); model.dispose(); x.dispose();
});

test('update(newScale) with a number or a device tensor; loadStateDict then continues from the loaded state; a disabled scaler passes everything through', async () => {
  const { model, x } = tinyModel();
  const opt = new SGD(model.parameters(), { lr: 0.1 });
  const scaler = new GradScaler({ initScale: 8, growthInterval: 2 });
  const loss = lossOf(model, x);
  const scaled = scaler.scale(loss);
  assert.is((await scaled.data.toArray())[0], (await loss.data.toArray())[0] * 8, 'scale() multiplies by the scale');
  scaled.backward();
  scaler.step(opt);
  scaler.update(3);
  assert.is(await scaler.getScale(), 3);
  const t = Tensor.from(be, [0.75], [1]);
  scaler.update(t);
  t.dispose();
  assert.is(await scaler.getScale(), 0.75);
  scaler.loadStateDict({ scale: 64, growth_factor: 2, backoff_factor: 0.5, growth_interval: 2, _growth_tracker: 1 });
  assert.equal(await scaler.stateDict(), { scale: 64, growth_factor: 2, backoff_factor: 0.5, growth_interval: 2, _growth_tracker: 1 });
  opt.zeroGrad();
  const l2 = lossOf(model, x), s2 = scaler.scale(l2);
  s2.backward(); scaler.step(opt); scaler.update();
  assert.is(await scaler.getScale(), 128, 'tracker 1 + a clean step reaches the interval 2: the scale grows');
  // disabled
  const off = new GradScaler({ enabled: false });
  assert.is(off.scale(l2), l2);
  assert.is(await off.getScale(), 1);
  assert.equal(await off.stateDict(), {});
  off.loadStateDict(golden.defaults); // ignored, as PyTorch's
  opt.zeroGrad();
  const l3 = lossOf(model, x);
  l3.backward();
  const before = await snapshot(model.parameters(), opt);
  off.unscale(opt); off.step(opt); off.update();
  assert.not.equal(await snapshot(model.parameters(), opt), before, 'disabled: step() is optimizer.step()');
  for (const v of [loss, scaled, l2, s2, l3]) v.dispose();
  opt.zeroGrad(); scaler.dispose(); opt.dispose(); model.dispose(); x.dispose();
});

test('clipGradNorm after unscale (the seed recipe) equals clipping the unscaled gradients, bit for bit; an inf step is still skipped after clipping', async () => {
  const results: string[][] = [];
  for (const useScaler of [false, true]) {
    const { model, x } = tinyModel(11);
    const opt = new AdamW(model.parameters(), { lr: 0.05 });
    const scaler = new GradScaler({ initScale: 2 ** 12 });
    for (let step = 0; step < 4; step++) {
      const loss = lossOf(model, x);
      if (useScaler) {
        const scaled = scaler.scale(loss);
        scaled.backward();
        scaled.dispose();
        scaler.unscale(opt);
        clipGradNorm(model.parameters(), 0.5).dispose();
        scaler.step(opt);
        scaler.update();
      } else {
        loss.backward();
        clipGradNorm(model.parameters(), 0.5).dispose();
        opt.step();
      }
      opt.zeroGrad();
      loss.dispose();
    }
    await opt.synchronize();
    results.push(await snapshot(model.parameters(), opt));
    if (useScaler) {
      const loss = lossOf(model, x, Infinity);
      const scaled = scaler.scale(loss);
      scaled.backward();
      scaler.unscale(opt);
      const norm = clipGradNorm(model.parameters(), 0.5);
      assert.ok(!Number.isFinite((await norm.toArray())[0]), 'the norm is not finite');
      norm.dispose();
      scaler.step(opt);
      scaler.update();
      await opt.synchronize();
      assert.equal(await snapshot(model.parameters(), opt), results[1], 'clipped inf step skipped');
      loss.dispose(); scaled.dispose();
      opt.zeroGrad();
    }
    scaler.dispose(); opt.dispose(); model.dispose(); x.dispose();
  }
  assert.equal(results[1], results[0]);
});

// ---- underflow ------------------------------------------------------------------------------------

/**
 * What pure float16 training does to gradients: PyTorch's half-precision backward kernels hand on
 * float16 gradients. memfit's own backward computes and passes float32 gradients, so this op
 * (identity forward) rounds the gradient it passes to float16 and back, as a float16 backward does.
 */
const FLOAT16_BACKWARD = defineOp({
  name: 'float16_backward',
  outputDtype: sameDtypeOrFloat32,
  forward: (io, [x]) => {
    const y = io.output(x.data, x.shape);
    x.backend.cast(x.data, y);
    return {
      y,
      backward: (gy) => {
        const h = gy.to('float16');
        try { return [h.to('float32')]; } finally { h.dispose(); }
      },
    };
  },
});

test('pure float16 gradients without loss scaling lose small gradients (underflow to 0, or to a wrong subnormal); with the GradScaler they survive and the update is right', async () => {
  // d loss / d p = c: one gradient below float16's smallest subnormal (2^-24), two near it, one normal.
  const c = [2 ** -26, 2 ** -23, 3e-8, 1e-3];
  const cv = constant(c);
  const grads: Float32Array[] = [];
  const params: Float32Array[] = [];
  for (const useScaler of [false, true]) {
    const p = new Variable(Tensor.from(be, [0, 0, 0, 0], [4], { category: 'parameter' }), { requiresGrad: true });
    const opt = new SGD([p], { lr: 1 });
    const scaler = new GradScaler(); // 2^16
    const loss = tidy(() => sum(mul(apply(FLOAT16_BACKWARD, [p]), cv)));
    if (useScaler) {
      const scaled = scaler.scale(loss);
      scaled.backward();
      scaled.dispose();
      scaler.unscale(opt);
      grads.push((await p.grad!.toArray()) as Float32Array);
      scaler.step(opt);
      scaler.update();
    } else {
      loss.backward();
      grads.push((await p.grad!.toArray()) as Float32Array);
      opt.step();
    }
    params.push((await p.data.toArray()) as Float32Array);
    loss.dispose(); opt.zeroGrad(); opt.dispose(); scaler.dispose(); p.dispose();
  }
  cv.dispose();
  const [plain, scaled] = grads;
  assert.is(plain[0], 0, 'the smallest gradient underflows to 0 without scaling');
  assert.is(params[0][0], 0, '... and its parameter never moves');
  assert.ok(Math.abs(plain[2] - c[2]) / c[2] > 0.9, `3e-8 becomes the subnormal ${plain[2]} (about double)`);
  for (let i = 0; i < 4; i++) {
    assert.ok(Math.abs(scaled[i] - c[i]) <= 2 ** -11 * c[i], `scaled: gradient ${i} ${scaled[i]} within float16's rounding of ${c[i]}`);
    assert.is(params[1][i], -scaled[i], 'the update uses it');
  }
  assert.is(scaled[0], Math.fround(c[0]), 'exact: 2^-26 * 2^16 is a float16 value and the unscale is exact');
});

// ---- fp16-mixed training ----------------------------------------------------------------------------

test('fp16-mixed training (autocast float16 + GradScaler) converges on wasm and survives injected inf and NaN gradients (those steps change nothing)', async () => {
  const base = be.memory.memoryAllocated();
  manualSeed(0);
  const model = new Llama({ vocabSize: 256, hiddenSize: 32, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 64, maxPositionEmbeddings: 32 }, { backend: be });
  const params = model.parameters();
  const opt = new AdamW(params, { lr: 1e-2 });
  const scaler = new GradScaler({ growthInterval: 25 });
  const data = new ByteTextDataset(loadSotuText());
  const sampler = new Generator(1);
  const INJECT = new Map([[30, Infinity], [31, NaN], [70, -Infinity]]);
  const losses: number[] = [];
  let lastScale = 65536;
  for (let step = 0; step < 120; step++) {
    const batch = data.batch(sampler, 8, 32);
    const ids = Tensor.from(be, batch.ids, [8, 32], { dtype: 'int32', category: 'data' });
    const targets = Tensor.from(be, batch.targets, [8, 32], { dtype: 'int32', category: 'data' });
    const loss = tidy(() => autocast({ dtype: 'float16' }, () => model.loss(ids, targets)));
    const scaled = scaler.scale(loss);
    scaled.backward();
    const bad = INJECT.get(step);
    let before: string[] | null = null;
    if (bad !== undefined) {
      // an overflowed gradient element, as a float16 backward would make it
      const g = params[step % params.length].grad!;
      be.write(g.storage, Float32Array.of(bad), 4 * (step % g.size));
      await opt.synchronize();
      before = await snapshot(params, opt);
    }
    scaler.unscale(opt);
    clipGradNorm(params, 1).dispose();
    scaler.step(opt);
    scaler.update();
    opt.zeroGrad();
    losses.push((await loss.data.toArray())[0]);
    scaled.dispose(); loss.dispose(); ids.dispose(); targets.dispose();
    const s = await scaler.getScale();
    if (before) {
      await opt.synchronize();
      assert.equal(await snapshot(params, opt), before, `step ${step}: the injected ${bad} changed a parameter or the optimizer state`);
      assert.is(s, lastScale / 2, `step ${step}: the scale backs off`);
    }
    lastScale = s;
  }
  const first = losses[0], last = losses.slice(-10).reduce((a, b) => a + b) / 10;
  assert.ok(Math.abs(first - Math.log(256)) < 0.1, `first loss ${first} is about ln 256`);
  assert.ok(last < 0.55 * first, `fp16-mixed loss ${first.toFixed(2)} -> ${last.toFixed(2)} (mean of the last 10) must fall below 0.55 of the first`);
  assert.ok(losses.every(Number.isFinite), 'every loss finite');
  await opt.synchronize();
  assert.ok(Object.values(opt.stateDict().state).every((st) => st.step === 120 - INJECT.size), 'the injected steps were not counted');
  assert.ok(lastScale > 65536 / 8, `the scale recovers by growing (now ${lastScale})`);
  scaler.dispose(); opt.dispose(); model.dispose();
  assert.is(be.memory.memoryAllocated(), base, 'nothing left allocated');
});

// ---- checkpoints ----------------------------------------------------------------------------------

test('the scaler joins saveCheckpoint/loadCheckpoint: a run resumed in fresh objects (steps and scale included) is bit-identical to an uninterrupted one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'memfit-scaler-'));
  const path = join(dir, 'ckpt.safetensors');
  const BAD = new Map([[2, Infinity], [6, NaN]]);
  const make = (seed: number) => {
    const { model, x } = tinyModel(seed);
    const opt = new AdamW(model.parameters(), { lr: 0.05 });
    const sched = cosineWithWarmup(opt, { warmupSteps: 2, totalSteps: 8 });
    const scaler = new GradScaler({ initScale: 2 ** 10, growthInterval: 3 });
    return { model, x, opt, sched, scaler };
  };
  type Run = ReturnType<typeof make>;
  const train = async (r: Run, from: number, to: number) => {
    const trace: unknown[] = [];
    for (let step = from; step < to; step++) {
      const loss = lossOf(r.model, r.x, BAD.get(step));
      const scaled = r.scaler.scale(loss);
      scaled.backward();
      r.scaler.step(r.opt);
      r.scaler.update();
      r.sched.step();
      r.opt.zeroGrad();
      loss.dispose(); scaled.dispose();
      trace.push({ step, scale: await r.scaler.getScale(), params: await Promise.all(r.model.parameters().map((p) => f32Bits(p.data))) });
    }
    return trace;
  };
  const whole = make(5);
  const all = await train(whole, 0, 8);
  const first = make(5);
  const head = await train(first, 0, 4);
  await saveCheckpoint(path, { model: first.model, optimizer: first.opt, scheduler: first.sched, scaler: first.scaler, step: 4 });
  const resumed = make(99); // other initial weights: everything must come from the file
  const { step } = await loadCheckpoint(path, { model: resumed.model, optimizer: resumed.opt, scheduler: resumed.sched, scaler: resumed.scaler });
  assert.is(step, 4);
  assert.equal(await resumed.scaler.stateDict(), await first.scaler.stateDict());
  const tail = await train(resumed, 4, 8);
  assert.equal([...head, ...tail], all);
  await whole.opt.synchronize(); await resumed.opt.synchronize();
  assert.equal(resumed.opt.stateDict().state[0].step, whole.opt.stateDict().state[0].step);
  // A checkpoint without a scaler, loaded with one: refused, nothing changed.
  const noScaler = join(dir, 'no-scaler.safetensors');
  await saveCheckpoint(noScaler, { model: first.model, optimizer: first.opt, scheduler: first.sched, step: 4 });
  const fresh = make(7);
  const before = { sd: await fresh.scaler.stateDict(), sched: fresh.sched.stateDict(), params: await Promise.all(fresh.model.parameters().map((p) => f32Bits(p.data))) };
  await rejects(() => loadCheckpoint(noScaler, { model: fresh.model, optimizer: fresh.opt, scheduler: fresh.sched, scaler: fresh.scaler }), (e) => e instanceof CheckpointError && /no grad scaler state/.test(e.message), 'no scaler state');
  // A disabled scaler's state ({}) into an enabled one: the scaler refuses, the scheduler is restored.
  const disabled = join(dir, 'disabled.safetensors');
  await saveCheckpoint(disabled, { model: first.model, optimizer: first.opt, scheduler: first.sched, scaler: new GradScaler({ enabled: false }), step: 4 });
  await rejects(() => loadCheckpoint(disabled, { model: fresh.model, optimizer: fresh.opt, scheduler: fresh.sched, scaler: fresh.scaler }), (e) => e instanceof GradScalerError && /empty/.test(e.message), 'disabled scaler state');
  assert.equal({ sd: await fresh.scaler.stateDict(), sched: fresh.sched.stateDict(), params: await Promise.all(fresh.model.parameters().map((p) => f32Bits(p.data))) }, before);
  for (const r of [whole, first, resumed, fresh]) { r.scaler.dispose(); r.opt.dispose(); r.model.dispose(); r.x.dispose(); }
  assert.is(be.memory.memoryAllocated(), 0, 'everything freed');
});

test.run();
