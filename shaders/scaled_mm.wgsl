// torch._scaled_mm with per-tensor scales read on the device (float32 one-element tensors at
// sa[off_sa] and sb[off_sb]): out[M, N] = (A * scale_a) @ (B * scale_b), A [M, K] and
// B [K, N] fp8 codes (decoded exactly on load), float32 accumulation in increasing k (16 x 16
// tiles through workgroup memory), float32 output (cast to the output dtype by the caller).
// Twin of assembly/scaled_mm.ts with float32 accumulation.
override FA: u32 = 3u;
override FB: u32 = 3u;

struct Params { m: u32, k: u32, n: u32, tiles_n: u32, off_a: u32, off_b: u32, off_sa: u32, off_sb: u32 }
@group(0) @binding(3) var<uniform> params: Params;
@group(0) @binding(4) var<storage, read> sa: array<f32>;
@group(0) @binding(5) var<storage, read> sb: array<f32>;

const T: u32 = 16u;
var<workgroup> ta: array<array<f32, 16>, 16>;
var<workgroup> tb: array<array<f32, 16>, 16>;

fn load_a(r: u32, c: u32) -> f32 {
  if (r >= params.m || c >= params.k) { return 0.0; }
  return a_f32(params.off_a + r * params.k + c, FA);
}
fn load_b(r: u32, c: u32) -> f32 {
  if (r >= params.k || c >= params.n) { return 0.0; }
  return b_f32(params.off_b + r * params.n + c, FB);
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let tile = wid.y * nwg.x + wid.x;
  let tiles_m = (params.m + T - 1u) / T;
  if (tile >= tiles_m * params.tiles_n) { return; }
  let row = (tile / params.tiles_n) * T + lid.y;
  let col = (tile % params.tiles_n) * T + lid.x;
  var sum: f32 = 0.0;
  for (var k0 = 0u; k0 < params.k; k0 = k0 + T) {
    ta[lid.y][lid.x] = load_a(row, k0 + lid.x);
    tb[lid.y][lid.x] = load_b(k0 + lid.y, col);
    workgroupBarrier();
    // products of two fp8 values are exact in float32; one rounding per addition, k increasing
    for (var kk = 0u; kk < T; kk = kk + 1u) { sum = sum + ta[lid.y][kk] * tb[kk][lid.x]; }
    workgroupBarrier();
  }
  if (row < params.m && col < params.n) {
    out[row * params.n + col] = bitcast<u32>(sum * sa[params.off_sa] * sb[params.off_sb]);
  }
}
