// File helpers shared by the CLI's convert, the safetensors files and the checkpoints: whole reads
// and writes (a single read or write may move fewer bytes than asked), the directory fsync that
// makes an atomic rename durable, and openOutput(), the one way memfit writes an output file.
//
// openOutput() decides how a target is written:
// - a regular file, or a path that does not exist: atomically. A temporary file
//   `.<name>.memfit-tmp-<pid>-<8 hex>` is written in the target's directory, fsynced and renamed
//   over the target, so a failure or a crash leaves any previous file whole. A symbolic link is
//   followed: the file it points to is replaced and the link is kept.
// - a character device (/dev/null, a terminal) or a FIFO (a named pipe, `>(...)`): written directly,
//   never replaced (a rename would put a regular file in place of the device or pipe). So are
//   /dev/stdout, /dev/stderr, /dev/fd/N and /proc/self/fd/N when they lead to a pipe or a socket (Linux
//   links them to `pipe:[ino]` / `socket:[ino]`, names no path resolves): a pipe is opened through the
//   link, a socket (which cannot be opened by path; Node's child processes get their stdio as sockets) is
//   written through this process's own file descriptor.
// - a directory, a block device, any other socket or a dangling symbolic link: refused with an
//   InvalidArgumentError naming the path; so are an empty path, a path ending in `/` and a path whose
//   directory does not exist (checkOutputPath() runs these checks before any work is done).
// - a replaced file keeps its permission bits (and, where the process may set them, its owner and group).
//
// Stale temporary files: a process killed mid-write (SIGKILL, power loss) leaves its temporary file
// behind. Each atomic write first removes the temporaries of the same target that match the name
// above and are provably stale: their writer's pid is not alive on this machine (and is not ours), or
// they were last modified more than an hour ago (a live writer keeps writing, so its file stays
// fresh; this also covers a dead writer's pid reused by another process). A concurrent writer of the
// same target is never disturbed. Temporaries of the earlier naming, `.<name>.tmp-<pid>-<8 hex>`, are
// cleaned by the same rules.
import { fstatSync, unlinkSync, write, type Stats } from 'node:fs';
import { constants } from 'node:fs';
import { access, lstat, open, readdir, readlink, realpath, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { InvalidArgumentError } from '../errors.js';

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

/** What an output is written through: a FileHandle, or (a socket of this process) its file descriptor. */
export interface OutputHandle {
  write(buffer: Uint8Array, offset: number, length: number, position: number | null): Promise<{ bytesWritten: number }>;
}

/** Writes all of buf at `position` (or at the current position when null). */
export async function writeFully(h: OutputHandle, buf: Uint8Array, position: number | null = null): Promise<void> {
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

/** A temporary file older than this (since its last write) is stale whoever wrote it. */
export const STALE_TEMP_MS = 60 * 60 * 1000;

/** The temporary-file name prefix for a target file name. */
function tempPrefix(name: string): string {
  return `.${name}.memfit-tmp-`;
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Matches our temporaries of `name` (and the earlier `.<name>.tmp-<pid>-<hex>` ones); group 1 is the pid. */
function tempPattern(name: string): RegExp {
  return new RegExp(`^\\.${escapeRegExp(name)}\\.(?:memfit-tmp|tmp)-(\\d+)-[0-9a-f]{8}$`);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by another user
  }
}

/**
 * Removes stale temporaries of `target` (see the top of this file); returns the names removed. Never
 * throws: cleaning is best effort and must not stop a save.
 */
export async function removeStaleTemps(target: string, now = Date.now()): Promise<string[]> {
  const dir = dirname(target), re = tempPattern(basename(target)), removed: string[] = [];
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const m = re.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    const path = join(dir, name);
    try {
      const st = await lstat(path);
      if (!st.isFile()) continue;
      const deadWriter = pid !== process.pid && Number.isSafeInteger(pid) && pid > 0 && !pidAlive(pid);
      if (deadWriter || now - st.mtimeMs > STALE_TEMP_MS) {
        await unlink(path);
        removed.push(name);
      }
    } catch {
      /* gone already, or not ours to remove */
    }
  }
  return removed;
}

/** How openOutput() writes a target: see the top of this file. */
export type OutputMode = 'atomic' | 'direct';

/** Refuses an empty path with a clear error; `what` names it (e.g. '--checkpoint', 'the output'). */
export function checkNonEmptyPath(path: string, what: string): void {
  if (typeof path !== 'string' || path === '') throw new InvalidArgumentError(`${what}: empty path (give a file name)`);
}

/** The directory a new file `path` goes in must exist (and be writable): checked before any work. */
async function checkParentDir(path: string): Promise<void> {
  const dir = dirname(path);
  let st;
  try {
    st = await stat(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new InvalidArgumentError(`${path}: the directory ${dir} does not exist`);
    throw e;
  }
  if (!st.isDirectory()) throw new InvalidArgumentError(`${path}: ${dir} is not a directory`);
  try {
    await access(dir, constants.W_OK | constants.X_OK);
  } catch {
    throw new InvalidArgumentError(`${path}: cannot create files in the directory ${dir} (permission denied)`);
  }
}

/**
 * The file descriptor of this process that `path` leads to through symbolic links (/dev/stdout ->
 * /proc/self/fd/1 -> socket:[ino]), checked to be the file `st` describes; undefined for any other path.
 */
async function ownFdBehind(path: string, st: Stats): Promise<number | undefined> {
  let p = resolve(path);
  for (let hops = 0; hops < 40; hops++) {
    try {
      p = join(await realpath(dirname(p)), basename(p));
      const m = /^\/proc\/(\d+)(?:\/task\/\d+)?\/fd\/(\d+)$/.exec(p);
      if (m && Number(m[1]) === process.pid) {
        const fd = Number(m[2]);
        const f = fstatSync(fd);
        return f.dev === st.dev && f.ino === st.ino ? fd : undefined;
      }
      if (!(await lstat(p)).isSymbolicLink()) return undefined;
      p = resolve(dirname(p), await readlink(p));
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/**
 * The file (after following symbolic links) that writing `path` changes, and how it is written; `fd`: a
 * socket of this process (/dev/stdout of a process Node started) is written through this descriptor.
 */
export async function outputTarget(path: string): Promise<{ path: string; mode: OutputMode; fd?: number }> {
  checkNonEmptyPath(path, 'output');
  let link;
  try {
    link = await lstat(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      if (/[\\/]$/.test(path)) throw new InvalidArgumentError(`${path} names a directory (it ends in /); give a file name`);
      await checkParentDir(path);
      return { path, mode: 'atomic' };
    }
    throw e;
  }
  let target = path;
  let st = link;
  if (link.isSymbolicLink()) {
    try {
      target = await realpath(path);
      st = await stat(target);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      // /dev/stdout, /dev/fd/N, /proc/self/fd/N of a pipe or socket end in "pipe:[ino]" or "socket:[ino]",
      // which realpath cannot follow, but stat (and, for a pipe, open) of the link itself reaches the stream.
      const behind = await stat(path).catch(() => null);
      if (!behind || !(behind.isFIFO() || behind.isSocket())) {
        throw new InvalidArgumentError(`${path} is a symbolic link to a missing file; memfit will not replace the link (write to the file it should point to instead)`);
      }
      target = path;
      st = behind;
    }
  }
  if (st.isFile()) {
    await checkParentDir(target);
    return { path: target, mode: 'atomic' };
  }
  if (st.isCharacterDevice() || st.isFIFO()) return { path: target, mode: 'direct' };
  if (st.isSocket()) {
    const fd = await ownFdBehind(path, st);
    if (fd !== undefined) return { path, mode: 'direct', fd };
  }
  const kind = st.isDirectory() ? 'a directory' : st.isBlockDevice() ? 'a block device' : st.isSocket() ? 'a socket' : 'not a regular file';
  throw new InvalidArgumentError(`${path} is ${kind}; memfit writes only regular files (replaced atomically), character devices, FIFOs and pipes, and its own stdout/stderr (written in place)`);
}

/**
 * Writes to a descriptor this process already holds (a socket: it cannot be opened again by path), in order
 * (no positions). A socket Node set non-blocking answers EAGAIN while the reader is behind: wait and retry.
 */
function fdHandle(fd: number, path: string): OutputHandle {
  return {
    async write(buffer, offset, length, position) {
      if (position !== null) throw new InvalidArgumentError(`${path}: a socket is written in order; cannot write at byte ${position}`);
      for (let wait = 1; ; wait = Math.min(2 * wait, 50)) {
        try {
          const bytesWritten = await new Promise<number>((res, rej) => write(fd, buffer, offset, length, null, (e, n) => (e ? rej(e) : res(n))));
          return { bytesWritten };
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
          await new Promise((r) => setTimeout(r, wait));
        }
      }
    },
  };
}

/** Gives the temporary file `handle` the permission bits (and, when allowed, the owner) of the file it will replace. */
async function keepModeOf(target: string, handle: FileHandle): Promise<void> {
  let st;
  try {
    st = await stat(target);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return; // a new file: the umask decides
    throw e;
  }
  await handle.chmod(st.mode & 0o7777);
  if (st.uid !== process.getuid?.() || st.gid !== process.getgid?.()) await handle.chown(st.uid, st.gid).catch(() => {});
}

/**
 * Checks before any work that `path` can receive an output (openOutput's rules: not empty, not a
 * directory, a dangling link or a socket, in an existing directory); `what` names it in the error.
 */
export async function checkOutputPath(path: string, what: string): Promise<void> {
  checkNonEmptyPath(path, what);
  try {
    await outputTarget(path);
  } catch (e) {
    if (e instanceof InvalidArgumentError) throw new InvalidArgumentError(`${what} ${e.message}`);
    throw e;
  }
}

/**
 * Opens an input file for reading after checking, without opening it, that it is a regular file: a
 * FIFO or a device (/dev/zero) would block in open or never end. `what` names it in errors
 * (e.g. '--text'); `makeError` builds the error class the caller uses.
 */
export async function openRegularInput(path: string, what: string, makeError: (message: string, cause?: unknown) => Error = (m) => new InvalidArgumentError(m)): Promise<FileHandle> {
  if (typeof path !== 'string' || path === '') throw makeError(`${what}: empty path (give a file name)`);
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    throw makeError(`${path}: cannot open: ${(e as Error).message}`, e);
  }
  if (!st.isFile()) throw makeError(`${path}: not a regular file (${st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : st.isCharacterDevice() ? 'a character device' : 'not a plain file'}); memfit reads only regular files`);
  let h: FileHandle;
  try {
    // Non-blocking: should the path have become a FIFO since the stat, open still returns at once.
    h = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw makeError(`${path}: cannot open: ${(e as Error).message}`, e);
  }
  if (!(await h.stat()).isFile()) {
    await h.close().catch(() => {});
    throw makeError(`${path}: not a regular file; memfit reads only regular files`);
  }
  return h;
}

/** An output file being written: write through `handle`, then commit() or abort(). */
export interface OutputFile {
  /** The file written (symbolic links followed). */
  readonly path: string;
  readonly mode: OutputMode;
  /** Write sequentially (position null): a FIFO cannot seek. */
  readonly handle: OutputHandle;
  /** Atomic: fsync, rename over the target, fsync the directory. Direct: close. */
  commit(): Promise<void>;
  /** Closes and removes the temporary file (atomic); the target is untouched. Safe to call after commit. */
  abort(): Promise<void>;
  /** abort() for signal handlers, synchronous (the handle is left to the exiting process). */
  abortSync(): void;
}

/**
 * Opens `path` for writing as described at the top of this file. A FIFO's open waits for a reader,
 * as any writer of a pipe does.
 */
export async function openOutput(path: string): Promise<OutputFile> {
  const target = await outputTarget(path);
  if (target.fd !== undefined) {
    // Not ours to close: the process's stdout or stderr (or another descriptor it was given).
    return { path: target.path, mode: 'direct', handle: fdHandle(target.fd, target.path), async commit() {}, async abort() {}, abortSync() {} };
  }
  if (target.mode === 'direct') {
    const handle = await open(target.path, 'w');
    let open_ = true;
    return {
      ...target, handle,
      async commit() { open_ = false; await handle.close(); },
      async abort() { if (open_) { open_ = false; await handle.close().catch(() => {}); } },
      abortSync() {},
    };
  }
  await removeStaleTemps(target.path);
  const dir = dirname(target.path);
  const tmp = join(dir, `${tempPrefix(basename(target.path))}${process.pid}-${randomBytes(4).toString('hex')}`);
  const handle = await open(tmp, 'wx');
  try {
    await keepModeOf(target.path, handle);
  } catch (e) {
    await handle.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
  let state: 'open' | 'closed' | 'done' = 'open';
  const out: OutputFile = {
    ...target, handle,
    async commit() {
      await handle.sync();
      await handle.close();
      state = 'closed';
      await rename(tmp, target.path);
      state = 'done';
      await syncDir(dir);
    },
    async abort() {
      if (state === 'open') await handle.close().catch(() => {});
      if (state !== 'done') await unlink(tmp).catch(() => {});
      state = 'done';
    },
    abortSync() {
      if (state === 'done') return;
      try { unlinkSync(tmp); } catch { /* already gone */ }
      state = 'done';
    },
  };
  return out;
}

/** True when `a` and `b` name the same existing file (same device and inode, links followed). */
export async function sameFile(a: string, b: string): Promise<boolean> {
  try {
    const [sa, sb] = await Promise.all([stat(a), stat(b)]);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false;
  }
}

/**
 * Writes `data` to `path` the one way memfit writes outputs (openOutput: a regular file replaced
 * atomically, a device or FIFO written in place, anything else refused).
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  const out = await openOutput(path);
  try {
    await writeFully(out.handle, bytes);
    await out.commit();
  } finally {
    await out.abort();
  }
}
