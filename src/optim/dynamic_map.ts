// bitsandbytes' dynamic 8-bit quantization code (create_dynamic_map, Dettmers et al. 2021, after
// Dettmers 2015, "8-Bit Approximations for Parallelism in Deep Learning"), rebuilt from its
// algorithm in float32 so that every value matches bitsandbytes' own output bit for bit.
//
// The code is a "dynamic tree": a sign bit (signed map only), then an exponent written in unary
// (a run of zero bits ended by a one, the indicator), then a linear fraction in the bits that are
// left. With max_exponent_bits E = 7 and total_bits 8, exponent i = 0..6 stands for the decade
// 10^(i - 6) and gets 2^i fraction values (signed) or 2^(i + 1) (unsigned: the sign bit is
// reclaimed as one more fraction bit). The fraction values of a decade are the midpoints of
// linspace(0.1, 1, count + 1) (float32, torch.linspace's arithmetic), times 10^(i - 6) (the power
// rounded to float32, then a float32 product, as torch multiplies a float32 tensor by a Python
// float). Signed maps hold each value and its negation. Then 0 and 1 are added and the 256 values
// sorted ascending. Signed: 2 * (1 + 2 + ... + 64) + 2 = 256 values in [-0.99297, 1]; unsigned:
// (2 + 4 + ... + 128) + 2 = 256 values in [0, 1]. (With other E, bitsandbytes adds
// 2^(7 - E) - 1 "additional items" of the last decade; E = 7 has none, and only E = 7 is built here.)

const f = Math.fround;

/**
 * torch.linspace(start, end, steps) in float32 as PyTorch's vectorized CPU kernel computes it (the
 * arithmetic below reproduces bitsandbytes' published maps, made with torch 1.13 on an x86-64 CPU,
 * bit for bit; it is consistent with AVX2 kernels of 8 float lanes and a compiler that fuses
 * start + step * i into one multiply-add): step = (end - start) / (steps - 1) in float32; element
 * i is start + step * i (i < steps / 2) or end - step * (steps - 1 - i) (the second half counts
 * down from end), rounded once (exact in float64 first: step * i and the sum fit in 53 bits). The
 * kernel's vector loop takes two vectors of 8 per turn (the first steps - steps % 16 elements): a
 * vector's first lane is that value (its base), lane k = base + (k * step), rounded twice
 * (Vectorized<float>::arange); the remaining elements are scalar. A plain scalar linspace differs
 * from the published maps in 44 values by one ulp.
 */
function linspaceF32(start: number, end: number, steps: number): number[] {
  const s = f(start), e = f(end);
  const step = f(f(e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  const fused = (i: number) => (i < half ? f(s + step * i) : f(e - step * (steps - 1 - i)));
  const out: number[] = [];
  const vectorEnd = steps - (steps % 16);
  for (let i = 0; i < vectorEnd; i += 8) {
    const base = fused(i);
    for (let k = 0; k < 8; k++) out.push(k === 0 ? base : f(base + f(k * step)));
  }
  for (let i = vectorEnd; i < steps; i++) out.push(fused(i));
  return out;
}

/**
 * bitsandbytes' create_dynamic_map(signed, max_exponent_bits = 7, total_bits = 8): the 256
 * float32 code values, ascending. signed (first moments): [-0.99297, 1] with 0; unsigned (second
 * moments): [0, 1].
 */
export function createDynamicMap(signed: boolean): Float32Array {
  const maxExponentBits = 7, nonSignBits = 7;
  const data: number[] = [];
  for (let i = 0; i < maxExponentBits; i++) {
    const fractionItems = signed ? 2 ** (i + nonSignBits - maxExponentBits) + 1 : 2 ** (i + nonSignBits - maxExponentBits + 1) + 1;
    const b = linspaceF32(0.1, 1, fractionItems);
    const scale = f(Number(`1e${-(maxExponentBits - 1) + i}`)); // the decimal power, correctly rounded, then to float32
    for (let j = 0; j + 1 < fractionItems; j++) {
      const mean = f(f(b[j] + b[j + 1]) / 2);
      data.push(f(scale * mean));
      if (signed) data.push(-f(scale * mean));
    }
  }
  data.push(0, 1);
  data.sort((a, b) => a - b);
  return Float32Array.from(data);
}

const maps = new Map<boolean, Float32Array>();

/** The cached map (do not modify it). */
export function dynamicMap(signed: boolean): Float32Array {
  let m = maps.get(signed);
  if (!m) maps.set(signed, (m = createDynamicMap(signed)));
  return m;
}

/**
 * The 255 decision thresholds of a map: threshold k = (code[k] + code[k + 1]) / 2 in float32 (the
 * midpoint bitsandbytes' quantize kernel compares against). A value x (already divided by its
 * block's absmax) gets the code index = the number of thresholds strictly below x: so x exactly on
 * a threshold goes to the lower code (ties go down), and NaN gets index 0.
 */
export function mapThresholds(signed: boolean): Float32Array {
  const c = dynamicMap(signed);
  return Float32Array.from({ length: 255 }, (_, k) => f(f(c[k] + c[k + 1]) * 0.5));
}
