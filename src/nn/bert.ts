// A BERT-style encoder (Hugging Face's BertModel and BertForMaskedLM): word, learned position and
// token-type embeddings -> LayerNorm -> N x [bidirectional multi-head self-attention with a key
// padding mask -> dense -> residual -> LayerNorm (post-norm), dense -> GELU -> dense -> residual
// -> LayerNorm] -> masked-language-model head (dense -> GELU -> LayerNorm -> logits over the
// vocabulary with the word-embedding matrix, tied, plus a bias). Submodules carry transformers'
// names in camelCase (`encoder.layer.0.attention.self.query`, `embeddings.layerNorm`);
// src/nn/hf_bert.ts maps them to and from transformers' keys.
import type { Backend } from '../backend/backend.js';
import { InvalidArgumentError, ShapeMismatchError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { add, addScalar, gelu, matmul, relu, reshape, scale, softmax } from '../autograd/ops.js';
import { constant } from '../autograd/ops.js';
import { tidy, type Variable } from '../autograd/variable.js';
import { defaultGenerator, type Generator } from '../random.js';
import { ModuleList } from './container.js';
import { crossEntropy, dropout, embedding, linear, mergeHeads, scaledDotProductAttention, splitHeads } from './functional.js';
import { constantParameter } from './init.js';
import { defaultBackend, Embedding, Linear, positiveInt } from './layers.js';
import { Module } from './module.js';
import { LayerNorm } from './normalization.js';
import type { Parameter } from './parameter.js';

/** transformers' BertConfig fields (camelCase). */
export interface BertConfig {
  vocabSize: number;
  hiddenSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  intermediateSize: number;
  /** 'gelu' (the exact erf GELU, BERT's default) or 'relu'. */
  hiddenAct?: 'gelu' | 'relu';
  /** Dropout after the embeddings and each residual branch; default 0.1. */
  hiddenDropoutProb?: number;
  /** Dropout on the attention probabilities; default 0.1. */
  attentionProbsDropoutProb?: number;
  /** Default 512. */
  maxPositionEmbeddings?: number;
  /** Default 2. */
  typeVocabSize?: number;
  /** Std of the normal initialisation of dense and embedding weights; default 0.02. */
  initializerRange?: number;
  /** Default 1e-12. */
  layerNormEps?: number;
  /** The [PAD] id: its embedding row gets no gradient (torch's padding_idx); default 0. */
  padTokenId?: number;
}

export const BERT_BASE: BertConfig = {
  vocabSize: 30522, hiddenSize: 768, numHiddenLayers: 12, numAttentionHeads: 12, intermediateSize: 3072,
};

function checkConfig(c: BertConfig): Required<BertConfig> {
  for (const k of ['vocabSize', 'hiddenSize', 'numHiddenLayers', 'numAttentionHeads', 'intermediateSize'] as const) positiveInt(k, c[k]);
  if (c.hiddenSize % c.numAttentionHeads !== 0) throw new InvalidArgumentError(`hiddenSize ${c.hiddenSize} is not a multiple of numAttentionHeads ${c.numAttentionHeads}`);
  const r: Required<BertConfig> = {
    hiddenAct: 'gelu', hiddenDropoutProb: 0.1, attentionProbsDropoutProb: 0.1, maxPositionEmbeddings: 512, typeVocabSize: 2,
    initializerRange: 0.02, layerNormEps: 1e-12, padTokenId: 0, ...c,
  };
  if (r.hiddenAct !== 'gelu' && r.hiddenAct !== 'relu') throw new InvalidArgumentError(`hiddenAct ${JSON.stringify(r.hiddenAct)} is not supported ('gelu' or 'relu')`);
  positiveInt('maxPositionEmbeddings', r.maxPositionEmbeddings);
  positiveInt('typeVocabSize', r.typeVocabSize);
  for (const k of ['hiddenDropoutProb', 'attentionProbsDropoutProb'] as const) {
    if (!(r[k] >= 0 && r[k] < 1)) throw new InvalidArgumentError(`${k} must be in [0, 1), got ${r[k]}`);
  }
  return r;
}

export interface BertOptions {
  backend?: Backend;
  generator?: Generator;
}

const act = (c: Required<BertConfig>, x: Variable): Variable => (c.hiddenAct === 'relu' ? relu(x) : gelu(x));

/** A dense layer initialised as transformers initialises BERT's: N(0, initializerRange^2) weights, zero bias. */
const dense = (inF: number, outF: number, c: Required<BertConfig>, o: BertOptions): Linear => new Linear(inF, outF, { ...o, initStd: c.initializerRange });
const norm = (c: Required<BertConfig>, o: BertOptions): LayerNorm => new LayerNorm(c.hiddenSize, c.layerNormEps, o);

/** word + position + token-type embeddings, LayerNorm, dropout. BertEmbeddings. */
export class BertEmbeddings extends Module {
  wordEmbeddings: Embedding;
  positionEmbeddings: Embedding;
  tokenTypeEmbeddings: Embedding;
  layerNorm: LayerNorm;
  readonly #c: Required<BertConfig>;
  readonly #g: Generator;

  constructor(c: Required<BertConfig>, o: BertOptions) {
    super();
    this.#c = c;
    this.#g = o.generator ?? defaultGenerator;
    const emb = (n: number) => new Embedding(n, c.hiddenSize, { ...o, initStd: c.initializerRange });
    this.wordEmbeddings = emb(c.vocabSize);
    this.positionEmbeddings = emb(c.maxPositionEmbeddings);
    this.tokenTypeEmbeddings = emb(c.typeVocabSize);
    this.layerNorm = norm(c, o);
    if (c.padTokenId >= 0 && c.padTokenId < c.vocabSize) { // transformers zeroes the [PAD] row
      const w = this.wordEmbeddings.weight.data;
      w.backend.write(w.storage, new Float32Array(c.hiddenSize), c.padTokenId * c.hiddenSize * 4);
    }
  }

  forward(ids: Tensor, tokenTypeIds: Tensor | null): Variable {
    const [b, t] = ids.shape;
    if (t > this.#c.maxPositionEmbeddings) throw new InvalidArgumentError(`sequence length ${t} exceeds maxPositionEmbeddings ${this.#c.maxPositionEmbeddings}`);
    const be = ids.backend;
    const pos = Tensor.from(be, Int32Array.from({ length: t }, (_, i) => i), [t], { dtype: 'int32', category: 'data' });
    const tt = tokenTypeIds ?? Tensor.from(be, new Int32Array(b * t), [b, t], { dtype: 'int32', category: 'data' });
    try {
      return tidy(() => {
        const words = embedding(ids, this.wordEmbeddings.weight, { paddingIdx: this.#c.padTokenId });
        const e = add(add(words, this.tokenTypeEmbeddings.forward(tt)), this.positionEmbeddings.forward(pos));
        return dropout(this.layerNorm.forward(e), this.#c.hiddenDropoutProb, this.training, this.#g);
      });
    } finally {
      pos.dispose();
      if (tt !== tokenTypeIds) tt.dispose();
    }
  }
}

/** query, key, value projections and bidirectional attention over unmasked keys. BertSelfAttention. */
export class BertSelfAttention extends Module {
  query: Linear; key: Linear; value: Linear;
  readonly #c: Required<BertConfig>;
  readonly #g: Generator;

  constructor(c: Required<BertConfig>, o: BertOptions) {
    super();
    this.#c = c;
    this.#g = o.generator ?? defaultGenerator;
    this.query = dense(c.hiddenSize, c.hiddenSize, c, o);
    this.key = dense(c.hiddenSize, c.hiddenSize, c, o);
    this.value = dense(c.hiddenSize, c.hiddenSize, c, o);
  }

  /**
   * x [B, T, C], mask [B, T] (1 keep, 0 padding) or null. One fused kernel (no [T, T] scores kept);
   * while training with attention dropout, the scores are materialised (softmax, dropout, @ v),
   * since dropout needs the probabilities.
   */
  forward(x: Variable, mask: Tensor | null): Variable {
    const h = this.#c.numAttentionHeads, p = this.#c.attentionProbsDropoutProb;
    return tidy(() => {
      const q = splitHeads(this.query.forward(x), h), k = splitHeads(this.key.forward(x), h), v = splitHeads(this.value.forward(x), h);
      if (!(this.training && p > 0)) return mergeHeads(scaledDotProductAttention(q, k, v, { isCausal: false, mask }));
      let scores = scale(matmul(q, k, { transB: true }), 1 / Math.sqrt(q.shape[3]));
      if (mask) {
        const [b, t] = mask.shape;
        const m = mask.dtype === 'float32' ? mask.reshape(mask.shape) : mask.to('float32');
        const bias = constant(m);
        m.dispose();
        // (1 - mask) * float32 min, as transformers' extended attention mask
        const neg = addScalar(scale(bias, 3.4028234663852886e38), -3.4028234663852886e38);
        bias.dispose();
        scores = add(scores, reshape(neg, [b, 1, 1, t]));
      }
      const probs = dropout(softmax(scores), p, true, this.#g);
      return mergeHeads(matmul(probs, v));
    });
  }
}

/** dense -> dropout -> LayerNorm(. + input). BertSelfOutput and BertOutput. */
export class BertResidualOutput extends Module {
  dense: Linear;
  layerNorm: LayerNorm;
  readonly #c: Required<BertConfig>;
  readonly #g: Generator;

  constructor(inF: number, c: Required<BertConfig>, o: BertOptions) {
    super();
    this.#c = c;
    this.#g = o.generator ?? defaultGenerator;
    this.dense = dense(inF, c.hiddenSize, c, o);
    this.layerNorm = norm(c, o);
  }

  forward(h: Variable, input: Variable): Variable {
    return tidy(() => this.layerNorm.forward(add(dropout(this.dense.forward(h), this.#c.hiddenDropoutProb, this.training, this.#g), input)));
  }
}

/** BertAttention: self-attention, then its output block. */
export class BertAttention extends Module {
  self: BertSelfAttention;
  output: BertResidualOutput;

  constructor(c: Required<BertConfig>, o: BertOptions) {
    super();
    this.self = new BertSelfAttention(c, o);
    this.output = new BertResidualOutput(c.hiddenSize, c, o);
  }

  forward(x: Variable, mask: Tensor | null): Variable {
    return tidy(() => this.output.forward(this.self.forward(x, mask), x));
  }
}

/** dense -> activation. BertIntermediate. */
export class BertIntermediate extends Module {
  dense: Linear;
  readonly #c: Required<BertConfig>;

  constructor(c: Required<BertConfig>, o: BertOptions) {
    super();
    this.#c = c;
    this.dense = dense(c.hiddenSize, c.intermediateSize, c, o);
  }

  forward(x: Variable): Variable {
    return tidy(() => act(this.#c, this.dense.forward(x)));
  }
}

/** One post-norm encoder layer. BertLayer. */
export class BertLayer extends Module {
  attention: BertAttention;
  intermediate: BertIntermediate;
  output: BertResidualOutput;

  constructor(c: Required<BertConfig>, o: BertOptions) {
    super();
    this.attention = new BertAttention(c, o);
    this.intermediate = new BertIntermediate(c, o);
    this.output = new BertResidualOutput(c.intermediateSize, c, o);
  }

  forward(x: Variable, mask: Tensor | null): Variable {
    return tidy(() => {
      const a = this.attention.forward(x, mask);
      return this.output.forward(this.intermediate.forward(a), a);
    });
  }
}

export class BertEncoder extends Module {
  layer: ModuleList<BertLayer>;

  constructor(c: Required<BertConfig>, o: BertOptions) {
    super();
    this.layer = new ModuleList(Array.from({ length: c.numHiddenLayers }, () => new BertLayer(c, o)));
  }

  forward(x: Variable, mask: Tensor | null): Variable {
    return tidy(() => {
      let h = x;
      for (const l of this.layer) h = l.forward(h, mask);
      return h;
    });
  }
}

export interface BertForwardOptions {
  /** [B, T] int32 segment ids (0 or 1); default all 0. */
  tokenTypeIds?: Tensor | null;
  /** [B, T], 1 for real tokens and 0 for padding (padding keys are never attended to). */
  attentionMask?: Tensor | null;
}

function checkIds(what: string, ids: Tensor): void {
  if (ids.dtype !== 'int32' || ids.rank !== 2) throw new InvalidArgumentError(`${what}: ids must be an int32 tensor [B, T], got ${ids.dtype} [${ids.shape.join(', ')}]`);
}

/** The encoder: forward(ids [B, T]) -> hidden states [B, T, C] (transformers' BertModel without the pooler). */
export class BertModel extends Module {
  readonly config: Required<BertConfig>;
  embeddings: BertEmbeddings;
  encoder: BertEncoder;

  constructor(config: BertConfig, options: BertOptions = {}) {
    super();
    this.config = checkConfig(config);
    const o = { backend: options.backend ?? defaultBackend(), generator: options.generator ?? defaultGenerator };
    this.embeddings = new BertEmbeddings(this.config, o);
    this.encoder = new BertEncoder(this.config, o);
  }

  forward(ids: Tensor, options: BertForwardOptions = {}): Variable {
    checkIds('BertModel.forward', ids);
    const tt = options.tokenTypeIds ?? null, mask = options.attentionMask ?? null;
    for (const [n, t] of [['tokenTypeIds', tt], ['attentionMask', mask]] as const) {
      if (t && t.shape.join() !== ids.shape.join()) throw new ShapeMismatchError(`BertModel.forward: ${n} [${t.shape.join(', ')}] must have the ids' shape [${ids.shape.join(', ')}]`);
    }
    if (tt && tt.dtype !== 'int32') throw new InvalidArgumentError(`BertModel.forward: tokenTypeIds must be int32, got ${tt.dtype}`);
    return tidy(() => this.encoder.forward(this.embeddings.forward(ids, tt), mask));
  }
}

/** dense -> activation -> LayerNorm. BertPredictionHeadTransform. */
export class BertPredictionHeadTransform extends Module {
  dense: Linear;
  layerNorm: LayerNorm;
  readonly #c: Required<BertConfig>;

  constructor(c: Required<BertConfig>, o: BertOptions) {
    super();
    this.#c = c;
    this.dense = dense(c.hiddenSize, c.hiddenSize, c, o);
    this.layerNorm = norm(c, o);
  }

  forward(x: Variable): Variable {
    return tidy(() => this.layerNorm.forward(act(this.#c, this.dense.forward(x))));
  }
}

/** transform, then logits = h @ wordEmbeddings^T + bias (the decoder weight is the tied embedding matrix). BertLMPredictionHead. */
export class BertLMPredictionHead extends Module {
  transform: BertPredictionHeadTransform;
  bias: Parameter;
  readonly #decoder: Embedding;

  constructor(c: Required<BertConfig>, decoder: Embedding, o: BertOptions) {
    super();
    this.transform = new BertPredictionHeadTransform(c, o);
    this.bias = constantParameter(o.backend ?? defaultBackend(), [c.vocabSize], 0, 'mlm.bias');
    this.#decoder = decoder;
  }

  forward(x: Variable): Variable {
    return tidy(() => linear(this.transform.forward(x), this.#decoder.weight, this.bias));
  }
}

export class BertOnlyMLMHead extends Module {
  predictions: BertLMPredictionHead;

  constructor(c: Required<BertConfig>, decoder: Embedding, o: BertOptions) {
    super();
    this.predictions = new BertLMPredictionHead(c, decoder, o);
  }

  forward(x: Variable): Variable {
    return this.predictions.forward(x);
  }
}

/** BERT with the masked-language-model head: forward(ids [B, T]) -> logits [B, T, V]. BertForMaskedLM. */
export class BertForMaskedLM extends Module {
  readonly config: Required<BertConfig>;
  bert: BertModel;
  cls: BertOnlyMLMHead;

  constructor(config: BertConfig, options: BertOptions = {}) {
    super();
    const o = { backend: options.backend ?? defaultBackend(), generator: options.generator ?? defaultGenerator };
    this.bert = new BertModel(config, o);
    this.config = this.bert.config;
    this.cls = new BertOnlyMLMHead(this.config, this.bert.embeddings.wordEmbeddings, o);
  }

  forward(ids: Tensor, options: BertForwardOptions = {}): Variable {
    return tidy(() => this.cls.forward(this.bert.forward(ids, options)));
  }

  /**
   * Mean masked-LM cross-entropy: `labels` [B, T] int32 hold the original token at the masked
   * positions and ignoreIndex (default -100) elsewhere, as transformers' BertForMaskedLM.
   */
  loss(ids: Tensor, labels: Tensor, options: BertForwardOptions & { ignoreIndex?: number } = {}): Variable {
    return tidy(() => crossEntropy(this.forward(ids, options), labels, { ignoreIndex: options.ignoreIndex }));
  }
}
