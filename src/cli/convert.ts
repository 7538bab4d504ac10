// `memfit convert`: streams a raw little-endian file of codes of one dtype into codes of another.
import { stat } from 'node:fs/promises';
import { endianness } from 'node:os';
import cliProgress from 'cli-progress';
import { decode, encode, formatOf, pack, packedByteLength, unpack, type FormatTraits, type Rounding } from '../index.js';
import { CliError } from './format.js';
import { openOutput, openRegularInput, readFully, sameFile, writeFully, type OutputFile } from '../io/fs_sync.js';

/** Elements per chunk: 1 Mi (4 MiB of float32). A multiple of 4, so packed fp6 groups never straddle chunks. */
export const DEFAULT_CHUNK = 1 << 20;

/** The progress bar is shown (stderr a TTY, not --quiet) only for inputs larger than this. */
const PROGRESS_MIN_BYTES = 4 << 20;

export interface ConvertOptions {
  from: string;
  to: string;
  input: string;
  output: string;
  saturate?: boolean;
  rounding?: Rounding;
  /** Stochastic-rounding seed (an unsigned 64-bit integer; reduced mod 2^64). */
  seed?: bigint;
  /** One code a byte for fp4/fp6 on both sides, instead of packed. */
  unpacked?: boolean;
  /** Elements per chunk (a positive multiple of 4). */
  chunk?: number;
  /** Show a progress bar on stderr when it is a TTY and the input is large. */
  progress?: boolean;
  /** Allow the output to be the input file itself (it is then replaced by its conversion). */
  force?: boolean;
}

/** How a dtype is laid out in the file. */
interface Layout {
  readonly f: FormatTraits;
  /** fp4/fp6 stored densely (pack/unpack). */
  readonly packed: boolean;
}

function layoutOf(dtype: string, unpacked: boolean): Layout {
  const f = formatOf(dtype);
  return { f, packed: !unpacked && f.bits < 8 };
}

/** Bytes that `n` elements take in the file (n a multiple of 4, or the file's last chunk). */
function bytesFor(l: Layout, n: number): number {
  return l.packed ? packedByteLength(l.f.name, n) : n * l.f.codeBytes;
}

/**
 * Number of elements in an input file of `size` bytes, or a CliError naming the file, its size and the element size.
 *
 * Decisions for the packed sub-byte formats, where no size is invalid:
 * - fp4: two codes a byte, so a file of s bytes holds 2s codes. An odd element count cannot be told
 *   apart from an even one whose last (high) nibble is padding; that nibble is converted as a code.
 * - fp6: four codes in three bytes. Every size s is ceil(6n/8) for some n (the sequence 0, 1, 2, 3, 3, 4,
 *   5, 6, 6, ... hits every integer), and for s = 3k it is so for two counts (4k - 1 and 4k): we take the
 *   largest, n = floor(8s / 6), so the leftover 0, 2 or 4 bits at the end are padding and ignored.
 */
export function elementCount(l: Layout, size: number, file: string): number {
  if (l.packed) return l.f.bits === 4 ? size * 2 : Math.floor((size * 8) / 6);
  const b = l.f.codeBytes;
  if (size % b !== 0) {
    throw new CliError(`${file}: size ${size} bytes is not a whole number of ${l.f.name} elements (${b} bytes each)`);
  }
  return size / b;
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/**
 * Converts `input` (codes of `from`) to `output` (codes of `to`), chunk by chunk, so memory stays
 * bounded whatever the file size. float32 input is read as values; other inputs are decoded to
 * float32 (exact), then encoded. A regular output is written to a temporary file in the same
 * directory, fsynced and renamed over `output`; on failure the temporary file is removed and an
 * existing `output` is left untouched. A character device or FIFO output is written in place, never
 * replaced (io/fs_sync.ts, openOutput). An existing regular output, the input file itself among
 * them (same device and inode), is refused unless `force`.
 *
 * Stochastic rounding: one seed for the whole file (random when not given) and each chunk's element
 * offset, so the output equals a single encode() of the whole file, whatever the chunk size.
 */
export async function convertFile(opts: ConvertOptions): Promise<void> {
  if (endianness() !== 'LE') throw new CliError('convert needs a little-endian machine');
  const src = layoutOf(opts.from, !!opts.unpacked);
  const dst = layoutOf(opts.to, !!opts.unpacked);
  if (opts.unpacked && src.f.bits >= 8 && dst.f.bits >= 8) throw new CliError(`--unpacked applies to the sub-byte formats (fp4, fp6: one code a byte instead of packed); ${opts.from} and ${opts.to} have whole-byte codes`);
  const chunk = opts.chunk ?? DEFAULT_CHUNK;
  if (!Number.isSafeInteger(chunk) || chunk < 4 || chunk % 4 !== 0) throw new CliError(`chunk size must be a positive multiple of 4, got ${chunk}`);
  if (opts.seed !== undefined && opts.rounding !== 'stochastic') throw new CliError('--seed only applies to --rounding stochastic');

  if (opts.output === '') throw new CliError('output: empty path (give a file name)');
  const inH = await openRegularInput(opts.input, 'input', (m) => new CliError(m));
  let out: OutputFile | undefined;
  let bar: cliProgress.SingleBar | undefined;
  // Interrupted (Ctrl-C): remove the temporary file synchronously, we are about to exit; output stays untouched.
  const onSignal = (sig: NodeJS.Signals) => {
    bar?.stop();
    out?.abortSync();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  try {
    const st = await inH.stat();
    if (!opts.force && await sameFile(opts.input, opts.output)) {
      throw new CliError(`${opts.output} is the input file itself; converting it in place would replace ${opts.input} (choose another output, or add --force to replace it)`);
    }
    const size = st.size;
    const n = elementCount(src, size, opts.input);
    // Raw codes carry no header, so no existing file can be told to be an earlier conversion: a
    // regular file is replaced only with --force (a device or FIFO is written in place, as always).
    if (!opts.force && (await stat(opts.output).catch(() => null))?.isFile()) {
      throw new CliError(`${opts.output} exists; not replacing it (choose another output, or add --force to replace it)`);
    }

    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    out = await openOutput(opts.output).catch((e: Error) => {
      throw new CliError(`cannot write ${opts.output}: ${e.message}`);
    });

    if (opts.progress && process.stderr.isTTY && size > PROGRESS_MIN_BYTES) {
      bar = new cliProgress.SingleBar({
        format: `memfit convert |{bar}| {percentage}% | {done} / {size} | ETA {eta_formatted}`,
        stream: process.stderr,
        hideCursor: true,
        clearOnComplete: true,
      }, cliProgress.Presets.shades_classic);
      bar.start(size, 0, { done: mib(0), size: mib(size) });
    }

    // Buffers reused for every chunk (the last chunk uses a prefix of them).
    const inBuf = new ArrayBuffer(bytesFor(src, chunk));
    const values = new Float32Array(chunk);
    let inPos = 0;
    const seed = opts.rounding === 'stochastic'
      ? opts.seed ?? BigInt.asUintN(64, BigInt(Math.floor(Math.random() * 2 ** 53)) * 2654435761n)
      : undefined;
    for (let i = 0; i < n; i += chunk) {
      const c = Math.min(chunk, n - i);
      // Chunks start on whole groups; by elementCount the last one ends exactly at the end of the file.
      const inBytes = bytesFor(src, c);
      const raw = new Uint8Array(inBuf, 0, inBytes);
      await readFully(inH, raw, inPos, (at) => new CliError(`${opts.input}: file ended early at byte ${at} (was it changed while converting?)`));
      const vals = readValues(src, raw, c, values.subarray(0, c), opts.input, i);
      const codes = encode(vals, dst.f.name, { saturate: opts.saturate, rounding: opts.rounding, ...(opts.rounding === 'stochastic' ? { seed, offset: i } : {}) });
      const outBytes = dst.packed ? pack(codes as Uint8Array, dst.f.name) : bytesOf(codes);
      await writeFully(out.handle, outBytes);
      inPos += inBytes;
      bar?.update(inPos, { done: mib(inPos) });
    }
    await out.commit();
    bar?.stop();
    bar = undefined;
  } finally {
    bar?.stop();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await inH.close().catch(() => {});
    await out?.abort();
  }
}

/** Values of one chunk as float32: the raw floats for float32 input, else the exactly decoded codes. */
function readValues(l: Layout, raw: Uint8Array, c: number, out: Float32Array, file: string, first: number): Float32Array {
  const f = l.f;
  if (f.name === 'float32') return new Float32Array(raw.buffer, raw.byteOffset, c);
  let codes: Uint8Array | Uint16Array;
  if (f.codeBytes === 2) codes = new Uint16Array(raw.buffer, raw.byteOffset, c);
  else if (l.packed) codes = unpack(raw, f.name, c);
  else {
    codes = raw;
    if (f.bits < 8) {
      // Unpacked fp4/fp6: report a code that does not fit with its position in the file.
      const limit = 2 ** f.bits - 1;
      for (let j = 0; j < c; j++) {
        if (raw[j] > limit) {
          throw new CliError(`${file}: byte ${first + j} holds 0x${raw[j].toString(16).padStart(2, '0')}, not a ${f.name} code (0x00..0x${limit.toString(16)}, one a byte with --unpacked)`);
        }
      }
    }
  }
  return decode(codes, f.name, { out });
}

