// Scaled-dot-product attention (causal, or bidirectional with causal = 0) on the wasm backend, forward and backward (FlashAttention
// style: no [T, T] score matrix is ever stored). The reference for shaders/attention.wgsl (the
// same loops; dot products here sum four SIMD lanes, so the two agree within rounding, not bit for
// bit). Pointers are byte offsets into memory; every buffer is float32; q, k, v, out, dout, dq, dk, dv are [BH, T, D]
// rows of D floats, row i of head r = (b, h) at element b H T D + h hs + i ts (hs = T D, ts = D: [B, H, T, D];
// hs = D, ts = H D: [B, T, H, D] memory, the heads read in place), lse and di [BH, T], mask [B, T] (0 =
// none; key s of batch b is excluded when mask[b, s] == 0). Query t sees keys s <= t (every key s when causal is 0). A query
// row with no allowed key gets out = 0 and lse = -inf, and contributes nothing to any gradient.

/** Dot product of two rows of d floats (four f32x4 lanes, then the tail). */
@inline
function dot(a: usize, b: usize, d: usize): f32 {
  let acc = f32x4.splat(0);
  let i: usize = 0;
  for (; i + 4 <= d; i += 4) acc = f32x4.add(acc, f32x4.mul(v128.load(a + (i << 2)), v128.load(b + (i << 2))));
  let s: f32 = (f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1)) + (f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3));
  for (; i < d; i++) s += load<f32>(a + (i << 2)) * load<f32>(b + (i << 2));
  return s;
}

/** y[0..d) += alpha * x[0..d). */
@inline
function axpy(y: usize, x: usize, alpha: f32, d: usize): void {
  const al = f32x4.splat(alpha);
  let i: usize = 0;
  for (; i + 4 <= d; i += 4) v128.store(y + (i << 2), f32x4.add(v128.load(y + (i << 2)), f32x4.mul(al, v128.load(x + (i << 2)))));
  for (; i < d; i++) store<f32>(y + (i << 2), load<f32>(y + (i << 2)) + alpha * load<f32>(x + (i << 2)));
}

/** Element offset of row 0 of head r (batch r / heads, head r % heads). */
@inline
function headBase(r: usize, heads: usize, t: usize, d: usize, hs: usize): usize {
  return (r / heads) * heads * t * d + (r % heads) * hs;
}

@inline
function keep(mask: usize, b: usize, t: usize, s: usize): bool {
  return mask == 0 || load<f32>(mask + ((b * t + s) << 2)) != 0;
}

/**
 * Forward: per query row, pass 1 finds the running max m and sum l of exp(score - m) (online),
 * lse = m + log(l); pass 2 sums exp(score - lse) * v. bh rows of heads: batch b = bh / heads.
 */
export function attentionF32(q: usize, k: usize, v: usize, mask: usize, out: usize, lse: usize, bh: usize, heads: usize, t: usize, d: usize, scale: f32, causal: i32): void {
  const scores = heap.alloc(max<usize>(t, 1) << 2);
  attentionF32Heads(q, k, v, mask, out, lse, heads, t, d, scale, causal, 0, bh, t * d, d, scores);
  heap.free(scores);
}

/**
 * attentionF32 for the (batch, head) rows [r0, r1) only (threads split the heads). `scores` is
 * scratch of t floats: pass 1 keeps each score there, so pass 2 computes no dot product again (the
 * same values it would compute).
 */
export function attentionF32Heads(
  q: usize, k: usize, v: usize, mask: usize, out: usize, lse: usize, heads: usize, t: usize, d: usize, scale: f32, causal: i32, r0: usize, r1: usize,
  hs: usize, ts: usize, scores: usize,
): void {
  for (let r: usize = r0; r < r1; r++) {
    const b = r / heads;
    const base = headBase(r, heads, t, d, hs);
    for (let i: usize = 0; i < t; i++) {
      const qi = q + ((base + i * ts) << 2), oi = out + ((base + i * ts) << 2);
      let m: f32 = 0, l: f32 = 0;
      const send: usize = causal ? i + 1 : t;
      for (let s: usize = 0; s < send; s++) {
        if (!keep(mask, b, t, s)) continue;
        const sc = dot(qi, k + ((base + s * ts) << 2), d) * scale;
        store<f32>(scores + (s << 2), sc);
        if (l == 0) { m = sc; l = 1; }
        else if (sc > m) { l = l * Mathf.exp(m - sc) + 1; m = sc; }
        else l += Mathf.exp(sc - m);
      }
      for (let c: usize = 0; c < d; c++) store<f32>(oi + (c << 2), 0);
      if (l == 0) {
        store<f32>(lse + ((r * t + i) << 2), f32.NEGATIVE_INFINITY);
        continue;
      }
      const ls: f32 = m + Mathf.log(l);
      store<f32>(lse + ((r * t + i) << 2), ls);
      for (let s: usize = 0; s < send; s++) {
        if (!keep(mask, b, t, s)) continue;
        const p = Mathf.exp(load<f32>(scores + (s << 2)) - ls);
        const vs = v + ((base + s * ts) << 2);
        axpy(oi, vs, p, d);
      }
    }
  }
}

/**
 * Backward: di[row] = sum(dout * out); with P = exp(scale q.k - lse), dP = dout.v, dS = P (dP - di):
 * dq_t = scale sum_s dS_ts k_s, dk_s = scale sum_t dS_ts q_t, dv_s = sum_t P_ts dout_t (overwritten).
 * di is scratch of bh * t floats.
 */
export function attentionBackwardF32(
  dout: usize, q: usize, k: usize, v: usize, out: usize, lse: usize, mask: usize, dq: usize, dk: usize, dv: usize, di: usize,
  bh: usize, heads: usize, t: usize, d: usize, scale: f32, causal: i32,
): void {
  const bytes = attentionBackwardCacheBytes(t);
  const cache = bytes ? heap.alloc(bytes) : 0;
  attentionBackwardF32Heads(dout, q, k, v, out, lse, mask, dq, dk, dv, di, heads, t, d, scale, causal, 0, bh, t * d, d, cache);
  if (cache) heap.free(cache);
}

/** Bytes of the P and dS cache of one head for sequence length t: 8 t^2, or 0 (recompute) above 8 MiB. */
export function attentionBackwardCacheBytes(t: usize): usize {
  const bytes = t * t * 8;
  return bytes <= (8 << 20) ? max<usize>(bytes, 8) : 0;
}

/** attentionBackwardF32 for the (batch, head) rows [r0, r1) only (threads split the heads). */
export function attentionBackwardF32Heads(
  dout: usize, q: usize, k: usize, v: usize, out: usize, lse: usize, mask: usize, dq: usize, dk: usize, dv: usize, di: usize,
  heads: usize, t: usize, d: usize, scale: f32, causal: i32, r0: usize, r1: usize, hs: usize, ts: usize, cache: usize,
): void {
  // cache (attentionBackwardCacheBytes(t) bytes, or 0): P and dS of one head as the dq pass computes
  // them, read back by the dk / dv pass instead of computed again (the same values).
  const pc = cache, dc = cache + ((t * t) << 2);
  for (let r: usize = r0; r < r1; r++) {
    const base = headBase(r, heads, t, d, hs);
    for (let i: usize = 0; i < t; i++) store<f32>(di + ((r * t + i) << 2), dot(dout + ((base + i * ts) << 2), out + ((base + i * ts) << 2), d));
  }
  for (let r: usize = r0; r < r1; r++) {
    const b = r / heads;
    const base = headBase(r, heads, t, d, hs);
    // dq: one query row at a time, over its keys
    for (let i: usize = 0; i < t; i++) {
      const qi = q + ((base + i * ts) << 2), gi = dout + ((base + i * ts) << 2), dqi = dq + ((base + i * ts) << 2);
      for (let c: usize = 0; c < d; c++) store<f32>(dqi + (c << 2), 0);
      const ls = load<f32>(lse + ((r * t + i) << 2));
      if (ls == f32.NEGATIVE_INFINITY) continue;
      const dd = load<f32>(di + ((r * t + i) << 2));
      const send: usize = causal ? i + 1 : t;
      for (let s: usize = 0; s < send; s++) {
        if (!keep(mask, b, t, s)) continue;
        const ks = k + ((base + s * ts) << 2);
        const p = Mathf.exp(dot(qi, ks, d) * scale - ls);
        const ds = p * (dot(gi, v + ((base + s * ts) << 2), d) - dd) * scale;
        if (cache) {
          store<f32>(pc + ((i * t + s) << 2), p);
          store<f32>(dc + ((i * t + s) << 2), ds);
        }
        axpy(dqi, ks, ds, d);
      }
    }
    // dk, dv: one key row at a time, over the queries that see it
    for (let s: usize = 0; s < t; s++) {
      const ks = k + ((base + s * ts) << 2), vs = v + ((base + s * ts) << 2);
      const dks = dk + ((base + s * ts) << 2), dvs = dv + ((base + s * ts) << 2);
      for (let c: usize = 0; c < d; c++) { store<f32>(dks + (c << 2), 0); store<f32>(dvs + (c << 2), 0); }
      if (!keep(mask, b, t, s)) continue;
      for (let i: usize = causal ? s : 0; i < t; i++) {
        const ls = load<f32>(lse + ((r * t + i) << 2));
        if (ls == f32.NEGATIVE_INFINITY) continue;
        const qi = q + ((base + i * ts) << 2), gi = dout + ((base + i * ts) << 2);
        let p: f32, ds: f32;
        if (cache) {
          p = load<f32>(pc + ((i * t + s) << 2));
          ds = load<f32>(dc + ((i * t + s) << 2));
        } else {
          p = Mathf.exp(dot(qi, ks, d) * scale - ls);
          ds = p * (dot(gi, vs, d) - load<f32>(di + ((r * t + i) << 2))) * scale;
        }
        axpy(dvs, gi, p, d);
        axpy(dks, qi, ds, d);
      }
    }
  }
}
