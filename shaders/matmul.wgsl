// Batched matmul, float32 accumulation: out[b] = alpha * op(A[b]) @ op(B[b]), float32 output.
// A first, simple tiled version (16 x 16 tiles through workgroup memory); inputs of any format are
// decoded on load. Twin of assembly/kernels/matmul.ts.
override FA: u32 = 0u;
override FB: u32 = 0u;
override TRANS_A: u32 = 0u;
override TRANS_B: u32 = 0u;

struct Params { m: u32, k: u32, n: u32, batch: u32, stride_a: u32, stride_b: u32, off_a: u32, off_b: u32, alpha: f32, tiles_n: u32, pad0: u32, pad1: u32 }
@group(0) @binding(3) var<uniform> params: Params;

const T: u32 = 16u;
var<workgroup> ta: array<array<f32, 16>, 16>;
var<workgroup> tb: array<array<f32, 16>, 16>;

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

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let tile = wid.y * nwg.x + wid.x;
  let tiles_m = (params.m + T - 1u) / T;
  let per_batch = tiles_m * params.tiles_n;
  let bi = tile / per_batch;
  if (bi >= params.batch) { return; }
  let t = tile % per_batch;
  let row = (t / params.tiles_n) * T + lid.y;
  let col = (t % params.tiles_n) * T + lid.x;
  var sum: f32 = 0.0;
  for (var k0 = 0u; k0 < params.k; k0 = k0 + T) {
    ta[lid.y][lid.x] = load_a(bi, row, k0 + lid.x);
    tb[lid.y][lid.x] = load_b(bi, k0 + lid.y, col);
    workgroupBarrier();
    for (var kk = 0u; kk < T; kk = kk + 1u) { sum = sum + ta[lid.y][kk] * tb[kk][lid.x]; }
    workgroupBarrier();
  }
  if (row < params.m && col < params.n) {
    out[bi * params.m * params.n + row * params.n + col] = bitcast<u32>(sum * params.alpha);
  }
}
