// Embedding lookup and its deterministic scatter-add backward: the WGSL twins of embeddingF32 /
// embeddingBackwardF32 in assembly/kernels/nn.ts. Stages (see src/backend/webgpu/embedding.ts):
//   emb_fwd:   one invocation per output element; ids outside [0, rows) give 0.
//   emb_links: one invocation per position i: links[i] = the next position with the same id (or
//              0xffffffff), links[n + i] = 1 when i is the first position of an in-range id.
//   emb_bwd:   one invocation per (first position, column): walks that id's chain in order of
//              position and adds into dtable once, so the sum order matches the wasm kernel and
//              no float atomics are needed.

struct Params { n: u32, cols: u32, rows: u32, idoff: u32, toff: u32, dyoff: u32, pad0: u32, pad1: u32 }
@group(0) @binding(15) var<uniform> params: Params;

fn id_at(i: u32) -> i32 { return bitcast<i32>(ids_code(i + params.idoff, 9u)); }

//#stage emb_fwd
override FT: u32 = 0u;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + lid;
  if (i >= params.n * params.cols) { return; }
  let r = i / params.cols;
  let c = i - r * params.cols;
  let id = id_at(r);
  var v: f32 = 0.0;
  if (id >= 0 && id < i32(params.rows)) { v = table_f32(u32(id) * params.cols + c + params.toff, FT); }
  out[i] = v;
}

//#stage emb_links
@group(0) @binding(1) var<storage, read_write> links: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + lid;
  if (i >= params.n) { return; }
  let id = id_at(i);
  var head = 1u;
  if (id < 0 || id >= i32(params.rows)) { head = 0u; }
  for (var j = 0u; j < i; j = j + 1u) {
    if (id_at(j) == id) { head = 0u; break; }
  }
  var next = 0xffffffffu;
  for (var j = i + 1u; j < params.n; j = j + 1u) {
    if (id_at(j) == id) { next = j; break; }
  }
  links[i] = next;
  links[params.n + i] = head;
}

//#stage emb_bwd
override FDY: u32 = 0u;
@group(0) @binding(2) var<storage, read> links: array<u32>;
@group(0) @binding(3) var<storage, read_write> dtable: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let k = (wid.y * nwg.x + wid.x) * 256u + lid;
  if (k >= params.n * params.cols) { return; }
  let i = k / params.cols;
  let c = k - i * params.cols;
  if (links[params.n + i] == 0u) { return; }
  let t = u32(id_at(i)) * params.cols + c + params.toff;
  var acc = dtable[t];
  var j = i;
  loop {
    acc = acc + dy_f32(j * params.cols + c + params.dyoff, FDY);
    j = links[j];
    if (j == 0xffffffffu) { break; }
  }
  dtable[t] = acc;
}
