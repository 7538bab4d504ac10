// Sub-byte packing (little-endian bit order):
//   fp4: two codes a byte, element 2i in the low nibble (PyTorch's float4_e2m1fn_x2);
//   fp6: four codes in three bytes, element 4i+j in bits [6j, 6j+6) of the 24-bit little-endian group.
// A partial last byte / group is zero-filled; packed size is ceil(n * bits / 8) bytes.

/** Index of the first byte code greater than `limit`, or -1. */
export function firstCodeAbove(src: usize, n: usize, limit: i32): i32 {
  const lim = i8x16.splat(<i8>limit);
  let i: usize = 0;
  for (; i + 16 <= n; i += 16) {
    if (v128.any_true(i8x16.gt_u(v128.load(src + i), lim))) break;
  }
  for (; i < n; i++) if (<i32>load<u8>(src + i) > limit) return <i32>i;
  return -1;
}

/** Packs n unpacked codes (one a byte) of width `bits` (4 or 6). */
export function pack(bits: i32, src: usize, dst: usize, n: usize): void {
  let i: usize = 0;
  if (bits == 4) {
    let o = dst;
    for (; i + 2 <= n; i += 2) store<u8>(o++, load<u8>(src + i) | (load<u8>(src + i + 1) << 4));
    if (i < n) store<u8>(o, load<u8>(src + i));
    return;
  }
  let o = dst;
  for (; i + 4 <= n; i += 4) {
    const g = <u32>load<u8>(src + i) | (<u32>load<u8>(src + i + 1) << 6) | (<u32>load<u8>(src + i + 2) << 12) | (<u32>load<u8>(src + i + 3) << 18);
    store<u8>(o, <u8>g);
    store<u8>(o + 1, <u8>(g >> 8));
    store<u8>(o + 2, <u8>(g >> 16));
    o += 3;
  }
  if (i < n) {
    let g: u32 = 0;
    const rest = n - i;
    for (let j: usize = 0; j < rest; j++) g |= (<u32>load<u8>(src + i + j)) << (<u32>j * 6);
    const bytes = (rest * 6 + 7) >> 3;
    for (let j: usize = 0; j < bytes; j++) store<u8>(o + j, <u8>(g >> (<u32>j * 8)));
  }
}

/** Unpacks n codes of width `bits` (4 or 6) to one a byte. */
export function unpack(bits: i32, src: usize, dst: usize, n: usize): void {
  let i: usize = 0;
  if (bits == 4) {
    for (; i + 2 <= n; i += 2) {
      const b = load<u8>(src + (i >> 1));
      store<u8>(dst + i, b & 15);
      store<u8>(dst + i + 1, b >> 4);
    }
    if (i < n) store<u8>(dst + i, load<u8>(src + (i >> 1)) & 15);
    return;
  }
  let s = src;
  for (; i + 4 <= n; i += 4) {
    const g = <u32>load<u8>(s) | (<u32>load<u8>(s + 1) << 8) | (<u32>load<u8>(s + 2) << 16);
    store<u8>(dst + i, <u8>(g & 63));
    store<u8>(dst + i + 1, <u8>((g >> 6) & 63));
    store<u8>(dst + i + 2, <u8>((g >> 12) & 63));
    store<u8>(dst + i + 3, <u8>(g >> 18));
    s += 3;
  }
  if (i < n) {
    const rest = n - i;
    const bytes = (rest * 6 + 7) >> 3;
    let g: u32 = 0;
    for (let j: usize = 0; j < bytes; j++) g |= (<u32>load<u8>(s + j)) << (<u32>j * 8);
    for (let j: usize = 0; j < rest; j++) store<u8>(dst + i + j, <u8>((g >> (<u32>j * 6)) & 63));
  }
}

/** Unpacks n codes of width `bits` (4 or 6) starting at element `start` of a packed stream. */
export function unpackRange(bits: i32, src: usize, start: usize, dst: usize, n: usize): void {
  const mask: u32 = (1 << bits) - 1;
  for (let i: usize = 0; i < n; i++) {
    const bit = (start + i) * <usize>bits;
    const byte = src + (bit >> 3);
    const shift = <u32>(bit & 7);
    let w = <u32>load<u8>(byte);
    if (shift + <u32>bits > 8) w |= (<u32>load<u8>(byte + 1)) << 8;
    store<u8>(dst + i, <u8>((w >> shift) & mask));
  }
}
