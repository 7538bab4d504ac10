// Paged optimizer state (bitsandbytes' paged optimizers, made explicit for WebGPU, which has no
// unified memory): a paged 8-bit optimizer keeps its quantized state in host memory and streams
// each parameter's state to the device for its update and back. The state lives in tensors of a
// host backend (WebAssembly memory: plain host RAM, not the GPU's); the device holds at most two
// slot sets (codes and absmax of a chunk of whole blocks) of at most pagedBudget / 2 bytes each,
// used in turn, so the next chunk's upload is queued while the current one's update runs and
// its copy back is on its way (double buffering). A parameter whose state is larger than a slot
// is streamed in chunks of whole blocks (float32 parameters; other dtypes in one piece).
//
// Copies back complete asynchronously: `await optimizer.synchronize()` before the next step (a
// step that finds a parameter's state still on its way back throws PAGED_PENDING), as before
// stateDict(). On the wasm backend there is nothing to page (its memory is the host's): paging is
// ignored there, with one log line.
import { MemfitError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import type { Variable } from '../autograd/variable.js';
import type { Backend, QuantizedStateRef, Storage, TensorRef } from '../backend/backend.js';
import { WasmBackend } from '../backend/wasm/backend.js';
import type { ParamState } from './optimizer.js';

let host: WasmBackend | null = null;
let warned = false;

/** The host-memory backend paged state lives in. */
export function hostBackend(): WasmBackend {
  return (host ??= new WasmBackend('paged optimizer state (host memory)'));
}

/** Bytes a chunk of n elements of one quantized state takes: n codes and one float32 per block. */
function stateBytes(n: number, blockSize: number): number {
  return n + 4 * Math.ceil(n / blockSize);
}

interface Slot { codes: Storage; absmax: Storage; bytes: number }

/** Streams quantized state between host memory and one device backend (see the header). */
export class PagedState {
  private readonly slots: (Slot[] | null)[] = [null, null];
  private turn = 0;
  private readonly pending = new Map<Tensor, Promise<void>>();
  private failure: unknown = null;

  constructor(readonly device: Backend, readonly owner: string, public budget: number) {}

  /** Whether paging does anything on this backend (false on wasm: logged once). */
  get active(): boolean {
    if (this.device.kind === 'wasm') {
      if (!warned) {
        warned = true;
        console.warn(`memfit: ${this.owner}: paged optimizer state means nothing on the wasm backend (its memory is host memory already); the state stays where it is`);
      }
      return false;
    }
    return true;
  }

  /**
   * Runs `fn` on device copies of the quantized states `keys` of `param` (its state record holds
   * their host tensors, or device tensors not paged out yet), chunk by chunk, and streams them back.
   */
  update(param: Variable, state: ParamState, keys: readonly string[], blockSize: number, fn: (p: TensorRef, refs: QuantizedStateRef[], start: number, n: number) => void): void {
    if (this.failure !== null) throw new MemfitError('PAGED_FAILED', `${this.owner}: copying paged optimizer state back to host memory failed: ${String(this.failure)}`);
    const tensors = keys.flatMap((k) => [state[`${k}Codes`] as Tensor, state[`${k}Absmax`] as Tensor]);
    if (tensors.some((t) => this.pending.has(t))) {
      throw new MemfitError('PAGED_PENDING', `${this.owner}: the paged state of the last step is still on its way back to host memory; await optimizer.synchronize() after each step`);
    }
    const d = this.device;
    const n = param.data.size;
    if (tensors[0].backend === d) {
      // Resident (first step, or just loaded): update in place, then page out.
      fn(param.data, keys.map((k) => ({ codes: state[`${k}Codes`] as Tensor, absmax: state[`${k}Absmax`] as Tensor })), 0, n);
      for (const k of keys) for (const suffix of ['Codes', 'Absmax']) state[`${k}${suffix}`] = this.pageOut(state[`${k}${suffix}`] as Tensor);
      return;
    }
    const perElement = keys.length * (1 + 4 / blockSize);
    const slotBlocks = Math.max(1, Math.floor(this.budget / 2 / perElement / blockSize));
    const chunk = param.data.dtype === 'float32' ? Math.min(n, slotBlocks * blockSize) : n;
    const h = hostBackend();
    for (let start = 0; start < n; start += chunk) {
      const len = Math.min(chunk, n - start);
      const slots = this.slotSet(keys.length, len, blockSize);
      const refs: QuantizedStateRef[] = keys.map((k, i) => {
        const codes = state[`${k}Codes`] as Tensor, absmax = state[`${k}Absmax`] as Tensor;
        const blocks = Math.ceil(len / blockSize), b0 = start / blockSize;
        d.write(slots[i].codes, hostBytes(h, codes, start, len));
        d.write(slots[i].absmax, hostBytes(h, absmax, b0 * 4, blocks * 4));
        return {
          codes: { storage: slots[i].codes, offset: 0, shape: [len], dtype: 'uint8' },
          absmax: { storage: slots[i].absmax, offset: 0, shape: [blocks], dtype: 'float32' },
        };
      });
      const p: TensorRef = chunk === n ? param.data : { storage: param.data.storage, offset: param.data.offset + start, shape: [len], dtype: param.data.dtype };
      fn(p, refs, start, len);
      keys.forEach((k, i) => {
        this.readBack(slots[i].codes, len, state[`${k}Codes`] as Tensor, start);
        this.readBack(slots[i].absmax, refs[i].absmax.shape[0] * 4, state[`${k}Absmax`] as Tensor, (start / blockSize) * 4);
      });
    }
  }

  /** Whether every copy back has arrived. */
  get settled(): boolean {
    return this.pending.size === 0;
  }

  /** Device bytes held for streaming now. */
  get deviceBytes(): number {
    return this.slots.reduce((s, set) => s + (set ? set.reduce((a, x) => a + x.bytes, 0) : 0), 0);
  }

  /** Waits for every copy back; throws if one failed. */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending.values()]);
    if (this.failure !== null) {
      const e = this.failure;
      this.failure = null;
      throw new MemfitError('PAGED_FAILED', `${this.owner}: copying paged optimizer state back to host memory failed: ${String(e)}`);
    }
  }

  /** Frees the device slots. */
  dispose(): void {
    for (let i = 0; i < 2; i++) {
      for (const s of this.slots[i] ?? []) {
        this.device.free(s.codes);
        this.device.free(s.absmax);
      }
      this.slots[i] = null;
    }
  }

  /** The next slot set (turns alternate), grown to hold `len` elements of `count` states. */
  private slotSet(count: number, len: number, blockSize: number): Slot[] {
    const i = this.turn;
    this.turn = 1 - this.turn;
    let set = this.slots[i];
    const fits = set && set.length >= count && set.every((s) => s.codes.byteLength >= len && s.absmax.byteLength >= 4 * Math.ceil(len / blockSize));
    if (!fits) {
      for (const s of set ?? []) {
        this.device.free(s.codes);
        this.device.free(s.absmax);
      }
      this.slots[i] = null;
      const want = Math.max(len, ...(set ?? []).map((s) => s.codes.byteLength));
      set = [];
      for (let k = 0; k < count; k++) {
        const codes = this.device.alloc(want, 'optimizer', `${this.owner} paged slot codes`);
        const absmax = this.device.alloc(4 * Math.ceil(want / blockSize), 'optimizer', `${this.owner} paged slot absmax`);
        set.push({ codes, absmax, bytes: codes.byteLength + absmax.byteLength });
      }
      this.slots[i] = set;
    }
    return set!;
  }

  /** Moves a device tensor to host memory (asynchronously; the device copy is freed at once: the read was queued first). */
  private pageOut(t: Tensor): Tensor {
    const h = hostBackend();
    const out = Tensor.empty(h, t.shape, { dtype: t.dtype, category: 'optimizer', label: `${this.owner} paged state` });
    this.readBack(t.storage, out.storage.byteLength, out, 0);
    t.dispose();
    return out;
  }

  private readBack(src: Storage, bytes: number, into: Tensor, byteOffset: number): void {
    const read = this.device.read(src, 0, bytes);
    const prev = this.pending.get(into);
    const done: Promise<void> = Promise.all([read, prev]).then(([data]) => {
      if (!into.isDisposed) hostBackend().write(into.storage, data, byteOffset);
    }, (e: unknown) => {
      this.failure ??= e;
    }).finally(() => {
      if (this.pending.get(into) === done) this.pending.delete(into);
    });
    this.pending.set(into, done);
  }
}

/** A view of `bytes` bytes of host tensor t's storage from byteOffset (no copy: the host backend's memory). */
function hostBytes(h: WasmBackend, t: Tensor, byteOffset: number, bytes: number): Uint8Array {
  return h.view(t.storage, byteOffset, bytes);
}
