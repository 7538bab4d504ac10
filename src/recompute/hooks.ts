// Saved-tensor hooks that keep less on the device (install them with withSavedTensorsHooks):
// - saveOnHost(): PyTorch's save_on_cpu: on a GPU backend each saved activation is read back to
//   host memory as soon as it is saved (asynchronously, so the copy overlaps the rest of the
//   forward), its device buffer is freed when the copy lands, and it is uploaded again when
//   backward needs it. On wasm, tensors already live in host (WebAssembly) memory: nothing moves.
// - compressSavedTensors(): saved activations kept in bfloat16, or in float16 or fp8 with a
//   per-tensor scale or MX block scales (one E8M0 power of two per block of 32), and decoded for
//   backward: a lossy trade of gradient accuracy for memory, computed on the device.
import { InvalidArgumentError, describeValue, checkOptions } from '../errors.js';
import { canonicalDType, formatOf, type DType } from '../dtype/formats.js';
import { finfo } from '../dtype/finfo.js';
import { Tensor } from '../tensor/tensor.js';
import { storageBytes } from '../backend/storage.js';
import type { SavedTensorContext, SavedTensorsHooks } from '../autograd/variable.js';
import type { Backend, TensorDType } from '../backend/backend.js';

/** Which saved tensors a hook transforms: by default the activations (op inputs and outputs), never parameters. */
export type SavedTensorFilter = (t: Tensor, ctx: SavedTensorContext) => boolean;

/**
 * The default filter: op inputs and outputs ('input0', 'output', ...) that are not parameters
 * (a parameter stays on the device anyway). Statistics (rstd, lse, masks, indices) are kept as
 * they are: they are small, and attention's lse or a norm's rstd amplify any error.
 */
export const activationsOnly: SavedTensorFilter = (t, ctx) => t.category !== 'parameter' && /^(input\d+|output)$/.test(ctx.slot);

// ---- saveOnHost --------------------------------------------------------------------------------

export interface SaveOnHostOptions {
  /** Which saved tensors move (default: activationsOnly, any slot of a non-parameter tensor also fine). */
  filter?: SavedTensorFilter;
  /** Do not print the one-line note that on wasm nothing moves. */
  quiet?: boolean;
}

interface HostEntry {
  /** The device tensor, until its copy has landed on the host (or for a tensor that stays). */
  device: Tensor | null;
  host: Uint8Array | null;
  readonly shape: readonly number[];
  readonly dtype: TensorDType;
  readonly backend: Backend;
  /** A copy to the host was started (the tensor is counted as host memory). */
  moving: boolean;
  released: boolean;
}

/** saveOnHost's hooks, with a way to wait for the copies in flight. */
export interface SaveOnHostHooks extends SavedTensorsHooks<HostEntry> {
  /** Resolves when every copy started so far has landed on the host (and its device buffer is freed). */
  flush(): Promise<void>;
  /** Tensors and bytes now held in host memory by these hooks. */
  hostStats(): { count: number; bytes: number };
}

let wasmNoted = false;

/**
 * PyTorch's save_on_cpu: saved activations of a GPU backend go to host memory during the forward
 * and come back for backward. The readback starts when a tensor is saved and runs while the
 * forward goes on; its device buffer is freed when it lands (await flush(), or any await, before
 * backward to be sure it has). A tensor backward needs before its copy has landed is used from
 * the device. On wasm the tensors already are in host memory: they are kept as they are (a note
 * says so once).
 */
export function saveOnHost(options: SaveOnHostOptions = {}): SaveOnHostHooks {
  const o = checkOptions(options, ['filter', 'quiet'], 'saveOnHost');
  if (o.filter !== undefined && typeof o.filter !== 'function') throw new InvalidArgumentError(`saveOnHost: filter must be a function (t, ctx) => boolean, got ${describeValue(o.filter)}`);
  const filter = o.filter ?? activationsOnly;
  const inFlight = new Set<Promise<void>>();
  const host = { count: 0, bytes: 0 };
  const movable = (t: Tensor): boolean => t.backend.kind !== 'wasm' && (t.dtype === 'int32' || formatOf(t.dtype).bits >= 8);
  return {
    pack(t, ctx): HostEntry {
      const e: HostEntry = { device: t.reshape(t.shape), host: null, shape: [...t.shape], dtype: t.dtype, backend: t.backend, moving: false, released: false };
      if (t.backend.kind === 'wasm' && !o.quiet && !wasmNoted) {
        wasmNoted = true;
        console.warn('memfit saveOnHost: on the wasm backend tensors already live in host (WebAssembly) memory; saved tensors stay where they are.');
      }
      if (!movable(t) || !filter(t, ctx)) return e;
      e.moving = true;
      const codeBytes = t.dtype === 'int32' ? 4 : formatOf(t.dtype).codeBytes;
      const p = t.backend.read(t.storage, t.offset * codeBytes, storageBytes(t.dtype, t.size)).then((bytes) => {
        if (e.released || !e.device) return; // used or dropped before the copy landed
        e.host = bytes.slice();
        host.count++;
        host.bytes += e.host.byteLength;
        e.device.dispose();
        e.device = null;
      }).finally(() => inFlight.delete(p));
      inFlight.add(p);
      return e;
    },
    unpack(e): Tensor {
      if (e.device) {
        const t = e.device;
        e.device = null;
        e.released = true;
        return t;
      }
      const h = e.host!;
      e.host = null;
      e.released = true;
      host.count--;
      host.bytes -= h.byteLength;
      // The upload is queued on the device (WebGPU: queue.writeBuffer) ahead of the backward kernels that read it.
      const t = Tensor.empty(e.backend, e.shape, { dtype: e.dtype, category: 'activation', label: 'saved on host' });
      t.backend.write(t.storage, h);
      return t;
    },
    release(e): void {
      e.released = true;
      e.device?.dispose();
      e.device = null;
      if (e.host) { host.count--; host.bytes -= e.host.byteLength; }
      e.host = null;
    },
    // a tensor on its way to the host counts as host memory (hostStats), though its device buffer is held until the copy lands
    bytes: (e, t) => (e.moving ? 0 : storageBytes(t.dtype, t.size)),
    async flush(): Promise<void> {
      while (inFlight.size) await Promise.all([...inFlight]);
    },
    hostStats: () => ({ ...host }),
  };
}

// ---- compression -------------------------------------------------------------------------------

export type CompressDType = 'bfloat16' | 'float16' | 'float8_e4m3fn' | 'float8_e5m2';

export interface CompressOptions {
  /** The dtype saved activations are kept in (default 'bfloat16'; aliases such as 'bf16', 'fp8_e4m3' too). */
  dtype?: CompressDType | string;
  /**
   * fp8 and float16: 'tensor' (default) scales each tensor by fmax / amax before rounding (so a
   * float16 copy neither overflows past 65504 nor flushes small activations to zero); 'mx' uses one
   * power-of-two scale per block of `blockSize` elements (OCP MX: E8M0 scales, as mxQuantize).
   * bfloat16 has float32's range: a plain cast, no scale.
   */
  scale?: 'tensor' | 'mx';
  /** MX block size (default 32; scale 'mx' only); a tensor whose size it does not divide uses a per-tensor scale. */
  blockSize?: number;
  /** Which saved tensors are compressed (default activationsOnly). */
  filter?: SavedTensorFilter;
}

type Compressed =
  | { kind: 'keep'; t: Tensor }
  | { kind: 'cast'; q: Tensor; dtype: TensorDType }
  | { kind: 'scaled'; q: Tensor; inv: Tensor; shape: readonly number[]; dtype: TensorDType };

const act = (like: Tensor, shape: readonly number[], dtype: TensorDType = 'float32', label = 'compressed'): Tensor =>
  Tensor.empty(like.backend, shape, { dtype, category: 'activation', label });

function scalar(like: Tensor, value: number): Tensor {
  return Tensor.from(like.backend, [value], [], { dtype: 'float32', category: 'temporary', label: 'compress constant' });
}

/**
 * Hooks that keep saved activations in a lower precision and decode them for backward. bfloat16
 * is a plain cast; float16 and fp8 (e4m3fn, e5m2) store a per-tensor or per-block scale beside the
 * codes (float16's range ends at 65504: unscaled, larger activations would turn inf and small ones
 * 0). Gradients differ from the uncompressed ones by the rounding of the saved activations (the
 * tests bound it).
 */
export function compressSavedTensors(options: CompressOptions = {}): SavedTensorsHooks<Compressed> {
  const o = checkOptions(options, ['dtype', 'scale', 'blockSize', 'filter'], 'compressSavedTensors');
  let dtype: DType;
  try { dtype = canonicalDType(String(o.dtype ?? 'bfloat16')); } catch { dtype = 'float32'; }
  if (!['bfloat16', 'float16', 'float8_e4m3fn', 'float8_e5m2'].includes(dtype)) {
    throw new InvalidArgumentError(`compressSavedTensors: dtype must be bfloat16, float16, float8_e4m3fn or float8_e5m2, got ${describeValue(o.dtype)}`);
  }
  const withScale = dtype !== 'bfloat16'; // float16 and fp8 keep a scale
  if (o.scale !== undefined && !(withScale && (o.scale === 'tensor' || o.scale === 'mx'))) {
    throw new InvalidArgumentError(`compressSavedTensors: scale ${describeValue(o.scale)} ${withScale ? "must be 'tensor' or 'mx'" : 'applies to float16 and fp8 only (bfloat16 has float32\'s range)'}`);
  }
  const blockSize = o.blockSize ?? 32;
  if (!(Number.isSafeInteger(blockSize) && blockSize >= 1)) throw new InvalidArgumentError(`compressSavedTensors: blockSize must be a positive integer, got ${describeValue(o.blockSize)}`);
  if (o.blockSize !== undefined && o.scale !== 'mx') throw new InvalidArgumentError(`compressSavedTensors: blockSize applies to scale 'mx' only (got scale ${describeValue(o.scale)})`);
  if (o.filter !== undefined && typeof o.filter !== 'function') throw new InvalidArgumentError(`compressSavedTensors: filter must be a function (t, ctx) => boolean, got ${describeValue(o.filter)}`);
  const filter = o.filter ?? activationsOnly;
  const scaleKind = o.scale ?? 'tensor';
  const bits = formatOf(dtype).bits;
  const fmax = finfo(dtype).max;
  const emax = Math.floor(Math.log2(fmax));

  const bytesOf = (c: Compressed): number => c.kind === 'keep' ? storageBytes(c.t.dtype, c.t.size)
    : c.kind === 'cast' ? storageBytes(c.q.dtype, c.q.size) : storageBytes(c.q.dtype, c.q.size) + storageBytes(c.inv.dtype, c.inv.size);

  return {
    pack(t, ctx): Compressed {
      if (t.dtype === 'int32' || formatOf(t.dtype).bits <= bits || !filter(t, ctx)) return { kind: 'keep', t: t.reshape(t.shape) };
      const be = t.backend;
      if (!withScale) {
        const q = act(t, t.shape, dtype);
        be.cast(t, q);
        return { kind: 'cast', q, dtype: t.dtype };
      }
      const mx = scaleKind === 'mx' && t.size % blockSize === 0;
      const blocks = mx ? t.size / blockSize : 1;
      const x = t.reshape(mx ? [blocks, blockSize] : [t.size]);
      const temps: Tensor[] = [x];
      const tmp = (shape: readonly number[], dt: TensorDType = 'float32'): Tensor => { const r = act(t, shape, dt, 'compress temporary'); temps.push(r); return r; };
      try {
        const amax = tmp(mx ? [blocks, 1] : []);
        const am = amax.reshape(mx ? [blocks] : []);
        temps.push(am);
        be.reduce('amax', x, am, mx ? 1 : null);
        const tiny = scalar(t, 2 ** -100);
        temps.push(tiny);
        const safe = tmp(amax.shape);
        be.binary('maximum', amax, tiny, safe); // an all-zero tensor or block still gets a finite scale
        let inv: Tensor; // the value one code step stands for: x ≈ q * inv
        if (mx) {
          // X = 2^(floor(log2(amax)) - emax): amax rounded down to a power of two (an E8M0 cast toward zero), times 2^-emax.
          const p2 = tmp(amax.shape, 'float8_e8m0fnu');
          be.cast(safe, p2, { rounding: 'toward-zero' });
          const pf = tmp(amax.shape);
          be.cast(p2, pf);
          const xf = tmp(amax.shape);
          be.unary('scale', pf, xf, 2 ** -emax);
          inv = act(t, amax.shape, 'float8_e8m0fnu', 'mx scales');
          be.cast(xf, inv);
        } else {
          inv = act(t, [], 'float32', 'compression scale');
          be.unary('scale', safe, inv, 1 / fmax);
        }
        const invF = mx ? tmp(amax.shape) : inv;
        if (mx) be.cast(inv, invF);
        const scaled = tmp(x.shape);
        be.binary('div', x, invF, scaled);
        const q = act(t, x.shape, dtype);
        be.cast(scaled, q, { saturate: true });
        return { kind: 'scaled', q, inv, shape: [...t.shape], dtype: t.dtype };
      } finally {
        for (const r of temps) r.dispose();
      }
    },
    unpack(c): Tensor {
      if (c.kind === 'keep') return c.t;
      const be = c.q.backend;
      if (c.kind === 'cast') {
        const out = act(c.q, c.q.shape, c.dtype, 'decompressed');
        be.cast(c.q, out);
        c.q.dispose();
        return out;
      }
      const qf = act(c.q, c.q.shape, 'float32', 'decompress temporary');
      const invF = c.inv.dtype === 'float32' ? c.inv : act(c.q, c.inv.shape, 'float32', 'decompress temporary');
      try {
        be.cast(c.q, qf);
        if (invF !== c.inv) be.cast(c.inv, invF);
        const out = act(c.q, c.shape, c.dtype, 'decompressed');
        const o2 = out.reshape(c.q.shape);
        be.binary('mul', qf, invF, o2);
        o2.dispose();
        return out;
      } finally {
        qf.dispose();
        if (invF !== c.inv) invF.dispose();
        c.q.dispose();
        c.inv.dispose();
      }
    },
    release(c): void {
      if (c.kind === 'keep') c.t.dispose();
      else { c.q.dispose(); if (c.kind === 'scaled') c.inv.dispose(); }
    },
    bytes: bytesOf,
  };
}
