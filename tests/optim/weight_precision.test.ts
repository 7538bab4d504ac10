// Low-precision weights in the optimizers (wasm): updates below half a bfloat16 ulp are lost with
// nearest rounding, accumulate in float32 master weights, and survive on average with stochastic
// rounding, whose stream advances every step and resumes from a state dict; a skipped (found-inf)
// step leaves every bit; bad options are refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { AdamW, InvalidArgumentError, SGD, decode, encode, manualSeed, type Variable } from '../../src/index.js';
import { param, setGrad } from '../helpers/values.js';

const be = new WasmBackend();
const N = 4096;

async function values(v: Variable | Tensor): Promise<Float32Array> {
  return (await (v instanceof Tensor ? v : v.data).toArray()) as Float32Array;
}

const mean = (a: ArrayLike<number>) => Array.from(a).reduce((s, x) => s + x, 0) / a.length;

/** N bfloat16 weights at 1.0 after `steps` SGD steps of lr 1e-3 with gradient 1 (each step: -0.001, an eighth of a bfloat16 ulp at 1). */
async function sgdOnes(options: { masterWeights?: boolean; stochasticRounding?: boolean; roundingSeed?: number }, steps: number) {
  const p = param(be, new Float32Array(N).fill(1), [N], 'bfloat16');
  const opt = new SGD([p], { lr: 1e-3, ...options });
  for (let s = 0; s < steps; s++) {
    setGrad(p, new Float32Array(N).fill(1));
    opt.step();
  }
  return { p, opt };
}

test('nearest rounding loses updates below half an ulp: bfloat16 weights at 1.0 never move', async () => {
  const { p, opt } = await sgdOnes({}, 40);
  assert.ok((await values(p)).every((x) => x === 1));
  opt.dispose(); p.dispose();
});

test('masterWeights: the update accumulates in a float32 copy (optimizer category) and the weight is its nearest bfloat16', async () => {
  const { p, opt } = await sgdOnes({ masterWeights: true }, 40);
  const master = opt.getState(p)!.master as Tensor;
  assert.is(master.dtype, 'float32');
  assert.is(master.category, 'optimizer');
  let want = Math.fround(1);
  for (let s = 0; s < 40; s++) want = Math.fround(want - Math.fround(1e-3)); // SGD: p -= lr * g, in float32
  const m = await values(master);
  assert.ok(m.every((x) => x === want), `master ${m[0]} vs ${want}`);
  const w = await values(p);
  const rounded = decode(encode([want], 'bfloat16'), 'bfloat16')[0];
  assert.ok(w.every((x) => x === rounded), `weight ${w[0]} vs ${rounded}`);
  assert.ok(rounded < 0.97, 'the weight moved');
  opt.dispose(); p.dispose();
});

test('stochasticRounding: the weights move by the update on average (no master copy), every value a bfloat16', async () => {
  const { p, opt } = await sgdOnes({ stochasticRounding: true, roundingSeed: 7 }, 40);
  const w = await values(p);
  // Each step's rounding adds an error of mean 0 and variance <= ulp^2 / 4 (ulp 2^-8 below 1): the
  // mean of N weights after 40 steps has a standard deviation near 1e-4; 2e-3 is far beyond it.
  assert.ok(Math.abs(mean(w) - 0.96) < 2e-3, `mean ${mean(w)}`);
  const bf = decode(encode(w, 'bfloat16'), 'bfloat16');
  assert.ok(w.every((x, i) => x === bf[i]), 'every weight is a bfloat16 value');
  assert.is(opt.getState(p)!.master, undefined, 'no master copy');
  assert.is(opt.getState(p)!.roundingStep, 40);
  opt.dispose(); p.dispose();
});

test('the stochastic-rounding stream advances every step, is reproducible from its seed and differs between seeds', async () => {
  // Step from 1.0 by 2^-9 twice: 1 - 2^-9 lies halfway between the bfloat16 neighbours 1 - 2^-8 and
  // 1, so about half of the weights round down, and which ones differs between the two steps.
  const p = param(be, new Float32Array(N).fill(1), [N], 'bfloat16');
  const opt = new SGD([p], { lr: 1, stochasticRounding: true, roundingSeed: 3 });
  const half = 2 ** -9;
  setGrad(p, new Float32Array(N).fill(half));
  opt.step();
  const first = await values(p);
  const movedFirst = first.map((x) => (x < 1 ? 1 : 0));
  // back to 1.0, and the same step again
  p.data.backend.write(p.data.storage, encode(new Float32Array(N).fill(1), 'bfloat16'));
  setGrad(p, new Float32Array(N).fill(half));
  opt.step();
  const second = await values(p);
  const movedSecond = second.map((x) => (x < 1 ? 1 : 0));
  const ones = mean(movedFirst);
  assert.ok(ones > 0.4 && ones < 0.6, `about half round down (${ones})`);
  assert.not.equal(Array.from(movedFirst), Array.from(movedSecond), 'a fresh stream at the second step');
  opt.dispose(); p.dispose();

  const run = async (seed: number) => {
    const { p: q, opt: o } = await sgdOnes({ stochasticRounding: true, roundingSeed: seed }, 3);
    const v = await values(q);
    o.dispose(); q.dispose();
    return Array.from(v);
  };
  assert.equal(await run(11), await run(11));
  assert.not.equal(await run(11), await run(12));
});

test('without roundingSeed the seed comes from the default generator (manualSeed reproduces a run) and is kept in the param group', async () => {
  manualSeed(5);
  const a = await sgdOnes({ stochasticRounding: true }, 2);
  manualSeed(5);
  const b = await sgdOnes({ stochasticRounding: true }, 2);
  assert.is(a.opt.paramGroups[0].roundingSeed, b.opt.paramGroups[0].roundingSeed);
  assert.ok(Number.isInteger(a.opt.paramGroups[0].roundingSeed));
  assert.equal(Array.from(await values(a.p)), Array.from(await values(b.p)));
  for (const r of [a, b]) { r.opt.dispose(); r.p.dispose(); }
});

test('AdamW with master weights and stochastic rounding resumes from its state dict bit for bit', async () => {
  const grads = Array.from({ length: 6 }, (_, s) => Float32Array.from({ length: 64 }, (_, i) => Math.sin(i * 0.37 + s) * 1e-2));
  const init = Float32Array.from({ length: 64 }, (_, i) => Math.cos(i * 0.11));
  const make = () => {
    const p = param(be, init, [64], 'bfloat16');
    return { p, opt: new AdamW([p], { lr: 1e-3, masterWeights: true, stochasticRounding: true, roundingSeed: 9 }) };
  };
  const a = make();
  for (let s = 0; s < 6; s++) { setGrad(a.p, grads[s]); a.opt.step(); }
  const b = make();
  for (let s = 0; s < 3; s++) { setGrad(b.p, grads[s]); b.opt.step(); }
  const saved = b.opt.stateDict();
  assert.equal(Object.keys(saved.state[0]).sort(), ['expAvg', 'expAvgSq', 'master', 'roundingStep', 'step']);
  const c = make();
  be.cast(b.p.data, c.p.data);
  c.opt.loadStateDict(saved);
  for (let s = 3; s < 6; s++) { setGrad(c.p, grads[s]); c.opt.step(); }
  assert.equal(Array.from(await values(c.p)), Array.from(await values(a.p)));
  assert.equal(Array.from(await values(c.opt.getState(c.p)!.master as Tensor)), Array.from(await values(a.opt.getState(a.p)!.master as Tensor)));
  // A state saved without master weights loads into an optimizer that keeps them (the copy starts at the next step).
  const plain = new AdamW([c.p], { lr: 1e-3 });
  setGrad(c.p, grads[0]); plain.step();
  const d = make();
  d.opt.loadStateDict(plain.stateDict());
  setGrad(d.p, grads[1]); d.opt.step();
  assert.ok(d.opt.getState(d.p)!.master instanceof Tensor);
  for (const r of [a, b, c, d]) { r.opt.dispose(); r.p.dispose(); }
  plain.dispose();
  assert.is(be.memory.memoryAllocated(), 0, 'everything freed');
});

test('a step under a set found-inf flag leaves a bfloat16 weight and its master copy bit-identical; a clear flag updates', async () => {
  const p = param(be, Float32Array.from({ length: 256 }, (_, i) => 1 + i / 256), [256], 'bfloat16');
  const opt = new AdamW([p], { lr: 1e-2, masterWeights: true, stochasticRounding: true, roundingSeed: 1 });
  setGrad(p, new Float32Array(256).fill(0.5));
  opt.step();
  const before = await values(p);
  const masterBefore = await values(opt.getState(p)!.master as Tensor);
  const flag = Tensor.from(be, [1], [1], { dtype: 'float32', category: 'temporary' });
  setGrad(p, new Float32Array(256).fill(0.5));
  opt.step({ foundInf: flag });
  assert.equal(Array.from(await values(p)), Array.from(before));
  assert.equal(Array.from(await values(opt.getState(p)!.master as Tensor)), Array.from(masterBefore));
  be.write(flag.storage, new Float32Array([0]));
  opt.step({ foundInf: flag });
  assert.not.equal(Array.from(await values(p)), Array.from(before));
  await opt.synchronize();
  flag.dispose(); opt.dispose(); p.dispose();
});

test('float32 parameters ignore the options (bit-identical to a plain optimizer)', async () => {
  const run = async (options: object) => {
    const p = param(be, Float32Array.from({ length: 32 }, (_, i) => i / 7), [32]);
    const opt = new AdamW([p], { lr: 1e-2, ...options });
    for (let s = 0; s < 3; s++) { setGrad(p, Float32Array.from({ length: 32 }, (_, i) => Math.sin(i + s))); opt.step(); }
    const v = Array.from(await values(p));
    assert.equal(Object.keys(opt.getState(p)!).sort(), ['expAvg', 'expAvgSq', 'step']);
    opt.dispose(); p.dispose();
    return v;
  };
  assert.equal(await run({ masterWeights: true, stochasticRounding: true, roundingSeed: 2 }), await run({}));
});

test('bad weight-precision options are InvalidArgumentErrors that name the option', () => {
  const p = param(be, [1, 2], [2], 'bfloat16');
  assert.throws(() => new SGD([p], { lr: 0.1, masterWeights: 'yes' as unknown as boolean }), (e: unknown) => e instanceof InvalidArgumentError && /masterWeights/.test((e as Error).message));
  assert.throws(() => new SGD([p], { lr: 0.1, stochasticRounding: 1 as unknown as boolean }), (e: unknown) => e instanceof InvalidArgumentError && /stochasticRounding/.test((e as Error).message));
  assert.throws(() => new SGD([p], { lr: 0.1, roundingSeed: -1 }), (e: unknown) => e instanceof InvalidArgumentError && /roundingSeed/.test((e as Error).message));
  assert.throws(() => new SGD([p], { lr: 0.1, roundingSeed: 2 ** 32 }), /roundingSeed/);
  const opt = new SGD([p], { lr: 0.1 });
  assert.throws(() => opt.addParamGroup({ params: [param(be, [1], [1], 'bfloat16')], masterWeights: null as unknown as boolean }), /masterWeights/);
  p.dispose();
});

test.run();
