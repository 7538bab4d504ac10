// Scaled-dot-product attention (causal, or bidirectional with CAUSAL = 0), forward and backward:
// the WGSL twin of assembly/kernels/attention.ts (dot products over four lanes then the tail as
// there; exp and log differ in the last bits). The backward stages follow its loops in its order;
// the forward is one pass over the keys (online softmax, FlashAttention-2 style) where the wasm
// kernel makes two, so its sums differ from the wasm ones by rounding only. One file, four stages
// (see src/backend/webgpu/attention.ts). The row stages (fwd, dq, dkdv; shared code in
// `//#part rows`) run a workgroup of 64 invocations on 64 consecutive rows of one (b, h), one row
// an invocation, its own rows in registers (row loops are written out: `//#unroll`), looping over
// the rows of the other axis. Those come from one of two layouts, by the host-set constant TILED:
//   1 (hardware GPUs): staged KT rows at a time in workgroup memory (decoded to float32 once per
//     workgroup, read as vec4), two barriers a tile;
//   0 (software adapters): read from storage by each invocation: no barrier and no workgroup
//     memory, which cost SwiftShader more than the reloads (a barrier costs every invocation about
//     a hundred loop iterations, and compile time grows with workgroup memory).
// No [T, T] score matrix is stored and every sum is deterministic (no atomics). On causal
// attention a workgroup visits only the tiles up to its last query row (fwd, dq) or from its first
// key row (dkdv).
//   fwd:  per query row, one pass over the keys in chunks of KC (the tile when TILED): the chunk's
//         scores in registers and their max; when it exceeds the running max m, l and acc are
//         rescaled once by exp(m_old - m_new); then p = exp(score - m), l += p, acc += p v. At the
//         end out = acc / l and lse = m + log(l). The rescaling follows the chunks, so both layouts
//         give the same bits when KT equals the untiled KC.
//   di:   per query row: ld = [lse as float32 | di = dout . out], a float32 scratch of 2 bh t
//         words, so that dq and dkdv bind one buffer for both (8 storage buffers at most).
//   dq:   per query row: dq = scale sum_s P (dP - di) k_s, P = exp(score - lse).
//   dkdv: per key row s: dv = sum_t P dout_t, dk = scale sum_t P (dP - di) q_t (one pass).
// Query t sees keys s <= t (every key s when CAUSAL is 0) whose mask[b, s] != 0 (HAS_MASK). A query row with no allowed key gets
// out = 0 and lse = -inf, and contributes nothing to the gradients. Outputs are float32 rows at
// offset 0; inputs are read through dtype accessors at their element offsets (ld is float32:
// format 0). Constants set by the host: DH (head dim d), D4 = ceil(DH / 4) vec4s a row, DF =
// floor(DH / 4) of them whole; TILED; KT rows a tile (1 when not TILED), KSTEP other-axis rows
// a loop step of the backward (KT when TILED, else all of them) and KC keys a forward chunk.

struct Params {
  bh: u32, heads: u32, t: u32, d: u32,
  scale: f32, has_mask: u32, qoff: u32, koff: u32,
  voff: u32, moff: u32, ooff: u32, loff: u32,
  dooff: u32, hs: u32, ts: u32, pad2: u32,
}
@group(0) @binding(15) var<uniform> params: Params;

const DR: u32 = DH % 4u; // tail elements (in vec4 DF)
const DT: u32 = min(DF, D4 - 1u); // the tail vec4 (DF), clamped so that rows without a tail still compile

alias Row = array<vec4<f32>, D4>;

// Element offset of row 0 of head r = (b, h): rows are ts apart, heads hs apart ([B, H, T, D]:
// hs = T D, ts = D; [B, T, H, D] memory read in place: hs = D, ts = H D).
fn head_base(r: u32) -> u32 { return (r / params.heads) * params.heads * params.t * params.d + (r % params.heads) * params.hs; }

// -inf, built at run time (WGSL rejects an infinite constant)
fn neg_inf() -> f32 { return bitcast<f32>(0xff800000u | (params.t & 0u)); }

// dot(a, b) over DH elements: four lanes over the whole vec4s, (l0 + l1) + (l2 + l3), then the tail
// one by one: the order of dot() in assembly/kernels/attention.ts.
fn dot_rows(a: ptr<function, Row>, b: ptr<function, Row>) -> f32 {
  var acc = vec4<f32>(0.0);
  //#unroll $c DF
  acc = acc + (*a)[$c] * (*b)[$c];
  //#end
  var s = (acc.x + acc.y) + (acc.z + acc.w);
  if (DR > 0u) { s = s + (*a)[DT].x * (*b)[DT].x; }
  if (DR > 1u) { s = s + (*a)[DT].y * (*b)[DT].y; }
  if (DR > 2u) { s = s + (*a)[DT].z * (*b)[DT].z; }
  return s;
}

// y += alpha * x (element by element, as axpy() there).
fn axpy_rows(y: ptr<function, Row>, x: ptr<function, Row>, alpha: f32) {
  //#unroll $c D4
  (*y)[$c] = (*y)[$c] + alpha * (*x)[$c];
  //#end
}

// y *= f (element by element).
fn scale_row(y: ptr<function, Row>, f: f32) {
  //#unroll $c D4
  (*y)[$c] = (*y)[$c] * f;
  //#end
}

fn zero_row(y: ptr<function, Row>) {
  //#unroll $c D4
  (*y)[$c] = vec4<f32>(0.0);
  //#end
}

//#part rows
override CAUSAL: u32 = 1u; // 0: every key (bidirectional attention)
// The row stages' shared code (they bind q, k, val and m).
override FQ: u32 = 0u;
override FK: u32 = 0u;
override FV: u32 = 0u;
override FM: u32 = 0u;

// TILED: two tiles of KT rows (A: rows [0, KT), B: rows [KT, 2 KT), each row D4 vec4s) and two
// floats per tile row (mask flag / lse, di).
var<workgroup> tile: array<vec4<f32>, 2u * KT * D4>;
var<workgroup> tf: array<f32, KT>;
var<workgroup> tg: array<f32, KT>;

// The (uniform) block of 64 rows of workgroup w: x = (b, h) index r, y = first row.
fn block(wid: vec3<u32>, nwg: vec3<u32>) -> vec2<u32> {
  let w = wid.y * nwg.x + wid.x;
  let per = (params.t + 63u) / 64u;
  return vec2<u32>(w / per, (w % per) * 64u);
}

fn allowed(b: u32, s: u32) -> bool { return params.has_mask == 0u || m_f32(b * params.t + s + params.moff, FM) != 0.0; }

// Rows of q / k / v at element offset `at` (the tensors' offsets applied here).
fn q_row(at: u32) -> Row {
  var y: Row;
  //#unroll $e DH
  y[$e / 4u][$e % 4u] = q_f32(at + $e + params.qoff, FQ);
  //#end
  return y;
}
fn k_row(at: u32) -> Row {
  var y: Row;
  //#unroll $e DH
  y[$e / 4u][$e % 4u] = k_f32(at + $e + params.koff, FK);
  //#end
  return y;
}
fn v_row(at: u32) -> Row {
  var y: Row;
  //#unroll $e DH
  y[$e / 4u][$e % 4u] = val_f32(at + $e + params.voff, FV);
  //#end
  return y;
}

// Row j of the tiles (0 <= j < 2 KT).
fn tile_row(j: u32) -> Row {
  let at = j * D4;
  var y: Row;
  //#unroll $c D4
  y[$c] = tile[at + $c];
  //#end
  return y;
}

// Key s of the block at element offset `at`, j = s - k0 in the current tile: its k, its v, and
// whether it is allowed.
fn key_k(at: u32, j: u32) -> Row { if (TILED == 1u) { return tile_row(j); } return k_row(at); }
fn key_v(at: u32, j: u32) -> Row { if (TILED == 1u) { return tile_row(KT + j); } return v_row(at); }
fn key_ok(b: u32, s: u32, j: u32) -> bool { if (TILED == 1u) { return tf[j] != 0.0; } return allowed(b, s); }

// TILED: stages keys [k0, k0 + KT) of the (b, h) block at `base`: k in tile A, v in tile B (when
// with_v), tf = 1 for a key that exists and is allowed. Uniform control flow; ends with a barrier
// (the caller barriers again after using the tile).
fn stage_keys(lid: u32, base: u32, b: u32, k0: u32, with_v: bool) {
  for (var e = lid; e < KT * DH; e = e + 64u) {
    let j = e / DH;
    let c = e - j * DH;
    let s = k0 + j;
    var kv: f32 = 0.0;
    var vv: f32 = 0.0;
    if (s < params.t) {
      let at = base + s * params.ts + c;
      kv = k_f32(at + params.koff, FK);
      if (with_v) { vv = val_f32(at + params.voff, FV); }
    }
    tile[j * D4 + c / 4u][c % 4u] = kv;
    if (with_v) { tile[(KT + j) * D4 + c / 4u][c % 4u] = vv; }
  }
  for (var j = lid; j < KT; j = j + 64u) {
    let s = k0 + j;
    tf[j] = select(0.0, 1.0, s < params.t && allowed(b, s));
  }
  workgroupBarrier();
}

//#part dout
fn dout_row(at: u32) -> Row {
  var y: Row;
  //#unroll $e DH
  y[$e / 4u][$e % 4u] = dout_f32(at + $e + params.dooff, FDO);
  //#end
  return y;
}

//#stage fwd +rows
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let blk = block(wid, nwg);
  let r = blk.x;
  let i = blk.y + lid; // this invocation's query row
  let live = i < params.t;
  let b = r / params.heads;
  let base = head_base(r);
  let qb = base + i * params.ts;
  var kend = params.t; // keys any row of the block sees
  if (CAUSAL == 1u) { kend = min(blk.y + 64u, params.t); }
  var q: Row;
  if (live) { q = q_row(qb); }
  // one pass over the keys, KC at a time (a tile when TILED): the chunk's scores, its max, one
  // rescale of (l, acc) when the max grows, then p = exp(score - max) into l and acc += p v
  var mx: f32 = 0.0; // running max (meaningful once l > 0)
  var l: f32 = 0.0; // running sum of exp(score - mx); 0: no allowed key yet
  var acc: Row;
  zero_row(&acc);
  for (var k0 = 0u; k0 < kend; k0 = k0 + KC) {
    if (TILED == 1u) { stage_keys(lid, base, b, k0, true); }
    if (live && (CAUSAL == 0u || k0 <= i)) {
      var sc: array<f32, KC>;
      var cm = neg_inf();
      // loops of a constant count, which a GPU compiler can unroll to keep sc in registers (not
      // written out with //#unroll: SwiftShader's JIT then took 23 GB at d = 36, KC = 16)
      for (var j = 0u; j < KC; j = j + 1u) {
        var x = neg_inf();
        if (k0 + j < kend && (CAUSAL == 0u || k0 + j <= i) && key_ok(b, k0 + j, j)) {
          var k = key_k(base + (k0 + j) * params.ts, j);
          x = dot_rows(&q, &k) * params.scale;
          cm = max(cm, x);
        }
        sc[j] = x;
      }
      if (cm != neg_inf()) {
        if (l == 0.0) { mx = cm; }
        else if (cm > mx) {
          let f = exp(mx - cm);
          l = l * f;
          scale_row(&acc, f);
          mx = cm;
        }
        for (var j = 0u; j < KC; j = j + 1u) {
          if (sc[j] != neg_inf()) {
            let p = exp(sc[j] - mx);
            l = l + p;
            var v = key_v(base + (k0 + j) * params.ts, j);
            axpy_rows(&acc, &v, p);
          }
        }
      }
    }
    if (TILED == 1u) { workgroupBarrier(); }
  }
  var ls = neg_inf();
  if (l != 0.0) {
    ls = mx + log(l);
    //#unroll $c D4
    acc[$c] = acc[$c] / l;
    //#end
  }
  if (!live) { return; }
  lse[r * params.t + i + params.loff] = ls;
  //#unroll $e DH
  out[qb + $e] = acc[$e / 4u][$e % 4u];
  //#end
}

//#stage di
override FDO: u32 = 0u;
override FO: u32 = 0u;
override FL: u32 = 0u;
@group(0) @binding(3) var<storage, read_write> ld: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = (wid.y * nwg.x + wid.x) * 64u + lid;
  let rows = params.bh * params.t;
  if (row >= rows) { return; }
  let rb = head_base(row / params.t) + (row % params.t) * params.ts;
  var g: Row;
  var o: Row;
  //#unroll $e DH
  g[$e / 4u][$e % 4u] = dout_f32(rb + $e + params.dooff, FDO);
  o[$e / 4u][$e % 4u] = o_f32(rb + $e + params.ooff, FO);
  //#end
  ld[row] = l_f32(row + params.loff, FL);
  ld[rows + row] = dot_rows(&g, &o);
}

//#stage dq +rows +dout
override FDO: u32 = 0u;
@group(0) @binding(6) var<storage, read_write> dq: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let blk = block(wid, nwg);
  let r = blk.x;
  let i = blk.y + lid;
  let live = i < params.t;
  let b = r / params.heads;
  let base = head_base(r);
  let qb = base + i * params.ts;
  let row = r * params.t + i;
  var kend = params.t;
  if (CAUSAL == 1u) { kend = min(blk.y + 64u, params.t); }
  var q: Row;
  var g: Row; // dout row
  var acc: Row; // dq
  zero_row(&acc);
  var dd: f32 = 0.0;
  var ls = neg_inf();
  if (live) {
    q = q_row(qb);
    g = dout_row(qb);
    ls = ld_f32(row, 0u);
    dd = ld_f32(params.bh * params.t + row, 0u);
  }
  let on = live && ls != neg_inf();
  for (var k0 = 0u; k0 < kend; k0 = k0 + KSTEP) {
    if (TILED == 1u) { stage_keys(lid, base, b, k0, true); }
    if (on) {
      for (var j = 0u; j < KSTEP && k0 + j < kend && (CAUSAL == 0u || k0 + j <= i); j = j + 1u) {
        let s = k0 + j;
        if (!key_ok(b, s, j)) { continue; }
        var k = key_k(base + s * params.ts, j);
        var v = key_v(base + s * params.ts, j);
        let p = exp(dot_rows(&q, &k) * params.scale - ls);
        let ds = p * (dot_rows(&g, &v) - dd) * params.scale;
        axpy_rows(&acc, &k, ds);
      }
    }
    if (TILED == 1u) { workgroupBarrier(); }
  }
  if (live) {
    //#unroll $e DH
    dq[qb + $e] = acc[$e / 4u][$e % 4u];
    //#end
  }
}

//#stage dkdv +rows +dout
override FDO: u32 = 0u;
@group(0) @binding(6) var<storage, read_write> dk: array<f32>;
@group(0) @binding(7) var<storage, read_write> dv: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let blk = block(wid, nwg);
  let r = blk.x;
  let s = blk.y + lid; // this invocation's key row
  let live = s < params.t;
  let b = r / params.heads;
  let base = head_base(r);
  let kb = base + s * params.ts;
  let lrow = r * params.t; // row of query 0 of (b, h) in ld
  var k: Row;
  var v: Row;
  var dka: Row;
  var dva: Row;
  zero_row(&dka);
  zero_row(&dva);
  let on = live && allowed(b, s);
  if (on) {
    k = k_row(kb);
    v = v_row(kb);
  }
  // queries [blk.y, t) see some key of the block; TILED: q in tile A, dout in tile B, lse in tf, di in tg
  var q0start = blk.y;
  if (CAUSAL == 0u) { q0start = 0u; }
  for (var q0 = q0start; q0 < params.t; q0 = q0 + KSTEP) {
    if (TILED == 1u) {
      for (var e = lid; e < KT * DH; e = e + 64u) {
        let j = e / DH;
        let c = e - j * DH;
        let i = q0 + j;
        var qv: f32 = 0.0;
        var gv: f32 = 0.0;
        if (i < params.t) {
          let at = base + i * params.ts + c;
          qv = q_f32(at + params.qoff, FQ);
          gv = dout_f32(at + params.dooff, FDO);
        }
        tile[j * D4 + c / 4u][c % 4u] = qv;
        tile[(KT + j) * D4 + c / 4u][c % 4u] = gv;
      }
      for (var j = lid; j < KT; j = j + 64u) {
        let i = q0 + j;
        var lv = neg_inf();
        var dv0: f32 = 0.0;
        if (i < params.t) {
          lv = ld_f32(lrow + i, 0u);
          dv0 = ld_f32(params.bh * params.t + lrow + i, 0u);
        }
        tf[j] = lv;
        tg[j] = dv0;
      }
      workgroupBarrier();
    }
    if (on) {
      for (var j = 0u; j < KSTEP && q0 + j < params.t; j = j + 1u) {
        let i = q0 + j;
        if (CAUSAL == 1u && i < s) { continue; }
        var ls: f32;
        var dd: f32;
        var qi: Row;
        var gi: Row;
        if (TILED == 1u) {
          ls = tf[j];
          dd = tg[j];
        } else {
          ls = ld_f32(lrow + i, 0u);
          dd = ld_f32(params.bh * params.t + lrow + i, 0u);
        }
        if (ls == neg_inf()) { continue; }
        if (TILED == 1u) {
          qi = tile_row(j);
          gi = tile_row(KT + j);
        } else {
          qi = q_row(base + i * params.ts);
          gi = dout_row(base + i * params.ts);
        }
        let p = exp(dot_rows(&qi, &k) * params.scale - ls);
        let ds = p * (dot_rows(&gi, &v) - dd) * params.scale;
        axpy_rows(&dva, &gi, p);
        axpy_rows(&dka, &qi, ds);
      }
    }
    if (TILED == 1u) { workgroupBarrier(); }
  }
  if (live) {
    //#unroll $e DH
    dk[kb + $e] = dka[$e / 4u][$e % 4u];
    dv[kb + $e] = dva[$e / 4u][$e % 4u];
    //#end
  }
}
