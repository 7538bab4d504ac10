// Batched matmul on subgroup matrices (tensor cores): out[b] = alpha * op(A[b]) @ op(B[b]), float32
// output, for inputs whose values are exact in float16 (float16, float8 e4m3fn / e5m2, float6,
// float4): f16 x f16 products, float32 accumulation. The twin of shaders/matmul.wgsl for adapters
// with 'chromium-experimental-subgroup-matrix' and 'shader-f16' (src/backend/webgpu/matmul_sgmat.ts
// selects it and fills in this template).
//
// A workgroup computes a BM x BN block of C, stepping K by BK. Both tiles are staged through
// workgroup memory as f16 (decoded from the input format in the load, pairs of float16 read as one
// word where the layout allows), in the layout each input has in memory: the subgroup matrices are
// then loaded row- or column-major from there (SGMAT_LOAD_A / SGMAT_LOAD_B, written out by the host
// in the syntax this Dawn takes). Each subgroup owns a WM x WN part of the block: MT x NT result
// matrices of SM x SN, held across the K loop. Full blocks with alpha 1 are stored straight to
// `out`; the rest go through a per-subgroup scratch tile and are written element by element, with
// bounds checks and alpha.
//
// Host-written constants: SM, SN, SK (the subgroup-matrix shape), BM, BN, BK, WM, WN, SG (subgroup
// size), NSG (subgroups a workgroup), MT = WM / SM, NT = WN / SN, SA and SB (row strides of the
// tiles, padded), TRANS_A, TRANS_B, PAIR_A, PAIR_B (1: read float16 pairs as words), FA, FB.
//#enable f16
//#enable chromium_experimental_subgroup_matrix

override FA: u32 = 0u;
override FB: u32 = 0u;
override PAIR_A: u32 = 0u;
override PAIR_B: u32 = 0u;

struct Params { m: u32, k: u32, n: u32, batch: u32, stride_a: u32, stride_b: u32, off_a: u32, off_b: u32, alpha: f32, tiles_n: u32, pad0: u32, pad1: u32 }
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

// A tile: [BM][SA] (row r, column kk at r * SA + kk), or [BK][SA] when A is transposed (kk * SA + r).
var<workgroup> ta: array<f16, TA_SIZE>;
// B tile: [BK][SB] (kk * SB + c), or [BN][SB] when B is transposed (c * SB + kk).
var<workgroup> tb: array<f16, TB_SIZE>;
// One SM x SN float32 tile per subgroup, for blocks at the edges.
var<workgroup> tc: array<f32, NSG * SM * SN>;

fn load_a(bi: u32, r: u32, c: u32) -> f16 {
  if (r >= params.m || c >= params.k) { return f16(0.0); }
  let idx = select(r * params.k + c, c * params.m + r, TRANS_A == 1u);
  return f16(a_f32(params.off_a + bi * params.stride_a + idx, FA));
}
fn load_b(bi: u32, r: u32, c: u32) -> f16 {
  if (r >= params.k || c >= params.n) { return f16(0.0); }
  let idx = select(r * params.n + c, c * params.k + r, TRANS_B == 1u);
  return f16(b_f32(params.off_b + bi * params.stride_b + idx, FB));
}

// Stages the A tile of rows row0.., columns k0.. (memory order: the fastest index follows memory).
fn stage_a(tid: u32, bi: u32, row0: u32, k0: u32) {
  if (PAIR_A == 1u) {
    // float16 pairs along the contiguous dimension (its length, offsets and batch stride even).
    let inner = select(BK, BM, TRANS_A == 1u) / 2u;
    let outer = select(BM, BK, TRANS_A == 1u);
    let len = select(params.k, params.m, TRANS_A == 1u);
    let o0 = select(row0, k0, TRANS_A == 1u);
    let i0 = select(k0, row0, TRANS_A == 1u);
    let olen = select(params.m, params.k, TRANS_A == 1u);
    for (var e = tid; e < outer * inner; e += NSG * SG) {
      let o = e / inner;
      let i = (e % inner) * 2u;
      var v = vec2<f16>(0.0, 0.0);
      if (o0 + o < olen && i0 + i < len) {
        v = bitcast<vec2<f16>>(a[(params.off_a + bi * params.stride_a + (o0 + o) * len + i0 + i) >> 1u]);
      }
      ta[o * SA + i] = v.x;
      ta[o * SA + i + 1u] = v.y;
    }
    return;
  }
  for (var e = tid; e < BM * BK; e += NSG * SG) {
    if (TRANS_A == 1u) {
      let kk = e / BM; let r = e % BM;
      ta[kk * SA + r] = load_a(bi, row0 + r, k0 + kk);
    } else {
      let r = e / BK; let kk = e % BK;
      ta[r * SA + kk] = load_a(bi, row0 + r, k0 + kk);
    }
  }
}

fn stage_b(tid: u32, bi: u32, col0: u32, k0: u32) {
  if (PAIR_B == 1u) {
    let inner = select(BN, BK, TRANS_B == 1u) / 2u;
    let outer = select(BK, BN, TRANS_B == 1u);
    let len = select(params.n, params.k, TRANS_B == 1u);
    let o0 = select(k0, col0, TRANS_B == 1u);
    let i0 = select(col0, k0, TRANS_B == 1u);
    let olen = select(params.k, params.n, TRANS_B == 1u);
    for (var e = tid; e < outer * inner; e += NSG * SG) {
      let o = e / inner;
      let i = (e % inner) * 2u;
      var v = vec2<f16>(0.0, 0.0);
      if (o0 + o < olen && i0 + i < len) {
        v = bitcast<vec2<f16>>(b[(params.off_b + bi * params.stride_b + (o0 + o) * len + i0 + i) >> 1u]);
      }
      tb[o * SB + i] = v.x;
      tb[o * SB + i + 1u] = v.y;
    }
    return;
  }
  for (var e = tid; e < BK * BN; e += NSG * SG) {
    if (TRANS_B == 1u) {
      let c = e / BK; let kk = e % BK;
      tb[c * SB + kk] = load_b(bi, k0 + kk, col0 + c);
    } else {
      let kk = e / BN; let c = e % BN;
      tb[kk * SB + c] = load_b(bi, k0 + kk, col0 + c);
    }
  }
}

// Offsets of the subgroup matrices in the tiles: left i (rows wr * WM + i * SM) at column kk; right j
// (columns wc * WN + j * SN) at row kk.
fn off_a(wr: u32, i: u32, kk: u32) -> u32 {
  let r = wr * WM + i * SM;
  return select(r * SA + kk, kk * SA + r, TRANS_A == 1u);
}
fn off_b(wc: u32, j: u32, kk: u32) -> u32 {
  let c = wc * WN + j * SN;
  return select(kk * SB + c, c * SB + kk, TRANS_B == 1u);
}

@compute @workgroup_size(NSG * SG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let tile = wid.y * nwg.x + wid.x;
  let tiles_m = (params.m + BM - 1u) / BM;
  let per_batch = tiles_m * params.tiles_n;
  let bi = tile / per_batch;
  if (bi >= params.batch) { return; } // uniform per workgroup: barriers below stay uniform
  let t = tile % per_batch;
  let row0 = (t / params.tiles_n) * BM;
  let col0 = (t % params.tiles_n) * BN;
  let sg = tid / SG;
  let wr = sg / (BN / WN);
  let wc = sg % (BN / WN);

/*@ACC_DECL*/
  for (var k0 = 0u; k0 < params.k; k0 += BK) {
    stage_a(tid, bi, row0, k0);
    stage_b(tid, bi, col0, k0);
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk += SK) {
/*@MMA*/
    }
    workgroupBarrier();
  }

  let base = bi * params.m * params.n;
  // Straight stores need whole blocks, alpha 1 and rows that start 16-byte aligned.
  let full = row0 + BM <= params.m && col0 + BN <= params.n && params.alpha == 1.0 && params.n % 4u == 0u;
  if (full) {
/*@STORE_FULL*/
  } else {
/*@STORE_EDGE*/
  }
}

// The edge store of one result matrix (already in this subgroup's scratch tile): rows r0.., columns c0...
fn write_edge(sg: u32, lane: u32, base: u32, r0: u32, c0: u32) {
  for (var e = lane; e < SM * SN; e += SG) {
    let r = r0 + e / SN;
    let c = c0 + e % SN;
    if (r < params.m && c < params.n) { out[base + r * params.n + c] = tc[sg * SM * SN + e] * params.alpha; }
  }
}
