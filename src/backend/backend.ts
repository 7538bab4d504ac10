// The one interface of kernels that both backends implement (ARCHITECTURE.md layer 3). Kernels
// take TensorRefs: a storage, an element offset, a shape and a dtype. Storage is packed exactly as
// pack() stores codes (little-endian; 16-bit codes two a word, 8-bit four a word, fp4 eight a word
// with element 0 in the low nibble, fp6 sixteen in three words), so one buffer means the same
// bytes on every backend. Unless a kernel says otherwise, math is done in float32 and the result
// is rounded once (nearest-even, ml_dtypes semantics) to the output's dtype; outputs are
// contiguous and start at offset 0.
import type { DType } from '../dtype/formats.js';
import type { Category, MemoryTracker } from './memory.js';

/** 'meta': shapes and memory accounting without values (src/backend/meta.ts). */
export type BackendKind = 'wasm' | 'webgpu' | 'meta';

/**
 * Element types of tensors: every float format, plus int32 for token ids and targets, and uint8
 * (one byte an element, four a word, element 0 in the low byte) for the codes of block-wise
 * quantized optimizer state (8-bit optimizers). uint8 tensors are created, written, read, copied
 * and moved between backends; the quantization kernels are the only kernels that take them.
 */
export type TensorDType = DType | 'int32' | 'uint8';

/** A block of device memory (a GPUBuffer, or a region of WebAssembly memory) with its accounting. */
export interface Storage {
  readonly backend: Backend;
  /** Bytes requested (what memoryAllocated counts). */
  readonly byteLength: number;
  readonly category: Category;
  readonly label: string;
  /** True once freed; using it then is an error. */
  readonly freed: boolean;
}

/** What a kernel sees of a tensor. */
export interface TensorRef {
  readonly storage: Storage;
  /** Offset of element 0 in elements of `dtype`. */
  readonly offset: number;
  readonly shape: readonly number[];
  readonly dtype: TensorDType;
  /**
   * Element strides of a strided view (permute, transpose); absent when contiguous. Only kernels
   * that say so read views (copy, attention); a Tensor view's `storage` refuses every other kernel.
   */
  readonly strides?: readonly number[];
  /** The storage of a strided view (`storage` refuses it); read it with viewStorage(t) from shape.ts. */
  readonly viewStorage?: Storage;
}

export type UnaryOp =
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'relu' | 'gelu' | 'silu' | 'sigmoid' | 'tanh' | 'abs' | 'square'
  /** x * alpha */
  | 'scale'
  /** x ^ alpha */
  | 'powScalar'
  /** x + alpha */
  | 'addScalar';

/** Elementwise binary ops; inputs broadcast (NumPy rules) to the output shape. */
export type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum'
  /** Activation backward: a = output gradient, b = forward input x; gives a * f'(x). */
  | 'reluBackward' | 'geluBackward' | 'siluBackward'
  /** Activation backward from the forward output y: a * y (1 - y) and a * (1 - y^2). */
  | 'sigmoidBackwardY' | 'tanhBackwardY';

export type ReduceOp = 'sum' | 'mean' | 'max' | 'amax';

export interface CastOptions {
  saturate?: boolean;
  rounding?: 'nearest-even' | 'toward-zero' | 'stochastic';
  seed?: bigint;
}

export interface MatmulOptions {
  /** Use A^T (the last two dims swapped). */
  transA?: boolean;
  transB?: boolean;
  /** out = alpha * A @ B (applied in float32 before the final rounding). */
  alpha?: number;
  /**
   * out += alpha * A @ B into a float32 out: the product rounded to float32, then added (the bits
   * of a matmul into a temporary and an add, without the temporary where the backend can). What
   * the linear layers' weight gradients use to add a piece's product into an existing .grad.
   * Backend-level: Tensor.matmul, which makes its output, refuses it.
   */
  accumulate?: boolean;
}

/** What float8ScaleUpdate computes (see there). */
export interface Float8ScaleOptions {
  /** Largest finite value of the fp8 format (448 for float8_e4m3fn, 57344 for float8_e5m2). */
  readonly fp8Max: number;
  /** Delayed scaling's margin: the scale is divided by 2^margin (default 0). */
  readonly margin?: number;
  readonly algorithm: 'max' | 'mostRecent' | 'current';
}

/** The smallest amax current scaling divides by (torchao's EPS = 1e-12, rounded to float32). */
export const FLOAT8_AMAX_EPS = Math.fround(1e-12);

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step count (bias correction). */
  step: number;
  /** Gradients are multiplied by this before use (GradScaler's 1/scale, or 1). */
  gradScale?: number;
}

/** What the device decides in an AdamW step taken under a GradScaler (nothing is read back). */
export interface AdamWDeviceInputs {
  /** float32, one element: when it is nonzero the kernel writes nothing (the GradScaler's skipped step). */
  foundInf: TensorRef;
  /**
   * float32 [2]: the step's (stepSize, bc2Sqrt), chosen on the device when the host does not know
   * the step count yet; they replace the ones computed from `hyper`.
   */
  scalars?: TensorRef;
}

/** One block-wise quantized state tensor: uint8 codes (one per element) and float32 absmax (one per block). */
export interface QuantizedStateRef {
  readonly codes: TensorRef;
  readonly absmax: TensorRef;
}

/**
 * One 8-bit optimizer step (Kernels.optimizer8bit): the update, the block size of its state, and
 * nine float32 scalars h[0..8] whose meaning depends on the kind:
 * - 'adam' (states m signed, v unsigned): gradScale, decay (1 - lr wd), beta1, 1 - beta1, beta2,
 *   1 - beta2, stepSize (lr / (1 - beta1^t)), bc2Sqrt (sqrt(1 - beta2^t)), eps: AdamW's kernel.
 * - 'momentum' (state buf, signed): momentum, 1 - dampening, -lr, nesterov (0 or 1), 0, 0,
 *   first (1 on the buffer's first step: buf = d), 0, 0.
 * - 'rmsprop' (state squareAvg, unsigned): alpha, 1 - alpha, -lr, eps, then zeros.
 * A device's scalars (AdamWDeviceInputs.scalars, float32 [2]) replace h[6] and h[7].
 */
export interface Optim8bitStep {
  readonly kind: 'adam' | 'momentum' | 'rmsprop';
  readonly blockSize: number;
  readonly h: readonly number[];
  /**
   * How the updated float32 values are rounded into a parameter stored below float32 (default
   * nearest-even; 'stochastic' with a seed: the stream one cast of the whole float32 parameter into
   * it would use). The update is computed in float32 from the parameter's exact value either way.
   */
  readonly rounding?: CastOptions;
}

/** The kernel set. Shapes are checked by the tensor layer; kernels may assume they fit. */
export interface Kernels {
  /**
   * out = x converted to out.dtype (bit-identical to encode/decode; NaN payloads kept as there).
   * x and out hold the same number of elements, taken in row-major order (their shapes may differ,
   * as in a reshape).
   */
  cast(x: TensorRef, out: TensorRef, options?: CastOptions): void;
  /**
   * Every element of out = value, rounded once (nearest-even) from the number to out.dtype (int32:
   * an integer). out may be a view (any offset); bits of the storage outside it are kept. Runs on
   * the device: nothing is uploaded.
   */
  fill(out: TensorRef, value: number): void;
  /** out = x with its last two dimensions swapped (same dtype; codes copied bit for bit). */
  transpose(x: TensorRef, out: TensorRef): void;
  /**
   * out (contiguous, x's shape and dtype) = x's elements in row-major order, read through x's
   * strides when x is a strided view (codes copied bit for bit): what Tensor.contiguous() runs.
   */
  copy(x: TensorRef, out: TensorRef): void;
  /** out = op(x); out may be x (in place) on every backend. */
  unary(op: UnaryOp, x: TensorRef, out: TensorRef, alpha?: number): void;
  /** out = op(a, b) with broadcasting; out may be a or b (in place) on every backend. */
  binary(op: BinaryOp, a: TensorRef, b: TensorRef, out: TensorRef): void;
  /** out = cond != 0 ? a : b, broadcasting. */
  where(cond: TensorRef, a: TensorRef, b: TensorRef, out: TensorRef): void;
  /** Reduces `axis` (out has that dim removed), or everything when axis is null (out has shape []). float32 accumulation. */
  reduce(op: ReduceOp, x: TensorRef, out: TensorRef, axis: number | null): void;
  /** Softmax (or log-softmax) over the last axis, numerically stable (max subtracted). */
  softmax(x: TensorRef, out: TensorRef, log: boolean): void;
  /** out[..., M, N] = A[..., M, K] @ B[..., K, N] (batch dims broadcast), float32 accumulation. */
  matmul(a: TensorRef, b: TensorRef, out: TensorRef, options?: MatmulOptions): void;
  /** Over the last axis: out = x * rsqrt(mean(x^2) + eps) * weight; rstd (shape = x without the last dim, float32) saved for backward. */
  rmsNorm(x: TensorRef, weight: TensorRef, out: TensorRef, rstd: TensorRef, eps: number): void;
  /** dx and dweight (dweight accumulated: dweight += ...) of rmsNorm. */
  rmsNormBackward(dy: TensorRef, x: TensorRef, weight: TensorRef, rstd: TensorRef, dx: TensorRef, dweight: TensorRef): void;
  /** LayerNorm over the last axis with weight and bias; mean and rstd saved (float32). */
  layerNorm(x: TensorRef, weight: TensorRef, bias: TensorRef, out: TensorRef, mean: TensorRef, rstd: TensorRef, eps: number): void;
  layerNormBackward(dy: TensorRef, x: TensorRef, weight: TensorRef, mean: TensorRef, rstd: TensorRef, dx: TensorRef, dweight: TensorRef, dbias: TensorRef): void;
  /** out[..., :] = table[ids[...], :] (ids int32; an id outside [0, rows) gives a zero row). */
  embedding(ids: TensorRef, table: TensorRef, out: TensorRef): void;
  /** dtable[ids[i], :] += dy[i, :] (float32 accumulation; dtable is float32). */
  embeddingBackward(ids: TensorRef, dy: TensorRef, dtable: TensorRef): void;
  /**
   * Scaled-dot-product attention: q, k, v [B, H, T, D] -> out [B, H, T, D]; optional key
   * padding mask [B, T] (1 = keep, 0 = pad); `lse` [B, H, T] float32 log-sum-exp saved for backward.
   * causal (default true): query t sees keys s <= t; false: every (unmasked) key (BERT).
   */
  attention(q: TensorRef, k: TensorRef, v: TensorRef, out: TensorRef, lse: TensorRef, mask: TensorRef | null, scale: number, causal?: boolean): void;
  attentionBackward(
    dout: TensorRef, q: TensorRef, k: TensorRef, v: TensorRef, out: TensorRef, lse: TensorRef, mask: TensorRef | null, scale: number,
    dq: TensorRef, dk: TensorRef, dv: TensorRef, causal?: boolean,
  ): void;
  /**
   * Mean cross-entropy of logits [N, C] against int32 targets [N], skipping
   * targets equal to ignoreIndex; loss: shape [], dlogits (optional, same shape as logits) gets the
   * gradient of the mean loss times `gradScale`.
   */
  crossEntropy(logits: TensorRef, targets: TensorRef, loss: TensorRef, dlogits: TensorRef | null, ignoreIndex: number, gradScale: number): void;
  /**
   * torch._scaled_mm with per-tensor scales read on the device: out[M, N] = (A * scaleA) @ (B * scaleB),
   * A [M, K] and B [K, N] codes of formats of 8 bits or fewer; scaleA and scaleB are float32 tensors
   * of one element (the dequantization scales, TE's scale_inv). MX and row-wise scales via the dtype layer.
   */
  scaledMatmul(a: TensorRef, b: TensorRef, out: TensorRef, scaleA: TensorRef, scaleB: TensorRef): void;
  /**
   * Float8 training's scale update, on the device (nothing is read back). history is float32 [L]
   * (L >= 1) whose element 0 holds the newest amax; scale and scaleInv are float32 one-element tensors.
   * 'current' (torchao's dynamic scaling): scale = fp8Max / max(history[0], FLOAT8_AMAX_EPS) (NaN
   * stays NaN, as torch.clamp), history untouched. 'max' | 'mostRecent' (Transformer Engine's
   * delayed scaling, its amax_and_scale_update kernel): amax = the largest entry of the history (NaN
   * entries skipped, as fmaxf) or history[0]; the history is rolled by one (element i + 1 to i,
   * element 0 to L - 1) and element 0 set to 0; scale = (fp8Max * 2^-margin) / amax when amax is
   * finite and > 0, else the scale is kept. Both: scaleInv = 1 / scale. float32 arithmetic, each
   * operation rounded (wasm: correctly rounded; WebGPU: WGSL's division).
   */
  float8ScaleUpdate(history: TensorRef, scale: TensorRef, scaleInv: TensorRef, options: Float8ScaleOptions): void;
  /**
   * GradScaler's kernel (torch._amp_foreach_non_finite_check_and_unscale_): multiplies every tensor
   * (float32) in place by invScale (float32, one element, read on the device) and sets foundInf
   * (float32, one element) to 1 if any element of any tensor is inf or NaN (else leaves it).
   */
  nonFiniteCheckAndUnscale(tensors: readonly TensorRef[], foundInf: TensorRef, invScale: TensorRef): void;
  /**
   * GradScaler's scale update (torch._amp_update_scale_), on the device. scale, invScale and
   * foundInf are float32 and growthTracker int32, one element each. If foundInf is nonzero:
   * scale *= backoffFactor and the tracker is reset to 0; else the tracker counts up, and when it
   * reaches growthInterval, scale *= growthFactor (kept only if finite) and the tracker is reset.
   * Products are float32 (the factors rounded to float32; a GPU may flush a subnormal scale to 0).
   * invScale = 1 / scale afterwards (exact for powers of two on every backend; correctly rounded on
   * wasm, WGSL's division elsewhere on WebGPU).
   */
  ampUpdateScale(
    scale: TensorRef, invScale: TensorRef, growthTracker: TensorRef, foundInf: TensorRef,
    growthFactor: number, backoffFactor: number, growthInterval: number,
  ): void;
  /** out (shape [], float32) = sqrt(sum over tensors of sum(x^2)), float32 accumulation per tensor. */
  globalNorm(tensors: readonly TensorRef[], out: TensorRef): void;
  /**
   * One AdamW step in place (PyTorch's update rule); param may be low precision, m and v float32.
   * With `device`, the step is skipped on the device when device.foundInf is nonzero (param, m and
   * v keep every bit), and device.scalars, if given, supply the bias-corrected scalars.
   */
  adamw(param: TensorRef, grad: TensorRef, m: TensorRef, v: TensorRef, hyper: AdamWHyper, device?: AdamWDeviceInputs): void;
  /**
   * Block-wise dynamic quantization (src/backend/quant.ts): x (float32, n elements) -> codes (uint8
   * [n]) and absmax (float32, one per block of blockSize); signed selects the map. Bit-identical on
   * every backend.
   */
  quantizeBlockwise(x: TensorRef, codes: TensorRef, absmax: TensorRef, signed: boolean, blockSize: number): void;
  /** out (float32 [n]) = code value * absmax of its block; bit-identical on every backend. */
  dequantizeBlockwise(codes: TensorRef, absmax: TensorRef, out: TensorRef, signed: boolean, blockSize: number): void;
  /**
   * One fused 8-bit optimizer step in place, per block: dequantize the state(s), update them and
   * the parameter in float32 (param may be low precision: rounded once), then requantize the
   * state(s) with the block's new absmax. grad is any float dtype. `state2` is Adam's second moment
   * (null for the one-state kinds). With `device`, nothing is written where device.foundInf is
   * nonzero, and device.scalars replace h[6], h[7].
   */
  optimizer8bit(param: TensorRef, grad: TensorRef, state1: QuantizedStateRef, state2: QuantizedStateRef | null, step: Optim8bitStep, device?: AdamWDeviceInputs): void;
  // ---- vision kernels (NCHW; shapes checked by the ops in src/nn/vision.ts) ----
  /** out [N, O, OH, OW] = conv2d(x [N, C, H, W], weight [O, C / groups, kh, kw]) (no bias), torch.nn.functional.conv2d. */
  conv2d(x: TensorRef, weight: TensorRef, out: TensorRef, geom: Conv2dGeometry): void;
  /** dx [N, C, H, W] (overwritten) of conv2d from dy [N, O, OH, OW]. */
  conv2dBackwardInput(dy: TensorRef, weight: TensorRef, dx: TensorRef, geom: Conv2dGeometry): void;
  /** dweight [O, C / groups, kh, kw] (float32, accumulated: dweight += ...) of conv2d. */
  conv2dBackwardWeight(dy: TensorRef, x: TensorRef, dweight: TensorRef, geom: Conv2dGeometry): void;
  /** Per channel of x [N, C, ...]: mean [C] and biased variance [C] (float32, two passes). */
  batchNormStats(x: TensorRef, mean: TensorRef, variance: TensorRef): void;
  /** out = (x - mean[c]) * rstd[c] * weight[c] + bias[c] over x [N, C, ...]. */
  batchNorm(x: TensorRef, mean: TensorRef, rstd: TensorRef, weight: TensorRef, bias: TensorRef, out: TensorRef): void;
  /**
   * dx (overwritten), dweight and dbias (float32, accumulated) of batchNorm. training: mean and rstd
   * were the batch's own statistics (their gradient flows into dx); false: constants (eval mode).
   */
  batchNormBackward(
    dy: TensorRef, x: TensorRef, mean: TensorRef, rstd: TensorRef, weight: TensorRef, dx: TensorRef, dweight: TensorRef, dbias: TensorRef, training: boolean,
  ): void;
  /** Max over windows of x [N, C, H, W] -> out [N, C, OH, OW]; indices (int32, same shape) = h * W + w of each max (NaN wins, as PyTorch). */
  maxPool2d(x: TensorRef, out: TensorRef, indices: TensorRef, geom: Pool2dGeometry): void;
  /** dx [N, C, H, W] (overwritten) = dy scattered to the saved indices (summed where windows overlap). */
  maxPool2dBackward(dy: TensorRef, indices: TensorRef, dx: TensorRef, geom: Pool2dGeometry): void;
  /** out [N, C, OH, OW] = means over PyTorch's adaptive windows [floor(i H / OH), ceil((i + 1) H / OH)) of x [N, C, H, W]. */
  adaptiveAvgPool2d(x: TensorRef, out: TensorRef): void;
  /** dx [N, C, H, W] (overwritten) of adaptiveAvgPool2d. */
  adaptiveAvgPool2dBackward(dy: TensorRef, dx: TensorRef): void;
}

/** conv2d's stride, padding and dilation ([height, width]) and groups. */
export interface Conv2dGeometry {
  readonly stride: readonly [number, number];
  readonly padding: readonly [number, number];
  readonly dilation: readonly [number, number];
  readonly groups: number;
}

/** maxPool2d's window, stride, padding (implicit -inf) and dilation ([height, width]); the output shape (ceilMode) is the out tensor's. */
export interface Pool2dGeometry {
  readonly kernel: readonly [number, number];
  readonly stride: readonly [number, number];
  readonly padding: readonly [number, number];
  readonly dilation: readonly [number, number];
}

/**
 * Work counters of a backend since it was created (`backend.stats()`); take the difference of two
 * snapshots for a span of work. The WebGPU-only counters stay 0 on wasm.
 */
export interface BackendStats {
  /**
   * Buffers obtained from the device: pool misses (memoryStats().deviceAllocations) plus, on
   * WebGPU, read-back staging buffers and uniform buffers.
   */
  readonly deviceAllocations: number;
  /** Bytes copied from the host into device memory: write(), and uniform blocks on WebGPU. */
  readonly bytesUploaded: number;
  /** Bytes copied back to the host by read(). */
  readonly bytesRead: number;
  /** Compute dispatches recorded (WebGPU). */
  readonly dispatches: number;
  /** Compute passes begun (WebGPU). */
  readonly computePasses: number;
  /** Command buffers submitted to the queue (WebGPU). */
  readonly submits: number;
  /** Uniform buffers created (WebGPU; included in deviceAllocations). */
  readonly uniformBuffersCreated: number;
  /** Bind groups created (WebGPU). */
  readonly bindGroupsCreated: number;
  /** Compute pipelines compiled (WebGPU). */
  readonly pipelinesCreated: number;
}

/** A backend: memory that it accounts for, plus the kernels. */
/** What timeRegion() measured. */
export interface TimedRegion<T> {
  readonly result: T;
  /** Milliseconds: GPU time of the region's compute passes ('timestamp-query'), or wall time from a synchronize before to one after ('wall'). */
  readonly ms: number;
  readonly timing: 'timestamp-query' | 'wall';
}

/**
 * Times fn on `backend`: GPU timestamps where the backend has them (backend.timeRegion), else
 * wall time between a synchronize() before fn and one after it.
 */
export async function timeRegion<T>(backend: Backend, fn: () => T | Promise<T>): Promise<TimedRegion<T>> {
  return backend.timeRegion ? backend.timeRegion(fn) : wallTimeRegion(backend, fn);
}

/** Wall time of fn from a backend.synchronize() before it to one after it. */
export async function wallTimeRegion<T>(backend: Backend, fn: () => T | Promise<T>): Promise<TimedRegion<T>> {
  await backend.synchronize();
  const t0 = performance.now();
  const result = await fn();
  await backend.synchronize();
  return { result, ms: performance.now() - t0, timing: 'wall' };
}

export interface Backend extends Kernels {
  readonly kind: BackendKind;
  /** One line: which device and why it was chosen. */
  readonly description: string;
  readonly memory: MemoryTracker;
  /** Largest single buffer the device allows, in bytes. */
  readonly maxBufferSize: number;
  alloc(byteLength: number, category: Category, label?: string): Storage;
  free(storage: Storage): void;
  /** Copies bytes into storage at byteOffset. */
  write(storage: Storage, data: ArrayBufferView, byteOffset?: number): void;
  /** Reads bytes back (waits for queued GPU work). */
  read(storage: Storage, byteOffset: number, byteLength: number): Promise<Uint8Array>;
  /** Waits until queued work is done and surfaces any device error. */
  synchronize(): Promise<void>;
  /**
   * Runs fn and returns how long the device worked on what it recorded (WebGPU with the
   * 'timestamp-query' feature); absent where only wall time is known (use timeRegion()).
   */
  timeRegion?<T>(fn: () => T | Promise<T>): Promise<TimedRegion<T>>;
  /** Gives pooled free buffers back to the device. */
  emptyCache(): void;
  /** Work counters since the backend was created (device allocations, uploads, dispatches, submits). */
  stats(): BackendStats;
  /** Releases the device (GPU) or nothing (wasm). The backend is unusable afterwards. */
  destroy(): void;
}

/** Kernels that both backends implement in per-family modules (norms, embedding, attention, loss, optim, scaled matmul). */
export type FamilyKernelName =
  | 'rmsNorm' | 'rmsNormBackward' | 'layerNorm' | 'layerNormBackward' | 'embedding' | 'embeddingBackward' | 'attention'
  | 'attentionBackward' | 'crossEntropy' | 'scaledMatmul' | 'float8ScaleUpdate' | 'nonFiniteCheckAndUnscale' | 'ampUpdateScale' | 'globalNorm' | 'adamw'
  | 'quantizeBlockwise' | 'dequantizeBlockwise' | 'optimizer8bit'
  | VisionKernelName;

/** The vision kernels (src/backend/wasm/vision.ts, src/backend/webgpu/vision.ts, shaders/vision.wgsl). */
export type VisionKernelName =
  | 'conv2d' | 'conv2dBackwardInput' | 'conv2dBackwardWeight' | 'batchNormStats' | 'batchNorm' | 'batchNormBackward'
  | 'maxPool2d' | 'maxPool2dBackward' | 'adaptiveAvgPool2d' | 'adaptiveAvgPool2dBackward';

/** A table of kernel functions for backend type B: each Kernels method with the backend as first argument. */
export type FamilyTable<B, K extends keyof Kernels> = {
  [N in K]: Kernels[N] extends (...args: infer A) => infer R ? (backend: B, ...args: A) => R : never;
};

/**
 * Registers a family table's kernels as methods of a backend class (each called with the backend
 * first), so that the class writes no forwarders; the class declares them by merging an interface
 * `Pick<Kernels, K>` with itself.
 */
export function registerFamilies<B, K extends keyof Kernels>(cls: { readonly prototype: B }, table: FamilyTable<B, K>): void {
  for (const name of Object.keys(table) as K[]) {
    const kernel = table[name] as (backend: B, ...args: unknown[]) => unknown;
    Object.defineProperty(cls.prototype, name, {
      value: function (this: B, ...args: unknown[]) { return kernel(this, ...args); },
      writable: true, configurable: true,
    });
  }
}
