// safetensors (https://github.com/huggingface/safetensors) reading and writing. Browser-safe: bytes in,
// bytes out; the Node file functions live in safetensors_file.ts.
//
// File layout: an 8-byte little-endian unsigned header length n, n bytes of UTF-8 JSON
// {"__metadata__": {string: string}, name: {"dtype", "shape", "data_offsets": [begin, end]}, ...}
// (padded with spaces to a multiple of 8 by the reference writer), then the data buffer; offsets are
// relative to the start of the data buffer, and the tensors must tile it exactly.
//
// The parser treats every file as hostile: it never indexes past the bytes it was given, never trusts a
// length before checking it against what is there, parses the JSON itself (JSON.parse silently keeps the
// last of duplicate keys and rounds integers above 2^53) and reports every problem as a SafetensorsError
// naming the tensor. docs/safetensors.md has the format notes and the memfit dtype mapping.
import { checkOptions, describeValue, InvalidArgumentError, MemfitError } from '../errors.js';
import { formatOf } from '../dtype/formats.js';
import { dtypeBits } from '../backend/storage.js';
import type { Backend, TensorDType } from '../backend/backend.js';
import type { Category } from '../backend/memory.js';
import { Tensor } from '../tensor/tensor.js';

/** Largest header the reference implementation accepts (its MAX_HEADER_SIZE, 100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

/**
 * Most tensors a file may hold (and entries in any header object). Real checkpoints hold hundreds to
 * a few tens of thousands; a 100 MB header of empty tensors would otherwise be 1.5 million entries,
 * tens of seconds and gigabytes to parse and load. Checked while parsing, before the entries are built.
 */
export const MAX_TENSORS = 100_000;

/** Longest array in a header (a shape's rank; data_offsets has 2). */
export const MAX_RANK = 64;

/**
 * `__metadata__` key under which memfit records the real dtype and logical shape of tensors stored as U8
 * (fp4, fp6, e8m0): a JSON object string, name -> {"dtype": canonical memfit name, "shape": [...]}.
 */
export const MEMFIT_DTYPES_KEY = 'memfit.dtypes';

/** A malformed or unsupported safetensors file (or one memfit cannot represent); names the tensor when there is one. */
export class SafetensorsError extends MemfitError {
  /** The tensor the problem is about, when there is one. */
  readonly tensor: string | undefined;
  constructor(message: string, options: { tensor?: string; cause?: unknown } = {}) {
    super('SAFETENSORS', message);
    this.tensor = options.tensor;
    if ('cause' in options) this.cause = options.cause;
  }
}

/** A tensor as memfit holds it: dtype, logical shape and the bytes in memfit's storage packing. */
export interface RawTensor {
  readonly dtype: TensorDType;
  readonly shape: readonly number[];
  /** storageBytes(dtype, numel(shape)) bytes: little-endian codes, fp4/fp6 packed as pack() packs them. */
  readonly bytes: Uint8Array;
}

/** dtype and logical shape of a tensor (what the header must describe). */
export interface RawTensorSpec {
  readonly dtype: TensorDType;
  readonly shape: readonly number[];
}

/** One tensor entry of a header, as written in the file plus how memfit reads it. */
export interface SafetensorsTensorInfo {
  /** The dtype string of the header ('F32', 'U8', 'F64', ...). */
  readonly dtype: string;
  /** The shape of the header (for memfit's U8-stored formats, the shape of the bytes). */
  readonly shape: readonly number[];
  /** [begin, end) in bytes, relative to the start of the data buffer. */
  readonly dataOffsets: readonly [number, number];
  /** The memfit tensor this entry holds, or null when memfit has no such dtype (see `unsupported`). */
  readonly memfit: RawTensorSpec | null;
  /** Why `memfit` is null, e.g. "unsupported dtype F64"; null when it is not. */
  readonly unsupported: string | null;
}

/** A parsed tensor: its header entry plus a view (no copy) of its bytes. */
export interface ParsedTensor extends SafetensorsTensorInfo {
  readonly bytes: Uint8Array;
}

/** A parsed and validated header. */
export interface SafetensorsHeader {
  /** 8 + n: where the data buffer starts in the file. */
  readonly headerByteLength: number;
  readonly dataByteLength: number;
  /** Every tensor, in data-offset order. */
  readonly tensors: ReadonlyMap<string, SafetensorsTensorInfo>;
  /** `__metadata__` without memfit's own key (a null-prototype object). */
  readonly metadata: Record<string, string>;
}

/** Where each tensor goes in a file about to be written. */
export interface SafetensorsLayout {
  /** The 8-byte length followed by the padded JSON header. */
  readonly header: Uint8Array;
  /** Tensors in file order, with data offsets relative to the data buffer. */
  readonly order: ReadonlyArray<{ readonly name: string; readonly begin: number; readonly end: number }>;
  /** Size of the whole file. */
  readonly byteLength: number;
}

// ---- dtype tables -------------------------------------------------------------------------------

/** Bits per element of every dtype the reference (0.8) defines; a Map, so "constructor" is not a dtype. */
const FILE_DTYPE_BITS: ReadonlyMap<string, number> = new Map([
  ['BOOL', 8], ['F4', 4], ['F6_E2M3', 6], ['F6_E3M2', 6], ['U8', 8], ['I8', 8], ['F8_E5M2', 8], ['F8_E4M3', 8],
  ['F8_E8M0', 8], ['F8_E4M3FNUZ', 8], ['F8_E5M2FNUZ', 8], ['I16', 16], ['U16', 16], ['F16', 16], ['BF16', 16],
  ['I32', 32], ['U32', 32], ['F32', 32], ['C64', 64], ['F64', 64], ['I64', 64], ['U64', 64],
]);

/**
 * File dtypes memfit reads directly. F4 is safetensors' name for PyTorch's float4_e2m1fn_x2 bytes (its
 * Python binding doubles the x2 storage's last dim into the header's logical shape), i.e. two codes a byte,
 * element 0 in the low nibble: memfit's packing. F8_E8M0 is one code a byte.
 */
const FROM_FILE: ReadonlyMap<string, TensorDType> = new Map<string, TensorDType>([
  ['F32', 'float32'], ['F16', 'float16'], ['BF16', 'bfloat16'], ['F8_E4M3', 'float8_e4m3fn'], ['F8_E5M2', 'float8_e5m2'],
  ['F8_E8M0', 'float8_e8m0fnu'], ['F4', 'float4_e2m1fn'], ['I32', 'int32'], ['U8', 'uint8'],
]);

/** What a memfit dtype is written as; the rest (fp4, fp6, e8m0) are written as U8 plus MEMFIT_DTYPES_KEY. */
const TO_FILE: ReadonlyMap<TensorDType, string> = new Map<TensorDType, string>([
  ['float32', 'F32'], ['float16', 'F16'], ['bfloat16', 'BF16'], ['float8_e4m3fn', 'F8_E4M3'], ['float8_e5m2', 'F8_E5M2'], ['int32', 'I32'], ['uint8', 'U8'],
]);

/** memfit dtypes stored as U8 bytes (older readers, and PyTorch before 2.7, know no F4 / F8_E8M0). */
const U8_STORED: ReadonlySet<TensorDType> = new Set<TensorDType>(['float4_e2m1fn', 'float6_e3m2fn', 'float6_e2m3fn', 'float8_e8m0fnu']);

function unsupportedReason(dtype: string): string {
  if (dtype === 'F6_E2M3' || dtype === 'F6_E3M2') {
    // The reference only gives the size (6 bits); which bits of which byte hold element j is not defined
    // anywhere we could check, so we refuse rather than guess.
    return `unsupported dtype ${dtype} (safetensors defines no bit order for 6-bit codes; memfit writes fp6 as U8 with "${MEMFIT_DTYPES_KEY}" metadata)`;
  }
  return `unsupported dtype ${dtype}`;
}


/** Canonical TensorDType of a name (aliases allowed); UnknownDTypeError otherwise. */
function tensorDType(d: string): TensorDType {
  return d === 'int32' || d === 'uint8' ? d : formatOf(d).name;
}

/** Bytes `n` elements of `bits` take, or -1 if that is not a safe integer. */
function byteSize(n: number, bits: number): number {
  const total = n * bits;
  return Number.isSafeInteger(total) ? Math.ceil(total / 8) : -1;
}

/** Number of elements, or -1 when it is not a safe integer. */
function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) if (d === 0) return 0;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n)) return -1;
  }
  return n;
}

/** The U8 shape memfit writes for a sub-byte/e8m0 tensor: its shape with the last dim in bytes when rows end on a byte, else [bytes]. */
function u8Shape(dtype: TensorDType, shape: readonly number[], bytes: number): number[] {
  const bits = dtypeBits(dtype);
  const last = shape.length ? shape[shape.length - 1] : 0;
  if (shape.length > 0 && (last * bits) % 8 === 0) return [...shape.slice(0, -1), (last * bits) / 8];
  return [bytes];
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function fmtShape(shape: readonly unknown[]): string {
  return `[${shape.join(', ')}]`;
}

// ---- a strict JSON reader -------------------------------------------------------------------------

/** A JSON number, kept as its text so that integers are checked exactly. */
class JsonNumber {
  constructor(readonly text: string) {}
  /** The value when the literal is a non-negative integer no larger than 2^53 - 1, else -1. */
  get index(): number {
    if (!INDEX.test(this.text)) return -1;
    const v = Number(this.text);
    return Number.isSafeInteger(v) ? v : -1;
  }
}
type Json = null | boolean | string | JsonNumber | Json[] | Map<string, Json>;

const ESCAPES: ReadonlyMap<string | undefined, string> = new Map([['"', '"'], ['\\', '\\'], ['/', '/'], ['b', '\b'], ['f', '\f'], ['n', '\n'], ['r', '\r'], ['t', '\t']]);

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const INDEX = /^(?:0|[1-9][0-9]*)$/;

/** Nesting the header ever needs is 3 (object, tensor entry, shape); this bounds recursion on hostile input. */
const MAX_JSON_DEPTH = 32;

/** RFC 8259 JSON with duplicate keys, lone surrogates and over-deep nesting rejected; throws SafetensorsError(`what`: ...). */
function parseJson(s: string, what: string): Json {
  let i = 0;
  const fail = (msg: string): never => {
    throw new SafetensorsError(`${what}: ${msg} at character ${i}`);
  };
  const ws = () => {
    for (let c = s.charCodeAt(i); c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d; c = s.charCodeAt(++i));
  };
  const str = (): string => {
    i++; // opening quote
    let out = '';
    let start = i;
    for (;;) {
      if (i >= s.length) fail('unterminated string');
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        out += s.slice(start, i++);
        break;
      }
      if (c < 0x20) fail('control character in string');
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += s.slice(start, i);
      const e = s[i + 1];
      i += 2;
      if (e === 'u') {
        const hex = s.slice(i, i + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('bad \\u escape');
        out += String.fromCharCode(parseInt(hex, 16));
        i += 4;
      } else {
        const m = ESCAPES.get(e);
        if (m === undefined) fail('bad escape');
        out += m;
      }
      start = i;
    }
    if (LONE_SURROGATE.test(out)) fail('string with an unpaired surrogate');
    return out;
  };
  const value = (depth: number): Json => {
    if (depth > MAX_JSON_DEPTH) fail(`nesting deeper than ${MAX_JSON_DEPTH}`);
    ws();
    const c = s[i];
    if (c === '{') {
      i++;
      const obj = new Map<string, Json>();
      ws();
      if (s[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (s[i] !== '"') fail('expected a string key');
        const key = str();
        if (obj.has(key)) fail(`duplicate key ${JSON.stringify(key)}`);
        if (obj.size >= MAX_TENSORS + 1) fail(`an object with more than ${MAX_TENSORS + 1} entries (memfit reads at most ${MAX_TENSORS} tensors a file; corrupt or hostile file?)`);
        ws();
        if (s[i] !== ':') fail("expected ':'");
        i++;
        obj.set(key, value(depth + 1));
        ws();
        if (s[i] === ',') i++;
        else if (s[i] === '}') {
          i++;
          return obj;
        } else fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      i++;
      const arr: Json[] = [];
      ws();
      if (s[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        if (arr.length >= MAX_RANK) fail(`an array longer than ${MAX_RANK} (memfit reads shapes of rank <= ${MAX_RANK})`);
        arr.push(value(depth + 1));
        ws();
        if (s[i] === ',') i++;
        else if (s[i] === ']') {
          i++;
          return arr;
        } else fail("expected ',' or ']'");
      }
    }
    if (c === '"') return str();
    if (s.startsWith('true', i)) return (i += 4), true;
    if (s.startsWith('false', i)) return (i += 5), false;
    if (s.startsWith('null', i)) return (i += 4), null;
    NUMBER.lastIndex = i;
    const num = NUMBER.exec(s);
    if (!num) return fail(i >= s.length ? 'unexpected end' : `unexpected ${JSON.stringify(s[i])}`);
    i += num[0].length;
    return new JsonNumber(num[0]);
  };
  const v = value(0);
  ws();
  if (i !== s.length) fail('trailing characters after the JSON value');
  return v;
}

function indexList(v: Json | undefined): number[] | null {
  if (!Array.isArray(v)) return null;
  const out: number[] = [];
  for (const x of v) {
    const n = x instanceof JsonNumber ? x.index : -1;
    if (n < 0) return null;
    out.push(n);
  }
  return out;
}

/** A short rendering of a JSON value for messages. */
function describe(v: Json | undefined): string {
  const text = (x: Json): string => {
    if (x instanceof JsonNumber) return x.text;
    if (x instanceof Map) return '{...}';
    if (Array.isArray(x)) return `[${x.map(text).join(',')}]`;
    return JSON.stringify(x);
  };
  if (v === undefined) return 'nothing';
  const s = text(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

// ---- reading ---------------------------------------------------------------------------------------

/** Total header size 8 + n from the first 8 bytes of a file of `fileByteLength` bytes, after checking n. */
export function safetensorsHeaderSize(prefix: Uint8Array, fileByteLength: number = prefix?.length): number {
  if (!(prefix instanceof Uint8Array)) throw new InvalidArgumentError(`expected the file as a Uint8Array, got ${prefix === null ? 'null' : typeof prefix}`);
  if (!Number.isSafeInteger(fileByteLength) || fileByteLength < 0) throw new InvalidArgumentError(`fileByteLength must be a non-negative integer, got ${fileByteLength}`);
  if (fileByteLength < 8) throw new SafetensorsError(`file is ${fileByteLength} bytes, shorter than the 8-byte header length (truncated, or not a safetensors file)`);
  if (prefix.length < 8) throw new SafetensorsError(`need the first 8 bytes of the file, got ${prefix.length}`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(`header length ${n} bytes is over the ${MAX_HEADER_BYTES}-byte limit (corrupt, or not a safetensors file)`);
  const size = 8 + Number(n);
  if (size > fileByteLength) throw new SafetensorsError(`header length ${n} bytes runs past the end of the ${fileByteLength}-byte file (truncated?)`);
  return size;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Parses and validates the header of a file of `fileByteLength` bytes, given (at least) its first 8 + n bytes. */
export function parseSafetensorsHeader(bytes: Uint8Array, fileByteLength: number = bytes?.length): SafetensorsHeader {
  const headerByteLength = safetensorsHeaderSize(bytes, fileByteLength);
  if (bytes.length < headerByteLength) throw new SafetensorsError(`need the first ${headerByteLength} bytes of the file (the header), got ${bytes.length}`);
  let text: string;
  try {
    text = UTF8.decode(bytes.subarray(8, headerByteLength));
  } catch (e) {
    throw new SafetensorsError('header is not valid UTF-8', { cause: e });
  }
  if (text[0] !== '{') throw new SafetensorsError(`header does not start with '{' (starts with ${JSON.stringify(text.slice(0, 8))})`);
  const root = parseJson(text, 'header is not valid JSON') as Map<string, Json>;
  const dataByteLength = fileByteLength - headerByteLength;

  const metadata: Record<string, string> = Object.create(null) as Record<string, string>;
  let memfitKey: string | undefined;
  const entries: Array<{ name: string; dtype: string; shape: number[]; begin: number; end: number }> = [];
  for (const [name, v] of root) {
    if (name === '__metadata__') {
      if (v === null) continue; // the reference reads null as "no metadata"
      if (!(v instanceof Map)) throw new SafetensorsError(`__metadata__ must be an object of strings, got ${describe(v)}`);
      for (const [k, s] of v) {
        if (typeof s !== 'string') throw new SafetensorsError(`__metadata__ value of ${JSON.stringify(k)} must be a string, got ${describe(s)}`);
        if (k === MEMFIT_DTYPES_KEY) memfitKey = s;
        else metadata[k] = s;
      }
      continue;
    }
    const t = (msg: string) => new SafetensorsError(`tensor '${name}': ${msg}`, { tensor: name });
    if (!(v instanceof Map)) throw t(`entry must be an object with dtype, shape and data_offsets, got ${describe(v)}`);
    const dtype = v.get('dtype');
    if (typeof dtype !== 'string') throw t(`dtype must be a string, got ${describe(dtype)}`);
    const bits = FILE_DTYPE_BITS.get(dtype);
    if (bits === undefined) throw t(`unknown dtype ${JSON.stringify(dtype)} (known: ${[...FILE_DTYPE_BITS.keys()].join(', ')})`);
    const shape = indexList(v.get('shape'));
    if (!shape) throw t(`shape must be an array of non-negative integers below 2^53, got ${describe(v.get('shape'))}`);
    const offsets = indexList(v.get('data_offsets'));
    if (!offsets || offsets.length !== 2) throw t(`data_offsets must be [begin, end], non-negative integers below 2^53, got ${describe(v.get('data_offsets'))}`);
    const [begin, end] = offsets;
    if (begin > end) throw t(`data_offsets [${begin}, ${end}] end before they begin`);
    const n = numelOf(shape);
    const size = n < 0 ? -1 : byteSize(n, bits);
    if (size < 0) throw t(`shape ${fmtShape(shape)} of ${dtype} is too large (its byte size overflows)`);
    if ((n * bits) % 8 !== 0) throw t(`${n} ${dtype} elements of ${bits} bits do not end on a byte boundary`);
    if (end - begin !== size) throw t(`shape ${fmtShape(shape)} of ${dtype} needs ${size} bytes, data_offsets [${begin}, ${end}] hold ${end - begin}`);
    if (end > dataByteLength) throw t(`data_offsets [${begin}, ${end}] run past the end of the ${dataByteLength}-byte data buffer (truncated file?)`);
    entries.push({ name, dtype, shape, begin, end });
  }

  // The tensors must tile the data buffer: sorted by offsets, each starts where the last ended.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  let prev: string | undefined;
  for (const e of entries) {
    if (e.begin < pos) throw new SafetensorsError(`tensor '${e.name}': data_offsets [${e.begin}, ${e.end}] overlap tensor '${prev}' (which ends at ${pos})`, { tensor: e.name });
    if (e.begin > pos) throw new SafetensorsError(`tensor '${e.name}': data_offsets [${e.begin}, ${e.end}] leave bytes ${pos}..${e.begin} of the data buffer covered by no tensor`, { tensor: e.name });
    pos = e.end;
    prev = e.name;
  }
  if (pos !== dataByteLength) throw new SafetensorsError(`the tensors cover ${pos} bytes of the ${dataByteLength}-byte data buffer; the last ${dataByteLength - pos} bytes belong to no tensor`);

  const memfit = memfitKey === undefined ? new Map<string, RawTensorSpec>() : parseMemfitKey(memfitKey);
  const tensors = new Map<string, SafetensorsTensorInfo>();
  for (const e of entries) {
    const spec = memfit.get(e.name);
    let info: RawTensorSpec | null = null;
    if (spec) {
      if (e.dtype !== 'U8') throw new SafetensorsError(`tensor '${e.name}': "${MEMFIT_DTYPES_KEY}" gives it dtype ${spec.dtype}, but it is stored as ${e.dtype}, not U8`, { tensor: e.name });
      const need = byteSize(numelOf(spec.shape), dtypeBits(spec.dtype));
      if (need !== e.end - e.begin) throw new SafetensorsError(`tensor '${e.name}': ${spec.dtype} shape ${fmtShape(spec.shape)} from "${MEMFIT_DTYPES_KEY}" needs ${need} bytes, the file holds ${e.end - e.begin}`, { tensor: e.name });
      info = spec;
    } else {
      const d = FROM_FILE.get(e.dtype);
      if (d) info = { dtype: d, shape: e.shape };
    }
    tensors.set(e.name, {
      dtype: e.dtype, shape: e.shape, dataOffsets: [e.begin, e.end], memfit: info,
      unsupported: info ? null : unsupportedReason(e.dtype),
    });
  }
  for (const name of memfit.keys()) {
    if (!tensors.has(name)) throw new SafetensorsError(`"${MEMFIT_DTYPES_KEY}" names tensor '${name}', which the file does not hold`, { tensor: name });
  }
  return { headerByteLength, dataByteLength, tensors, metadata };
}

/** Reads the value of MEMFIT_DTYPES_KEY: name -> {dtype, shape}. */
function parseMemfitKey(s: string): Map<string, RawTensorSpec> {
  const what = `__metadata__ "${MEMFIT_DTYPES_KEY}"`;
  const root = parseJson(s, `${what} is not valid JSON`);
  if (!(root instanceof Map)) throw new SafetensorsError(`${what} must be a JSON object, got ${describe(root)}`);
  const out = new Map<string, RawTensorSpec>();
  for (const [name, v] of root) {
    const t = (msg: string) => new SafetensorsError(`tensor '${name}': ${what}: ${msg}`, { tensor: name });
    if (!(v instanceof Map)) throw t(`entry must be an object {dtype, shape}, got ${describe(v)}`);
    const d = v.get('dtype');
    let dtype: TensorDType | undefined;
    try {
      dtype = typeof d === 'string' ? tensorDType(d) : undefined;
    } catch {
      dtype = undefined;
    }
    if (!dtype || !U8_STORED.has(dtype)) throw t(`dtype must be one of ${[...U8_STORED].join(', ')}, got ${describe(d)}`);
    const shape = indexList(v.get('shape'));
    if (!shape) throw t(`shape must be an array of non-negative integers below 2^53, got ${describe(v.get('shape'))}`);
    if (byteSize(numelOf(shape), 8) < 0) throw t(`shape ${fmtShape(shape)} is too large`);
    out.set(name, { dtype, shape });
  }
  return out;
}

/** Parses a whole safetensors file; tensors' bytes are views into `bytes` (no copies). */
export function parseSafetensors(bytes: Uint8Array): { tensors: Map<string, ParsedTensor>; metadata: Record<string, string> } {
  const header = parseSafetensorsHeader(bytes);
  const data = bytes.subarray(header.headerByteLength);
  const tensors = new Map<string, ParsedTensor>();
  for (const [name, info] of header.tensors) tensors.set(name, { ...info, bytes: data.subarray(info.dataOffsets[0], info.dataOffsets[1]) });
  return { tensors, metadata: header.metadata };
}

/** The memfit view of a parsed tensor; SafetensorsError "unsupported dtype F64 for tensor 'x'" when memfit has none. */
export function toRawTensor(name: string, t: ParsedTensor): RawTensor {
  if (!t.memfit) throw new SafetensorsError(`${t.unsupported ?? `unsupported dtype ${t.dtype}`} for tensor '${name}'`, { tensor: name });
  return { dtype: t.memfit.dtype, shape: t.memfit.shape, bytes: t.bytes };
}

// ---- writing ---------------------------------------------------------------------------------------

function checkString(s: unknown, what: string): string {
  if (typeof s !== 'string') throw new InvalidArgumentError(`${what} must be a string, got ${typeof s}`);
  // A lone surrogate would be written as a \ud800 escape, which the reference rejects.
  if (LONE_SURROGATE.test(s)) throw new InvalidArgumentError(`${what} ${JSON.stringify(s)} has an unpaired surrogate (not valid Unicode)`);
  return s;
}

/**
 * The reference writer's order of the dtypes memfit writes (its Dtype enum order, "increasing alignment");
 * it writes the highest first, then by name, and so do we, so that our files are byte-identical to its own.
 * FILE_DTYPE_BITS lists the dtypes in that order (checked against the reference for every dtype but F4, F6 and FNUZ).
 */
const WRITE_RANK: ReadonlyMap<string, number> = new Map([...FILE_DTYPE_BITS.keys()].map((d, i) => [d, i]));

/** Order of the strings' UTF-8 bytes (= code point order), as Rust orders str; JS `<` compares UTF-16 units. */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i), y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (astral code points) sort after U+E000..U+FFFF in code point order, before them in UTF-16.
    if (x >= 0xd800 && y >= 0xd800) {
      x += x < 0xe000 ? 0x2000 : -0x800;
      y += y < 0xe000 ? 0x2000 : -0x800;
    }
    return x - y;
  }
  return a.length - b.length;
}

/**
 * A tensor given by its file dtype and file shape, written as it is: how a file's tensors that memfit does not
 * hold (F64, I64, BOOL, raw U8, ...) are copied through unchanged (memfit convert-model does).
 */
export interface FileTensorSpec {
  /** A safetensors dtype string ('F64', 'I64', 'U8', ...). */
  readonly fileDType: string;
  readonly fileShape: readonly number[];
}

function fileRow(name: string, spec: FileTensorSpec) {
  const bits = FILE_DTYPE_BITS.get(spec.fileDType);
  if (bits === undefined) throw new InvalidArgumentError(`tensor '${name}': unknown file dtype ${JSON.stringify(spec.fileDType)} (known: ${[...FILE_DTYPE_BITS.keys()].join(', ')})`);
  const shape = spec.fileShape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new InvalidArgumentError(`tensor '${name}': shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  const n = numelOf(shape);
  const bytes = n < 0 ? -1 : byteSize(n, bits);
  if (bytes < 0) throw new InvalidArgumentError(`tensor '${name}': shape ${fmtShape(shape)} is too large`);
  if ((n * bits) % 8 !== 0) throw new InvalidArgumentError(`tensor '${name}': ${n} ${spec.fileDType} elements do not end on a byte boundary`);
  return { name, dtype: null, shape: [...shape], bytes, fileDType: spec.fileDType, fileShape: [...shape], rank: WRITE_RANK.get(spec.fileDType) ?? 0 };
}

/**
 * The header and data offsets of a file holding `specs` (name -> dtype and logical shape) and `metadata`.
 * Tensors go in the reference writer's order (widest dtypes first, then by name), so 4-byte elements sit
 * at 4-byte-aligned offsets; the JSON is space-padded to a multiple of 8 bytes, as the reference pads it.
 */
export function planSafetensors(specs: ReadonlyArray<readonly [string, RawTensorSpec | FileTensorSpec]>, metadata: Record<string, string> = {}): SafetensorsLayout {
  if (metadata === null || typeof metadata !== 'object') throw new InvalidArgumentError(`metadata must be an object of strings, got ${describeValue(metadata)}`);
  const meta: string[] = [];
  if (Object.keys(metadata).length > MAX_TENSORS) throw new InvalidArgumentError(`${Object.keys(metadata).length} metadata entries are more than the ${MAX_TENSORS} a safetensors header may hold here`);
  for (const [k, v] of Object.entries(metadata)) {
    checkString(k, 'metadata key');
    if (k === MEMFIT_DTYPES_KEY) throw new InvalidArgumentError(`metadata key "${MEMFIT_DTYPES_KEY}" is reserved: memfit writes it for fp4/fp6/e8m0 tensors`);
    meta.push(`${JSON.stringify(k)}:${JSON.stringify(checkString(v, `metadata value of ${JSON.stringify(k)}`))}`);
  }
  if (specs.length > MAX_TENSORS) throw new InvalidArgumentError(`${specs.length} tensors are more than the ${MAX_TENSORS} a safetensors file may hold here (readers refuse more)`);
  const seen = new Set<string>();
  const rows = specs.map(([name, spec]) => {
    checkString(name, 'tensor name');
    if (name === '__metadata__') throw new InvalidArgumentError('a tensor cannot be named "__metadata__" (the header reserves it)');
    if (seen.has(name)) throw new InvalidArgumentError(`tensor name '${name}' given twice`);
    seen.add(name);
    if (spec === null || typeof spec !== 'object') throw new InvalidArgumentError(`tensor '${name}' must be a tensor, got ${spec === null ? 'null' : typeof spec}`);
    if ('fileDType' in spec) return fileRow(name, spec);
    const dtype = tensorDType(spec.dtype);
    const shape = spec.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new InvalidArgumentError(`tensor '${name}': shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    if (shape.length > MAX_RANK) throw new InvalidArgumentError(`tensor '${name}': rank ${shape.length} is above the ${MAX_RANK} a safetensors file may hold here`);
    const bytes = byteSize(numelOf(shape), dtypeBits(dtype));
    if (bytes < 0) throw new InvalidArgumentError(`tensor '${name}': shape ${fmtShape(shape)} is too large`);
    const fileDType = TO_FILE.get(dtype) ?? 'U8';
    const fileShape = fileDType === 'U8' && dtype !== 'uint8' ? u8Shape(dtype, shape, bytes) : [...shape];
    return { name, dtype, shape: [...shape], bytes, fileDType, fileShape, rank: WRITE_RANK.get(fileDType) ?? 0 };
  });
  rows.sort((a, b) => b.rank - a.rank || compareCodePoints(a.name, b.name));

  const memfit = rows.filter((r) => r.fileDType === 'U8' && r.dtype !== null && r.dtype !== 'uint8').map((r) => `${JSON.stringify(r.name)}:{"dtype":"${r.dtype}","shape":[${r.shape.join(',')}]}`);
  if (memfit.length) meta.push(`${JSON.stringify(MEMFIT_DTYPES_KEY)}:${JSON.stringify(`{${memfit.join(',')}}`)}`);
  const parts: string[] = meta.length ? [`"__metadata__":{${meta.join(',')}}`] : [];
  const order: Array<{ name: string; begin: number; end: number }> = [];
  let offset = 0;
  for (const r of rows) {
    order.push({ name: r.name, begin: offset, end: offset + r.bytes });
    parts.push(`${JSON.stringify(r.name)}:{"dtype":"${r.fileDType}","shape":[${r.fileShape.join(',')}],"data_offsets":[${offset},${offset + r.bytes}]}`);
    offset += r.bytes;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const n = Math.ceil(json.length / 8) * 8;
  if (n > MAX_HEADER_BYTES) throw new SafetensorsError(`header would be ${n} bytes, over the ${MAX_HEADER_BYTES}-byte limit readers accept (too much metadata?)`);
  const header = new Uint8Array(8 + n).fill(0x20, 8 + json.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(n), true);
  header.set(json, 8);
  if (!Number.isSafeInteger(8 + n + offset)) throw new SafetensorsError(`file would be ${8 + n + offset} bytes, too large`);
  return { header, order, byteLength: 8 + n + offset };
}

function allocate(n: number): Uint8Array {
  try {
    return new Uint8Array(n);
  } catch (e) {
    throw new SafetensorsError(`cannot allocate ${n} bytes for the file (write it with saveSafetensors, which streams)`, { cause: e });
  }
}

/** A safetensors file holding `entries` (bytes in memfit's storage packing) and string `metadata`. */
export function serializeSafetensors(entries: Record<string, RawTensor>, metadata?: Record<string, string>): Uint8Array {
  if (entries === null || typeof entries !== 'object') throw new InvalidArgumentError(`serializeSafetensors: entries must be an object of raw tensors, got ${describeValue(entries)}`);
  const list = Object.entries(entries);
  const layout = planSafetensors(list, metadata);
  const out = allocate(layout.byteLength);
  out.set(layout.header);
  const byName = new Map(list);
  for (const { name, begin, end } of layout.order) {
    const bytes = byName.get(name)!.bytes;
    if (!(bytes instanceof Uint8Array)) throw new InvalidArgumentError(`tensor '${name}': bytes must be a Uint8Array`);
    if (bytes.length !== end - begin) throw new InvalidArgumentError(`tensor '${name}': ${byName.get(name)!.dtype} shape ${fmtShape(byName.get(name)!.shape)} takes ${end - begin} bytes, got ${bytes.length}`);
    out.set(bytes, layout.header.length + begin);
  }
  return out;
}

// ---- tensors -----------------------------------------------------------------------------------------

/**
 * The bytes of a tensor in storage packing, from its view offset: a sub-byte view that starts inside a
 * byte is compacted first (t.to(t.dtype) copies codes exactly), and the padding bits after the last code
 * are cleared, as pack() leaves them, so that a view's bytes never carry its neighbours' codes.
 */
export async function readTensorBytes(t: Tensor): Promise<Uint8Array> {
  if (!(t instanceof Tensor)) throw new InvalidArgumentError(`expected a Tensor, got ${t === null ? 'null' : typeof t}`);
  const bits = dtypeBits(t.dtype);
  const n = t.size;
  const length = byteSize(n, bits);
  const aligned = (t.offset * bits) % 8 === 0;
  const src = aligned ? t : t.to(t.dtype);
  try {
    const bytes = await src.backend.read(src.storage, (src.offset * bits) / 8, length);
    const used = (n * bits) % 8;
    if (used !== 0) bytes[length - 1] &= (1 << used) - 1;
    return bytes;
  } finally {
    if (src !== t) src.dispose();
  }
}

/** A safetensors file of `tensors` (read back from their backends) and string `metadata`. */
export async function tensorsToSafetensors(tensors: Record<string, Tensor>, metadata?: Record<string, string>): Promise<Uint8Array> {
  if (tensors === null || typeof tensors !== 'object') throw new InvalidArgumentError(`tensorsToSafetensors: tensors must be an object of Tensors, got ${describeValue(tensors)}`);
  const list = Object.entries(tensors);
  for (const [name, t] of list) if (!(t instanceof Tensor)) throw new InvalidArgumentError(`tensor '${name}' is not a Tensor`);
  const layout = planSafetensors(list, metadata);
  const out = allocate(layout.byteLength);
  out.set(layout.header);
  const byName = new Map(list);
  for (const { name, begin } of layout.order) out.set(await readTensorBytes(byName.get(name)!), layout.header.length + begin);
  return out;
}

/** Refuses (InvalidArgumentError, before any work) a `backend` argument of `fn` that is not a Backend. */
export function checkBackend(backend: unknown, fn: string): asserts backend is Backend {
  const b = backend as Partial<Backend> | null;
  if (b === null || typeof b !== 'object' || typeof b.alloc !== 'function' || typeof b.write !== 'function') {
    throw new InvalidArgumentError(`${fn}: backend must be a Backend (from createBackend()), got ${describeValue(backend)}`);
  }
}

/** Checks the options of `fn` (safetensorsToTensors / loadSafetensors): known keys only. */
export function checkLoadOptions(options: LoadOptions | undefined, fn: string): LoadOptions {
  return checkOptions(options, ['category'], fn);
}

/** Options of safetensorsToTensors / loadSafetensors. */
export interface LoadOptions {
  /** Memory category of the new tensors (default 'parameter'). */
  category?: Category;
}

/** Throws SafetensorsError naming the first tensor memfit cannot hold, before anything is allocated. */
export function checkSupported(tensors: ReadonlyMap<string, SafetensorsTensorInfo>): void {
  const bad = [...tensors].filter(([, t]) => !t.memfit);
  if (bad.length) {
    const [name, t] = bad[0];
    const more = bad.length > 1 ? ` (and ${bad.length - 1} more: ${bad.slice(1, 6).map(([n]) => `'${n}'`).join(', ')}${bad.length > 6 ? ', ...' : ''})` : '';
    throw new SafetensorsError(`${t.unsupported} for tensor '${name}'${more}`, { tensor: name });
  }
}

/** A new tensor on `backend` holding `bytes` (labelled with its name). */
export function rawToTensor(backend: Backend, name: string, raw: RawTensor, category: Category): Tensor {
  const t = Tensor.empty(backend, raw.shape, { dtype: raw.dtype, category, label: name });
  try {
    if (raw.bytes.length) backend.write(t.storage, raw.bytes);
  } catch (e) {
    t.dispose();
    throw e;
  }
  return t;
}

/** Tensors on `backend` from a safetensors file (a null-prototype record), plus its metadata. */
export function safetensorsToTensors(bytes: Uint8Array, backend: Backend, options?: LoadOptions): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  checkBackend(backend, 'safetensorsToTensors');
  options = checkLoadOptions(options, 'safetensorsToTensors');
  const parsed = parseSafetensors(bytes);
  checkSupported(parsed.tensors);
  const tensors = Object.create(null) as Record<string, Tensor>;
  try {
    for (const [name, t] of parsed.tensors) tensors[name] = rawToTensor(backend, name, toRawTensor(name, t), options.category ?? 'parameter');
  } catch (e) {
    for (const t of Object.values(tensors)) t.dispose();
    throw e;
  }
  return { tensors, metadata: parsed.metadata };
}
