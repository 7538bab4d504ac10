// BERT: bidirectional attention (an earlier position sees a later token), the padding mask (real
// positions ignore whatever sits in padded ones), the materialised attention path used under
// attention dropout against the fused kernel, the [PAD] row's gradient, transformers' config
// fields and key names (PyTorch's numbers: tests/nn/pytorch_reference.test.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Variable, noGrad } from '../../src/autograd/index.js';
import { embedding } from '../../src/nn/functional.js';
import { BertForMaskedLM, type BertConfig } from '../../src/nn/bert.js';
import { bertConfigFromHf, bertConfigToHf, hfBertKeyToMemfit, memfitBertKeyToHf } from '../../src/nn/hf_bert.js';
import { Generator } from '../../src/random.js';

const w = new WasmBackend();
const CFG: BertConfig = { vocabSize: 40, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 32, hiddenDropoutProb: 0, attentionProbsDropoutProb: 0 };
const ints = (v: number[], shape: number[]) => Tensor.from(w, Int32Array.from(v), shape, { dtype: 'int32', category: 'data' });

async function logits(m: BertForMaskedLM, ids: number[], mask: number[] | null): Promise<Float32Array> {
  const i = ints(ids, [1, ids.length]), k = mask ? ints(mask, [1, mask.length]) : null;
  const y = noGrad(() => m.forward(i, { attentionMask: k }));
  const v = (await y.data.toArray()) as Float32Array;
  y.dispose(); i.dispose(); k?.dispose();
  return v;
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>, n = a.length): number => {
  let d = 0;
  for (let i = 0; i < n; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
};

test('bidirectional: position 0 sees a later token; with padding, real positions ignore the padded ones', async () => {
  const m = new BertForMaskedLM(CFG, { backend: w, generator: new Generator(1) });
  m.eval();
  const a = await logits(m, [3, 4, 5, 6, 7], null), b = await logits(m, [3, 4, 5, 6, 9], null);
  assert.ok(maxDiff(a, b, 40) > 1e-4, 'position 0 changes when token 4 changes (not causal)');
  const p = await logits(m, [3, 4, 5, 0, 0], [1, 1, 1, 0, 0]), q = await logits(m, [3, 4, 5, 17, 23], [1, 1, 1, 0, 0]);
  assert.ok(maxDiff(p, q, 3 * 40) < 1e-6, 'the three real positions do not see the padded tokens');
  const r = await logits(m, [3, 4, 5], null);
  assert.ok(maxDiff(p, r, 3 * 40) < 1e-5, 'a padded batch gives the unpadded sequence\'s logits');
  m.dispose();
});

test('attention dropout in training mode materialises the scores (softmax, dropout, @ v): the same numbers as the fused kernel when nothing is dropped', async () => {
  const fused = new BertForMaskedLM(CFG, { backend: w, generator: new Generator(2) });
  const mat = new BertForMaskedLM({ ...CFG, attentionProbsDropoutProb: 1e-12 }, { backend: w, generator: new Generator(2) });
  const ids = ints([5, 6, 7, 8, 0, 0], [2, 3]), mask = ints([1, 1, 1, 1, 0, 0], [2, 3]), labels = ints([5, -100, 9, -100, -100, -100], [2, 3]);
  const grads: Float32Array[] = [];
  const values: number[] = [];
  for (const m of [fused, mat]) {
    m.train();
    const loss = m.loss(ids, labels, { attentionMask: mask });
    loss.backward();
    values.push((await loss.data.toArray())[0]);
    grads.push((await m.bert.encoder.layer.at(0).attention.self.query.weight.grad!.toArray()) as Float32Array);
    loss.dispose();
  }
  assert.ok(Math.abs(values[0] - values[1]) < 1e-5, `loss ${values[1]} vs fused ${values[0]}`);
  assert.ok(maxDiff(grads[0], grads[1]) < 1e-5, 'query gradients agree');
  for (const t of [ids, mask, labels]) t.dispose();
  fused.dispose(); mat.dispose();
});

test('embedding paddingIdx: the [PAD] row gets no gradient from lookups (torch padding_idx); BERT starts it at zero', async () => {
  const table = Variable.from(w, Float32Array.from({ length: 12 }, (_, i) => i), [4, 3], { requiresGrad: true, category: 'parameter' });
  const ids = ints([0, 2, 0, 3, 2], [5]);
  const y = embedding(ids, table, { paddingIdx: 0 });
  y.backward(Tensor.from(w, new Float32Array(15).fill(1), [5, 3]));
  assert.equal([...await y.data.toArray()].slice(0, 3), [0, 1, 2]); // the forward still reads the row
  assert.equal([...await table.grad!.toArray()], [0, 0, 0, 0, 0, 0, 2, 2, 2, 1, 1, 1]);
  y.dispose(); ids.dispose(); table.dispose();
  const m = new BertForMaskedLM({ ...CFG, padTokenId: 0 }, { backend: w, generator: new Generator(3) });
  assert.equal([...((await m.bert.embeddings.wordEmbeddings.weight.data.toArray()) as Float32Array).slice(0, 16)], new Array(16).fill(0));
  m.dispose();
});

test('transformers config fields and key names, both ways; unsupported settings refused by name', () => {
  const hf = { model_type: 'bert', vocab_size: 30522, hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 3072, hidden_act: 'gelu', layer_norm_eps: 1e-12, type_vocab_size: 2 };
  const c = bertConfigFromHf(hf);
  assert.equal(c, { vocabSize: 30522, hiddenSize: 768, numHiddenLayers: 12, numAttentionHeads: 12, intermediateSize: 3072, hiddenAct: 'gelu', layerNormEps: 1e-12, typeVocabSize: 2 });
  const m = new BertForMaskedLM({ ...CFG }, { backend: w });
  const back = bertConfigToHf(m.config);
  assert.is(back.model_type, 'bert');
  assert.equal(bertConfigFromHf(back), { ...m.config });
  assert.throws(() => bertConfigFromHf({ ...hf, position_embedding_type: 'relative_key' }), /position_embedding_type/);
  assert.throws(() => bertConfigFromHf({ ...hf, model_type: 'roberta' }), /not "bert"/);
  assert.throws(() => bertConfigFromHf({ model_type: 'bert' }), /vocab_size is missing/);
  for (const k of Object.keys(m.stateDict())) assert.is(hfBertKeyToMemfit(memfitBertKeyToHf(k)), k);
  assert.is(memfitBertKeyToHf('bert.encoder.layer.1.attention.output.layerNorm.weight'), 'bert.encoder.layer.1.attention.output.LayerNorm.weight');
  assert.is(hfBertKeyToMemfit('bert.embeddings.LayerNorm.gamma'), 'bert.embeddings.layerNorm.weight');
  for (const k of ['bert.pooler.dense.weight', 'cls.seq_relationship.bias', 'bert.embeddings.position_ids', 'cls.predictions.decoder.weight']) assert.is(hfBertKeyToMemfit(k), null);
  m.dispose();
});

test.run();
