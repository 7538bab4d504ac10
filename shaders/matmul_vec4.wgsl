// Batched matmul, float32 accumulation, the register-tiled kernel of shaders/matmul.wgsl with vec4
// reads of the workgroup tiles: for hardware GPUs, where 8 x 8 outputs an invocation are fed by
// four 16-byte workgroup-memory reads a K step instead of sixteen 4-byte ones (the scalar reads
// bound the plain kernel by workgroup-memory bandwidth). Same results as shaders/matmul.wgsl up to
// the order of nothing: each output sums its K products in the same order, in float32.
//
// The invocation at (tx, ty) owns rows ty * 4 + r and TILE_M / 2 + ty * 4 + r (r < 4), and columns
// tx * 4 + c and TILE_N / 2 + tx * 4 + c (c < 4): two vec4 of A and two of B a K step. Tiles are
// k-major, as vec4 along M (ta) and N (tb). THREAD_M = THREAD_N = 8 (set by the host), TILE_M and
// TILE_N multiples of 8.
override FA: u32 = 0u;
override FB: u32 = 0u;
override TRANS_A: u32 = 0u;
override TRANS_B: u32 = 0u;
override TILE_M: u32 = 128u;
override TILE_N: u32 = 128u;
override TILE_K: u32 = 16u;
override WG_X: u32 = TILE_N / 8u;
override WG_Y: u32 = TILE_M / 8u;

struct Params { m: u32, k: u32, n: u32, batch: u32, stride_a: u32, stride_b: u32, off_a: u32, off_b: u32, alpha: f32, tiles_n: u32, pad0: u32, pad1: u32 }
@group(0) @binding(3) var<uniform> params: Params;

// ta[kk * (TILE_M / 4) + q] holds rows 4q..4q+3 at column kk; tb likewise for columns.
var<workgroup> ta: array<vec4<f32>, TILE_M * TILE_K / 4u>;
var<workgroup> tb: array<vec4<f32>, TILE_K * TILE_N / 4u>;

fn load_a(bi: u32, r: u32, c: u32) -> f32 {
  if (r >= params.m || c >= params.k) { return 0.0; }
  let idx = select(r * params.k + c, c * params.m + r, TRANS_A == 1u);
  return a_f32(params.off_a + bi * params.stride_a + idx, FA);
}
fn load_b(bi: u32, r: u32, c: u32) -> f32 {
  if (r >= params.k || c >= params.n) { return 0.0; }
  let idx = select(r * params.n + c, c * params.k + r, TRANS_B == 1u);
  return b_f32(params.off_b + bi * params.stride_b + idx, FB);
}

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let tile = wid.y * nwg.x + wid.x;
  let tiles_m = (params.m + TILE_M - 1u) / TILE_M;
  let per_batch = tiles_m * params.tiles_n;
  let bi = tile / per_batch;
  if (bi >= params.batch) { return; } // uniform per workgroup: barriers below stay uniform
  let t = tile % per_batch;
  let row0 = (t / params.tiles_n) * TILE_M;
  let col0 = (t % params.tiles_n) * TILE_N;
  let tid = lid.y * WG_X + lid.x;
  let nthreads = WG_X * WG_Y;
  let qm = TILE_M / 4u;
  let qn = TILE_N / 4u;

  var acc: array<vec4<f32>, 16>; // acc[i * 2 + h]: row i (of 8), column half h (4 columns)
  for (var i = 0u; i < 16u; i++) { acc[i] = vec4<f32>(0.0); }

  for (var k0 = 0u; k0 < params.k; k0 += TILE_K) {
    for (var e = tid; e < TILE_M * TILE_K; e += nthreads) {
      var r: u32; var kk: u32;
      if (TRANS_A == 1u) { kk = e / TILE_M; r = e % TILE_M; } else { r = e / TILE_K; kk = e % TILE_K; }
      ta[kk * qm + r / 4u][r % 4u] = load_a(bi, row0 + r, k0 + kk);
    }
    for (var e = tid; e < TILE_K * TILE_N; e += nthreads) {
      var c: u32; var kk: u32;
      if (TRANS_B == 1u) { c = e / TILE_K; kk = e % TILE_K; } else { kk = e / TILE_N; c = e % TILE_N; }
      tb[kk * qn + c / 4u][c % 4u] = load_b(bi, k0 + kk, col0 + c);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TILE_K; kk++) {
      let a0 = ta[kk * qm + lid.y];
      let a1 = ta[kk * qm + qm / 2u + lid.y];
      let b0 = tb[kk * qn + lid.x];
      let b1 = tb[kk * qn + qn / 2u + lid.x];
      let av = array<f32, 8>(a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w);
      for (var i = 0u; i < 8u; i++) {
        acc[i * 2u] = fma(vec4<f32>(av[i]), b0, acc[i * 2u]);
        acc[i * 2u + 1u] = fma(vec4<f32>(av[i]), b1, acc[i * 2u + 1u]);
      }
    }
    workgroupBarrier();
  }

  let base = bi * params.m * params.n;
  for (var i = 0u; i < 8u; i++) {
    let row = row0 + select(lid.y * 4u + i, TILE_M / 2u + lid.y * 4u + i - 4u, i >= 4u);
    if (row >= params.m) { continue; }
    for (var h = 0u; h < 2u; h++) {
      let v = acc[i * 2u + h] * params.alpha;
      let col = col0 + h * (TILE_N / 2u) + lid.x * 4u;
      for (var c = 0u; c < 4u; c++) {
        if (col + c < params.n) { out[base + row * params.n + col + c] = bitcast<u32>(v[c]); }
      }
    }
  }
}
