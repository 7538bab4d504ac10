// Float8 training's scale update (Kernels.float8ScaleUpdate), one invocation; twin of
// float8ScaleUpdate in src/backend/wasm/scaled_mm.ts. history[0] holds the newest amax.
//   current (torchao's dynamic scaling): scale = fp8_max / max(amax, eps), history untouched;
//   max | most recent (Transformer Engine's delayed scaling, its amax_and_scale_update kernel):
//     amax = the largest entry (fmaxf from 0: NaN entries skipped) or history[0]; history rolled by
//     one (i + 1 -> i, 0 -> L - 1), history[0] = 0; scale = (fp8_max * 2^-margin) / amax when amax
//     is finite and > 0, else kept.
// Then inv = 1 / scale. NaN is tested on the bits (WGSL may assume NaN away in comparisons).
struct Params { len: u32, h_off: u32, s_off: u32, inv_off: u32, algo: u32, fp8_max: f32, scaled_max: f32, pad: u32 }
@group(0) @binding(0) var<storage, read_write> history: array<f32>;
@group(0) @binding(1) var<storage, read_write> scale: array<f32>;
@group(0) @binding(2) var<storage, read_write> inv: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

const EPS: f32 = 9.9999999600419720025e-13; // FLOAT8_AMAX_EPS: 1e-12 rounded to float32

fn is_nan(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }
fn is_finite(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) < 0x7f800000u; }

@compute @workgroup_size(1)
fn main() {
  let h0 = params.h_off;
  var s = scale[params.s_off];
  if (params.algo == 2u) {
    let amax = history[h0];
    if (is_nan(amax)) { s = amax; } else { s = params.fp8_max / max(amax, EPS); }
  } else {
    var amax = history[h0];
    if (params.algo == 0u) {
      amax = 0.0;
      for (var i = 0u; i < params.len; i = i + 1u) {
        let v = history[h0 + i];
        if (!is_nan(v) && v > amax) { amax = v; }
      }
    }
    let newest = history[h0];
    for (var i = 0u; i + 1u < params.len; i = i + 1u) { history[h0 + i] = history[h0 + i + 1u]; }
    history[h0 + params.len - 1u] = newest;
    history[h0] = 0.0;
    if (is_finite(amax) && amax > 0.0) { s = params.scaled_max / amax; }
  }
  scale[params.s_off] = s;
  inv[params.inv_off] = 1.0 / s;
}
