// The GPU backend: WGSL compute shaders (shaders/*.wgsl) on WebGPU. Buffers come from one pooled,
// accounted allocator; pipelines are compiled once per device and key (kernel + dtypes +
// constants); work is recorded into one command encoder and compute pass (uniforms in a ring
// written once a submit, bind groups cached) and submitted when results are read.
import { shaders } from '../../../build/shaders.js';
import { InvalidArgumentError, MemfitError } from '../../errors.js';
import { formatOf, ROUNDING_IDS } from '../../dtype/formats.js';
import { checkUint8Cast } from '../quant.js';
import { checkCastOptions } from '../cast_options.js';
import type {
  Backend, BackendStats, BinaryOp, TimedRegion, CastOptions, FamilyKernelName, ReduceOp, Storage, TensorRef, UnaryOp,
} from '../backend.js';
import { registerFamilies, wallTimeRegion } from '../backend.js';
import { BufferPool, MemoryTracker, sizeClass, type Category } from '../memory.js';
import { fillPlan } from '../fill.js';
import { BINARY_IDS, REDUCE_IDS, UNARY_IDS } from '../ops.js';
import { broadcastStrides, checkCopy, contiguousStrides, numel, sameShape, viewStorage } from '../shape.js';
import { acquireDevice, type AcquiredDevice, type WebGPUOptions } from './device.js';
import { gpuFamilies } from './families.js';
import { accessor, fmtId, readers, WGSL_EXTENSIONS } from './wgsl.js';
import { GpuTimer } from './timer.js';
import { probeSubgroupMatrix, sgmatSelfTest, supportName, type SubgroupMatrixSupport } from './matmul_sgmat.js';

export { accessor, fmtId, readers, WGSL_EXTENSIONS } from './wgsl.js';

class GpuStorage implements Storage {
  freed = false;
  constructor(
    readonly backend: WebGPUBackend, readonly buffer: GPUBuffer, readonly size: number, readonly byteLength: number,
    readonly category: Category, readonly label: string, readonly memId: number,
  ) {}
}

export interface Binding {
  readonly storage: Storage;
  /** Name used in errors about binding limits. */
  readonly what?: string;
  /** Binding number (default: its index in the list). */
  readonly binding?: number;
}

const WORKGROUP = 256;
/** Dispatches recorded before a submit (the GPU starts on a long sequence while the rest is recorded). */
const MAX_DISPATCHES_PER_SUBMIT = 64;
/** The uniform ring: every dispatch's uniform block of one submit, written with one writeBuffer. */
const UNIFORM_RING_BYTES = 64 * 1024;
/** The upload ring: writes into buffers that recorded work uses, copied in their place in the order. */
const UPLOAD_RING_BYTES = 256 * 1024;
/** Read-back staging buffers up to this size are kept for the next read of their size class. */
const STAGING_KEEP_BYTES = 64 * 1024;
/** Bind groups kept (the least recently used goes past this). */
const BIND_GROUP_CACHE = 4096;


/** A cast's rounding mode (an override constant) and its stochastic stream (uniform rng). */
interface CastParams {
  readonly mode: number;
  /** Seed as an unsigned 64-bit integer. */
  readonly seed: bigint;
  /** Stream position (unsigned 64-bit) of output element 0. */
  readonly base: bigint;
}

// The kernels of the family modules (families.ts: matmul, norms, attention, ...) are methods too,
// registered at the end of this file.
export interface WebGPUBackend extends Pick<Backend, FamilyKernelName | 'matmul'> {}

export class WebGPUBackend implements Backend {
  readonly kind = 'webgpu' as const;
  readonly memory = new MemoryTracker();
  readonly device: GPUDevice;
  readonly description: string;
  readonly maxBufferSize: number;
  readonly maxBindingSize: number;
  readonly features: ReadonlySet<string>;
  readonly software: boolean;
  /** The tensor-core matmul's settings on this device, or null where it does not run (src/backend/webgpu/matmul_sgmat.ts). */
  subgroupMatrix: SubgroupMatrixSupport | null = null;
  private readonly pool: BufferPool<GPUBuffer>;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private passPipeline: GPUComputePipeline | null = null;
  /** Dispatches recorded into the current encoder. */
  private recorded = 0;
  /** Buffers that recorded, not yet submitted commands use: a write into one must keep its place. */
  private readonly recordedBuffers = new Set<GPUBuffer>();
  private uniformRing: GPUBuffer | null = null;
  private readonly uniformHost = new Uint8Array(UNIFORM_RING_BYTES);
  private uniformUsed = 0;
  private readonly uniformAlign: number;
  private uploadRing: GPUBuffer | null = null;
  private uploadUsed = 0;
  private readonly staging = new Map<number, GPUBuffer[]>();
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly layouts = new WeakMap<GPUComputePipeline, GPUBindGroupLayout>();
  private readonly ids = new WeakMap<object, number>();
  private nextId = 1;
  private errors: string[] = [];
  private readonly counts = {
    bytesUploaded: 0, bytesRead: 0, dispatches: 0, computePasses: 0, submits: 0,
    otherBuffers: 0, uniformBuffersCreated: 0, bindGroupsCreated: 0, pipelinesCreated: 0,
  };
  private lost: string | null = null;
  private readonly release: () => void;
  /** The open timeRegion's timer (its passes get timestamp writes), or null. */
  private timer: GpuTimer | null = null;

  private constructor(acq: AcquiredDevice) {
    this.device = acq.device;
    this.description = acq.description;
    this.features = acq.features;
    this.software = acq.software;
    this.release = acq.release;
    this.maxBufferSize = this.device.limits.maxBufferSize;
    this.maxBindingSize = this.device.limits.maxStorageBufferBindingSize;
    this.uniformAlign = this.device.limits.minUniformBufferOffsetAlignment;
    this.pool = new BufferPool<GPUBuffer>(this.memory, (size) => this.device.createBuffer({
      size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, label: `memfit pool ${size}`,
    }), (b) => b.destroy());
    this.device.lost.then((info) => {
      if (info.reason !== 'destroyed') this.lost = `GPU device lost (${info.reason}): ${info.message}`;
    });
    this.device.addEventListener('uncapturederror', (ev) => {
      this.errors.push((ev as GPUUncapturedErrorEvent).error.message);
    });
  }

  /** Acquires a device (hardware, else SwiftShader in Node) and builds the backend. */
  static async create(options: WebGPUOptions = {}): Promise<WebGPUBackend> {
    const acq = await acquireDevice(options);
    const g = new WebGPUBackend(acq);
    if (options.subgroupMatrix !== false) {
      // The first spelling and uniformity choice that compiles and passes the self-test.
      for (const support of await probeSubgroupMatrix(acq.device, acq.adapterInfo, acq.features, g.notes)) {
        const problem = await sgmatSelfTest(g, support);
        if (problem) { g.notes(problem); continue; }
        g.subgroupMatrix = support;
        g.notes(`subgroup matrices on: ${supportName(support)}`);
        break;
      }
    }
    return g;
  }

  /** Why an optional path (subgroup matrices) is off on this device, one line each. */
  readonly probeNotes: string[] = [];
  private readonly notes = (line: string) => { this.probeNotes.push(line); };

  // ---- memory -------------------------------------------------------------------------------

  alloc(byteLength: number, category: Category, label = ''): Storage {
    this.check();
    if (byteLength > this.maxBufferSize) {
      throw new MemfitError('BUFFER_TOO_LARGE', `${label || 'tensor'} needs ${byteLength} bytes, more than this device's maxBufferSize ${this.maxBufferSize}`);
    }
    const { buffer, size } = this.pool.acquire(Math.ceil(byteLength / 4) * 4 + 4); // +4: fp6 readers may touch the next word
    const id = this.memory.onAlloc(byteLength, category, label);
    return new GpuStorage(this, buffer, size, byteLength, category, label, id);
  }

  free(storage: Storage): void {
    const s = this.own(storage);
    s.freed = true;
    this.pool.release(s.buffer, s.size);
    this.memory.onFree(s.memId);
  }

  write(storage: Storage, data: ArrayBufferView, byteOffset = 0): void {
    const s = this.own(storage);
    if (byteOffset + data.byteLength > s.byteLength) throw new InvalidArgumentError(`write of ${data.byteLength} bytes at ${byteOffset} overruns a ${s.byteLength}-byte storage`);
    if (byteOffset % 4 !== 0) throw new InvalidArgumentError('GPU writes must start at a multiple of 4 bytes');
    const padded = Math.ceil(data.byteLength / 4) * 4;
    let bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    // A view of shared memory (the threaded wasm backend's, which paged optimizer state and
    // toBackend copies come from) is copied first: WebGPU takes no SharedArrayBuffer (Dawn in Node
    // crashes on one, browsers throw).
    if (padded !== data.byteLength || (typeof SharedArrayBuffer === 'function' && data.buffer instanceof SharedArrayBuffer)) {
      bytes = new Uint8Array(padded);
      bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
    this.counts.bytesUploaded += padded;
    if (this.recordedBuffers.has(s.buffer)) {
      // Recorded, unsubmitted work uses this buffer, and queue.writeBuffer would land before it: the
      // bytes go through the upload ring and a copy recorded in order (past a submit when large).
      if (padded <= UPLOAD_RING_BYTES - this.uploadUsed) {
        const ring = (this.uploadRing ??= this.createBuffer(UPLOAD_RING_BYTES, GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, 'memfit upload ring'));
        this.device.queue.writeBuffer(ring, this.uploadUsed, bytes);
        this.copyBuffer(ring, this.uploadUsed, s.buffer, byteOffset, padded);
        this.uploadUsed += padded;
        return;
      }
      this.flush();
    }
    this.device.queue.writeBuffer(s.buffer, byteOffset, bytes);
  }

  async read(storage: Storage, byteOffset: number, byteLength: number): Promise<Uint8Array> {
    const s = this.own(storage);
    if (byteOffset + byteLength > s.byteLength) throw new InvalidArgumentError(`read of ${byteLength} bytes at ${byteOffset} overruns a ${s.byteLength}-byte storage`);
    const start = Math.floor(byteOffset / 4) * 4;
    const size = Math.ceil((byteOffset + byteLength - start) / 4) * 4;
    const cls = size <= STAGING_KEEP_BYTES ? sizeClass(size) : Math.max(size, 4);
    const staging = this.staging.get(cls)?.pop() ?? this.createBuffer(cls, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, 'memfit readback');
    this.counts.bytesRead += size;
    this.copyBuffer(s.buffer, start, staging, 0, size);
    this.flush();
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, size);
    } catch (e) {
      staging.destroy();
      this.throwErrors();
      throw e;
    }
    const out = new Uint8Array(staging.getMappedRange(0, size)).slice(byteOffset - start, byteOffset - start + byteLength);
    staging.unmap();
    if (cls <= STAGING_KEEP_BYTES && !this.lost) {
      let list = this.staging.get(cls);
      if (!list) this.staging.set(cls, (list = []));
      list.push(staging);
    } else staging.destroy();
    this.throwErrors();
    return out;
  }

  async synchronize(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.throwErrors();
  }

  /**
   * Runs fn and measures the GPU time of the work it records: with the 'timestamp-query' feature,
   * every compute pass begun inside the region writes timestamps at its beginning and end (core
   * WebGPU allows no timestamps inside a pass) and the passes' durations are summed (copies and
   * the gaps between passes are not counted); without it, wall time from a synchronize before fn
   * to one after. Regions do not nest.
   */
  async timeRegion<T>(fn: () => T | Promise<T>): Promise<TimedRegion<T>> {
    if (this.timer) throw new InvalidArgumentError('timeRegion: regions do not nest (a timed region is already open)');
    if (!this.features.has('timestamp-query')) return wallTimeRegion(this, fn);
    this.flush(); // work recorded before the region is not timed
    const timer = (this.timer = new GpuTimer(this.device));
    let result: T;
    try {
      result = await fn();
    } finally {
      this.flush(); // the region's last pass ends here
      this.timer = null;
    }
    const ms = await timer.read();
    this.throwErrors();
    return { result, ms, timing: 'timestamp-query' };
  }

  /** Gives pooled buffers (and kept read-back buffers) back to the device; recorded work is submitted first. */
  emptyCache(): void {
    this.flush();
    this.pool.emptyCache();
    this.bindGroups.clear(); // they hold the destroyed buffers
    for (const list of this.staging.values()) for (const b of list) b.destroy();
    this.staging.clear();
  }

  stats(): BackendStats {
    const { otherBuffers, ...c } = this.counts;
    return { ...c, deviceAllocations: this.memory.deviceAllocations + otherBuffers };
  }

  /** True after destroy() (or device loss). */
  get isDestroyed(): boolean {
    return this.lost !== null;
  }

  destroy(): void {
    this.flush();
    this.emptyCache();
    this.device.destroy();
    this.lost = 'the webgpu backend was destroyed';
    this.release();
  }

  // ---- dispatch -----------------------------------------------------------------------------

  /**
   * The pipeline for `kernel` (a WGSL source) with override `constants`, compiled once per key.
   * `//#enable NAME` lines anywhere in the source become `enable NAME;` directives at its top (WGSL
   * wants them before everything, the dtype library included); a name the device lacks the
   * feature for is a MemfitError naming both.
   */
  pipeline(key: string, code: () => string, constants: Record<string, number> = {}): GPUComputePipeline {
    const full = `${key}|${Object.entries(constants).map(([k, v]) => `${k}=${v}`).join(',')}`;
    let p = this.pipelines.get(full);
    if (!p) {
      const module = this.device.createShaderModule({ code: this.withDirectives(key, code()), label: key });
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main', constants }, label: full });
      this.counts.pipelinesCreated++;
      this.pipelines.set(full, p);
    }
    return p;
  }

  /** `source` with an `enable` directive first for each `//#enable NAME` line in it. */
  withDirectives(key: string, source: string): string {
    const names = [...new Set([...source.matchAll(/^[ \t]*\/\/#enable[ \t]+(\S+)[ \t]*$/gm)].map((m) => m[1]))];
    for (const n of names) {
      const feature = WGSL_EXTENSIONS[n];
      if (feature === undefined) throw new MemfitError('UNKNOWN_WGSL_EXTENSION', `shader ${key} asks for WGSL extension ${JSON.stringify(n)}; known: ${Object.keys(WGSL_EXTENSIONS).join(', ')}`);
      if (feature && !this.features.has(feature)) {
        throw new MemfitError('UNSUPPORTED_FEATURE', `shader ${key} needs \`enable ${n};\` (device feature '${feature}'), which this device does not offer (${this.description})`);
      }
    }
    return names.map((n) => `enable ${n};\n`).join('') + source;
  }

  /** A shader source from shaders/, by file name without extension. */
  shader(name: string): string {
    const s = shaders[name];
    if (s === undefined) throw new MemfitError('MISSING_SHADER', `shaders/${name}.wgsl is not in the build (run npm run build)`);
    return s;
  }

  /**
   * Records one dispatch into the open compute pass: storage bindings at 0..k-1 (in order, or at
   * their `binding`), the uniform block (if any) at binding `uniformBinding`, `workgroups`
   * workgroups (spread over two dimensions past 65535; shaders index with (wid.y * nwg.x + wid.x)).
   * Dispatches in one pass run in order, each seeing the writes of those before it (each is its own
   * usage scope, WebGPU spec 3.4.4). The uniform block goes into the uniform ring (one writeBuffer a
   * submit); bind groups are cached by pipeline, buffers and uniform slot.
   */
  dispatch(pipeline: GPUComputePipeline, bindings: readonly Binding[], uniform: ArrayBuffer | null, workgroups: number, uniformBinding = bindings.length): void {
    this.check();
    const usize = uniform ? Math.ceil(uniform.byteLength / 16) * 16 : 0;
    const slot = Math.ceil(usize / this.uniformAlign) * this.uniformAlign;
    if (slot > UNIFORM_RING_BYTES) throw new InvalidArgumentError(`a uniform block of ${uniform?.byteLength} bytes is larger than the ${UNIFORM_RING_BYTES}-byte uniform ring`);
    if (this.uniformUsed + slot > UNIFORM_RING_BYTES) this.flush();
    const buffers = bindings.map((b) => {
      const s = this.own(b.storage);
      if (s.size > this.maxBindingSize) {
        throw new MemfitError('BINDING_TOO_LARGE', `${b.what ?? s.label ?? 'tensor'} (${s.byteLength} bytes) exceeds this device's maxStorageBufferBindingSize ${this.maxBindingSize}`);
      }
      return s.buffer;
    });
    let key = `${this.idOf(pipeline)}`;
    bindings.forEach((b, i) => { key += ` ${b.binding ?? i}:${this.idOf(buffers[i])}`; });
    const offset = this.uniformUsed;
    if (uniform) {
      this.uniformRing ??= this.createBuffer(UNIFORM_RING_BYTES, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, 'memfit uniforms', true);
      this.uniformHost.set(new Uint8Array(uniform), offset);
      this.uniformHost.fill(0, offset + uniform.byteLength, offset + usize);
      this.uniformUsed += slot;
      key += ` u${uniformBinding}:${offset}+${usize}`;
    }
    let group = this.bindGroups.get(key);
    if (group) this.bindGroups.delete(key); // re-inserted below: most recently used last
    else {
      const entries: GPUBindGroupEntry[] = buffers.map((buffer, i) => ({ binding: bindings[i].binding ?? i, resource: { buffer } }));
      if (uniform) entries.push({ binding: uniformBinding, resource: { buffer: this.uniformRing!, offset, size: usize } });
      let layout = this.layouts.get(pipeline);
      if (!layout) this.layouts.set(pipeline, (layout = pipeline.getBindGroupLayout(0)));
      group = this.device.createBindGroup({ layout, entries });
      this.counts.bindGroupsCreated++;
      if (this.bindGroups.size >= BIND_GROUP_CACHE) this.bindGroups.delete(this.bindGroups.keys().next().value!);
    }
    this.bindGroups.set(key, group);
    for (const b of buffers) this.recordedBuffers.add(b);
    if (!this.pass) {
      this.pass = this.encoderNow().beginComputePass(this.timer ? { timestampWrites: this.timer.passWrites() } : undefined);
      this.passPipeline = null;
      this.counts.computePasses++;
    }
    if (this.passPipeline !== pipeline) this.pass.setPipeline((this.passPipeline = pipeline));
    this.pass.setBindGroup(0, group);
    const x = Math.min(workgroups, 65535);
    this.pass.dispatchWorkgroups(Math.max(x, 1), Math.max(1, Math.ceil(workgroups / 65535)));
    this.counts.dispatches++;
    if (++this.recorded >= MAX_DISPATCHES_PER_SUBMIT) this.flush();
  }

  /** Records a buffer copy (after the dispatches recorded so far). */
  private copyBuffer(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    this.endPass();
    this.encoderNow().copyBufferToBuffer(src, srcOffset, dst, dstOffset, size);
    this.recordedBuffers.add(src).add(dst);
  }

  private endPass(): void {
    if (!this.pass) return;
    this.pass.end();
    this.pass = null;
    this.passPipeline = null;
  }

  /** Submits recorded work (after writing the uniform blocks it reads). */
  flush(): void {
    this.endPass();
    if (!this.encoder) return;
    if (this.uniformUsed > 0) {
      this.device.queue.writeBuffer(this.uniformRing!, 0, this.uniformHost, 0, this.uniformUsed);
      this.counts.bytesUploaded += this.uniformUsed;
    }
    this.device.queue.submit([this.encoder.finish()]);
    this.counts.submits++;
    this.encoder = null;
    this.recorded = 0;
    this.uniformUsed = 0;
    this.uploadUsed = 0;
    this.recordedBuffers.clear();
  }

  private encoderNow(): GPUCommandEncoder {
    this.check();
    return (this.encoder ??= this.device.createCommandEncoder({ label: 'memfit' }));
  }

  /** A device buffer outside the pool (rings, read-back staging), counted in stats(). */
  private createBuffer(size: number, usage: number, label: string, uniform = false): GPUBuffer {
    this.counts.otherBuffers++;
    if (uniform) this.counts.uniformBuffersCreated++;
    return this.device.createBuffer({ size, usage, label });
  }

  /** A small id per pipeline and buffer (bind group keys). */
  private idOf(o: object): number {
    let id = this.ids.get(o);
    if (id === undefined) this.ids.set(o, (id = this.nextId++));
    return id;
  }

  // ---- fill -----------------------------------------------------------------------------------

  fill(out: TensorRef, value: number): void {
    const plan = fillPlan(out.dtype, out.offset, numel(out.shape), value, out.storage.byteLength);
    if (!plan) return;
    const p = this.pipeline('fill', () => this.shader('fill'));
    const u = new Uint32Array(8);
    u.set([plan.firstWord, plan.words, plan.firstMask, plan.lastMask]);
    u.set(plan.pattern, 4);
    u[7] = plan.pattern.length;
    this.dispatch(p, [{ storage: out.storage, what: 'fill output' }], u.buffer, Math.ceil(plan.words / WORKGROUP));
  }

  // ---- pointwise kernels ----------------------------------------------------------------------

  private pointwise(kind: number, op: number, inputs: readonly TensorRef[], out: TensorRef, alpha: number, flags: number, strides?: readonly number[], cast?: CastParams): void {
    const [a, b = a, c = a] = inputs;
    const n = numel(out.shape);
    if (n === 0) return;
    // Each invocation writes whole 32-bit words (a group of codes): an output view inside a larger
    // storage (a slice) must start on a group and, unless it runs to the storage's end, end on one.
    const outBits = out.dtype === 'int32' ? 32 : formatOf(out.dtype).bits;
    const groupElems = outBits === 6 ? 16 : 32 / outBits, groupWords = outBits === 6 ? 3 : 1;
    if (out.offset % groupElems !== 0 || (n % groupElems !== 0 && Math.ceil((out.offset + n) / groupElems) * groupWords * 4 < out.storage.byteLength)) {
      throw new InvalidArgumentError(`WebGPU kernels write whole 32-bit words: a ${out.dtype} output of ${n} elements at element ${out.offset} of its storage must start and end on a boundary of ${groupElems} elements`);
    }
    // In place (out is an input): WebGPU forbids binding one buffer for reading and writing in a
    // dispatch. Where each output element reads only itself from that input (same dtype, offset 0,
    // same shape, no broadcast or strides), the input is read through the output's read_write
    // binding (each invocation reads only the words it writes); otherwise the result goes to a
    // temporary and is copied over (same bytes as wasm gives).
    const bound = [a, b, c]; // b and c stand in for a where the kernel has fewer inputs
    const aliased = bound.map((t) => t.storage === out.storage);
    if (aliased.some((x) => x)) {
      const direct = !strides && out.offset === 0 && bound.every((t, k) => !aliased[k] || (t.dtype === out.dtype && t.offset === 0 && sameShape(t.shape, out.shape)));
      if (!direct) {
        const outBytes = Math.ceil((n * outBits) / 8);
        const bytes = Math.ceil(outBytes / 4) * 4; // whole words, as the kernel writes them
        const tmp = this.alloc(outBytes, 'temporary', 'in-place result');
        try {
          this.pointwise(kind, op, inputs, { ...out, storage: tmp, offset: 0 }, alpha, flags, strides, cast);
          this.copyBuffer(this.own(tmp).buffer, 0, this.own(out.storage).buffer, (out.offset / groupElems) * groupWords * 4, bytes);
        } finally {
          this.free(tmp);
        }
        return;
      }
    }
    const rank = out.shape.length;
    if (rank > 8) throw new InvalidArgumentError(`pointwise kernels take tensors of rank <= 8, got ${rank}`);
    const constants: Record<string, number> = { KIND: kind, OP: op, FA: fmtId(a.dtype), FB: fmtId(b.dtype), FC: fmtId(c.dtype), FO: fmtId(out.dtype) };
    if (cast && cast.mode !== 0) constants.ROUND = cast.mode; // part of the pipeline key; WGSL default 0 (nearest-even)
    const names = ['a', 'b', 'c'] as const;
    const alias = names.map((x, k) => (aliased[k] ? x : '')).join(''); // inputs read through `out`
    const p = this.pipeline(alias ? `pointwise:inplace=${alias}` : 'pointwise', () => this.shader('dtype')
      + names.map((x, k) => (aliased[k] ? readers(x, 'out') : accessor(x, k, 'read'))).join('') + accessor('out', 3, 'read_write') + this.shader('pointwise'), constants);
    const u = new ArrayBuffer(16 + 16 + 4 * 32 + 16);
    const u32 = new Uint32Array(u);
    const f32 = new Float32Array(u);
    let fl = flags;
    inputs.forEach((t, k) => { if (!strides && sameShape(t.shape, out.shape)) fl |= 16 << k; });
    u32[0] = n;
    u32[1] = rank;
    f32[2] = alpha;
    u32[3] = fl;
    u32[4] = a.offset; u32[5] = b.offset; u32[6] = c.offset; u32[7] = (out.offset / groupElems) * groupWords; // out: in words
    out.shape.forEach((d, i) => { u32[8 + i] = d; });
    inputs.forEach((t, k) => (strides ?? broadcastStrides(t.shape, out.shape)).forEach((s, i) => { u32[16 + 8 * k + i] = s; }));
    if (cast) {
      // rng: seed and the stream position of output element 0, as (lo, hi) u32 pairs.
      u32[40] = Number(cast.seed & 0xffffffffn); u32[41] = Number(cast.seed >> 32n);
      u32[42] = Number(cast.base & 0xffffffffn); u32[43] = Number(cast.base >> 32n);
    }
    const groups = Math.ceil(n / groupElems);
    const bindings: Binding[] = bound.flatMap((t, k) => (aliased[k] ? [] : [{ storage: t.storage, binding: k }]));
    bindings.push({ storage: out.storage, what: 'output', binding: 3 });
    this.dispatch(p, bindings, u, Math.ceil(groups / WORKGROUP), 4);
  }

  /**
   * Casts bit-identically to the wasm backend, every rounding mode. Stochastic rounding draws
   * splitmix64(seed, i) for output element i (0-based: the input view's offset does not move the
   * stream), seed 0 when omitted, exactly as the wasm backend's encodeF32(..., seed, offset 0).
   */
  cast(x: TensorRef, out: TensorRef, options: CastOptions = {}): void {
    options = checkCastOptions(options, 'cast');
    const mode = ROUNDING_IDS[options.rounding ?? 'nearest-even'];
    const seed = mode === 2 ? options.seed ?? 0n : 0n;
    // Same number of elements, taken in row-major order: x is read with out's shape (a reshape),
    // never broadcast into it.
    if (numel(x.shape) !== numel(out.shape)) throw new InvalidArgumentError(`cast: x [${x.shape.join(', ')}] and out [${out.shape.join(', ')}] hold different numbers of elements`);
    const src: TensorRef = x.shape.join() === out.shape.join() ? x : { storage: x.storage, offset: x.offset, shape: out.shape, dtype: x.dtype };
    if (checkUint8Cast(x, out)) {
      // uint8 -> uint8: the codes copied through float8_e4m3fn, whose 256 codes all decode and
      // re-encode to themselves (its two NaNs keep their sign), so every byte is kept.
      const e4m3 = (t: TensorRef): TensorRef => ({ storage: t.storage, offset: t.offset, shape: t.shape, dtype: 'float8_e4m3fn' });
      return this.pointwise(0, 0, [e4m3(src)], e4m3(out), 0, 0, undefined, { mode: 0, seed: 0n, base: 0n });
    }
    this.pointwise(0, 0, [src], out, 0, options.saturate ? 1 : 0, undefined, { mode, seed, base: 0n });
  }

  transpose(x: TensorRef, out: TensorRef): void {
    // The integer-only cast kernel (same dtype: codes unchanged) reading x through swapped strides.
    const r = x.shape.length;
    const strides = broadcastStrides(x.shape, x.shape);
    [strides[r - 2], strides[r - 1]] = [strides[r - 1], strides[r - 2]];
    this.pointwise(0, 0, [x], out, 0, 0, strides);
  }

  copy(x: TensorRef, out: TensorRef): void {
    checkCopy(x, out);
    // The transpose's kernel (same dtype in and out: codes moved, not converted), reading x through
    // its own strides; uint8 codes move as float8 codes (one byte each, like them).
    const dtype = x.dtype === 'uint8' ? 'float8_e4m3fn' : x.dtype;
    const src: TensorRef = { storage: viewStorage(x), offset: x.offset, shape: x.shape, dtype };
    this.pointwise(0, 0, [src], { storage: out.storage, offset: out.offset, shape: out.shape, dtype }, 0, 0, x.strides ?? contiguousStrides(x.shape));
  }

  unary(op: UnaryOp, x: TensorRef, out: TensorRef, alpha = 0): void {
    const id = UNARY_IDS[op];
    if (id === undefined) throw new InvalidArgumentError(`unknown unary op ${JSON.stringify(op)}`);
    this.pointwise(1, id, [x], out, alpha, 0);
  }

  binary(op: BinaryOp, a: TensorRef, b: TensorRef, out: TensorRef): void {
    const id = BINARY_IDS[op];
    if (id === undefined) throw new InvalidArgumentError(`unknown binary op ${JSON.stringify(op)}`);
    this.pointwise(2, id, [a, b], out, 0, 0);
  }

  where(cond: TensorRef, a: TensorRef, b: TensorRef, out: TensorRef): void {
    this.pointwise(3, 0, [cond, a, b], out, 0, 0);
  }

  // ---- reductions ---------------------------------------------------------------------------

  reduce(op: ReduceOp, x: TensorRef, out: TensorRef, axis: number | null): void {
    if (out.dtype !== 'float32' && out.dtype !== 'int32' && formatOf(out.dtype).bits < 32) {
      // The kernel writes one word per output: a result of packed codes (bfloat16, float16, ...) is
      // reduced into float32 and cast, the same single rounding.
      const tmp = this.alloc(numel(out.shape) * 4, 'temporary', 'reduce result');
      try {
        const acc = { storage: tmp, offset: 0, shape: out.shape, dtype: 'float32' as const };
        this.reduce(op, x, acc, axis);
        this.cast(acc, out);
      } finally {
        this.free(tmp);
      }
      return;
    }
    const n = numel(x.shape);
    const [outer, len, inner] = axis === null ? [1, n, 1] : [numel(x.shape.slice(0, axis)), x.shape[axis], numel(x.shape.slice(axis + 1))];
    const p = this.pipeline('reduce', () => this.shader('dtype') + accessor('x', 0, 'read') + accessor('out', 1, 'read_write') + this.shader('reduce'), {
      OP: REDUCE_IDS[op], FX: fmtId(x.dtype), FO: fmtId(out.dtype),
    });
    const u = new Uint32Array([outer, len, inner, x.offset]);
    this.dispatch(p, [{ storage: x.storage }, { storage: out.storage }], u.buffer, outer * inner);
  }

  softmax(x: TensorRef, out: TensorRef, log: boolean): void {
    const cols = x.shape[x.shape.length - 1] ?? 1;
    const rows = numel(x.shape) / Math.max(cols, 1);
    const p = this.pipeline('softmax', () => this.shader('dtype') + accessor('x', 0, 'read') + accessor('out', 1, 'read_write') + this.shader('workgroup') + this.shader('softmax'), {
      LOG: log ? 1 : 0, FX: fmtId(x.dtype), FO: fmtId(out.dtype),
    });
    this.dispatch(p, [{ storage: x.storage }, { storage: out.storage }], new Uint32Array([rows, cols, x.offset, 0]).buffer, rows);
  }


  // ---- errors -------------------------------------------------------------------------------

  private throwErrors(): void {
    if (this.lost) throw new MemfitError('DEVICE_LOST', this.lost);
    if (this.errors.length) {
      const e = this.errors.splice(0);
      throw new MemfitError('GPU_ERROR', `WebGPU error: ${e.join('; ')}`);
    }
  }

  private check(): void {
    this.throwErrors();
  }

  private own(storage: Storage): GpuStorage {
    if (!(storage instanceof GpuStorage) || storage.backend !== this) throw new InvalidArgumentError('storage belongs to another backend');
    if (storage.freed) throw new InvalidArgumentError(`storage ${storage.label || ''} used after it was freed`);
    return storage;
  }
}

registerFamilies(WebGPUBackend, gpuFamilies);
