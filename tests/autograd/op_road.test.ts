// The one road of an op (issue #10): every op runs through apply; a pack hook sees the op, module
// and slot of each saved tensor; a policy can choose an op's output dtype; observers see every op
// (forward, backward, Tensor methods, optimizer steps); a user-defined op travels the same road.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  WasmBackend, Llama, Tensor, Variable, manualSeed, tidy, withSavedTensorsHooks, keepSavedTensors, withOpPolicy, withOpObserver,
  matmul, sum, cast, apply, defineOp, AdamW, savedTensorStats, type SavedTensorContext, type OpContext,
} from '../../src/index.js';

const be = new WasmBackend();

function tinyLlama(): Llama {
  manualSeed(0);
  return new Llama({ vocabSize: 256, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 32, maxPositionEmbeddings: 8 }, { backend: be });
}

test('a pack hook receives the op name, module path and slot of every saved tensor', () => {
  const model = tinyLlama();
  const ids = Tensor.from(be, new Int32Array(8).fill(66), [1, 8], { dtype: 'int32', category: 'data' });
  const seen: SavedTensorContext[] = [];
  const loss = withSavedTensorsHooks({
    pack: (t, ctx) => { seen.push(ctx); return keepSavedTensors.pack(t, ctx); },
    unpack: keepSavedTensors.unpack, release: keepSavedTensors.release,
  }, () => tidy(() => model.loss(ids, ids)));
  const keys = new Set(seen.map((c) => `${c.module} ${c.op} ${c.slot}`));
  for (const k of [
    'layers.0.selfAttn.qProj linear input0', 'layers.0.selfAttn.qProj linear input1',
    'layers.1.inputLayernorm rms_norm input0', 'layers.1.inputLayernorm rms_norm rstd',
    'layers.0.selfAttn scaled_dot_product_attention lse', 'layers.0.selfAttn scaled_dot_product_attention output',
    'layers.1.mlp silu input0', 'embedTokens embedding ids', ' cross_entropy dlogits',
  ]) assert.ok(keys.has(k), `no saved tensor ${JSON.stringify(k)}; saw ${[...keys].join(' | ')}`);
  assert.ok(seen.every((c) => c.op && c.slot), 'every saved tensor names its op and slot');
  loss.backward();
  loss.dispose(); ids.dispose(); model.dispose();
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
});

test('a policy chooses an op\'s output dtype; backward still reaches the float32 leaves', async () => {
  const a = Variable.from(be, [1, 2, 3, 4, 5, 6], [2, 3], { requiresGrad: true });
  const b = Variable.from(be, [0.5, -1, 0.25, 2, 1, -0.5], [3, 2], { requiresGrad: true });
  const y = withOpPolicy((op, xs) => (op === 'matmul' ? { outputDtype: 'bfloat16' } : xs), () => matmul(a, b));
  assert.is(y.data.dtype, 'bfloat16');
  const plain = matmul(a, b);
  assert.is(plain.data.dtype, 'float32');
  // the bf16 output is the float32 product rounded once
  const rounded = cast(plain, 'bfloat16');
  assert.equal([...await y.data.to('float32').toArray()], [...await rounded.data.to('float32').toArray()]);
  const l = sum(y);
  l.backward();
  assert.is(a.grad!.dtype, 'float32');
  assert.ok(b.grad);
  for (const v of [y, plain, rounded, l, a, b]) { v.releaseGraph(); v.dispose(); }
  // the decision's inputs replace the op's inputs
  const c = Variable.from(be, [1, 2], [1, 2]);
  const d = Variable.from(be, [3, 4], [2, 1]);
  const e = withOpPolicy((op, xs) => (op === 'matmul' ? { inputs: [xs[1], xs[0]] } : xs), () => matmul(d, c));
  assert.equal([...await e.data.toArray()], [11]);
  for (const v of [c, d, e]) v.dispose();
  assert.throws(() => withOpPolicy(() => ({ inputs: [] }), () => sum(Variable.from(be, [1], [1]))), /returned 0 inputs, expected 1/);
});

test('observers see every op: forward with its module, backward, Tensor methods and optimizer steps', () => {
  const model = tinyLlama();
  const opt = new AdamW(model.parameters(), { lr: 1e-3 });
  const ids = Tensor.from(be, new Int32Array(8).fill(70), [1, 8], { dtype: 'int32', category: 'data' });
  const events: string[] = [];
  const depth: OpContext[] = [];
  withOpObserver({
    begin: (ctx) => { events.push(`${ctx.module}|${ctx.op}`); depth.push(ctx); },
    end: (ctx) => { assert.is(depth.pop(), ctx, 'begin/end nest'); },
  }, () => {
    const loss = tidy(() => model.loss(ids, ids));
    loss.backward();
    opt.step();
    opt.zeroGrad();
    const t = Tensor.from(be, [1, 2, 3, 4], [2, 2]);
    t.matmul(t).dispose();
    t.dispose();
    loss.dispose();
  });
  assert.is(depth.length, 0);
  for (const e of ['layers.0.selfAttn.qProj|linear', 'layers.1.mlp|silu', '|cross_entropy', '|cross_entropy.backward', 'lmHead|linear.backward', '|AdamW.step', '|matmul']) {
    assert.ok(events.includes(e), `no event ${e}`);
  }
  ids.dispose(); model.dispose(); opt.dispose();
});

test('a user-defined op travels the same road: policy, output dtype rule, recording and backward', async () => {
  const CUBE = defineOp({
    name: 'cube',
    outputDtype: ([x]) => x.data.dtype,
    forward: (io, [x]) => {
      const y = io.output(x.data, x.shape);
      const sq = Tensor.empty(x.backend, x.shape, { category: 'temporary' });
      x.backend.unary('square', x.data, sq);
      x.backend.binary('mul', sq, x.data, y);
      sq.dispose();
      return {
        y, save: () => [x.data],
        backward: (gy, [sx]) => { // 3 x^2 gy
          const s = Tensor.empty(gy.backend, gy.shape, { category: 'temporary' });
          gy.backend.unary('square', sx!, s);
          const g = Tensor.empty(gy.backend, gy.shape, { category: 'temporary' });
          gy.backend.binary('mul', s, gy, g);
          gy.backend.unary('scale', g, s, 3);
          g.dispose();
          return [s];
        },
      };
    },
  });
  const x = Variable.from(be, [1, -2, 3], [3], { requiresGrad: true });
  const seen: string[] = [];
  const y = withOpPolicy((op, xs) => { seen.push(op); return xs; }, () => apply(CUBE, [x]));
  assert.equal(seen, ['cube']);
  assert.equal([...await y.data.toArray()], [1, -8, 27]);
  const l = sum(y);
  l.backward();
  assert.equal([...await x.grad!.toArray()], [3, 12, 27]);
  for (const v of [x, y, l]) v.dispose();
});

test.run();
