// Inspecting and converting safetensors model files, tensor by tensor: the core of `memfit inspect` and
// `memfit convert-model`. Browser-safe: it reads through a ByteSource (random-access reads) and writes
// through a ByteSink (positional writes); src/io/convert_model_file.ts binds them to files, and the
// *Bytes functions below to Uint8Arrays. The header is parsed and validated by safetensors.ts; this
// module never parses a header itself.
//
// Conventions (docs/convert-model.md has the details):
// - A converted tensor keeps its name; a scale goes next to it as `<name>_scale` (`x.weight` ->
//   `x.weight_scale`), the compressed-tensors / vLLM fp8 convention: fp8 codes, float32 scale of shape
//   [1] (per tensor) or [...lead, 1] (per row = output channel), value = code value * scale.
// - MX: element codes in the tensor itself (fp4/fp6 packed, stored as U8 + memfit.dtypes), E8M0 block
//   scales in `<name>_scale`, shape [...lead, ceil(K / blockSize)], blocks along the last dimension.
// - `__metadata__["memfit.conversion"]` (CONVERSION_KEY) records every converted tensor (source dtype,
//   dtype, scale kind, scale tensor, block size) and every run (target, rounding, saturate, seed).
import { checkOptions, InvalidArgumentError, MemfitError } from '../errors.js';
import { decode, encode, type Rounding } from '../dtype/encode.js';
import { finfo } from '../dtype/finfo.js';
import { codeValue, formatOf, maxFiniteCode, type DType, type DTypeName } from '../dtype/formats.js';
import { MX_ELEMENT_DTYPES, mxDequantize, mxQuantize } from '../dtype/mx.js';
import { MAX_KERNEL_INT } from '../dtype/wasm.js';
import { pack, packedByteLength, unpack } from '../dtype/pack.js';
import type { TensorDType } from '../backend/backend.js';
import {
  SafetensorsError, parseSafetensorsHeader, planSafetensors, safetensorsHeaderSize,
  type FileTensorSpec, type RawTensorSpec, type SafetensorsHeader, type SafetensorsTensorInfo,
} from './safetensors.js';

/** `__metadata__` key under which memfit records conversions (a JSON object string, see ConversionMetadata). */
export const CONVERSION_KEY = 'memfit.conversion';

/** Suffix of a scale tensor: `<name>_scale`, so `proj.weight` gets `proj.weight_scale`. */
export const SCALE_SUFFIX = '_scale';

/** Elements per chunk (4 MiB of float32): what bounds the memory a conversion needs. */
export const CHUNK_ELEMENTS = 1 << 20;

/** Bytes per piece when a tensor is copied through unchanged. */
const COPY_BYTES = 16 << 20;

/** A problem with a conversion request (target, options, tensor selection) or with writing its output. */
export class ConvertError extends MemfitError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('CONVERT', message);
    if ('cause' in options) this.cause = options.cause;
  }
}

// ---- I/O interfaces ---------------------------------------------------------------------------------

/** Random-access input. `read` returns exactly `length` bytes (a view the caller must not write to). */
export interface ByteSource {
  readonly size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** Positional output. */
export interface ByteSink {
  write(offset: number, bytes: Uint8Array): Promise<void>;
}

/** A ByteSource over bytes in memory (reads are views, no copies). */
export function bytesSource(bytes: Uint8Array): ByteSource {
  if (!(bytes instanceof Uint8Array)) throw new InvalidArgumentError(`expected the file as a Uint8Array, got ${bytes === null ? 'null' : typeof bytes}`);
  return {
    size: bytes.length,
    read: async (offset, length) => {
      if (offset < 0 || offset + length > bytes.length) throw new SafetensorsError(`read of bytes ${offset}..${offset + length} past the end of the ${bytes.length}-byte file`);
      return bytes.subarray(offset, offset + length);
    },
  };
}

/** Reads and validates the header of the file behind `source`. */
export async function readHeaderFrom(source: ByteSource): Promise<SafetensorsHeader> {
  const first = await source.read(0, Math.min(8, source.size));
  const headerSize = safetensorsHeaderSize(first, source.size);
  return parseSafetensorsHeader(await source.read(0, headerSize), source.size);
}

// ---- conversion metadata ----------------------------------------------------------------------------

/** How a tensor's values are scaled: one scale, one per row (output channel), OCP MX blocks, or none. */
export type ScaleKind = 'tensor' | 'row' | 'mx' | 'none';

/** One converted tensor, as recorded in CONVERSION_KEY. */
export interface ConvertedTensorEntry {
  /** dtype of the values the conversion read (after dequantising them, if they were scaled). */
  readonly source: string;
  /** memfit dtype of the stored codes. */
  readonly dtype: DType;
  readonly scale: ScaleKind;
  /** Name of the scale tensor (absent for scale 'none'). */
  readonly scaleTensor?: string;
  /** Elements per block (scale 'mx' only). */
  readonly blockSize?: number;
}

/** One run of convert-model, as recorded in CONVERSION_KEY. */
export interface ConversionRun {
  readonly memfit: string;
  readonly target: string;
  readonly scale: ScaleKind;
  readonly blockSize?: number;
  readonly rounding: Rounding;
  readonly saturate: boolean;
  /** Stochastic rounding seed (decimal string). */
  readonly seed?: string;
  readonly converted: number;
}

/** The value of CONVERSION_KEY (a JSON string in the file). */
export interface ConversionMetadata {
  readonly version: 1;
  readonly tensors: Record<string, ConvertedTensorEntry>;
  readonly runs: ConversionRun[];
}

const SCALE_KINDS: readonly ScaleKind[] = ['tensor', 'row', 'mx', 'none'];
const FLOAT_DTYPES = new Set<TensorDType>(['float32', 'float16', 'bfloat16', 'float8_e4m3fn', 'float8_e5m2', 'float6_e3m2fn', 'float6_e2m3fn', 'float4_e2m1fn']);
const SCALE_DTYPES = new Set<TensorDType>(['float32', 'float16', 'bfloat16']);

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function parseConversion(text: string): ConversionMetadata {
  const bad = (msg: string) => new SafetensorsError(`__metadata__ "${CONVERSION_KEY}": ${msg}`);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(`__metadata__ "${CONVERSION_KEY}" is not valid JSON`, { cause: e });
  }
  if (!isObject(v) || v.version !== 1 || !isObject(v.tensors) || !Array.isArray(v.runs)) throw bad('must be an object {"version": 1, "tensors": {...}, "runs": [...]}');
  const tensors = Object.create(null) as Record<string, ConvertedTensorEntry>;
  for (const [name, e] of Object.entries(v.tensors)) {
    const t = (msg: string) => new SafetensorsError(`tensor '${name}': __metadata__ "${CONVERSION_KEY}": ${msg}`, { tensor: name });
    if (!isObject(e)) throw t('entry must be an object');
    if (typeof e.source !== 'string') throw t('"source" must be a string');
    let dtype: DType;
    try {
      dtype = formatOf(String(e.dtype)).name;
    } catch {
      throw t(`unknown dtype ${JSON.stringify(e.dtype)}`);
    }
    if (!SCALE_KINDS.includes(e.scale as ScaleKind)) throw t(`"scale" must be one of ${SCALE_KINDS.join(', ')}, got ${JSON.stringify(e.scale)}`);
    const scale = e.scale as ScaleKind;
    if (scale !== 'none' && typeof e.scaleTensor !== 'string') throw t('"scaleTensor" must name the scale tensor');
    if (scale === 'mx' && !(Number.isSafeInteger(e.blockSize) && (e.blockSize as number) >= 1 && (e.blockSize as number) <= MAX_KERNEL_INT)) {
      throw t(`"blockSize" must be an integer from 1 to 2^31 - 1, got ${JSON.stringify(e.blockSize)}`);
    }
    tensors[name] = {
      source: e.source, dtype, scale,
      ...(scale !== 'none' ? { scaleTensor: e.scaleTensor as string } : {}),
      ...(scale === 'mx' ? { blockSize: e.blockSize as number } : {}),
    };
  }
  return { version: 1, tensors, runs: v.runs as ConversionRun[] };
}

// ---- what each tensor of a file holds ---------------------------------------------------------------

/** How the values of a tensor are read. */
type Role =
  /** Plain values: a memfit float dtype, or F64. */
  | { readonly kind: 'values'; readonly dtype: TensorDType | 'float64' }
  /** Codes with a scale tensor (converted by memfit, or a compressed-tensors fp8 weight). */
  | { readonly kind: 'scaled'; readonly dtype: DType; readonly scale: Exclude<ScaleKind, 'none'>; readonly scaleTensor: string; readonly blockSize: number; readonly recorded: boolean }
  /** The scale tensor of `owner`. */
  | { readonly kind: 'scale'; readonly owner: string }
  /** Anything else (integers, dtypes memfit does not hold): copied through. */
  | { readonly kind: 'other' };

interface Analysis {
  readonly header: SafetensorsHeader;
  readonly roles: ReadonlyMap<string, Role>;
  readonly conversion: ConversionMetadata | null;
}

const numelOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
const shapeOf = (t: SafetensorsTensorInfo): readonly number[] => t.memfit?.shape ?? t.shape;
const lastDim = (shape: readonly number[]): number => (shape.length ? shape[shape.length - 1] : 1);
const fmtShape = (s: readonly number[]): string => `[${s.join(', ')}]`;

function scaleShape(shape: readonly number[], scale: Exclude<ScaleKind, 'none'>, blockSize: number): number[] {
  if (scale === 'tensor') return [1];
  const lead = shape.slice(0, -1);
  return scale === 'row' ? [...lead, 1] : [...lead, Math.ceil(lastDim(shape) / blockSize)];
}

function analyse(header: SafetensorsHeader): Analysis {
  const text = header.metadata[CONVERSION_KEY];
  const conversion = text === undefined ? null : parseConversion(text);
  const roles = new Map<string, Role>();
  const err = (name: string, msg: string) => new SafetensorsError(`tensor '${name}': ${msg}`, { tensor: name });
  const claim = (owner: string, scaleName: string) => {
    const prev = roles.get(scaleName);
    if (prev?.kind === 'scale') throw err(scaleName, `is the scale of both '${prev.owner}' and '${owner}'`);
    if (prev?.kind === 'scaled') throw err(scaleName, `is both a scaled tensor and the scale of '${owner}'`);
    roles.set(scaleName, { kind: 'scale', owner });
  };
  // Recorded conversions first: they say exactly what each scale is.
  for (const [name, e] of Object.entries(conversion?.tensors ?? {})) {
    const info = header.tensors.get(name);
    if (!info) throw err(name, `"${CONVERSION_KEY}" names it, but the file does not hold it`);
    if (info.memfit?.dtype !== e.dtype) throw err(name, `"${CONVERSION_KEY}" says ${e.dtype}, the file holds ${info.memfit?.dtype ?? info.dtype}`);
    if (e.scale === 'none') continue;
    const s = header.tensors.get(e.scaleTensor!);
    if (!s) throw err(name, `its scale tensor '${e.scaleTensor}' is missing`);
    const shape = info.memfit.shape;
    const need = scaleShape(shape, e.scale, e.blockSize ?? 1);
    const sshape = shapeOf(s);
    if (e.scale === 'mx') {
      if (s.memfit?.dtype !== 'float8_e8m0fnu') throw err(e.scaleTensor!, `MX scales must be float8_e8m0fnu, got ${s.memfit?.dtype ?? s.dtype}`);
      if (!MX_ELEMENT_DTYPES.includes(e.dtype)) throw err(name, `${e.dtype} is not an MX element dtype`);
    } else {
      if (e.dtype !== 'float8_e4m3fn' && e.dtype !== 'float8_e5m2') throw err(name, `per-${e.scale} scales apply to float8 codes, not ${e.dtype}`);
      if (!s.memfit || !SCALE_DTYPES.has(s.memfit.dtype)) throw err(e.scaleTensor!, `scales must be float32, float16 or bfloat16, got ${s.memfit?.dtype ?? s.dtype}`);
    }
    if (numelOf(sshape) !== numelOf(need) || (e.scale !== 'tensor' && sshape.join() !== need.join())) {
      throw err(e.scaleTensor!, `shape ${fmtShape(sshape)} does not fit ${e.scale} scales of '${name}' ${fmtShape(shape)} (expected ${fmtShape(need)})`);
    }
    roles.set(name, { kind: 'scaled', dtype: e.dtype, scale: e.scale, scaleTensor: e.scaleTensor!, blockSize: e.blockSize ?? 1, recorded: true });
    claim(name, e.scaleTensor!);
  }
  // compressed-tensors / vLLM fp8 checkpoints: an F8 tensor `x` with a float `x_scale` of shape [] or [1] (per
  // tensor) or [...lead, 1] (per output channel). Other scale shapes (groups, blocks) are refused when read.
  for (const [name, info] of header.tensors) {
    if (roles.has(name) || (info.memfit?.dtype !== 'float8_e4m3fn' && info.memfit?.dtype !== 'float8_e5m2')) continue;
    const sname = name + SCALE_SUFFIX;
    const s = header.tensors.get(sname);
    if (!s || roles.has(sname) || !s.memfit || !SCALE_DTYPES.has(s.memfit.dtype)) continue;
    const shape = info.memfit.shape;
    const sshape = s.memfit.shape;
    const scale = numelOf(sshape) === 1 && sshape.length <= 1 ? 'tensor' : sshape.join() === scaleShape(shape, 'row', 1).join() ? 'row' : null;
    if (!scale) {
      throw err(sname, `looks like the fp8 scale of '${name}' ${fmtShape(shape)}, but its shape ${fmtShape(sshape)} is neither per tensor ([] or [1]) nor per row (${fmtShape(scaleShape(shape, 'row', 1))}); memfit reads no other fp8 scale layout`);
    }
    roles.set(name, { kind: 'scaled', dtype: info.memfit.dtype, scale, scaleTensor: sname, blockSize: 1, recorded: false });
    claim(name, sname);
  }
  for (const [name, info] of header.tensors) {
    if (roles.has(name)) continue;
    if (info.dtype === 'F64') roles.set(name, { kind: 'values', dtype: 'float64' });
    // Integers (I32, plain U8 bytes) hold no float values: listed and copied, never read as values.
    else if (info.memfit && info.memfit.dtype !== 'int32' && info.memfit.dtype !== 'uint8') roles.set(name, { kind: 'values', dtype: info.memfit.dtype });
    else roles.set(name, { kind: 'other' });
  }
  return { header, roles, conversion };
}

// ---- reading values ---------------------------------------------------------------------------------

/** The logical values of one tensor, read in chunks. */
interface ValueSource {
  readonly numel: number;
  readonly rowLen: number;
  /** Number of rows (the product of all but the last dimension; 1 for 0-D and 1-D tensors). */
  readonly rows: number;
  /** Reads must start at a multiple of this many elements (packing groups, rows or blocks). */
  readonly align: number;
  /** Bytes of the input (with any scale tensor) per element, for progress. */
  readonly bytesPerElement: number;
  /** Description of the values: 'float32', 'float8_e4m3fn*row', ... */
  readonly describe: string;
  read(start: number, count: number): Promise<Float32Array | Float64Array>;
}

/** 'float32', 'float8_e4m3fn*row', 'float4_e2m1fn*mx32': the dtype of the values, and how they are scaled. */
function describeRole(role: Extract<Role, { kind: 'values' | 'scaled' }>): string {
  if (role.kind === 'values') return role.dtype;
  return `${role.dtype}*${role.scale === 'mx' ? `mx${role.blockSize}` : role.scale}`;
}

function bitsOf(d: TensorDType | 'float64'): number {
  return d === 'float64' ? 64 : d === 'int32' ? 32 : formatOf(d).bits;
}

function packAlign(d: TensorDType | 'float64'): number {
  const b = bitsOf(d);
  return b === 4 ? 2 : b === 6 ? 4 : 1;
}

/** `bytes` as a typed array of `Ctor`, copied only when misaligned. */
function viewAs<T extends Float32Array | Float64Array | Uint16Array>(bytes: Uint8Array, Ctor: { new(b: ArrayBufferLike, o: number, n: number): T; readonly BYTES_PER_ELEMENT: number }): T {
  const k = Ctor.BYTES_PER_ELEMENT;
  const b = bytes.byteOffset % k === 0 ? bytes : bytes.slice();
  return new Ctor(b.buffer, b.byteOffset, b.length / k);
}

/** Reads codes of elements [start, start + count) of a tensor (start a multiple of packAlign). */
class CodeReader {
  constructor(private readonly src: ByteSource, private readonly base: number, readonly dtype: TensorDType | 'float64') {}
  async bytes(start: number, count: number): Promise<Uint8Array> {
    const bits = bitsOf(this.dtype);
    return this.src.read(this.base + (start * bits) / 8, Math.ceil((count * bits) / 8));
  }
  /** Unpacked codes, one a byte (8 bits or fewer). */
  async codes8(start: number, count: number): Promise<Uint8Array> {
    const raw = await this.bytes(start, count);
    return bitsOf(this.dtype) < 8 ? unpack(raw, this.dtype as DTypeName, count) : raw; // only fp4/fp6 have fewer than 8 bits
  }
  async values(start: number, count: number): Promise<Float32Array | Float64Array> {
    const d = this.dtype;
    const raw = await this.bytes(start, count);
    if (d === 'float64') return viewAs(raw, Float64Array);
    if (d === 'float32') return viewAs(raw, Float32Array);
    if (d === 'float16' || d === 'bfloat16') return decode(viewAs(raw, Uint16Array), d);
    if (d === 'int32' || d === 'uint8') throw new InvalidArgumentError(`${d} tensors have no float values`);
    return decode(bitsOf(d) < 8 ? unpack(raw, d, count) : raw, d);
  }
}

/** Reads a whole (small) float tensor as float32 values. */
async function readSmallFloat(src: ByteSource, header: SafetensorsHeader, name: string): Promise<Float32Array> {
  const info = header.tensors.get(name)!;
  const n = numelOf(info.memfit!.shape);
  return Float32Array.from(await new CodeReader(src, header.headerByteLength + info.dataOffsets[0], info.memfit!.dtype).values(0, n));
}

/** Companion suffixes of fp8 scales memfit does not apply (DeepSeek's `_scale_inv`, or a `_scale` it could not pair). */
const UNREAD_SCALE_SUFFIXES = ['_scale_inv', SCALE_SUFFIX] as const;

/**
 * Refuses to read the plain values of an fp8 tensor that has a scale beside it which memfit does not
 * apply (DeepSeek-style `<name>_scale_inv`, or a `<name>_scale` it did not pair as a scale): its codes
 * alone are not its values.
 */
function checkNoUnreadScale(a: Analysis, name: string): void {
  const role = a.roles.get(name);
  if (role?.kind !== 'values' || (role.dtype !== 'float8_e4m3fn' && role.dtype !== 'float8_e5m2')) return;
  for (const suffix of UNREAD_SCALE_SUFFIXES) {
    const sname = name + suffix;
    const s = a.header.tensors.get(sname);
    if (!s || a.roles.get(sname)?.kind === 'scale') continue;
    throw new SafetensorsError(`tensor '${name}': ${role.dtype} codes with a scale tensor '${sname}' ${s.memfit?.dtype ?? s.dtype} ${fmtShape(shapeOf(s))} that memfit does not apply (it reads per-tensor and per-row <name>${SCALE_SUFFIX} multipliers only); its codes alone are not its values, so it is not read (leave it out with --exclude to copy it unchanged)`, { tensor: name });
  }
}

async function valueSource(src: ByteSource, a: Analysis, name: string): Promise<ValueSource> {
  checkNoUnreadScale(a, name);
  const { header } = a;
  const info = header.tensors.get(name)!;
  const role = a.roles.get(name)!;
  const shape = shapeOf(info);
  const numel = numelOf(shape);
  const rowLen = lastDim(shape);
  const rows = numelOf(shape.slice(0, -1));
  const base = header.headerByteLength + info.dataOffsets[0];
  const ownBytes = (info.dataOffsets[1] - info.dataOffsets[0]) / Math.max(numel, 1);
  if (role.kind === 'values') {
    const r = new CodeReader(src, base, role.dtype);
    return { numel, rowLen, rows, align: packAlign(role.dtype), bytesPerElement: ownBytes, describe: describeRole(role), read: (s, c) => r.values(s, c) };
  }
  if (role.kind !== 'scaled') throw new InvalidArgumentError(`tensor '${name}' holds no float values`);
  const r = new CodeReader(src, base, role.dtype);
  const sinfo = header.tensors.get(role.scaleTensor)!;
  const bytesPerElement = ownBytes + (sinfo.dataOffsets[1] - sinfo.dataOffsets[0]) / Math.max(numel, 1);
  const describe = describeRole(role);
  if (role.scale === 'mx') {
    const bs = role.blockSize;
    const perRow = Math.ceil(rowLen / bs);
    const flat = rowLen % bs === 0;
    const sbase = header.headerByteLength + sinfo.dataOffsets[0];
    return {
      numel, rowLen, rows, bytesPerElement, describe,
      align: lcm(flat ? bs : Math.max(rowLen, 1), packAlign(role.dtype)),
      read: async (start, count) => {
        const codes = await r.codes8(start, count);
        if (flat) {
          const scales = (await src.read(sbase + start / bs, Math.ceil(count / bs))).slice();
          return mxDequantize({ elemDtype: role.dtype, blockSize: bs, length: count, scales, codes });
        }
        const r0 = start / rowLen;
        const rows = Math.ceil(count / rowLen);
        const scales = (await src.read(sbase + r0 * perRow, rows * perRow)).slice();
        const out = new Float32Array(count);
        for (let i = 0; i < rows; i++) {
          const len = Math.min(rowLen, count - i * rowLen);
          out.set(mxDequantize({ elemDtype: role.dtype, blockSize: bs, length: len, scales: scales.subarray(i * perRow, (i + 1) * perRow), codes: codes.subarray(i * rowLen, i * rowLen + len) }), i * rowLen);
        }
        return out;
      },
    };
  }
  const scales = await readSmallFloat(src, header, role.scaleTensor);
  return {
    numel, rowLen, rows, bytesPerElement, describe, align: 1,
    read: async (start, count) => {
      const v = (await r.values(start, count)) as Float32Array; // decoded fp8: a new array, ours to scale in place
      // Float32Array stores round the (exact) double product once.
      if (role.scale === 'tensor') {
        const s = scales[0];
        for (let i = 0; i < count; i++) v[i] *= s;
      } else {
        for (let i = 0; i < count; ) {
          const row = Math.floor((start + i) / rowLen);
          const s = scales[row];
          const end = Math.min(count, (row + 1) * rowLen - start);
          for (; i < end; i++) v[i] *= s;
        }
      }
      return v;
    },
  };
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}
function lcm(a: number, b: number): number {
  return (a / gcd(a, b)) * b;
}

/** Chunks [start, count) of n elements, each start a multiple of `unit`, about CHUNK_ELEMENTS long. */
function* chunks(n: number, unit: number, target = CHUNK_ELEMENTS): Generator<[number, number]> {
  const size = Math.max(unit, Math.floor(target / unit) * unit);
  for (let s = 0; s < n; s += size) yield [s, Math.min(size, n - s)];
}

/**
 * The chunks of `vs` with their values, the next chunk's read started before this one is handed out, so that
 * reading overlaps the work on the previous chunk (one chunk of read-ahead).
 */
async function* readAhead(vs: ValueSource, list: ReadonlyArray<readonly [number, number]>): AsyncGenerator<[number, number, Float32Array | Float64Array]> {
  const start = (i: number) => {
    const p = vs.read(list[i][0], list[i][1]);
    p.catch(() => {}); // handled when awaited below; no unhandled rejection while it waits
    return p;
  };
  let next = list.length ? start(0) : null;
  for (let i = 0; i < list.length; i++) {
    const x = await next!;
    next = i + 1 < list.length ? start(i + 1) : null;
    yield [list[i][0], list[i][1], x];
  }
}

/** A sink that lets one write run while the caller computes the next chunk; flush() waits for it. */
class WriteBehind implements ByteSink {
  private pending: Promise<void> = Promise.resolve();
  constructor(private readonly sink: ByteSink) {}
  async write(offset: number, bytes: Uint8Array): Promise<void> {
    await this.pending;
    this.pending = this.sink.write(offset, bytes);
    this.pending.catch(() => {}); // surfaced by the next write or flush
  }
  flush(): Promise<void> {
    return this.pending;
  }
}

// ---- statistics -------------------------------------------------------------------------------------

/** Formats inspect reports overflow and underflow for. */
export const STAT_DTYPES: readonly DType[] = ['float16', 'bfloat16', 'float8_e4m3fn', 'float8_e5m2', 'float6_e3m2fn', 'float6_e2m3fn', 'float4_e2m1fn'];

/** |x| at and beyond which a value leaves a format's range (nearest-even): above `at`, or equal when the tie rounds up. */
interface Range {
  readonly dtype: DType;
  readonly max: number;
  readonly at: number;
  readonly tieUp: boolean;
  /** Nonzero |x| at or below this rounds to zero (half the smallest subnormal; the tie goes to the even 0). */
  readonly zeroBelow: number;
}

const RANGES: ReadonlyMap<DType, Range> = new Map(STAT_DTYPES.map((d) => {
  const f = formatOf(d);
  const top = maxFiniteCode(f);
  const max = codeValue(f, top);
  return [d, { dtype: d, max, at: max + (max - codeValue(f, top - 1)) / 2, tieUp: (top & 1) === 1, zeroBelow: finfo(d).smallestSubnormal / 2 }];
}));

/** Statistics of a tensor's values (over the finite ones; non-finite ones are counted). */
export interface TensorStats {
  readonly count: number;
  readonly min: number;
  readonly max: number;
  readonly absmax: number;
  readonly mean: number;
  readonly std: number;
  readonly nonFinite: number;
  readonly nan: number;
  readonly inf: number;
  readonly zeros: number;
  /** Finite values that round beyond the format's max (to inf/NaN, or clamped when saturating), unscaled, nearest-even. */
  readonly overflow: Readonly<Record<string, number>>;
  /** Nonzero finite values that round to zero, unscaled, nearest-even. */
  readonly underflow: Readonly<Record<string, number>>;
}

/** The power of two 2^k at or just above `a` (> 0), k clamped to [-1022, 1023]: dividing by it is exact, and 1 / it is finite. */
function pow2Above(a: number): number {
  return 2 ** Math.min(1023, Math.max(-1022, Math.ceil(Math.log2(a))));
}

class StatsAccumulator {
  count = 0; min = Infinity; max = -Infinity; absmax = 0; nan = 0; inf = 0; zeros = 0;
  // Mean and M2 (sum of squared deviations) in units of `unit`, a power of two at or above absmax: every scaled
  // value has |v| <= 2, so sums and squares neither overflow nor, for tiny values, underflow (float64 values
  // near 1e308 or 1e-300 give a finite, nonzero std).
  unit = 1; mean = 0; m2 = 0;
  readonly overflow = new Float64Array(STAT_DTYPES.length);
  readonly underflow = new Float64Array(STAT_DTYPES.length);

  add(x: Float32Array | Float64Array): void {
    // Chan et al.'s parallel update: chunk mean and M2, then merge.
    let n = 0, lo = Infinity, hi = -Infinity, nan = 0, inf = 0, zeros = 0;
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      if (v - v !== 0) {
        if (v !== v) nan++;
        else inf++;
        continue;
      }
      n++;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
      if (v === 0) zeros++;
    }
    this.nan += nan; this.inf += inf; this.zeros += zeros;
    if (n === 0) return;
    const amax = Math.max(Math.abs(lo), Math.abs(hi));
    // The first chunk sets the unit (so tiny values do not square to zero either); a larger value later
    // rescales the running mean and M2 to a larger unit (by a power of two: exact but for underflow).
    const unit = this.count === 0 || amax > this.unit ? pow2Above(amax) : this.unit;
    if (unit !== this.unit) {
      const r = this.unit / unit;
      this.mean *= r;
      this.m2 = this.m2 * r * r;
      this.unit = unit;
    }
    const inv = 1 / unit;
    let sum = 0;
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      if (v - v === 0) sum += v * inv;
    }
    const mean = sum / n;
    let m2 = 0;
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      if (v - v === 0) m2 += (v * inv - mean) * (v * inv - mean);
    }
    const total = this.count + n;
    const delta = mean - this.mean;
    this.m2 += m2 + (delta * delta * this.count * n) / total;
    this.mean += (delta * n) / total;
    this.count = total;
    if (lo < this.min) this.min = lo;
    if (hi > this.max) this.max = hi;
    this.absmax = Math.max(this.absmax, amax);
    // Overflow / underflow counts: one pass per format, only when the chunk reaches the threshold.
    STAT_DTYPES.forEach((d, k) => {
      const r = RANGES.get(d)!;
      if (amax >= r.at) {
        let c = 0;
        for (let i = 0; i < x.length; i++) {
          const a = Math.abs(x[i]);
          if (a !== Infinity && (a > r.at || (a === r.at && r.tieUp))) c++;
        }
        this.overflow[k] += c;
      }
    });
    let small = 0;
    const widest = Math.max(...STAT_DTYPES.map((d) => RANGES.get(d)!.zeroBelow));
    for (let i = 0; i < x.length; i++) {
      const a = Math.abs(x[i]);
      if (a !== 0 && a <= widest) small++;
    }
    if (small) {
      STAT_DTYPES.forEach((d, k) => {
        const z = RANGES.get(d)!.zeroBelow;
        let c = 0;
        for (let i = 0; i < x.length; i++) {
          const a = Math.abs(x[i]);
          if (a !== 0 && a <= z) c++;
        }
        this.underflow[k] += c;
      });
    }
  }

  result(): TensorStats {
    const per = (a: Float64Array) => Object.fromEntries(STAT_DTYPES.map((d, k) => [d, a[k]]));
    const empty = this.count === 0;
    return {
      count: this.count, min: empty ? NaN : this.min, max: empty ? NaN : this.max, absmax: empty ? NaN : this.absmax,
      mean: empty ? NaN : this.mean * this.unit, std: empty ? NaN : Math.sqrt(this.m2 / this.count) * this.unit,
      nonFinite: this.nan + this.inf, nan: this.nan, inf: this.inf, zeros: this.zeros,
      overflow: per(this.overflow), underflow: per(this.underflow),
    };
  }
}

// ---- inspect ----------------------------------------------------------------------------------------

/** One tensor of an inspected file. */
export interface InspectedTensor {
  readonly name: string;
  /** The memfit dtype ('float4_e2m1fn' for U8 + memfit.dtypes), else the file's dtype string ('F64', 'I64'). */
  readonly dtype: string;
  /** The dtype string in the header. */
  readonly fileDType: string;
  /** The logical shape (memfit's for U8-stored tensors). */
  readonly shape: readonly number[];
  readonly fileShape: readonly number[];
  readonly bytes: number;
  readonly dataOffsets: readonly [number, number];
  /** For a scaled tensor: its scale; `stats` are of the dequantised values. */
  readonly scale: { readonly kind: Exclude<ScaleKind, 'none'>; readonly tensor: string; readonly blockSize?: number } | null;
  /** For a scale tensor: the tensor it scales. */
  readonly scaleOf: string | null;
  /** With `stats: true`: statistics of the values (null for integer and raw tensors). */
  readonly stats?: TensorStats | null;
}

/** Per-dtype totals of an inspected file. */
export interface DTypeTotal {
  readonly dtype: string;
  readonly tensors: number;
  readonly elements: number;
  readonly bytes: number;
}

export interface InspectReport {
  readonly fileBytes: number;
  readonly headerBytes: number;
  /** `__metadata__` without memfit's own keys. */
  readonly metadata: Readonly<Record<string, string>>;
  /** The parsed CONVERSION_KEY, when the file has one. */
  readonly conversion: ConversionMetadata | null;
  readonly tensors: readonly InspectedTensor[];
  /** By dtype, largest first. */
  readonly totals: readonly DTypeTotal[];
}

export interface InspectOptions {
  /** Compute statistics of every float tensor (reads all the data, one chunk at a time). */
  stats?: boolean;
  /** Called after each chunk with the data bytes read so far and the total. */
  onProgress?: (done: number, total: number) => void;
}

function publicMetadata(m: Record<string, string>): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  for (const [k, v] of Object.entries(m)) if (k !== CONVERSION_KEY) out[k] = v;
  return out;
}

/** Lists the tensors of the file behind `source` (and, with `stats`, their value statistics). */
/** The keys of InspectOptions (any other is refused). */
export const INSPECT_OPTION_KEYS: readonly string[] = ['stats', 'onProgress'];

export async function inspectSource(source: ByteSource, options?: InspectOptions, fn = 'inspectSource'): Promise<InspectReport> {
  options = checkOptions(options, INSPECT_OPTION_KEYS, fn);
  const header = await readHeaderFrom(source);
  const a = analyse(header);
  const tensors: InspectedTensor[] = [];
  const totals = new Map<string, { tensors: number; elements: number; bytes: number }>();
  let done = 0;
  for (const [name, info] of header.tensors) {
    const role = a.roles.get(name)!;
    const shape = shapeOf(info);
    const bytes = info.dataOffsets[1] - info.dataOffsets[0];
    const dtype = info.memfit?.dtype ?? info.dtype;
    let stats: TensorStats | null | undefined;
    if (options.stats) {
      if (role.kind === 'values' || role.kind === 'scaled' || (role.kind === 'scale' && info.memfit)) {
        const vs = role.kind === 'scale'
          ? await valueSource(source, { ...a, roles: new Map([[name, { kind: 'values', dtype: info.memfit!.dtype }]]) }, name)
          : await valueSource(source, a, name);
        const acc = new StatsAccumulator();
        for await (const [s, c, x] of readAhead(vs, [...chunks(vs.numel, vs.align)])) {
          acc.add(x);
          options.onProgress?.(done + Math.min(bytes, Math.round((s + c) * (bytes / Math.max(vs.numel, 1)))), header.dataByteLength);
        }
        stats = acc.result();
      } else stats = null;
    }
    done += bytes;
    options.onProgress?.(done, header.dataByteLength);
    const t = totals.get(dtype) ?? { tensors: 0, elements: 0, bytes: 0 };
    t.tensors++;
    t.elements += numelOf(shape);
    t.bytes += bytes;
    totals.set(dtype, t);
    tensors.push({
      name, dtype, fileDType: info.dtype, shape: [...shape], fileShape: [...info.shape], bytes, dataOffsets: [...info.dataOffsets],
      scale: role.kind === 'scaled' ? { kind: role.scale, tensor: role.scaleTensor, ...(role.scale === 'mx' ? { blockSize: role.blockSize } : {}) } : null,
      scaleOf: role.kind === 'scale' ? role.owner : null,
      ...(options.stats ? { stats } : {}),
    });
  }
  return {
    fileBytes: source.size, headerBytes: header.headerByteLength, metadata: publicMetadata(header.metadata), conversion: a.conversion, tensors,
    totals: [...totals].map(([dtype, t]) => ({ dtype, ...t })).sort((x, y) => y.bytes - x.bytes || (x.dtype < y.dtype ? -1 : 1)),
  };
}

/** inspectSource over a file in memory (browser build). */
export function inspectSafetensorsBytes(bytes: Uint8Array, options?: InspectOptions): Promise<InspectReport> {
  return inspectSource(bytesSource(bytes), options, 'inspectSafetensorsBytes');
}

// ---- targets ----------------------------------------------------------------------------------------

/** Targets convert-model accepts (aliases of these dtypes work too, e.g. bf16, e4m3, fp4). */
export const CONVERT_TARGETS: readonly string[] = ['float32', 'float16', 'bfloat16', 'float8_e4m3fn', 'float8_e5m2', 'mxfp8_e4m3', 'mxfp8_e5m2', 'mxfp6_e3m2', 'mxfp6_e2m3', 'mxfp4'];

/** A resolved conversion target. */
export interface ConvertTarget {
  /** dtype of the stored codes. */
  readonly dtype: DType;
  readonly scale: ScaleKind;
  /** MX block size (scale 'mx'), else 1. */
  readonly blockSize: number;
  /** How it is named in reports: 'float8_e4m3fn (per row)', 'mxfp4 (block 32)'. */
  readonly label: string;
}

const MX_NAMES: Partial<Record<DType, string>> = {
  float8_e4m3fn: 'mxfp8_e4m3', float8_e5m2: 'mxfp8_e5m2', float6_e3m2fn: 'mxfp6_e3m2', float6_e2m3fn: 'mxfp6_e2m3', float4_e2m1fn: 'mxfp4',
};

/**
 * Resolves `to` (and a scale kind, for fp8) to a target. fp8 dtypes take a scale per tensor (default), per
 * row, 'mx' or none; 'mxfp8_e4m3'-style names, fp6 and fp4 are MX (blocks of `blockSize`, default 32);
 * float32, float16 and bfloat16 are plain casts.
 */
export function resolveTarget(to: string, scale?: ScaleKind, blockSizeGiven?: number): ConvertTarget {
  const blockSize = blockSizeGiven ?? 32;
  const unknown = () => new ConvertError(`unknown target ${JSON.stringify(to)}; targets: ${CONVERT_TARGETS.join(', ')} (or their aliases, e.g. bf16, e4m3, fp4)`);
  if (typeof to !== 'string') throw unknown();
  const key = to.trim().toLowerCase();
  if (key === 'nvfp4') throw new ConvertError('nvfp4 (fp4 in 16-element blocks with float8_e4m3fn scales) is not supported; use mxfp4 (32-element blocks, E8M0 scales)');
  let dtype: DType;
  try {
    dtype = formatOf(key).name;
  } catch {
    throw unknown();
  }
  if (dtype === 'float8_e8m0fnu') throw new ConvertError('float8_e8m0fnu is a scale format, not a conversion target');
  if (scale !== undefined && !SCALE_KINDS.includes(scale)) throw new ConvertError(`scale must be one of ${SCALE_KINDS.join(', ')}, got ${JSON.stringify(scale)}`);
  if (!Number.isSafeInteger(blockSize) || blockSize < 1) throw new ConvertError(`block size must be a positive integer, got ${blockSize}`);
  const fp8 = dtype === 'float8_e4m3fn' || dtype === 'float8_e5m2';
  const mxName = key.startsWith('mx') || formatOf(dtype).bits < 8;
  let kind: ScaleKind;
  if (mxName) {
    if (scale !== undefined && scale !== 'mx') throw new ConvertError(`${to} is an MX format (E8M0 block scales); --scale ${scale} does not apply`);
    kind = 'mx';
  } else if (fp8) kind = scale ?? 'tensor';
  else {
    if (scale !== undefined && scale !== 'none') throw new ConvertError(`${dtype} is stored without scales; --scale ${scale} applies to float8 targets only`);
    kind = 'none';
  }
  if (blockSizeGiven !== undefined && kind !== 'mx') throw new ConvertError(`a block size applies to MX targets (E8M0 block scales); ${kind === 'none' ? dtype : `${dtype} per ${kind}`} has none (use --scale mx, or drop --block-size)`);
  const label = kind === 'mx' ? `${MX_NAMES[dtype]} (block ${blockSize})` : kind === 'none' ? dtype : `${dtype} (per ${kind})`;
  return { dtype, scale: kind, blockSize: kind === 'mx' ? blockSize : 1, label };
}

// ---- convert ----------------------------------------------------------------------------------------

export interface ConvertModelOptions {
  /** Target dtype: one of CONVERT_TARGETS (or an alias). */
  to: string;
  /** For float8 targets: 'tensor' (default), 'row' (per output channel), 'mx' or 'none'. */
  scale?: ScaleKind;
  /** MX block size (default 32); refused for targets without blocks. */
  blockSize?: number;
  /** Convert the float tensors whose names match any of these (default: every 2-D float tensor). */
  include?: ReadonlyArray<string | RegExp>;
  /** ...except those whose names match any of these. */
  exclude?: ReadonlyArray<string | RegExp>;
  /** As in encode (MX: nearest-even only). */
  rounding?: Rounding;
  /** As in encode (MX always clamps). */
  saturate?: boolean;
  /** Stochastic rounding seed (random when omitted; the seed used is recorded in the metadata). */
  seed?: number | bigint;
  /** Called after each chunk with the input data bytes done so far and the total. */
  onProgress?: (done: number, total: number) => void;
  /** Recorded in the metadata (the Node entry passes the package version). */
  memfitVersion?: string;
  /** Elements per chunk (default CHUNK_ELEMENTS). */
  chunkElements?: number;
}

/** What happened to one tensor of the input. */
export interface TensorConversionReport {
  readonly name: string;
  /** 'converted', or 'copied' (passed through unchanged; its scale tensor too, if any). */
  readonly action: 'converted' | 'copied';
  readonly shape: readonly number[];
  /** The values as read: 'float32', 'bfloat16', 'float8_e4m3fn*row' (scaled), 'F64', 'I64', ... */
  readonly from: string;
  /** The stored result: 'float8_e4m3fn*tensor', 'float4_e2m1fn*mx32', 'bfloat16', ... (same as `from` when copied). */
  readonly to: string;
  /** Bytes in the input and in the output, scale tensors included. */
  readonly bytesBefore: number;
  readonly bytesAfter: number;
  /** Name of the scale tensor written beside it, if any. */
  readonly scaleTensor: string | null;
  /** Largest |dequantised - input| over finite inputs (Infinity if a finite input became inf/NaN). Converted only. */
  readonly maxAbsError?: number;
  /** sqrt(sum (dequantised - input)^2 / sum input^2) over finite inputs. */
  readonly relRmsError?: number;
  /** Finite inputs whose scaled magnitude exceeds the target's max (clamped to it, or overflowed to inf/NaN). */
  readonly clamped?: number;
  /** clamped / number of elements. */
  readonly clampedShare?: number;
  /** Non-finite inputs (NaN, ±inf), which stay non-finite or become NaN / ±max per the format and --saturate. */
  readonly nonFinite?: number;
}

export interface ConvertReport {
  readonly target: ConvertTarget;
  readonly bytesBefore: number;
  readonly bytesAfter: number;
  readonly converted: number;
  readonly copied: number;
  readonly tensors: readonly TensorConversionReport[];
  /** The CONVERSION_KEY value written. */
  readonly conversion: ConversionMetadata;
  readonly seed?: string;
}

/** A conversion whose output layout is known, ready to stream. */
export interface ConversionPlan {
  readonly outputBytes: number;
  /** Writes the output to `sink`; returns the report. */
  run(sink: ByteSink): Promise<ConvertReport>;
}

function compile(patterns: ReadonlyArray<string | RegExp> | undefined, what: string): RegExp[] {
  if (patterns === undefined) return [];
  if (!Array.isArray(patterns)) throw new ConvertError(`${what} must be an array of regular expressions`);
  return patterns.map((p) => {
    if (p instanceof RegExp) return new RegExp(p.source, p.flags.replace(/[gy]/g, ''));
    if (typeof p !== 'string') throw new ConvertError(`${what}: expected a regular expression, got ${typeof p}`);
    try {
      return new RegExp(p);
    } catch (e) {
      throw new ConvertError(`${what}: invalid regular expression ${JSON.stringify(p)}: ${(e as Error).message}`);
    }
  });
}

function randomSeed(): bigint {
  const a = new Uint32Array(2);
  globalThis.crypto.getRandomValues(a);
  return (BigInt(a[0]) << 32n) | BigInt(a[1]);
}

function bytesOfCodes(codes: Uint8Array | Uint16Array | Uint32Array, dtype: DType): Uint8Array {
  if (formatOf(dtype).bits < 8) return pack(codes as Uint8Array, dtype);
  return new Uint8Array(codes.buffer, codes.byteOffset, codes.byteLength);
}

function f32Bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Smallest per-tensor / per-row scale: keeps x / scale finite for tiny amax. */
const MIN_SCALE = 2 ** -126;

const F32_BITS = new Float32Array(1);
const U32_BITS = new Uint32Array(F32_BITS.buffer);

/**
 * The float32 scale that maps amax onto the format's max: the smallest float32 s >= 2^-126 with
 * amax / s <= max (amax / max rounded to float32, one ulp up when rounding went down), so no finite
 * value is pushed past max by the rounding of the scale; 1 for an all-zero (or empty) tensor.
 */
export function fp8Scale(amax: number, dtype: DType): number {
  if (!(amax > 0) || !Number.isFinite(amax)) return 1;
  const max = finfo(dtype).max;
  F32_BITS[0] = amax / max;
  if (amax / F32_BITS[0] > max) U32_BITS[0]++;
  return Math.max(F32_BITS[0], MIN_SCALE);
}

/** Largest finite |x|, 0 if none. */
function finiteAmax(x: Float32Array | Float64Array, from = 0, to = x.length): number {
  let m = 0;
  for (let i = from; i < to; i++) {
    const a = Math.abs(x[i]);
    if (a > m && a !== Infinity) m = a;
  }
  return m;
}

class ErrorAccumulator {
  maxAbs = 0; clamped = 0; nonFinite = 0; blewUp = 0;
  // Sums of squares in units of `unit` (a power of two at the largest |input| or |output| so far, as in
  // StatsAccumulator): float64 inputs near 1e308 or 1e-300 neither overflow nor underflow them.
  unit = 0; sumSqErr = 0; sumSqRef = 0;
  /**
   * x: inputs; deq: dequantised outputs. Elements come in groups of `groupLen` (the last may be shorter);
   * limits[g] is the magnitude beyond which an input of group g was clamped (the format's max times its scale).
   */
  add(x: Float32Array | Float64Array, deq: Float32Array, limits: ArrayLike<number>, groupLen: number): void {
    let amax = 0;
    for (let i = 0; i < x.length; i++) {
      const v = x[i], d = deq[i];
      if (v - v === 0 && d - d === 0) amax = Math.max(amax, Math.abs(v), Math.abs(d));
    }
    if (amax > this.unit) {
      const unit = pow2Above(amax);
      const r = this.unit / unit;
      this.sumSqErr = this.sumSqErr * r * r;
      this.sumSqRef = this.sumSqRef * r * r;
      this.unit = unit;
    }
    const inv = this.unit ? 1 / this.unit : 1;
    let maxAbs = this.maxAbs, sumSqErr = 0, sumSqRef = 0, clamped = 0, nonFinite = 0, blewUp = 0;
    for (let g = 0, start = 0; start < x.length; g++, start += groupLen) {
      const limit = limits[g];
      const end = Math.min(x.length, start + groupLen);
      for (let i = start; i < end; i++) {
        const v = x[i];
        const d = deq[i];
        if (v - v !== 0) {
          nonFinite++;
          continue;
        }
        if (Math.abs(v) > limit) clamped++;
        if (d - d !== 0) {
          blewUp++;
          continue;
        }
        const e = Math.abs(d - v);
        if (e > maxAbs) maxAbs = e;
        const es = e * inv, vs = v * inv;
        sumSqErr += es * es;
        sumSqRef += vs * vs;
      }
    }
    this.maxAbs = maxAbs;
    this.sumSqErr += sumSqErr;
    this.sumSqRef += sumSqRef;
    this.clamped += clamped;
    this.nonFinite += nonFinite;
    this.blewUp += blewUp;
  }
  result(numel: number) {
    const rel = this.sumSqErr === 0 ? 0 : this.sumSqRef === 0 ? Infinity : Math.sqrt(this.sumSqErr / this.sumSqRef);
    return {
      maxAbsError: this.blewUp ? Infinity : this.maxAbs, relRmsError: this.blewUp ? Infinity : rel,
      clamped: this.clamped, clampedShare: numel ? this.clamped / numel : 0, nonFinite: this.nonFinite,
    };
  }
}

/** Plans the conversion of the file behind `source` (validates everything; nothing is written yet). */
/** The keys of ConvertModelOptions (any other is refused). */
export const CONVERT_OPTION_KEYS: readonly string[] = [
  'to', 'scale', 'blockSize', 'include', 'exclude', 'rounding', 'saturate', 'seed', 'onProgress', 'memfitVersion', 'chunkElements',
];

export async function planConversion(source: ByteSource, options: ConvertModelOptions, fn = 'planConversion'): Promise<ConversionPlan> {
  if (options === null || typeof options !== 'object') throw new ConvertError('options must be an object with at least { to }');
  checkOptions(options, CONVERT_OPTION_KEYS, fn);
  const target = resolveTarget(options.to, options.scale, options.blockSize);
  const rounding = options.rounding ?? 'nearest-even';
  if (!['nearest-even', 'toward-zero', 'stochastic'].includes(rounding)) throw new ConvertError(`unknown rounding ${JSON.stringify(rounding)}; use nearest-even, toward-zero or stochastic`);
  if (target.scale === 'mx' && rounding !== 'nearest-even') throw new ConvertError(`MX quantisation rounds to nearest-even (OCP MX v1.0); --rounding ${rounding} is not available for ${target.label}`);
  if (options.seed !== undefined && rounding !== 'stochastic') throw new ConvertError('a seed only applies to stochastic rounding');
  const seed = rounding === 'stochastic' ? BigInt.asUintN(64, BigInt(options.seed ?? randomSeed())) : undefined;
  const saturate = target.scale === 'mx' ? true : !!options.saturate;
  const chunk = options.chunkElements ?? CHUNK_ELEMENTS;
  if (!Number.isSafeInteger(chunk) || chunk < 1) throw new ConvertError(`chunkElements must be a positive integer, got ${chunk}`);
  const include = compile(options.include, 'include');
  const exclude = compile(options.exclude, 'exclude');

  const header = await readHeaderFrom(source);
  const a = analyse(header);
  const names = [...header.tensors.keys()].filter((n) => a.roles.get(n)!.kind !== 'scale');
  for (const [list, what] of [[include, 'include'], [exclude, 'exclude']] as const) {
    for (const re of list) {
      if (!names.some((n) => re.test(n))) throw new ConvertError(`--${what} ${re.source}: matches no tensor of the file (${names.length} tensors, e.g. ${names.slice(0, 3).map((n) => `'${n}'`).join(', ') || 'none'})`);
    }
  }
  const selected = new Set(names.filter((n) => {
    const role = a.roles.get(n)!;
    if (role.kind !== 'values' && role.kind !== 'scaled') return false;
    if (role.kind === 'values' && role.dtype === 'float8_e8m0fnu') return false;
    const shape = shapeOf(header.tensors.get(n)!);
    if (include.length ? !include.some((re) => re.test(n)) : shape.length !== 2) return false;
    return !exclude.some((re) => re.test(n));
  }));
  for (const n of selected) checkNoUnreadScale(a, n);
  if (selected.size === 0) {
    throw new ConvertError(`no tensor to convert: ${include.length ? 'no float tensor matches --include' : 'the file has no 2-D float tensor'}${exclude.length ? ' (after --exclude)' : ''}; choose tensors with --include`);
  }

  // The output: converted tensors (+ scales) and everything else copied through.
  const specs: Array<[string, RawTensorSpec | FileTensorSpec]> = [];
  const prev = a.conversion?.tensors ?? {};
  const entries = Object.create(null) as Record<string, ConvertedTensorEntry>;
  for (const n of names) {
    const info = header.tensors.get(n)!;
    const role = a.roles.get(n)!;
    if (selected.has(n)) {
      const shape = shapeOf(info);
      specs.push([n, { dtype: target.dtype, shape }]);
      const src = describeRole(role as Extract<Role, { kind: 'values' | 'scaled' }>); // selected tensors hold values
      if (target.scale !== 'none') {
        const sname = n + SCALE_SUFFIX;
        specs.push([sname, { dtype: target.scale === 'mx' ? 'float8_e8m0fnu' : 'float32', shape: scaleShape(shape, target.scale, target.blockSize) }]);
        entries[n] = { source: src, dtype: target.dtype, scale: target.scale, scaleTensor: sname, ...(target.scale === 'mx' ? { blockSize: target.blockSize } : {}) };
      } else entries[n] = { source: src, dtype: target.dtype, scale: 'none' };
      continue;
    }
    const copy = (name: string) => {
      const i = header.tensors.get(name)!;
      specs.push([name, i.memfit ? { dtype: i.memfit.dtype, shape: i.memfit.shape } : { fileDType: i.dtype, fileShape: i.shape }]);
    };
    copy(n);
    if (role.kind === 'scaled') copy(role.scaleTensor);
    if (prev[n]) entries[n] = prev[n];
  }
  const seen = new Map<string, number>();
  for (const [n] of specs) seen.set(n, (seen.get(n) ?? 0) + 1);
  const clash = [...seen].find(([, c]) => c > 1);
  if (clash) throw new ConvertError(`the output would hold two tensors named '${clash[0]}' (a scale tensor's name, <name>${SCALE_SUFFIX}, is taken by another tensor of the file)`);

  const run: ConversionRun = {
    memfit: options.memfitVersion ?? 'unknown', target: options.to, scale: target.scale,
    ...(target.scale === 'mx' ? { blockSize: target.blockSize } : {}),
    rounding, saturate, ...(seed !== undefined ? { seed: seed.toString() } : {}), converted: selected.size,
  };
  const conversion: ConversionMetadata = { version: 1, tensors: entries, runs: [...(a.conversion?.runs ?? []), run] };
  const metadata = { ...publicMetadata(header.metadata), [CONVERSION_KEY]: JSON.stringify(conversion) };
  let layout;
  try {
    layout = planSafetensors(specs, metadata);
  } catch (e) {
    if (e instanceof MemfitError) throw new ConvertError(`cannot lay out the output: ${e.message}`, { cause: e });
    throw e;
  }
  const offsets = new Map(layout.order.map((o) => [o.name, o.begin + layout.header.length]));

  return {
    outputBytes: layout.byteLength,
    run: async (out) => {
      const sink = new WriteBehind(out);
      await sink.write(0, layout.header);
      const reports: TensorConversionReport[] = [];
      let done = 0;
      let streamOffset = 0;
      const progress = (bytes: number) => options.onProgress?.(done + bytes, header.dataByteLength);
      for (const n of names) {
        const info = header.tensors.get(n)!;
        const role = a.roles.get(n)!;
        const scaleInfo = role.kind === 'scaled' ? header.tensors.get(role.scaleTensor)! : null;
        const inBytes = info.dataOffsets[1] - info.dataOffsets[0] + (scaleInfo ? scaleInfo.dataOffsets[1] - scaleInfo.dataOffsets[0] : 0);
        const shape = [...shapeOf(info)];
        if (!selected.has(n)) {
          for (const [name, i] of scaleInfo ? [[n, info], [role.kind === 'scaled' ? role.scaleTensor : '', scaleInfo]] as const : [[n, info]] as const) {
            const len = i.dataOffsets[1] - i.dataOffsets[0];
            for (let p = 0; p < len; p += COPY_BYTES) {
              const piece = await source.read(header.headerByteLength + i.dataOffsets[0] + p, Math.min(COPY_BYTES, len - p));
              await sink.write(offsets.get(name)! + p, piece);
              progress(p + piece.length);
            }
            done += len;
          }
          const d = role.kind === 'values' || role.kind === 'scaled' ? describeRole(role) : (info.memfit?.dtype ?? info.dtype);
          reports.push({ name: n, action: 'copied', shape, from: d, to: d, bytesBefore: inBytes, bytesAfter: inBytes, scaleTensor: role.kind === 'scaled' ? role.scaleTensor : null });
          continue;
        }
        const vs = await valueSource(source, a, n);
        const r = await convertTensor(vs, target, {
          name: n, data: offsets.get(n)!, scale: target.scale === 'none' ? -1 : offsets.get(n + SCALE_SUFFIX)!, sink, rounding, saturate, seed, streamOffset, chunk,
          progress: (elements) => progress(Math.round(elements * vs.bytesPerElement)),
        });
        streamOffset += vs.numel;
        done += inBytes;
        options.onProgress?.(done, header.dataByteLength);
        const outBytes = packedByteLength(target.dtype, vs.numel) + (target.scale === 'none' ? 0 : numelOf(scaleShape(shape, target.scale as Exclude<ScaleKind, 'none'>, target.blockSize)) * (target.scale === 'mx' ? 1 : 4));
        reports.push({
          name: n, action: 'converted', shape, from: vs.describe,
          to: target.scale === 'none' ? target.dtype : `${target.dtype}*${target.scale === 'mx' ? `mx${target.blockSize}` : target.scale}`,
          bytesBefore: inBytes, bytesAfter: outBytes, scaleTensor: target.scale === 'none' ? null : n + SCALE_SUFFIX, ...r,
        });
      }
      await sink.flush();
      return {
        target, bytesBefore: source.size, bytesAfter: layout.byteLength, converted: selected.size, copied: names.length - selected.size,
        tensors: reports, conversion, ...(seed !== undefined ? { seed: seed.toString() } : {}),
      };
    },
  };
}

/** A float32 scale that overflowed (float64 values beyond float32's range) would make every code NaN: refused. */
function checkScale(scale: number, amax: number, dtype: DType, from: string, name: string): void {
  if (Number.isFinite(scale)) return;
  throw new ConvertError(`tensor '${name}': its largest finite |value| ${amax} (${from}) needs a scale of ${amax / finfo(dtype).max} for ${dtype}, beyond float32's range (scales are stored as float32); it cannot be converted to scaled ${dtype} (leave it out with --exclude)`);
}

/**
 * MX quantisation runs on float32 values: a finite float64 value beyond float32's range would turn
 * into inf there and make its whole block NaN. Refused, naming the value.
 */
function checkMxRange(x: Float64Array, dtype: DType, name: string): void {
  for (const v of x) {
    if (Number.isFinite(v) && !Number.isFinite(Math.fround(v))) {
      throw new ConvertError(`tensor '${name}': the float64 value ${v} is beyond float32's range, and MX quantisation to ${dtype} runs on float32 values; it cannot be converted (leave it out with --exclude)`);
    }
  }
}

interface TensorOut {
  /** The tensor's name (for errors). */
  readonly name: string;
  /** File offsets of the converted tensor and of its scale tensor (-1: none). */
  readonly data: number;
  readonly scale: number;
  readonly sink: ByteSink;
  readonly rounding: Rounding;
  readonly saturate: boolean;
  readonly seed: bigint | undefined;
  /** Position of this tensor's element 0 in the stochastic-rounding stream. */
  readonly streamOffset: number;
  readonly chunk: number;
  readonly progress: (elementsDone: number) => void;
}

async function convertTensor(vs: ValueSource, target: ConvertTarget, o: TensorOut) {
  const { dtype, scale, blockSize: bs } = target;
  const rowLen = vs.rowLen;
  const max = finfo(dtype).max;
  const encodeOpts = (start: number) => ({ saturate: o.saturate, rounding: o.rounding, ...(o.rounding === 'stochastic' ? { seed: o.seed, offset: o.streamOffset + start } : {}) });
  const err = new ErrorAccumulator();
  const flatMx = rowLen % bs === 0;
  const perRow = Math.ceil(rowLen / bs);
  let unit = lcm(vs.align, packAlign(dtype));
  if (scale === 'row') unit = lcm(unit, Math.max(rowLen, 1));
  if (scale === 'mx') unit = lcm(unit, flatMx ? bs : Math.max(rowLen, 1));

  let tensorScale = 1;
  if (scale === 'tensor') {
    let amax = 0;
    for await (const [, , x] of readAhead(vs, [...chunks(vs.numel, unit, o.chunk)])) amax = Math.max(amax, finiteAmax(x));
    tensorScale = fp8Scale(amax, dtype);
    checkScale(tensorScale, amax, dtype, vs.describe, o.name);
    await o.sink.write(o.scale, f32Bytes(Float32Array.of(tensorScale)));
  }

  if (scale === 'row' && vs.numel === 0) {
    // Rows of length 0 (shape [n, 0]): no chunk visits them, but their scales exist; 1, as for an all-zero row.
    await o.sink.write(o.scale, f32Bytes(new Float32Array(vs.rows).fill(1)));
  }
  for await (const [start, count, x] of readAhead(vs, [...chunks(vs.numel, unit, o.chunk)])) {
    let codes: Uint8Array | Uint16Array | Uint32Array;
    let deq: Float32Array;
    if (scale === 'none') {
      codes = encode(x, dtype, encodeOpts(start));
      deq = decode(codes, dtype);
      err.add(x, deq, [max], count);
    } else if (scale === 'tensor' || scale === 'row') {
      const scales = new Float32Array(scale === 'tensor' ? 1 : count / Math.max(rowLen, 1));
      if (scale === 'tensor') scales[0] = tensorScale;
      else {
        for (let r = 0; r < scales.length; r++) {
          const amax = finiteAmax(x, r * rowLen, (r + 1) * rowLen);
          scales[r] = fp8Scale(amax, dtype);
          checkScale(scales[r], amax, dtype, vs.describe, o.name);
        }
      }
      const groupLen = scale === 'tensor' ? count : rowLen;
      // x / scale rounded to float32 (as PyTorch divides a float32 tensor); binary64 for F64 input. Storing a
      // double into a Float32Array rounds it once; the product of two float32 values is exact in a double.
      const scaled = x instanceof Float64Array ? new Float64Array(count) : new Float32Array(count);
      for (let g = 0, a = 0; a < count; g++, a += groupLen) {
        const sc = scales[g];
        for (let i = a, end = Math.min(count, a + groupLen); i < end; i++) scaled[i] = x[i] / sc;
      }
      codes = encode(scaled, dtype, encodeOpts(start));
      deq = decode(codes, dtype);
      for (let g = 0, a = 0; a < count; g++, a += groupLen) {
        const sc = scales[g];
        for (let i = a, end = Math.min(count, a + groupLen); i < end; i++) deq[i] *= sc;
      }
      err.add(x, deq, Float64Array.from(scales, (sc) => max * sc), groupLen);
      if (scale === 'row') await o.sink.write(o.scale + (start / Math.max(rowLen, 1)) * 4, f32Bytes(scales));
    } else {
      if (x instanceof Float64Array) checkMxRange(x, dtype, o.name);
      const x32 = x instanceof Float32Array ? x : Float32Array.from(x);
      let scales: Uint8Array;
      let scaleOffset: number;
      if (flatMx) {
        const mx = mxQuantize(x32, dtype, { blockSize: bs });
        codes = mx.codes;
        scales = mx.scales;
        deq = mxDequantize(mx);
        scaleOffset = start / bs;
      } else {
        const rows = Math.ceil(count / rowLen);
        const c8 = new Uint8Array(count);
        scales = new Uint8Array(rows * perRow);
        deq = new Float32Array(count);
        for (let r = 0; r < rows; r++) {
          const mx = mxQuantize(x32.subarray(r * rowLen, (r + 1) * rowLen), dtype, { blockSize: bs });
          c8.set(mx.codes, r * rowLen);
          scales.set(mx.scales, r * perRow);
          deq.set(mxDequantize(mx), r * rowLen);
        }
        codes = c8;
        scaleOffset = (start / rowLen) * perRow;
      }
      const limits = Float64Array.from(scales, (c) => (c === 0xff ? Infinity : max * 2 ** (c - 127)));
      if (flatMx) err.add(x, deq, limits, bs);
      else {
        for (let r = 0; r * rowLen < count; r++) {
          err.add(x.subarray(r * rowLen, (r + 1) * rowLen), deq.subarray(r * rowLen, (r + 1) * rowLen), limits.subarray(r * perRow, (r + 1) * perRow), bs);
        }
      }
      await o.sink.write(o.scale + scaleOffset, scales);
    }
    await o.sink.write(o.data + packedByteLength(dtype, start), bytesOfCodes(codes, dtype));
    o.progress(start + count);
  }
  return err.result(vs.numel);
}

/** Converts a safetensors file in memory; returns the new file and the report (browser build). */
export async function convertSafetensorsBytes(bytes: Uint8Array, options: ConvertModelOptions): Promise<{ bytes: Uint8Array; report: ConvertReport }> {
  const plan = await planConversion(bytesSource(bytes), options, 'convertSafetensorsBytes');
  let out: Uint8Array;
  try {
    out = new Uint8Array(plan.outputBytes);
  } catch (e) {
    throw new ConvertError(`cannot allocate ${plan.outputBytes} bytes for the output (convert files with memfit/node's convertSafetensors, which streams)`, { cause: e });
  }
  const report = await plan.run({ write: async (offset, b) => void out.set(b, offset) });
  return { bytes: out, report };
}
