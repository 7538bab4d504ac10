// Fill (the backend's fill kernel): every element of a range set to one code, on the device. The
// host plans it (src/backend/fill.ts): the words the range touches, the masks of its partial first
// and last words, and the word pattern of the code (one word, or three for fp6). One invocation a
// word, so a partial word's read-modify-write has no race; bits outside the range are kept.

struct Params {
  first: u32,            // absolute index of the first word
  words: u32,
  first_mask: u32,
  last_mask: u32,
  pattern: vec4<u32>,    // x (y, z for fp6): the pattern words; w: the period (1 or 3)
}
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let k = (wid.y * nwg.x + wid.x) * 256u + lid;
  if (k >= params.words) { return; }
  let w = params.first + k;
  let v = params.pattern[w % params.pattern.w];
  var mask = 0xffffffffu;
  if (k == 0u) { mask = mask & params.first_mask; }
  if (k == params.words - 1u) { mask = mask & params.last_mask; }
  if (mask == 0xffffffffu) { out[w] = v; } else { out[w] = (out[w] & ~mask) | (v & mask); }
}
