// Chunked checkpointing (checkpoint's `chunks` option, DeepSpeed's TiledMLP for any row-wise fn):
// the inputs are split along their first dimension, each piece runs under its own checkpoint, the
// outputs are joined. The forward and every gradient that flows along the rows are bit-identical to
// the unchunked run; a weight's gradient is the same sum in another order (close, not equal);
// backward holds one piece at a time; an enclosing checkpoint's recompute never runs fn. Also the
// ops it is built of: narrow (a view of rows) and cat.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  WasmBackend, Llama, Tensor, Variable, manualSeed, tidy, autocast, checkpoint, checkpointModules, narrow, cat, sum, mul, add, silu,
  savedTensorStats, withOpObserver, InvalidArgumentError, ShapeMismatchError, Generator, functional, permute, type Module,
} from '../../src/index.js';
import { floatBits, randVariable } from '../helpers/values.js';

const be = new WasmBackend();

const rand = (shape: number[], seed: number, requiresGrad = true): Variable => randVariable(be, shape, seed, requiresGrad);
const bits = floatBits;

test('narrow is a view of rows; its gradient is the rows\' gradient in zeros; cat joins rows and splits the gradient', async () => {
  const x = Variable.from(be, Float32Array.from({ length: 12 }, (_, i) => i + 1), [4, 3], { requiresGrad: true });
  const w = Variable.from(be, Float32Array.from({ length: 6 }, (_, i) => 10 * (i + 1)), [2, 3]);
  const y = tidy(() => {
    const rows = narrow(x, 1, 3);
    assert.equal(rows.shape, [2, 3]);
    return sum(mul(rows, w));
  });
  assert.equal([...await y.data.toArray()], [4 * 10 + 5 * 20 + 6 * 30 + 7 * 40 + 8 * 50 + 9 * 60]);
  y.backward();
  assert.equal([...await x.grad!.toArray()], [0, 0, 0, 10, 20, 30, 40, 50, 60, 0, 0, 0]);
  y.dispose();

  const a = Variable.from(be, [1, 2, 3, 4], [2, 2], { requiresGrad: true });
  const b = Variable.from(be, [5, 6], [1, 2], { requiresGrad: true });
  const c = Variable.from(be, Float32Array.from({ length: 6 }, (_, i) => i + 1), [3, 2]);
  const z = tidy(() => {
    const j = cat([a, b]);
    assert.equal(j.shape, [3, 2]);
    return sum(mul(j, c));
  });
  assert.equal([...await z.data.toArray()], [1 + 4 + 9 + 16 + 25 + 36]);
  z.backward();
  assert.equal([...await a.grad!.toArray()], [1, 2, 3, 4]);
  assert.equal([...await b.grad!.toArray()], [5, 6]);
  // bfloat16 pieces stay bfloat16; mixed dtypes join in float32
  const h = new Variable(Tensor.from(be, [1, 2], [1, 2]).to('bfloat16'));
  const j2 = tidy(() => cat([h, h]));
  assert.is(j2.data.dtype, 'bfloat16');
  const j3 = tidy(() => cat([h, b]));
  assert.is(j3.data.dtype, 'float32');
  assert.equal([...await j3.data.toArray()], [1, 2, 5, 6]);
  for (const v of [z, j2, j3, h, a, b, c, x, w]) v.dispose();
  assert.throws(() => narrow(rand([4, 3], 1), 3, 5), (e: unknown) => e instanceof InvalidArgumentError && /rows \[3, 5\) are not a range inside the first dimension of size 4/.test((e as Error).message));
  assert.throws(() => narrow(rand([4, 3], 1), 2, 1), (e: unknown) => e instanceof InvalidArgumentError);
  assert.throws(() => cat([rand([2, 3], 1), rand([2, 4], 2)]), (e: unknown) => e instanceof ShapeMismatchError && /all but the first dimension equal/.test((e as Error).message));
  assert.throws(() => cat([]), /non-empty array of Variables/);
});

test('narrow pieces assemble their input\'s gradient in one buffer; cat with ownGradients gives each input a copy of its rows and frees the whole gradient at once', async () => {
  // x [6, 4] in three narrow pieces, each used: the gradient of x is one x-sized buffer, its rows
  // added in place, not a zero tensor a piece and two-tensor sums; for a leaf and for an op's output.
  const leaf = rand([6, 4], 3);
  const w = rand([6, 4], 4, false);
  for (const op of [false, true]) {
    const y = tidy(() => {
      const x = op ? mul(leaf, w) : leaf;
      const parts = [narrow(x, 0, 2), narrow(x, 2, 4), narrow(x, 4, 6)].map((p, i) => mul(p, narrow(w, 2 * i, 2 * i + 2)));
      return sum(cat([parts[0], parts[1], parts[2]]));
    });
    be.memory.startTrace();
    y.backward();
    const trace = be.memory.stopTrace();
    const xSized = trace.events.filter((e) => e.kind === 'alloc' && e.bytes === 6 * 4 * 4 && e.label === 'grad').length;
    // a leaf: the first piece's rows in zeros, copied into its new .grad, the others' rows added
    // into that; an op's output: the one sum the pieces build, then the leaf's .grad (three
    // before: a zero tensor a piece, two sums, the .grad)
    assert.is(xSized, 2, op ? 'op output' : 'leaf');
    const wv = await w.data.toArray();
    const want = op ? wv.map((v) => Math.fround(v * v)) : wv;
    assert.equal([...await leaf.grad!.toArray()], [...want], 'd sum(x * w) / dx = w');
    leaf.grad!.dispose(); leaf.grad = null;
    y.dispose();
  }
  // The same in two orders of use, and a narrow of a narrow: values as a dense reference.
  const x2 = Variable.from(be, [3, -1, 4, 1, -5, 9, 2, -6], [4, 2], { requiresGrad: true }); // small integers: every sum exact, in any order
  const z = tidy(() => add(sum(mul(narrow(x2, 1, 4), narrow(x2, 0, 3))), sum(narrow(narrow(x2, 1, 3), 1, 2))));
  z.backward();
  const xv = await x2.data.toArray();
  const want = new Float32Array(8);
  for (let r = 0; r < 3; r++) for (let c = 0; c < 2; c++) { want[(r + 1) * 2 + c] += xv[r * 2 + c]; want[r * 2 + c] += xv[(r + 1) * 2 + c]; }
  want[4] += 1; want[5] += 1; // row 2 of x2 is row 1 of narrow(x2, 1, 3)
  assert.equal([...await x2.grad!.toArray()], [...want]);

  // cat(ownGradients): the same gradients as views; backward copies each input's rows (labelled
  // cat.backward) and frees the joined gradient before any input's backward runs.
  const a = rand([2, 3], 6), b = rand([3, 3], 7);
  const c5 = rand([5, 3], 8, false);
  const grads = async (own: boolean): Promise<{ a: number[]; b: number[]; copies: number; freedFirst: boolean }> => {
    const out = tidy(() => sum(mul(cat([silu(a), silu(b)], own), c5)));
    be.memory.startTrace();
    out.backward();
    const ev = be.memory.stopTrace().events;
    // the joined gradient (mul's backward's output): freed before the first input's backward allocates?
    const joined = ev.find((e) => e.kind === 'alloc' && e.label.startsWith('mul.backward/mul'))!;
    const freed = ev.findIndex((e) => e.kind === 'free' && e.id === joined.id), silu0 = ev.findIndex((e) => e.kind === 'alloc' && e.label.startsWith('silu.backward'));
    const r = { a: await bits(a.grad), b: await bits(b.grad), copies: ev.filter((e) => e.kind === 'alloc' && e.label === 'cat.backward/grad').length, freedFirst: freed >= 0 && freed < silu0 };
    a.grad!.dispose(); a.grad = null; b.grad!.dispose(); b.grad = null;
    out.dispose();
    return r;
  };
  const views = await grads(false), copies = await grads(true);
  assert.equal(copies.a, views.a);
  assert.equal(copies.b, views.b);
  assert.is(views.copies, 0);
  assert.is(copies.copies, 2);
  assert.is(views.freedFirst, false, 'views keep the joined gradient until the last input is done');
  assert.is(copies.freedFirst, true, 'copies free it at once');
  assert.throws(() => cat([a, b], 1 as unknown as boolean), /ownGradients must be a boolean/);
  for (const v of [leaf, w, x2, z, a, b, c5]) v.dispose();
});

test('a narrow\'s gradient that arrives strided (a transpose of the rows downstream) is added as a whole tensor: chunks over a fn that transposes inside; repeated backward into an existing .grad', async () => {
  const vals = Float32Array.from({ length: 12 }, (_, i) => i * 0.1 - 0.5);
  const wv = Float32Array.from({ length: 12 }, (_, i) => i + 1);
  const fn = (p: Variable) => permute(silu(permute(p, [1, 0])), [1, 0]);
  const grads = async (chunks: number) => {
    const x = new Variable(Tensor.from(be, vals, [4, 3]), { requiresGrad: true });
    const w = new Variable(Tensor.from(be, wv, [4, 3]));
    const out: number[][] = [];
    for (let k = 0; k < 2; k++) { // the second backward adds into the .grad the first made
      const y = chunks > 1 ? checkpoint(fn, x, { chunks }) : fn(x);
      const loss = sum(mul(y, w));
      loss.backward();
      out.push(await bits(x.grad));
      loss.dispose(); y.dispose();
    }
    x.grad!.dispose(); x.dispose(); w.dispose();
    return out;
  };
  assert.equal(await grads(2), await grads(1), 'chunked as unchunked, bit for bit');
  // narrow, then a transposed use: the rows' gradient arrives strided, into a leaf with a .grad and into a pending sum
  const x = new Variable(Tensor.from(be, Float32Array.from({ length: 12 }, (_, i) => i + 1), [4, 3]), { requiresGrad: true });
  const w = new Variable(Tensor.from(be, Float32Array.from({ length: 6 }, (_, i) => (i + 1) * 10), [3, 2]));
  for (let k = 1; k <= 2; k++) {
    const loss = tidy(() => sum(mul(permute(narrow(x, 1, 3), [1, 0]), w)));
    loss.backward();
    // rows 1 and 2 of x get w transposed, k times
    assert.equal([...await x.grad!.toArray()], [0, 0, 0, 10, 30, 50, 20, 40, 60, 0, 0, 0].map((v) => v * k));
    loss.dispose();
  }
  const h0 = new Variable(Tensor.from(be, Float32Array.from({ length: 12 }, (_, i) => i + 1), [4, 3]), { requiresGrad: true });
  const loss = tidy(() => {
    const h = mul(h0, Variable.from(be, [1], []));
    return add(sum(narrow(h, 0, 2)), sum(mul(permute(narrow(h, 1, 3), [1, 0]), w)));
  });
  loss.backward();
  assert.equal([...await h0.grad!.toArray()], [1, 1, 1, 11, 31, 51, 20, 40, 60, 0, 0, 0]);
  for (const v of [x, w, h0, loss]) v.dispose();
});

const CONFIG = { vocabSize: 64, hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 4, intermediateSize: 72, maxPositionEmbeddings: 16 };

/** Loss bits, and gradient bits by parameter name, of one step of a fresh tiny Llama (the same weights every call). */
async function llamaStep(setup: (m: Llama) => void, mode: Mode = 'float32'): Promise<{ loss: number[]; g: Record<string, number[]>; gf: Record<string, Float32Array>; peak: number }> {
  manualSeed(0);
  const model = new Llama(CONFIG, { backend: be });
  if (mode === 'bfloat16') model.to('bfloat16');
  setup(model);
  const ids = Tensor.from(be, Int32Array.from({ length: 64 }, (_, i) => (i * 13 + 5) % 64), [4, 16], { dtype: 'int32' });
  const run = () => model.loss(ids, ids);
  const loss = tidy(() => (mode !== 'float32' ? autocast({ dtype: 'bfloat16' }, run) : run()));
  be.memory.resetPeakMemoryStats();
  const before = be.memory.memoryAllocated();
  loss.backward();
  const peak = be.memory.maxMemoryAllocated() - before;
  const g: Record<string, number[]> = {}, gf: Record<string, Float32Array> = {};
  for (const [n, p] of model.namedParameters()) { g[n] = await bits(p.grad); gf[n] = await p.grad!.toArray(); }
  const out = { loss: await bits(loss.data), g, gf, peak };
  loss.dispose(); ids.dispose();
  for (const p of model.parameters()) p.dispose();
  return out;
}

const IN_LAYERS = /^layers\./;

/** float32: no autocast; bfloat16: bfloat16 weights under bfloat16 autocast; autocast: float32 weights under it (each piece reuses the region's cast of a weight). */
type Mode = 'float32' | 'bfloat16' | 'autocast';
const MODE_TITLE: Record<Mode, string> = { float32: '', bfloat16: ' (bfloat16 weights, bfloat16 autocast)', autocast: ' (float32 weights, bfloat16 autocast)' };

for (const mode of ['float32', 'bfloat16', 'autocast'] as const) {
  test(`chunked layer checkpoints on Llama${MODE_TITLE[mode]}: the loss and the gradients outside the layers bit-identical, the layers' weight gradients the same sums in another order; backward holds less`, async () => {
    const plain = await llamaStep(() => {}, mode);
    const whole = await llamaStep((m) => checkpointModules(m, /^layers\.\d+$/), mode);
    const chunked = await llamaStep((m) => assert.equal(checkpointModules(m, /^layers\.\d+$/, { chunks: 4 }).wrapped, ['layers.0', 'layers.1']), mode);
    assert.equal(whole.loss, plain.loss);
    assert.equal(chunked.loss, plain.loss, 'the forward is computed row by row the same way');
    for (const [n, g] of Object.entries(plain.g)) {
      if (!IN_LAYERS.test(n)) {
        // The residual stream's gradient is computed row by row: what reaches the embedding and the head is identical.
        assert.equal(chunked.g[n], g, `${n}: bit-identical`);
        continue;
      }
      const a = plain.gf[n], b = chunked.gf[n];
      let scaleOf = 0, err = 0;
      for (let i = 0; i < a.length; i++) { scaleOf = Math.max(scaleOf, Math.abs(a[i])); err = Math.max(err, Math.abs(a[i] - b[i])); }
      assert.ok(err <= scaleOf * 2 ** -16, `${n}: chunked differs by ${err} (scale ${scaleOf})`);
    }
    assert.ok(chunked.peak < whole.peak, `backward peak chunked ${chunked.peak} < whole ${whole.peak}`);
    assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
  });
}

test('inside an enclosing checkpoint the pieces\' inputs are saved before any piece runs: its recompute stops before fn', async () => {
  const w = rand([6], 3);
  const fn = (x: Variable): Variable => tidy(() => mul(silu(x), w));
  // The outer fn adds its input to the pieces' output (add saves nothing): the outer recompute needs only the pieces' inputs.
  const silus = async (chunks: number): Promise<{ n: number; grad: number[] }> => {
    const x = rand([4, 6], 9);
    let n = 0;
    const y = withOpObserver({ begin: (c) => { if (c.op === 'silu') n++; } }, () => {
      const out = tidy(() => sum(checkpoint((v: Variable) => tidy(() => add(checkpoint(fn, v, { chunks }), v)), x)));
      out.backward();
      return out;
    });
    const grad = await bits(x.grad);
    y.dispose(); x.dispose();
    return { n, grad };
  };
  const one = await silus(1), four = await silus(4);
  assert.is(one.n, 2, 'forward, then the inner recompute (the outer one stops at the inner input)');
  // 4 pieces in the forward and 4 piece recomputes; made and run piece by piece, the outer recompute would run 3 pieces again.
  assert.is(four.n, 8);
  assert.equal(four.grad, one.grad, 'the input gradient is computed row by row: identical');
  w.dispose();
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
});

test('dropout inside chunks: each piece\'s recompute replays its own generator state (gradients equal running the pieces without checkpoints)', async () => {
  const w = rand([6], 4);
  const g = new Generator(0);
  const fn = (v: Variable): Variable => tidy(() => functional.dropout(mul(silu(v), w), 0.5, true, g));
  const run = async (chunked: boolean): Promise<number[]> => {
    g.manualSeed(21);
    const x = rand([6, 6], 8);
    const loss = tidy(() => sum(chunked ? checkpoint(fn, x, { chunks: 3 }) : cat([0, 1, 2].map((i) => fn(narrow(x, 2 * i, 2 * i + 2))))));
    loss.backward();
    const out = [...await bits(x.grad), ...await bits(loss.data)];
    loss.dispose(); x.dispose();
    return out;
  };
  const plain = await run(false);
  assert.equal(await run(true), plain);
  assert.ok(plain.some((b) => b === 0), 'some elements dropped');
  w.dispose();
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
});

test('chunks: more chunks than rows uses one a row; Tensor inputs are split too; bad options and bad fns are clear errors', async () => {
  const x = rand([3, 4], 5);
  const mask = Tensor.from(be, [1, 0, 1], [3, 1]);
  const ref = tidy(() => mul(silu(x), Variable.from(be, [1, 0, 1], [3, 1])));
  let pieces = 0;
  const y = tidy(() => checkpoint((v: Variable, m: Tensor) => { pieces++; return mul(silu(v), new Variable(m)); }, x, mask, { chunks: 8 }));
  assert.is(pieces, 3);
  assert.equal(await bits(y.data), await bits(ref.data));
  y.releaseGraph(); ref.releaseGraph(); // no backward here: free what they saved
  y.dispose(); ref.dispose(); mask.dispose();
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
  assert.throws(() => checkpoint((v: Variable) => v, x, { chunks: 0 }), (e: unknown) => e instanceof InvalidArgumentError && /chunks must be a positive integer, got 0/.test((e as Error).message));
  assert.throws(() => checkpoint((v: Variable) => v, x, { chunks: 1.5 }), /chunks must be a positive integer/);
  assert.throws(() => checkpoint((a: Variable, b: Variable) => a, x, rand([2, 4], 1), { chunks: 2 }), /must share it; got \[\[3, 4\], \[2, 4\]\]/);
  assert.throws(() => tidy(() => checkpoint((v: Variable) => sum(v), x, { chunks: 2 })), /fn must return one Variable with a row for each input row/);
  assert.throws(() => checkpoint(() => 3 as unknown as Variable, 7, { chunks: 2 }), /at least one Variable or Tensor input/);
  assert.throws(() => checkpointModules(new Llama(CONFIG, { backend: be }) as Module, /^layers\.\d+$/, { chunks: -1 }), /chunks must be a positive integer/);
  x.dispose();
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
});

test.run();
