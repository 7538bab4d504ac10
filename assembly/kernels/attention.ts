// Scaled-dot-product attention (causal, or bidirectional with causal = 0) on the wasm backend, forward and backward (FlashAttention
// style: no [T, T] score matrix is ever stored, except the backward's optional cache of one head's P and dS). The reference
// for shaders/attention.wgsl (the two agree within rounding, not bit for bit). Pointers are byte offsets into memory; every
// buffer is float32; q, k, v, out, dout, dq, dk, dv are [BH, T, D]
// rows of D floats, row i of head r = (b, h) at element b H T D + h hs + i ts (hs = T D, ts = D: [B, H, T, D];
// hs = D, ts = H D: [B, T, H, D] memory, the heads read in place), lse and di [BH, T], mask [B, T] (0 =
// none; key s of batch b is excluded when mask[b, s] == 0). Query t sees keys s <= t (every key s when causal is 0). A query
// row with no allowed key gets out = 0 and lse = -inf, and contributes nothing to any gradient.
//
// Structure: each head's K (and V, for the backward) is first packed transposed in blocks of four keys, so that a
// query's scores against four keys are the lanes of one f32x4 (dot4: a splat of a query element times four keys'
// elements a step, in dot()'s order of sums); exponentials are f32x4 polynomials (expV); the products with V, K, Q
// and dout run four rows by eight columns at a time, as the matmul's micro-kernel. Every sum runs in a fixed order
// (over the head dimension, then over keys or queries in order) whatever the thread count.
import { expV } from './simd_math';

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

/**
 * The scores of one row against a block of four keys packed by packT4 (kp: the block), one key a lane:
 * each lane sums in dot()'s order (four partial sums over c mod 4 up to the last whole vec4 of the row,
 * (s0 + s1) + (s2 + s3), then the tail in order), so every score is the same float32 as dot() gives;
 * shaders/attention.wgsl's dot_rows sums in the same order.
 */
// @ts-ignore: decorator
@inline
function dot4(row: usize, kp: usize, d: usize): v128 {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let c: usize = 0;
  for (; c + 4 <= d; c += 4) {
    const r = row + (c << 2), k = kp + (c << 4);
    s0 = f32x4.add(s0, f32x4.mul(v128.load32_splat(r), v128.load(k)));
    s1 = f32x4.add(s1, f32x4.mul(v128.load32_splat(r, 4), v128.load(k, 16)));
    s2 = f32x4.add(s2, f32x4.mul(v128.load32_splat(r, 8), v128.load(k, 32)));
    s3 = f32x4.add(s3, f32x4.mul(v128.load32_splat(r, 12), v128.load(k, 48)));
  }
  let acc = f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3));
  for (; c < d; c++) acc = f32x4.add(acc, f32x4.mul(v128.load32_splat(row + (c << 2)), v128.load(kp + (c << 4))));
  return acc;
}

/** Element offset of row 0 of head r (batch r / heads, head r % heads). */
@inline
function headBase(r: usize, heads: usize, t: usize, d: usize, hs: usize): usize {
  return (r / heads) * heads * t * d + (r % heads) * hs;
}

/** t rounded up to whole blocks of four keys. */
@inline
function t4Of(t: usize): usize {
  return (t + 3) & ~(<usize>3);
}

/**
 * Packs rows [0, t) of one head of x (row stride ts floats) transposed in blocks of four rows:
 * dst[(s / 4) * 4 d + 4 c + s % 4] = x[s][c], rows t .. t4 zero.
 */
function packT4(dst: usize, x: usize, t: usize, d: usize, ts: usize): void {
  const t4 = t4Of(t);
  for (let s: usize = 0; s < t4; s++) {
    const blk = dst + (((s & ~(<usize>3)) * d + (s & 3)) << 2);
    if (s < t) {
      const row = x + ((s * ts) << 2);
      for (let c: usize = 0; c < d; c++) store<f32>(blk + (c << 4), load<f32>(row + (c << 2)));
    } else {
      for (let c: usize = 0; c < d; c++) store<f32>(blk + (c << 4), 0);
    }
  }
}

/** Which keys of batch b may be seen, a lane of all ones per allowed key, in blocks of four (keys t .. t4: none). */
function allowedKeys(dst: usize, mask: usize, b: usize, t: usize): void {
  const t4 = t4Of(t);
  for (let s: usize = 0; s < t4; s++) store<i32>(dst + (s << 2), s < t && (mask == 0 || load<f32>(mask + ((b * t + s) << 2)) != 0) ? -1 : 0);
}

/** The lanes of key block kb that query row i may see (allowed keys, and keys s <= i when causal). */
// @ts-ignore: decorator
@inline
function seen(allow: v128, kb: usize, i: usize, causal: i32): v128 {
  if (!causal) return allow;
  return v128.and(allow, i32x4.le_s(i32x4.add(i32x4.splat(<i32>(kb << 2)), i32x4(0, 1, 2, 3)), i32x4.splat(<i32>i)));
}

/**
 * rows[r][c] = sum over s in [0, ns) of w[r][s] x[s][c] for four rows r (w: row stride wr floats, column
 * step ws floats; x: row stride xs floats, d columns), stored to the first nr rows of dst (row stride ds floats).
 * Four rows by eight columns in registers, then four, then single columns; the sum over s in order.
 */
function rowsTimes(w: usize, wr: usize, ws: usize, x: usize, xs: usize, ns: usize, d: usize, dst: usize, ds: usize, nr: usize): void {
  const w0 = w, w1 = w + (wr << 2), w2 = w + (wr << 3), w3 = w + ((wr * 3) << 2);
  const wsb = ws << 2, xsb = xs << 2, dsb = ds << 2;
  let c: usize = 0;
  for (; c + 8 <= d; c += 8) {
    let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a10 = f32x4.splat(0), a11 = f32x4.splat(0);
    let a20 = f32x4.splat(0), a21 = f32x4.splat(0), a30 = f32x4.splat(0), a31 = f32x4.splat(0);
    let xp = x + (c << 2), o: usize = 0;
    for (let s: usize = 0; s < ns; s++) {
      const x0 = v128.load(xp), x1 = v128.load(xp, 16);
      let p = v128.load32_splat(w0 + o);
      a00 = f32x4.add(a00, f32x4.mul(p, x0)); a01 = f32x4.add(a01, f32x4.mul(p, x1));
      p = v128.load32_splat(w1 + o);
      a10 = f32x4.add(a10, f32x4.mul(p, x0)); a11 = f32x4.add(a11, f32x4.mul(p, x1));
      p = v128.load32_splat(w2 + o);
      a20 = f32x4.add(a20, f32x4.mul(p, x0)); a21 = f32x4.add(a21, f32x4.mul(p, x1));
      p = v128.load32_splat(w3 + o);
      a30 = f32x4.add(a30, f32x4.mul(p, x0)); a31 = f32x4.add(a31, f32x4.mul(p, x1));
      xp += xsb; o += wsb;
    }
    const d0 = dst + (c << 2);
    v128.store(d0, a00); v128.store(d0, a01, 16);
    if (nr > 1) { v128.store(d0 + dsb, a10); v128.store(d0 + dsb, a11, 16); }
    if (nr > 2) { v128.store(d0 + 2 * dsb, a20); v128.store(d0 + 2 * dsb, a21, 16); }
    if (nr > 3) { v128.store(d0 + 3 * dsb, a30); v128.store(d0 + 3 * dsb, a31, 16); }
  }
  for (; c + 4 <= d; c += 4) {
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let xp = x + (c << 2), o: usize = 0;
    for (let s: usize = 0; s < ns; s++) {
      const x0 = v128.load(xp);
      a0 = f32x4.add(a0, f32x4.mul(v128.load32_splat(w0 + o), x0));
      a1 = f32x4.add(a1, f32x4.mul(v128.load32_splat(w1 + o), x0));
      a2 = f32x4.add(a2, f32x4.mul(v128.load32_splat(w2 + o), x0));
      a3 = f32x4.add(a3, f32x4.mul(v128.load32_splat(w3 + o), x0));
      xp += xsb; o += wsb;
    }
    const d0 = dst + (c << 2);
    v128.store(d0, a0);
    if (nr > 1) v128.store(d0 + dsb, a1);
    if (nr > 2) v128.store(d0 + 2 * dsb, a2);
    if (nr > 3) v128.store(d0 + 3 * dsb, a3);
  }
  for (; c < d; c++) {
    for (let r: usize = 0; r < nr; r++) {
      const wrow = w + ((r * wr) << 2);
      let acc: f32 = 0;
      for (let s: usize = 0; s < ns; s++) acc += load<f32>(wrow + s * wsb) * load<f32>(x + s * xsb + (c << 2));
      store<f32>(dst + r * dsb + (c << 2), acc);
    }
  }
}

/** Floats of scratch attentionF32Heads needs (one thread): K packed, the allowed keys, four rows of scores. */
export function attentionScratchBytes(t: usize, d: usize): usize {
  const t4 = t4Of(max<usize>(t, 1));
  return (t4 * d + t4 + 4 * t4) << 2;
}

/**
 * Forward: per block of four query rows, their scores against every key they may see (scaled; -inf where
 * not seen), then per row m = max, l = sum exp(score - m), lse = m + log(l), P = exp(score - lse), and
 * out = P V. bh rows of heads: batch b = bh / heads.
 */
export function attentionF32(q: usize, k: usize, v: usize, mask: usize, out: usize, lse: usize, bh: usize, heads: usize, t: usize, d: usize, scale: f32, causal: i32): void {
  const scratch = heap.alloc(attentionScratchBytes(t, d) + 16);
  attentionF32Heads(q, k, v, mask, out, lse, heads, t, d, scale, causal, 0, bh, t * d, d, (scratch + 15) & ~15);
  heap.free(scratch);
}

/** attentionF32 for the (batch, head) rows [r0, r1) only (threads split the heads), with attentionScratchBytes(t, d) of 16-aligned scratch. */
export function attentionF32Heads(
  q: usize, k: usize, v: usize, mask: usize, out: usize, lse: usize, heads: usize, t: usize, d: usize, scale: f32, causal: i32, r0: usize, r1: usize,
  hs: usize, ts: usize, scratch: usize,
): void {
  if (t == 0) return;
  const t4 = t4Of(t);
  const kt = scratch, allow = kt + ((t4 * d) << 2), sc = allow + (t4 << 2);
  const scv = f32x4.splat(scale), ninf = f32x4.splat(f32.NEGATIVE_INFINITY);
  let lastB = usize.MAX_VALUE;
  for (let r: usize = r0; r < r1; r++) {
    const b = r / heads;
    const base = headBase(r, heads, t, d, hs);
    if (b != lastB) { allowedKeys(allow, mask, b, t); lastB = b; }
    packT4(kt, k + (base << 2), t, d, ts);
    const vh = v + (base << 2);
    for (let i0: usize = 0; i0 < t; i0 += 4) {
      const nr = min<usize>(4, t - i0);
      const q0 = q + ((base + i0 * ts) << 2);
      const q1 = q + ((base + min(i0 + 1, t - 1) * ts) << 2), q2 = q + ((base + min(i0 + 2, t - 1) * ts) << 2), q3 = q + ((base + min(i0 + 3, t - 1) * ts) << 2);
      const send: usize = causal ? min(i0 + 4, t) : t;
      const nb = (send + 3) >> 2;
      for (let kb: usize = 0; kb < nb; kb++) {
        const kp = kt + ((kb * d) << 4), al = v128.load(allow + (kb << 4)), o = sc + (kb << 4);
        v128.store(o, v128.bitselect(f32x4.mul(dot4(q0, kp, d), scv), ninf, seen(al, kb, i0, causal)));
        v128.store(o + (t4 << 2), v128.bitselect(f32x4.mul(dot4(q1, kp, d), scv), ninf, seen(al, kb, i0 + 1, causal)));
        v128.store(o + (t4 << 3), v128.bitselect(f32x4.mul(dot4(q2, kp, d), scv), ninf, seen(al, kb, i0 + 2, causal)));
        v128.store(o + ((t4 * 3) << 2), v128.bitselect(f32x4.mul(dot4(q3, kp, d), scv), ninf, seen(al, kb, i0 + 3, causal)));
      }
      for (let rr: usize = 0; rr < 4; rr++) {
        const row = sc + ((rr * t4) << 2);
        let mv = ninf;
        for (let kb: usize = 0; kb < nb; kb++) mv = f32x4.max(mv, v128.load(row + (kb << 4)));
        const m = max(max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
        if (m == f32.NEGATIVE_INFINITY) { // no key seen: P = 0, out = 0, lse = -inf
          for (let kb: usize = 0; kb < nb; kb++) v128.store(row + (kb << 4), f32x4.splat(0));
          if (rr < nr) store<f32>(lse + ((r * t + i0 + rr) << 2), f32.NEGATIVE_INFINITY);
          continue;
        }
        let lv = f32x4.splat(0);
        const msv = f32x4.splat(m);
        for (let kb: usize = 0; kb < nb; kb++) lv = f32x4.add(lv, expV(f32x4.sub(v128.load(row + (kb << 4)), msv)));
        const l = (f32x4.extract_lane(lv, 0) + f32x4.extract_lane(lv, 1)) + (f32x4.extract_lane(lv, 2) + f32x4.extract_lane(lv, 3));
        const ls: f32 = m + Mathf.log(l);
        if (rr < nr) store<f32>(lse + ((r * t + i0 + rr) << 2), ls);
        const lsv = f32x4.splat(ls);
        for (let kb: usize = 0; kb < nb; kb++) v128.store(row + (kb << 4), expV(f32x4.sub(v128.load(row + (kb << 4)), lsv)));
      }
      rowsTimes(sc, t4, 1, vh, ts, send, d, out + ((base + i0 * ts) << 2), ts, nr);
    }
  }
}

/**
 * Backward: di[row] = sum(dout * out); with P = exp(scale q.k - lse), dP = dout.v, dS = P (dP - di) scale:
 * dq_t = sum_s dS_ts k_s, dk_s = sum_t dS_ts q_t, dv_s = sum_t P_ts dout_t (overwritten).
 * di is scratch of bh * t floats.
 */
export function attentionBackwardF32(
  dout: usize, q: usize, k: usize, v: usize, out: usize, lse: usize, mask: usize, dq: usize, dk: usize, dv: usize, di: usize,
  bh: usize, heads: usize, t: usize, d: usize, scale: f32, causal: i32,
): void {
  const scratch = heap.alloc(attentionBackwardScratchBytes(t, d) + 16);
  attentionBackwardF32Heads(dout, q, k, v, out, lse, mask, dq, dk, dv, di, heads, t, d, scale, causal, 0, bh, t * d, d, (scratch + 15) & ~15);
  heap.free(scratch);
}

/** Whether the backward caches one head's P and dS (8 t4^2 bytes, up to 8 MiB: sequences up to 1024) rather than computing them twice. */
@inline
function cachesPdS(t4: usize): bool {
  return t4 * t4 * 8 <= (8 << 20);
}

/**
 * Bytes of scratch attentionBackwardF32Heads needs (one thread): K and V packed, the allowed keys, four rows of
 * P and dS, a strip of P and dS for four keys, and the P and dS cache where cachesPdS.
 */
export function attentionBackwardScratchBytes(t: usize, d: usize): usize {
  const t4 = t4Of(max<usize>(t, 1));
  return (2 * t4 * d + t4 + 16 * t4 + (cachesPdS(t4) ? 2 * t4 * t4 : 0)) << 2;
}

/** attentionBackwardF32 for the (batch, head) rows [r0, r1) only (threads split the heads), with attentionBackwardScratchBytes(t, d) of 16-aligned scratch. */
export function attentionBackwardF32Heads(
  dout: usize, q: usize, k: usize, v: usize, out: usize, lse: usize, mask: usize, dq: usize, dk: usize, dv: usize, di: usize,
  heads: usize, t: usize, d: usize, scale: f32, causal: i32, r0: usize, r1: usize, hs: usize, ts: usize, scratch: usize,
): void {
  if (t == 0) return;
  const t4 = t4Of(t);
  const cached = cachesPdS(t4);
  const kt = scratch, vt = kt + ((t4 * d) << 2), allow = vt + ((t4 * d) << 2);
  const rowP = allow + (t4 << 2), rowS = rowP + ((4 * t4) << 2); // four rows of P and dS (without the cache)
  const stripP = rowS + ((4 * t4) << 2), stripS = stripP + ((4 * t4) << 2); // P and dS of four keys for every query (without the cache)
  const cacheP = stripS + ((4 * t4) << 2), cacheS = cacheP + ((t4 * t4) << 2);
  const scv = f32x4.splat(scale);
  for (let r: usize = r0; r < r1; r++) {
    const base = headBase(r, heads, t, d, hs);
    for (let i: usize = 0; i < t; i++) store<f32>(di + ((r * t + i) << 2), dot(dout + ((base + i * ts) << 2), out + ((base + i * ts) << 2), d));
  }
  let lastB = usize.MAX_VALUE;
  for (let r: usize = r0; r < r1; r++) {
    const b = r / heads;
    const base = headBase(r, heads, t, d, hs);
    if (b != lastB) { allowedKeys(allow, mask, b, t); lastB = b; }
    packT4(kt, k + (base << 2), t, d, ts);
    packT4(vt, v + (base << 2), t, d, ts);
    const lr = lse + ((r * t) << 2), dr = di + ((r * t) << 2);
    // dq: four query rows at a time, over the keys they see
    for (let i0: usize = 0; i0 < t; i0 += 4) {
      const nr = min<usize>(4, t - i0);
      const i1 = min(i0 + 1, t - 1), i2 = min(i0 + 2, t - 1), i3 = min(i0 + 3, t - 1);
      const q0 = q + ((base + i0 * ts) << 2), q1 = q + ((base + i1 * ts) << 2), q2 = q + ((base + i2 * ts) << 2), q3 = q + ((base + i3 * ts) << 2);
      const g0 = dout + ((base + i0 * ts) << 2), g1 = dout + ((base + i1 * ts) << 2), g2 = dout + ((base + i2 * ts) << 2), g3 = dout + ((base + i3 * ts) << 2);
      const l0 = f32x4.splat(load<f32>(lr + (i0 << 2))), l1 = f32x4.splat(load<f32>(lr + (i1 << 2))), l2 = f32x4.splat(load<f32>(lr + (i2 << 2))), l3 = f32x4.splat(load<f32>(lr + (i3 << 2)));
      const e0 = f32x4.splat(load<f32>(dr + (i0 << 2))), e1 = f32x4.splat(load<f32>(dr + (i1 << 2))), e2 = f32x4.splat(load<f32>(dr + (i2 << 2))), e3 = f32x4.splat(load<f32>(dr + (i3 << 2)));
      const send: usize = causal ? min(i0 + 4, t) : t;
      const nb = (send + 3) >> 2;
      const pRows = cached ? cacheP + ((i0 * t4) << 2) : rowP, sRows = cached ? cacheS + ((i0 * t4) << 2) : rowS;
      for (let kb: usize = 0; kb < nb; kb++) {
        const kp = kt + ((kb * d) << 4), vp = vt + ((kb * d) << 4), al = v128.load(allow + (kb << 4)), o = kb << 4;
        pdsStore(dot4(q0, kp, d), dot4(g0, vp, d), l0, e0, scv, seen(al, kb, i0, causal), pRows + o, sRows + o);
        pdsStore(dot4(q1, kp, d), dot4(g1, vp, d), l1, e1, scv, seen(al, kb, i0 + 1, causal), pRows + o + (t4 << 2), sRows + o + (t4 << 2));
        pdsStore(dot4(q2, kp, d), dot4(g2, vp, d), l2, e2, scv, seen(al, kb, i0 + 2, causal), pRows + o + (t4 << 3), sRows + o + (t4 << 3));
        pdsStore(dot4(q3, kp, d), dot4(g3, vp, d), l3, e3, scv, seen(al, kb, i0 + 3, causal), pRows + o + ((t4 * 3) << 2), sRows + o + ((t4 * 3) << 2));
      }
      rowsTimes(sRows, t4, 1, k + (base << 2), ts, send, d, dq + ((base + i0 * ts) << 2), ts, nr);
    }
    // dk, dv: four key rows at a time, over the queries that see them
    for (let s0: usize = 0; s0 < t; s0 += 4) {
      const ns = min<usize>(4, t - s0), kb = s0 >> 2;
      const i0: usize = causal ? s0 : 0;
      let pw: usize, sw: usize, wr: usize;
      if (cached) {
        pw = cacheP + ((i0 * t4 + s0) << 2); sw = cacheS + ((i0 * t4 + s0) << 2); wr = t4;
      } else {
        // P and dS of these four keys for every query i0 .. t, as the dq pass computed them
        const al = v128.load(allow + (kb << 4));
        for (let i: usize = i0; i < t; i++) {
          const kp = kt + ((kb * d) << 4), vp = vt + ((kb * d) << 4);
          const a = dot4(q + ((base + i * ts) << 2), kp, d), bb = dot4(dout + ((base + i * ts) << 2), vp, d);
          const o = (i - i0) << 4;
          pdsStore(a, bb, f32x4.splat(load<f32>(lr + (i << 2))), f32x4.splat(load<f32>(dr + (i << 2))), scv, seen(al, kb, i, causal), stripP + o, stripS + o);
        }
        pw = stripP; sw = stripS; wr = 4;
      }
      // rows of P^T and dS^T: key j's weights for query i at (i - i0) * wr + j
      const nq = t - i0;
      rowsTimes(pw, 1, wr, dout + ((base + i0 * ts) << 2), ts, nq, d, dv + ((base + s0 * ts) << 2), ts, ns);
      rowsTimes(sw, 1, wr, q + ((base + i0 * ts) << 2), ts, nq, d, dk + ((base + s0 * ts) << 2), ts, ns);
    }
  }
}

/**
 * P = exp(score scale - lse) and dS = P (dP - di) scale for four keys of one query row, 0 where the row
 * does not see the key (and everywhere for a row that sees none: lse = -inf), stored at p and ds.
 */
// @ts-ignore: decorator
@inline
function pdsStore(score: v128, dp: v128, ls: v128, dd: v128, scv: v128, ok: v128, p: usize, ds: usize): void {
  const pv = v128.and(expV(f32x4.sub(f32x4.mul(score, scv), ls)), ok);
  v128.store(p, pv);
  v128.store(ds, f32x4.mul(f32x4.mul(pv, f32x4.sub(dp, dd)), scv));
}
