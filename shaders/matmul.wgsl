// Batched matmul, float32 accumulation: out[b] = alpha * op(A[b]) @ op(B[b]), float32 output.
// Twin of assembly/kernels/matmul.ts. Inputs of any format are decoded on load (a_f32 / b_f32).
//
// Register-tiled: a workgroup computes a TILE_M x TILE_N block of C, stepping K by TILE_K through
// workgroup memory; each invocation owns THREAD_M x THREAD_N outputs held in registers. The
// invocation at (tx, ty) owns rows ty + i * WG_Y and columns tx + j * WG_X of the block (strided,
// so workgroup-memory reads are conflict free and the final stores are coalesced).
// Tile sizes are pipeline-override constants picked per adapter by matmulTiles() in
// src/backend/webgpu/matmul.ts; THREAD_M, THREAD_N <= MAX_THREAD, and
// TILE_M = THREAD_M * WG_Y, TILE_N = THREAD_N * WG_X.
//
// Inputs that float16 holds exactly run on subgroup matrices (tensor cores) instead where the
// device has them: shaders/matmul_sgmat.wgsl.
override FA: u32 = 0u;
override FB: u32 = 0u;
override TRANS_A: u32 = 0u;
override TRANS_B: u32 = 0u;
override TILE_M: u32 = 64u;
override TILE_N: u32 = 64u;
override TILE_K: u32 = 16u;
override THREAD_M: u32 = 4u;
override THREAD_N: u32 = 4u;
override WG_X: u32 = TILE_N / THREAD_N;
override WG_Y: u32 = TILE_M / THREAD_M;

struct Params { m: u32, k: u32, n: u32, batch: u32, stride_a: u32, stride_b: u32, off_a: u32, off_b: u32, alpha: f32, tiles_n: u32, pad0: u32, pad1: u32 }
@group(0) @binding(3) var<uniform> params: Params;

const MAX_THREAD: u32 = 8u;
// k-major tiles: ta[kk * TILE_M + r], tb[kk * TILE_N + c]
var<workgroup> ta: array<f32, TILE_M * TILE_K>;
var<workgroup> tb: array<f32, TILE_K * TILE_N>;

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

  var acc: array<array<f32, MAX_THREAD>, MAX_THREAD>;
  for (var i = 0u; i < THREAD_M; i++) { for (var j = 0u; j < THREAD_N; j++) { acc[i][j] = 0.0; } }
  var av: array<f32, MAX_THREAD>;
  var bv: array<f32, MAX_THREAD>;

  for (var k0 = 0u; k0 < params.k; k0 += TILE_K) {
    // Cooperative loads; the fastest-varying index follows memory order for coalescing.
    for (var e = tid; e < TILE_M * TILE_K; e += nthreads) {
      var r: u32; var kk: u32;
      if (TRANS_A == 1u) { kk = e / TILE_M; r = e % TILE_M; } else { r = e / TILE_K; kk = e % TILE_K; }
      ta[kk * TILE_M + r] = load_a(bi, row0 + r, k0 + kk);
    }
    for (var e = tid; e < TILE_K * TILE_N; e += nthreads) {
      var c: u32; var kk: u32;
      if (TRANS_B == 1u) { c = e / TILE_K; kk = e % TILE_K; } else { kk = e / TILE_N; c = e % TILE_N; }
      tb[kk * TILE_N + c] = load_b(bi, k0 + kk, col0 + c);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TILE_K; kk++) {
      for (var i = 0u; i < THREAD_M; i++) { av[i] = ta[kk * TILE_M + lid.y + i * WG_Y]; }
      for (var j = 0u; j < THREAD_N; j++) { bv[j] = tb[kk * TILE_N + lid.x + j * WG_X]; }
      for (var i = 0u; i < THREAD_M; i++) {
        for (var j = 0u; j < THREAD_N; j++) { acc[i][j] = acc[i][j] + av[i] * bv[j]; }
      }
    }
    workgroupBarrier();
  }

  let base = bi * params.m * params.n;
  for (var i = 0u; i < THREAD_M; i++) {
    let row = row0 + lid.y + i * WG_Y;
    if (row >= params.m) { break; }
    for (var j = 0u; j < THREAD_N; j++) {
      let col = col0 + lid.x + j * WG_X;
      if (col < params.n) { out[base + row * params.n + col] = bitcast<u32>(acc[i][j] * params.alpha); }
    }
  }
}
