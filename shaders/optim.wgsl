// Optimizer kernels, float32: GradScaler's unscale-and-check and scale update, the global L2 norm
// (per-tensor partial sums, then a final kernel) and the AdamW step (plain, and under a GradScaler:
// skipped on the device when the found-inf flag is set). Twin of assembly/kernels/optim.ts.
// This file holds several kernels; src/backend/webgpu/optim.ts compiles each section (from its
// "//#stage NAME" line to the next) on its own, after shaders/dtype.wgsl and the accessors.

//#stage unscale
// x[i] *= inv[inv_off] (the inverse scale, read on the device); any non-finite x[i] stores 1.0 to
// found[found_off] (never 0; a plain store of the same value by many invocations needs no atomics).
struct Params { n: u32, off: u32, found_off: u32, inv_off: u32 }
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> found: array<f32>;
@group(0) @binding(2) var<storage, read> inv: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + lid;
  if (i >= params.n) { return; }
  let v = x[params.off + i];
  if ((bitcast<u32>(v) & 0x7fffffffu) >= 0x7f800000u) { found[params.found_off] = 1.0; }
  x[params.off + i] = v * inv[params.inv_off];
}

//#stage update_scale
// GradScaler's scale update (torch._amp_update_scale_), one invocation:
//   found != 0: scale *= backoff, tracker = 0;
//   else: tracker + 1 == interval ? (scale *= growth if finite; tracker = 0) : tracker += 1;
// then inv = 1 / scale: exact bit arithmetic for a power of two (WGSL's division may be off by an ulp
// or flush a subnormal result, and the unscale must be exact), a division otherwise. inv is written
// as bits, so that the subnormal 2^-127 (the inverse of 2^127) survives.
struct Params { scale_off: u32, inv_off: u32, tracker_off: u32, found_off: u32, growth: f32, backoff: f32, interval: i32, pad: u32 }
@group(0) @binding(0) var<storage, read_write> scale: array<f32>;
@group(0) @binding(1) var<storage, read_write> inv: array<u32>;
@group(0) @binding(2) var<storage, read_write> tracker: array<i32>;
@group(0) @binding(3) var<storage, read> found: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

// Any nonzero flag (NaN too) is set: tested on the bits, since WGSL may assume NaN away in comparisons.
fn flag_set(f: f32) -> bool { return (bitcast<u32>(f) & 0x7fffffffu) != 0u; }

/** The bits of 1 / s. */
fn reciprocal_bits(s: f32) -> u32 {
  let b = bitcast<u32>(s);
  let e = (b >> 23u) & 0xffu;
  if ((b & 0x7fffffu) == 0u) {
    // s = +-2^(e - 127): 1 / s = +-2^(127 - e), biased exponent 254 - e (2^-127, for e = 254, is subnormal: bit 22).
    if (e >= 1u && e <= 253u) { return (b & 0x80000000u) | ((254u - e) << 23u); }
    if (e == 254u) { return (b & 0x80000000u) | 0x400000u; }
  }
  return bitcast<u32>(1.0 / s);
}

@compute @workgroup_size(1)
fn main() {
  var s = scale[params.scale_off];
  if (flag_set(found[params.found_off])) {
    s = s * params.backoff;
    tracker[params.tracker_off] = 0;
  } else {
    let successful = tracker[params.tracker_off] + 1;
    if (successful == params.interval) {
      let grown = s * params.growth;
      if ((bitcast<u32>(grown) & 0x7fffffffu) < 0x7f800000u) { s = grown; }
      tracker[params.tracker_off] = 0;
    } else {
      tracker[params.tracker_off] = successful;
    }
  }
  scale[params.scale_off] = s;
  inv[params.inv_off] = reciprocal_bits(s);
}

//#stage sumsq
// partial[base + w] = sum of x^2 over the elements that workgroup w visits (grid-strided), float32.
override FX: u32 = 0u;
struct Params { n: u32, off: u32, base: u32, groups: u32 }
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;
var<workgroup> acc: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let w = wid.y * nwg.x + wid.x;
  var s: f32 = 0.0;
  if (w < params.groups) {
    for (var i = w * 256u + lid; i < params.n; i = i + params.groups * 256u) {
      let v = x_f32(params.off + i, FX);
      s = s + v * v;
    }
  }
  acc[lid] = s;
  workgroupBarrier();
  for (var st = 128u; st > 0u; st = st >> 1u) {
    if (lid < st) { acc[lid] = acc[lid] + acc[lid + st]; }
    workgroupBarrier();
  }
  if (lid == 0u && w < params.groups) { partial[params.base + w] = acc[0]; }
}

//#stage norm
// out[off] = sqrt(sum of partial[0..count)), one workgroup.
struct Params { count: u32, off: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<storage, read> partial: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;
var<workgroup> acc: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
  var s: f32 = 0.0;
  for (var i = lid; i < params.count; i = i + 256u) { s = s + partial[i]; }
  acc[lid] = s;
  workgroupBarrier();
  for (var st = 128u; st > 0u; st = st >> 1u) {
    if (lid < st) { acc[lid] = acc[lid] + acc[lid + st]; }
    workgroupBarrier();
  }
  if (lid == 0u) { out[params.off] = sqrt(acc[0]); }
}

//#part adamw_math
// One AdamW step on float32 p, m, v (grad of any format), PyTorch's arrangement:
//   g = grad * grad_scale; p *= decay; m = beta1 m + omb1 g; v = beta2 v + omb2 g^2;
//   p -= step_size * m / (sqrt(v) / bc2_sqrt + eps).
override FG: u32 = 0u;
struct Params {
  n: u32, off_p: u32, off_g: u32, off_m: u32,
  off_v: u32, grad_scale: f32, decay: f32, beta1: f32,
  omb1: f32, beta2: f32, omb2: f32, step_size: f32,
  bc2_sqrt: f32, eps: f32, off_found: u32, off_sc: u32,
  use_sc: u32, pad0: u32, pad1: u32, pad2: u32,
}
@group(0) @binding(0) var<storage, read_write> p: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;

fn adamw_update(i: u32, step_size: f32, bc2_sqrt: f32) {
  let g = g_f32(params.off_g + i, FG) * params.grad_scale;
  let mi = params.beta1 * m[params.off_m + i] + params.omb1 * g;
  let vi = params.beta2 * v[params.off_v + i] + params.omb2 * (g * g);
  m[params.off_m + i] = mi;
  v[params.off_v + i] = vi;
  let denom = sqrt(vi) / bc2_sqrt + params.eps;
  let pi = p[params.off_p + i] * params.decay;
  p[params.off_p + i] = pi - step_size * (mi / denom);
}

//#stage adamw +adamw_math
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + lid;
  if (i >= params.n) { return; }
  adamw_update(i, params.step_size, params.bc2_sqrt);
}

//#stage adamw_amp +adamw_math
// Under a GradScaler: nothing is written when found[off_found] != 0 (the skipped step), and with
// use_sc the scalars (step_size, bc2_sqrt) come from sc[off_sc..] (chosen on the device).
@group(0) @binding(4) var<storage, read> found: array<f32>;
@group(0) @binding(5) var<storage, read> sc: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + lid;
  // Any nonzero flag (NaN too) skips: tested on the bits, since WGSL may assume NaN away in comparisons.
  if (i >= params.n || (bitcast<u32>(found[params.off_found]) & 0x7fffffffu) != 0u) { return; }
  var step_size = params.step_size;
  var bc2_sqrt = params.bc2_sqrt;
  if (params.use_sc != 0u) {
    step_size = sc[params.off_sc];
    bc2_sqrt = sc[params.off_sc + 1u];
  }
  adamw_update(i, step_size, bc2_sqrt);
}
