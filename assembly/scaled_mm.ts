// Reference for torch._scaled_mm: D = (A * scaleA) @ (B * scaleB), A: M x K codes row-major,
// B: K x N codes row-major, both fp8 (or any <= 8-bit format). Every product of two decoded codes
// is exact in binary64. Accumulation, in increasing k:
//   ACC_F64 (default): binary64 with Neumaier compensation; for e4m3 x e4m3 every partial sum is a
//     multiple of 2^-18 below 2^36, so the sum is exact; for e5m2 the error is below 2^-100 relative.
//   ACC_F32: float32, one rounding per addition (products are exact in float32), the order a
//     simple GPU kernel uses.
// Scales are applied to the accumulated sum (per block for MX), then the result is rounded once
// to the output format.
import { ROUND_NEAREST_EVEN, decodeBits32, encodeBits64 } from "./formats";
import { codeWidth, storeCode } from "./convert";

export const SCALE_TENSOR: i32 = 0; // one float32
export const SCALE_ROWWISE: i32 = 1; // A: M float32 (one per row); B: N float32 (one per column)
export const SCALE_MX: i32 = 2; // E8M0 codes per block of K: A M x (K/bs) row-major; B (K/bs) x N row-major

function decodeF64(fmt: i32, src: usize, dst: usize, n: usize): void {
  for (let i: usize = 0; i < n; i++) {
    store<f64>(dst + (i << 3), <f64>reinterpret<f32>(decodeBits32(fmt, load<u8>(src + i))));
  }
}

@inline function e8m0(code: u8): f64 {
  return code == 0xff ? NaN : Math.pow(2.0, <f64>(<i32>code - 127));
}

export function scaledMatmul(
  fmtA: i32, fmtB: i32, a: usize, b: usize, m: i32, k: i32, n: i32,
  scaleA: usize, scaleAKind: i32, scaleB: usize, scaleBKind: i32, blockSize: i32,
  accF32: bool, outFmt: i32, dst: usize, work: usize,
): void {
  // `work`: (m * k + k * n) float64s from the caller, who sized and allocated it (its size in bytes
  // may pass 2^32, which a usize here would wrap), for the operands decoded to binary64.
  const da = work;
  const db = work + ((<usize>m * <usize>k) << 3);
  decodeF64(fmtA, a, da, <usize>m * <usize>k);
  decodeF64(fmtB, b, db, <usize>k * <usize>n);
  const width = codeWidth(outFmt);
  const blocks = scaleAKind == SCALE_MX ? k / blockSize : 1;
  const span = scaleAKind == SCALE_MX ? blockSize : k;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let total = 0.0;
      for (let blk = 0; blk < blocks; blk++) {
        let sum = 0.0, comp = 0.0;
        let sum32: f32 = 0;
        for (let kk = blk * span; kk < (blk + 1) * span; kk++) {
          const p = load<f64>(da + ((<usize>i * <usize>k + <usize>kk) << 3)) * load<f64>(db + ((<usize>kk * <usize>n + <usize>j) << 3));
          if (accF32) {
            sum32 += <f32>p;
          } else {
            const t = sum + p; // Neumaier: keep the rounding error of every addition
            comp += Math.abs(sum) >= Math.abs(p) ? (sum - t) + p : (p - t) + sum;
            sum = t;
          }
        }
        let partial = accF32 ? <f64>sum32 : sum + comp;
        if (scaleAKind == SCALE_MX) {
          partial *= e8m0(load<u8>(scaleA + <usize>i * <usize>blocks + <usize>blk)) * e8m0(load<u8>(scaleB + <usize>blk * <usize>n + <usize>j));
        }
        total += partial; // MX: block partials carry their scales; otherwise a single block
      }
      if (scaleAKind == SCALE_TENSOR) total *= <f64>load<f32>(scaleA) * <f64>load<f32>(scaleB);
      else if (scaleAKind == SCALE_ROWWISE) total *= <f64>load<f32>(scaleA + (<usize>i << 2)) * <f64>load<f32>(scaleB + (<usize>j << 2));
      const code = encodeBits64(outFmt, reinterpret<u64>(total), ROUND_NEAREST_EVEN, false, 0);
      const o = <usize>i * <usize>n + <usize>j;
      storeCode(dst, o, width, code);
    }
  }
}

