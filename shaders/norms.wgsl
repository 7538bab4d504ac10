// RMSNorm and LayerNorm, forward and backward: the WGSL twins of assembly/kernels/nn.ts. One file,
// several stages: src/backend/webgpu/norms.ts compiles the common part below plus one
// `//#stage NAME` section (with the accessors it needs) as `main`. Row kernels run workgroups of
// 64 invocations, RT invocations a row (64 / RT rows a workgroup; RT from rowThreads() in
// src/backend/webgpu/stages.ts: 1 on software adapters, so no barrier), each summing a strided
// part of the row in order, then grp_sum over the row's RT invocations. Weight/bias gradients:
// one invocation per column, summing rows in order (deterministic) and adding into the float32
// accumulator.

struct Params {
  rows: u32, cols: u32, eps: f32, xoff: u32,
  woff: u32, boff: u32, dyoff: u32, moff: u32,
  roff: u32, dwoff: u32, dboff: u32, pad: u32,
}
@group(0) @binding(15) var<uniform> params: Params;

override RT: u32 = 1u; // invocations per row: a power of two, 1..64

fn row_of(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 { return (wid.y * nwg.x + wid.x) * (64u / RT) + lid / RT; }

// The LayerNorm row mean, or NaN where the row's moments overflow: its magnitudes sum past the
// float32 range (inf and NaN included) or |mean| >= 2^64 (twin of layerNormMean in nn.ts). The NaN
// is built at run time (WGSL rejects NaN constants).
fn ln_mean(mu: f32, sum_abs: f32) -> f32 {
  let ok = sum_abs <= 0x1.fffffep+127f && abs(mu) < 18446744073709551616.0;
  return select(bitcast<f32>(0x7fc00000u | (params.pad & 0u)), mu, ok);
}

//#stage rms_fwd
override FX: u32 = 0u;
override FW: u32 = 0u;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = row_of(wid, nwg, lid);
  let lane = lid & (RT - 1u);
  let live = row < params.rows; // no early return before the (uniform) reduction
  let base = row * params.cols;
  var s: f32 = 0.0;
  if (live) {
    for (var c = lane; c < params.cols; c = c + RT) {
      let v = x_f32(base + c + params.xoff, FX);
      s = s + v * v;
    }
  }
  s = grp_sum(s, lid, RT);
  if (!live) { return; }
  let rs = 1.0 / sqrt(s / f32(params.cols) + params.eps);
  if (lane == 0u) { rstd[row + params.roff] = rs; }
  for (var c = lane; c < params.cols; c = c + RT) {
    out[base + c] = x_f32(base + c + params.xoff, FX) * rs * w_f32(c + params.woff, FW);
  }
}

//#stage rms_bwd_dx
override FDY: u32 = 0u;
override FX: u32 = 0u;
override FW: u32 = 0u;
override FR: u32 = 0u;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = row_of(wid, nwg, lid);
  let lane = lid & (RT - 1u);
  let live = row < params.rows;
  let base = row * params.cols;
  var s: f32 = 0.0;
  if (live) {
    for (var c = lane; c < params.cols; c = c + RT) {
      s = s + dy_f32(base + c + params.dyoff, FDY) * w_f32(c + params.woff, FW) * x_f32(base + c + params.xoff, FX);
    }
  }
  s = grp_sum(s, lid, RT);
  if (!live) { return; }
  let rs = rstd_f32(row + params.roff, FR);
  let k = rs * rs * rs * (s / f32(params.cols)) * 0.5; // x * k as (2 x) (k / 2), as nn.ts
  for (var c = lane; c < params.cols; c = c + RT) {
    let g = dy_f32(base + c + params.dyoff, FDY) * w_f32(c + params.woff, FW);
    dx[base + c] = rs * g - (x_f32(base + c + params.xoff, FX) * 2.0) * k;
  }
}

//#stage rms_bwd_dw
override FDY: u32 = 0u;
override FX: u32 = 0u;
override FR: u32 = 0u;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let c = (wid.y * nwg.x + wid.x) * 256u + lid;
  if (c >= params.cols) { return; }
  var s: f32 = 0.0;
  for (var r = 0u; r < params.rows; r = r + 1u) {
    let i = r * params.cols + c;
    s = s + dy_f32(i + params.dyoff, FDY) * (x_f32(i + params.xoff, FX) * rstd_f32(r + params.roff, FR)); // as nn.ts
  }
  dw[c + params.dwoff] = dw[c + params.dwoff] + s;
}

//#stage ln_fwd
override FX: u32 = 0u;
override FW: u32 = 0u;
override FB: u32 = 0u;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> rstd: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = row_of(wid, nwg, lid);
  let lane = lid & (RT - 1u);
  let live = row < params.rows;
  let base = row * params.cols;
  let n = f32(params.cols);
  var s = vec2<f32>(0.0, 0.0); // the sum and the sum of magnitudes
  if (live) {
    for (var c = lane; c < params.cols; c = c + RT) {
      let v = x_f32(base + c + params.xoff, FX);
      s = s + vec2<f32>(v, abs(v));
    }
  }
  let sums = grp_sum2(s, lid, RT);
  let mu = ln_mean(sums.x / n, sums.y);
  var v: f32 = 0.0;
  if (live) {
    for (var c = lane; c < params.cols; c = c + RT) {
      let d = x_f32(base + c + params.xoff, FX) - mu;
      v = v + d * d;
    }
  }
  let rs = 1.0 / sqrt(grp_sum(v, lid, RT) / n + params.eps);
  if (!live) { return; }
  if (lane == 0u) {
    mean[row + params.moff] = mu;
    rstd[row + params.roff] = rs;
  }
  for (var c = lane; c < params.cols; c = c + RT) {
    out[base + c] = (x_f32(base + c + params.xoff, FX) - mu) * rs * w_f32(c + params.woff, FW) + b_f32(c + params.boff, FB);
  }
}

//#stage ln_bwd_dx
override FDY: u32 = 0u;
override FX: u32 = 0u;
override FW: u32 = 0u;
override FM: u32 = 0u;
override FR: u32 = 0u;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = row_of(wid, nwg, lid);
  let lane = lid & (RT - 1u);
  let live = row < params.rows;
  let base = row * params.cols;
  let n = f32(params.cols);
  var mu: f32 = 0.0;
  var rs: f32 = 0.0;
  var sg: f32 = 0.0;
  var sgx: f32 = 0.0;
  if (live) {
    mu = mean_f32(row + params.moff, FM);
    rs = rstd_f32(row + params.roff, FR);
    for (var c = lane; c < params.cols; c = c + RT) {
      let g = dy_f32(base + c + params.dyoff, FDY) * w_f32(c + params.woff, FW);
      let xh = (x_f32(base + c + params.xoff, FX) - mu) * rs;
      sg = sg + g;
      sgx = sgx + g * xh;
    }
  }
  let sums = grp_sum2(vec2<f32>(sg, sgx), lid, RT);
  if (!live) { return; }
  let mg = sums.x / n;
  let mgx = sums.y / n;
  for (var c = lane; c < params.cols; c = c + RT) {
    let g = dy_f32(base + c + params.dyoff, FDY) * w_f32(c + params.woff, FW);
    let xh = (x_f32(base + c + params.xoff, FX) - mu) * rs;
    dx[base + c] = rs * (g - mg - xh * mgx);
  }
}

//#stage ln_bwd_dwb
override FDY: u32 = 0u;
override FX: u32 = 0u;
override FM: u32 = 0u;
override FR: u32 = 0u;
@group(0) @binding(4) var<storage, read_write> dw: array<f32>;
@group(0) @binding(5) var<storage, read_write> db: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let c = (wid.y * nwg.x + wid.x) * 256u + lid;
  if (c >= params.cols) { return; }
  var sw: f32 = 0.0;
  var sb: f32 = 0.0;
  for (var r = 0u; r < params.rows; r = r + 1u) {
    let i = r * params.cols + c;
    let d = dy_f32(i + params.dyoff, FDY);
    sw = sw + d * ((x_f32(i + params.xoff, FX) - mean_f32(r + params.moff, FM)) * rstd_f32(r + params.roff, FR));
    sb = sb + d;
  }
  dw[c + params.dwoff] = dw[c + params.dwoff] + sw;
  db[c + params.dboff] = db[c + params.dboff] + sb;
}
