// Block-wise dynamic 8-bit quantization and the fused 8-bit optimizer step (bitsandbytes'
// quantize_blockwise and its blockwise 8-bit optimizer kernels); the reference for
// shaders/optim8bit.wgsl. Rules in src/backend/quant.ts: absmax = the largest |x| compared as bits
// (NaN above inf), code index = the number of thresholds t_k with t_k * absmax < x (binary search,
// ties to the lower code), value = code * absmax. Exact products and comparisons decide every code
// (fastCode divides only for a first guess), so every backend agrees bit for bit. A table `t`
// (quantKernelTable in src/backend/quant.ts) holds 512 float32 (the 256 code values, the 255
// thresholds, then +inf), then the bucket table of the fast search (fastCode).
import { QUANT_BUCKETS, QUANT_LOW_BITS, QUANT_LUT_OFFSET } from "../../build/constants";

@inline function absBits(x: f32): u32 {
  return reinterpret<u32>(x) & 0x7fffffff;
}

/** One step of codeIndex's search: base + step when x is above threshold base + step - 1. */
@inline function codeStep(t: usize, x: f32, amax: f32, base: u32, step: u32): u32 {
  return select<u32>(base + step, base, x > load<f32>(t + ((<usize>(256 + base + step - 1)) << 2)) * amax);
}

/**
 * The code index of x in a block with absmax amax: the number of thresholds t_k with
 * t_k * amax < x. A branchless binary search (each step a select, no branch to mispredict): the
 * same count as a branching one, since the thresholds (none 0) times amax >= 0 never decrease
 * (amax NaN: every comparison false, 0 either way).
 */
@inline function codeIndex(t: usize, x: f32, amax: f32): u32 {
  let b = codeStep(t, x, amax, 0, 128);
  b = codeStep(t, x, amax, b, 64);
  b = codeStep(t, x, amax, b, 32);
  b = codeStep(t, x, amax, b, 16);
  b = codeStep(t, x, amax, b, 8);
  b = codeStep(t, x, amax, b, 4);
  b = codeStep(t, x, amax, b, 2);
  return codeStep(t, x, amax, b, 1);
}

/** t[256 + base_j + step - 1] for each lane j of base: the thresholds one search step compares with. */
// @ts-ignore: decorator
@inline function thresholds4(t: usize, base: v128, step: i32): v128 {
  const o = 256 + step - 1;
  let v = f32x4.splat(load<f32>(t + (<usize>(i32x4.extract_lane(base, 0) + o) << 2)));
  v = f32x4.replace_lane(v, 1, load<f32>(t + (<usize>(i32x4.extract_lane(base, 1) + o) << 2)));
  v = f32x4.replace_lane(v, 2, load<f32>(t + (<usize>(i32x4.extract_lane(base, 2) + o) << 2)));
  return f32x4.replace_lane(v, 3, load<f32>(t + (<usize>(i32x4.extract_lane(base, 3) + o) << 2)));
}

/** One step of codeIndex4: each lane's base + step where x is above its threshold (codeStep, four at a time). */
// @ts-ignore: decorator
@inline function codeStep4(t: usize, x: v128, amax: v128, base: v128, step: i32): v128 {
  return i32x4.add(base, v128.and(f32x4.gt(x, f32x4.mul(thresholds4(t, base, step), amax)), i32x4.splat(step)));
}

/** codeIndex of four values at once: the same eight comparisons, lane by lane. */
// @ts-ignore: decorator
@inline function codeIndex4(t: usize, x: v128, amax: v128): v128 {
  let b = i32x4.splat(0);
  for (let step = 128; step >= 1; step >>= 1) b = codeStep4(t, x, amax, b, step);
  return b;
}

/** The dequantized values t[codes[0..3]] (before the absmax). */
// @ts-ignore: decorator
@inline function gather4(t: usize, codes: usize): v128 {
  let v = f32x4.splat(load<f32>(t + (<usize>load<u8>(codes) << 2)));
  v = f32x4.replace_lane(v, 1, load<f32>(t + (<usize>load<u8>(codes, 1) << 2)));
  v = f32x4.replace_lane(v, 2, load<f32>(t + (<usize>load<u8>(codes, 2) << 2)));
  return f32x4.replace_lane(v, 3, load<f32>(t + (<usize>load<u8>(codes, 3) << 2)));
}

// The kernel table's layout (src/backend/quant.ts, through build/constants.ts):
/** Byte offset of the bucket table in a map's table (after its 512 float32). */
const LUT: usize = <usize>QUANT_LUT_OFFSET;
/** Buckets per sign: |y| below 2^-23, then 256 for each binade from 2^-23 to 2, then one for 2 and above. */
const BUCKETS: u32 = <u32>QUANT_BUCKETS;
/** 2^-23 as bits: below it, no threshold (the smallest is 1.6e-7). */
const LOW: u32 = <u32>QUANT_LOW_BITS;

/** q[0..257]: -inf, then t_k * amax for the 255 thresholds, then t[511] * amax (+inf) and +inf (q[258] is read, never used). */
function scaledThresholds(t: usize, amax: f32, q: usize): void {
  const av = f32x4.splat(amax);
  store<f32>(q, -Infinity);
  for (let k: usize = 0; k < 256; k += 4) v128.store(q + 4 + (k << 2), f32x4.mul(v128.load(t + 1024 + (k << 2)), av));
  store<f32>(q + 1028, Infinity);
}

/**
 * codeIndex(t, x, amax) without the binary search, for 2^-100 <= amax <= 2^100 and |x| <= amax
 * (so x is finite). y = x * (1 / amax) is x / amax within 2^-23 relatively, and no two thresholds
 * lie that close (the nearest are 0.5% apart), so the count of thresholds below y is within one of
 * the count c of the products t_k * amax below x. A bucket of y's bits holds at most one threshold
 * and its entry counts those below it (lo), so c is lo - 1, lo, lo + 1 or lo + 2:
 * c = lo - 1 + [x > q[lo]] + [x > q[lo + 1]] + [x > q[lo + 2]] with q[i] = t_(i-1) * amax
 * (scaledThresholds; one vector load and compare): the same exact comparisons as codeIndex, of the
 * three thresholds where the two counts can differ.
 */
// @ts-ignore: decorator
@inline function fastCode(t: usize, q: usize, x: f32, inv: f32): u32 {
  const u = reinterpret<u32>(x * inv);
  const b = min<u32>((max<u32>(u & 0x7fffffff, LOW - 0x8000) - (LOW - 0x8000)) >> 15, BUCKETS - 1) + (u >> 31) * BUCKETS;
  const lo = <usize>load<u8>(t + LUT + <usize>b);
  return <u32>lo - 1 + popcnt<u32>(i32x4.bitmask(f32x4.gt(f32x4.splat(x), v128.load(q + (lo << 2)))) & 7);
}

/** Four lanes' codes (0-255) as four bytes. */
// @ts-ignore: decorator
@inline function packCodes(c: v128): u32 {
  return i32x4.extract_lane(i8x16.shuffle(c, c, 0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0);
}

/**
 * Codes of the block's n float32 at x (codeIndex with absmax amax, every |x| <= amax): fastCode
 * where amax allows it (q: 259 float32 of scratch), else the binary search four at a time, then the rest.
 */
function requantize(x: usize, codes: usize, n: i32, t: usize, amax: f32, q: usize): void {
  const av = f32x4.splat(amax);
  let i = 0;
  if (amax >= reinterpret<f32>(0x0d800000) && amax <= reinterpret<f32>(0x71800000)) { // 2^-100 .. 2^100
    scaledThresholds(t, amax, q);
    const inv = <f32>1.0 / amax;
    for (; i < n; i++) store<u8>(codes + <usize>i, <u8>fastCode(t, q, load<f32>(x + (<usize>i << 2)), inv));
  } else {
    for (; i + 4 <= n; i += 4) store<u32>(codes + <usize>i, packCodes(codeIndex4(t, v128.load(x + (<usize>i << 2)), av)));
  }
  for (; i < n; i++) store<u8>(codes + <usize>i, <u8>codeIndex(t, load<f32>(x + (<usize>i << 2)), amax));
}

/** The largest of four lanes' unsigned values. */
// @ts-ignore: decorator
@inline function maxLane(v: v128): u32 {
  return max(max(<u32>i32x4.extract_lane(v, 0), <u32>i32x4.extract_lane(v, 1)), max(<u32>i32x4.extract_lane(v, 2), <u32>i32x4.extract_lane(v, 3)));
}

/** Quantizes n float32 at x into codes (n bytes) and absmax (one float32 per block); q: requantize's scratch. */
export function quantizeBlockwiseF32(x: usize, n: i32, codes: usize, absmax: usize, block: i32, t: usize, q: usize): void {
  const absMask = i32x4.splat(0x7fffffff);
  for (let b0 = 0, b = 0; b0 < n; b0 += block, b++) {
    const end = min(n, b0 + block);
    let m4 = i32x4.splat(0);
    let i = b0;
    for (; i + 4 <= end; i += 4) m4 = i32x4.max_u(m4, v128.and(v128.load(x + (<usize>i << 2)), absMask));
    let m = maxLane(m4);
    for (; i < end; i++) m = max(m, absBits(load<f32>(x + (<usize>i << 2))));
    const amax = reinterpret<f32>(m);
    store<f32>(absmax + (<usize>b << 2), amax);
    requantize(x + (<usize>b0 << 2), codes + <usize>b0, end - b0, t, amax, q);
  }
}

/** out[i] = t[codes[i]] * absmax[i / block] for n elements (four at a time, then the rest of each block). */
export function dequantizeBlockwiseF32(codes: usize, absmax: usize, n: i32, block: i32, t: usize, out: usize): void {
  for (let b0 = 0, b = 0; b0 < n; b0 += block, b++) {
    const end = min(n, b0 + block);
    const am = load<f32>(absmax + (<usize>b << 2));
    const av = f32x4.splat(am);
    let i = b0;
    for (; i + 4 <= end; i += 4) v128.store(out + (<usize>i << 2), f32x4.mul(gather4(t, codes + <usize>i), av));
    for (; i < end; i++) store<f32>(out + (<usize>i << 2), load<f32>(t + (<usize>load<u8>(codes + <usize>i) << 2)) * am);
  }
}

/**
 * One fused 8-bit optimizer step over n elements (kinds and h0..h8 as Optim8bitStep in
 * src/backend/backend.ts): per block, the state(s) are dequantized, updated with the parameter in
 * float32 (the parameter's update uses the new unquantized state, as bitsandbytes does), kept in
 * `scratch` (2 * block float32, then 257 for requantize), then requantized with the block's new absmax.
 * kind 0 (adam):     g = grad * h0; m = h2 m + h3 g; v = h4 v + h5 (g g);
 *                    p = p h1 - h6 (m / (sqrt(v) / h7 + h8))  (exactly adamwF32's arithmetic).
 * kind 1 (momentum): buf = h6 != 0 ? g : h0 buf + h1 g; u = h3 != 0 ? g + h0 buf : buf; p = p + h2 u.
 * kind 2 (rmsprop):  s = h0 s + h1 (g g); p = p + h2 (g / (sqrt(s) + h3)).
 */
export function optimizer8bitF32(
  kind: i32, p: usize, grad: usize, c1: usize, a1: usize, t1: usize, c2: usize, a2: usize, t2: usize, n: i32, block: i32,
  h0: f32, h1: f32, h2: f32, h3: f32, h4: f32, h5: f32, h6: f32, h7: f32, h8: f32, scratch: usize,
): void {
  const two = kind == 0;
  const s2 = scratch + (<usize>block << 2), q = scratch + (<usize>block << 3);
  const absMask = i32x4.splat(0x7fffffff);
  for (let b0 = 0, b = 0; b0 < n; b0 += block, b++) {
    const end = min(n, b0 + block);
    const am1 = load<f32>(a1 + (<usize>b << 2));
    const am2: f32 = two ? load<f32>(a2 + (<usize>b << 2)) : 0;
    let m1: u32 = 0, m2: u32 = 0;
    let i = b0;
    if (kind == 0) {
      // Adam four elements at a time: the scalar loop's operations in the same order, lane by lane
      // (wasm SIMD rounds each as the scalar one does), so the results are the same bits.
      const am1v = f32x4.splat(am1), am2v = f32x4.splat(am2), h0v = f32x4.splat(h0), h1v = f32x4.splat(h1), h2v = f32x4.splat(h2);
      const h3v = f32x4.splat(h3), h4v = f32x4.splat(h4), h5v = f32x4.splat(h5), h6v = f32x4.splat(h6), h7v = f32x4.splat(h7), h8v = f32x4.splat(h8);
      let m1v = i32x4.splat(0), m2v = i32x4.splat(0);
      for (; i + 4 <= end; i += 4) {
        const o = <usize>i << 2;
        const k = <usize>(i - b0) << 2;
        const g = f32x4.mul(v128.load(grad + o), h0v);
        const x1 = f32x4.add(f32x4.mul(h2v, f32x4.mul(gather4(t1, c1 + <usize>i), am1v)), f32x4.mul(h3v, g));
        const x2 = f32x4.add(f32x4.mul(h4v, f32x4.mul(gather4(t2, c2 + <usize>i), am2v)), f32x4.mul(h5v, f32x4.mul(g, g)));
        const denom = f32x4.add(f32x4.div(f32x4.sqrt(x2), h7v), h8v);
        v128.store(p + o, f32x4.sub(f32x4.mul(v128.load(p + o), h1v), f32x4.mul(h6v, f32x4.div(x1, denom))));
        v128.store(scratch + k, x1);
        v128.store(s2 + k, x2);
        m1v = i32x4.max_u(m1v, v128.and(x1, absMask));
        m2v = i32x4.max_u(m2v, v128.and(x2, absMask));
      }
      m1 = maxLane(m1v);
      m2 = maxLane(m2v);
    }
    for (; i < end; i++) {
      const o = <usize>i << 2;
      const k = <usize>(i - b0) << 2;
      let x1 = load<f32>(t1 + (<usize>load<u8>(c1 + <usize>i) << 2)) * am1;
      const pi = load<f32>(p + o);
      let pn: f32;
      if (kind == 0) {
        let x2 = load<f32>(t2 + (<usize>load<u8>(c2 + <usize>i) << 2)) * am2;
        const g = load<f32>(grad + o) * h0;
        x1 = h2 * x1 + h3 * g;
        x2 = h4 * x2 + h5 * (g * g);
        const denom = Mathf.sqrt(x2) / h7 + h8;
        pn = pi * h1 - h6 * (x1 / denom);
        store<f32>(s2 + k, x2);
        m2 = max(m2, absBits(x2));
      } else if (kind == 1) {
        const g = load<f32>(grad + o);
        x1 = h6 != 0 ? g : h0 * x1 + h1 * g;
        const u: f32 = h3 != 0 ? g + h0 * x1 : x1;
        pn = pi + h2 * u;
      } else {
        const g = load<f32>(grad + o);
        x1 = h0 * x1 + h1 * (g * g);
        pn = pi + h2 * (g / (Mathf.sqrt(x1) + h3));
      }
      store<f32>(p + o, pn);
      store<f32>(scratch + k, x1);
      m1 = max(m1, absBits(x1));
    }
    const n1 = reinterpret<f32>(m1);
    store<f32>(a1 + (<usize>b << 2), n1);
    requantize(scratch, c1 + <usize>b0, end - b0, t1, n1, q);
    if (two) {
      const n2 = reinterpret<f32>(m2);
      store<f32>(a2 + (<usize>b << 2), n2);
      requantize(s2, c2 + <usize>b0, end - b0, t2, n2, q);
    }
  }
}
