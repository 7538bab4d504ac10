// Mean cross-entropy with ignore_index: the WGSL twin of crossEntropyF32 in
// assembly/kernels/nn.ts. Stages (see src/backend/webgpu/loss.ts), sharing a float32 scratch of
// 4 * rows + 1 words: [row loss | row log(sum of exp(x - max)) | row counted (1/0) | count | row max].
//   ce_rows:  RT invocations per row (64 / RT rows a workgroup; RT from rowThreads() in
//             src/backend/webgpu/stages.ts, 1 on software adapters: no barrier): max, sum of exp,
//             its log, row loss log(sum) - (x[t] - max) (PyTorch's log_softmax: exact for rows with
//             a large offset; 0 when ignored, NaN for a target outside [0, cols) that is not
//             ignored).
//   ce_total: one workgroup of 64: loss = sum / count (NaN when count is 0, as PyTorch); count saved.
//   ce_grad:  one invocation per logit: (softmax - onehot) * gradScale / count, 0 on ignored rows.

struct Params { rows: u32, cols: u32, xoff: u32, toff: u32, ignore: i32, scale: f32, pad0: u32, pad1: u32 }
@group(0) @binding(15) var<uniform> params: Params;

override RT: u32 = 1u; // ce_rows: invocations per row, a power of two, 1..64

fn nan_f32() -> f32 { return bitcast<f32>(0x7fc00000u | (params.rows & 0u)); }

//#stage ce_rows
override FX: u32 = 0u;
@group(0) @binding(2) var<storage, read_write> scratch: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = (wid.y * nwg.x + wid.x) * (64u / RT) + lid / RT;
  let lane = lid & (RT - 1u);
  let live = row < params.rows; // no early return before the (uniform) reductions
  let base = row * params.cols + params.xoff;
  var m: f32 = bitcast<f32>(0xff800000u | (params.cols & 0u)); // -inf
  if (live) { for (var c = lane; c < params.cols; c = c + RT) { m = max(m, x_f32(base + c, FX)); } }
  m = grp_max(m, lid, RT);
  var s: f32 = 0.0;
  if (live) { for (var c = lane; c < params.cols; c = c + RT) { s = s + exp(x_f32(base + c, FX) - m); } }
  s = grp_sum(s, lid, RT);
  if (live && lane == 0u) {
    let ls = log(s);
    let t = bitcast<i32>(tg_code(row + params.toff, 9u));
    var rl: f32 = 0.0;
    var counted: f32 = 0.0;
    if (t != params.ignore) {
      counted = 1.0;
      if (t >= 0 && t < i32(params.cols)) { rl = ls - (x_f32(base + u32(t), FX) - m); } else { rl = nan_f32(); }
    }
    scratch[row] = rl;
    scratch[params.rows + row] = ls;
    scratch[2u * params.rows + row] = counted;
    scratch[3u * params.rows + 1u + row] = m;
  }
}

//#stage ce_total
@group(0) @binding(0) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(1) var<storage, read_write> loss: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32) {
  var s: f32 = 0.0;
  var k: f32 = 0.0;
  for (var r = lid; r < params.rows; r = r + 64u) {
    s = s + scratch[r];
    k = k + scratch[2u * params.rows + r];
  }
  let sk = grp_sum2(vec2<f32>(s, k), lid, 64u);
  s = sk.x;
  k = sk.y;
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
    var p = exp((x_f32(i + params.xoff, FX) - scratch[3u * params.rows + 1u + row]) - scratch[params.rows + row]);
    let t = bitcast<i32>(tg_code(row + params.toff, 9u));
    if (i32(c) == t) { p = p - 1.0; }
    v = p * (params.scale / k);
  }
  dl[i] = v;
}
