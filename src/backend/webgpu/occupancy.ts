// How many workgroups a launch should have before larger blocks are worth it (the matmul kernels'
// tile choice).

/**
 * Fewest workgroups a matmul launch should have before larger blocks are worth it: on an H200 the
 * 128 x 128 float32 blocks ran 4096^3 at 15.5 TFLOP/s (1024 blocks) but 1024^3 at 1.9 (64 blocks,
 * fewer than the GPU's 132 multiprocessors); the training step's 4096 x 512 outputs make 128.
 * WebGPU does not say how many multiprocessors an adapter has: 256 is two waves on the largest GPUs.
 * (A heuristic from those figures, not yet measured at the training shapes themselves:
 * scripts/gpu-matmul-shapes.ts does that.)
 */
export const MIN_BLOCKS = 256;

/** Workgroups of bm x bn blocks over `batch` m x n outputs. */
export function blocks(m: number, n: number, batch: number, bm: number, bn: number): number {
  return Math.ceil(m / bm) * Math.ceil(n / bn) * batch;
}
