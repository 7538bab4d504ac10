// float32 matmul of the wasm backend: out[b] = alpha * op(A[b]) @ op(B[b]), op = transpose or not.
// Batch strides are in elements (0 broadcasts one matrix over the batch).

export function matmulF32(
  a: usize, b: usize, out: usize, batch: i32, m: i32, k: i32, n: i32,
  transA: bool, transB: bool, alpha: f32, strideA: i32, strideB: i32,
): void {
  for (let bi = 0; bi < batch; bi++) {
    const A = a + (<usize>(bi * strideA) << 2), B = b + (<usize>(bi * strideB) << 2), C = out + (<usize>(bi * m * n) << 2);
    memory.fill(C, 0, <usize>(m * n) << 2);
    for (let i = 0; i < m; i++) {
      const crow = C + (<usize>(i * n) << 2);
      for (let p = 0; p < k; p++) {
        const av = alpha * load<f32>(A + (<usize>(transA ? p * m + i : i * k + p) << 2));
        if (!transB) {
          const brow = B + (<usize>(p * n) << 2);
          const s = f32x4.splat(av);
          let j = 0;
          for (; j + 4 <= n; j += 4) {
            const o = crow + (<usize>j << 2);
            v128.store(o, f32x4.add(v128.load(o), f32x4.mul(s, v128.load(brow + (<usize>j << 2)))));
          }
          for (; j < n; j++) store<f32>(crow + (<usize>j << 2), load<f32>(crow + (<usize>j << 2)) + av * load<f32>(brow + (<usize>j << 2)));
        } else {
          for (let j = 0; j < n; j++) {
            store<f32>(crow + (<usize>j << 2), load<f32>(crow + (<usize>j << 2)) + av * load<f32>(B + (<usize>(j * k + p) << 2)));
          }
        }
      }
    }
  }
}
