// GPU time of a region of recorded work, from the 'timestamp-query' feature. Core WebGPU writes
// timestamps only at the beginning and end of a pass (timestampWrites on the pass descriptor;
// writeTimestamp inside passes is Dawn-only), so every compute pass the backend begins while a
// region is open gets a pair of queries, and the region's GPU time is the sum of its passes'
// durations: the time the GPU spent in the region's dispatches, without the gaps between passes
// (host recording, submits) and without buffer copies (they are outside passes).
import { InvalidArgumentError } from '../../errors.js';

/** Queries a query set holds (pairs: begin, end of one pass). */
const QUERIES_PER_SET = 512;

export class GpuTimer {
  private readonly sets: GPUQuerySet[] = [];
  /** Queries written so far (the next pass's begin index). */
  private used = 0;
  private closed = false;

  constructor(private readonly device: GPUDevice) {}

  /** The timestampWrites of the next compute pass (a new query set every QUERIES_PER_SET / 2 passes). */
  passWrites(): GPUComputePassTimestampWrites {
    if (this.closed) throw new InvalidArgumentError('internal: a pass began after its timed region ended');
    const k = this.used % QUERIES_PER_SET;
    if (k === 0) this.sets.push(this.device.createQuerySet({ type: 'timestamp', count: QUERIES_PER_SET, label: 'memfit timer' }));
    this.used += 2;
    return { querySet: this.sets[this.sets.length - 1], beginningOfPassWriteIndex: k, endOfPassWriteIndex: k + 1 };
  }

  /** Passes timed so far. */
  get passes(): number { return this.used / 2; }

  /**
   * Resolves the queries (after the region's work was submitted) and returns the summed pass
   * durations in milliseconds; the query sets are destroyed.
   */
  async read(): Promise<number> {
    this.closed = true;
    if (this.used === 0) return 0;
    const bytes = this.used * 8;
    const resolve = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC, label: 'memfit timer resolve' });
    const staging = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: 'memfit timer readback' });
    try {
      const enc = this.device.createCommandEncoder({ label: 'memfit timer' });
      this.sets.forEach((s, i) => {
        const n = Math.min(QUERIES_PER_SET, this.used - i * QUERIES_PER_SET);
        enc.resolveQuerySet(s, 0, n, resolve, i * QUERIES_PER_SET * 8);
      });
      enc.copyBufferToBuffer(resolve, 0, staging, 0, bytes);
      this.device.queue.submit([enc.finish()]);
      await staging.mapAsync(GPUMapMode.READ);
      const ns = new BigUint64Array(staging.getMappedRange().slice(0));
      staging.unmap();
      let total = 0n;
      for (let i = 0; i < ns.length; i += 2) if (ns[i + 1] > ns[i]) total += ns[i + 1] - ns[i]; // a reset clock reads as 0
      return Number(total) / 1e6;
    } finally {
      resolve.destroy();
      staging.destroy();
      for (const s of this.sets) s.destroy();
    }
  }
}
