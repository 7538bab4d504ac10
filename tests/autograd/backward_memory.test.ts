// Memory of backward at its largest (what the least-memory step's peak is made of): an elementwise
// backward writes its last gradient over the incoming gradient when autograd holds that alone,
// linear's backward makes dW (which may stage X in float32) before dX, and a decoder layer frees
// its intermediates as soon as they are used. Each keeps the values bit for bit.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../helpers/backends.js';
import { Tensor, Variable, mul, scale, sum, silu, functional, autocast, LlamaDecoderLayer, Generator } from '../../src/index.js';
import type { MemoryTrace } from '../../src/backend/memory.js';

const values = (n: number, f: (i: number) => number) => Float32Array.from({ length: n }, (_, i) => f(i));

/** Highest 'temporary' bytes held during a trace, above what was held at its start. */
function peakTemporary(trace: MemoryTrace): number {
  let now = 0, peak = 0;
  for (const e of trace.events) if (e.category === 'temporary') { now += e.kind === 'alloc' ? e.bytes : -e.bytes; peak = Math.max(peak, now); }
  return peak;
}

const same = async (a: Tensor, b: Float32Array | Tensor, what: string) => {
  const x = await a.toArray(), y = b instanceof Tensor ? await b.toArray() : b;
  assert.is(x.length, y.length, what);
  assert.ok(x.every((v, i) => Object.is(v, y[i])), `${what}: bit for bit`);
};

test('mul and silu backward: two gradient-sized temporaries at most (the last gradient is written over the incoming one), values exact', async () => {
  const b = new WasmBackend();
  const n = 50_000, bytes = 4 * n;
  const av = values(n, (i) => Math.sin(i * 0.3)), bv = values(n, (i) => Math.cos(i * 0.7) * 2);
  const a = new Variable(Tensor.from(b, av, [n]), { requiresGrad: true });
  const c = new Variable(Tensor.from(b, bv, [n]), { requiresGrad: true });
  const loss = sum(scale(mul(silu(a), c), 3));
  const { trace } = b.memory.memoryTrace(() => loss.backward());
  // Before: scale's gradient (gy of mul), mul's two gradients and silu's: three at once.
  assert.ok(peakTemporary(trace) < 2.5 * bytes, `backward's temporaries peaked at ${peakTemporary(trace)} B (${(peakTemporary(trace) / bytes).toFixed(2)} gradients)`);
  // d/dc = 3 silu(a); d/da = 3 c silu'(a), as float32 computes them.
  const s = Tensor.from(b, av, [n]).unary('silu');
  await same(c.grad!, s.mul(Tensor.from(b, [3], [])), 'grad of c');
  const ga = Tensor.from(b, bv, [n]).mul(Tensor.from(b, [3], []));
  const want = Tensor.empty(b, [n], { category: 'temporary' });
  b.binary('siluBackward', ga, Tensor.from(b, av, [n]), want);
  await same(a.grad!, want, 'grad of a');
  b.destroy();
});

test('a gradient the caller passes to backward() is never overwritten', async () => {
  const b = new WasmBackend();
  const n = 1000, gv = values(n, (i) => 1 + i / n);
  const a = new Variable(Tensor.from(b, values(n, (i) => i), [n]), { requiresGrad: true });
  const c = new Variable(Tensor.from(b, values(n, () => 2), [n]), { requiresGrad: true });
  const g = Tensor.from(b, gv, [n]);
  mul(a, c).backward(g);
  await same(g, gv, 'gradOutput');
  await same(a.grad!, values(n, (i) => 2 * gv[i]), 'grad of a');
  b.destroy();
});

test('linear backward with a bfloat16 input: its float32 copy and dX are never held at once', async () => {
  const b = new WasmBackend();
  const [rows, inF, outF] = [512, 384, 64];
  const x = new Variable(Tensor.from(b, values(rows * inF, (i) => Math.sin(i * 0.01)), [rows, inF]).to('bfloat16'), { requiresGrad: true });
  const wt = new Variable(Tensor.from(b, values(outF * inF, (i) => Math.cos(i * 0.03) / 8), [outF, inF]).to('bfloat16'), { requiresGrad: true });
  const y = functional.linear(x, wt);
  const gy = Tensor.from(b, values(rows * outF, (i) => Math.sin(i * 0.11)), [rows, outF]);
  const { trace } = b.memory.memoryTrace(() => y.backward(gy));
  const xF32 = 4 * rows * inF, dW = 4 * outF * inF, wF32 = 4 * outF * inF;
  // dW with X staged (X in float32 + dW), then dX with W staged (dX + dW + W in float32); before: dX + dW + X in float32.
  assert.ok(peakTemporary(trace) <= Math.max(xF32 + dW, xF32 + dW + wF32) + 4096, `peak ${peakTemporary(trace)} B`);
  assert.ok(peakTemporary(trace) < 2 * xF32, `peak ${peakTemporary(trace)} B: not X in float32 and dX at once`);
  // dX = gy @ W and dW = gy^T @ X on float32 copies: the same products.
  const x32 = x.data.to('float32'), w32 = wt.data.to('float32');
  const gx = Tensor.empty(b, [rows, inF], { category: 'temporary' }), gw = Tensor.empty(b, [outF, inF], { category: 'temporary' });
  b.matmul(gy, w32, gx, {});
  b.matmul(gy, x32, gw, { transA: true });
  await same(x.grad!, gx, 'dX');
  await same(wt.grad!, gw, 'dW');
  b.destroy();
});

test('a decoder layer under bfloat16 autocast frees its float32 norm outputs and residual before its MLP runs', () => {
  const b = new WasmBackend();
  const layer = new LlamaDecoderLayer({ vocabSize: 16, hiddenSize: 32, numHiddenLayers: 1, numAttentionHeads: 4, intermediateSize: 88, maxPositionEmbeddings: 16 }, { backend: b, generator: new Generator(0) });
  const x = new Variable(Tensor.from(b, values(2 * 16 * 32, (i) => Math.sin(i)), [2, 16, 32]), { requiresGrad: true });
  const { result: y, trace } = b.memory.memoryTrace(() => autocast({ dtype: 'bfloat16' }, () => layer.forward(x)));
  const ev = trace.events;
  const at = (kind: 'alloc' | 'free', label: string, from = 0) => ev.findIndex((e, i) => i >= from && e.kind === kind && e.label === label);
  const mlpStart = at('alloc', 'mlp.gateProj/to');
  const lastAdd = ev.map((e) => e.kind === 'alloc' && e.label === 'LlamaDecoderLayer/add').lastIndexOf(true);
  assert.ok(mlpStart > 0 && lastAdd > mlpStart, 'the MLP casts its input; the second residual add follows');
  const freedAt = (label: string) => {
    const made = ev.find((e) => e.kind === 'alloc' && e.label === label && e.category === 'activation');
    assert.ok(made, `${label} allocated`);
    return ev.findIndex((e) => e.kind === 'free' && e.id === made!.id);
  };
  // Before: all of them lived until the layer's tidy ended, after the second add.
  for (const label of ['inputLayernorm/rms_norm', 'selfAttn.oProj/linear']) {
    const f = freedAt(label);
    assert.ok(f >= 0 && f < mlpStart, `${label} freed (event ${f}) before the MLP (event ${mlpStart})`);
  }
  const f = freedAt('postAttentionLayernorm/rms_norm');
  assert.ok(f > mlpStart && f < lastAdd, `postAttentionLayernorm's output freed (event ${f}) before the second add (event ${lastAdd})`);
  y.backward(Tensor.from(b, values(2 * 16 * 32, () => 1), [2, 16, 32]));
  y.dispose();
  layer.dispose();
  b.destroy();
});

test('linear backward writes a leaf weight\'s gradient straight into its .grad (new, or added into an existing one): no weight-sized temporary, the same bits (linear(W, W) too); a failing kernel leaves no .grad', async () => {
  const b = new WasmBackend();
  const [rows, inF, outF] = [64, 48, 40], wBytes = 4 * inF * outF;
  const x = new Variable(Tensor.from(b, values(rows * inF, (i) => Math.sin(i * 0.37)), [rows, inF]), { requiresGrad: true });
  const w = new Variable(Tensor.from(b, values(outF * inF, (i) => Math.cos(i * 0.11)), [outF, inF]), { requiresGrad: true });
  const gy = values(rows * outF, (i) => Math.sin(i * 0.05) * 0.5);
  const run = () => {
    const y = functional.linear(x, w);
    const seed = Tensor.from(b, gy, [rows, outF]);
    const { trace } = b.memory.memoryTrace(() => y.backward(seed));
    y.dispose(); seed.dispose();
    return trace;
  };
  // dW = dY^T X, as the backend computes it
  const dW = Tensor.empty(b, [outF, inF], { category: 'temporary' });
  b.matmul(Tensor.from(b, gy, [rows, outF]), x.data, dW, { transA: true });
  const first = run();
  assert.ok(!first.events.some((e) => e.kind === 'alloc' && e.category === 'temporary' && e.bytes === wBytes), 'no weight-sized temporary');
  assert.is(first.events.filter((e) => e.kind === 'alloc' && e.category === 'gradient' && e.bytes === wBytes).length, 1, 'the .grad, made once');
  await same(w.grad!, dW, 'a new .grad');
  const second = run();
  assert.ok(!second.events.some((e) => e.kind === 'alloc' && e.bytes === wBytes), 'added into the existing .grad: nothing weight-sized allocated');
  const twice = Tensor.empty(b, [outF, inF], { category: 'temporary' });
  b.binary('add', dW, dW, twice);
  await same(w.grad!, twice, 'the existing .grad plus dW (in place, the bits of an add)');
  // A .grad someone else shares is not written: accumulate's out-of-place sum, the same values.
  const view = w.grad!.reshape([outF * inF]);
  run();
  const thrice = Tensor.empty(b, [outF, inF], { category: 'temporary' });
  b.binary('add', twice, dW, thrice);
  await same(w.grad!, thrice, 'a shared .grad: a new sum');
  await same(view.reshape([outF, inF]), twice, 'the view still reads the old .grad');
  view.dispose();
  // A kernel fails (the dW matmul writing a new .grad, or the dX matmul after it): no .grad is
  // left behind, nothing leaks, and the next backward makes the .grad afresh.
  w.grad!.dispose(); w.grad = null; x.grad!.dispose(); x.grad = null;
  for (const failing of [true, false]) { // the call that throws: transA (dW) or not (dX)
    const before = b.memory.memoryAllocated();
    const y = functional.linear(x, w), seed = Tensor.from(b, gy, [rows, outF]);
    const matmul = b.matmul;
    b.matmul = function (this: typeof b, ...args: Parameters<typeof matmul>) { // in backward: dW has transA, dX not
      if (Boolean(args[3]?.transA) === failing) throw new Error('kernel failed');
      return matmul.apply(this, args);
    };
    try {
      assert.throws(() => y.backward(seed), /kernel failed/);
    } finally {
      delete (b as { matmul?: unknown }).matmul;
    }
    y.dispose(); seed.dispose();
    assert.is(w.grad, null, `no .grad (${failing ? 'dW' : 'dX'} failed)`);
    if (x.grad) { x.grad.dispose(); x.grad = null; }
    assert.is(b.memory.memoryAllocated(), before, 'nothing leaked');
  }
  run();
  await same(w.grad!, dW, 'the next backward: a new .grad');
  w.grad!.dispose(); w.grad = null; x.grad!.dispose(); x.grad = null;
  // The same leaf as input and weight (linear(W, W)): its two contributions in the engine's
  // order, dX then dW, added to an existing .grad: (G + dX) + dW, as before dW went into .grad.
  const n = 16;
  const W = new Variable(Tensor.from(b, values(n * n, (i) => Math.sin(i * 1.7) * 3.1), [n, n]), { requiresGrad: true });
  const G = values(n * n, (i) => Math.cos(i * 0.3) * 1e3 + 0.123), sq = values(n * n, (i) => Math.sin(i * 0.77) * 7.3);
  W.grad = Tensor.from(b, G, [n, n], { category: 'gradient' });
  const y2 = functional.linear(W, W), seed2 = Tensor.from(b, sq, [n, n]);
  y2.backward(seed2);
  const dX2 = Tensor.empty(b, [n, n], { category: 'temporary' }), dW2 = Tensor.empty(b, [n, n], { category: 'temporary' }), want = Tensor.from(b, G, [n, n]);
  b.matmul(seed2, W.data, dX2, {});
  b.matmul(seed2, W.data, dW2, { transA: true });
  b.binary('add', want, dX2, want);
  b.binary('add', want, dW2, want);
  await same(W.grad!, want, 'linear(W, W): (G + dX) + dW');
  for (const t of [y2, W]) t.dispose();
  for (const t of [seed2, dX2, dW2, want]) t.dispose();
  for (const t of [x, w]) t.dispose();
  for (const t of [dW, twice, thrice]) t.dispose();
});

test.run();
