// Reductions over the middle axis of [outer, len, inner] (axis = null: [1, n, 1]): one workgroup
// of 64 per output element (the host dispatches one workgroup an output; 64 rather than 256
// invocations: a quarter of the barrier work, which dominates on software adapters), threads
// strided over the axis, then a tree in workgroup memory. float32 accumulation. Twin of reduceF32 in assembly/kernels/elementwise.ts.
override OP: u32 = 0u; // R_SUM, R_MEAN, R_MAX or R_AMAX
override FX: u32 = 0u;
override FO: u32 = 0u;

struct Params { outer: u32, len: u32, inner: u32, off: u32 }
@group(0) @binding(2) var<uniform> params: Params;

var<workgroup> acc: array<f32, 64>;
var<workgroup> nan: array<u32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let o = wid.y * nwg.x + wid.x; // output element
  if (o >= params.outer * params.inner) { return; }
  let oo = o / params.inner;
  let j = o % params.inner;
  let base = oo * params.len * params.inner + j + params.off;
  var a: f32 = select(0.0, bitcast<f32>(0xff800000u | (params.len & 0u)), OP == R_MAX); // max starts at -inf
  var bad = 0u;
  for (var k = lid; k < params.len; k = k + 64u) {
    let v = x_f32(base + k * params.inner, FX);
    if ((bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u) { bad = 1u; }
    else if (OP == R_MAX) { a = max(a, v); }
    else if (OP == R_AMAX) { a = max(a, abs(v)); }
    else { a = a + v; }
  }
  acc[lid] = a;
  nan[lid] = bad;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      if (OP == R_MAX || OP == R_AMAX) { acc[lid] = max(acc[lid], acc[lid + s]); } else { acc[lid] = acc[lid] + acc[lid + s]; }
      nan[lid] = nan[lid] | nan[lid + s];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    var r = acc[0];
    if (OP == R_MAX && params.len == 0u) { r = bitcast<f32>(0xff800000u | (params.len & 0u)); } // -inf, built at run time
    if (OP == R_MEAN) { r = r / f32(params.len); }
    var bits = bitcast<u32>(r);
    if (nan[0] != 0u) { bits = 0x7fc00000u; }
    out[o] = encode_bits(FO, bits, false, false); // reductions write float32 (or wider) outputs
  }
}
