// torch.nn.functional: the differentiable ops that layers are made of, each a fused backend kernel
// (or a short composition) with its backward beside it. Shapes in comments: B batch, T sequence,
// H heads, D head dim, C channels/classes.
import { checkOptions, describeValue, InvalidArgumentError, ShapeMismatchError } from '../errors.js';
import { checkTensor, Tensor } from '../tensor/tensor.js';
import { headsLayout, numel } from '../backend/shape.js';
import { checkVariables, isGradEnabled, leafGradOutput, leafGradWritten, Variable } from '../autograd/variable.js';
import { apply, defineOp, sameDtypeOrFloat32 } from '../autograd/op.js';
import { permute, reshape } from '../autograd/ops.js';
import { floating, kBinary, kSum, outCategory, productPlusBias, sameBackend, zeros } from '../autograd/kernels.js';
import { defaultGenerator, type Generator } from '../random.js';

const dims = (s: readonly number[]): string => `[${s.join(', ')}]`;

const LINEAR = defineOp({
  name: 'linear',
  forward: (io, [x, weight, bias]) => {
    floating(x.data, 'linear');
    sameBackend(x.data, weight.data);
    const inF = x.shape[x.shape.length - 1];
    const outF = weight.shape[0];
    const be = x.backend;
    // Flattened to 2-D so the weight gradient is one matmul over all rows (no batched product + sum).
    const rows = numel(x.shape.slice(0, -1));
    const x2 = x.data.reshape([rows, inF]);
    const y = io.output(x.data, [...x.shape.slice(0, -1), outF]);
    const y2 = y.reshape([rows, outF]);
    try {
      productPlusBias(be, y2, bias?.data ?? null, (into) => be.matmul(x2, weight.data, into, { transB: true }));
    } finally {
      x2.dispose(); y2.dispose();
    }
    return {
      y, save: (needs) => [needs[1] ? x.data : null, needs[0] ? weight.data : null], slots: ['input0', 'input1'],
      backward: (gy, [sx, sw], needs) => {
        const g2 = gy.reshape([rows, outF]);
        // A .grad made here for the weight (leafGradOutput) is unset again if anything after fails.
        let made: Tensor | null = null;
        try {
          let gx: Tensor | null = null, gw: Tensor | null = null, gb: Tensor | null = null;
          // dW first: its matmul may stage X (low precision) in float32 whole, and that copy is then
          // freed before dX (as large as X in float32) exists. The same values in either order.
          if (needs[1]) { // dW = dY^T @ X, written (or added) straight into the weight's .grad where it can be
            const sx2 = sx!.reshape([rows, inF]);
            try {
              // Not when the weight is also this op's input or bias: the engine adds those
              // contributions after the node, and dW must come last, as it did as a temporary.
              const leaf = weight === x || weight === bias ? null : leafGradOutput(weight);
              if (leaf) {
                if (!leaf.accumulate) made = leaf.grad;
                be.matmul(g2, sx2, leaf.grad, { transA: true, accumulate: leaf.accumulate });
                gw = leafGradWritten(weight);
              } else {
                gw = Tensor.empty(be, weight.shape, { dtype: 'float32', category: 'temporary' });
                be.matmul(g2, sx2, gw, { transA: true });
              }
            } finally {
              sx2.dispose();
            }
          }
          if (needs[0]) { // dX = dY @ W
            gx = Tensor.empty(be, x.shape, { dtype: 'float32', category: 'temporary' });
            const gx2 = gx.reshape([rows, inF]);
            be.matmul(g2, sw!, gx2, {});
            gx2.dispose();
          }
          if (bias && needs[2]) gb = kSum(g2, 0, 'temporary'); // db = the rows of dY summed
          return [gx, gw, gb];
        } catch (e) {
          if (made) { // a .grad that holds nothing (or that the failing backward's cleanup freed)
            if (weight.grad === made) weight.grad = null;
            made.dispose();
          }
          throw e;
        } finally {
          g2.dispose();
        }
      },
    };
  },
});

/** y = x @ weight^T + bias: x [..., in], weight [out, in], bias [out] or null. */
export function linear(x: Variable, weight: Variable, bias: Variable | null = null): Variable {
  checkVariables('linear', bias === null ? [x, weight] : [x, weight, bias]);
  const inF = x.shape[x.shape.length - 1];
  if (weight.data.rank !== 2 || weight.shape[1] !== inF) throw new ShapeMismatchError(`linear: input ${dims(x.shape)} does not fit weight ${dims(weight.shape)} (expected [out, ${inF}])`);
  const outF = weight.shape[0];
  if (bias && (bias.data.rank !== 1 || bias.shape[0] !== outF)) throw new ShapeMismatchError(`linear: bias ${dims(bias.shape)} does not fit weight ${dims(weight.shape)}`);
  if (x.data.rank < 1) throw new ShapeMismatchError('linear: the input must have at least one dimension');
  return apply(LINEAR, bias ? [x, weight, bias] : [x, weight]);
}

const HALF_DTYPES: ReadonlySet<string> = new Set(['float32', 'bfloat16', 'float16']);

const EMBEDDING = defineOp({
  name: 'embedding',
  // Rows come out in the table's dtype, as in PyTorch: a bfloat16 table gives bfloat16 rows (a
  // bf16-true model's residual stream stays bfloat16), the same values a float32 decode gives.
  // Tables in the 8-bit and narrower formats (a converted model's) decode to float32 rows.
  outputDtype: ([table]) => (HALF_DTYPES.has(table.data.dtype) ? table.data.dtype : 'float32'),
  forward: (io, [table], ids: Tensor, paddingIdx: number | null) => {
    sameBackend(ids, table.data);
    const be = table.backend;
    const y = io.output(table.data, [...ids.shape, table.shape[1]]);
    be.embedding(ids, table.data, y);
    const shape = table.shape;
    return {
      y, save: () => [ids], slots: ['ids'],
      backward: (gy, [sids]) => {
        const g = zeros(be, shape, 'temporary');
        if (paddingIdx === null) be.embeddingBackward(sids!, gy, g);
        else { // the padding id becomes -1, which the backward kernel skips
          const t = Tensor.from(be, [paddingIdx, -1], [2], { dtype: 'float32', category: 'temporary' });
          const keep = Tensor.empty(be, sids!.shape, { dtype: 'float32', category: 'temporary' }), back = Tensor.empty(be, sids!.shape, { dtype: 'int32', category: 'temporary' });
          const s0 = t.slice(0, 1), s1 = t.slice(1, 2);
          const p = s0.reshape([]), m = s1.reshape([]);
          try {
            be.binary('sub', sids!, p, keep);
            be.where(keep, sids!, m, back);
            be.embeddingBackward(back, gy, g);
          } finally {
            for (const x of [t, s0, s1, keep, back, p, m]) x.dispose(); // every view holds the storage
          }
        }
        return [g];
      },
    };
  },
});

/** Rows of `table` [V, C] picked by int32 ids [...]: out [..., C]. An id outside [0, V) gives zeros. */
export interface EmbeddingOptions {
  /** Rows at this id get no gradient (torch's padding_idx; the forward still reads the row). */
  paddingIdx?: number | null;
}

export function embedding(ids: Tensor, table: Variable, options: EmbeddingOptions = {}): Variable {
  checkTensor(ids, 'embedding ids');
  checkVariables('embedding', [table]);
  if (ids.dtype !== 'int32') throw new InvalidArgumentError(`embedding: ids must be int32, got ${ids.dtype}`);
  if (table.data.rank !== 2) throw new ShapeMismatchError(`embedding: table must be [rows, dim], got ${dims(table.shape)}`);
  const pad: unknown = checkOptions(options, ['paddingIdx'], 'embedding').paddingIdx ?? null;
  const rows = table.shape[0];
  // torch: padding_idx must be within num_embeddings; a negative one counts from the end
  if (pad !== null && !(typeof pad === 'number' && Number.isSafeInteger(pad) && pad >= -rows && pad < rows)) {
    throw new InvalidArgumentError(`embedding: paddingIdx must be an integer in [-${rows}, ${rows}) (the table's rows), got ${describeValue(pad)}`);
  }
  return apply(EMBEDDING, [table], ids, pad === null ? null : pad < 0 ? pad + rows : pad);
}

/** Throws unless eps is a finite number >= 0 (a string would become NaN in the kernel). */
function checkEps(op: string, eps: unknown): void {
  if (!(typeof eps === 'number' && Number.isFinite(eps) && eps >= 0)) throw new InvalidArgumentError(`${op}: eps must be a finite number >= 0, got ${describeValue(eps)}`);
}

const RMS_NORM = defineOp({
  name: 'rms_norm',
  forward: (io, [x, weight], eps: number) => {
    floating(x.data, 'rms_norm');
    const c = x.shape[x.shape.length - 1];
    sameBackend(x.data, weight.data);
    const be = x.backend;
    const y = io.output(x.data, x.shape);
    const rstd = io.stat(x.data, x.shape.slice(0, -1), 'rstd');
    be.rmsNorm(x.data, weight.data, y, rstd, eps);
    // The input may be kept rounded (a policy's saveDtype): the float32 residual stream is then not held for backward.
    const sx = x.requiresGrad || weight.requiresGrad ? io.forSaving(x.data, 'input') : x.data;
    return {
      y, temps: sx === x.data ? [rstd] : [rstd, sx], slots: ['input0', 'input1', 'rstd'],
      save: () => [sx, weight.data, rstd],
      backward: (gy, [sx, sw, sr], needs) => {
        const dx = Tensor.empty(be, x.shape, { dtype: 'float32', category: 'temporary' });
        const dw = zeros(be, [c], 'temporary');
        be.rmsNormBackward(gy, sx!, sw!, sr!, dx, dw);
        if (!needs[0]) dx.dispose();
        if (!needs[1]) dw.dispose();
        return [needs[0] ? dx : null, needs[1] ? dw : null];
      },
    };
  },
});

/** RMSNorm over the last axis: x * rsqrt(mean(x^2) + eps) * weight. */
export function rmsNorm(x: Variable, weight: Variable, eps: number): Variable {
  checkVariables('rmsNorm', [x, weight]);
  checkEps('rmsNorm', eps);
  const c = x.shape[x.shape.length - 1];
  if (weight.data.rank !== 1 || weight.shape[0] !== c) throw new ShapeMismatchError(`rmsNorm: weight ${dims(weight.shape)} does not fit input ${dims(x.shape)}`);
  return apply(RMS_NORM, [x, weight], eps);
}

const LAYER_NORM = defineOp({
  name: 'layer_norm',
  forward: (io, [x, weight, bias], eps: number) => {
    floating(x.data, 'layer_norm');
    const c = x.shape[x.shape.length - 1];
    const be = x.backend;
    const y = io.output(x.data, x.shape);
    const mean = io.stat(x.data, x.shape.slice(0, -1), 'mean');
    const rstd = io.stat(x.data, x.shape.slice(0, -1), 'rstd');
    be.layerNorm(x.data, weight.data, bias.data, y, mean, rstd, eps);
    const sx = x.requiresGrad || weight.requiresGrad || bias.requiresGrad ? io.forSaving(x.data, 'input') : x.data;
    return {
      y, temps: sx === x.data ? [mean, rstd] : [mean, rstd, sx], slots: ['input0', 'input1', 'mean', 'rstd'],
      save: () => [sx, weight.data, mean, rstd],
      backward: (gy, [sx, sw, sm, sr], needs) => {
        const dx = Tensor.empty(be, x.shape, { dtype: 'float32', category: 'temporary' });
        const dw = zeros(be, [c], 'temporary'), db = zeros(be, [c], 'temporary');
        be.layerNormBackward(gy, sx!, sw!, sm!, sr!, dx, dw, db);
        return [dx, dw, db].map((g, i) => (needs[i] ? g : (g.dispose(), null)));
      },
    };
  },
});

/** LayerNorm over the last axis with weight and bias. */
export function layerNorm(x: Variable, weight: Variable, bias: Variable, eps: number): Variable {
  checkVariables('layerNorm', [x, weight, bias]);
  checkEps('layerNorm', eps);
  const c = x.shape[x.shape.length - 1];
  for (const [name, p] of [['weight', weight], ['bias', bias]] as const) {
    if (p.data.rank !== 1 || p.shape[0] !== c) throw new ShapeMismatchError(`layerNorm: ${name} ${dims(p.shape)} does not fit input ${dims(x.shape)}`);
  }
  return apply(LAYER_NORM, [x, weight, bias], eps);
}

/** Attention heads: [B, T, H*D] -> [B, H, T, D], a strided view (no copy: attention reads the heads in place). */
export function splitHeads(x: Variable, h: number): Variable {
  const [b, t, c] = x.shape;
  return headsFirst(reshape(x, [b, t, h, c / h]));
}

/** [B, T, H, D] -> [B, H, T, D], a strided view. */
export function headsFirst(x: Variable): Variable {
  return permute(x, [0, 2, 1, 3]);
}

/** [B, H, T, D] -> [B, T, H*D], the inverse of splitHeads: free for attention's output (laid out [B, T, H, D]), a copy otherwise. */
export function mergeHeads(x: Variable): Variable {
  const [b, h, t, d] = x.shape;
  return reshape(permute(x, [0, 2, 1, 3]), [b, t, h * d]);
}

export interface AttentionOptions {
  /**
   * true: causal attention (query t sees keys <= t, a decoder); false: every key (an encoder such
   * as BERT). Required: PyTorch's default is false, so it is asked for explicitly rather than assumed.
   */
  isCausal: boolean;
  /** Key padding mask [B, T]: 1 keeps a key, 0 masks it (float32 or int32). */
  mask?: Tensor | null;
  /** Score scale; 1/sqrt(D) by default. */
  scale?: number;
}

/**
 * Scaled-dot-product attention, q, k, v [B, H, T, D] -> [B, H, T, D], causal or bidirectional
 * (one fused kernel; no T x T buffer is kept: backward recomputes the scores from q, k and the
 * saved log-sum-exp). A query whose keys are all masked gets zeros (PyTorch's SDPA gives NaN there).
 */
export function scaledDotProductAttention(q: Variable, k: Variable, v: Variable, options: AttentionOptions): Variable {
  if (typeof options?.isCausal !== 'boolean') throw new InvalidArgumentError('scaledDotProductAttention: pass { isCausal: true } (a decoder) or { isCausal: false } (an encoder)');
  if (options.mask !== undefined && options.mask !== null) checkTensor(options.mask, 'attention mask');
  return apply(ATTENTION, [q, k, v], options);
}

/** The layout attention computes in: 'bhtd' (contiguous [B, H, T, D]) or 'bthd' (a [B, H, T, D] view of [B, T, H, D] memory, what splitHeads makes). */
type HeadsLayout = 'bhtd' | 'bthd';

/** t in `layout`: t itself (another reference) when it is, else a copy laid out so. */
function inLayout(t: Tensor, layout: HeadsLayout): Tensor {
  if (headsLayout(t) === layout) return t.reshape(t.shape);
  if (layout === 'bhtd') return t.contiguous();
  const btHd = t.permute([0, 2, 1, 3]);
  try {
    const c = btHd.contiguous();
    try { return c.permute([0, 2, 1, 3]); } finally { c.dispose(); }
  } finally {
    btHd.dispose();
  }
}

/** A new [B, H, T, D] float tensor laid out as `layout`. */
function allocHeads(make: (shape: readonly number[]) => Tensor, shape: readonly number[], layout: HeadsLayout): Tensor {
  if (layout === 'bhtd') return make(shape);
  const [b, h, t, d] = shape;
  const base = make([b, t, h, d]);
  try { return base.permute([0, 2, 1, 3]); } finally { base.dispose(); }
}

const ATTENTION = defineOp({
  name: 'scaled_dot_product_attention', views: true,
  forward: (io, [q0, k0, v0], options: AttentionOptions) => {
    for (const t of [q0, k0, v0]) floating(t.data, 'attention');
    if (q0.data.rank !== 4 || q0.shape.join() !== k0.shape.join() || q0.shape.join() !== v0.shape.join()) {
      throw new ShapeMismatchError(`attention: q, k, v must be [B, H, T, D] of one shape, got ${dims(q0.shape)}, ${dims(k0.shape)}, ${dims(v0.shape)}`);
    }
    const [b, h, t, d] = q0.shape;
    const mask = options.mask ?? null;
    if (mask && (mask.rank !== 2 || mask.shape[0] !== b || mask.shape[1] !== t)) throw new ShapeMismatchError(`attention: mask ${dims(mask.shape)} must be [B, T] = [${b}, ${t}]`);
    const scale = options.scale ?? 1 / Math.sqrt(d);
    const be = q0.backend;
    // Heads are read in place: q, k and v in one layout (q's; a copy of any other), out made in it too.
    const layout = headsLayout(q0.data) ?? 'bhtd';
    const copies = [q0, k0, v0].map((x) => (headsLayout(x.data) === layout ? null : inLayout(x.data, layout)));
    const [q, k, v] = [q0, k0, v0].map((x, i) => copies[i] ?? x.data);
    try {
      const out = allocHeads((shape) => io.output(q0.data, shape), q0.shape, layout);
      const lse = io.stat(q0.data, [b, h, t], 'lse');
      const causal = options.isCausal;
      be.attention(q, k, v, out, lse, mask, scale, causal);
      return {
        y: out, temps: [lse, ...copies.filter((x): x is Tensor => x !== null)], save: () => [q, k, v, out, lse, mask], slots: ['input0', 'input1', 'input2', 'output', 'lse', 'mask'],
        backward: (gy, [sq, sk, sv, so, sl, sm], needs) => {
          // Saved tensors may come back in another layout (a pack hook that copied them): one layout for all.
          const lay = headsLayout(sq!) ?? 'bhtd';
          const ins = [gy, sq!, sk!, sv!, so!].map((x) => inLayout(x, lay));
          try {
            const g = [0, 1, 2].map(() => allocHeads((shape) => Tensor.empty(be, shape, { dtype: 'float32', category: 'temporary' }), q0.shape, lay));
            be.attentionBackward(ins[0], ins[1], ins[2], ins[3], ins[4], sl!, sm, scale, g[0], g[1], g[2], causal);
            return g.map((x, i) => (needs[i] ? x : (x.dispose(), null)));
          } finally {
            for (const x of ins) x.dispose();
          }
        },
      };
    } catch (e) {
      for (const x of copies) x?.dispose();
      throw e;
    }
  },
});

export interface CrossEntropyOptions {
  /** Targets equal to this are skipped (PyTorch's default -100). */
  ignoreIndex?: number;
}

/**
 * Mean cross-entropy of logits [N, C] (or [..., C]) against int32 targets [N] (or [...]); rows whose
 * target is ignoreIndex do not count. The gradient is computed in the forward pass and saved
 * instead of the logits (same size), so the logits can be freed as soon as the loss is known.
 */
export function crossEntropy(logits: Variable, targets: Tensor, options: CrossEntropyOptions = {}): Variable {
  checkVariables('crossEntropy', [logits]);
  checkTensor(targets, 'crossEntropy targets');
  const ignoreIndex: unknown = checkOptions(options, ['ignoreIndex'], 'crossEntropy').ignoreIndex ?? -100;
  if (!(typeof ignoreIndex === 'number' && Number.isSafeInteger(ignoreIndex))) throw new InvalidArgumentError(`crossEntropy: ignoreIndex must be an integer, got ${describeValue(ignoreIndex)}`);
  if (targets.dtype !== 'int32') throw new InvalidArgumentError(`crossEntropy: targets must be int32, got ${targets.dtype}`);
  const rows = numel(logits.shape.slice(0, -1));
  if (logits.data.rank < 2 || targets.size !== rows || targets.shape.join() !== logits.shape.slice(0, -1).join()) {
    throw new ShapeMismatchError(`crossEntropy: logits ${dims(logits.shape)} and targets ${dims(targets.shape)} do not match (targets must be the logits' shape without the last dim)`);
  }
  return apply(CROSS_ENTROPY, [logits], targets, ignoreIndex);
}

const CROSS_ENTROPY = defineOp({
  name: 'cross_entropy',
  forward: (io, [logits], targets: Tensor, ignoreIndex: number) => {
    floating(logits.data, 'cross_entropy');
    sameBackend(logits.data, targets);
    const c = logits.shape[logits.shape.length - 1];
    const rows = numel(logits.shape.slice(0, -1));
    const be = logits.backend;
    const x2 = logits.data.reshape([rows, c]), t1 = targets.reshape([rows]);
    const loss = io.output(logits.data, []);
    const wantGrad = logits.requiresGrad && isGradEnabled();
    const dl = wantGrad ? io.stat(logits.data, [rows, c], 'dlogits') : null;
    try {
      be.crossEntropy(x2, t1, loss, dl, ignoreIndex, 1);
    } finally {
      x2.dispose(); t1.dispose();
    }
    const shape = logits.shape;
    // The gradient may be kept rounded (a policy's saveDtype, e.g. autocast's bfloat16): half the bytes.
    const kept = dl ? io.forSaving(dl, 'dlogits') : null;
    if (kept !== dl) dl!.dispose();
    return {
      y: loss, temps: kept ? [kept] : [], save: () => [kept], slots: ['dlogits'],
      backward: (gy, [sdl]) => {
        const g = kBinary('mul', sdl!, gy, 'temporary');
        const r = g.reshape(shape);
        g.dispose();
        return [r];
      },
    };
  },
});

const DROPOUT = defineOp({
  name: 'dropout', outputDtype: sameDtypeOrFloat32, // the input's dtype (the mask is not an input)
  forward: (io, [x], mask: Tensor) => {
    const y = io.output(x.data, x.shape);
    x.backend.binary('mul', x.data, mask, y);
    return { y, save: () => [mask], slots: ['mask'], backward: (gy, [sm]) => [kBinary('mul', gy, sm!, 'temporary')] };
  },
});

/**
 * Dropout: zeroes each element with probability p and scales the rest by 1/(1-p); identity when not
 * training. The output keeps x's dtype; the scale is a float32 and each product is rounded once to
 * that dtype (PyTorch rounds the scale to a bfloat16/float16 input's dtype first).
 */
export function dropout(x: Variable, p: number, training: boolean, generator: Generator = defaultGenerator): Variable {
  checkVariables('dropout', [x]);
  if (!(typeof p === 'number' && p >= 0 && p <= 1)) throw new InvalidArgumentError(`dropout probability must be a number in [0, 1], got ${describeValue(p)}`);
  if (!training || p === 0) return x;
  const n = x.data.size;
  const keep = new Float32Array(n);
  if (p < 1) {
    const s = 1 / (1 - p);
    for (let i = 0; i < n; i++) keep[i] = generator.random() < p ? 0 : s;
  }
  const mask = Tensor.from(x.backend, keep, x.shape, { dtype: 'float32', category: outCategory(), label: 'dropout mask' });
  try {
    return apply(DROPOUT, [x], mask);
  } finally {
    mask.dispose(); // the node keeps its own reference when it saves the mask
  }
}

// Vision ops (src/nn/vision.ts), so that functional.conv2d etc. are where PyTorch users look.
export { conv2d, batchNorm, maxPool2d, adaptiveAvgPool2d } from './vision.js';
export type { Conv2dOptions, BatchNormOptions, MaxPool2dOptions, Size2d } from './vision.js';
