// Memory accounting shared by both backends (ARCHITECTURE.md, "Memory"): every buffer is tagged
// with a category; current and peak bytes are kept per category and in total; a trace records
// allocations and frees between two points; freed buffers are pooled by size class so that a
// steady training loop allocates nothing new from the device.
import { describeValue, InvalidArgumentError } from '../errors.js';
import { allocationLabel } from './op_context.js';

/** What a buffer holds; PyTorch users know these as the parts of a memory breakdown. */
export type Category = 'parameter' | 'gradient' | 'optimizer' | 'activation' | 'data' | 'temporary';

export const CATEGORIES: readonly Category[] = ['parameter', 'gradient', 'optimizer', 'activation', 'data', 'temporary'];

/** One allocation or free, as recorded by a trace. */
export interface MemoryEvent {
  readonly kind: 'alloc' | 'free';
  /** Allocation id (the same for an alloc and its free). */
  readonly id: number;
  /** Bytes requested (what memoryAllocated counts). */
  readonly bytes: number;
  readonly category: Category;
  readonly label: string;
  /** Sequence number within the tracker (orders events across traces). */
  readonly seq: number;
}

/** A recorded trace: the events in order, plus what was still live at the end. */
export interface MemoryTrace {
  readonly events: readonly MemoryEvent[];
  /** Allocations made during the trace and not freed by its end. */
  readonly live: readonly MemoryEvent[];
  /** Net change of allocated bytes over the trace, per category and in total. */
  readonly netBytes: Readonly<Record<Category | 'total', number>>;
  /** Highest allocated total reached during the trace, minus the total at its start. */
  readonly peakIncrease: number;
}

/** Current and peak bytes of one category (or of the total). */
export interface CategoryStats {
  readonly current: number;
  readonly peak: number;
  readonly allocations: number;
  readonly frees: number;
}

/** A snapshot, in the spirit of torch.cuda.memory_stats(). */
export interface MemoryStats {
  /** Bytes of live tensors' storage, as requested (exact). */
  readonly allocated: CategoryStats;
  /** Bytes held from the device: live buffers at their size-class size plus pooled free buffers. */
  readonly reserved: { readonly current: number; readonly peak: number };
  readonly byCategory: Readonly<Record<Category, CategoryStats>>;
  /** Device allocations made (buffers created), and those satisfied from the pool. */
  readonly deviceAllocations: number;
  readonly poolHits: number;
  /** Free buffers cached in the pool, and their bytes. */
  readonly pooledBuffers: number;
  readonly pooledBytes: number;
}

interface Counter {
  current: number;
  peak: number;
  allocations: number;
  frees: number;
}

const counter = (): Counter => ({ current: 0, peak: 0, allocations: 0, frees: 0 });

/** Size class of a request: multiples of 256 B up to 4 KiB, then four classes per power of two. */
export function sizeClass(bytes: number): number {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new InvalidArgumentError(`buffer size must be a non-negative integer, got ${bytes}`);
  if (bytes <= 4096) return Math.max(256, Math.ceil(bytes / 256) * 256);
  const p = 2 ** Math.floor(Math.log2(bytes));
  for (const f of [1, 1.25, 1.5, 1.75, 2]) if (bytes <= p * f) return p * f;
  return 2 * p;
}

/** A trace being recorded (startTrace or memoryTrace). */
interface OpenTrace { events: MemoryEvent[]; start: number; startByCat: Map<Category, number>; peak: number; byStartTrace: boolean }

/** Per-backend accounting. The backend calls onAlloc/onFree and onReserve/onRelease; users read it. */
export class MemoryTracker {
  private readonly total: Counter = counter();
  private readonly cats = new Map<Category, Counter>(CATEGORIES.map((c) => [c, counter()]));
  private readonly live = new Map<number, MemoryEvent>();
  private reservedNow = 0;
  private reservedPeak = 0;
  private seq = 0;
  private nextId = 1;
  private traces: OpenTrace[] = [];
  /** Counters the backend's pool updates. */
  deviceAllocations = 0;
  poolHits = 0;
  pooledBuffers = 0;
  pooledBytes = 0;

  /** Records an allocation of `bytes` (requested size); returns its id. */
  onAlloc(bytes: number, category: Category, label = ''): number {
    const c = this.cats.get(category);
    if (!c) throw new InvalidArgumentError(`unknown memory category ${JSON.stringify(category)}; use one of ${CATEGORIES.join(', ')}`);
    const ev: MemoryEvent = { kind: 'alloc', id: this.nextId++, bytes, category, label: allocationLabel(label), seq: this.seq++ };
    this.live.set(ev.id, ev);
    for (const k of [this.total, c]) {
      k.current += bytes;
      k.allocations++;
      if (k.current > k.peak) k.peak = k.current;
    }
    for (const t of this.traces) {
      t.events.push(ev);
      if (this.total.current > t.peak) t.peak = this.total.current;
    }
    return ev.id;
  }

  /** Records the free of allocation `id`. */
  onFree(id: number): void {
    const a = this.live.get(id);
    if (!a) throw new InvalidArgumentError(`memory id ${id} freed twice or never allocated`);
    this.live.delete(id);
    const c = this.cats.get(a.category)!;
    for (const k of [this.total, c]) {
      k.current -= a.bytes;
      k.frees++;
    }
    const ev: MemoryEvent = { ...a, kind: 'free', seq: this.seq++ };
    for (const t of this.traces) t.events.push(ev);
  }

  /** The backend holds `bytes` more (or fewer, if negative) from the device. */
  onReserve(bytes: number): void {
    this.reservedNow += bytes;
    if (this.reservedNow > this.reservedPeak) this.reservedPeak = this.reservedNow;
  }

  /** Bytes of live tensors (one category, or all). torch.cuda.memory_allocated. */
  memoryAllocated(category?: Category): number {
    return category ? this.cat(category).current : this.total.current;
  }

  /** Peak of memoryAllocated since the start or the last resetPeakMemoryStats. torch.cuda.max_memory_allocated. */
  maxMemoryAllocated(category?: Category): number {
    return category ? this.cat(category).peak : this.total.peak;
  }

  /** Bytes held from the device (live at size-class size, plus the pool). torch.cuda.memory_reserved. */
  memoryReserved(): number {
    return this.reservedNow;
  }

  /** Peaks restart from the current values. torch.cuda.reset_peak_memory_stats. */
  resetPeakMemoryStats(): void {
    this.total.peak = this.total.current;
    for (const c of this.cats.values()) c.peak = c.current;
    this.reservedPeak = this.reservedNow;
  }

  memoryStats(): MemoryStats {
    const snap = (k: Counter): CategoryStats => ({ ...k });
    return {
      allocated: snap(this.total),
      reserved: { current: this.reservedNow, peak: this.reservedPeak },
      byCategory: Object.fromEntries(CATEGORIES.map((c) => [c, snap(this.cats.get(c)!)])) as Record<Category, CategoryStats>,
      deviceAllocations: this.deviceAllocations,
      poolHits: this.poolHits,
      pooledBuffers: this.pooledBuffers,
      pooledBytes: this.pooledBytes,
    };
  }

  /** Starts recording allocations and frees; stopTrace() returns them. Traces may nest. */
  startTrace(): void {
    this.traces.push(this.newTrace(true));
  }

  /** Ends the innermost trace opened by startTrace() (never one a running memoryTrace owns). */
  stopTrace(): MemoryTrace {
    const t = [...this.traces].reverse().find((o) => o.byStartTrace);
    if (!t) throw new InvalidArgumentError('stopTrace() without a matching startTrace()');
    return this.endTrace(t);
  }

  /**
   * Runs fn and returns its result with the trace of what it allocated and freed. An async fn (one
   * that returns a Promise) gets a Promise of both, the trace ending when fn's promise settles; it
   * records everything the backend allocates and frees meanwhile, other work's included.
   */
  memoryTrace<T>(fn: () => Promise<T>): Promise<{ result: T; trace: MemoryTrace }>;
  memoryTrace<T>(fn: () => T): { result: T; trace: MemoryTrace };
  memoryTrace<T>(fn: () => T | Promise<T>): { result: T | Promise<T>; trace: MemoryTrace } | Promise<{ result: T; trace: MemoryTrace }> {
    if (typeof fn !== 'function') throw new InvalidArgumentError(`memoryTrace: fn must be a function, got ${describeValue(fn)}`);
    const t = this.newTrace(false);
    this.traces.push(t);
    let result: T | Promise<T>;
    try {
      result = fn();
    } catch (e) {
      this.endTrace(t);
      throw e;
    }
    if (result instanceof Promise) {
      return result.then(
        (r) => ({ result: r, trace: this.endTrace(t) }),
        (e: unknown) => { this.endTrace(t); throw e; },
      );
    }
    return { result, trace: this.endTrace(t) };
  }

  private newTrace(byStartTrace: boolean): OpenTrace {
    return {
      byStartTrace, events: [], start: this.total.current, peak: this.total.current,
      startByCat: new Map(CATEGORIES.map((c) => [c, this.cat(c).current])),
    };
  }

  /** Ends trace t (wherever it is in the stack: traces end by identity) and summarises it. */
  private endTrace(t: OpenTrace): MemoryTrace {
    const i = this.traces.lastIndexOf(t);
    if (i >= 0) this.traces.splice(i, 1);
    const freed = new Set(t.events.filter((e) => e.kind === 'free').map((e) => e.id));
    const net = Object.fromEntries(CATEGORIES.map((c) => [c, this.cat(c).current - t.startByCat.get(c)!])) as Record<Category | 'total', number>;
    net.total = this.total.current - t.start;
    return {
      events: t.events,
      live: t.events.filter((e) => e.kind === 'alloc' && !freed.has(e.id)),
      netBytes: net,
      peakIncrease: t.peak - t.start,
    };
  }

  private cat(c: Category): Counter {
    const k = this.cats.get(c);
    if (!k) throw new InvalidArgumentError(`unknown memory category ${JSON.stringify(c)}; use one of ${CATEGORIES.join(', ')}`);
    return k;
  }
}

/**
 * Free buffers by size class. `create(size)` makes a device buffer of exactly the class size and
 * `destroy` gives one back; the tracker sees every byte held. A request takes the free buffer of
 * its class that was created first, so which buffer serves which request depends only on the set of
 * free buffers, not on the order they were freed in: a training step that allocates and frees the
 * same way as the one before gets the same buffers (the WebGPU backend's cached bind groups hit).
 */
export class BufferPool<B> {
  /** Per size class, a binary min-heap of free buffers by creation number. */
  private readonly free = new Map<number, { id: number; buffer: B }[]>();
  private readonly ids = new Map<B, number>();
  private nextId = 0;

  constructor(
    private readonly tracker: MemoryTracker,
    private readonly create: (bytes: number) => B,
    private readonly destroy: (buffer: B) => void,
  ) {}

  /** A buffer of at least `bytes` (its size class), reused when one is free. */
  acquire(bytes: number): { buffer: B; size: number } {
    const size = sizeClass(bytes);
    const heap = this.free.get(size);
    if (heap?.length) {
      const top = heap[0];
      const last = heap.pop()!;
      if (heap.length) {
        // sift `last` down from the root
        let i = 0;
        for (;;) {
          const l = 2 * i + 1, r = l + 1;
          let m = i, least = last.id; // the smallest id among i (holding `last`), l and r
          if (l < heap.length && heap[l].id < least) { m = l; least = heap[l].id; }
          if (r < heap.length && heap[r].id < least) m = r;
          if (m === i) break;
          heap[i] = heap[m];
          i = m;
        }
        heap[i] = last;
      }
      this.tracker.poolHits++;
      this.tracker.pooledBuffers--;
      this.tracker.pooledBytes -= size;
      return { buffer: top.buffer, size };
    }
    const buffer = this.create(size);
    this.ids.set(buffer, this.nextId++);
    this.tracker.deviceAllocations++;
    this.tracker.onReserve(size);
    return { buffer, size };
  }

  /** Returns a buffer (of class `size`) to the pool. */
  release(buffer: B, size: number): void {
    let heap = this.free.get(size);
    if (!heap) this.free.set(size, (heap = []));
    const id = this.ids.get(buffer);
    if (id === undefined) throw new InvalidArgumentError('a buffer returned to a pool that did not create it');
    let i = heap.push({ id, buffer }) - 1;
    while (i > 0) { // sift up
      const p = (i - 1) >> 1;
      if (heap[p].id <= id) break;
      [heap[p], heap[i]] = [heap[i], heap[p]];
      i = p;
    }
    this.tracker.pooledBuffers++;
    this.tracker.pooledBytes += size;
  }

  /** Gives every pooled buffer back to the device. torch.cuda.empty_cache. */
  emptyCache(): void {
    for (const [size, heap] of this.free) {
      for (const { buffer } of heap) {
        this.destroy(buffer);
        this.ids.delete(buffer);
        this.tracker.onReserve(-size);
      }
    }
    this.tracker.pooledBuffers = 0;
    this.tracker.pooledBytes = 0;
    this.free.clear();
  }
}
