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

const MR: i32 = 6; // rows of the micro-tile
const NR: i32 = 8; // columns of the micro-tile (2 x f32x4)
const KC: i32 = 256; // K block: a B panel (KC x NR floats = 8 KiB) stays in L1
const MC: i32 = 72; // M block: a packed A block (MC x KC floats = 72 KiB) stays in L2
const NC: i32 = 2048; // N block: a packed B block (KC x NC floats = 2 MiB at most)

// Scratch for edge tiles: the full MR x NR tile is written here, then the valid part copied out.
let edgeBuf: usize = 0;

/** Packs op(B)[p0 .. p0+kc, j0 .. j0+nc] into k-major panels of NR columns, zero padded. */
function packB(dst: usize, B: usize, transB: bool, k: i32, n: i32, p0: i32, kc: i32, j0: i32, nc: i32): void {
  for (let jp = 0; jp < nc; jp += NR) {
    const nr = min(NR, nc - jp);
    const panel = dst + (<usize>(jp * kc) << 2);
    const j = j0 + jp;
    if (!transB) {
      if (nr == NR) {
        for (let p = 0; p < kc; p++) {
          const src = B + (<usize>((p0 + p) * n + j) << 2);
          const d = panel + (<usize>(p * NR) << 2);
          v128.store(d, v128.load(src));
          v128.store(d, v128.load(src, 16), 16);
        }
      } else {
        for (let p = 0; p < kc; p++) {
          const src = B + (<usize>((p0 + p) * n + j) << 2);
          const d = panel + (<usize>(p * NR) << 2);
          v128.store(d, f32x4.splat(0));
          v128.store(d, f32x4.splat(0), 16);
          for (let c = 0; c < nr; c++) store<f32>(d + (<usize>c << 2), load<f32>(src + (<usize>c << 2)));
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
        const src = B + (<usize>((j + c) * k + p0) << 2);
        let d = panel + (<usize>c << 2);
        for (let p = 0; p < kc; p++) {
          store<f32>(d, load<f32>(src + (<usize>p << 2)));
          d += <usize>(NR << 2);
        }
      }
    }
  }
}

/** Packs op(A)[i0 .. i0+mc, p0 .. p0+kc] into k-major panels of MR rows, zero padded. */
function packA(dst: usize, A: usize, transA: bool, m: i32, k: i32, i0: i32, mc: i32, p0: i32, kc: i32): void {
  for (let ip = 0; ip < mc; ip += MR) {
    const mr = min(MR, mc - ip);
    const panel = dst + (<usize>(ip * kc) << 2);
    const i = i0 + ip;
    if (mr < MR) memory.fill(panel, 0, <usize>(MR * kc) << 2);
    if (!transA) {
      // op(A)[i][p] = A[i * k + p]: each row is contiguous.
      for (let r = 0; r < mr; r++) {
        const src = A + (<usize>((i + r) * k + p0) << 2);
        let d = panel + (<usize>r << 2);
        for (let p = 0; p < kc; p++) {
          store<f32>(d, load<f32>(src + (<usize>p << 2)));
          d += <usize>(MR << 2);
        }
      }
    } else {
      // op(A)[i][p] = A[p * m + i]: each k step is a contiguous run of mr values.
      for (let p = 0; p < kc; p++) {
        const src = A + (<usize>((p0 + p) * m + i) << 2);
        const d = panel + (<usize>(p * MR) << 2);
        for (let r = 0; r < mr; r++) store<f32>(d + (<usize>r << 2), load<f32>(src + (<usize>r << 2)));
      }
    }
  }
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
  let c40 = f32x4.splat(0), c41 = f32x4.splat(0);
  let c50 = f32x4.splat(0), c51 = f32x4.splat(0);
  for (let p = 0; p < kc; p++) {
    const b0 = v128.load(bp), b1 = v128.load(bp, 16);
    let a = v128.load32_splat(ap);
    c00 = f32x4.add(c00, f32x4.mul(a, b0)); c01 = f32x4.add(c01, f32x4.mul(a, b1));
    a = v128.load32_splat(ap, 4);
    c10 = f32x4.add(c10, f32x4.mul(a, b0)); c11 = f32x4.add(c11, f32x4.mul(a, b1));
    a = v128.load32_splat(ap, 8);
    c20 = f32x4.add(c20, f32x4.mul(a, b0)); c21 = f32x4.add(c21, f32x4.mul(a, b1));
    a = v128.load32_splat(ap, 12);
    c30 = f32x4.add(c30, f32x4.mul(a, b0)); c31 = f32x4.add(c31, f32x4.mul(a, b1));
    a = v128.load32_splat(ap, 16);
    c40 = f32x4.add(c40, f32x4.mul(a, b0)); c41 = f32x4.add(c41, f32x4.mul(a, b1));
    a = v128.load32_splat(ap, 20);
    c50 = f32x4.add(c50, f32x4.mul(a, b0)); c51 = f32x4.add(c51, f32x4.mul(a, b1));
    ap += <usize>(MR << 2);
    bp += <usize>(NR << 2);
  }
  const s = f32x4.splat(alpha);
  put(c, 0, c00, s, first); put(c, 16, c01, s, first); c += ldc;
  put(c, 0, c10, s, first); put(c, 16, c11, s, first); c += ldc;
  put(c, 0, c20, s, first); put(c, 16, c21, s, first); c += ldc;
  put(c, 0, c30, s, first); put(c, 16, c31, s, first); c += ldc;
  put(c, 0, c40, s, first); put(c, 16, c41, s, first); c += ldc;
  put(c, 0, c50, s, first); put(c, 16, c51, s, first);
}

/** One matrix: C (m x n) = alpha * op(A) @ op(B), with packing scratch pa / pb. */
function gemm(A: usize, B: usize, C: usize, m: i32, k: i32, n: i32, transA: bool, transB: bool, alpha: f32, pa: usize, pb: usize): void {
  const ldc = <usize>n << 2;
  if (k == 0) {
    memory.fill(C, 0, <usize>(m * n) << 2);
    return;
  }
  for (let j0 = 0; j0 < n; j0 += NC) {
    const nc = min(NC, n - j0);
    for (let p0 = 0; p0 < k; p0 += KC) {
      const kc = min(KC, k - p0);
      const first = p0 == 0;
      packB(pb, B, transB, k, n, p0, kc, j0, nc);
      for (let i0 = 0; i0 < m; i0 += MC) {
        const mc = min(MC, m - i0);
        packA(pa, A, transA, m, k, i0, mc, p0, kc);
        for (let jp = 0; jp < nc; jp += NR) {
          const nr = min(NR, nc - jp);
          const bp = pb + (<usize>(jp * kc) << 2);
          for (let ip = 0; ip < mc; ip += MR) {
            const mr = min(MR, mc - ip);
            const ap = pa + (<usize>(ip * kc) << 2);
            const c = C + (<usize>((i0 + ip) * n + j0 + jp) << 2);
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

export function matmulF32(
  a: usize, b: usize, out: usize, batch: i32, m: i32, k: i32, n: i32,
  transA: bool, transB: bool, alpha: f32, strideA: i32, strideB: i32,
): void {
  if (m <= 0 || n <= 0 || batch <= 0) return;
  if (edgeBuf == 0) edgeBuf = heap.alloc(<usize>(MR * NR) << 2);
  const kcMax = min(KC, max(k, 1));
  const mcMax = (min(MC, m) + MR - 1) / MR * MR;
  const ncMax = (min(NC, n) + NR - 1) / NR * NR;
  const pa = heap.alloc(<usize>(mcMax * kcMax) << 2);
  const pb = heap.alloc(<usize>(ncMax * kcMax) << 2);
  for (let bi = 0; bi < batch; bi++) {
    const A = a + ((<usize>bi * <usize>strideA) << 2), B = b + ((<usize>bi * <usize>strideB) << 2), C = out + ((<usize>bi * <usize>m * <usize>n) << 2);
    gemm(A, B, C, m, k, n, transA, transB, alpha, pa, pb);
  }
  heap.free(pb);
  heap.free(pa);
}
