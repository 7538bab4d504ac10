// Worker threads for the wasm backend. One pool per process (the module's memory is one per
// process too): each worker instantiates the threads build of the module on the same shared
// WebAssembly.Memory and waits on a small control block (a SharedArrayBuffer) for parts of a
// kernel call. The calling thread writes one part per worker, wakes them, runs part 0 itself and
// waits until every part is done, so a kernel call stays synchronous, as on one thread.
//
// Workers never allocate: the module's heap state (TLSF, region table) lives in the main
// instance's globals, so every part gets its buffers (packing scratch included) from the caller,
// and the worker's copy of the module has no data section (see wasmForWorkers).
//
// Splitting never changes a result: a kernel is split only where each output element is computed
// by the same operations in the same order whichever part holds it (rows, heads, output tiles,
// element ranges on SIMD-width boundaries). Parts go to workers that have started; until they have
// (a few ms after the first threaded backend), the caller runs everything itself.
import { MemfitError } from '../../errors.js';
import { wasmForWorkers } from '../../dtype/wasm.js';
import { coresAvailable, startWorker, type KernelWorker } from './node_worker.js';

/** Most workers a pool holds (threads - 1). */
export const MAX_WORKERS = 63;
/** Most arguments a kernel part takes. */
const MAX_ARGS = 24;

// Control block layout (Int32 indices).
const GEN = 0, PENDING = 1, ERROR = 2, STOP = 3, SCRATCH = 4;
const READY = 8; // one flag per worker
const SLOT = READY + MAX_WORKERS + 1; // per worker: [generation, export index, argument count]
const ARGS_BYTES = ((SLOT + 3 * MAX_WORKERS) * 4 + 7) & ~7; // Float64 arguments, MAX_ARGS per worker
const CONTROL_BYTES = ARGS_BYTES + MAX_WORKERS * MAX_ARGS * 8;

/** The worker's code: a classic script, the same in Node and browsers (the bootstrap line differs). */
const WORKER_SOURCE = `
function memfitWorker(d) {
  const GEN = ${GEN}, PENDING = ${PENDING}, ERROR = ${ERROR}, STOP = ${STOP}, READY = ${READY}, SLOT = ${SLOT};
  const i32 = new Int32Array(d.control), f64 = new Float64Array(d.control, ${ARGS_BYTES}, ${MAX_WORKERS * MAX_ARGS});
  const inst = new WebAssembly.Instance(d.module, { env: { memory: d.memory, abort(_m, _f, l, c) { throw new Error('memfit WebAssembly abort at ' + l + ':' + c); } } });
  const fns = d.names.map((n) => inst.exports[n]);
  const me = d.index, slot = SLOT + 3 * me, at = me * ${MAX_ARGS};
  let seen = Atomics.load(i32, GEN);
  Atomics.store(i32, READY + me, 1);
  for (;;) {
    Atomics.wait(i32, GEN, seen);
    if (Atomics.load(i32, STOP) !== 0) return;
    seen = Atomics.load(i32, GEN);
    if (Atomics.load(i32, slot) !== seen) continue;
    const fn = fns[i32[slot + 1]], n = i32[slot + 2];
    const a = new Array(n);
    for (let i = 0; i < n; i++) a[i] = f64[at + i];
    try { fn(...a); } catch (e) { Atomics.store(i32, ERROR, 1); }
    if (Atomics.sub(i32, PENDING, 1) === 1) Atomics.notify(i32, PENDING);
  }
}
`;

/** One part of a kernel call: an export of the module and its arguments (numbers). */
export interface KernelPart {
  readonly fn: string;
  readonly args: readonly number[];
}

class Pool {
  private readonly control = new SharedArrayBuffer(CONTROL_BYTES);
  private readonly i32 = new Int32Array(this.control);
  private readonly f64 = new Float64Array(this.control, ARGS_BYTES, MAX_WORKERS * MAX_ARGS);
  private readonly workers: KernelWorker[] = [];
  private readonly names: string[];
  private readonly index = new Map<string, number>();
  private readonly canBlock: boolean;
  private users = 0;
  private gen = 0;

  constructor(private readonly wasmParts: { module: WebAssembly.Module; memory: WebAssembly.Memory }, private readonly exportsOf: () => Record<string, unknown>) {
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
    while (this.workers.length < Math.min(n, MAX_WORKERS)) {
      const index = this.workers.length;
      this.workers.push(startWorker(WORKER_SOURCE, { module: this.wasmParts.module, memory: this.wasmParts.memory, control: this.control, index, names: this.names }));
    }
  }

  /** Indices of the first `n` workers that are ready now. */
  readyWorkers(n: number): number[] {
    const out: number[] = [];
    for (let w = 0; w < this.workers.length && out.length < n; w++) if (Atomics.load(this.i32, READY + w) === 1) out.push(w);
    return out;
  }

  /** Resolves once `n` workers are ready (they are usually within a few milliseconds). */
  async ready(n: number, timeoutMs = 10_000): Promise<void> {
    const start = Date.now();
    while (this.readyWorkers(n).length < Math.min(n, this.workers.length)) {
      if (Date.now() - start > timeoutMs) throw new MemfitError('THREADS_NOT_READY', `wasm worker threads did not start within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /** Runs parts[0] here and parts[1..] on the workers `on`; returns when all are done. */
  run(parts: readonly KernelPart[], on: readonly number[]): void {
    const ex = this.exportsOf();
    if (parts.length === 1) {
      (ex[parts[0].fn] as (...a: number[]) => void)(...parts[0].args);
      return;
    }
    const gen = (this.gen = (this.gen + 1) | 0) || (this.gen = 1);
    Atomics.store(this.i32, PENDING, parts.length - 1);
    for (let p = 1; p < parts.length; p++) {
      const w = on[p - 1], part = parts[p];
      const fn = this.index.get(part.fn);
      if (fn === undefined || part.args.length > MAX_ARGS) throw new MemfitError('THREADS_BAD_PART', `no kernel ${part.fn} with ${part.args.length} arguments for worker threads`);
      const slot = SLOT + 3 * w;
      for (let i = 0; i < part.args.length; i++) this.f64[w * MAX_ARGS + i] = part.args[i];
      this.i32[slot + 1] = fn;
      this.i32[slot + 2] = part.args.length;
      Atomics.store(this.i32, slot, gen);
    }
    Atomics.store(this.i32, GEN, gen);
    Atomics.notify(this.i32, GEN);
    let failed: unknown;
    try {
      (ex[parts[0].fn] as (...a: number[]) => void)(...parts[0].args);
    } catch (e) {
      failed = e; // still wait for the workers: they use the same buffers
    }
    for (let spins = 0; ;) {
      const left = Atomics.load(this.i32, PENDING);
      if (left === 0) break;
      if (this.canBlock && ++spins > 200) Atomics.wait(this.i32, PENDING, left, 20);
    }
    if (failed !== undefined) throw failed;
    if (Atomics.exchange(this.i32, ERROR, 0) !== 0) throw new MemfitError('THREAD_FAILED', `a wasm worker thread failed in ${parts[1].fn}`);
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
  static open(threads: number, exportsOf: () => Record<string, unknown>): Threads | undefined {
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

  /** How many parts to split a kernel call into now (1 + the workers ready, at most `threads`). */
  lanes(): number {
    if (this.released || !pool) return 1;
    return 1 + pool.readyWorkers(this.threads - 1).length;
  }

  /** Runs the parts (parts.length <= lanes()) and returns when all are done. */
  run(parts: readonly KernelPart[]): void {
    if (!pool || this.released) throw new MemfitError('BACKEND_DESTROYED', 'the wasm backend\'s threads were closed');
    const on = pool.readyWorkers(parts.length - 1);
    if (on.length < parts.length - 1) throw new MemfitError('THREADS_BAD_PART', `${parts.length} parts for ${on.length + 1} threads`);
    pool.run(parts, on);
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
