// Optimizer kernels, float32: GradScaler's unscale-and-check, the global L2 norm (per-tensor
// partial sums, then a final kernel) and the AdamW step. Twin of assembly/kernels/optim.ts.
// This file holds several kernels; src/backend/webgpu/optim.ts compiles each section (from its
// "//#stage NAME" line to the next) on its own, after shaders/dtype.wgsl and the accessors.

//#stage unscale
// x[i] *= inv_scale; any non-finite x[i] stores 1.0 to found[found_off] (never 0; a plain store of
// the same value by many invocations needs no atomics).
struct Params { n: u32, off: u32, found_off: u32, inv_scale: f32 }
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> found: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + lid;
  if (i >= params.n) { return; }
  let v = x[params.off + i];
  if ((bitcast<u32>(v) & 0x7fffffffu) >= 0x7f800000u) { found[params.found_off] = 1.0; }
  x[params.off + i] = v * params.inv_scale;
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

//#stage adamw
// One AdamW step on float32 p, m, v (grad of any format), PyTorch's arrangement:
//   g = grad * grad_scale; p *= decay; m = beta1 m + omb1 g; v = beta2 v + omb2 g^2;
//   p -= step_size * m / (sqrt(v) / bc2_sqrt + eps).
override FG: u32 = 0u;
struct Params {
  n: u32, off_p: u32, off_g: u32, off_m: u32,
  off_v: u32, grad_scale: f32, decay: f32, beta1: f32,
  omb1: f32, beta2: f32, omb2: f32, step_size: f32,
  bc2_sqrt: f32, eps: f32, pad0: u32, pad1: u32,
}
@group(0) @binding(0) var<storage, read_write> p: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + lid;
  if (i >= params.n) { return; }
  let g = g_f32(params.off_g + i, FG) * params.grad_scale;
  let mi = params.beta1 * m[params.off_m + i] + params.omb1 * g;
  let vi = params.beta2 * v[params.off_v + i] + params.omb2 * (g * g);
  m[params.off_m + i] = mi;
  v[params.off_v + i] = vi;
  let denom = sqrt(vi) / params.bc2_sqrt + params.eps;
  let pi = p[params.off_p + i] * params.decay;
  p[params.off_p + i] = pi - params.step_size * (mi / denom);
}
