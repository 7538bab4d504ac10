// Runs a WebAssembly kernel over arrays that may live outside WebAssembly memory: in place when
// they are WasmArrays (or views of one), else chunk by chunk through a reused scratch block sized to
// stay in cache.
import { WasmArray, isWasmView } from './host_array.js';
import { Scratch, view } from './wasm.js';

/** Elements per chunk: 256 K float32 = 1 MiB in (measured: 32 K-1 M chunks within 10%; smaller ones lose on decode). */
export const CHUNK = 262144;

type Typed = Float32Array | Float64Array | Uint8Array | Uint16Array | Uint32Array;
export type Side = { readonly data: Typed | WasmArray; readonly bytesPer: 1 | 2 | 4 | 8; readonly float: boolean; readonly what: string };

const scratchIn = new Scratch();
const scratchOut = new Scratch();

/**
 * The pointer of a side that lives in WebAssembly memory (a live WasmArray, or a view of one), or
 * null for ordinary memory. Take it before anything is allocated: growth detaches views. A freed
 * WasmArray, or a stale or orphaned view, is an InvalidArgumentError naming the side.
 */
export function wasmPtr(side: Side): number | null {
  if (side.data instanceof WasmArray) return side.data.livePtr(side.what);
  return isWasmView(side.data, side.what) ? side.data.byteOffset : null;
}

/**
 * Calls `kernel(srcPtr, dstPtr, count, offset)` over `n` elements of `src` into `dst` (element sizes
 * given), where `offset` is the index of the chunk's first element. Every side is checked before the
 * first kernel runs.
 */
export function streamKernel(src: Side, dst: Side, n: number, kernel: (src: number, dst: number, count: number, offset: number) => void): void {
  const srcPtr = wasmPtr(src), dstPtr = wasmPtr(dst);
  if (srcPtr !== null && dstPtr !== null) {
    kernel(srcPtr, dstPtr, n, 0);
    return;
  }
  const chunk = Math.min(n, CHUNK);
  const inPtr = srcPtr !== null ? 0 : scratchIn.ensure(chunk * src.bytesPer);
  const outPtr = dstPtr !== null ? 0 : scratchOut.ensure(chunk * dst.bytesPer);
  // Views are taken after every allocation above, so memory growth cannot detach them.
  const inView = srcPtr !== null ? undefined : view(inPtr, chunk, src.bytesPer, src.float);
  const outView = dstPtr !== null ? undefined : view(outPtr, chunk, dst.bytesPer, dst.float);
  for (let i = 0; i < n; i += chunk) {
    const c = Math.min(chunk, n - i);
    let s: number;
    if (srcPtr !== null) s = srcPtr + i * src.bytesPer;
    else {
      (inView as Typed).set((src.data as Typed).subarray(i, i + c) as never);
      s = inPtr;
    }
    const d = dstPtr !== null ? dstPtr + i * dst.bytesPer : outPtr;
    kernel(s, d, c, i);
    if (dstPtr === null) {
      (dst.data as Typed).set((c === chunk ? outView! : outView!.subarray(0, c)) as never, i);
    }
  }
}
