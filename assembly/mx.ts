// OCP Microscaling (MX v1.0, section 6.3): per block of `blockSize` elements, one E8M0 scale
// X = 2^(floor(log2(amax)) - emax_elem) and element codes P_i = round(V_i / X), normals clamped to
// the element format's max. A block holding NaN or ±inf gets the NaN scale 0xFF (all of its values
// decode as NaN) and zero element codes. An all-zero block gets the smallest scale, 2^-127 (code 0).
import { ROUND_NEAREST_EVEN, maxCode, encodeBits64, decodeBits32 } from "./formats";

/** floor(log2(max finite)) of an element format: e4m3 8, e5m2 15, e3m2 4, e2m3 2, e2m1 2. */
function emaxElem(fmt: i32): i32 {
  const maxBits = decodeBits32(fmt, maxCode(fmt));
  return <i32>((maxBits >> 23) & 0xff) - 127;
}

/** floor(log2(x)) of a positive finite float32 given by its bits (subnormals included). */
function floorLog2(bits: u32): i32 {
  const e = <i32>(bits >> 23);
  if (e != 0) return e - 127;
  return -127 - (<i32>clz(bits) - 9) ; // subnormal: leading mantissa bit position
}

export function mxQuantize(fmt: i32, src: usize, scales: usize, codes: usize, n: usize, blockSize: usize): void {
  const emax = emaxElem(fmt);
  const blocks = (n + blockSize - 1) / blockSize;
  for (let b: usize = 0; b < blocks; b++) {
    const start = b * blockSize;
    const end = start + blockSize < n ? start + blockSize : n;
    let amax: u32 = 0;
    let special = false;
    for (let i = start; i < end; i++) {
      const a = load<u32>(src + (i << 2)) & 0x7fffffff;
      if (a >= 0x7f800000) special = true;
      else if (a > amax) amax = a;
    }
    if (special) {
      store<u8>(scales + b, 0xff);
      memory.fill(codes + start, 0, end - start);
      continue;
    }
    let shared = amax == 0 ? -127 : floorLog2(amax) - emax;
    if (shared < -127) shared = -127;
    if (shared > 127) shared = 127; // unreachable from float32 input (amax < 2^128), kept for safety
    store<u8>(scales + b, <u8>(shared + 127));
    const inv = Math.pow(2.0, <f64>-shared); // exact power of two; V * inv is exact in binary64
    for (let i = start; i < end; i++) {
      const v = <f64>load<f32>(src + (i << 2)) * inv;
      store<u8>(codes + i, <u8>encodeBits64(fmt, reinterpret<u64>(v), ROUND_NEAREST_EVEN, true, 0));
    }
  }
}

export function mxDequantize(fmt: i32, scales: usize, codes: usize, dst: usize, n: usize, blockSize: usize): void {
  const blocks = (n + blockSize - 1) / blockSize;
  for (let b: usize = 0; b < blocks; b++) {
    const start = b * blockSize;
    const end = start + blockSize < n ? start + blockSize : n;
    const s = load<u8>(scales + b);
    const x = s == 0xff ? NaN : Math.pow(2.0, <f64>(<i32>s - 127));
    for (let i = start; i < end; i++) {
      const v = <f64>reinterpret<f32>(decodeBits32(fmt, load<u8>(codes + i))) * x;
      // One rounding to float32 (values below 2^-126 land in float32 subnormals).
      store<f32>(dst + (i << 2), <f32>v);
    }
  }
}

