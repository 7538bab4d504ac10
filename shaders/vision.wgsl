// The vision kernels (NCHW), forward and backward: the WGSL twins of assembly/kernels/vision.ts.
// One file, several stages (src/backend/webgpu/vision.ts compiles the common part plus one
// `//#stage NAME` section as `main`). Every stage is one invocation per output element (or per
// channel for the batch-norm sums) that loops over what it sums, in a fixed order: deterministic,
// no atomics, no temporaries. The convolution is direct (no im2col buffer):
//   conv_fwd:   y[n, o, oy, ox] = sum over (c in o's group, i, j) of x * w
//   conv_bwd_x: dx[n, c, y, x] = sum over (o in c's group, i, j) with (y + ph - i dh) / sh an output row ...
//   conv_bwd_w: dw[o, c, i, j] += sum over (n, oy, ox) of dy * x        (float32 accumulator)
//   bn_stats:   per channel, mean and biased variance (two passes, in the wasm kernel's order)
//   bn_fwd:     y = (x - mean) rstd w + b
//   bn_sums:    per channel: db += sum dy, dw += sum dy xhat, and both sums into a scratch for bn_dx
//   bn_dx:      dx = w rstd (dy - [training] (sum dy + xhat sum dy xhat) / M)
//   mp_fwd:     max over the window, int32 index h * W + w (a NaN wins: the window's last NaN)
//   mp_bwd:     dx[p, i] = sum of dy[p, o] over the outputs o whose index is i, o ascending
//   aap_fwd / aap_bwd: adaptive average pooling over PyTorch's windows.

struct Params {
  n: u32, c: u32, h: u32, w: u32,
  o: u32, kh: u32, kw: u32, oh: u32,
  ow: u32, sh: u32, sw: u32, ph: u32,
  pw: u32, dh: u32, dw: u32, groups: u32,
  off0: u32, off1: u32, off2: u32, off3: u32,
  off4: u32, total: u32, training: u32, pad: u32,
}
@group(0) @binding(15) var<uniform> params: Params;

fn gid(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 { return (wid.y * nwg.x + wid.x) * 256u + lid; }

// input row / column of output row oy at tap i (may be outside [0, h))
fn in_y(oy: u32, i: u32) -> i32 { return i32(oy * params.sh) - i32(params.ph) + i32(i * params.dh); }
fn in_x(ox: u32, j: u32) -> i32 { return i32(ox * params.sw) - i32(params.pw) + i32(j * params.dw); }

fn win_start(i: u32, n_in: u32, n_out: u32) -> u32 { return (i * n_in) / n_out; }
fn win_end(i: u32, n_in: u32, n_out: u32) -> u32 { return ((i + 1u) * n_in + n_out - 1u) / n_out; }

//#stage conv_fwd
// x [N, C, H, W] (off0), wt [O, C/G, KH, KW] (off1) -> out [N, O, OH, OW]
override FX: u32 = 0u;
override FW: u32 = 0u;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let idx = gid(wid, nwg, lid);
  if (idx >= params.total) { return; }
  let ox = idx % params.ow;
  let oy = (idx / params.ow) % params.oh;
  let o = (idx / (params.ow * params.oh)) % params.o;
  let n = idx / (params.ow * params.oh * params.o);
  let cg = params.c / params.groups;
  let og = params.o / params.groups;
  let c0 = (o / og) * cg;
  var s: f32 = 0.0;
  for (var ci = 0u; ci < cg; ci = ci + 1u) {
    for (var i = 0u; i < params.kh; i = i + 1u) {
      let iy = in_y(oy, i);
      if (iy < 0 || iy >= i32(params.h)) { continue; }
      for (var j = 0u; j < params.kw; j = j + 1u) {
        let ix = in_x(ox, j);
        if (ix < 0 || ix >= i32(params.w)) { continue; }
        let xv = x_f32(((n * params.c + c0 + ci) * params.h + u32(iy)) * params.w + u32(ix) + params.off0, FX);
        let wv = wt_f32(((o * cg + ci) * params.kh + i) * params.kw + j + params.off1, FW);
        s = s + xv * wv;
      }
    }
  }
  out[idx] = s;
}

//#stage conv_bwd_x
// dy [N, O, OH, OW] (off0), wt (off1) -> dx [N, C, H, W]
override FDY: u32 = 0u;
override FW: u32 = 0u;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let idx = gid(wid, nwg, lid);
  if (idx >= params.total) { return; }
  let x = idx % params.w;
  let y = (idx / params.w) % params.h;
  let c = (idx / (params.w * params.h)) % params.c;
  let n = idx / (params.w * params.h * params.c);
  let cg = params.c / params.groups;
  let og = params.o / params.groups;
  let grp = c / cg;
  let cl = c - grp * cg;
  var s: f32 = 0.0;
  for (var oi = 0u; oi < og; oi = oi + 1u) {
    let o = grp * og + oi;
    for (var i = 0u; i < params.kh; i = i + 1u) {
      let ty = i32(y) + i32(params.ph) - i32(i * params.dh);
      if (ty < 0 || ty % i32(params.sh) != 0) { continue; }
      let oy = u32(ty) / params.sh;
      if (oy >= params.oh) { continue; }
      for (var j = 0u; j < params.kw; j = j + 1u) {
        let tx = i32(x) + i32(params.pw) - i32(j * params.dw);
        if (tx < 0 || tx % i32(params.sw) != 0) { continue; }
        let ox = u32(tx) / params.sw;
        if (ox >= params.ow) { continue; }
        let g = dy_f32(((n * params.o + o) * params.oh + oy) * params.ow + ox + params.off0, FDY);
        s = s + g * wt_f32(((o * cg + cl) * params.kh + i) * params.kw + j + params.off1, FW);
      }
    }
  }
  dx[idx] = s;
}

//#stage conv_bwd_w
// dy (off0), x (off1) -> dw [O, C/G, KH, KW] (float32, accumulated; off2)
override FDY: u32 = 0u;
override FX: u32 = 0u;
@group(0) @binding(2) var<storage, read_write> dwt: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let idx = gid(wid, nwg, lid);
  if (idx >= params.total) { return; }
  let j = idx % params.kw;
  let i = (idx / params.kw) % params.kh;
  let cg = params.c / params.groups;
  let cl = (idx / (params.kw * params.kh)) % cg;
  let o = idx / (params.kw * params.kh * cg);
  let og = params.o / params.groups;
  let c = (o / og) * cg + cl;
  var s: f32 = 0.0;
  for (var n = 0u; n < params.n; n = n + 1u) {
    for (var oy = 0u; oy < params.oh; oy = oy + 1u) {
      let iy = in_y(oy, i);
      if (iy < 0 || iy >= i32(params.h)) { continue; }
      for (var ox = 0u; ox < params.ow; ox = ox + 1u) {
        let ix = in_x(ox, j);
        if (ix < 0 || ix >= i32(params.w)) { continue; }
        let g = dy_f32(((n * params.o + o) * params.oh + oy) * params.ow + ox + params.off0, FDY);
        s = s + g * x_f32(((n * params.c + c) * params.h + u32(iy)) * params.w + u32(ix) + params.off1, FX);
      }
    }
  }
  dwt[idx + params.off2] = dwt[idx + params.off2] + s;
}

//#stage bn_stats
// x [N, C, S] (S = h, off0) -> mean (off1), variance (off2): one invocation per channel
override FX: u32 = 0u;
@group(0) @binding(1) var<storage, read_write> mean: array<f32>;
@group(0) @binding(2) var<storage, read_write> variance: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let ci = gid(wid, nwg, lid);
  if (ci >= params.c) { return; }
  let s = params.h;
  let count = f32(params.n * s);
  var sum: f32 = 0.0;
  for (var b = 0u; b < params.n; b = b + 1u) {
    let base = (b * params.c + ci) * s + params.off0;
    for (var k = 0u; k < s; k = k + 1u) { sum = sum + x_f32(base + k, FX); }
  }
  let mu = sum / count;
  var sq: f32 = 0.0;
  for (var b = 0u; b < params.n; b = b + 1u) {
    let base = (b * params.c + ci) * s + params.off0;
    for (var k = 0u; k < s; k = k + 1u) {
      let d = x_f32(base + k, FX) - mu;
      sq = sq + d * d;
    }
  }
  mean[ci + params.off1] = mu;
  variance[ci + params.off2] = sq / count;
}

//#stage bn_fwd
// x (off0), mean (off1), rstd (off2), wt (off3), bias (off4) -> out
override FX: u32 = 0u;
override FM: u32 = 0u;
override FR: u32 = 0u;
override FW: u32 = 0u;
override FB: u32 = 0u;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let idx = gid(wid, nwg, lid);
  if (idx >= params.total) { return; }
  let ci = (idx / params.h) % params.c;
  let sc = rstd_f32(ci + params.off2, FR) * wt_f32(ci + params.off3, FW);
  out[idx] = (x_f32(idx + params.off0, FX) - mean_f32(ci + params.off1, FM)) * sc + bias_f32(ci + params.off4, FB);
}

//#stage bn_sums
// dy (off0), x (off1), mean, rstd (channel offsets off2, off3) -> dwt += sum dy xhat, db += sum dy (float32; dwt/db offset off4, pad),
// sums [2C] = (sum dy, sum dy xhat)
override FDY: u32 = 0u;
override FX: u32 = 0u;
override FM: u32 = 0u;
override FR: u32 = 0u;
@group(0) @binding(4) var<storage, read_write> dwt: array<f32>;
@group(0) @binding(5) var<storage, read_write> db: array<f32>;
@group(0) @binding(6) var<storage, read_write> sums: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let ci = gid(wid, nwg, lid);
  if (ci >= params.c) { return; }
  let s = params.h;
  let mu = mean_f32(ci + params.off2, FM);
  let rs = rstd_f32(ci + params.off3, FR);
  var sg: f32 = 0.0;
  var sgx: f32 = 0.0;
  for (var b = 0u; b < params.n; b = b + 1u) {
    let base = (b * params.c + ci) * s;
    for (var k = 0u; k < s; k = k + 1u) {
      let g = dy_f32(base + k + params.off0, FDY);
      sg = sg + g;
      sgx = sgx + g * ((x_f32(base + k + params.off1, FX) - mu) * rs);
    }
  }
  db[ci + params.pad] = db[ci + params.pad] + sg;
  dwt[ci + params.off4] = dwt[ci + params.off4] + sgx;
  sums[ci] = sg;
  sums[params.c + ci] = sgx;
}

//#stage bn_dx
// dy (off0), x (off1), mean (off2), rstd (off3), wt (off4), sums -> dx
override FDY: u32 = 0u;
override FX: u32 = 0u;
override FM: u32 = 0u;
override FR: u32 = 0u;
override FW: u32 = 0u;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let idx = gid(wid, nwg, lid);
  if (idx >= params.total) { return; }
  let ci = (idx / params.h) % params.c;
  let count = f32(params.n * params.h);
  let rs = rstd_f32(ci + params.off3, FR);
  let k0 = wt_f32(ci + params.off4, FW) * rs;
  var mg: f32 = 0.0;
  var mgx: f32 = 0.0;
  if (params.training != 0u) {
    mg = sums_f32(ci, 0u) / count;
    mgx = sums_f32(params.c + ci, 0u) / count;
  }
  let g = dy_f32(idx + params.off0, FDY);
  let xh = (x_f32(idx + params.off1, FX) - mean_f32(ci + params.off2, FM)) * rs;
  dx[idx] = k0 * (g - mg - xh * mgx);
}

//#stage mp_fwd
// x [P, H, W] (off0) -> out [P, OH, OW], idx (int32 bits)
override FX: u32 = 0u;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> ind: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let idx = gid(wid, nwg, lid);
  if (idx >= params.total) { return; }
  let ox = idx % params.ow;
  let oy = (idx / params.ow) % params.oh;
  let p = idx / (params.ow * params.oh);
  var m: f32 = bitcast<f32>(0xff800000u | (params.total & 0u)); // -inf (a runtime value: a constant -inf does not compile)
  var mi: i32 = -1;
  for (var i = 0u; i < params.kh; i = i + 1u) {
    let iy = in_y(oy, i);
    if (iy < 0 || iy >= i32(params.h)) { continue; }
    for (var j = 0u; j < params.kw; j = j + 1u) {
      let ix = in_x(ox, j);
      if (ix < 0 || ix >= i32(params.w)) { continue; }
      let k = iy * i32(params.w) + ix;
      let v = x_f32(p * params.h * params.w + u32(k) + params.off0, FX);
      let nan = (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
      if (mi < 0 || v > m || nan) { m = v; mi = k; }
    }
  }
  out[idx] = m;
  ind[idx] = bitcast<u32>(mi);
}

//#stage mp_bwd
// dy [P, OH, OW] (off0), ind (off1) -> dx [P, H, W]; taps in decreasing order = outputs in increasing order
override FDY: u32 = 0u;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let idx = gid(wid, nwg, lid);
  if (idx >= params.total) { return; }
  let hw = params.h * params.w;
  let p = idx / hw;
  let k = i32(idx - p * hw);
  let y = idx % hw / params.w;
  let x = idx % params.w;
  var s: f32 = 0.0;
  for (var ii = 0u; ii < params.kh; ii = ii + 1u) {
    let i = params.kh - 1u - ii;
    let ty = i32(y) + i32(params.ph) - i32(i * params.dh);
    if (ty < 0 || ty % i32(params.sh) != 0) { continue; }
    let oy = u32(ty) / params.sh;
    if (oy >= params.oh) { continue; }
    for (var jj = 0u; jj < params.kw; jj = jj + 1u) {
      let j = params.kw - 1u - jj;
      let tx = i32(x) + i32(params.pw) - i32(j * params.dw);
      if (tx < 0 || tx % i32(params.sw) != 0) { continue; }
      let ox = u32(tx) / params.sw;
      if (ox >= params.ow) { continue; }
      let o = (p * params.oh + oy) * params.ow + ox;
      if (bitcast<i32>(ind_code(o + params.off1, 9u)) == k) { s = s + dy_f32(o + params.off0, FDY); }
    }
  }
  dx[idx] = s;
}

//#stage aap_fwd
override FX: u32 = 0u;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let idx = gid(wid, nwg, lid);
  if (idx >= params.total) { return; }
  let ox = idx % params.ow;
  let oy = (idx / params.ow) % params.oh;
  let p = idx / (params.ow * params.oh);
  let y0 = win_start(oy, params.h, params.oh);
  let y1 = win_end(oy, params.h, params.oh);
  let x0 = win_start(ox, params.w, params.ow);
  let x1 = win_end(ox, params.w, params.ow);
  var s: f32 = 0.0;
  for (var iy = y0; iy < y1; iy = iy + 1u) {
    for (var ix = x0; ix < x1; ix = ix + 1u) { s = s + x_f32((p * params.h + iy) * params.w + ix + params.off0, FX); }
  }
  out[idx] = s / f32((y1 - y0) * (x1 - x0));
}

//#stage aap_bwd
override FDY: u32 = 0u;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let idx = gid(wid, nwg, lid);
  if (idx >= params.total) { return; }
  let ix = idx % params.w;
  let iy = (idx / params.w) % params.h;
  let p = idx / (params.w * params.h);
  var s: f32 = 0.0;
  for (var y = 0u; y < params.oh; y = y + 1u) {
    let y0 = win_start(y, params.h, params.oh);
    let y1 = win_end(y, params.h, params.oh);
    if (iy < y0 || iy >= y1) { continue; }
    for (var x = 0u; x < params.ow; x = x + 1u) {
      let x0 = win_start(x, params.w, params.ow);
      let x1 = win_end(x, params.w, params.ow);
      if (ix < x0 || ix >= x1) { continue; }
      s = s + dy_f32((p * params.oh + y) * params.ow + x + params.off0, FDY) / f32((y1 - y0) * (x1 - x0));
    }
  }
  dx[idx] = s;
}
