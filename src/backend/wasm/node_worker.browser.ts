// Browser stand-in for node_worker.ts (scripts/build.mjs swaps it in): a Web Worker from a blob URL,
// so that the package needs no separate worker file.
export interface KernelWorker {
  terminate(): void;
}

export function startWorker(source: string, data: unknown, onError: (e: Error) => void): KernelWorker {
  const url = URL.createObjectURL(new Blob([`${source}\nself.onmessage = (e) => memfitWorker(e.data);`], { type: 'text/javascript' }));
  const w = new Worker(url);
  w.onerror = (e) => onError(new Error(e.message));
  w.postMessage(data);
  return { terminate: () => { w.terminate(); URL.revokeObjectURL(url); } };
}

export function coresAvailable(): number {
  return typeof navigator !== 'undefined' && navigator.hardwareConcurrency > 0 ? navigator.hardwareConcurrency : 1;
}
