// A Llama-style decoder-only language model (the architecture of Hugging Face's LlamaForCausalLM):
// token embedding, N x [RMSNorm -> causal multi-head self-attention with rotary position encoding
// -> residual, RMSNorm -> SwiGLU MLP -> residual], final RMSNorm, LM head. Submodules are named as
// PyTorch users expect (in camelCase): `layers.3.selfAttn.qProj`, `layers.3.mlp.downProj`, `norm`.
// Shapes: B batch, T sequence, C hidden size, H heads, D = C / H head dim, V vocabulary.
import type { Backend } from '../backend/backend.js';
import { describeValue, InvalidArgumentError, ShapeMismatchError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { constant, add, matmul, mul, reshape, silu } from '../autograd/ops.js';
import { tidy, type Variable } from '../autograd/variable.js';
import { defaultGenerator, type Generator } from '../random.js';
import { ModuleList } from './container.js';
import { crossEntropy, headsFirst, mergeHeads, scaledDotProductAttention } from './functional.js';
import { defaultBackend, Embedding, Linear, positiveInt } from './layers.js';
import { Module } from './module.js';
import { RMSNorm } from './normalization.js';
import { checkpoint } from '../recompute/checkpoint.js';

/** The familiar Hugging Face config fields (camelCase). */
export interface LlamaConfig {
  vocabSize: number;
  hiddenSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  intermediateSize: number;
  maxPositionEmbeddings: number;
  /** Default 1e-6. */
  rmsNormEps?: number;
  /** Rotary base frequency, default 10000. */
  ropeTheta?: number;
  /** Only equal to numAttentionHeads (no grouped-query attention yet). */
  numKeyValueHeads?: number;
  /** Share the embedding matrix with the LM head (default false). */
  tieWordEmbeddings?: boolean;
  /** Std of the normal initialisation of linear and embedding weights (default 0.02). */
  initializerRange?: number;
}

function checkConfig(c: LlamaConfig): Required<LlamaConfig> {
  for (const k of ['vocabSize', 'hiddenSize', 'numHiddenLayers', 'numAttentionHeads', 'intermediateSize', 'maxPositionEmbeddings'] as const) positiveInt(k, c[k]);
  if (c.hiddenSize % c.numAttentionHeads !== 0) throw new InvalidArgumentError(`hiddenSize ${c.hiddenSize} is not a multiple of numAttentionHeads ${c.numAttentionHeads}`);
  if ((c.hiddenSize / c.numAttentionHeads) % 2 !== 0) throw new InvalidArgumentError(`the head dim ${c.hiddenSize / c.numAttentionHeads} must be even for rotary position encoding`);
  if (c.numKeyValueHeads !== undefined && c.numKeyValueHeads !== c.numAttentionHeads) {
    throw new InvalidArgumentError(`numKeyValueHeads ${c.numKeyValueHeads} != numAttentionHeads ${c.numAttentionHeads}: grouped-query attention is not supported yet`);
  }
  return {
    rmsNormEps: 1e-6, ropeTheta: 10000, numKeyValueHeads: c.numAttentionHeads, tieWordEmbeddings: false, initializerRange: 0.02, ...c,
  };
}

export interface ModelOptions {
  backend?: Backend;
  generator?: Generator;
}

/**
 * Rotary position encoding (Hugging Face's rotate_half convention) as x * cos + rotateHalf(x) * sin,
 * with rotateHalf(x) = x @ R for a fixed signed permutation R [D, D]: three existing kernels with
 * their backward, no rope-specific kernel. The tables are non-persistent buffers (not in stateDict).
 */
export class RotaryEmbedding extends Module {
  constructor(readonly headDim: number, readonly maxPositions: number, readonly theta = 10000, options: Pick<ModelOptions, 'backend'> = {}) {
    super();
    const be = options.backend ?? defaultBackend(), d = headDim, half = d / 2;
    const cos = new Float32Array(maxPositions * d), sin = new Float32Array(maxPositions * d);
    for (let t = 0; t < maxPositions; t++) for (let i = 0; i < half; i++) {
      const a = t / theta ** ((2 * i) / d);
      cos[t * d + i] = cos[t * d + i + half] = Math.cos(a);
      sin[t * d + i] = sin[t * d + i + half] = Math.sin(a);
    }
    const r = new Float32Array(d * d); // (x @ R)[j] = -x[j + D/2] for j < D/2, x[j - D/2] otherwise
    for (let j = 0; j < half; j++) {
      r[(j + half) * d + j] = -1;
      r[j * d + j + half] = 1;
    }
    const buf = (name: string, v: Float32Array, shape: number[]) => this.registerBuffer(name, Tensor.from(be, v, shape, { dtype: 'float32', category: 'data', label: `rope.${name}` }), { persistent: false });
    buf('cos', cos, [maxPositions, d]);
    buf('sin', sin, [maxPositions, d]);
    buf('rotation', r, [d, d]);
  }

  /**
   * x [..., T, D] with positions 0..T-1; with `{ layout: 'bthd' }`, x [B, T, H, D] (heads after the
   * sequence, as a projection reshapes: the tables broadcast over the heads, and splitHeads after
   * it is a view). The same values either way.
   */
  forward(x: Variable, options: { layout?: 'bhtd' | 'bthd' } = {}): Variable {
    const bthd = options.layout === 'bthd';
    if (bthd && x.shape.length !== 4) throw new InvalidArgumentError(`rotary embedding with layout 'bthd' takes x [B, T, H, D], got [${x.shape.join(', ')}]`);
    const t = x.shape[x.shape.length - (bthd ? 3 : 2)];
    if (t > this.maxPositions) throw new InvalidArgumentError(`sequence length ${t} exceeds maxPositionEmbeddings ${this.maxPositions}`);
    const rows = (b: Tensor): Tensor => {
      const s = b.slice(0, t);
      if (!bthd) return s;
      try { return s.reshape([t, 1, this.headDim]); } finally { s.dispose(); }
    };
    const cosT = rows(this.getBuffer('cos')), sinT = rows(this.getBuffer('sin'));
    const cos = constant(cosT), sin = constant(sinT), rot = constant(this.getBuffer('rotation'));
    cosT.dispose(); sinT.dispose();
    try {
      // x @ R as one [rows, D] x [D, D] product (not a batch of small ones per leading index)
      const d = this.headDim, rotated = tidy(() => reshape(matmul(reshape(x, [x.data.size / d, d]), rot), x.shape));
      return tidy(() => add(mul(x, cos), mul(rotated, sin)));
    } finally {
      cos.dispose(); sin.dispose(); rot.dispose();
    }
  }
}

/** Multi-head causal self-attention with rotary position encoding (LlamaAttention, no biases). */
export class CausalSelfAttention extends Module {
  qProj: Linear; kProj: Linear; vProj: Linear; oProj: Linear;
  /** Its own rotary tables, or null when it uses tables shared by the model (one copy for all layers). */
  rotary: RotaryEmbedding | null;
  readonly #shared: RotaryEmbedding | null;

  constructor(
    readonly hiddenSize: number, readonly numHeads: number, maxPositions: number,
    options: ModelOptions & { ropeTheta?: number; initStd?: number; rotary?: RotaryEmbedding } = {},
  ) {
    super();
    if (hiddenSize % numHeads !== 0) throw new InvalidArgumentError(`hiddenSize ${hiddenSize} is not a multiple of numHeads ${numHeads}`);
    const lin = () => new Linear(hiddenSize, hiddenSize, { backend: options.backend, generator: options.generator, initStd: options.initStd, bias: false });
    this.qProj = lin(); this.kProj = lin(); this.vProj = lin(); this.oProj = lin();
    if (options.rotary && options.rotary.headDim !== hiddenSize / numHeads) throw new InvalidArgumentError(`the shared rotary tables are for head dim ${options.rotary.headDim}, not ${hiddenSize / numHeads}`);
    this.#shared = options.rotary ?? null;
    this.rotary = options.rotary ? null : new RotaryEmbedding(hiddenSize / numHeads, maxPositions, options.ropeTheta, options);
  }

  /** x [B, T, C]; mask [B, T] (1 keep, 0 padding) or null. */
  forward(x: Variable, mask: Tensor | null = null): Variable {
    if (x.shape.length !== 3 || x.shape[2] !== this.hiddenSize) throw new ShapeMismatchError(`attention input must be [B, T, ${this.hiddenSize}], got [${x.shape.join(', ')}]`);
    const rope = (this.rotary ?? this.#shared)!;
    return tidy(() => {
      // Heads stay where the projections put them ([B, T, H, D]): rope broadcasts over them, and
      // attention reads them in place through [B, H, T, D] views (no transposes).
      const [b, t] = x.shape, heads = (p: Linear) => reshape(p.forward(x), [b, t, this.numHeads, this.hiddenSize / this.numHeads]);
      const q = headsFirst(rope.forward(heads(this.qProj), { layout: 'bthd' }));
      const k = headsFirst(rope.forward(heads(this.kProj), { layout: 'bthd' }));
      const v = headsFirst(heads(this.vProj));
      return this.oProj.forward(mergeHeads(scaledDotProductAttention(q, k, v, { isCausal: true, mask })));
    });
  }
}

/** down(silu(gate(x)) * up(x)): LlamaMLP. */
export class SwiGLU extends Module {
  gateProj: Linear; upProj: Linear; downProj: Linear;

  constructor(hiddenSize: number, intermediateSize: number, options: ModelOptions & { initStd?: number } = {}) {
    super();
    this.gateProj = new Linear(hiddenSize, intermediateSize, { ...options, bias: false });
    this.upProj = new Linear(hiddenSize, intermediateSize, { ...options, bias: false });
    this.downProj = new Linear(intermediateSize, hiddenSize, { ...options, bias: false });
  }

  forward(x: Variable): Variable {
    return tidy(() => this.downProj.forward(mul(silu(this.gateProj.forward(x)), this.upProj.forward(x))));
  }
}

/** One pre-norm block: x + attn(norm(x)), then + mlp(norm(.)). LlamaDecoderLayer. */
export class LlamaDecoderLayer extends Module {
  inputLayernorm: RMSNorm;
  selfAttn: CausalSelfAttention;
  postAttentionLayernorm: RMSNorm;
  mlp: SwiGLU;

  /** options.rotary: rotary tables shared by the model's layers (else the layer makes its own). */
  constructor(config: LlamaConfig, options: ModelOptions & { rotary?: RotaryEmbedding } = {}) {
    super();
    const c = checkConfig(config);
    const o = { backend: options.backend, generator: options.generator, initStd: c.initializerRange };
    this.inputLayernorm = new RMSNorm(c.hiddenSize, c.rmsNormEps, options);
    this.selfAttn = new CausalSelfAttention(c.hiddenSize, c.numAttentionHeads, c.maxPositionEmbeddings, { ...o, ropeTheta: c.ropeTheta, rotary: options.rotary });
    this.postAttentionLayernorm = new RMSNorm(c.hiddenSize, c.rmsNormEps, options);
    this.mlp = new SwiGLU(c.hiddenSize, c.intermediateSize, o);
  }

  forward(x: Variable, mask: Tensor | null = null): Variable {
    // Each intermediate is freed as soon as it is used (backward keeps what it saved of it): under
    // autocast the float32 norm outputs and the residual are only cast or normed again, and a
    // recompute would otherwise hold them through the whole MLP.
    return tidy(() => {
      const used = <T extends Variable>(y: T, ...inputs: Variable[]): T => { for (const v of inputs) v.dispose(); return y; };
      const normed = this.inputLayernorm.forward(x);
      const attn = used(this.selfAttn.forward(normed, mask), normed);
      const h = used(add(x, attn), attn);
      const normed2 = this.postAttentionLayernorm.forward(h);
      const m = used(this.mlp.forward(normed2), normed2);
      return used(add(h, m), h, m);
    });
  }
}

export interface LlamaForwardOptions {
  /** [B, T], 1 for real tokens and 0 for padding (padding keys are never attended to). */
  attentionMask?: Tensor | null;
}

/** The private forward option by which loss() puts its head (final norm, logits and loss) in place of the final norm and the logits. */
const HEAD = Symbol('memfit.llama.head');

/** The decoder-only language model: forward(ids [B, T] int32) -> logits [B, T, V]. */
export class Llama extends Module {
  readonly config: Required<LlamaConfig>;
  embedTokens: Embedding;
  /** One set of rotary tables for all layers (non-persistent buffers: not in stateDict). */
  rotaryEmb: RotaryEmbedding;
  layers: ModuleList<LlamaDecoderLayer>;
  norm: RMSNorm;
  lmHead: Linear | null;

  constructor(config: LlamaConfig, options: ModelOptions = {}) {
    super();
    this.config = checkConfig(config);
    const c = this.config;
    const o = { backend: options.backend ?? defaultBackend(), generator: options.generator ?? defaultGenerator };
    this.embedTokens = new Embedding(c.vocabSize, c.hiddenSize, { ...o, initStd: c.initializerRange });
    this.rotaryEmb = new RotaryEmbedding(c.hiddenSize / c.numAttentionHeads, c.maxPositionEmbeddings, c.ropeTheta, o);
    this.layers = new ModuleList(Array.from({ length: c.numHiddenLayers }, () => new LlamaDecoderLayer(c, { ...o, rotary: this.rotaryEmb })));
    this.norm = new RMSNorm(c.hiddenSize, c.rmsNormEps, o);
    this.lmHead = c.tieWordEmbeddings ? null : new Linear(c.hiddenSize, c.vocabSize, { ...o, bias: false, initStd: c.initializerRange });
  }

  forward(ids: Tensor, options: LlamaForwardOptions = {}): Variable {
    if (ids.dtype !== 'int32' || ids.rank !== 2) throw new InvalidArgumentError(`Llama.forward: ids must be an int32 tensor [B, T], got ${ids.dtype} [${ids.shape.join(', ')}]`);
    const mask = options.attentionMask ?? null;
    const head = (options as { [HEAD]?: (h: Variable) => Variable })[HEAD];
    return tidy(() => {
      let h = this.embedTokens.forward(ids);
      for (const layer of this.layers) h = layer.forward(h, mask);
      return head ? head(h) : this.logits(this.norm.forward(h));
    });
  }

  /** The head: logits [B, T, V] of the final norm's output [B, T, C] (lmHead, or the embedding's transpose when tied). */
  logits(h: Variable): Variable {
    if (this.lmHead) return this.lmHead.forward(h);
    const [b, t, c] = h.shape; // tied: logits = h @ E^T
    return tidy(() => reshape(matmul(reshape(h, [b * t, c]), this.embedTokens.weight, { transB: true }), [b, t, this.config.vocabSize]));
  }

  /**
   * Mean next-token cross-entropy: `targets` [B, T] int32 are the tokens each position should
   * predict (already shifted); positions whose target is ignoreIndex (default -100) do not count.
   * `recomputeLogits`: keep no logits for backward (the cross-entropy's saved [B, T, V], the
   * largest saved activation of a model with a real vocabulary) and compute them again from the
   * last layer's output in backward: the final norm, the head and the loss run under checkpoint(),
   * so the final norm's output [B, T, C] is not kept either. The same loss and
   * gradients bit for bit (with autocast around loss(), or none; when autocastModule wraps the
   * model, the cross-entropy then runs inside its region and keeps its gradient in bfloat16: close,
   * not the same bits), for one more head matmul in backward. It lowers what is held between
   * forward and backward, not a step's peak: the logits and their gradient exist together at the
   * loss either way.
   */
  loss(ids: Tensor, targets: Tensor, options: LlamaForwardOptions & { ignoreIndex?: number; recomputeLogits?: boolean } = {}): Variable {
    const { ignoreIndex, recomputeLogits = false } = options;
    if (typeof recomputeLogits !== 'boolean') throw new InvalidArgumentError(`Llama.loss: recomputeLogits must be a boolean, got ${describeValue(recomputeLogits)}`);
    if (!recomputeLogits) return tidy(() => crossEntropy(this.forward(ids, options), targets, { ignoreIndex }));
    // The final norm, the head and the loss run inside forward (so inside whatever wraps it, as the
    // layers do) under checkpoint(), the targets one of its inputs (kept for the recompute, whatever
    // the caller frees).
    const headLoss = (h: Variable, t: Tensor): Variable => tidy(() => crossEntropy(this.logits(this.norm.forward(h)), t, { ignoreIndex }));
    return tidy(() => this.forward(ids, { ...options, [HEAD]: (h: Variable) => checkpoint(headLoss, h, targets) } as LlamaForwardOptions));
  }
}
