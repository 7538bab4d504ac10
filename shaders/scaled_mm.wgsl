// torch._scaled_mm's scaling, after the product: out[i] = (out[i] * scale_a) * scale_b over n
// float32 values, the per-tensor scales read on the device (float32 one-element tensors at
// sa[off_sa] and sb[off_sb]). The product itself, sum_k a[i, k] b[k, j] with float32 accumulation,
// runs on the matmul kernels (src/backend/webgpu/scaled_mm.ts): products of two fp8 values are exact
// in float32, so the register-tiled kernel, which adds them in increasing k, gives the bits of
// assembly/scaled_mm.ts; subgroup matrices differ only in the order of the float32 additions.
struct Params { n: u32, off_sa: u32, off_sb: u32, pad: u32 }
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> sa: array<f32>;
@group(0) @binding(2) var<storage, read> sb: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + lid;
  if (i < params.n) { out[i] = out[i] * sa[params.off_sa] * sb[params.off_sb]; }
}
