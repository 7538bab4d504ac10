// Block-wise dynamic 8-bit quantization and the fused 8-bit optimizer step (bitsandbytes'
// blockwise 8-bit optimizers). Twin of assembly/kernels/optim8bit.ts; rules in
// src/backend/quant.ts: absmax = the largest |x| compared as bits (NaN above inf; atomicMax makes
// it independent of order), code index = the number of thresholds t_k with t_k * absmax < x
// (binary search, ties to the lower code), value = code * absmax. No division, so quantize and
// dequantize agree with WebAssembly bit for bit. Tables (256 code values, then 255 thresholds) come
// in the uniform block, four a vec4. Codes are uint8, four a u32 word, element 0 in the low byte;
// each invocation owns whole words. One workgroup of 64 invocations per block: invocation l
// handles elements 4l..4l+3 of every 256-element chunk of the block.
// src/backend/webgpu/optim8bit.ts compiles each "//#stage NAME" section on its own.
struct Params {
  n: u32, block: u32, off_p: u32, off_g: u32, off_found: u32, off_sc: u32, use_sc: u32, pad: u32,
  h: array<vec4<f32>, 3>,
  t1: array<vec4<f32>, 128>,
  t2: array<vec4<f32>, 128>,
}

fn table1(i: u32) -> f32 { return params.t1[i >> 2u][i & 3u]; }
fn table2(i: u32) -> f32 { return params.t2[i >> 2u][i & 3u]; }
fn hv(i: u32) -> f32 { return params.h[i >> 2u][i & 3u]; }

fn code_index1(x: f32, amax: f32) -> u32 {
  var lo = 0u;
  var hi = 255u;
  loop {
    if (lo >= hi) { break; }
    let mid = (lo + hi) >> 1u;
    if (x > params.t1[64u + (mid >> 2u)][mid & 3u] * amax) { lo = mid + 1u; } else { hi = mid; }
  }
  return lo;
}

fn code_index2(x: f32, amax: f32) -> u32 {
  var lo = 0u;
  var hi = 255u;
  loop {
    if (lo >= hi) { break; }
    let mid = (lo + hi) >> 1u;
    if (x > params.t2[64u + (mid >> 2u)][mid & 3u] * amax) { lo = mid + 1u; } else { hi = mid; }
  }
  return lo;
}

fn abs_bits(x: f32) -> u32 { return bitcast<u32>(x) & 0x7fffffffu; }

var<workgroup> wmax1: atomic<u32>;
var<workgroup> wmax2: atomic<u32>;

//#stage quantize
// x (float32 at off_p) -> codes (c1) and absmax (a1), block wid.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> c1: array<u32>;
@group(0) @binding(2) var<storage, read_write> a1: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let b = wid.y * nwg.x + wid.x;
  if (lid == 0u) { atomicStore(&wmax1, 0u); }
  workgroupBarrier();
  let base = b * params.block;
  let chunks = params.block / 256u;
  var m = 0u;
  for (var c = 0u; c < chunks; c++) {
    for (var j = 0u; j < 4u; j++) {
      let e = base + c * 256u + lid * 4u + j;
      if (e < params.n) { m = max(m, abs_bits(x[params.off_p + e])); }
    }
  }
  atomicMax(&wmax1, m);
  workgroupBarrier();
  let amax = bitcast<f32>(atomicLoad(&wmax1));
  if (lid == 0u) { a1[b] = amax; }
  for (var c = 0u; c < chunks; c++) {
    let first = base + c * 256u + lid * 4u;
    if (first >= params.n) { continue; }
    var word = 0u;
    for (var j = 0u; j < 4u; j++) {
      if (first + j < params.n) { word = word | (code_index1(x[params.off_p + first + j], amax) << (8u * j)); }
    }
    c1[first >> 2u] = word;
  }
}

//#stage dequantize
// out[e] = table1(code e) * absmax[e / block]; one invocation per word of codes.
@group(0) @binding(0) var<storage, read> c1: array<u32>;
@group(0) @binding(1) var<storage, read> a1: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let w = (wid.y * nwg.x + wid.x) * 256u + lid;
  if (w * 4u >= params.n) { return; }
  let word = c1[w];
  for (var j = 0u; j < 4u; j++) {
    let e = w * 4u + j;
    if (e < params.n) { out[e] = table1((word >> (8u * j)) & 255u) * a1[e / params.block]; }
  }
}

//#part step_math
// One block of the fused step (kinds and h as Optim8bitStep in src/backend/backend.ts; the same
// float32 arithmetic as optimizer8bitF32). KIND and TWO (two states) are override constants.
override FG: u32 = 0u;
override KIND: u32 = 0u;
@group(0) @binding(0) var<storage, read_write> p: array<f32>;
@group(0) @binding(2) var<storage, read_write> c1: array<u32>;
@group(0) @binding(3) var<storage, read_write> a1: array<f32>;
@group(0) @binding(4) var<storage, read_write> c2: array<u32>;
@group(0) @binding(5) var<storage, read_write> a2: array<f32>;

fn step_block(b: u32, lid: u32, skip: bool, h6: f32, h7: f32) {
  if (lid == 0u) {
    atomicStore(&wmax1, 0u);
    atomicStore(&wmax2, 0u);
  }
  workgroupBarrier();
  let h0 = hv(0u); let h1 = hv(1u); let h2 = hv(2u); let h3 = hv(3u); let h4 = hv(4u); let h5 = hv(5u); let h8 = hv(8u);
  let base = b * params.block;
  let chunks = params.block / 256u;
  let am1 = a1[b];
  var am2 = 0.0;
  if (KIND == 0u) { am2 = a2[b]; }
  var s1: array<f32, 64>;
  var s2: array<f32, 64>;
  var m1 = 0u;
  var m2 = 0u;
  for (var c = 0u; c < chunks; c++) {
    let first = base + c * 256u + lid * 4u;
    if (first >= params.n) { continue; }
    let w1 = c1[first >> 2u];
    var w2 = 0u;
    if (KIND == 0u) { w2 = c2[first >> 2u]; }
    for (var j = 0u; j < 4u; j++) {
      let e = first + j;
      if (e >= params.n) { continue; }
      let k = c * 4u + j;
      var x1 = table1((w1 >> (8u * j)) & 255u) * am1;
      let pi = p[params.off_p + e];
      let gr = g_f32(params.off_g + e, FG);
      var pn: f32;
      if (KIND == 0u) {
        var x2 = table2((w2 >> (8u * j)) & 255u) * am2;
        let g = gr * h0;
        x1 = h2 * x1 + h3 * g;
        x2 = h4 * x2 + h5 * (g * g);
        let denom = sqrt(x2) / h7 + h8;
        pn = pi * h1 - h6 * (x1 / denom);
        s2[k] = x2;
        m2 = max(m2, abs_bits(x2));
      } else if (KIND == 1u) {
        if (h6 != 0.0) { x1 = gr; } else { x1 = h0 * x1 + h1 * gr; }
        var u = x1;
        if (h3 != 0.0) { u = gr + h0 * x1; }
        pn = pi + h2 * u;
      } else {
        x1 = h0 * x1 + h1 * (gr * gr);
        pn = pi + h2 * (gr / (sqrt(x1) + h3));
      }
      if (!skip) { p[params.off_p + e] = pn; }
      s1[k] = x1;
      m1 = max(m1, abs_bits(x1));
    }
  }
  atomicMax(&wmax1, m1);
  atomicMax(&wmax2, m2);
  workgroupBarrier();
  if (skip) { return; }
  let n1 = bitcast<f32>(atomicLoad(&wmax1));
  let n2 = bitcast<f32>(atomicLoad(&wmax2));
  if (lid == 0u) {
    a1[b] = n1;
    if (KIND == 0u) { a2[b] = n2; }
  }
  for (var c = 0u; c < chunks; c++) {
    let first = base + c * 256u + lid * 4u;
    if (first >= params.n) { continue; }
    var q1 = 0u;
    var q2 = 0u;
    for (var j = 0u; j < 4u; j++) {
      if (first + j < params.n) {
        q1 = q1 | (code_index1(s1[c * 4u + j], n1) << (8u * j));
        if (KIND == 0u) { q2 = q2 | (code_index2(s2[c * 4u + j], n2) << (8u * j)); }
      }
    }
    c1[first >> 2u] = q1;
    if (KIND == 0u) { c2[first >> 2u] = q2; }
  }
}

//#stage step +step_math
@group(0) @binding(6) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  step_block(wid.y * nwg.x + wid.x, lid, false, hv(6u), hv(7u));
}

//#stage step_amp +step_math
// Under a GradScaler: nothing is written when found[off_found] != 0 (tested on the bits: WGSL may
// assume NaN away), and with use_sc, h6 and h7 come from sc[off_sc..] (chosen on the device).
@group(0) @binding(6) var<storage, read> found: array<f32>;
@group(0) @binding(7) var<storage, read> sc: array<f32>;
@group(0) @binding(8) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let skip = (bitcast<u32>(found[params.off_found]) & 0x7fffffffu) != 0u;
  var h6 = hv(6u);
  var h7 = hv(7u);
  if (params.use_sc != 0u) {
    h6 = sc[params.off_sc];
    h7 = sc[params.off_sc + 1u];
  }
  step_block(wid.y * nwg.x + wid.x, lid, skip, h6, h7);
}
