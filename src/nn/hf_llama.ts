// Hugging Face Llama checkpoints: config.json fields (snake_case) to a LlamaConfig, and state-dict
// keys between transformers' LlamaForCausalLM (`model.layers.0.self_attn.q_proj.weight`) and
// memfit's Llama (`layers.0.selfAttn.qProj.weight`). The architectures match (pre-norm RMSNorm,
// SwiGLU, rotary encoding in the rotate-half convention that transformers' checkpoints use), so
// weights load unchanged.
import { InvalidArgumentError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { LlamaConfig } from './llama.js';

const CONFIG_FIELDS: Record<string, keyof LlamaConfig> = {
  vocab_size: 'vocabSize',
  hidden_size: 'hiddenSize',
  num_hidden_layers: 'numHiddenLayers',
  num_attention_heads: 'numAttentionHeads',
  intermediate_size: 'intermediateSize',
  max_position_embeddings: 'maxPositionEmbeddings',
  rms_norm_eps: 'rmsNormEps',
  rope_theta: 'ropeTheta',
  num_key_value_heads: 'numKeyValueHeads',
  tie_word_embeddings: 'tieWordEmbeddings',
  initializer_range: 'initializerRange',
};

/** A LlamaConfig from a transformers config.json object; unsupported settings are refused by name. */
export function llamaConfigFromHf(hf: Record<string, unknown>): LlamaConfig {
  if (hf.model_type !== undefined && hf.model_type !== 'llama') throw new InvalidArgumentError(`config.json: model_type ${JSON.stringify(hf.model_type)} is not "llama"`);
  if (hf.hidden_act !== undefined && hf.hidden_act !== 'silu') throw new InvalidArgumentError(`config.json: hidden_act ${JSON.stringify(hf.hidden_act)} is not supported (Llama uses "silu")`);
  if (hf.rope_scaling !== undefined && hf.rope_scaling !== null) throw new InvalidArgumentError('config.json: rope_scaling is not supported');
  for (const bias of ['attention_bias', 'mlp_bias'] as const) if (hf[bias] === true) throw new InvalidArgumentError(`config.json: ${bias} is not supported`);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(CONFIG_FIELDS)) if (hf[k] !== undefined) out[v] = hf[k];
  for (const k of ['vocabSize', 'hiddenSize', 'numHiddenLayers', 'numAttentionHeads', 'intermediateSize', 'maxPositionEmbeddings']) {
    if (typeof out[k] !== 'number') throw new InvalidArgumentError(`config.json: ${k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)} is missing or not a number`);
  }
  return out as unknown as LlamaConfig;
}

const PARTS: [string, string][] = [
  ['embed_tokens', 'embedTokens'], ['self_attn', 'selfAttn'], ['q_proj', 'qProj'], ['k_proj', 'kProj'], ['v_proj', 'vProj'],
  ['o_proj', 'oProj'], ['gate_proj', 'gateProj'], ['up_proj', 'upProj'], ['down_proj', 'downProj'],
  ['input_layernorm', 'inputLayernorm'], ['post_attention_layernorm', 'postAttentionLayernorm'], ['lm_head', 'lmHead'],
];
const toMemfit = new Map(PARTS), toHf = new Map(PARTS.map(([a, b]) => [b, a]));

/** transformers' key -> memfit's (`model.` dropped, snake_case parts renamed); null for keys memfit has no use for (rotary inv_freq buffers). */
export function hfKeyToMemfit(key: string): string | null {
  if (/\.rotary_emb\.inv_freq$/.test(key)) return null;
  const parts = key.startsWith('model.') ? key.slice(6).split('.') : key.split('.');
  return parts.map((p) => toMemfit.get(p) ?? p).join('.');
}

/** memfit's key -> transformers' (the inverse of hfKeyToMemfit). */
export function memfitKeyToHf(key: string): string {
  const parts = key.split('.').map((p) => toHf.get(p) ?? p);
  return parts[0] === 'lm_head' ? parts.join('.') : `model.${parts.join('.')}`;
}

/** A state dict with transformers' keys renamed for memfit's Llama (same tensors, no copies). */
export function llamaStateDictFromHf(tensors: Record<string, Tensor>): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(tensors)) {
    const m = hfKeyToMemfit(k);
    if (m !== null) out[m] = t;
  }
  return out;
}
