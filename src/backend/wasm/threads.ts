// Worker threads for the wasm backend. One pool per process (the module's memory is one per
// process too): each worker instantiates the threads build of the module on the same shared
// WebAssembly.Memory and waits on a small control block (a SharedArrayBuffer) for kernel calls.
// A call is a list of parts (pieces of one kernel call); the calling thread publishes them, wakes
// up to threads - 1 workers, and every one of them, itself included, takes the next part not yet
// taken until none is left; the call returns when all parts are done, so it stays synchronous, as
// on one thread. Taking parts in turn (rather than one fixed share each) keeps every thread busy
// on a loaded machine or on cores of unequal speed.
//
// Workers never allocate: the module's heap state (TLSF, region table) lives in the main
// instance's globals, so every part gets its buffers from the caller (per-thread packing scratch:
// the part's last argument plus the thread's seat, 0 to threads - 1, times scratchStride), and the worker's copy of
// the module has no data section (see wasmForWorkers).
//
// Splitting never changes a result: a kernel is split only where each output element is computed
// by the same operations in the same order whichever part holds it (rows, heads, output tiles,
// element ranges on SIMD-width boundaries), and which thread runs a part does not matter. Workers
// take part once they have started (a few ms after the first threaded backend); until then the
// caller runs every part itself.
import { MemfitError } from '../../errors.js';
import { wasmForWorkers } from '../../dtype/wasm.js';
import { coresAvailable, startWorker, type KernelWorker } from './node_worker.js';
import type { MemfitWasm, MemfitWasmFunction } from './exports.js';

/** Most workers a pool holds (threads - 1). */
export const MAX_WORKERS = 63;
/** Most arguments a kernel part takes. */
const MAX_ARGS = 24;
/**
 * How long, in microseconds, the caller spins waiting for the workers' parts and a worker spins
 * waiting for the next call before blocking, while the pool's threads fit the cores; with more
 * threads than cores they block at once (a spinning thread would take a core another one needs).
 */
const SPIN_US = 1000;
/** Most parts of one call. */
export const MAX_PARTS = 1024;

// Control block layout (Int32 indices). NEXT holds (generation & 0x7fff) << 16 | the next part to
// take; JOIN holds the same generation << 16 | the workers' seats not yet taken.
const GEN = 0, DONE = 1, ERROR = 2, STOP = 3, SCRATCH = 4, NEXT = 5, COUNT = 6, JOIN = 7, WORKERS = 8, STRIDE = 9, SPIN = 10;
const READY = 16; // one flag per worker
const FN = READY + MAX_WORKERS + 1; // per part: export index, argument count
const ARGS_BYTES = ((FN + 2 * MAX_PARTS) * 4 + 7) & ~7; // Float64 arguments, MAX_ARGS per part
const CONTROL_BYTES = ARGS_BYTES + MAX_PARTS * MAX_ARGS * 8;

/** The worker's code: a classic script, the same in Node and browsers (the bootstrap line differs). */
const WORKER_SOURCE = `
function memfitWorker(d) {
  const GEN = ${GEN}, DONE = ${DONE}, ERROR = ${ERROR}, STOP = ${STOP}, NEXT = ${NEXT}, COUNT = ${COUNT}, JOIN = ${JOIN}, WORKERS = ${WORKERS}, STRIDE = ${STRIDE}, SPIN = ${SPIN}, READY = ${READY}, FN = ${FN};
  const i32 = new Int32Array(d.control), f64 = new Float64Array(d.control, ${ARGS_BYTES}, ${MAX_PARTS * MAX_ARGS});
  const inst = new WebAssembly.Instance(d.module, { env: { memory: d.memory, abort(_m, _f, l, c) { throw new Error('memfit WebAssembly abort at ' + l + ':' + c); } } });
  const fns = d.names.map((n) => inst.exports[n]);
  let seen = Atomics.load(i32, GEN);
  Atomics.store(i32, READY + d.index, 1);
  for (;;) {
    // Spin a little before blocking: a call that comes soon after the last one finds this worker awake.
    for (let spins = 0, until = 0; Atomics.load(i32, GEN) === seen; ) {
      if ((++spins & 1023) !== 0) continue;
      const now = performance.now();
      if (until === 0) until = now + Atomics.load(i32, SPIN) / 1000;
      else if (now >= until) { Atomics.wait(i32, GEN, seen); break; }
    }
    if (Atomics.load(i32, STOP) !== 0) return;
    seen = Atomics.load(i32, GEN);
    const g = seen & 0x7fff;
    if ((Atomics.load(i32, NEXT) >>> 16) !== g) continue;
    // A call takes threads - 1 workers at most: JOIN counts the seats left, tagged with the call's
    // generation, so a worker late from the last call cannot take a seat of the next one.
    let joined = 0;
    for (;;) {
      const v = Atomics.load(i32, JOIN);
      if ((v >>> 16) !== g || (v & 0xffff) === 0) break;
      if (Atomics.compareExchange(i32, JOIN, v, v - 1) === v) { joined = v & 0xffff; break; }
    }
    if (joined === 0) continue;
    const seat = Atomics.load(i32, WORKERS) - joined + 1; // 1 .. threads - 1: which scratch block is this worker's
    for (;;) {
      const v = Atomics.load(i32, NEXT);
      if ((v >>> 16) !== g) break;
      const count = Atomics.load(i32, COUNT), part = v & 0xffff;
      if (part >= count) break;
      if (Atomics.compareExchange(i32, NEXT, v, v + 1) !== v) continue;
      const n = i32[FN + 2 * part + 1], a = new Array(n);
      for (let i = 0; i < n; i++) a[i] = f64[part * ${MAX_ARGS} + i];
      a[n - 1] += seat * Atomics.load(i32, STRIDE);
      try { fns[i32[FN + 2 * part]](...a); } catch (e) { Atomics.store(i32, ERROR, 1); }
      if (Atomics.add(i32, DONE, 1) + 1 === count) Atomics.notify(i32, DONE);
    }
  }
}
`;

/**
 * One part of a kernel call: an export of the module and its arguments (numbers). With a call's
 * scratchStride, the last argument is a scratch pointer: the thread running the part adds its seat
 * in the call (0: the caller; 1 .. threads - 1: workers) times the stride.
 */
export interface KernelPart {
  readonly fn: MemfitWasmFunction;
  readonly args: readonly number[];
}

class Pool {
  private readonly control = new SharedArrayBuffer(CONTROL_BYTES);
  private readonly i32 = new Int32Array(this.control);
  private readonly f64 = new Float64Array(this.control, ARGS_BYTES, MAX_PARTS * MAX_ARGS);
  private readonly workers: KernelWorker[] = [];
  private readonly names: string[];
  private readonly index = new Map<string, number>();
  private readonly canBlock: boolean;
  private users = 0;
  private gen = 0;
  /** The first error a worker threw outside a kernel (it then takes no part: the others and the caller do the work). */
  failure: Error | undefined;

  constructor(private readonly wasmParts: { module: WebAssembly.Module; memory: WebAssembly.Memory }, private readonly exportsOf: () => MemfitWasm) {
    this.names = WebAssembly.Module.exports(wasmParts.module).filter((e) => e.kind === 'function').map((e) => e.name);
    this.names.forEach((n, i) => this.index.set(n, i));
    let block = true;
    try {
      Atomics.wait(this.i32, SCRATCH, 1, 0); // a browser's main thread may not block: it spins instead
    } catch {
      block = false;
    }
    this.canBlock = block;
  }

  /** Makes sure `n` workers exist (started; they become ready on their own). */
  grow(n: number): void {
    // Spin only while every thread (the caller and the workers) can have a core of its own.
    Atomics.store(this.i32, SPIN, Math.max(n, this.workers.length) + 1 <= coresAvailable() ? SPIN_US : 0);
    while (this.workers.length < Math.min(n, MAX_WORKERS)) {
      const index = this.workers.length;
      const data = { module: this.wasmParts.module, memory: this.wasmParts.memory, control: this.control, index, names: this.names };
      this.workers.push(startWorker(WORKER_SOURCE, data, (e) => { this.failure ??= e; }));
    }
  }

  /** How many of the first `n` workers are ready now. */
  readyCount(n: number): number {
    let k = 0;
    for (let w = 0; w < Math.min(n, this.workers.length); w++) if (Atomics.load(this.i32, READY + w) === 1) k++;
    return k;
  }

  /** Resolves once `n` workers are ready (they are usually within a few milliseconds). */
  async ready(n: number, timeoutMs = 10_000): Promise<void> {
    const start = Date.now();
    while (this.readyCount(n) < Math.min(n, this.workers.length)) {
      if (this.failure) throw new MemfitError('THREADS_NOT_READY', `a wasm worker thread failed to start: ${this.failure.message}`);
      if (Date.now() - start > timeoutMs) throw new MemfitError('THREADS_NOT_READY', `wasm worker threads did not start within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /** Runs the parts on this thread and up to `workers` workers; returns when all are done. */
  run(parts: readonly KernelPart[], workers: number, scratchStride: number): void {
    const ex = this.exportsOf();
    if (parts.length > MAX_PARTS) throw new MemfitError('THREADS_BAD_PART', `${parts.length} parts in one call (at most ${MAX_PARTS})`);
    for (let p = 0; p < parts.length; p++) {
      const part = parts[p];
      const fn = this.index.get(part.fn);
      if (fn === undefined || part.args.length > MAX_ARGS || part.args.length === 0) throw new MemfitError('THREADS_BAD_PART', `no kernel ${part.fn} with ${part.args.length} arguments for worker threads`);
      this.i32[FN + 2 * p] = fn;
      this.i32[FN + 2 * p + 1] = part.args.length;
      for (let i = 0; i < part.args.length; i++) this.f64[p * MAX_ARGS + i] = part.args[i];
    }
    this.gen = (this.gen + 1) & 0x7fff;
    const g = this.gen, count = parts.length;
    Atomics.store(this.i32, STRIDE, scratchStride);
    Atomics.store(this.i32, DONE, 0);
    Atomics.store(this.i32, COUNT, count);
    Atomics.store(this.i32, WORKERS, workers);
    Atomics.store(this.i32, JOIN, g << 16 | workers);
    Atomics.store(this.i32, NEXT, g << 16); // parts and count are in place before anyone may take one
    Atomics.add(this.i32, GEN, 1);
    Atomics.notify(this.i32, GEN, workers);
    let failed: unknown;
    for (;;) {
      const v = Atomics.load(this.i32, NEXT), part = v & 0xffff;
      if (part >= count) break;
      if (Atomics.compareExchange(this.i32, NEXT, v, v + 1) !== v) continue;
      try {
        callPart(ex, parts[part]);
      } catch (e) {
        failed ??= e; // still wait for the workers: they use the same buffers
      }
      Atomics.add(this.i32, DONE, 1);
    }
    // Wait for the workers' parts: spinning first, since a blocked thread takes tens of microseconds
    // to wake (35-70 us measured on a 2-core VM), as long as a small kernel's part; then blocking.
    for (let spins = 0, spinUntil = 0; ;) {
      const done = Atomics.load(this.i32, DONE);
      if (done === count) break;
      if (this.canBlock && (++spins & 1023) === 0) {
        const now = performance.now();
        if (spinUntil === 0) spinUntil = now + Atomics.load(this.i32, SPIN) / 1000;
        else if (now >= spinUntil) Atomics.wait(this.i32, DONE, done, 20);
      }
    }
    Atomics.store(this.i32, NEXT, g << 16 | 0xffff); // late workers find nothing to take
    if (failed !== undefined) throw failed;
    if (Atomics.exchange(this.i32, ERROR, 0) !== 0) throw new MemfitError('THREAD_FAILED', `a wasm worker thread failed in ${parts[0].fn}`);
  }

  acquire(): void {
    this.users++;
  }

  /** One user fewer; the last one stops the workers (a later threaded backend starts new ones). */
  release(): boolean {
    if (--this.users > 0) return false;
    Atomics.store(this.i32, STOP, 1);
    Atomics.add(this.i32, GEN, 1);
    Atomics.notify(this.i32, GEN);
    for (const w of this.workers) w.terminate();
    this.workers.length = 0;
    return true;
  }
}

let pool: Pool | undefined;

/** The threads a backend gets by default: the cores available, at most DEFAULT_MAX_THREADS. */
export const DEFAULT_MAX_THREADS = 4;

export function defaultThreads(): number {
  return Math.max(1, Math.min(DEFAULT_MAX_THREADS, coresAvailable()));
}

/** A backend's share of the pool: up to `threads` parts per kernel call (itself included). */
export class Threads {
  private released = false;
  private constructor(readonly threads: number) {}

  /**
   * Threads for a backend: `threads` (>= 1) when shared memory is possible, else undefined (the
   * caller then runs on one thread and says why).
   */
  static open(threads: number, exportsOf: () => MemfitWasm): Threads | undefined {
    const parts = wasmForWorkers();
    if (!parts) return undefined;
    pool ??= new Pool(parts, exportsOf);
    pool.acquire();
    pool.grow(threads - 1);
    return new Threads(threads);
  }

  /** Resolves once this backend's workers have started. */
  ready(): Promise<void> {
    return pool ? pool.ready(this.threads - 1) : Promise.resolve();
  }

  /** How many threads would run a kernel call now (1 + the workers ready, at most `threads`). */
  lanes(): number {
    if (this.released || !pool) return 1;
    return 1 + pool.readyCount(this.threads - 1);
  }

  /** Runs the parts on this thread and up to threads - 1 workers; returns when all are done. */
  run(parts: readonly KernelPart[], scratchStride = 0): void {
    if (!pool || this.released) throw new MemfitError('BACKEND_DESTROYED', 'the wasm backend\'s threads were closed');
    pool.run(parts, this.threads - 1, scratchStride);
  }

  close(): void {
    if (this.released) return;
    this.released = true;
    if (pool?.release()) pool = undefined;
  }
}

/**
 * [start, end) bounds of `parts` nearly equal pieces of [0, n), each boundary a multiple of `align`
 * (the last piece takes the rest); empty pieces are dropped.
 */
export function splitRange(n: number, parts: number, align = 1): Array<[number, number]> {
  const units = Math.ceil(n / align);
  const out: Array<[number, number]> = [];
  for (let p = 0, start = 0; p < parts && start < n; p++) {
    const end = p === parts - 1 ? n : Math.min(n, Math.floor((units * (p + 1)) / parts) * align);
    if (end > start) out.push([start, end]);
    start = Math.max(start, end);
  }
  return out;
}

/** Runs one part on this thread. Parts carry numbers only (they travel to workers as float64 arguments); the export's adapter takes them as the compiler typed them (0/1 as booleans). */
export function callPart(ex: MemfitWasm, part: KernelPart): void {
  (ex[part.fn] as (...a: number[]) => unknown)(...part.args);
}
