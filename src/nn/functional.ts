// torch.nn.functional: the differentiable ops that layers are made of, each a fused backend kernel
// (or a short composition) with its backward beside it. Shapes in comments: B batch, T sequence,
// H heads, D head dim, C channels/classes.
import { checkOptions, describeValue, InvalidArgumentError, ShapeMismatchError } from '../errors.js';
import { checkTensor, Tensor, withOutputs } from '../tensor/tensor.js';
import { numel } from '../backend/shape.js';
import { applyOpPolicy, checkVariables, isGradEnabled, record, tidy, Variable } from '../autograd/variable.js';
import { add, matmul, mul, reshape } from '../autograd/ops.js';
import { floating, kBinary, outCategory, sameBackend, zeros } from '../autograd/kernels.js';
import { defaultGenerator, type Generator } from '../random.js';

const dims = (s: readonly number[]): string => `[${s.join(', ')}]`;

/** y = x @ weight^T + bias: x [..., in], weight [out, in], bias [out] or null. */
export function linear(x: Variable, weight: Variable, bias: Variable | null = null): Variable {
  checkVariables('linear', bias === null ? [x, weight] : [x, weight, bias]);
  const inF = x.shape[x.shape.length - 1];
  if (weight.data.rank !== 2 || weight.shape[1] !== inF) throw new ShapeMismatchError(`linear: input ${dims(x.shape)} does not fit weight ${dims(weight.shape)} (expected [out, ${inF}])`);
  const outF = weight.shape[0];
  if (bias && (bias.data.rank !== 1 || bias.shape[0] !== outF)) throw new ShapeMismatchError(`linear: bias ${dims(bias.shape)} does not fit weight ${dims(weight.shape)}`);
  // Flattened to 2-D so the weight gradient is one matmul over all rows (no batched product + sum).
  return tidy(() => {
    const flat = x.data.rank === 2 ? x : reshape(x, [-1, inF]);
    let y = matmul(flat, weight, { transB: true });
    if (bias) y = add(y, bias);
    return x.data.rank === 2 ? y : reshape(y, [...x.shape.slice(0, -1), outF]);
  });
}

/** Rows of `table` [V, C] picked by int32 ids [...]: out [..., C]. An id outside [0, V) gives zeros. */
export function embedding(ids: Tensor, table: Variable): Variable {
  checkTensor(ids, 'embedding ids');
  [table] = applyOpPolicy('embedding', [table] as const);
  if (ids.dtype !== 'int32') throw new InvalidArgumentError(`embedding: ids must be int32, got ${ids.dtype}`);
  if (table.data.rank !== 2) throw new ShapeMismatchError(`embedding: table must be [rows, dim], got ${dims(table.shape)}`);
  sameBackend(ids, table.data);
  const be = table.backend;
  const y = withOutputs(() => {
    const t = Tensor.empty(be, [...ids.shape, table.shape[1]], { category: outCategory(), label: 'embedding' });
    be.embedding(ids, table.data, t);
    return t;
  });
  const shape = table.shape;
  return record('embedding', y, [table], () => [ids], (gy, [sids]) => {
    const g = zeros(be, shape, 'temporary');
    be.embeddingBackward(sids!, gy, g);
    return [g];
  });
}

/** RMSNorm over the last axis: x * rsqrt(mean(x^2) + eps) * weight. */
/** Throws unless eps is a finite number >= 0 (a string would become NaN in the kernel). */
function checkEps(op: string, eps: unknown): void {
  if (!(typeof eps === 'number' && Number.isFinite(eps) && eps >= 0)) throw new InvalidArgumentError(`${op}: eps must be a finite number >= 0, got ${describeValue(eps)}`);
}

export function rmsNorm(x: Variable, weight: Variable, eps: number): Variable {
  checkEps('rmsNorm', eps);
  [x, weight] = applyOpPolicy('rmsNorm', [x, weight] as const);
  floating(x.data, 'rmsNorm');
  const c = x.shape[x.shape.length - 1];
  if (weight.data.rank !== 1 || weight.shape[0] !== c) throw new ShapeMismatchError(`rmsNorm: weight ${dims(weight.shape)} does not fit input ${dims(x.shape)}`);
  sameBackend(x.data, weight.data);
  const be = x.backend;
  const [y, rstd] = withOutputs(() => {
    const out = Tensor.empty(be, x.shape, { category: outCategory(), label: 'rmsNorm' });
    const r = Tensor.empty(be, x.shape.slice(0, -1), { category: outCategory(), label: 'rstd' });
    be.rmsNorm(x.data, weight.data, out, r, eps);
    return [out, r] as const;
  });
  return record('rmsNorm', y, [x, weight], () => [x.data, weight.data, rstd], (gy, [sx, sw, sr], needs) => {
    const dx = Tensor.empty(be, x.shape, { category: 'temporary' });
    const dw = zeros(be, [c], 'temporary');
    be.rmsNormBackward(gy, sx!, sw!, sr!, dx, dw);
    if (!needs[0]) dx.dispose();
    if (!needs[1]) dw.dispose();
    return [needs[0] ? dx : null, needs[1] ? dw : null];
  }, [rstd]);
}

/** LayerNorm over the last axis with weight and bias. */
export function layerNorm(x: Variable, weight: Variable, bias: Variable, eps: number): Variable {
  checkEps('layerNorm', eps);
  [x, weight, bias] = applyOpPolicy('layerNorm', [x, weight, bias] as const);
  floating(x.data, 'layerNorm');
  const c = x.shape[x.shape.length - 1];
  for (const [name, p] of [['weight', weight], ['bias', bias]] as const) {
    if (p.data.rank !== 1 || p.shape[0] !== c) throw new ShapeMismatchError(`layerNorm: ${name} ${dims(p.shape)} does not fit input ${dims(x.shape)}`);
  }
  const be = x.backend;
  const [y, mean, rstd] = withOutputs(() => {
    const out = Tensor.empty(be, x.shape, { category: outCategory(), label: 'layerNorm' });
    const m = Tensor.empty(be, x.shape.slice(0, -1), { category: outCategory(), label: 'mean' });
    const r = Tensor.empty(be, x.shape.slice(0, -1), { category: outCategory(), label: 'rstd' });
    be.layerNorm(x.data, weight.data, bias.data, out, m, r, eps);
    return [out, m, r] as const;
  });
  return record('layerNorm', y, [x, weight, bias], () => [x.data, weight.data, mean, rstd], (gy, [sx, sw, sm, sr], needs) => {
    const dx = Tensor.empty(be, x.shape, { category: 'temporary' });
    const dw = zeros(be, [c], 'temporary'), db = zeros(be, [c], 'temporary');
    be.layerNormBackward(gy, sx!, sw!, sm!, sr!, dx, dw, db);
    const out = [dx, dw, db].map((g, i) => (needs[i] ? g : (g.dispose(), null)));
    return out;
  }, [mean, rstd]);
}

export interface AttentionOptions {
  /**
   * Must be true: only causal attention (query t sees keys <= t) is implemented. PyTorch's default
   * is false, so it is asked for explicitly rather than assumed.
   */
  isCausal: boolean;
  /** Key padding mask [B, T]: 1 keeps a key, 0 masks it (float32 or int32). */
  mask?: Tensor | null;
  /** Score scale; 1/sqrt(D) by default. */
  scale?: number;
}

/**
 * Causal scaled-dot-product attention, q, k, v [B, H, T, D] -> [B, H, T, D] (one fused kernel;
 * no T x T buffer is kept: backward recomputes the scores from q, k and the saved log-sum-exp).
 * A query whose keys are all masked gets zeros (PyTorch's SDPA gives NaN there).
 */
export function scaledDotProductAttention(q: Variable, k: Variable, v: Variable, options: AttentionOptions): Variable {
  if (options?.isCausal !== true) throw new InvalidArgumentError('scaledDotProductAttention: only causal attention is implemented; pass { isCausal: true }');
  [q, k, v] = applyOpPolicy('scaledDotProductAttention', [q, k, v] as const);
  for (const t of [q, k, v]) floating(t.data, 'attention');
  if (q.data.rank !== 4 || q.shape.join() !== k.shape.join() || q.shape.join() !== v.shape.join()) {
    throw new ShapeMismatchError(`attention: q, k, v must be [B, H, T, D] of one shape, got ${dims(q.shape)}, ${dims(k.shape)}, ${dims(v.shape)}`);
  }
  const [b, h, t, d] = q.shape;
  const mask = options.mask ?? null;
  if (mask !== null) checkTensor(mask, 'attention mask');
  if (mask && (mask.rank !== 2 || mask.shape[0] !== b || mask.shape[1] !== t)) throw new ShapeMismatchError(`attention: mask ${dims(mask.shape)} must be [B, T] = [${b}, ${t}]`);
  const scale = options.scale ?? 1 / Math.sqrt(d);
  const be = q.backend;
  const [out, lse] = withOutputs(() => {
    const o = Tensor.empty(be, q.shape, { category: outCategory(), label: 'attention' });
    const l = Tensor.empty(be, [b, h, t], { category: outCategory(), label: 'lse' });
    be.attention(q.data, k.data, v.data, o, l, mask, scale);
    return [o, l] as const;
  });
  return record('attention', out, [q, k, v], () => [q.data, k.data, v.data, out, lse, mask], (gy, [sq, sk, sv, so, sl, sm], needs) => {
    const g = [0, 1, 2].map(() => Tensor.empty(be, q.shape, { category: 'temporary' }));
    be.attentionBackward(gy, sq!, sk!, sv!, so!, sl!, sm, scale, g[0], g[1], g[2]);
    return g.map((x, i) => (needs[i] ? x : (x.dispose(), null)));
  }, [lse]);
}

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
  [logits] = applyOpPolicy('crossEntropy', [logits] as const);
  floating(logits.data, 'crossEntropy');
  checkTensor(targets, 'crossEntropy targets');
  const ignoreIndex: unknown = checkOptions(options, ['ignoreIndex'], 'crossEntropy').ignoreIndex ?? -100;
  if (!(typeof ignoreIndex === 'number' && Number.isSafeInteger(ignoreIndex))) throw new InvalidArgumentError(`crossEntropy: ignoreIndex must be an integer, got ${describeValue(ignoreIndex)}`);
  if (targets.dtype !== 'int32') throw new InvalidArgumentError(`crossEntropy: targets must be int32, got ${targets.dtype}`);
  const c = logits.shape[logits.shape.length - 1];
  const rows = numel(logits.shape.slice(0, -1));
  if (logits.data.rank < 2 || targets.size !== rows || targets.shape.join() !== logits.shape.slice(0, -1).join()) {
    throw new ShapeMismatchError(`crossEntropy: logits ${dims(logits.shape)} and targets ${dims(targets.shape)} do not match (targets must be the logits' shape without the last dim)`);
  }
  sameBackend(logits.data, targets);
  const be = logits.backend;
  const wantGrad = logits.requiresGrad && isGradEnabled();
  const [loss, dl] = withOutputs(() => {
    const x2 = logits.data.reshape([rows, c]), t1 = targets.reshape([rows]);
    const l = Tensor.empty(be, [], { category: outCategory(), label: 'crossEntropy' });
    const d = wantGrad ? Tensor.empty(be, [rows, c], { category: outCategory(), label: 'dlogits' }) : null;
    be.crossEntropy(x2, t1, l, d, ignoreIndex, 1);
    x2.dispose(); t1.dispose();
    return [l, d] as const;
  });
  const shape = logits.shape;
  return record('crossEntropy', loss, [logits], () => [dl], (gy, [sdl]) => {
    const g = kBinary('mul', sdl!, gy, 'temporary');
    const r = g.reshape(shape);
    g.dispose();
    return [r];
  }, dl ? [dl] : []);
}

/** Dropout: zeroes each element with probability p and scales the rest by 1/(1-p); identity when not training. */
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
  const mask = Tensor.from(x.backend, keep, x.shape, { category: outCategory(), label: 'dropout mask' });
  try {
    return mul(x, new Variable(mask, { requiresGrad: false }));
  } finally {
    mask.dispose(); // mul saved its own reference when it needs one
  }
}
