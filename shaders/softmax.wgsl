// Softmax / log-softmax over rows of length `cols`: one workgroup of 64 per row (the host
// dispatches one workgroup a row; 64 rather than 256 invocations: a quarter of the barrier work,
// which dominates on software adapters); max, then sum of exp, then the output. Twin of
// softmaxF32 in assembly/kernels/elementwise.ts.
override LOG: u32 = 0u;
override FX: u32 = 0u;
override FO: u32 = 0u;

struct Params { rows: u32, cols: u32, off: u32, pad: u32 }
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= params.rows) { return; } // uniform per workgroup: barriers stay uniform
  let base = row * params.cols;
  var m: f32 = bitcast<f32>(0xff800000u | (params.cols & 0u)); // -inf
  for (var c = lid; c < params.cols; c = c + 64u) { m = max(m, x_f32(base + c + params.off, FX)); }
  m = grp_max(m, lid, 64u);
  var s: f32 = 0.0;
  for (var c = lid; c < params.cols; c = c + 64u) { s = s + exp(x_f32(base + c + params.off, FX) - m); }
  s = grp_sum(s, lid, 64u);
  let ls = log(s); // (x - max) - log(sum), as PyTorch (and softmaxF32)
  // One word per thread: float32 outputs (the tensor layer keeps softmax outputs float32).
  for (var c = lid; c < params.cols; c = c + 64u) {
    let v = x_f32(base + c + params.off, FX);
    var r: f32;
    if (LOG == 1u) { r = (v - m) - ls; } else { r = exp(v - m) / s; }
    out[base + c] = encode_bits(FO, bitcast<u32>(r), false, false);
  }
}
