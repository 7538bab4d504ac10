// Starts a kernel worker thread in Node (worker_threads). The browser bundle uses
// node_worker.browser.ts instead (scripts/build.mjs swaps it in). The worker is unref'd: it never
// keeps the process alive once the program is done.
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';

export interface KernelWorker {
  terminate(): void;
}

/** Starts `source` (a classic script that calls memfitWorker(data)) with `data` as its input; onError gets an error it throws. */
export function startWorker(source: string, data: unknown, onError: (e: Error) => void): KernelWorker {
  // import() works whether Node evaluates the script as CommonJS or, under --input-type=module, as ESM.
  const w = new Worker(`${source}\nimport('node:worker_threads').then((m) => memfitWorker(m.workerData));`, { eval: true, workerData: data, execArgv: [] });
  w.on('error', onError);
  w.unref();
  return { terminate: () => void w.terminate() };
}

/** The cores this process may use. */
export function coresAvailable(): number {
  return availableParallelism();
}
