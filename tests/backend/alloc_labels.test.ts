// Memory-trace events say who allocated: the module path and the op (issue #8, item 8).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend, Llama, Tensor, manualSeed, Linear, tidy, functional, Variable, savedTensorStats } from '../../src/index.js';

function llama(backend: WasmBackend): Llama {
  manualSeed(0);
  return new Llama({ vocabSize: 256, hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 64, maxPositionEmbeddings: 16 }, { backend });
}

test('a Llama training step: every allocation names its module and op, forward and backward', () => {
  const backend = new WasmBackend();
  const model = llama(backend);
  const ids = Tensor.from(backend, new Int32Array(16).fill(65), [2, 8], { dtype: 'int32', category: 'data', label: 'ids' });
  const { result: loss, trace } = backend.memory.memoryTrace(() => {
    const l = tidy(() => model.loss(ids, ids));
    l.backward();
    return l;
  });
  const allocs = trace.events.filter((e) => e.kind === 'alloc');
  assert.ok(allocs.length > 50);
  assert.equal(allocs.filter((e) => e.label === '').map((e) => e.bytes), [], 'allocations without a label');
  const labels = new Set(allocs.map((e) => e.label));
  for (const l of ['embedTokens/embedding', 'layers.0.inputLayernorm/rms_norm', 'layers.0.inputLayernorm/rms_norm/rstd',
    'layers.1.selfAttn.qProj/linear', 'layers.1.selfAttn/scaled_dot_product_attention', 'layers.0.mlp/silu', 'lmHead/linear',
    'cross_entropy', 'lmHead/linear.backward', 'layers.0.mlp.downProj/linear.backward', 'embedTokens/embedding.backward']) {
    assert.ok(labels.has(l) || [...labels].some((x) => x.startsWith(`${l}/`)), `no allocation labelled ${l}; labels: ${[...labels].join(', ')}`);
  }
  // activations (what the forward saves) are all labelled with a decoder layer, the head or the loss
  for (const e of allocs.filter((a) => a.category === 'activation')) assert.match(e.label, /^(embedTokens|layers\.\d|rotaryEmb|norm|lmHead|cross_entropy)/, e.label);
  loss.dispose(); ids.dispose(); model.dispose();
});

test('Tensor ops are labelled with their op; labels nest inside a module path and do not leak out of it', () => {
  const backend = new WasmBackend();
  const a = Tensor.from(backend, [1, 2, 3, 4], [2, 2]);
  const { result, trace } = backend.memory.memoryTrace(() => [a.matmul(a), a.add(a), a.softmax(), a.sum(0)]);
  assert.equal(trace.events.filter((e) => e.kind === 'alloc').map((e) => e.label.split('/')[0]), ['matmul', 'add', 'add', 'softmax', 'sum']);
  for (const t of result) t.dispose();
  manualSeed(1);
  const lin = new Linear(2, 2, { backend });
  const x = new Variable(a);
  const { result: y, trace: t2 } = backend.memory.memoryTrace(() => lin.forward(x));
  assert.ok(t2.events.some((e) => e.kind === 'alloc' && e.label.startsWith('Linear/')), t2.events.map((e) => e.label).join(', '));
  const { result: z, trace: t3 } = backend.memory.memoryTrace(() => a.mul(a));
  assert.equal(t3.events.map((e) => e.label.split('/')[0]), t3.events.map(() => 'mul'));
  y.releaseGraph(); y.dispose(); z.dispose(); a.dispose(); lin.dispose();
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
  assert.ok(functional);
});

test.run();
