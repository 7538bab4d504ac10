// Causal scaled-dot-product attention, forward and backward: the WGSL twin of
// assembly/kernels/attention.ts (same loops, same order). One file, several stages (see
// src/backend/webgpu/attention.ts): one invocation per (b, h, row), looping over the other axis,
// so no [T, T] score matrix is stored and every sum is deterministic (no atomics).
//   fwd:  per query row: online max/sum -> lse, then out = sum exp(score - lse) * v.
//   di:   per query row: di = sum(dout * out).
//   dq:   per query row: dq = scale * sum_s P (dP - di) k_s.
//   dk:   per key row:   dk = scale * sum_t P (dP - di) q_t.
//   dv:   per key row:   dv = sum_t P dout_t.
// Query t sees keys s <= t whose mask[b, s] != 0 (HAS_MASK). A query row with no allowed key gets
// out = 0 and lse = -inf, and contributes nothing to the gradients. Outputs are float32 rows at
// offset 0; inputs are read through dtype accessors at their element offsets (di is float32:
// format 0).

struct Params {
  bh: u32, heads: u32, t: u32, d: u32,
  scale: f32, has_mask: u32, qoff: u32, koff: u32,
  voff: u32, moff: u32, ooff: u32, loff: u32,
  dooff: u32, pad0: u32, pad1: u32, pad2: u32,
}
@group(0) @binding(15) var<uniform> params: Params;

fn row_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 { return (wid.y * nwg.x + wid.x) * 64u + lid; }

// -inf, built at run time (WGSL rejects an infinite constant)
fn neg_inf() -> f32 { return bitcast<f32>(0xff800000u | (params.t & 0u)); }

//#stage fwd
override FQ: u32 = 0u;
override FK: u32 = 0u;
override FV: u32 = 0u;
override FM: u32 = 0u;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;

fn allowed(b: u32, s: u32) -> bool { return params.has_mask == 0u || m_f32(b * params.t + s + params.moff, FM) != 0.0; }

fn score(qb: u32, kb: u32) -> f32 {
  var s: f32 = 0.0;
  for (var c = 0u; c < params.d; c = c + 1u) { s = s + q_f32(qb + c + params.qoff, FQ) * k_f32(kb + c + params.koff, FK); }
  return s * params.scale;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = row_index(wid, nwg, lid);
  if (row >= params.bh * params.t) { return; }
  let r = row / params.t;
  let i = row % params.t;
  let b = r / params.heads;
  let base = r * params.t * params.d;
  let qb = base + i * params.d;
  var mx: f32 = 0.0;
  var sum: f32 = 0.0;
  for (var s = 0u; s <= i; s = s + 1u) {
    if (!allowed(b, s)) { continue; }
    let sc = score(qb, base + s * params.d);
    if (sum == 0.0) { mx = sc; sum = 1.0; }
    else if (sc > mx) { sum = sum * exp(mx - sc) + 1.0; mx = sc; }
    else { sum = sum + exp(sc - mx); }
  }
  for (var c = 0u; c < params.d; c = c + 1u) { out[qb + c] = 0.0; }
  if (sum == 0.0) {
    lse[row + params.loff] = neg_inf();
    return;
  }
  let ls = mx + log(sum);
  lse[row + params.loff] = ls;
  for (var s = 0u; s <= i; s = s + 1u) {
    if (!allowed(b, s)) { continue; }
    let p = exp(score(qb, base + s * params.d) - ls);
    let vb = base + s * params.d;
    for (var c = 0u; c < params.d; c = c + 1u) { out[qb + c] = out[qb + c] + p * val_f32(vb + c + params.voff, FV); }
  }
}

//#stage di
override FDO: u32 = 0u;
override FO: u32 = 0u;
@group(0) @binding(2) var<storage, read_write> di: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = row_index(wid, nwg, lid);
  if (row >= params.bh * params.t) { return; }
  let rb = row * params.d;
  var s: f32 = 0.0;
  for (var c = 0u; c < params.d; c = c + 1u) { s = s + dout_f32(rb + c + params.dooff, FDO) * o_f32(rb + c + params.ooff, FO); }
  di[row] = s;
}

//#stage dq
override FDO: u32 = 0u;
override FQ: u32 = 0u;
override FK: u32 = 0u;
override FV: u32 = 0u;
override FL: u32 = 0u;
override FM: u32 = 0u;
@group(0) @binding(7) var<storage, read_write> dq: array<f32>;

fn allowed(b: u32, s: u32) -> bool { return params.has_mask == 0u || m_f32(b * params.t + s + params.moff, FM) != 0.0; }

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = row_index(wid, nwg, lid);
  if (row >= params.bh * params.t) { return; }
  let r = row / params.t;
  let i = row % params.t;
  let b = r / params.heads;
  let base = r * params.t * params.d;
  let qb = base + i * params.d;
  for (var c = 0u; c < params.d; c = c + 1u) { dq[qb + c] = 0.0; }
  let ls = l_f32(row + params.loff, FL);
  if (ls == neg_inf()) { return; }
  let dd = di_f32(row, 0u);
  for (var s = 0u; s <= i; s = s + 1u) {
    if (!allowed(b, s)) { continue; }
    let kb = base + s * params.d;
    var sc: f32 = 0.0;
    var dp: f32 = 0.0;
    for (var c = 0u; c < params.d; c = c + 1u) { sc = sc + q_f32(qb + c + params.qoff, FQ) * k_f32(kb + c + params.koff, FK); }
    for (var c = 0u; c < params.d; c = c + 1u) { dp = dp + dout_f32(qb + c + params.dooff, FDO) * val_f32(kb + c + params.voff, FV); }
    let p = exp(sc * params.scale - ls);
    let ds = p * (dp - dd) * params.scale;
    for (var c = 0u; c < params.d; c = c + 1u) { dq[qb + c] = dq[qb + c] + ds * k_f32(kb + c + params.koff, FK); }
  }
}

//#stage dk
override FDO: u32 = 0u;
override FQ: u32 = 0u;
override FK: u32 = 0u;
override FV: u32 = 0u;
override FL: u32 = 0u;
override FM: u32 = 0u;
@group(0) @binding(7) var<storage, read_write> dk: array<f32>;

fn allowed(b: u32, s: u32) -> bool { return params.has_mask == 0u || m_f32(b * params.t + s + params.moff, FM) != 0.0; }

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = row_index(wid, nwg, lid);
  if (row >= params.bh * params.t) { return; }
  let r = row / params.t;
  let s = row % params.t;
  let b = r / params.heads;
  let base = r * params.t * params.d;
  let kb = base + s * params.d;
  for (var c = 0u; c < params.d; c = c + 1u) { dk[kb + c] = 0.0; }
  if (!allowed(b, s)) { return; }
  for (var i = s; i < params.t; i = i + 1u) {
    let ls = l_f32(r * params.t + i + params.loff, FL);
    if (ls == neg_inf()) { continue; }
    let qb = base + i * params.d;
    var sc: f32 = 0.0;
    var dp: f32 = 0.0;
    for (var c = 0u; c < params.d; c = c + 1u) { sc = sc + q_f32(qb + c + params.qoff, FQ) * k_f32(kb + c + params.koff, FK); }
    for (var c = 0u; c < params.d; c = c + 1u) { dp = dp + dout_f32(qb + c + params.dooff, FDO) * val_f32(kb + c + params.voff, FV); }
    let p = exp(sc * params.scale - ls);
    let ds = p * (dp - di_f32(r * params.t + i, 0u)) * params.scale;
    for (var c = 0u; c < params.d; c = c + 1u) { dk[kb + c] = dk[kb + c] + ds * q_f32(qb + c + params.qoff, FQ); }
  }
}

//#stage dv
override FDO: u32 = 0u;
override FQ: u32 = 0u;
override FK: u32 = 0u;
override FL: u32 = 0u;
override FM: u32 = 0u;
@group(0) @binding(5) var<storage, read_write> dv: array<f32>;

fn allowed(b: u32, s: u32) -> bool { return params.has_mask == 0u || m_f32(b * params.t + s + params.moff, FM) != 0.0; }

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = row_index(wid, nwg, lid);
  if (row >= params.bh * params.t) { return; }
  let r = row / params.t;
  let s = row % params.t;
  let b = r / params.heads;
  let base = r * params.t * params.d;
  let kb = base + s * params.d;
  for (var c = 0u; c < params.d; c = c + 1u) { dv[kb + c] = 0.0; }
  if (!allowed(b, s)) { return; }
  for (var i = s; i < params.t; i = i + 1u) {
    let ls = l_f32(r * params.t + i + params.loff, FL);
    if (ls == neg_inf()) { continue; }
    let qb = base + i * params.d;
    var sc: f32 = 0.0;
    for (var c = 0u; c < params.d; c = c + 1u) { sc = sc + q_f32(qb + c + params.qoff, FQ) * k_f32(kb + c + params.koff, FK); }
    let p = exp(sc * params.scale - ls);
    for (var c = 0u; c < params.d; c = c + 1u) { dv[kb + c] = dv[kb + c] + p * dout_f32(qb + c + params.dooff, FDO); }
  }
}
