// Workgroup-wide reductions (prepended to kernels that need them). Callers must be in uniform
// control flow (every invocation of the workgroup calls, none has returned).
//
// wg_sum / wg_max / wg_reduce: over all 256 invocations of a 256-wide workgroup.
//
// grp_sum / grp_max / grp_reduce4: over aligned groups of n invocations (n a power of two, 1..64,
// uniform) of a workgroup of at most 64: invocations [k n, (k + 1) n) reduce together and all get
// the result. Row kernels run 64 / n rows per workgroup, n invocations a row, so that a software
// adapter can run one invocation per row (n = 1: no barrier at all; on SwiftShader a barrier costs
// every invocation about as much as a hundred loop iterations) and a GPU a few rows per workgroup.
// The sum order is fixed by n (deterministic).

var<workgroup> red: array<f32, 256>;

fn wg_reduce(v: f32, lid: u32, is_max: bool) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      if (is_max) { red[lid] = max(red[lid], red[lid + s]); } else { red[lid] = red[lid] + red[lid + s]; }
    }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

fn wg_sum(v: f32, lid: u32) -> f32 { return wg_reduce(v, lid, false); }
fn wg_max(v: f32, lid: u32) -> f32 { return wg_reduce(v, lid, true); }

var<workgroup> grp: array<vec4<f32>, 64>;

fn grp_reduce4(v: vec4<f32>, lid: u32, n: u32, is_max: bool) -> vec4<f32> {
  if (n <= 1u) { return v; }
  grp[lid] = v;
  workgroupBarrier();
  for (var s = n >> 1u; s > 0u; s = s >> 1u) {
    if ((lid & (n - 1u)) < s) {
      if (is_max) { grp[lid] = max(grp[lid], grp[lid + s]); } else { grp[lid] = grp[lid] + grp[lid + s]; }
    }
    workgroupBarrier();
  }
  let r = grp[lid & ~(n - 1u)];
  workgroupBarrier();
  return r;
}

fn grp_sum(v: f32, lid: u32, n: u32) -> f32 { return grp_reduce4(vec4<f32>(v, 0.0, 0.0, 0.0), lid, n, false).x; }
fn grp_max(v: f32, lid: u32, n: u32) -> f32 { return grp_reduce4(vec4<f32>(v, 0.0, 0.0, 0.0), lid, n, true).x; }
fn grp_sum2(v: vec2<f32>, lid: u32, n: u32) -> vec2<f32> { return grp_reduce4(vec4<f32>(v, 0.0, 0.0), lid, n, false).xy; }
