// File helpers shared by the CLI's convert and the safetensors files: whole reads and writes (a
// single read or write may move fewer bytes than asked), and the directory fsync that makes an
// atomic rename durable, and whole-file atomic replacement.
import { randomBytes } from 'node:crypto';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Largest single read/write (Node refuses more than 2 GiB in one call). */
const IO_CHUNK = 1 << 30;

/** Reads exactly buf.length bytes at `position`; at end of file throws eof(position reached). */
export async function readFully(h: FileHandle, buf: Uint8Array, position: number, eof: (at: number) => Error): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await h.read(buf, done, Math.min(IO_CHUNK, buf.length - done), position + done);
    if (bytesRead === 0) throw eof(position + done);
    done += bytesRead;
  }
}

/** Writes all of buf at `position` (or at the current position when null). */
export async function writeFully(h: FileHandle, buf: Uint8Array, position: number | null = null): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await h.write(buf, done, Math.min(IO_CHUNK, buf.length - done), position === null ? null : position + done);
    done += bytesWritten;
  }
}

/** Makes the rename durable (best effort: not every platform can fsync a directory). */
export async function syncDir(dir: string): Promise<void> {
  let h: FileHandle | undefined;
  try {
    h = await open(dir, 'r');
    await h.sync();
  } catch {
    /* ignore */
  } finally {
    await h?.close().catch(() => {});
  }
}

/**
 * Replaces `path` with `data` atomically: a temporary file in the same directory is written,
 * fsynced and renamed over it, so readers see the old file or the new one, never a part.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  let h: FileHandle | undefined;
  let created = false;
  try {
    h = await open(tmp, 'wx');
    created = true;
    await writeFully(h, bytes, 0);
    await h.sync();
    await h.close();
    h = undefined;
    await rename(tmp, path);
    created = false;
  } finally {
    if (h) await h.close().catch(() => {});
    if (created) await unlink(tmp).catch(() => {});
  }
  await syncDir(dirname(path));
}
