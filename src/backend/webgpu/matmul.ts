import type { MatmulOptions, TensorRef } from '../backend.js';
import { numel } from '../shape.js';
import { accumulateViaTemporary, checkAccumulate } from '../matmul_accumulate.js';
import type { WebGPUBackend } from './backend.js';
import { accessor, fmtId } from './wgsl.js';
import { matmulSgmat, sgmatEligible } from './matmul_sgmat.js';
import { blocks, MIN_BLOCKS } from './occupancy.js';

/**
 * Tile sizes of the register-tiled matmul (shaders/matmul.wgsl), passed as override constants.
 * A workgroup computes tileM x tileN outputs, stepping K by tileK through workgroup memory; each
 * invocation owns threadM x threadN of them (at most 8 x 8), so a workgroup has
 * (tileM / threadM) * (tileN / threadN) invocations and uses (tileM + tileN) * tileK * 4 bytes of
 * workgroup storage.
 */
export interface MatmulTiles {
  readonly tileM: number;
  readonly tileN: number;
  readonly tileK: number;
  readonly threadM: number;
  readonly threadN: number;
}

/** The default: 64 x 64 x 16, 4 x 4 per invocation (256 invocations, 8 KiB). Fits every WebGPU adapter's guaranteed limits. */
export const DEFAULT_TILES: MatmulTiles = { tileM: 64, tileN: 64, tileK: 16, threadM: 4, threadN: 4 };
/**
 * For hardware adapters with >= 16 KiB of workgroup storage: 128 x 128 x 16, 8 x 8 per invocation
 * (256 invocations, 16 KiB). On an H200 (2026-11-30, bench/results/gpu-h200-kernels-run1.json) it ran
 * a 4096^3 float32 product at 15.4 TFLOP/s against 8.6 for K steps of 32 (32 KiB: fewer
 * workgroups resident per multiprocessor); 128 x 256 x 16 reached 16.7 but leaves more of a tile
 * idle on the shapes of training.
 */
export const LARGE_TILES: MatmulTiles = { tileM: 128, tileN: 128, tileK: 16, threadM: 8, threadN: 8 };
/**
 * For software adapters (SwiftShader, llvmpipe): 64 x 64 x 16, 8 x 8 per invocation (64 invocations,
 * 8 KiB). Fewer, fatter invocations suit a CPU; measured ~1.3x over DEFAULT_TILES on SwiftShader at 128^3.
 */
export const SOFTWARE_TILES: MatmulTiles = { tileM: 64, tileN: 64, tileK: 16, threadM: 8, threadN: 8 };
/** For small outputs (m or n <= 32): 32 x 32 x 16, 2 x 2 per invocation, so few invocations idle. */
export const SMALL_TILES: MatmulTiles = { tileM: 32, tileN: 32, tileK: 16, threadM: 2, threadN: 2 };

/** What matmulTiles() looks at: adapter limits, whether the adapter is a software one, features. */
export interface MatmulAdapter {
  readonly software: boolean;
  readonly maxComputeWorkgroupStorageSize: number;
  readonly maxComputeInvocationsPerWorkgroup: number;
  readonly features?: ReadonlySet<string>;
}

/**
 * Picks the matmul tiles for an adapter and output shape:
 * - unknown hardware adapters: DEFAULT_TILES (sizes every WebGPU adapter supports);
 * - software adapters (SwiftShader, llvmpipe): SOFTWARE_TILES (8 KiB, 64 invocations);
 * - hardware adapters with >= 16 KiB workgroup storage and >= 256 invocations: LARGE_TILES, unless
 *   the output is too small to fill a few of them (m or n < 128: DEFAULT_TILES);
 * - any adapter, m or n <= 32: SMALL_TILES.
 * Inputs that float16 holds exactly go to subgroup matrices instead where the device has them
 * (matmul() below; src/backend/webgpu/matmul_sgmat.ts).
 */
export function matmulTiles(adapter: MatmulAdapter, m: number, n: number, batch = 1): MatmulTiles {
  if (m <= 32 || n <= 32) return SMALL_TILES;
  if (adapter.software) return SOFTWARE_TILES;
  if (adapter.maxComputeWorkgroupStorageSize >= 16 * 1024 && adapter.maxComputeInvocationsPerWorkgroup >= 256 && blocks(m, n, batch, 128, 128) >= MIN_BLOCKS) {
    return LARGE_TILES;
  }
  return DEFAULT_TILES;
}


/** What matmulTiles() needs to know of a backend's device. */
export function matmulAdapter(g: WebGPUBackend): MatmulAdapter {
  return {
    software: g.software,
    maxComputeWorkgroupStorageSize: g.device.limits.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: g.device.limits.maxComputeInvocationsPerWorkgroup,
    features: g.features,
  };
}

/** Batched matmul on the GPU (float32 result, cast once to out's dtype when it is not float32). */
export function matmul(g: WebGPUBackend, a: TensorRef, b: TensorRef, out: TensorRef, options: MatmulOptions = {}, tiles?: MatmulTiles): void {
  if (options.accumulate && checkAccumulate(out, 'webgpu')) return accumulateViaTemporary(g, a, b, out, options);
  const r = out.shape.length;
  const m = out.shape[r - 2], n = out.shape[r - 1];
  const k = options.transA ? a.shape[a.shape.length - 2] : a.shape[a.shape.length - 1];
  const batch = numel(out.shape.slice(0, r - 2));
  const batchOf = (t: TensorRef) => numel(t.shape.slice(0, t.shape.length - 2));
  const t = tiles ?? matmulTiles(matmulAdapter(g), m, n, batch);
  const target = out.dtype === 'float32' ? out : { storage: g.alloc(m * n * batch * 4, 'temporary', 'matmul f32'), offset: 0, shape: out.shape, dtype: 'float32' as const };
  const finish = () => {
    if (target === out) return;
    g.cast(target, out);
    g.free(target.storage);
  };
  // Tensor cores: inputs exact in float16, outputs large enough to fill 128 x 128 blocks.
  if (!tiles && g.subgroupMatrix && sgmatEligible(a.dtype, b.dtype) && m >= SGMAT_MIN && n >= SGMAT_MIN) {
    matmulSgmat(g, g.subgroupMatrix, a, b, target, options);
    finish();
    return;
  }
  const p = g.pipeline('matmul', () => g.shader('dtype') + accessor('a', 0, 'read') + accessor('b', 1, 'read') + accessor('out', 2, 'read_write') + g.shader('matmul'), {
    FA: fmtId(a.dtype), FB: fmtId(b.dtype), TRANS_A: options.transA ? 1 : 0, TRANS_B: options.transB ? 1 : 0,
    TILE_M: t.tileM, TILE_N: t.tileN, TILE_K: t.tileK, THREAD_M: t.threadM, THREAD_N: t.threadN,
  });
  const tilesN = Math.ceil(n / t.tileN), tilesM = Math.ceil(m / t.tileM);
  const u = new ArrayBuffer(48);
  new Uint32Array(u).set([m, k, n, batch, batchOf(a) === 1 ? 0 : m * k, batchOf(b) === 1 ? 0 : k * n, a.offset, b.offset]);
  new Float32Array(u)[8] = options.alpha ?? 1;
  new Uint32Array(u)[9] = tilesN;
  g.dispatch(p, [{ storage: a.storage }, { storage: b.storage }, { storage: target.storage, what: 'matmul output' }], u, tilesM * tilesN * batch);
  finish();
}

/** Smallest output side that goes to subgroup matrices (below it the register-tiled kernel wastes less). */
export const SGMAT_MIN = 64;
