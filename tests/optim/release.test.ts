// Gradient release (Optimizer.attachToBackward): the post-accumulate-grad hook fires once per leaf
// when its gradient is complete; a step inside backward equals backward-then-step bit for bit on
// wasm (AdamW, SGD, AdamW8bit, bfloat16 weights with stochastic rounding, under checkpointing and
// autocast); the gradient category's peak drops; and the combinations that cannot be honest
// (a GradScaler, global-norm clipping, step() after backward) throw GradientReleaseError, leaving
// every parameter and state bit-identical.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Variable, tidy } from '../../src/autograd/variable.js';
import { Linear } from '../../src/nn/layers.js';
import { add, mul, sum } from '../../src/autograd/ops.js';
import { Llama, type LlamaConfig } from '../../src/nn/llama.js';
import { Generator } from '../../src/random.js';
import { autocast } from '../../src/amp/autocast.js';
import { GradScaler } from '../../src/amp/grad_scaler.js';
import { checkpointModules } from '../../src/recompute/checkpoint.js';
import { AdamW, SGD, AdamW8bit, clipGradNorm, GradientReleaseError, type Optimizer, type OptimizerHyper } from '../../src/optim/index.js';

const be = new WasmBackend();

const CONFIG: LlamaConfig = { vocabSize: 256, hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 4, intermediateSize: 64, maxPositionEmbeddings: 16, rmsNormEps: 1e-5 };

function batch(seed: number): [Tensor, Tensor] {
  const g = new Generator(seed);
  const ids = Int32Array.from({ length: 2 * 16 }, () => Math.floor(g.random() * 256));
  const targets = Int32Array.from({ length: 2 * 16 }, () => Math.floor(g.random() * 256));
  return [Tensor.from(be, ids, [2, 16], { dtype: 'int32', category: 'data' }), Tensor.from(be, targets, [2, 16], { dtype: 'int32', category: 'data' })];
}

async function bits(t: Tensor): Promise<number[]> {
  const a = await t.toArray();
  const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  return [...bytes];
}

async function snapshot(model: Llama, opt: Optimizer<OptimizerHyper>): Promise<Record<string, number[] | number>> {
  const out: Record<string, number[] | number> = {};
  for (const [name, p] of model.namedParameters()) {
    out[name] = await bits(p.data);
    const s = opt.getState(p) ?? {};
    for (const [k, v] of Object.entries(s)) out[`${name}.${k}`] = v instanceof Tensor ? await bits(v) : v;
  }
  return out;
}

interface Setup {
  make: (params: Variable[]) => Optimizer<OptimizerHyper>;
  dtype?: 'bfloat16';
  checkpoint?: boolean;
  autocast?: boolean;
}

/** Trains two identical models for `steps` steps: one with backward then step, one with release; returns both snapshots. */
async function compare(setup: Setup, steps = 3): Promise<void> {
  const models = [0, 1].map(() => {
    const m = new Llama(CONFIG, { backend: be, generator: new Generator(7) });
    if (setup.dtype) m.to(setup.dtype);
    if (setup.checkpoint) checkpointModules(m, /^layers\.\d+$/);
    return m;
  });
  const opts = models.map((m) => setup.make(m.parameters()));
  const detach = opts[1].attachToBackward();
  try {
    for (let s = 0; s < steps; s++) {
      for (let k = 0; k < 2; k++) {
        const [ids, targets] = batch(100 + s);
        const fwd = () => tidy(() => models[k].loss(ids, targets));
        const loss = setup.autocast ? autocast({ dtype: 'bfloat16' }, fwd) : fwd();
        loss.backward();
        if (k === 0) opts[0].step();
        opts[k].zeroGrad();
        loss.dispose(); ids.dispose(); targets.dispose();
        for (const p of models[k].parameters()) assert.is(p.grad, null, 'no gradient outlives the step');
      }
    }
    const [a, b] = [await snapshot(models[0], opts[0]), await snapshot(models[1], opts[1])];
    assert.equal(Object.keys(b).sort(), Object.keys(a).sort());
    for (const k of Object.keys(a)) assert.equal(b[k], a[k], `${k} differs`);
  } finally {
    detach();
    opts.forEach((o) => o.dispose());
    models.forEach((m) => m.dispose());
  }
}

test('post-accumulate-grad hook: once per leaf, after every contribution; not for leaves without a gradient; removable', async () => {
  const x = Variable.from(be, [1, 2, 3], [3], { requiresGrad: true });
  const y = Variable.from(be, [4, 5, 6], [3], { requiresGrad: true });
  const unused = Variable.from(be, [1, 1, 1], [3], { requiresGrad: true });
  const seen: string[] = [];
  // Gradients are accumulated out of place: a reference taken in the hook is the gradient as it was then.
  const atHook: Tensor[] = [];
  const removers = [
    x.registerPostAccumulateGradHook((v) => { seen.push('x'); atHook.push(v.grad!.reshape(v.shape)); }),
    y.registerPostAccumulateGradHook(() => { seen.push('y'); }),
    unused.registerPostAccumulateGradHook(() => { seen.push('unused'); }),
  ];
  const removed = x.registerPostAccumulateGradHook(() => { seen.push('removed'); });
  removed();
  // x reaches the loss along three edges (x*x uses it twice, and x*y): its hook must see 2x + y.
  const l = sum(add(mul(x, x), mul(x, y)));
  l.backward();
  assert.equal(seen.sort(), ['x', 'y']);
  assert.equal(Array.from(await atHook[0].toArray()), [6, 9, 12]);
  atHook[0].dispose();
  for (const r of removers) r();
  x.zeroGrad(); y.zeroGrad();
  seen.length = 0;
  sum(mul(x, y)).backward();
  assert.equal(seen, []);
  assert.throws(() => l.registerPostAccumulateGradHook(() => {}), /leaf/);
});

test('release equals backward then step, bit for bit: AdamW', async () => {
  await compare({ make: (ps) => new AdamW(ps, { lr: 1e-2, weightDecay: 0.1 }) });
});

test('release equals backward then step, bit for bit: SGD with momentum and two groups', async () => {
  await compare({ make: (ps) => new SGD([{ params: ps.slice(0, 3), lr: 0.1 }, { params: ps.slice(3), weightDecay: 0.01 }], { lr: 0.05, momentum: 0.9 }) });
});

test('release equals backward then step, bit for bit: AdamW8bit (8-bit state for the embedding and head)', async () => {
  await compare({ make: (ps) => new AdamW8bit(ps, { lr: 1e-2 }) });
});

test('release equals backward then step, bit for bit: bfloat16 weights with stochastic rounding', async () => {
  await compare({ dtype: 'bfloat16', make: (ps) => new AdamW(ps, { lr: 1e-2, stochasticRounding: true, roundingSeed: 5 }) });
});

test('release equals backward then step, bit for bit: per-layer checkpointing under bfloat16 autocast, AdamW8bit', async () => {
  await compare({ checkpoint: true, autocast: true, make: (ps) => new AdamW8bit(ps, { lr: 1e-2 }) });
});

test('release: the gradient category peaks far lower (a tiny-Llama step)', async () => {
  const peak = async (release: boolean): Promise<number> => {
    const m = new Llama({ ...CONFIG, numHiddenLayers: 4 }, { backend: be, generator: new Generator(1) });
    const opt = new AdamW(m.parameters(), { lr: 1e-3 });
    const detach = release ? opt.attachToBackward() : () => {};
    const [ids, targets] = batch(3);
    be.memory.resetPeakMemoryStats();
    const base = be.memory.memoryAllocated('gradient');
    const loss = tidy(() => m.loss(ids, targets));
    loss.backward();
    if (!release) opt.step();
    opt.zeroGrad();
    const p = be.memory.maxMemoryAllocated('gradient') - base;
    loss.dispose(); ids.dispose(); targets.dispose(); detach(); opt.dispose(); m.dispose();
    return p;
  };
  const without = await peak(false), withRelease = await peak(true);
  const paramBytes = new Llama({ ...CONFIG, numHiddenLayers: 4 }, { backend: be, generator: new Generator(1) });
  const total = paramBytes.parameters().reduce((a, p) => a + p.data.size * 4, 0);
  const largest = Math.max(...paramBytes.parameters().map((p) => p.data.size * 4));
  paramBytes.dispose();
  assert.is(without, total, 'without release every gradient is alive at once');
  assert.ok(withRelease <= 2 * largest, `with release: ${withRelease} bytes, at most two of the largest gradient (${largest})`);
  assert.ok(withRelease < without / 4, `${withRelease} vs ${without}`);
});

test('release under a GradScaler throws before any update: every parameter and state bit-identical; scaler.step refuses', async () => {
  const m = new Llama(CONFIG, { backend: be, generator: new Generator(2) });
  const opt = new AdamW(m.parameters(), { lr: 1e-2 });
  // one normal step first, so that there is state to keep
  const [ids, targets] = batch(4);
  const l0 = tidy(() => m.loss(ids, targets));
  l0.backward(); opt.step(); opt.zeroGrad(); l0.dispose();
  const before = await snapshot(m, opt);
  const detach = opt.attachToBackward();
  const scaler = new GradScaler({ initScale: 2 ** 16 });
  const loss = tidy(() => m.loss(ids, targets));
  const scaled = scaler.scale(loss);
  try {
    scaled.backward();
    assert.unreachable('should throw');
  } catch (e) {
    assert.instance(e, GradientReleaseError);
    assert.match((e as Error).message, /GradScaler/);
  }
  assert.equal(await snapshot(m, opt), before);
  assert.throws(() => scaler.step(opt), (e: unknown) => e instanceof GradientReleaseError);
  assert.throws(() => scaler.unscale(opt), (e: unknown) => e instanceof GradientReleaseError);
  assert.equal(await snapshot(m, opt), before);
  scaled.dispose(); loss.dispose(); ids.dispose(); targets.dispose();
  opt.zeroGrad(); detach(); scaler.dispose(); opt.dispose(); m.dispose();
});

test('release: a refused GradScaler backward computes no gradient; the next backward steps as if it never ran', async () => {
  const runs: number[][] = [];
  for (const refused of [false, true]) {
    const lin = new Linear(4, 3, { backend: be, generator: new Generator(3) });
    const opt = new SGD(lin.parameters(), { lr: 1e-2 });
    const detach = opt.attachToBackward();
    const x = new Variable(Tensor.from(be, Float32Array.from({ length: 8 }, (_, i) => i / 4), [2, 4]), { requiresGrad: false });
    const base = be.memory.memoryAllocated('gradient');
    if (refused) {
      const scaler = new GradScaler();
      const loss = tidy(() => sum(lin.forward(x)));
      const scaled = scaler.scale(loss);
      assert.throws(() => scaled.backward(), (e: unknown) => e instanceof GradientReleaseError && /GradScaler/.test((e as Error).message));
      for (const p of lin.parameters()) assert.is(p.grad, null, 'a refused backward leaves no gradient');
      assert.is(be.memory.memoryAllocated('gradient'), base);
      scaled.dispose(); loss.dispose(); scaler.dispose();
    }
    const loss = tidy(() => sum(lin.forward(x)));
    loss.backward();
    loss.dispose();
    runs.push([...(await lin.weight.data.toArray()), ...(await lin.bias!.data.toArray())]);
    detach(); opt.dispose(); x.dispose(); lin.dispose();
  }
  assert.equal(runs[1], runs[0]);
});

test('release: a backward that throws part-way leaves no gradient on a released parameter', () => {
  let partial = 0;
  for (const swap of [false, true]) {
    const w = new Variable(Tensor.from(be, [1, 2, 3], [3]), { requiresGrad: true });
    const z = new Variable(Tensor.from(be, [4, 5, 6], [3]), { requiresGrad: true });
    const x = new Variable(Tensor.from(be, [7, 8, 9], [3]), { requiresGrad: false });
    const opt = new SGD([w], { lr: 1e-2 });
    const detach = opt.attachToBackward();
    const removeHook = z.registerPostAccumulateGradHook(() => { partial += w.grad ? 1 : 0; throw new Error('hook failed'); });
    // w reaches the loss twice: z's hook throws after one or both of w's contributions
    const l = sum(swap ? add(mul(w, x), mul(w, z)) : add(mul(w, z), mul(w, x)));
    assert.throws(() => l.backward(), /hook failed/);
    assert.is(w.grad, null, 'no stale gradient for the next backward to add onto');
    removeHook(); z.zeroGrad(); detach(); opt.dispose();
    for (const v of [w, z, x, l]) v.dispose();
  }
  assert.ok(partial > 0, 'the throw came while w held a partial gradient (the case under test)');
});

test('release: no parameter escapes it (a group added while attached, a frozen parameter at attach), and dispose() detaches', async () => {
  const a = new Variable(Tensor.from(be, [1, 2], [2]), { requiresGrad: true });
  const b = new Variable(Tensor.from(be, [3, 4], [2]), { requiresGrad: true });
  const opt = new SGD([a], { lr: 0.1 });
  const detach = opt.attachToBackward();
  assert.throws(() => opt.addParamGroup({ params: [b] }), (e: unknown) => e instanceof GradientReleaseError && /addParamGroup: this optimizer steps inside backward.*detach, add the group, then attach again/.test((e as Error).message));
  assert.is(opt.paramGroups.length, 1, 'nothing added');
  detach();
  opt.addParamGroup({ params: [b] });
  b.requiresGrad = false;
  assert.throws(() => opt.attachToBackward(), (e: unknown) => e instanceof GradientReleaseError && /parameter 1 does not require grad; .*set requiresGrad first, or leave frozen parameters out/.test((e as Error).message));
  assert.not.ok(opt.attachedToBackward, 'a refused attach leaves it detached');
  b.requiresGrad = true;
  opt.attachToBackward();
  // dispose() detaches: a later backward steps nothing and makes no state; another optimizer may take the parameters
  opt.dispose();
  const before = [...await a.data.toArray()];
  const l = sum(add(a, b));
  l.backward();
  assert.equal([...await a.data.toArray()], before, 'a disposed optimizer does not step');
  assert.ok(a.grad !== null, 'the gradient stays, as without release');
  assert.is(be.memory.memoryAllocated('optimizer'), 0);
  const other = new SGD([a, b], { lr: 0.1 });
  a.zeroGrad(); b.zeroGrad();
  other.attachToBackward();
  other.dispose();
  for (const v of [a, b, l]) v.dispose();
});

test('release: global-norm clipping and step() throw; per-parameter clipping equals clipGradNorm([p]) then step', async () => {
  const models = [0, 1].map(() => new Llama(CONFIG, { backend: be, generator: new Generator(9) }));
  const opts = models.map((m) => new AdamW(m.parameters(), { lr: 1e-2 }));
  const detach = opts[1].attachToBackward({ maxGradNorm: 0.05 });
  assert.throws(() => clipGradNorm(models[1].parameters(), 1), (e: unknown) => e instanceof GradientReleaseError && /per parameter/.test((e as Error).message));
  assert.throws(() => opts[1].step(), (e: unknown) => e instanceof GradientReleaseError && /micro-batches/.test((e as Error).message));
  assert.throws(() => opts[1].attachToBackward(), (e: unknown) => e instanceof GradientReleaseError);
  assert.throws(() => new AdamW(models[1].parameters()).attachToBackward(), (e: unknown) => e instanceof GradientReleaseError && /another optimizer/.test((e as Error).message));
  for (let k = 0; k < 2; k++) {
    const [ids, targets] = batch(11);
    const loss = tidy(() => models[k].loss(ids, targets));
    loss.backward();
    if (k === 0) {
      for (const p of models[0].parameters()) clipGradNorm(p, 0.05).dispose();
      opts[0].step();
      opts[0].zeroGrad();
    }
    loss.dispose(); ids.dispose(); targets.dispose();
  }
  const [a, b] = [await snapshot(models[0], opts[0]), await snapshot(models[1], opts[1])];
  for (const k of Object.keys(a)) assert.equal(b[k], a[k], `${k} differs`);
  detach();
  // detached: step() and global clipping work again
  clipGradNorm(models[1].parameters(), 1).dispose();
  opts[1].step();
  assert.throws(() => opts[1].attachToBackward({ maxGradNorm: -1 }), /maxGradNorm/);
  opts.forEach((o) => o.dispose());
  models.forEach((m) => m.dispose());
});

test.run();
