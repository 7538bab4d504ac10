// `inspectSafetensors` and `convertSafetensors` (memfit/node): the model-file tools of convert_model.ts
// on files. Reads go tensor by tensor and chunk by chunk through the header's offsets, so neither the
// input nor the output has to fit in memory; the output is written to a temporary file in its
// directory, fsynced and renamed over the target only when complete.
import { randomBytes } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { MemfitError } from '../errors.js';
import { readFully, syncDir, writeFully } from './fs_sync.js';
import { SafetensorsError } from './safetensors.js';
import { withPath } from './safetensors_file.js';
import {
  ConvertError, inspectSource, planConversion,
  type ByteSource, type ConvertModelOptions, type ConvertReport, type InspectOptions, type InspectReport,
} from './convert_model.js';

/** The package version (recorded in converted files). */
export function memfitVersion(): string {
  try {
    // src/io/ and dist/node/ both sit two levels below the package root.
    return (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

async function openInput(path: string): Promise<{ h: FileHandle; source: ByteSource }> {
  let h: FileHandle;
  try {
    h = await open(path, 'r');
  } catch (e) {
    throw withPath(path, e, 'cannot open');
  }
  try {
    const st = await h.stat();
    if (!st.isFile()) throw new SafetensorsError(`${path}: not a regular file`);
    const source: ByteSource = {
      size: st.size,
      read: async (offset, length) => {
        const buf = new Uint8Array(length);
        await readFully(h, buf, offset, (at) => new SafetensorsError(`file ended at byte ${at}, before the ${offset + length} its header promises (was it changed while reading?)`));
        return buf;
      },
    };
    return { h, source };
  } catch (e) {
    await h.close().catch(() => {});
    throw e;
  }
}

function inputError(path: string, e: unknown): unknown {
  if (e instanceof SafetensorsError && !e.message.startsWith(`${path}: `)) return withPath(path, e, 'cannot read');
  if (e instanceof MemfitError) return e;
  return withPath(path, e, 'cannot read');
}

/** Lists the tensors of a safetensors file (with `stats`, their value statistics), reading one chunk at a time. */
export async function inspectSafetensors(path: string, options: InspectOptions = {}): Promise<InspectReport> {
  const { h, source } = await openInput(path);
  try {
    return await inspectSource(source, options);
  } catch (e) {
    throw inputError(path, e);
  } finally {
    await h.close().catch(() => {});
  }
}

export interface ConvertFileOptions extends ConvertModelOptions {
  /** Remove the temporary file and exit on SIGINT/SIGTERM (the CLI sets this). */
  handleSignals?: boolean;
}

/** Same file? (the same inode, or the same resolved path) */
async function sameFile(a: string, b: string): Promise<boolean> {
  if (resolve(a) === resolve(b)) return true;
  try {
    const [x, y] = await Promise.all([stat(a), stat(b)]);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

/**
 * Converts the safetensors file `input` into `output` (see ConvertModelOptions; docs/convert-model.md),
 * streaming tensor by tensor. `output` is replaced atomically; on any error it is left as it was and the
 * temporary file is removed. Refuses to write over `input`.
 */
export async function convertSafetensors(input: string, output: string, options: ConvertFileOptions): Promise<ConvertReport> {
  if (typeof input !== 'string' || typeof output !== 'string') throw new ConvertError('input and output must be paths');
  if (await sameFile(input, output)) throw new ConvertError(`${output}: is the input file; write the converted model to another path (the input is never overwritten)`);
  const { h, source } = await openInput(input);
  let tmp: string | undefined;
  let out: FileHandle | undefined;
  let written = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (tmp) {
      try { unlinkSync(tmp); } catch { /* already gone */ }
    }
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  try {
    let plan;
    try {
      plan = await planConversion(source, { memfitVersion: memfitVersion(), ...options });
    } catch (e) {
      throw inputError(input, e);
    }
    const name = join(dirname(output), `.${basename(output)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      out = await open(name, 'wx');
    } catch (e) {
      throw new ConvertError(`cannot write ${output}: ${(e as Error).message}`, { cause: e });
    }
    tmp = name;
    if (options.handleSignals) {
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
    }
    const fh = out;
    let report: ConvertReport;
    try {
      report = await plan.run({
        write: async (offset, bytes) => {
          await writeFully(fh, bytes, offset);
          written += bytes.length;
        },
      });
      await fh.sync();
    } catch (e) {
      const code = (e as { code?: unknown })?.code;
      if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG') {
        throw new ConvertError(`cannot write ${output}: ${code === 'EFBIG' ? 'file too large' : 'no space left on device'} (${code}) after ${written} of ${plan.outputBytes} bytes; the partial file was removed and ${output} is unchanged`, { cause: e });
      }
      if (e instanceof MemfitError && !(e instanceof SafetensorsError)) throw e;
      if (e instanceof SafetensorsError) throw inputError(input, e);
      throw new ConvertError(`cannot write ${output}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
    }
    await out.close();
    out = undefined;
    await rename(tmp, output);
    tmp = undefined;
    await syncDir(dirname(output));
    return report;
  } finally {
    if (options.handleSignals) {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
    }
    await h.close().catch(() => {});
    if (out) await out.close().catch(() => {});
    if (tmp) await unlink(tmp).catch(() => {});
  }
}
