// The 8-bit optimizers (bitsandbytes' Adam8bit, AdamW8bit, SGD8bit, RMSprop8bit): one step against
// a float64 reference of the same algorithm (dequantize, update, requantize), 32-bit state below
// minSize8bit and with optimBits: 32, the GradScaler's device-side skip, state dicts converted
// between 8-bit and 32-bit optimizers, the same steps on WebGPU (SwiftShader), and paging.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import type { Backend } from '../../src/backend/backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Variable } from '../../src/autograd/variable.js';
import { Adam, AdamW, AdamW8bit, Adam8bit, SGD, SGD8bit, RMSprop, RMSprop8bit, createDynamicMap, type Optimizer, type OptimizerHyper } from '../../src/optim/index.js';
import { gpuBackend, type WebGPUBackend } from '../helpers/backends.js';
import { param, rand } from '../helpers/values.js';
import { InvalidArgumentError } from '../../src/errors.js';

const w = new WasmBackend();
let g: WebGPUBackend;
test.before(async () => { g = await gpuBackend(); });
test.after(() => g.destroy());

const N = 5000; // above minSize8bit (4096): 8-bit state; two blocks of 256 short at the end

function setGrad(p: Variable, seed: number, scale = 1): void {
  p.grad?.dispose();
  p.grad = Tensor.from(p.backend, rand(p.data.size, seed, scale), p.shape, { category: 'gradient' });
}

async function f32(t: Tensor | number | undefined): Promise<Float32Array> {
  return (await (t as Tensor).toArray()) as Float32Array;
}
async function u8(t: Tensor | number | undefined): Promise<Uint8Array> {
  return (await (t as Tensor).toArray()) as Uint8Array;
}

test('AdamW8bit: one step agrees with a float64 reference of dequantize, update, requantize', async () => {
  const lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 1e-2, block = 256;
  const p = param(w, rand(N, 1), [N]);
  const opt = new AdamW8bit([p], { lr });
  setGrad(p, 2);
  opt.step();
  // The state after step 1 and the inputs of step 2.
  const s = opt.getState(p)!;
  assert.is(s.step, 1);
  const c1 = await u8(s.expAvgCodes), a1 = await f32(s.expAvgAbsmax), c2 = await u8(s.expAvgSqCodes), a2 = await f32(s.expAvgSqAbsmax);
  const p1 = Float64Array.from(await f32(p.data));
  setGrad(p, 3, 0.5);
  const gr = Float64Array.from(await f32(p.grad!));
  opt.step();
  const after = opt.getState(p)!;
  const got = await f32(p.data), gc1 = await u8(after.expAvgCodes), ga1 = await f32(after.expAvgAbsmax), gc2 = await u8(after.expAvgSqCodes), ga2 = await f32(after.expAvgSqAbsmax);
  // float64 reference
  const ms = createDynamicMap(true), mu = createDynamicMap(false);
  const t = 2, bc1 = 1 - b1 ** t, bc2 = 1 - b2 ** t;
  const m = new Float64Array(N), v = new Float64Array(N), ref = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    const b = Math.floor(i / block);
    m[i] = b1 * (ms[c1[i]] * a1[b]) + (1 - b1) * gr[i];
    v[i] = b2 * (mu[c2[i]] * a2[b]) + (1 - b2) * gr[i] ** 2;
    ref[i] = p1[i] * (1 - lr * wd) - (lr / bc1) * m[i] / (Math.sqrt(v[i]) / Math.sqrt(bc2) + eps);
  }
  // Stated bound: float32 arithmetic of the update: |p - ref| <= 2^-22 |p| + 2^-20 lr (the update is at most ~lr / bc1 * sqrt(bc2) in size).
  let worst = 0;
  for (let i = 0; i < N; i++) {
    const err = Math.abs(got[i] - ref[i]), bound = 2 ** -22 * Math.abs(ref[i]) + 2 ** -20 * lr;
    worst = Math.max(worst, err / bound);
    assert.ok(err <= bound, `param ${i}: ${got[i]} vs float64 ${ref[i]}`);
  }
  // Requantized: absmax to float32 rounding; codes the nearest (a neighbour only within 1e-5 of a midpoint).
  const blocks = Math.ceil(N / block);
  for (const [x, map, codes, absmax] of [[m, ms, gc1, ga1], [v, mu, gc2, ga2]] as const) {
    for (let b = 0; b < blocks; b++) {
      let am = 0;
      for (let i = b * block; i < Math.min(N, (b + 1) * block); i++) am = Math.max(am, Math.abs(x[i]));
      assert.ok(Math.abs(absmax[b] - am) <= 2 ** -22 * am, `absmax ${b}: ${absmax[b]} vs ${am}`);
      for (let i = b * block; i < Math.min(N, (b + 1) * block); i++) {
        const y = x[i] / am;
        let best = 0;
        for (let k = 1; k < 256; k++) if (Math.abs(map[k] - y) < Math.abs(map[best] - y)) best = k;
        if (codes[i] !== best) {
          const mid = (map[Math.min(best, codes[i])] + map[Math.max(best, codes[i])]) / 2;
          assert.ok(Math.abs(codes[i] - best) === 1 && Math.abs(y - mid) <= 1e-5, `code ${i}: ${codes[i]} vs nearest ${best} (x/absmax ${y})`);
        }
      }
    }
  }
  opt.dispose();
  p.dispose();
});

test('state is 8-bit only from minSize8bit elements and not in a group with optimBits: 32; small ones step exactly as AdamW', async () => {
  const big = param(w, rand(N, 4), [N]), small = param(w, rand(100, 5), [100]), emb = param(w, rand(N, 6), [N]);
  const small32 = param(w, rand(100, 5), [100]);
  const opt = new AdamW8bit([{ params: [big, small] }, { params: [emb], optimBits: 32 }], { lr: 1e-2 });
  const ref = new AdamW([small32], { lr: 1e-2 });
  for (let k = 0; k < 2; k++) {
    for (const [x, seed] of [[big, 7], [small, 8], [emb, 9], [small32, 8]] as const) setGrad(x, seed + k);
    opt.step();
    ref.step();
  }
  assert.equal(Object.keys(opt.getState(big)!).sort(), ['expAvgAbsmax', 'expAvgCodes', 'expAvgSqAbsmax', 'expAvgSqCodes', 'step']);
  assert.equal(Object.keys(opt.getState(small)!).sort(), ['expAvg', 'expAvgSq', 'step']);
  assert.equal(Object.keys(opt.getState(emb)!).sort(), ['expAvg', 'expAvgSq', 'step']);
  assert.is((opt.getState(big)!.expAvgCodes as Tensor).dtype, 'uint8');
  assert.equal(await f32(small.data), await f32(small32.data), 'small parameter: AdamW bit for bit');
  // optimizer memory: codes 1 byte + absmax 4 bytes per 256, twice, for the big one
  const bytes = w.memory.memoryAllocated('optimizer');
  assert.is(bytes, 2 * (N + 4 * Math.ceil(N / 256)) + 8 * 100 + 8 * N + 8 * 100);
  opt.dispose(); ref.dispose();
  for (const x of [big, small, emb, small32]) x.dispose();
});

test('options: the 32-bit defaults plus optimBits 8, minSize8bit 4096, blockSize 256; bad values are clear errors', () => {
  const p = param(w, rand(10, 1), [10]);
  assert.equal(AdamW8bit.DEFAULTS, { ...AdamW.DEFAULTS, optimBits: 8, minSize8bit: 4096, blockSize: 256, paged: false, pagedBudget: 64 * 2 ** 20 });
  assert.is(Adam8bit.DEFAULTS.weightDecay, 0);
  assert.is(SGD8bit.DEFAULTS.lr, SGD.DEFAULTS.lr);
  assert.is(RMSprop8bit.DEFAULTS.alpha, RMSprop.DEFAULTS.alpha);
  assert.throws(() => new AdamW8bit([p], { blockSize: 300 }), /blockSize must be a power of two from 256 to 4096/);
  assert.throws(() => new AdamW8bit([p], { optimBits: 16 as 8 }), /optimBits must be 8 or 32/);
  assert.throws(() => new AdamW8bit([p], { amsgrad: true }), /amsgrad is not supported with 8-bit state/);
  assert.throws(() => new RMSprop8bit([p], { centered: true }), /centered and momentum are not supported/);
  new AdamW8bit([p], { amsgrad: true, optimBits: 32 }).dispose();
  p.dispose();
});

for (const [name, make8, make32] of [
  ['SGD8bit (momentum 0.9, nesterov)', (ps: Variable[]) => new SGD8bit(ps, { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-3 }), (ps: Variable[]) => new SGD(ps, { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-3 })],
  ['SGD8bit (dampening 0.5)', (ps: Variable[]) => new SGD8bit(ps, { lr: 0.05, momentum: 0.9, dampening: 0.5 }), (ps: Variable[]) => new SGD(ps, { lr: 0.05, momentum: 0.9, dampening: 0.5 })],
  ['RMSprop8bit', (ps: Variable[]) => new RMSprop8bit(ps, { lr: 1e-3 }), (ps: Variable[]) => new RMSprop(ps, { lr: 1e-3 })],
  ['Adam8bit (L2 weight decay, maximize)', (ps: Variable[]) => new Adam8bit(ps, { lr: 1e-3, weightDecay: 0.1, maximize: true }), (ps: Variable[]) => new Adam(ps, { lr: 1e-3, weightDecay: 0.1, maximize: true })],
] as [string, (ps: Variable[]) => Optimizer<OptimizerHyper>, (ps: Variable[]) => Optimizer<OptimizerHyper>][]) {
  test(`${name} tracks its 32-bit version over 5 steps (8-bit state error only)`, async () => {
    const a = param(w, rand(N, 11), [N]), b = param(w, rand(N, 11), [N]);
    const o8 = make8([a]), o32 = make32([b]);
    const start = await f32(a.data);
    for (let k = 0; k < 5; k++) {
      setGrad(a, 20 + k); setGrad(b, 20 + k);
      o8.step(); o32.step();
    }
    const x = await f32(a.data), y = await f32(b.data);
    let moved = 0, diff = 0;
    for (let i = 0; i < N; i++) { moved += Math.abs(y[i] - start[i]); diff += Math.abs(x[i] - y[i]); }
    assert.ok(moved > 0, 'the parameters moved');
    assert.ok(diff <= 0.03 * moved, `${name}: mean |8-bit - 32-bit| ${diff / N} vs mean movement ${moved / N}`);
    o8.dispose(); o32.dispose(); a.dispose(); b.dispose();
  });
}

test('under a GradScaler flag: a set flag changes nothing (parameter, codes, absmax), a clear one steps as without', async () => {
  for (const make of [(ps: Variable[]) => new AdamW8bit(ps, { lr: 1e-2 }), (ps: Variable[]) => new SGD8bit(ps, { lr: 0.1, momentum: 0.9 })]) {
    const a = param(w, rand(N, 31), [N]), b = param(w, rand(N, 31), [N]);
    const oa = make([a]), ob = make([b]);
    const set = Tensor.from(w, [1], [1]), clear = Tensor.from(w, [0], [1]);
    setGrad(a, 32); setGrad(b, 32);
    oa.step({ foundInf: clear }); ob.step();
    const before = [await f32(a.data), ...(await Promise.all(Object.values(oa.getState(a)!).filter((v) => v instanceof Tensor).map((v) => (v as Tensor).toArray())))];
    setGrad(a, 33, 1e30);
    oa.step({ foundInf: set }); // skipped on the device
    const mid = [await f32(a.data), ...(await Promise.all(Object.values(oa.getState(a)!).filter((v) => v instanceof Tensor).map((v) => (v as Tensor).toArray())))];
    assert.equal(mid, before, 'a skipped step changes nothing');
    setGrad(a, 34); setGrad(b, 34);
    oa.step({ foundInf: clear }); ob.step();
    await oa.synchronize();
    assert.equal(await f32(a.data), await f32(b.data), 'the same as plain steps (the skipped one not counted)');
    for (const x of [oa, ob, a, b, set, clear]) x.dispose();
  }
});

test('state dicts: AdamW8bit state loads into AdamW (dequantized) and back (quantized), and the runs go on alike', async () => {
  const a = param(w, rand(N, 41), [N]), b = param(w, rand(N, 41), [N]), c = param(w, rand(N, 41), [N]);
  const o8 = new AdamW8bit([a], { lr: 1e-2 });
  for (let k = 0; k < 3; k++) { setGrad(a, 50 + k); o8.step(); }
  const sd = o8.stateDict();
  assert.is((sd.state[0].expAvgCodes as Tensor).dtype, 'uint8');
  const o32 = new AdamW([b], { lr: 1e-2 });
  o32.loadStateDict(sd as never);
  const s32 = o32.getState(b)!;
  assert.equal(Object.keys(s32).sort(), ['expAvg', 'expAvgSq', 'step']);
  const deq = await f32(s32.expAvg);
  const m = createDynamicMap(true), codes = await u8(sd.state[0].expAvgCodes), absmax = await f32(sd.state[0].expAvgAbsmax);
  for (let i = 0; i < N; i += 97) assert.is(deq[i], Math.fround(m[codes[i]] * absmax[Math.floor(i / 256)]));
  // and back: second moments (unsigned map, 1.0 its top code) requantize to the same codes; first
  // moments to within one quantization step (the signed map's lowest code is -0.99297, not -1, so a
  // block whose extreme is negative gets a smaller absmax).
  const back = new AdamW8bit([c], { lr: 1e-2 });
  back.loadStateDict(o32.stateDict() as never);
  assert.equal(await u8(back.getState(c)!.expAvgSqCodes), await u8(sd.state[0].expAvgSqCodes));
  const bc = await u8(back.getState(c)!.expAvgCodes), ba = await f32(back.getState(c)!.expAvgAbsmax);
  for (let i = 0; i < N; i++) {
    const blk = Math.floor(i / 256);
    assert.ok(Math.abs(m[bc[i]] * ba[blk] - deq[i]) <= 0.02 * absmax[blk], `expAvg ${i} after the round trip`);
  }
  assert.is(back.getState(c)!.step, 3);
  assert.is(o32.paramGroups[0].weightDecay, 1e-2);
  assert.throws(() => new AdamW([b]).loadStateDict({ ...sd, state: { 0: { ...sd.state[0], expAvgAbsmax: Tensor.from(w, [1], [1]) } } } as never), /do not fit/);
  for (const x of [o8, o32, back, a, b, c]) x.dispose();
});

test('AdamW8bit on WebGPU (SwiftShader): the same codes and parameters as on wasm, low-precision parameters too', async () => {
  for (const dtype of ['float32', 'bfloat16']) {
    const runOn = async (b: Backend) => {
      const p = param(b, rand(N, 61), [N], dtype);
      const opt = new AdamW8bit([p], { lr: 1e-2 });
      for (let k = 0; k < 3; k++) { setGrad(p, 62 + k); opt.step(); }
      const s = opt.getState(p)!;
      const out = { p: await f32(p.data), c1: await u8(s.expAvgCodes), c2: await u8(s.expAvgSqCodes), a1: await f32(s.expAvgAbsmax) };
      opt.dispose(); p.dispose();
      return out;
    };
    const x = await runOn(w), y = await runOn(g);
    let codeDiff = 0;
    for (let i = 0; i < N; i++) codeDiff += x.c1[i] !== y.c1[i] || x.c2[i] !== y.c2[i] ? 1 : 0;
    assert.ok(codeDiff <= N / 1000, `${dtype}: ${codeDiff} codes differ`);
    for (let i = 0; i < N; i++) assert.ok(Math.abs(x.p[i] - y.p[i]) <= 1e-5 * Math.max(1, Math.abs(x.p[i])) + (dtype === 'bfloat16' ? 2 ** -8 * Math.abs(x.p[i]) : 0), `${dtype} param ${i}: wasm ${x.p[i]} webgpu ${y.p[i]}`);
  }
});

test('bfloat16 parameters with stochastic rounding: the fused kernel rounds into the parameter a span at a time, the same bits as a float32 copy of the whole rounded back, without that copy (wasm; WebGPU)', async () => {
  const makers: [string, (p: Variable) => Optimizer<OptimizerHyper>][] = [
    ['AdamW8bit', (p) => new AdamW8bit([p], { lr: 1e-2, stochasticRounding: true, roundingSeed: 7 }) as never],
    ['Adam8bit (L2 decay)', (p) => new Adam8bit([p], { lr: 1e-2, weightDecay: 0.1, stochasticRounding: true, roundingSeed: 8 }) as never],
    ['SGD8bit', (p) => new SGD8bit([p], { lr: 1e-2, momentum: 0.9, nesterov: true, stochasticRounding: true, roundingSeed: 9 }) as never],
    ['RMSprop8bit', (p) => new RMSprop8bit([p], { lr: 1e-3, stochasticRounding: true, roundingSeed: 10 }) as never],
    ['AdamW8bit, nearest-even', (p) => new AdamW8bit([p], { lr: 1e-2 }) as never],
  ];
  for (const [b, n] of [[w, 3 * 65536 + 1000 + 37], [g, N]] as const) {
    for (const [name, make] of makers) {
      const run = async (copy: boolean) => {
        const p = param(b, rand(n, 81), [n], 'bfloat16');
        const opt = make(p);
        if (copy) Object.defineProperty(opt, 'roundsInPlace', { value: () => false }); // the float32-copy path
        let weightCopies = 0, staged = 0;
        for (let k = 0; k < 3; k++) {
          setGrad(p, 82 + k);
          const { trace } = b.memory.memoryTrace(() => opt.step());
          for (const e of trace.events) {
            if (e.kind !== 'alloc') continue;
            if (/weights f32/.test(e.label)) weightCopies++; // updateWeights' float32 copy of the parameter
            if (/stage-in/.test(e.label) && e.bytes >= 4 * 65536) staged = Math.max(staged, e.bytes); // the kernel's spans
          }
        }
        const s = opt.getState(p)!;
        const keys = Object.keys(s).filter((k) => k.endsWith('Codes') || k.endsWith('Absmax')).sort();
        const out = { state: await Promise.all(keys.map(async (k) => [...await (s[k] as Tensor).toArray()])), weightCopies, staged, raw: await b.read(p.data.storage, 0, n * 2) };
        opt.dispose(); p.dispose();
        return out;
      };
      const fused = await run(false), copied = await run(true);
      assert.equal([...fused.raw], [...copied.raw], `${b.kind} ${name}: the parameter's bits`);
      assert.equal(fused.state, copied.state, `${b.kind} ${name}: the 8-bit state`);
      const stochastic = !name.includes('nearest');
      assert.is(copied.weightCopies, stochastic ? 3 : 0, `${b.kind} ${name}: the copy path's float32 copies`);
      assert.is(fused.weightCopies, 0, `${b.kind} ${name}: no float32 copy of the parameter`);
      if (b === w) assert.is(fused.staged, 4 * 65536, `${name}: the kernel stages 64Ki elements at most`);
    }
  }
});

test('paged AdamW8bit on WebGPU: state in host memory, device optimizer memory within pagedBudget, the same steps as unpaged', async () => {
  const budget = 8 * 1024; // bytes: slots of 4 KiB, so a 5000-element parameter streams in chunks
  const a = param(g, rand(N, 71), [N]), b = param(g, rand(N, 71), [N]);
  const paged = new AdamW8bit([a], { lr: 1e-2, paged: true, pagedBudget: budget }), plain = new AdamW8bit([b], { lr: 1e-2 });
  for (let k = 0; k < 3; k++) {
    setGrad(a, 72 + k); setGrad(b, 72 + k);
    plain.step();
    const plainBytes = g.memory.memoryAllocated('optimizer');
    g.memory.resetPeakMemoryStats();
    paged.step();
    // The paged optimizer holds at most pagedBudget bytes of device optimizer memory, at any moment of its step.
    assert.ok(g.memory.maxMemoryAllocated('optimizer') - plainBytes <= budget, `step ${k}: ${g.memory.maxMemoryAllocated('optimizer') - plainBytes} device bytes, budget ${budget}`);
    assert.throws(() => paged.step(), /synchronize/);
    await paged.synchronize();
  }
  assert.ok((paged.getState(a)!.expAvgCodes as Tensor).backend !== g, 'the state lives in host memory');
  assert.equal(await f32(a.data), await f32(b.data));
  const sa = paged.stateDict().state[0], sb = plain.stateDict().state[0];
  assert.equal(await u8(sa.expAvgCodes), await u8(sb.expAvgCodes));
  for (const x of [paged, plain, a, b]) x.dispose();
});

test('paged on wasm: logged once (nothing to page: wasm memory is host memory), the state stays put', () => {
  const warn = console.warn;
  const lines: string[] = [];
  console.warn = (m: string) => { lines.push(m); };
  try {
    const p = param(w, rand(N, 81), [N]);
    const opt = new AdamW8bit([p], { paged: true });
    for (let k = 0; k < 2; k++) { setGrad(p, 82 + k); opt.step(); }
    assert.is((opt.getState(p)!.expAvgCodes as Tensor).backend, w);
    assert.is(lines.filter((l) => /paged optimizer state means nothing on the wasm backend/.test(l)).length, lines.length > 0 ? lines.length : 1);
    assert.ok(lines.length <= 1, 'logged at most once per process');
    opt.dispose(); p.dispose();
  } finally {
    console.warn = warn;
  }
});

test('paged AdamW8bit loads a state dict (device tensors) and pages it out at its next step', async () => {
  const a = param(g, rand(N, 91), [N]), b = param(g, rand(N, 91), [N]);
  const src = new AdamW8bit([a], { lr: 1e-2 });
  setGrad(a, 92); src.step();
  g.cast(a.data, b.data); // the same weights
  const paged = new AdamW8bit([b], { lr: 1e-2, paged: true });
  paged.loadStateDict(src.stateDict());
  assert.is((paged.getState(b)!.expAvgCodes as Tensor).backend, g, 'resident after the load');
  setGrad(a, 93); setGrad(b, 93);
  src.step(); paged.step();
  await paged.synchronize();
  assert.ok((paged.getState(b)!.expAvgCodes as Tensor).backend !== g, 'paged out after its step');
  assert.equal(await f32(b.data), await f32(a.data));
  assert.equal(await u8(paged.getState(b)!.expAvgSqCodes), await u8(src.getState(a)!.expAvgSqCodes));
  for (const x of [src, paged, a, b]) x.dispose();
});

test('a non-finite gradient: the parameter goes NaN where AdamW\'s does; the block\'s state (one absmax) becomes NaN', async () => {
  const a = param(w, rand(N, 101), [N]), b = param(w, rand(N, 101), [N]);
  const o8 = new AdamW8bit([a], { lr: 1e-2 }), o32 = new AdamW([b], { lr: 1e-2 });
  for (const p of [a, b]) {
    const gv = rand(N, 102);
    gv[300] = NaN;
    p.grad = Tensor.from(w, gv, [N], { category: 'gradient' });
  }
  o8.step(); o32.step();
  const x = await f32(a.data), y = await f32(b.data);
  for (let i = 0; i < N; i++) assert.is(Number.isNaN(x[i]), Number.isNaN(y[i]), `param ${i}`);
  assert.ok(Number.isNaN(x[300]));
  const absmax = await f32(o8.getState(a)!.expAvgAbsmax);
  assert.equal(absmax.map((v) => (Number.isNaN(v) ? 1 : 0)).join(''), '01' + '0'.repeat(absmax.length - 2), 'block 1 (elements 256-511) is NaN');
  for (const t of [o8, o32, a, b]) t.dispose();
});

test('changing optimBits, minSize8bit or blockSize after the first step: a clear error before any parameter changes (no half-made step)', async () => {
  const b = new WasmBackend();
  try {
    const changes: [string, (g: Record<string, unknown>) => void, RegExp][] = [
      ['optimBits 32', (g) => { g.optimBits = 32; }, /parameter 1 holds 8-bit expAvg state, but its group now asks for 32-bit expAvg/],
      ['minSize8bit up', (g) => { g.minSize8bit = 100_000; }, /parameter 1 holds 8-bit expAvg state, but its group now asks for 32-bit expAvg/],
      ['minSize8bit down', (g) => { g.minSize8bit = 10; }, /parameter 0 holds 32-bit expAvg state, but its group now asks for 8-bit expAvg/],
      ['blockSize 512', (g) => { g.blockSize = 512; }, /parameter 1 holds 8-bit expAvg state in 32 blocks, but its group now asks for 16 blocks of blockSize 512/],
    ];
    for (const [name, change, pattern] of changes) {
      const small = new Variable(Tensor.from(b, new Float32Array(100).fill(1), [100], { category: 'parameter' }), { requiresGrad: true });
      const big = new Variable(Tensor.from(b, new Float32Array(8192).fill(1), [8192], { category: 'parameter' }), { requiresGrad: true });
      const opt = new AdamW8bit([small, big]);
      const grads = () => { for (const p of [small, big]) { p.grad?.dispose(); p.grad = Tensor.from(b, new Float32Array(p.data.size).fill(0.1), p.shape as number[], { category: 'gradient' }); } };
      grads();
      opt.step();
      const before = [Array.from(await small.data.toArray()), Array.from(await big.data.toArray())];
      change(opt.paramGroups[0] as unknown as Record<string, unknown>);
      grads();
      assert.throws(() => opt.step(), (e: unknown) => e instanceof InvalidArgumentError && pattern.test((e as Error).message) && /save a state dict and load it/.test((e as Error).message), name);
      assert.equal([Array.from(await small.data.toArray()), Array.from(await big.data.toArray())], before, `${name}: no parameter changed`);
      assert.is(opt.stateDict().state[0].step, 1, `${name}: no step counted`);
      opt.dispose(); small.dispose(); big.dispose();
    }
  } finally {
    b.destroy();
  }
});

test.run();
