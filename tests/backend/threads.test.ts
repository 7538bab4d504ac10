// The wasm backend's worker threads: every kernel split among threads gives bit-identical results
// for every thread count (matmul by batches, rows or columns; attention by heads; norms, softmax and
// cross-entropy by rows, norm backward's weight sums by columns; embedding backward by table rows;
// reductions by outputs; elementwise ops, GradScaler's unscale and AdamW by element ranges; 8-bit
// quantization and the 8-bit step by whole blocks), and so does a whole training step, with the
// same memory accounting. Also: the threads option, the description, the fallback without shared
// memory, and that worker threads never keep Node alive.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { splitRange } from '../../src/backend/wasm/threads.js';
import { withoutDataSections } from '../../src/dtype/wasm.js';
import { createBackend } from '../../src/backend/select.js';
import { InvalidArgumentError } from '../../src/errors.js';
import type { TensorRef } from '../../src/backend/backend.js';
import { ByteTextDataset } from '../../src/data/byte_text.js';
import { loadSotuText } from '../../src/data/sotu.js';
import { LanguageModelTrainer, TINY_LLAMA } from '../../src/train/language_model.js';
import { AdamW8bit, Tensor, Variable, decode, encode } from '../../src/index.js';
import { readF32, tensor } from '../helpers/backends.js';
import { rand } from '../helpers/values.js';

const COUNTS = [1, 2, 3, 4];
const backends: WasmBackend[] = [];

test.before(async () => {
  // parallelMinWork 1: even small calls are split, so that every split path runs here.
  for (const threads of COUNTS) backends.push(await WasmBackend.create(`test ${threads}`, { threads, parallelMinWork: 1 }));
});
test.after(() => {
  for (const b of backends) b.destroy();
});

function same(a: Float32Array, b: Float32Array, what: string): void {
  assert.is(a.length, b.length, `${what}: length`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) assert.unreachable(`${what}: element ${i} differs: ${a[i]} vs ${b[i]}`);
  }
}

/** Runs `op` on every backend and asserts that each output is bit-identical to the one-thread backend's. */
async function identical(what: string, op: (b: WasmBackend) => TensorRef[]): Promise<void> {
  const results: Float32Array[][] = [];
  for (const b of backends) {
    const outs = op(b);
    results.push(await Promise.all(outs.map((o) => readF32(b, o))));
    for (const o of outs) b.free(o.storage);
  }
  for (let i = 1; i < results.length; i++) results[i].forEach((r, j) => same(results[0][j], r, `${what}, ${COUNTS[i]} threads, output ${j}`));
}

test('the backends under test really run on their threads', () => {
  assert.equal(backends.map((b) => b.threads), COUNTS);
  assert.equal(backends.map((b) => b.lanes(Infinity)), COUNTS, 'every worker has started');
  assert.ok(backends[3].description.endsWith('4 threads'), backends[3].description);
  assert.not.ok(backends[0].description.includes('threads'));
});

test('matmul is bit-identical for 1-4 threads: batches, row bands, column bands, transposes, broadcast, alpha, k = 0', async () => {
  const cases = [
    // [batchA, batchB, m, k, n, transA, transB, alpha]
    [1, 1, 133, 77, 91, false, false, 1], // rows (op(B) packed once, shared by the bands: 2 and 3 threads)
    [1, 1, 200, 300, 45, true, true, 1], // rows, op(B) shared at every count: K blocks, a partial panel, both transposes
    [1, 1, 7, 300, 257, true, false, 1], // columns (m < n)
    [1, 1, 64, 513, 64, false, true, 0.5],
    [3, 3, 37, 29, 41, true, true, 1], // batches (batch < 4: rows for 4 threads)
    [5, 1, 20, 16, 30, false, false, -2], // b broadcast over the batch
    [1, 4, 9, 300, 5, false, true, 1], // a broadcast
    [2, 2, 11, 0, 13, false, false, 1], // k = 0: zeros
  ] as const;
  for (const [ba, bb, m, k, n, tA, tB, alpha] of cases) {
    const batch = Math.max(ba, bb);
    await identical(`matmul ${ba}x${m}x${k} @ ${bb}x${k}x${n} tA=${tA} tB=${tB}`, (b) => {
      const a = tensor(b, tA ? [ba, k, m] : [ba, m, k], 'float32', rand(ba * m * k, 1 + m));
      const w = tensor(b, tB ? [bb, n, k] : [bb, k, n], 'float32', rand(bb * k * n, 2 + n));
      const out = tensor(b, [batch, m, n], 'float32');
      b.matmul(a, w, out, { transA: tA, transB: tB, alpha });
      b.free(a.storage);
      b.free(w.storage);
      return [out];
    });
  }
});

test('matmul into bfloat16 and from float16 inputs is bit-identical across threads (staging is shared)', async () => {
  await identical('matmul f16 -> bf16', (b) => {
    const a = tensor(b, [48, 40], 'float16', encode(rand(48 * 40, 3), 'float16'));
    const w = tensor(b, [40, 56], 'float16', encode(rand(40 * 56, 4), 'float16'));
    const out = tensor(b, [48, 56], 'bfloat16');
    b.matmul(a, w, out);
    const f = tensor(b, [48, 56], 'float32');
    b.cast(out, f);
    for (const t of [a, w, out]) b.free(t.storage);
    return [f];
  });
});

test('matmul of bfloat16 operands read in place (op(B) packed once for all row bands) is bit-identical across threads', async () => {
  for (const tB of [false, true]) {
    await identical(`matmul bf16 x bf16 -> f32 tB=${tB}`, (b) => {
      const a = tensor(b, [150, 70], 'bfloat16', encode(rand(150 * 70, 5), 'bfloat16'));
      const w = tensor(b, tB ? [61, 70] : [70, 61], 'bfloat16', encode(rand(70 * 61, 6), 'bfloat16'));
      const out = tensor(b, [150, 61], 'float32');
      b.matmul(a, w, out, { transB: tB });
      for (const t of [a, w]) b.free(t.storage);
      return [out];
    });
  }
});

test('attention forward and backward are bit-identical across threads (causal and masked; heads contiguous or read in place)', async () => {
  const [B, H, T, D] = [2, 3, 17, 12];
  const n = B * H * T * D;
  const mask = new Float32Array(B * T).fill(1);
  mask[T + 3] = 0;
  mask[2 * T - 1] = 0;
  for (const causal of [true, false]) {
    for (const layout of ['bhtd', 'bthd'] as const) {
      await identical(`attention causal=${causal} ${layout}`, (b) => {
        // bthd: [B, H, T, D] views of [B, T, H, D] memory, as splitHeads makes them
        const heads = (data?: Float32Array): TensorRef => {
          const t = tensor(b, [B, H, T, D], 'float32', data);
          return layout === 'bhtd' ? t : { ...t, strides: [T * H * D, D, H * D, 1] };
        };
        const q = heads(rand(n, 5)), k = heads(rand(n, 6)), v = heads(rand(n, 7)), dout = heads(rand(n, 8));
        const m = tensor(b, [B, T], 'float32', mask);
        const out = heads(), lse = tensor(b, [B, H, T], 'float32');
        const dq = heads(), dk = heads(), dv = heads();
        b.attention(q, k, v, out, lse, m, 0.3, causal);
        b.attentionBackward(dout, q, k, v, out, lse, m, 0.3, dq, dk, dv, causal);
        for (const t of [q, k, v, dout, m]) b.free(t.storage);
        return [out, lse, dq, dk, dv].map((t) => ({ ...t, strides: undefined }));
      });
    }
  }
});

test('softmax, log-softmax, RMSNorm (and backward), LayerNorm, unary, binary (broadcasting too) and transposes are bit-identical across threads', async () => {
  const [rows, cols] = [45, 37];
  const n = rows * cols;
  await identical('row and element kernels', (b) => {
    const x = tensor(b, [rows, cols], 'float32', rand(n, 9, 3)), y = tensor(b, [rows, cols], 'float32', rand(n, 10, 3));
    const w = tensor(b, [cols], 'float32', rand(cols, 11)), bias = tensor(b, [cols], 'float32', rand(cols, 12));
    const outs: TensorRef[] = [];
    const out = (shape = [rows, cols]) => { const t = tensor(b, shape, 'float32'); outs.push(t); return t; };
    b.softmax(x, out(), false);
    b.softmax(x, out(), true);
    b.rmsNorm(x, w, out(), out([rows]), 1e-5);
    b.layerNorm(x, w, bias, out(), out([rows]), out([rows]), 1e-5);
    for (const op of ['exp', 'silu', 'gelu', 'tanh', 'relu', 'scale'] as const) b.unary(op, x, out(), 0.7);
    for (const op of ['add', 'mul', 'div', 'sub'] as const) b.binary(op, x, y, out());
    // broadcasting: a row vector, a column, and [3, 1, 37] against [3, 15, 37]
    b.binary('mul', x, w, out());
    b.binary('sub', { ...y, shape: [rows, 1], storage: y.storage }, x, out());
    b.binary('add', { ...x, shape: [3, 15, cols] }, { ...y, shape: [3, 1, cols] }, out([3, 15, cols]));
    b.binary('maximum', { ...x, shape: [3, 15, cols] }, { ...w, shape: [cols] }, out([3, 15, cols]));
    // transposes (a batch of 5 matrices 9 x 37), RMSNorm backward (dx by rows, dweight by columns)
    b.transpose({ ...x, shape: [5, 9, cols] }, out([5, cols, 9]));
    const rstd = out([rows]);
    b.rmsNorm(x, w, out(), rstd, 1e-5);
    const dw = out([cols]);
    b.fill(dw, 0.25);
    b.rmsNormBackward(y, x, w, rstd, out(), dw);
    for (const t of [x, y, w, bias]) b.free(t.storage);
    return outs;
  });
});

test('cross-entropy (loss and dlogits; ignored rows, a target out of range) is bit-identical across threads: rows split, the loss summed in row order', async () => {
  const [rows, cols] = [45, 37];
  const targets = Int32Array.from({ length: rows }, (_, r) => (r * 7) % cols);
  targets[3] = -100;
  targets[30] = -100;
  const bad = Int32Array.from(targets);
  bad[17] = cols; // outside [0, cols): that row's loss is NaN
  for (const [what, t] of [['targets', targets], ['a target out of range', bad], ['every row ignored', new Int32Array(rows).fill(-100)]] as const) {
    const results = await Promise.all(backends.map(async (b) => {
      const x = tensor(b, [rows, cols], 'float32', rand(rows * cols, 20, 4)), tg = tensor(b, [rows], 'int32', t);
      const loss = tensor(b, [], 'float32'), loss2 = tensor(b, [], 'float32'), d = tensor(b, [rows, cols], 'float32');
      b.crossEntropy(x, tg, loss, d, -100, 0.75);
      b.crossEntropy(x, tg, loss2, null, -100, 1);
      const out = [await readF32(b, loss), await readF32(b, loss2), await readF32(b, d)];
      for (const r of [x, tg, loss, loss2, d]) b.free(r.storage);
      return out;
    }));
    for (let i = 1; i < results.length; i++) results[i].forEach((r, j) => same(results[0][j], r, `cross-entropy, ${what}, ${COUNTS[i]} threads, output ${j}`));
    if (what === 'targets') {
      // The one-thread loss against a float64 reference (a wrong order or a lost row would show).
      const x = rand(rows * cols, 20, 4);
      let total = 0, count = 0;
      for (let r = 0; r < rows; r++) {
        if (t[r] === -100) continue;
        const row = x.subarray(r * cols, (r + 1) * cols), m = Math.max(...row);
        total += Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0)) + m - row[t[r]];
        count++;
      }
      assert.ok(Math.abs(results[0][0][0] - total / count) < 1e-5, `loss ${results[0][0][0]} vs ${total / count}`);
      assert.is(results[0][0][0], results[0][1][0], 'the loss is the same with and without dlogits');
    }
    if (what === 'a target out of range') assert.ok(Number.isNaN(results[0][0][0]));
    if (what === 'every row ignored') {
      assert.ok(Number.isNaN(results[0][0][0]));
      assert.ok(results[0][2].every((v) => v === 0));
    }
  }
});

test('embedding and its scatter-add backward (repeated ids, ids out of range) are bit-identical across threads: the backward split by table rows', async () => {
  const [vocab, cols, n] = [37, 19, 90];
  const ids = Int32Array.from({ length: n }, (_, i) => (i * i + 3 * i) % vocab); // repeats, uneven counts per row
  ids[5] = -1;
  ids[40] = vocab;
  // Gradients of very different sizes: float32 sums of them depend on the order of the additions.
  const grads = rand(n * cols, 23).map((v, i) => (Math.floor(i / cols) % 3 === 0 ? v * 1e7 : v));
  await identical('embedding', (b) => {
    const table = tensor(b, [vocab, cols], 'float32', rand(vocab * cols, 21)), id = tensor(b, [3, 30], 'int32', ids);
    const out = tensor(b, [3, 30, cols], 'float32'), dtable = tensor(b, [vocab, cols], 'float32', rand(vocab * cols, 22, 0.1));
    const dy = tensor(b, [3, 30, cols], 'float32', grads);
    b.embedding(id, table, out);
    b.embeddingBackward(id, dy, dtable);
    for (const t of [table, id, dy]) b.free(t.storage);
    return [out, dtable];
  });
  // dtable's row ids[0] got its additions in position order: compare with float32 additions in that order.
  const b = backends[3];
  const id = tensor(b, [n], 'int32', ids), dy = tensor(b, [n, cols], 'float32', grads);
  const start = rand(vocab * cols, 22, 0.1), dtable = tensor(b, [vocab, cols], 'float32', start);
  b.embeddingBackward(id, dy, dtable);
  const got = await readF32(b, dtable), g = grads;
  const want = Float32Array.from(start);
  for (let i = 0; i < n; i++) if (ids[i] >= 0 && ids[i] < vocab) for (let c = 0; c < cols; c++) want[ids[i] * cols + c] = Math.fround(want[ids[i] * cols + c] + g[i * cols + c]);
  same(want, got, 'embedding backward, 4 threads, against position-ordered float32 additions');
  for (const t of [id, dy, dtable]) b.free(t.storage);
});

test('where (broadcast operands), reductions over every axis and LayerNorm backward are bit-identical across threads', async () => {
  const [a0, a1, a2] = [5, 23, 13];
  const n = a0 * a1 * a2;
  await identical('where, reduce, layerNormBackward', (b) => {
    const x = tensor(b, [a0, a1, a2], 'float32', rand(n, 24, 3)), y = tensor(b, [a0, a1, a2], 'float32', rand(n, 25, 3));
    const cond = tensor(b, [a1, 1], 'float32', Float32Array.from({ length: a1 }, (_, i) => i % 3));
    const outs: TensorRef[] = [];
    const out = (shape: number[]) => { const t = tensor(b, shape, 'float32'); outs.push(t); return t; };
    b.where(cond, x, y, out([a0, a1, a2]));
    b.where(x, y, { ...cond, shape: [1, a1, 1] }, out([a0, a1, a2]));
    for (const op of ['sum', 'mean', 'max', 'amax'] as const) {
      b.reduce(op, x, out([a1, a2]), 0);
      b.reduce(op, x, out([a0, a2]), 1);
      b.reduce(op, x, out([a0, a1]), 2);
      b.reduce(op, x, out([]), null);
    }
    const [rows, cols] = [a0 * a1, a2];
    const flat = { ...x, shape: [rows, cols] };
    const w = tensor(b, [cols], 'float32', rand(cols, 26)), bias = tensor(b, [cols], 'float32', rand(cols, 27));
    const mean = out([rows]), rstd = out([rows]);
    b.layerNorm(flat, w, bias, out([rows, cols]), mean, rstd, 1e-5);
    const dw = out([cols]), db = out([cols]);
    b.fill(dw, 0.5);
    b.fill(db, -0.25);
    b.layerNormBackward({ ...y, shape: [rows, cols] }, flat, w, mean, rstd, out([rows, cols]), dw, db);
    for (const t of [x, y, cond, w, bias]) b.free(t.storage);
    return outs;
  });
});

test('AdamW updates are bit-identical across threads', async () => {
  const n = 1000;
  await identical('adamw', (b) => {
    const p = tensor(b, [n], 'float32', rand(n, 13)), g = tensor(b, [n], 'float32', rand(n, 14));
    const m = tensor(b, [n], 'float32', rand(n, 15, 0.1)), v = tensor(b, [n], 'float32', rand(n, 16, 0.1).map(Math.abs));
    for (let step = 1; step <= 3; step++) b.adamw(p, g, m, v, { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step });
    b.free(g.storage);
    return [p, m, v];
  });
});

test('8-bit quantize, dequantize and the fused 8-bit Adam step are bit-identical across threads (split by whole blocks)', async () => {
  const runs: { p: Float32Array; codes: Uint8Array[]; absmax: Float32Array[]; deq: Float32Array }[] = [];
  const n = 256 * 17 + 77; // a short last block; over minSize8bit (4096), so the state is 8-bit
  const x = rand(n, 21).map((v, i) => v * 10 ** ((i >> 8) - 4)); // blocks of different magnitudes
  for (const b of backends) {
    const xt = tensor(b, [n], 'float32', x), codes = tensor(b, [n], 'uint8'), absmax = tensor(b, [18], 'float32'), deq = tensor(b, [n], 'float32');
    b.quantizeBlockwise(xt, codes, absmax, true, 256);
    b.dequantizeBlockwise(codes, absmax, deq, true, 256);
    const p = new Variable(Tensor.from(b, rand(n, 22), [n]), { requiresGrad: true });
    const opt = new AdamW8bit([p], { lr: 1e-2 });
    for (let step = 0; step < 3; step++) {
      p.grad = Tensor.from(b, rand(n, 30 + step).map((v, i) => v * 10 ** ((i >> 8) - 4)), [n]);
      opt.step();
      p.zeroGrad();
    }
    const st = opt.getState(p) as Record<string, Tensor>;
    runs.push({
      p: await p.data.toArray() as Float32Array,
      codes: [new Uint8Array((await b.read(codes.storage, 0, n)).slice()), await st.expAvgCodes.toArray() as Uint8Array, await st.expAvgSqCodes.toArray() as Uint8Array],
      absmax: [await readF32(b, absmax), await st.expAvgAbsmax.toArray() as Float32Array, await st.expAvgSqAbsmax.toArray() as Float32Array],
      deq: await readF32(b, deq),
    });
    for (const t of [xt, codes, absmax, deq]) b.free(t.storage);
    p.data.dispose();
  }
  for (let i = 1; i < runs.length; i++) {
    same(runs[0].p, runs[i].p, `${COUNTS[i]} threads: parameter`);
    same(runs[0].deq, runs[i].deq, `${COUNTS[i]} threads: dequantized`);
    runs[i].absmax.forEach((a, j) => same(runs[0].absmax[j], a, `${COUNTS[i]} threads: absmax ${j}`));
    runs[i].codes.forEach((c, j) => assert.equal([...c], [...runs[0].codes[j]], `${COUNTS[i]} threads: codes ${j}`));
  }
});

test("GradScaler's unscale-and-check is the same across threads: every element scaled, the flag set by a non-finite value anywhere", async () => {
  const n = 1013;
  for (const badAt of [-1, 1000]) {
    await identical(`unscale, non-finite at ${badAt}`, (b) => {
      const values = rand(n, 28, 100);
      if (badAt >= 0) values[badAt] = Infinity;
      const g = tensor(b, [n], 'float32', values), g2 = tensor(b, [7], 'float32', rand(7, 29));
      const found = tensor(b, [1], 'float32', new Float32Array([0])), inv = tensor(b, [1], 'float32', new Float32Array([1 / 1024]));
      b.nonFiniteCheckAndUnscale([g, g2], found, inv);
      b.free(inv.storage);
      return [g, g2, found];
    });
  }
  const b = backends[3];
  const found = tensor(b, [1], 'float32', new Float32Array([0])), inv = tensor(b, [1], 'float32', new Float32Array([0.5]));
  const values = rand(n, 30);
  values[1000] = NaN;
  const g = tensor(b, [n], 'float32', values);
  b.nonFiniteCheckAndUnscale([g], found, inv);
  assert.equal(Array.from(await readF32(b, found)), [1], 'a NaN in the last range sets the flag');
  const got = await readF32(b, g);
  assert.is(got[3], Math.fround(values[3] * 0.5));
  for (const t of [found, inv, g]) b.free(t.storage);
});

test('a whole training step of the tiny Llama is bit-identical for 1-4 threads, with the same memory accounting', async () => {
  const dataset = new ByteTextDataset(loadSotuText({ fromYear: 1990 }).slice(0, 50_000));
  const config = { ...TINY_LLAMA, batchSize: 4, seqLen: 32, steps: 2, warmupSteps: 1 };
  const runs: { losses: number[]; params: Float32Array[]; peak: number; allocations: number }[] = [];
  for (const b of backends) {
    b.memory.resetPeakMemoryStats();
    const t = new LanguageModelTrainer(b, dataset, config);
    const losses = [(await t.trainStep()).loss, (await t.trainStep()).loss];
    const params = await Promise.all(t.model.parameters().map(async (p) => Float32Array.from(await p.data.toArray())));
    runs.push({ losses, params, peak: b.memory.maxMemoryAllocated(), allocations: b.memory.memoryAllocated() });
    t.dispose();
  }
  for (let i = 1; i < runs.length; i++) {
    assert.equal(runs[i].losses, runs[0].losses, `${COUNTS[i]} threads: losses`);
    runs[i].params.forEach((p, j) => same(runs[0].params[j], p, `${COUNTS[i]} threads: parameter ${j}`));
    assert.is(runs[i].peak, runs[0].peak, `${COUNTS[i]} threads: peak memory`);
    assert.is(runs[i].allocations, runs[0].allocations, `${COUNTS[i]} threads: memory held after the steps`);
  }
});

test('the conversion tables and the heap survive worker threads starting (their module copy has no data section)', async () => {
  const x = Float32Array.from([1.5, -3.25, 65504, 1e-3, 300, -0.1]);
  const before = ['bfloat16', 'float8_e4m3fn', 'float4_e2m1fn'].map((f) => Array.from(decode(encode(x, f), f)));
  const b = await WasmBackend.create('late threads', { threads: 2 });
  const after = ['bfloat16', 'float8_e4m3fn', 'float4_e2m1fn'].map((f) => Array.from(decode(encode(x, f), f)));
  assert.equal(after, before);
  assert.equal(before[0], [1.5, -3.25, 65536, 0.00099945068359375, 300, -0.10009765625]);
  b.destroy();
  const bytes = Uint8Array.from([0, 97, 115, 109, 1, 0, 0, 0, 1, 1, 0, 11, 2, 9, 9, 12, 1, 0, 0, 1, 7]);
  assert.equal(Array.from(withoutDataSections(bytes)), [0, 97, 115, 109, 1, 0, 0, 0, 1, 1, 0, 0, 1, 7]);
});

test('threads option: createBackend takes it, bad counts are refused, 1 is the one-thread backend', async () => {
  const b = await createBackend({ backend: 'wasm', threads: 2, log: null });
  assert.ok(b.description.endsWith('2 threads'), b.description);
  assert.is((b as WasmBackend).lanes(Infinity), 2);
  b.destroy();
  assert.is((b as WasmBackend).lanes(Infinity), 1, 'a destroyed backend splits nothing');
  for (const bad of [0, 1.5, -1, 65]) assert.throws(() => new WasmBackend('x', { threads: bad }), (e: Error) => e instanceof InvalidArgumentError && /threads must be an integer from 1 to 64/.test(e.message));
  const saved = process.env.MEMFIT_THREADS;
  try {
    process.env.MEMFIT_THREADS = '3';
    const env = await createBackend({ backend: 'wasm', log: null });
    assert.is((env as WasmBackend).threads, 3, 'MEMFIT_THREADS sets the default');
    env.destroy();
    process.env.MEMFIT_THREADS = 'many';
    await createBackend({ backend: 'wasm', log: null }).then(() => assert.unreachable('MEMFIT_THREADS=many was accepted'), (e: Error) => {
      assert.instance(e, InvalidArgumentError);
      assert.match(e.message, 'MEMFIT_THREADS must be a positive integer, got "many"');
    });
  } finally {
    if (saved === undefined) delete process.env.MEMFIT_THREADS;
    else process.env.MEMFIT_THREADS = saved;
  }
  const one = await createBackend({ backend: 'wasm', threads: 1, log: null });
  assert.is((one as WasmBackend).threads, 1);
  assert.is((one as WasmBackend).lanes(Infinity), 1);
});

test('splitRange: near-equal pieces on aligned boundaries, covering [0, n) once', () => {
  assert.equal(splitRange(10, 3), [[0, 3], [3, 6], [6, 10]]);
  assert.equal(splitRange(100, 3, 16), [[0, 32], [32, 64], [64, 100]]);
  assert.equal(splitRange(7, 7), [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [5, 6], [6, 7]]);
  assert.equal(splitRange(5, 4, 16), [[0, 5]]);
  assert.equal(splitRange(0, 4), []);
});

test('the relaxed-SIMD build (fused multiply-add in matmul): loaded where the engine validates it, within the matmul bound, bit-identical across threads', () => {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const script = `
    const { wasmBuild } = await import('./src/dtype/wasm.ts');
    const { WasmBackend } = await import('./src/backend/wasm/backend.ts');
    const { tensor, readF32 } = await import('./tests/helpers/backends.ts');
    const { rand } = await import('./tests/helpers/values.ts');
    const [m, k, n] = [70, 300, 90];
    const A = rand(m * k, 1), B = rand(k * n, 2);
    const outs = [];
    for (const threads of [1, 3]) {
      const b = await WasmBackend.create('x', { threads, parallelMinWork: 1 });
      const o = tensor(b, [m, n], 'float32');
      b.matmul(tensor(b, [m, k], 'float32', A), tensor(b, [k, n], 'float32', B), o);
      outs.push(await readF32(b, o));
    }
    let worst = 0, differ = 0;
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
      let ref = 0, abs = 0;
      for (let p = 0; p < k; p++) { ref += A[i * k + p] * B[p * n + j]; abs += Math.abs(A[i * k + p] * B[p * n + j]); }
      worst = Math.max(worst, Math.abs(outs[0][i * n + j] - ref) / (2 * k * 2 ** -24 * abs));
      if (outs[0][i * n + j] !== outs[1][i * n + j]) differ++;
    }
    process.stdout.write(JSON.stringify({ ...wasmBuild(), worst, differ }));`;
  const run = (flags: string[], env: Record<string, string>) => JSON.parse(execFileSync(process.execPath, [...flags, '--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, timeout: 60_000, encoding: 'utf8', env: { ...process.env, ...env } }));
  const relaxed = run(['--experimental-wasm-relaxed-simd'], {});
  assert.is(relaxed.relaxedSimd, true, 'relaxed SIMD loaded');
  assert.is(relaxed.sharedMemory, true);
  assert.ok(relaxed.worst <= 1, `error / bound ${relaxed.worst}`);
  assert.is(relaxed.differ, 0, '1 and 3 threads agree bit for bit');
  const plain = run(['--experimental-wasm-relaxed-simd'], { MEMFIT_WASM_SIMD: 'plain' });
  assert.is(plain.relaxedSimd, false, 'MEMFIT_WASM_SIMD=plain forces the plain build');
  assert.ok(plain.worst <= 1, `error / bound ${plain.worst}`);
  assert.is(plain.differ, 0);
});

test('worker threads never keep Node alive: a program that leaves a 3-thread backend undestroyed exits', () => {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const script = "const { WasmBackend } = await import('./src/backend/wasm/backend.ts'); const b = await WasmBackend.create('x', { threads: 3 }); process.stdout.write(String(b.lanes(Infinity)));";
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, timeout: 60_000, encoding: 'utf8' });
  assert.is(out.trim(), '3');
});

test.run();
