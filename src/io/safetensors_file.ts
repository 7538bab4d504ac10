// safetensors files in Node. Both directions stream one tensor at a time, so a file never has to fit in
// memory twice: saving reads each tensor back from its backend and appends it; loading reads the header,
// validates it against the file size, then reads each tensor's range straight into a new tensor.
// Saving is atomic: a temporary file in the target's directory is written, fsynced and renamed over the
// target, so a crash or an error mid-write leaves any previous file untouched (a device or FIFO target
// is written in place, never replaced: fs_sync.ts, openOutput).
import { open, type FileHandle } from 'node:fs/promises';
import type { Backend } from '../backend/backend.js';
import { describeValue, InvalidArgumentError, MemfitError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { openOutput, readFully as readAll, writeFully, type OutputFile } from './fs_sync.js';
import {
  SafetensorsError, checkSupported, parseSafetensorsHeader, planSafetensors, rawToTensor, readTensorBytes,
  safetensorsHeaderSize, checkBackend, checkLoadOptions, type LoadOptions, type SafetensorsHeader,
} from './safetensors.js';

/** Reads exactly buf.length bytes; a short file is a SafetensorsError. */
const readFully = (h: FileHandle, buf: Uint8Array, position: number): Promise<void> =>
  readAll(h, buf, position, (at) => new SafetensorsError(`file ended at byte ${at}, before the ${position + buf.length} its header promises (was it changed while loading?)`));

/** The error `e` as a SafetensorsError whose message starts with the path. */
export function withPath(path: string, e: unknown, doing: string): SafetensorsError {
  if (e instanceof SafetensorsError) return new SafetensorsError(`${path}: ${e.message}`, { tensor: e.tensor, cause: e });
  const msg = e instanceof Error ? e.message : String(e);
  return new SafetensorsError(`${path}: ${doing}: ${msg}`, { tensor: undefined, cause: e });
}



/**
 * Writes `tensors` and string `metadata` to `path` as safetensors: atomically (temp file, fsync,
 * rename) over a regular file, in place into a character device or FIFO (see openOutput in fs_sync.ts).
 */
export async function saveSafetensors(path: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): Promise<void> {
  if (typeof path !== 'string' || path === '') throw new InvalidArgumentError(`saveSafetensors: path must be a non-empty string, got ${path === '' ? "''" : typeof path}`);
  if (tensors === null || typeof tensors !== 'object') throw new InvalidArgumentError(`saveSafetensors: tensors must be an object of Tensors, got ${tensors === null ? 'null' : typeof tensors}`);
  const list = Object.entries(tensors);
  for (const [name, t] of list) if (!(t instanceof Tensor)) throw new InvalidArgumentError(`tensor '${name}' is not a Tensor`);
  // Names, dtypes and metadata are checked here, before any file is touched.
  const layout = planSafetensors(list, metadata);
  const byName = new Map(list);
  let out: OutputFile | undefined;
  try {
    out = await openOutput(path);
    // Sequential writes, in data order: a FIFO cannot seek.
    await writeFully(out.handle, layout.header);
    for (const { name, begin, end } of layout.order) {
      const bytes = await readTensorBytes(byName.get(name)!);
      if (bytes.length !== end - begin) throw new SafetensorsError(`tensor '${name}' read back ${bytes.length} bytes, expected ${end - begin}`, { tensor: name });
      await writeFully(out.handle, bytes);
    }
    await out.commit();
  } catch (e) {
    throw withPath(path, e, 'cannot save');
  } finally {
    await out?.abort();
  }
}

/** Reads and validates the header of the safetensors file at `path` (no tensor data is read). */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  checkInputPath(path, 'readSafetensorsHeader');
  const h = await openForRead(path);
  try {
    return (await readHeader(h, path)).header;
  } finally {
    await h.close().catch(() => {});
  }
}

/** Refuses a path argument of `fn` that is not a non-empty string (before any work). */
function checkInputPath(path: unknown, fn: string): void {
  if (typeof path !== 'string' || path === '') throw new InvalidArgumentError(`${fn}: path must be a non-empty string, got ${describeValue(path)}`);
}

async function openForRead(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (e) {
    throw withPath(path, e, 'cannot open');
  }
}

async function readHeader(h: FileHandle, path: string): Promise<{ header: SafetensorsHeader; size: number }> {
  try {
    const st = await h.stat();
    if (!st.isFile()) throw new SafetensorsError('not a regular file');
    const size = st.size;
    const first = new Uint8Array(Math.min(8, size));
    await readFully(h, first, 0);
    const headerSize = safetensorsHeaderSize(first, size);
    const bytes = new Uint8Array(headerSize);
    bytes.set(first);
    await readFully(h, bytes.subarray(8), 8);
    return { header: parseSafetensorsHeader(bytes, size), size };
  } catch (e) {
    throw withPath(path, e, 'cannot read');
  }
}

/** Loads the safetensors file at `path` into tensors on `backend` (a null-prototype record), plus its metadata. */
export async function loadSafetensors(path: string, backend: Backend, options?: LoadOptions): Promise<{ tensors: Record<string, Tensor>; metadata: Record<string, string> }> {
  checkInputPath(path, 'loadSafetensors');
  checkBackend(backend, 'loadSafetensors');
  const { category = 'parameter' } = checkLoadOptions(options, 'loadSafetensors');
  const h = await openForRead(path);
  const tensors = Object.create(null) as Record<string, Tensor>;
  try {
    const { header } = await readHeader(h, path);
    try {
      checkSupported(header.tensors);
      for (const [name, info] of header.tensors) {
        const [begin, end] = info.dataOffsets;
        const bytes = new Uint8Array(end - begin);
        await readFully(h, bytes, header.headerByteLength + begin);
        tensors[name] = rawToTensor(backend, name, { dtype: info.memfit!.dtype, shape: info.memfit!.shape, bytes }, category);
      }
    } catch (e) {
      throw withPath(path, e, e instanceof MemfitError ? 'cannot load' : 'cannot read');
    }
    return { tensors, metadata: header.metadata };
  } catch (e) {
    for (const t of Object.values(tensors)) t.dispose();
    throw e;
  } finally {
    await h.close().catch(() => {});
  }
}
