// Hugging Face BERT checkpoints: config.json fields (snake_case) to a BertConfig and back, and
// state-dict keys between transformers' BertForMaskedLM (`bert.embeddings.LayerNorm.weight`,
// `bert.encoder.layer.0.attention.self.query.weight`, `cls.predictions.bias`) and memfit's
// (`bert.embeddings.layerNorm.weight`, ...). The MLM decoder is tied to the word embeddings and
// stored once, as save_pretrained stores it; keys of parts memfit does not have (the pooler and
// the next-sentence head of BertForPreTraining checkpoints, position_ids buffers) are dropped.
import { InvalidArgumentError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { BertConfig } from './bert.js';

const CONFIG_FIELDS: Record<string, keyof BertConfig> = {
  vocab_size: 'vocabSize',
  hidden_size: 'hiddenSize',
  num_hidden_layers: 'numHiddenLayers',
  num_attention_heads: 'numAttentionHeads',
  intermediate_size: 'intermediateSize',
  hidden_act: 'hiddenAct',
  hidden_dropout_prob: 'hiddenDropoutProb',
  attention_probs_dropout_prob: 'attentionProbsDropoutProb',
  max_position_embeddings: 'maxPositionEmbeddings',
  type_vocab_size: 'typeVocabSize',
  initializer_range: 'initializerRange',
  layer_norm_eps: 'layerNormEps',
  pad_token_id: 'padTokenId',
};

/** A BertConfig from a transformers config.json object; unsupported settings are refused by name. */
export function bertConfigFromHf(hf: Record<string, unknown>): BertConfig {
  if (hf.model_type !== undefined && hf.model_type !== 'bert') throw new InvalidArgumentError(`config.json: model_type ${JSON.stringify(hf.model_type)} is not "bert"`);
  if (hf.position_embedding_type !== undefined && hf.position_embedding_type !== 'absolute') {
    throw new InvalidArgumentError(`config.json: position_embedding_type ${JSON.stringify(hf.position_embedding_type)} is not supported ("absolute" only)`);
  }
  if (hf.is_decoder === true || hf.add_cross_attention === true) throw new InvalidArgumentError('config.json: BERT as a decoder (is_decoder, add_cross_attention) is not supported');
  if (hf.tie_word_embeddings === false) throw new InvalidArgumentError('config.json: tie_word_embeddings false is not supported (the MLM decoder is the word-embedding matrix)');
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(CONFIG_FIELDS)) if (hf[k] !== undefined && hf[k] !== null) out[v] = hf[k];
  for (const k of ['vocabSize', 'hiddenSize', 'numHiddenLayers', 'numAttentionHeads', 'intermediateSize']) {
    if (typeof out[k] !== 'number') throw new InvalidArgumentError(`config.json: ${k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)} is missing or not a number`);
  }
  return out as unknown as BertConfig;
}

/** A transformers config.json object for `config` (BertForMaskedLM). */
export function bertConfigToHf(config: Required<BertConfig>): Record<string, unknown> {
  const out: Record<string, unknown> = { architectures: ['BertForMaskedLM'], model_type: 'bert', position_embedding_type: 'absolute', torch_dtype: 'float32' };
  for (const [k, v] of Object.entries(CONFIG_FIELDS)) out[k] = config[v];
  return out;
}

const PARTS: [string, string][] = [
  ['word_embeddings', 'wordEmbeddings'], ['position_embeddings', 'positionEmbeddings'], ['token_type_embeddings', 'tokenTypeEmbeddings'],
  ['LayerNorm', 'layerNorm'],
];
const toMemfit = new Map(PARTS), toHf = new Map(PARTS.map(([a, b]) => [b, a]));

/** Keys of transformers' BERT checkpoints that memfit's BertForMaskedLM has no use for. */
const DROPPED = [
  /^cls\.predictions\.decoder\.(weight|bias)$/, // tied to bert.embeddings.word_embeddings.weight and cls.predictions.bias
  /(^|\.)embeddings\.position_ids$/, /^(bert\.)?pooler\./, /^cls\.seq_relationship\./,
];

/** transformers' key -> memfit's (LayerNorm gamma/beta of old checkpoints read as weight/bias); null for dropped keys. */
export function hfBertKeyToMemfit(key: string): string | null {
  if (DROPPED.some((r) => r.test(key))) return null;
  const parts = key.split('.');
  const last = parts.length - 1;
  if (parts[last - 1] === 'LayerNorm' && (parts[last] === 'gamma' || parts[last] === 'beta')) parts[last] = parts[last] === 'gamma' ? 'weight' : 'bias';
  return parts.map((p) => toMemfit.get(p) ?? p).join('.');
}

/** memfit's key -> transformers' (the inverse of hfBertKeyToMemfit). */
export function memfitBertKeyToHf(key: string): string {
  return key.split('.').map((p) => toHf.get(p) ?? p).join('.');
}

/** A state dict with transformers' keys renamed for memfit's BertForMaskedLM (same tensors, no copies), and the keys dropped. */
export function bertStateDictFromHf(tensors: Record<string, Tensor>): { stateDict: Record<string, Tensor>; dropped: string[] } {
  const stateDict: Record<string, Tensor> = {};
  const dropped: string[] = [];
  for (const [k, t] of Object.entries(tensors)) {
    const m = hfBertKeyToMemfit(k);
    if (m === null) dropped.push(k);
    else stateDict[m] = t;
  }
  return { stateDict, dropped };
}
