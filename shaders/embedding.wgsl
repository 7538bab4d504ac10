// Embedding lookup and its deterministic scatter-add backward: the WGSL twins of embeddingF32 /
// embeddingBackwardF32 in assembly/kernels/nn.ts. Stages (see src/backend/webgpu/embedding.ts):
//   emb_fwd:   one invocation per output element; ids outside [0, rows) give 0.
//   emb_links: one workgroup walks the positions in order, 64 at a time (O(64 n) work, no O(n^2)
//              scan, no atomics): links[i] = the next position with the same id (or NONE),
//              links[n + i] = 1 when i is the first position of an in-range id.
//   emb_bwd:   one invocation per (first position, column): walks that id's chain in order of
//              position and adds into dtable once, so the sum order matches the wasm kernel and
//              no float atomics are needed.

struct Params { n: u32, cols: u32, rows: u32, idoff: u32, toff: u32, dyoff: u32, pad0: u32, pad1: u32 }
@group(0) @binding(15) var<uniform> params: Params;

const NONE: u32 = 0xffffffffu;

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
// One workgroup of 64 walks the ids in chunks of 64 positions, in order. Invocation lid takes
// position i = c0 + lid: the previous and next positions with its id inside the chunk come from
// the chunk's ids in workgroup memory; a previous one in an earlier chunk is last[id]
// (links[2n + id], the last position of id seen so far, NONE at first), whose links entry (NONE
// until then) is pointed at i. Work O(64 n + rows), n / 64 steps, no atomics. links[i] = the next
// position with the same id or NONE, links[n + i] = 1 when i is the first position of an
// in-range id.
@group(0) @binding(1) var<storage, read_write> links: array<u32>;
var<workgroup> chunk: array<i32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32) {
  for (var r = lid; r < params.rows; r = r + 64u) { links[2u * params.n + r] = NONE; }
  storageBarrier();
  for (var c0 = 0u; c0 < params.n; c0 = c0 + 64u) {
    let i = c0 + lid;
    var id: i32 = -1;
    if (i < params.n) {
      id = id_at(i);
      if (id >= i32(params.rows)) { id = -1; }
    }
    chunk[lid] = id;
    workgroupBarrier();
    var prev = NONE;
    var next = NONE;
    if (id >= 0) {
      for (var j = lid; j > 0u; j = j - 1u) {
        if (chunk[j - 1u] == id) { prev = c0 + j - 1u; break; }
      }
      for (var j = lid + 1u; j < 64u; j = j + 1u) {
        if (chunk[j] == id) { next = c0 + j; break; }
      }
      if (prev == NONE) { prev = links[2u * params.n + u32(id)]; } // from an earlier chunk, or NONE
    }
    storageBarrier(); // every read of last[] for this chunk before any update
    if (i < params.n) {
      links[i] = next; // NONE here may be pointed on by a later chunk
      links[params.n + i] = select(0u, 1u, id >= 0 && prev == NONE);
      if (id >= 0) {
        if (prev != NONE && prev < c0) { links[prev] = i; }
        if (next == NONE) { links[2u * params.n + u32(id)] = i; }
      }
    }
    storageBarrier();
    workgroupBarrier(); // chunk[] is rewritten next round
  }
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
    if (j == NONE) { break; }
  }
  dtable[t] = acc;
}
