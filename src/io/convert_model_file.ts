// `inspectSafetensors` and `convertSafetensors` (memfit/node): the model-file tools of convert_model.ts
// on files. Reads go tensor by tensor and chunk by chunk through the header's offsets, so neither the
// input nor the output has to fit in memory; the output goes through openOutput (io/fs_sync.ts): a
// regular file is written to a temporary file in its directory, fsynced and renamed over the target
// only when complete; a device or FIFO is written in place.
import { existsSync } from 'node:fs';
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { checkOptions, MemfitError } from '../errors.js';
import { openOutput, openRegularInput, outputTarget, readFully, sameFile, writeFully, type OutputFile } from './fs_sync.js';
import { SafetensorsError } from './safetensors.js';
import { readSafetensorsHeader, withPath } from './safetensors_file.js';
import {
  CONVERSION_KEY, CONVERT_OPTION_KEYS, ConvertError, INSPECT_OPTION_KEYS, inspectSource, planConversion,
  type ByteSource, type ConvertModelOptions, type ConvertReport, type InspectOptions, type InspectReport,
} from './convert_model.js';

/** Bytes a device or FIFO output is copied in. */
const COPY_CHUNK = 4 << 20;

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
  const h = await openRegularInput(path, 'input', (m, cause) => new SafetensorsError(m, { cause }));
  try {
    const st = await h.stat();
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
export async function inspectSafetensors(path: string, options?: InspectOptions): Promise<InspectReport> {
  options = checkOptions(options, INSPECT_OPTION_KEYS, 'inspectSafetensors');
  const { h, source } = await openInput(path);
  try {
    return await inspectSource(source, options, 'inspectSafetensors');
  } catch (e) {
    throw inputError(path, e);
  } finally {
    await h.close().catch(() => {});
  }
}

export interface ConvertFileOptions extends ConvertModelOptions {
  /** Remove the temporary file and exit on SIGINT/SIGTERM (the CLI sets this). */
  handleSignals?: boolean;
  /**
   * Replace an existing output file that is not a model memfit converted (default false: a
   * ConvertError, the file untouched). The input itself is never replaced.
   */
  overwrite?: boolean;
}

/** Why the existing regular file `path` is not a model memfit converted (which may be replaced), or null. */
async function notConverted(path: string): Promise<string | null> {
  let meta: Record<string, string>;
  try {
    meta = (await readSafetensorsHeader(path)).metadata;
  } catch {
    return 'it is not a safetensors file';
  }
  return meta[CONVERSION_KEY] === undefined ? 'it is a safetensors file memfit did not convert' : null;
}

/**
 * A sink for a device or FIFO output, which cannot seek: the converter writes at offsets (the scales
 * come before the data in the file but are known only with it), so the file is spooled to an unlinked
 * temporary file in the system temporary directory and copied into the output in order at the end.
 */
async function openSpool(): Promise<{ h: FileHandle; dispose: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'memfit-spool-'));
  try {
    const h = await open(join(dir, 'out.safetensors'), 'w+');
    await rm(dir, { recursive: true, force: true }); // the open handle keeps the data alive
    return { h, dispose: () => h.close().catch(() => {}) };
  } catch (e) {
    await rm(dir, { recursive: true, force: true }).catch(() => {});
    throw e;
  }
}

/**
 * Converts the safetensors file `input` into `output` (see ConvertModelOptions; docs/convert-model.md),
 * streaming tensor by tensor. The output follows openOutput's rules (io/fs_sync.ts): a regular file is
 * replaced atomically (on any error it is left as it was and the temporary file is removed), a device or
 * FIFO is written in place, anything else is refused before the conversion starts. An existing file that
 * is not a model memfit converted is replaced only with `overwrite`; the input never is.
 */
export async function convertSafetensors(input: string, output: string, options: ConvertFileOptions): Promise<ConvertReport> {
  if (typeof input !== 'string' || typeof output !== 'string') throw new ConvertError('input and output must be paths');
  if (input === '') throw new ConvertError('input: empty path (give a file name)');
  if (output === '') throw new ConvertError('output: empty path (give a file name)');
  if (options !== null && typeof options === 'object') checkOptions(options, [...CONVERT_OPTION_KEYS, 'handleSignals', 'overwrite'], 'convertSafetensors');
  const { handleSignals: _signals, overwrite: _overwrite, ...convertOptions } = options ?? ({} as ConvertFileOptions);
  if (resolve(input) === resolve(output) || await sameFile(input, output)) throw new ConvertError(`${output}: is the input file; write the converted model to another path (the input is never overwritten)`);
  const cannotWrite = (e: unknown) => new ConvertError(`cannot write ${output}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
  const { h, source } = await openInput(input);
  let out: OutputFile | undefined;
  let spool: { h: FileHandle; dispose: () => Promise<void> } | undefined;
  let written = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    out?.abortSync();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  try {
    let plan;
    try {
      plan = await planConversion(source, { memfitVersion: memfitVersion(), ...convertOptions }, 'convertSafetensors');
    } catch (e) {
      throw inputError(input, e);
    }
    // The output is checked before any conversion work: where it goes, and that it may be replaced.
    let target;
    try {
      target = await outputTarget(output);
    } catch (e) {
      throw cannotWrite(e);
    }
    if (target.mode === 'atomic' && !options.overwrite && existsSync(target.path)) {
      const why = await notConverted(target.path);
      if (why) throw new ConvertError(`${output} exists and is not a model memfit converted (${why}); not replacing it (choose another path, or pass --force / overwrite: true)`);
    }
    if (options.handleSignals) {
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
    }
    try {
      out = await openOutput(output);
      if (out.mode === 'direct') spool = await openSpool();
    } catch (e) {
      throw cannotWrite(e);
    }
    const fh = spool?.h ?? out.handle;
    let report: ConvertReport;
    try {
      report = await plan.run({
        write: async (offset, bytes) => {
          await writeFully(fh, bytes, offset);
          written += bytes.length;
        },
      });
      if (spool) {
        // In file order into the device or FIFO (sequential writes: a FIFO cannot seek).
        const buf = new Uint8Array(Math.min(COPY_CHUNK, Math.max(plan.outputBytes, 1)));
        for (let p = 0; p < plan.outputBytes; p += buf.length) {
          const piece = buf.subarray(0, Math.min(buf.length, plan.outputBytes - p));
          await readFully(spool.h, piece, p, (at) => new ConvertError(`the spooled output ended at byte ${at}`));
          await writeFully(out.handle, piece);
        }
      }
      await out.commit();
    } catch (e) {
      const code = (e as { code?: unknown })?.code;
      if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG') {
        throw new ConvertError(`cannot write ${output}: ${code === 'EFBIG' ? 'file too large' : 'no space left on device'} (${code}) after ${written} of ${plan.outputBytes} bytes; the partial file was removed and ${output} is unchanged`, { cause: e });
      }
      if (e instanceof MemfitError && !(e instanceof SafetensorsError)) throw e;
      if (e instanceof SafetensorsError) throw inputError(input, e);
      throw cannotWrite(e);
    }
    return report;
  } finally {
    if (options.handleSignals) {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
    }
    await h.close().catch(() => {});
    await spool?.dispose();
    await out?.abort();
  }
}
