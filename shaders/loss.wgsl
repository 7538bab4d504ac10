// Mean cross-entropy with ignore_index: the WGSL twin of crossEntropyF32 in
// assembly/kernels/nn.ts. Stages (see src/backend/webgpu/loss.ts), sharing a float32 scratch of
// 3 * rows + 1 words: [row loss | row logsumexp | row counted (1/0) | count].
//   ce_rows:  one workgroup per row: max, sum of exp, logsumexp, row loss (0 when ignored, NaN
//             for a target outside [0, cols) that is not ignored).
//   ce_total: one workgroup: loss = sum / count (NaN when count is 0, as PyTorch); count saved.
//   ce_grad:  one invocation per logit: (softmax - onehot) * gradScale / count, 0 on ignored rows.

struct Params { rows: u32, cols: u32, xoff: u32, toff: u32, ignore: i32, scale: f32, pad0: u32, pad1: u32 }
@group(0) @binding(15) var<uniform> params: Params;

fn nan_f32() -> f32 { return bitcast<f32>(0x7fc00000u | (params.rows & 0u)); }

//#stage ce_rows
override FX: u32 = 0u;
@group(0) @binding(2) var<storage, read_write> scratch: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= params.rows) { return; } // uniform per workgroup
  let base = row * params.cols + params.xoff;
  var m: f32 = bitcast<f32>(0xff800000u | (params.cols & 0u)); // -inf
  for (var c = lid; c < params.cols; c = c + 256u) { m = max(m, x_f32(base + c, FX)); }
  m = wg_reduce(m, lid, true);
  var s: f32 = 0.0;
  for (var c = lid; c < params.cols; c = c + 256u) { s = s + exp(x_f32(base + c, FX) - m); }
  s = wg_reduce(s, lid, false);
  if (lid == 0u) {
    let lse = log(s) + m;
    let t = bitcast<i32>(tg_code(row + params.toff, 9u));
    var rl: f32 = 0.0;
    var counted: f32 = 0.0;
    if (t != params.ignore) {
      counted = 1.0;
      if (t >= 0 && t < i32(params.cols)) { rl = lse - x_f32(base + u32(t), FX); } else { rl = nan_f32(); }
    }
    scratch[row] = rl;
    scratch[params.rows + row] = lse;
    scratch[2u * params.rows + row] = counted;
  }
}

//#stage ce_total
@group(0) @binding(0) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(1) var<storage, read_write> loss: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
  var s: f32 = 0.0;
  var k: f32 = 0.0;
  for (var r = lid; r < params.rows; r = r + 256u) {
    s = s + scratch[r];
    k = k + scratch[2u * params.rows + r];
  }
  s = wg_reduce(s, lid, false);
  k = wg_reduce(k, lid, false);
  if (lid == 0u) {
    if (k == 0.0) { loss[0] = nan_f32(); } else { loss[0] = s / k; }
    scratch[3u * params.rows] = k;
  }
}

//#stage ce_grad
override FX: u32 = 0u;
@group(0) @binding(2) var<storage, read> scratch: array<f32>;
@group(0) @binding(3) var<storage, read_write> dl: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + lid;
  if (i >= params.rows * params.cols) { return; }
  let row = i / params.cols;
  let c = i - row * params.cols;
  let k = scratch[3u * params.rows];
  var v: f32 = 0.0;
  if (scratch[2u * params.rows + row] != 0.0 && k != 0.0) {
    var p = exp(x_f32(i + params.xoff, FX) - scratch[params.rows + row]);
    let t = bitcast<i32>(tg_code(row + params.toff, 9u));
    if (i32(c) == t) { p = p - 1.0; }
    v = p * (params.scale / k);
  }
  dl[i] = v;
}
