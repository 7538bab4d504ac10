// float32 matmul of the wasm backend: out[b] = alpha * op(A[b]) @ op(B[b]), op = transpose or not.
// Batch strides are in elements (0 broadcasts one matrix over the batch).
//
// Structure (GotoBLAS style, one core):
//   for each N block of NC columns
//     for each K block of KC
//       pack op(B)[K block, N block] into panels of NR = 8 columns, k-major (zero padded)
//       for each M block of MC rows
//         pack op(A)[M block, K block] into panels of MR rows, k-major (zero padded)
//         for each NR panel, for each MR panel: the register-blocked micro-kernel
// The micro-kernel keeps an MR x 8 tile of float32 sums in v128 locals (2 vectors per row) and
// streams the two packed panels; transposes are handled by the packing, so it sees one layout.
// Each K block's sums are added once into C (first block: stored), alpha is applied there.
// Summation order: per K block sequential in k, blocks added in order; float32 accumulation error
// stays within the usual K * eps * sum|a||b| bound.

const MR: i32 = 4; // rows of the micro-tile (4 x 8: 8 accumulators, 2 B vectors, the A splat and a product fit x86's 16 SIMD registers; 6 x 8 needs one more: ~20% slower at 256^3 here)
const NR: i32 = 8; // columns of the micro-tile (2 x f32x4)
const KC: i32 = 256; // K block: a B panel (KC x NR floats = 8 KiB) stays in L1
const MC: i32 = 72; // M block: a packed A block (MC x KC floats = 72 KiB) stays in L2
const NC: i32 = 2048; // N block: a packed B block (KC x NC floats = 2 MiB at most)

// Operands are float32, or bfloat16 read in place (bf = true): a bfloat16 value is the top half of
// its float32, so the packing widens it exactly and the products and sums are those of the
// float32 copy: the same bits as staging the operand to float32 first, without the copy.

/** Element `i` of an operand (float32, or bfloat16 when bf). */
// @ts-ignore: decorator
@inline
function ld(base: usize, i: i32, bf: bool): f32 {
  if (bf) return reinterpret<f32>(<u32>load<u16>(base + (<usize>i << 1)) << 16);
  return load<f32>(base + (<usize>i << 2));
}

/** Eight consecutive elements from `src` (float32, or bfloat16 when bf) stored as float32 at d and d + 16. */
// @ts-ignore: decorator
@inline
function copy8(d: usize, src: usize, bf: bool): void {
  if (bf) {
    const h = v128.load(src);
    v128.store(d, i32x4.shl(i32x4.extend_low_i16x8_u(h), 16));
    v128.store(d, i32x4.shl(i32x4.extend_high_i16x8_u(h), 16), 16);
  } else {
    v128.store(d, v128.load(src));
    v128.store(d, v128.load(src, 16), 16);
  }
}

/** Packs op(B)[p0 .. p0+kc, j0 .. j0+nc] into k-major panels of NR columns, zero padded. */
function packB(dst: usize, B: usize, transB: bool, ldb: i32, p0: i32, kc: i32, j0: i32, nc: i32, bf: bool): void {
  for (let jp = 0; jp < nc; jp += NR) {
    const nr = min(NR, nc - jp);
    const panel = dst + (<usize>(jp * kc) << 2);
    const j = j0 + jp;
    const sh: usize = bf ? 1 : 2;
    if (!transB) {
      if (nr == NR) {
        for (let p = 0; p < kc; p++) {
          copy8(panel + (<usize>(p * NR) << 2), B + (<usize>((p0 + p) * ldb + j) << sh), bf);
        }
      } else {
        for (let p = 0; p < kc; p++) {
          const src = B + (<usize>((p0 + p) * ldb + j) << sh);
          const d = panel + (<usize>(p * NR) << 2);
          v128.store(d, f32x4.splat(0));
          v128.store(d, f32x4.splat(0), 16);
          for (let c = 0; c < nr; c++) store<f32>(d + (<usize>c << 2), ld(src, c, bf));
        }
      }
    } else {
      // op(B)[p][j] = B[j * k + p]: each output column is a contiguous run of B's row j.
      if (nr < NR) {
        for (let p = 0; p < kc; p++) {
          const d = panel + (<usize>(p * NR) << 2);
          v128.store(d, f32x4.splat(0));
          v128.store(d, f32x4.splat(0), 16);
        }
      }
      for (let c = 0; c < nr; c++) {
        const src = B + (<usize>((j + c) * ldb + p0) << sh);
        let d = panel + (<usize>c << 2);
        for (let p = 0; p < kc; p++) {
          store<f32>(d, ld(src, p, bf));
          d += <usize>(NR << 2);
        }
      }
    }
  }
}

/** Packs op(A)[i0 .. i0+mc, p0 .. p0+kc] into k-major panels of MR rows, zero padded. */
function packA(dst: usize, A: usize, transA: bool, lda: i32, i0: i32, mc: i32, p0: i32, kc: i32, bf: bool): void {
  const sh: usize = bf ? 1 : 2;
  for (let ip = 0; ip < mc; ip += MR) {
    const mr = min(MR, mc - ip);
    const panel = dst + (<usize>(ip * kc) << 2);
    const i = i0 + ip;
    if (mr < MR) memory.fill(panel, 0, <usize>(MR * kc) << 2);
    if (!transA) {
      // op(A)[i][p] = A[i * k + p]: each row is contiguous.
      for (let r = 0; r < mr; r++) {
        const src = A + (<usize>((i + r) * lda + p0) << sh);
        let d = panel + (<usize>r << 2);
        for (let p = 0; p < kc; p++) {
          store<f32>(d, ld(src, p, bf));
          d += <usize>(MR << 2);
        }
      }
    } else {
      // op(A)[i][p] = A[p * m + i]: each k step is a contiguous run of mr values.
      for (let p = 0; p < kc; p++) {
        const src = A + (<usize>((p0 + p) * lda + i) << sh);
        const d = panel + (<usize>(p * MR) << 2);
        for (let r = 0; r < mr; r++) store<f32>(d + (<usize>r << 2), ld(src, r, bf));
      }
    }
  }
}

/**
 * acc + a * b per lane. The relaxed-SIMD builds (memfit.relaxed.wasm, memfit.threads-relaxed.wasm)
 * use f32x4.relaxed_madd: one fused multiply-add where the CPU has FMA (one rounding instead of two,
 * so results differ from the plain build within the matmul bound, and are the same on every run and
 * thread count of one machine); the plain builds multiply, then add.
 */
// @ts-ignore: decorator
@inline
function madd(a: v128, b: v128, acc: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, acc);
  return f32x4.add(acc, f32x4.mul(a, b));
}

// @ts-ignore: decorator
@inline
function put(c: usize, off: usize, acc: v128, s: v128, first: bool): void {
  const v = f32x4.mul(acc, s);
  v128.store(c + off, first ? v : f32x4.add(v128.load(c + off), v));
}

/**
 * The micro-kernel: C[0..MR, 0..NR] (row stride ldc bytes) = (first ? 0 : C) + alpha * Ap^T Bp over
 * kc steps. Full tiles only; edge tiles go through edgeBuf (first = true there).
 */
function micro(ap: usize, bp: usize, kc: i32, c: usize, ldc: usize, alpha: f32, first: bool): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  for (let p = 0; p < kc; p++) {
    const b0 = v128.load(bp), b1 = v128.load(bp, 16);
    let a = v128.load32_splat(ap);
    c00 = madd(a, b0, c00); c01 = madd(a, b1, c01);
    a = v128.load32_splat(ap, 4);
    c10 = madd(a, b0, c10); c11 = madd(a, b1, c11);
    a = v128.load32_splat(ap, 8);
    c20 = madd(a, b0, c20); c21 = madd(a, b1, c21);
    a = v128.load32_splat(ap, 12);
    c30 = madd(a, b0, c30); c31 = madd(a, b1, c31);
    ap += <usize>(MR << 2);
    bp += <usize>(NR << 2);
  }
  const s = f32x4.splat(alpha);
  put(c, 0, c00, s, first); put(c, 16, c01, s, first); c += ldc;
  put(c, 0, c10, s, first); put(c, 16, c11, s, first); c += ldc;
  put(c, 0, c20, s, first); put(c, 16, c21, s, first); c += ldc;
  put(c, 0, c30, s, first); put(c, 16, c31, s, first);
}

/**
 * One matrix: C (m x n, row stride ldc) = alpha * op(A) @ op(B), with packing scratch pa / pb and an
 * MR x NR edge tile. lda / ldb are the row strides of A and B as stored (before op). With packedB
 * (not 0), op(B) was packed whole beforehand by packBWhole (all its columns, nPad of them: see
 * there) and pb is not used: the same panels, so the same sums.
 */
function gemm(
  A: usize, B: usize, C: usize, m: i32, k: i32, n: i32, transA: bool, transB: bool, alpha: f32,
  lda: i32, ldb: i32, ldc32: i32, pa: usize, pb: usize, edgeBuf: usize, aBf: bool, bBf: bool,
  packedB: usize = 0, nPad: i32 = 0, accumulate: bool = false,
): void {
  const ldc = <usize>ldc32 << 2;
  if (k == 0) {
    if (!accumulate) for (let i = 0; i < m; i++) memory.fill(C + <usize>i * ldc, 0, <usize>n << 2);
    return;
  }
  for (let j0 = 0; j0 < n; j0 += NC) {
    const nc = min(NC, n - j0);
    for (let p0 = 0; p0 < k; p0 += KC) {
      const kc = min(KC, k - p0);
      // accumulate: C's own values are the start of the sum (C += op(A) op(B)); with k <= KC, one
      // block, each element is C + (its product rounded to float32): exactly a matmul, then an add.
      const first = p0 == 0 && !accumulate;
      if (packedB) pb = packedB + (<usize>(p0 * nPad + j0 * kc) << 2);
      else packB(pb, B, transB, ldb, p0, kc, j0, nc, bBf);
      for (let i0 = 0; i0 < m; i0 += MC) {
        const mc = min(MC, m - i0);
        packA(pa, A, transA, lda, i0, mc, p0, kc, aBf);
        for (let jp = 0; jp < nc; jp += NR) {
          const nr = min(NR, nc - jp);
          const bp = pb + (<usize>(jp * kc) << 2);
          for (let ip = 0; ip < mc; ip += MR) {
            const mr = min(MR, mc - ip);
            const ap = pa + (<usize>(ip * kc) << 2);
            const c = C + <usize>(i0 + ip) * ldc + (<usize>(j0 + jp) << 2);
            if (mr == MR && nr == NR) {
              micro(ap, bp, kc, c, ldc, alpha, first);
            } else {
              micro(ap, bp, kc, edgeBuf, <usize>(NR << 2), alpha, true);
              for (let r = 0; r < mr; r++) {
                const crow = c + (<usize>r * ldc);
                const erow = edgeBuf + (<usize>(r * NR) << 2);
                for (let q = 0; q < nr; q++) {
                  const o = crow + (<usize>q << 2);
                  const v = load<f32>(erow + (<usize>q << 2));
                  store<f32>(o, first ? v : load<f32>(o) + v);
                }
              }
            }
          }
        }
      }
    }
  }
}

/** The largest k for which matmul's accumulate flag gives exactly C + (the product rounded to float32): one K block. */
export function matmulAccumulateMaxK(): i32 {
  return KC;
}

/** Floats of the largest packed A block (MC x KC, rows rounded up to MR) a call of m rows and depth k packs. */
// @ts-ignore: decorator
@inline
function packedABlockFloats(m: i32, k: i32): i32 {
  return (min(MC, max(m, 1)) + MR - 1) / MR * MR * min(KC, max(k, 1));
}

/** n rounded up to whole panels of NR columns. */
// @ts-ignore: decorator
@inline
function paddedColumns(n: i32): i32 {
  return (n + NR - 1) / NR * NR;
}

/** Bytes of packing scratch matmulF32Part needs for one call of shape (m, k, n): see matmulScratchBytes. */
export function matmulScratchBytes(m: i32, k: i32, n: i32): usize {
  const pb = paddedColumns(min(NC, max(n, 1))) * min(KC, max(k, 1));
  return ((<usize>packedABlockFloats(m, k) + <usize>pb + <usize>(MR * NR)) << 2) + 32;
}

// Every output element's sum runs over the same K blocks in the same order however the rows,
// columns and batches are split, so a part computes exactly what the whole call would there.

/**
 * Part of a batched matmul, for threads: batches [b0, b1), rows [i0, i1) and columns [j0, j1) of
 * every one of them, with caller-provided scratch (matmulScratchBytes(m, k, n) bytes, 16-aligned).
 * Allocates nothing, so that worker instances (which share the memory but not the heap's state)
 * may run it. `bf16` says which operands are bfloat16 read in place (1: A, 2: B; 0: both float32)
 * and, with 4, that the product is added to out (k at most matmulAccumulateMaxK() for the
 * product to be rounded once before the add). The scratch pointer is the last argument (threads
 * offset it by their seat).
 */
export function matmulF32Part(
  a: usize, b: usize, out: usize, m: i32, k: i32, n: i32, transA: bool, transB: bool, alpha: f32, strideA: i32, strideB: i32,
  b0: i32, b1: i32, i0: i32, i1: i32, j0: i32, j1: i32, bf16: i32, scratch: usize,
): void {
  const mp = i1 - i0, np = j1 - j0;
  if (mp <= 0 || np <= 0 || b1 <= b0) return;
  const pa = scratch, pb = pa + (<usize>packedABlockFloats(m, k) << 2);
  const edge = pb + (<usize>(paddedColumns(min(NC, max(n, 1))) * min(KC, max(k, 1))) << 2);
  const lda = transA ? m : k, ldb = transB ? k : n;
  const aBf = (bf16 & 1) != 0, bBf = (bf16 & 2) != 0;
  const sa: usize = aBf ? 1 : 2, sb: usize = bBf ? 1 : 2;
  for (let bi = b0; bi < b1; bi++) {
    let A = a + ((<usize>bi * <usize>strideA) << sa), B = b + ((<usize>bi * <usize>strideB) << sb);
    let C = out + ((<usize>bi * <usize>m * <usize>n) << 2);
    A += transA ? <usize>i0 << sa : (<usize>i0 * <usize>k) << sa;
    B += transB ? (<usize>j0 * <usize>k) << sb : <usize>j0 << sb;
    C += ((<usize>i0 * <usize>n) + <usize>j0) << 2;
    gemm(A, B, C, mp, k, np, transA, transB, alpha, lda, ldb, n, pa, pb, edge, aBf, bBf, 0, 0, (bf16 & 4) != 0);
  }
}

/** Floats packBWhole writes for op(B) of k x n: every K block's panels of all columns (n rounded up to NR). */
export function packedBFloats(k: i32, n: i32): usize {
  return <usize>max(k, 1) * <usize>paddedColumns(n);
}

/**
 * Packs op(B) (k x n; transB, bf16 as matmulF32Part's) for the columns [j0, j1) (j0 a multiple of NR)
 * into dst (packedBFloats(k, n) floats): the K block starting at p0 (kc = min(KC, k - p0) rows) at
 * float p0 * nPad, its panel of columns from j at j * kc within it, as packB lays out one block. Threads
 * split the columns; matmulF32PackedPart then reads the panels.
 */
export function packBWhole(b: usize, k: i32, n: i32, transB: bool, bf16: i32, dst: usize, j0: i32, j1: i32): void {
  const bBf = bf16 != 0, nPad = paddedColumns(n), ldb = transB ? k : n;
  for (let p0 = 0; p0 < k; p0 += KC) {
    const kc = min(KC, k - p0);
    packB(dst + (<usize>(p0 * nPad + j0 * kc) << 2), b, transB, ldb, p0, kc, j0, j1 - j0, bBf);
  }
}

/** Bytes of scratch matmulF32PackedPart needs for one call: the A panels and the edge tile (16-aligned). */
export function matmulPackedScratchBytes(m: i32, k: i32): usize {
  return ((<usize>packedABlockFloats(m, k) + <usize>(MR * NR)) << 2) + 32;
}

/**
 * Rows [i0, i1) of out (m x n, one matrix) = alpha * op(A) @ op(B), op(B) packed whole by packBWhole
 * at packedB: for threads, which then share one packing of B instead of each packing it again (the same
 * panels: the results are those of matmulF32Part). bf16A: 1: A is bfloat16 read in place; 4: the
 * product is added to out (as matmulF32Part's). The scratch pointer (matmulPackedScratchBytes) is
 * the last argument.
 */
export function matmulF32PackedPart(
  a: usize, packedB: usize, out: usize, m: i32, k: i32, n: i32, transA: bool, alpha: f32, i0: i32, i1: i32, bf16A: i32, scratch: usize,
): void {
  if (i1 <= i0 || n <= 0) return;
  const pa = scratch, edge = pa + (<usize>packedABlockFloats(m, k) << 2);
  const aBf = (bf16A & 1) != 0, sa: usize = aBf ? 1 : 2;
  const lda = transA ? m : k;
  const A = a + (transA ? <usize>i0 << sa : (<usize>i0 * <usize>k) << sa);
  const C = out + ((<usize>i0 * <usize>n) << 2);
  gemm(A, 0, C, i1 - i0, k, n, transA, false, alpha, lda, 0, n, pa, 0, edge, aBf, false, packedB, paddedColumns(n), (bf16A & 4) != 0);
}

export function matmulF32(
  a: usize, b: usize, out: usize, batch: i32, m: i32, k: i32, n: i32,
  transA: bool, transB: bool, alpha: f32, strideA: i32, strideB: i32,
): void {
  if (m <= 0 || n <= 0 || batch <= 0) return;
  const scratch = heap.alloc(matmulScratchBytes(m, k, n));
  matmulF32Part(a, b, out, m, k, n, transA, transB, alpha, strideA, strideB, 0, batch, 0, m, 0, n, 0, (scratch + 15) & ~15);
  heap.free(scratch);
}
