// RMSNorm and LayerNorm, forward and backward: the WGSL twins of assembly/kernels/nn.ts. One file,
// several stages: src/backend/webgpu/norms.ts compiles the common part below plus one
// `//#stage NAME` section (with the accessors it needs) as `main`. Row kernels run one workgroup
// per row (256 threads, tree reductions); weight/bias gradients one invocation per column,
// summing rows in order (deterministic) and adding into the float32 accumulator.

struct Params {
  rows: u32, cols: u32, eps: f32, xoff: u32,
  woff: u32, boff: u32, dyoff: u32, moff: u32,
  roff: u32, dwoff: u32, dboff: u32, pad: u32,
}
@group(0) @binding(15) var<uniform> params: Params;

//#stage rms_fwd
override FX: u32 = 0u;
override FW: u32 = 0u;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= params.rows) { return; } // uniform per workgroup
  let base = row * params.cols;
  var s: f32 = 0.0;
  for (var c = lid; c < params.cols; c = c + 256u) {
    let v = x_f32(base + c + params.xoff, FX);
    s = s + v * v;
  }
  s = wg_sum(s, lid);
  let rs = 1.0 / sqrt(s / f32(params.cols) + params.eps);
  if (lid == 0u) { rstd[row + params.roff] = rs; }
  for (var c = lid; c < params.cols; c = c + 256u) {
    out[base + c] = x_f32(base + c + params.xoff, FX) * rs * w_f32(c + params.woff, FW);
  }
}

//#stage rms_bwd_dx
override FDY: u32 = 0u;
override FX: u32 = 0u;
override FW: u32 = 0u;
override FR: u32 = 0u;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= params.rows) { return; }
  let base = row * params.cols;
  let rs = rstd_f32(row + params.roff, FR);
  var s: f32 = 0.0;
  for (var c = lid; c < params.cols; c = c + 256u) {
    s = s + dy_f32(base + c + params.dyoff, FDY) * w_f32(c + params.woff, FW) * x_f32(base + c + params.xoff, FX);
  }
  s = wg_sum(s, lid);
  let k = rs * rs * rs * (s / f32(params.cols));
  for (var c = lid; c < params.cols; c = c + 256u) {
    let g = dy_f32(base + c + params.dyoff, FDY) * w_f32(c + params.woff, FW);
    dx[base + c] = rs * g - x_f32(base + c + params.xoff, FX) * k;
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
    s = s + dy_f32(i + params.dyoff, FDY) * x_f32(i + params.xoff, FX) * rstd_f32(r + params.roff, FR);
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

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= params.rows) { return; }
  let base = row * params.cols;
  let n = f32(params.cols);
  var s: f32 = 0.0;
  for (var c = lid; c < params.cols; c = c + 256u) { s = s + x_f32(base + c + params.xoff, FX); }
  let mu = wg_sum(s, lid) / n;
  var v: f32 = 0.0;
  for (var c = lid; c < params.cols; c = c + 256u) {
    let d = x_f32(base + c + params.xoff, FX) - mu;
    v = v + d * d;
  }
  let rs = 1.0 / sqrt(wg_sum(v, lid) / n + params.eps);
  if (lid == 0u) {
    mean[row + params.moff] = mu;
    rstd[row + params.roff] = rs;
  }
  for (var c = lid; c < params.cols; c = c + 256u) {
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

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= params.rows) { return; }
  let base = row * params.cols;
  let n = f32(params.cols);
  let mu = mean_f32(row + params.moff, FM);
  let rs = rstd_f32(row + params.roff, FR);
  var sg: f32 = 0.0;
  var sgx: f32 = 0.0;
  for (var c = lid; c < params.cols; c = c + 256u) {
    let g = dy_f32(base + c + params.dyoff, FDY) * w_f32(c + params.woff, FW);
    let xh = (x_f32(base + c + params.xoff, FX) - mu) * rs;
    sg = sg + g;
    sgx = sgx + g * xh;
  }
  let mg = wg_sum(sg, lid) / n;
  let mgx = wg_sum(sgx, lid) / n;
  for (var c = lid; c < params.cols; c = c + 256u) {
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
