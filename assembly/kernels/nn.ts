// float32 kernels of the nn family on the wasm backend: RMSNorm, LayerNorm, embedding and
// cross-entropy, forward and backward. The reference for shaders/norms.wgsl, embedding.wgsl and
// loss.wgsl. Pointers are byte offsets into memory; every float buffer is float32, ids/targets
// int32. Sums run sequentially in float32, row by row.

/** Version marker of this family (kept for the placeholder's export). */
export const nnFamilyVersion: i32 = 1;

/** out = x * rstd * w per row; rstd[r] = 1 / sqrt(mean(x^2) + eps). */
export function rmsNormF32(x: usize, w: usize, out: usize, rstd: usize, rows: usize, cols: usize, eps: f32): void {
  for (let r: usize = 0; r < rows; r++) {
    const xi = x + ((r * cols) << 2), oi = out + ((r * cols) << 2);
    let ss: f32 = 0;
    for (let c: usize = 0; c < cols; c++) {
      const v = load<f32>(xi + (c << 2));
      ss += v * v;
    }
    const rs: f32 = 1.0 / Mathf.sqrt(ss / <f32>cols + eps);
    store<f32>(rstd + (r << 2), rs);
    const rsV = f32x4.splat(rs);
    let c: usize = 0;
    for (; c + 4 <= cols; c += 4) v128.store(oi + (c << 2), f32x4.mul(f32x4.mul(v128.load(xi + (c << 2)), rsV), v128.load(w + (c << 2))));
    for (; c < cols; c++) store<f32>(oi + (c << 2), load<f32>(xi + (c << 2)) * rs * load<f32>(w + (c << 2)));
  }
}

/**
 * dx = rstd * (dy * w) - x * rstd^3 * mean(dy * w * x) per row; dw[c] += sum over rows of
 * dy * x * rstd (accumulated into dw).
 */
export function rmsNormBackwardF32(dy: usize, x: usize, w: usize, rstd: usize, dx: usize, dw: usize, rows: usize, cols: usize): void {
  rmsNormBackwardF32Part(dy, x, w, rstd, dx, dw, rows, cols, 0, rows, 0, cols);
}

/**
 * rmsNormBackwardF32 for threads: dx of rows [r0, r1) and dw of columns [c0, c1) (each column still
 * sums over every row, in order), so that parts together compute exactly the whole call.
 */
export function rmsNormBackwardF32Part(
  dy: usize, x: usize, w: usize, rstd: usize, dx: usize, dw: usize, rows: usize, cols: usize, r0: usize, r1: usize, c0: usize, c1: usize,
): void {
  for (let r: usize = r0; r < r1; r++) {
    const o = (r * cols) << 2;
    const rs = load<f32>(rstd + (r << 2));
    let s: f32 = 0;
    for (let c: usize = 0; c < cols; c++) s += load<f32>(dy + o + (c << 2)) * load<f32>(w + (c << 2)) * load<f32>(x + o + (c << 2));
    // x * k as (2 x) (k / 2), PyTorch's composite's order (d x^2 = 2 x): the same product, but NaN
    // where 2 x overflows and k is 0 (a row whose squares overflow), as there.
    const k: f32 = rs * rs * rs * (s / <f32>cols) * 0.5;
    // dx four lanes at a time: the same operations as the scalar tail
    const rsV = f32x4.splat(rs), kV = f32x4.splat(k), two = f32x4.splat(2);
    let c: usize = 0;
    for (; c + 4 <= cols; c += 4) {
      const g = f32x4.mul(v128.load(dy + o + (c << 2)), v128.load(w + (c << 2)));
      v128.store(dx + o + (c << 2), f32x4.sub(f32x4.mul(rsV, g), f32x4.mul(f32x4.mul(v128.load(x + o + (c << 2)), two), kV)));
    }
    for (; c < cols; c++) {
      const g = load<f32>(dy + o + (c << 2)) * load<f32>(w + (c << 2));
      store<f32>(dx + o + (c << 2), rs * g - (load<f32>(x + o + (c << 2)) * 2) * k);
    }
  }
  // dw: each column sums dy (x rstd) over the rows in order (0, not NaN, where x^2 overflowed); four
  // columns a vector, sixteen a pass over the rows, then four, then one.
  let c = c0;
  for (; c + 16 <= c1; c += 16) {
    let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
    for (let r: usize = 0; r < rows; r++) {
      const o = (r * cols + c) << 2, rs = f32x4.splat(load<f32>(rstd + (r << 2)));
      s0 = f32x4.add(s0, f32x4.mul(v128.load(dy + o), f32x4.mul(v128.load(x + o), rs)));
      s1 = f32x4.add(s1, f32x4.mul(v128.load(dy + o, 16), f32x4.mul(v128.load(x + o, 16), rs)));
      s2 = f32x4.add(s2, f32x4.mul(v128.load(dy + o, 32), f32x4.mul(v128.load(x + o, 32), rs)));
      s3 = f32x4.add(s3, f32x4.mul(v128.load(dy + o, 48), f32x4.mul(v128.load(x + o, 48), rs)));
    }
    const d = dw + (c << 2);
    v128.store(d, f32x4.add(v128.load(d), s0));
    v128.store(d, f32x4.add(v128.load(d, 16), s1), 16);
    v128.store(d, f32x4.add(v128.load(d, 32), s2), 32);
    v128.store(d, f32x4.add(v128.load(d, 48), s3), 48);
  }
  for (; c + 4 <= c1; c += 4) {
    let s0 = f32x4.splat(0);
    for (let r: usize = 0; r < rows; r++) {
      const o = (r * cols + c) << 2;
      s0 = f32x4.add(s0, f32x4.mul(v128.load(dy + o), f32x4.mul(v128.load(x + o), f32x4.splat(load<f32>(rstd + (r << 2))))));
    }
    v128.store(dw + (c << 2), f32x4.add(v128.load(dw + (c << 2)), s0));
  }
  for (; c < c1; c++) {
    let s: f32 = 0;
    for (let r: usize = 0; r < rows; r++) {
      const o = ((r * cols + c) << 2);
      s += load<f32>(dy + o) * (load<f32>(x + o) * load<f32>(rstd + (r << 2)));
    }
    store<f32>(dw + (c << 2), load<f32>(dw + (c << 2)) + s);
  }
}

/**
 * out = (x - mean) * rstd * w + b per row; mean and rstd (1 / sqrt(var + eps), biased var) saved.
 * As PyTorch's CPU kernel: a row holding inf or NaN, whose magnitudes sum past the float32 range or
 * whose mean's square overflows (|mean| >= 2^64) is all NaN (mean, rstd, output, gradients); a
 * row whose variance alone overflows gets rstd 0, so its output is the bias and its gradient 0.
 * (PyTorch's Welford over SIMD lanes also gives NaN for a row of 8 or more where only one lane's
 * partial mean reaches 2^64: that depends on its vector width, and is not copied.)
 */
export function layerNormF32(x: usize, w: usize, b: usize, out: usize, mean: usize, rstd: usize, rows: usize, cols: usize, eps: f32): void {
  for (let r: usize = 0; r < rows; r++) {
    const xi = x + ((r * cols) << 2), oi = out + ((r * cols) << 2);
    let s: f32 = 0, sa: f32 = 0;
    for (let c: usize = 0; c < cols; c++) {
      const v = load<f32>(xi + (c << 2));
      s += v;
      sa += Mathf.abs(v);
    }
    const mu: f32 = layerNormMean(s / <f32>cols, sa);
    let v: f32 = 0;
    for (let c: usize = 0; c < cols; c++) {
      const d = load<f32>(xi + (c << 2)) - mu;
      v += d * d;
    }
    const rs: f32 = 1.0 / Mathf.sqrt(v / <f32>cols + eps);
    store<f32>(mean + (r << 2), mu);
    store<f32>(rstd + (r << 2), rs);
    const muV = f32x4.splat(mu), rsV = f32x4.splat(rs);
    let c: usize = 0;
    for (; c + 4 <= cols; c += 4) { // four lanes at a time: the scalar tail's operations
      const xh = f32x4.mul(f32x4.sub(v128.load(xi + (c << 2)), muV), rsV);
      v128.store(oi + (c << 2), f32x4.add(f32x4.mul(xh, v128.load(w + (c << 2))), v128.load(b + (c << 2))));
    }
    for (; c < cols; c++) {
      store<f32>(oi + (c << 2), (load<f32>(xi + (c << 2)) - mu) * rs * load<f32>(w + (c << 2)) + load<f32>(b + (c << 2)));
    }
  }
}

/** The row mean, or NaN where the row's moments overflow (the WGSL twin is ln_mean in norms.wgsl). */
@inline export function layerNormMean(mu: f32, sumAbs: f32): f32 {
  return sumAbs <= f32.MAX_VALUE && Mathf.abs(mu) < <f32>18446744073709551616.0 ? mu : NaN;
}

/**
 * xhat = (x - mean) * rstd, g = dy * w: dx = rstd * (g - mean(g) - xhat * mean(g * xhat));
 * dw[c] += sum dy * xhat, db[c] += sum dy (accumulated).
 */
export function layerNormBackwardF32(dy: usize, x: usize, w: usize, mean: usize, rstd: usize, dx: usize, dw: usize, db: usize, rows: usize, cols: usize): void {
  layerNormBackwardF32Part(dy, x, w, mean, rstd, dx, dw, db, rows, cols, 0, rows, 0, cols);
}

/**
 * layerNormBackwardF32 for threads: dx of rows [r0, r1) and dw, db of columns [c0, c1) (each column
 * still sums over every row, in order), so that parts together compute exactly the whole call.
 */
export function layerNormBackwardF32Part(
  dy: usize, x: usize, w: usize, mean: usize, rstd: usize, dx: usize, dw: usize, db: usize, rows: usize, cols: usize, r0: usize, r1: usize, c0: usize, c1: usize,
): void {
  for (let r: usize = r0; r < r1; r++) {
    const o = (r * cols) << 2;
    const mu = load<f32>(mean + (r << 2)), rs = load<f32>(rstd + (r << 2));
    let sg: f32 = 0, sgx: f32 = 0;
    for (let c: usize = 0; c < cols; c++) {
      const g = load<f32>(dy + o + (c << 2)) * load<f32>(w + (c << 2));
      const xh = (load<f32>(x + o + (c << 2)) - mu) * rs;
      sg += g;
      sgx += g * xh;
    }
    const mg: f32 = sg / <f32>cols, mgx: f32 = sgx / <f32>cols;
    const muV = f32x4.splat(mu), rsV = f32x4.splat(rs), mgV = f32x4.splat(mg), mgxV = f32x4.splat(mgx);
    let c: usize = 0;
    for (; c + 4 <= cols; c += 4) { // four lanes at a time: the scalar tail's operations
      const g = f32x4.mul(v128.load(dy + o + (c << 2)), v128.load(w + (c << 2)));
      const xh = f32x4.mul(f32x4.sub(v128.load(x + o + (c << 2)), muV), rsV);
      v128.store(dx + o + (c << 2), f32x4.mul(rsV, f32x4.sub(f32x4.sub(g, mgV), f32x4.mul(xh, mgxV))));
    }
    for (; c < cols; c++) {
      const g = load<f32>(dy + o + (c << 2)) * load<f32>(w + (c << 2));
      const xh = (load<f32>(x + o + (c << 2)) - mu) * rs;
      store<f32>(dx + o + (c << 2), rs * (g - mg - xh * mgx));
    }
  }
  // dw and db: each column sums over the rows in order; four columns a vector, then one
  let c = c0;
  for (; c + 4 <= c1; c += 4) {
    let sw = f32x4.splat(0), sb = f32x4.splat(0);
    for (let r: usize = 0; r < rows; r++) {
      const o = (r * cols + c) << 2;
      const d = v128.load(dy + o);
      const xh = f32x4.mul(f32x4.sub(v128.load(x + o), f32x4.splat(load<f32>(mean + (r << 2)))), f32x4.splat(load<f32>(rstd + (r << 2))));
      sw = f32x4.add(sw, f32x4.mul(d, xh));
      sb = f32x4.add(sb, d);
    }
    v128.store(dw + (c << 2), f32x4.add(v128.load(dw + (c << 2)), sw));
    v128.store(db + (c << 2), f32x4.add(v128.load(db + (c << 2)), sb));
  }
  for (; c < c1; c++) {
    let sw: f32 = 0, sb: f32 = 0;
    for (let r: usize = 0; r < rows; r++) {
      const o = ((r * cols + c) << 2);
      const d = load<f32>(dy + o);
      sw += d * ((load<f32>(x + o) - load<f32>(mean + (r << 2))) * load<f32>(rstd + (r << 2)));
      sb += d;
    }
    store<f32>(dw + (c << 2), load<f32>(dw + (c << 2)) + sw);
    store<f32>(db + (c << 2), load<f32>(db + (c << 2)) + sb);
  }
}

/** out[i, :] = table[ids[i], :], or zeros when ids[i] is outside [0, rows). */
export function embeddingF32(ids: usize, table: usize, out: usize, n: usize, rows: i32, cols: usize): void {
  for (let i: usize = 0; i < n; i++) {
    const id = load<i32>(ids + (i << 2));
    const oi = out + ((i * cols) << 2);
    if (id < 0 || id >= rows) {
      memory.fill(oi, 0, cols << 2);
      continue;
    }
    memory.copy(oi, table + ((<usize>id * cols) << 2), cols << 2);
  }
}

/** dtable[ids[i], :] += dy[i, :] in order of i; out-of-range ids are skipped. */
export function embeddingBackwardF32(ids: usize, dy: usize, dtable: usize, n: usize, rows: i32, cols: usize): void {
  embeddingBackwardF32Rows(ids, dy, dtable, n, cols, 0, rows);
}

/**
 * embeddingBackwardF32 for threads: only the table rows [v0, v1) (every position is read, in order
 * of i, so each table row gets the same additions in the same order as in the whole call).
 */
export function embeddingBackwardF32Rows(ids: usize, dy: usize, dtable: usize, n: usize, cols: usize, v0: i32, v1: i32): void {
  for (let i: usize = 0; i < n; i++) {
    const id = load<i32>(ids + (i << 2));
    if (id < v0 || id >= v1) continue;
    const ti = dtable + ((<usize>id * cols) << 2), di = dy + ((i * cols) << 2);
    for (let c: usize = 0; c < cols; c++) store<f32>(ti + (c << 2), load<f32>(ti + (c << 2)) + load<f32>(di + (c << 2)));
  }
}

/**
 * Mean cross-entropy over rows whose target != ignore. loss[0] = sum(ls - (x[t] - max)) / count (NaN
 * when count is 0, as PyTorch); dlogits (if not 0) = (softmax - onehot) * gradScale / count on
 * counted rows, 0 on ignored rows (and everywhere when count is 0). A target outside [0, cols)
 * that is not `ignore` makes its row's loss NaN (PyTorch raises instead). `rowLoss` is scratch of
 * `rows` floats.
 */
export function crossEntropyF32(logits: usize, targets: usize, loss: usize, dlogits: usize, rows: usize, cols: usize, ignore: i32, gradScale: f32, rowLoss: usize): void {
  const count = crossEntropyCount(targets, rows, ignore);
  crossEntropyF32Rows(logits, targets, rowLoss, dlogits, cols, ignore, crossEntropyGradFactor(gradScale, count), 0, rows);
  crossEntropyF32Sum(targets, rowLoss, loss, rows, ignore, count);
}

/** Rows whose target is not `ignore`. */
export function crossEntropyCount(targets: usize, rows: usize, ignore: i32): i32 {
  let count: i32 = 0;
  for (let r: usize = 0; r < rows; r++) if (load<i32>(targets + (r << 2)) != ignore) count++;
  return count;
}

/** The factor of dlogits: gradScale / count (0 when every row is ignored). */
export function crossEntropyGradFactor(gradScale: f32, count: i32): f32 {
  return count == 0 ? 0 : gradScale / <f32>count;
}

/**
 * Cross-entropy of rows [r0, r1) (threads split the rows): rowLoss[r] = ls - (x[t] - max) of each counted
 * row (NaN for a target outside [0, cols)), and dlogits (if not 0) = (softmax - onehot) * k there,
 * 0 on ignored rows. The loss is summed afterwards in row order (crossEntropyF32Sum).
 */
export function crossEntropyF32Rows(logits: usize, targets: usize, rowLoss: usize, dlogits: usize, cols: usize, ignore: i32, k: f32, r0: usize, r1: usize): void {
  for (let r: usize = r0; r < r1; r++) {
    const t = load<i32>(targets + (r << 2));
    const xi = logits + ((r * cols) << 2);
    if (t == ignore) {
      store<f32>(rowLoss + (r << 2), 0);
      if (dlogits != 0) memory.fill(dlogits + ((r * cols) << 2), 0, cols << 2);
      continue;
    }
    // log_softmax as PyTorch computes it, (x - max) - log(sum): exact for rows with a large offset.
    const m = rowMax(xi, cols), ls = rowLogSum(xi, cols, m);
    store<f32>(rowLoss + (r << 2), t >= 0 && <usize>t < cols ? ls - (load<f32>(xi + (<usize>t << 2)) - m) : NaN);
    if (dlogits == 0) continue;
    const di = dlogits + ((r * cols) << 2);
    for (let c: usize = 0; c < cols; c++) {
      let p = Mathf.exp((load<f32>(xi + (c << 2)) - m) - ls);
      if (<i32>c == t) p -= 1;
      store<f32>(di + (c << 2), p * k);
    }
  }
}

/** loss[0] = the sum of rowLoss over counted rows, in row order in float64, / count (NaN when count is 0). */
export function crossEntropyF32Sum(targets: usize, rowLoss: usize, loss: usize, rows: usize, ignore: i32, count: i32): void {
  let total: f64 = 0; // float64 accumulation, rounded once
  for (let r: usize = 0; r < rows; r++) if (load<i32>(targets + (r << 2)) != ignore) total += <f64>load<f32>(rowLoss + (r << 2));
  store<f32>(loss, count == 0 ? NaN : <f32>(total / <f64>count));
}

@inline function rowMax(xi: usize, cols: usize): f32 {
  let m: f32 = -Infinity;
  for (let c: usize = 0; c < cols; c++) m = Mathf.max(m, load<f32>(xi + (c << 2)));
  return m;
}

/** log(sum of exp(x - m)) of a row, the float32 exps summed in float64. */
@inline function rowLogSum(xi: usize, cols: usize, m: f32): f32 {
  let s: f64 = 0;
  for (let c: usize = 0; c < cols; c++) s += <f64>Mathf.exp(load<f32>(xi + (c << 2)) - m);
  return <f32>Math.log(s);
}
