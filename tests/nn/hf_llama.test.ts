// Hugging Face Llama compatibility: config.json conversion and state-dict key mapping, and a model
// saved under transformers' key names (safetensors) loading into a fresh memfit Llama.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { inferenceMode } from '../../src/autograd/index.js';
import { Llama } from '../../src/nn/llama.js';
import { hfKeyToMemfit, llamaConfigFromHf, llamaStateDictFromHf, memfitKeyToHf } from '../../src/nn/hf_llama.js';
import { safetensorsToTensors, tensorsToSafetensors } from '../../src/io/safetensors.js';
import { Generator } from '../../src/random.js';

const w = new WasmBackend();
// The fields of a transformers LlamaConfig as config.json writes them (TinyLlama-like, scaled down).
const hfConfig = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_act: 'silu', vocab_size: 32, hidden_size: 16,
  intermediate_size: 40, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 4, max_position_embeddings: 16,
  rms_norm_eps: 1e-5, rope_theta: 10000, rope_scaling: null, tie_word_embeddings: false, attention_bias: false, torch_dtype: 'float32',
};

test('config.json converts to a LlamaConfig; unsupported settings are refused by name', () => {
  const c = llamaConfigFromHf(hfConfig);
  assert.equal(c, {
    vocabSize: 32, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 4, intermediateSize: 40, maxPositionEmbeddings: 16,
    rmsNormEps: 1e-5, ropeTheta: 10000, numKeyValueHeads: 4, tieWordEmbeddings: false,
  });
  assert.throws(() => llamaConfigFromHf({ ...hfConfig, model_type: 'mistral' }), /model_type/);
  assert.throws(() => llamaConfigFromHf({ ...hfConfig, rope_scaling: { type: 'linear', factor: 2 } }), /rope_scaling/);
  assert.throws(() => llamaConfigFromHf({ ...hfConfig, hidden_size: undefined }), /hidden_size is missing/);
});

test('every memfit key maps to the transformers name and back', () => {
  const m = new Llama(llamaConfigFromHf(hfConfig), { backend: w });
  const keys = Object.keys(m.stateDict());
  const hf = keys.map(memfitKeyToHf);
  for (const k of ['model.embed_tokens.weight', 'model.layers.1.self_attn.q_proj.weight', 'model.layers.0.mlp.down_proj.weight',
    'model.layers.1.post_attention_layernorm.weight', 'model.norm.weight', 'lm_head.weight']) assert.ok(hf.includes(k), k);
  assert.equal(hf.map(hfKeyToMemfit), keys);
  assert.is(hfKeyToMemfit('model.layers.0.self_attn.rotary_emb.inv_freq'), null);
  m.dispose();
});

test('a model saved under transformers key names loads into a fresh Llama with identical logits', async () => {
  const cfg = llamaConfigFromHf(hfConfig);
  const a = new Llama(cfg, { backend: w, generator: new Generator(1) });
  const b = new Llama(cfg, { backend: w, generator: new Generator(2) });
  const hfNamed = Object.fromEntries(Object.entries(a.stateDict()).map(([k, t]) => [memfitKeyToHf(k), t]));
  const bytes = await tensorsToSafetensors(hfNamed, { format: 'pt' });
  const { tensors } = safetensorsToTensors(bytes, w, { category: 'temporary' });
  b.loadStateDict(llamaStateDictFromHf(tensors));
  for (const t of Object.values(tensors)) t.dispose();
  const ids = Tensor.from(w, Int32Array.of(1, 5, 9, 2, 7, 3), [1, 6], { dtype: 'int32' });
  const [la, lb] = inferenceMode(() => [a.forward(ids), b.forward(ids)]);
  assert.equal(await la.data.toArray(), await lb.data.toArray());
  la.dispose(); lb.dispose(); ids.dispose(); a.dispose(); b.dispose();
});

test.run();
