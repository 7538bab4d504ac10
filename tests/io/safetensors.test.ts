import { test } from 'uvu';
import { mulberry32 as rng } from '../helpers/values.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gpuBackend, type WebGPUBackend } from '../helpers/backends.js';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { storageBytes } from '../../src/backend/storage.js';
import type { TensorDType } from '../../src/backend/backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { decode } from '../../src/dtype/encode.js';
import { formatOf } from '../../src/dtype/formats.js';
import { pack, unpack } from '../../src/dtype/pack.js';
import {
  MAX_HEADER_BYTES, MEMFIT_DTYPES_KEY, SafetensorsError, parseSafetensors, parseSafetensorsHeader, readTensorBytes,
  safetensorsToTensors, serializeSafetensors, tensorsToSafetensors, toRawTensor, type RawTensor,
} from '../../src/io/safetensors.js';
import { loadSafetensors, readSafetensorsHeader, saveSafetensors } from '../../src/io/safetensors_file.js';
import { invalid, rejectsInvalid } from '../helpers/errors.js';

const w = new WasmBackend();
const FIXTURES = new URL('../fixtures/io/', import.meta.url);
const fixture = (name: string): Uint8Array => new Uint8Array(readFileSync(new URL(name, FIXTURES)));

const DTYPES: TensorDType[] = [
  'float32', 'float16', 'bfloat16', 'float8_e4m3fn', 'float8_e5m2', 'float8_e8m0fnu', 'float6_e3m2fn', 'float6_e2m3fn', 'float4_e2m1fn', 'int32',
];


const bitsOf = (d: TensorDType): number => (d === 'int32' ? 32 : formatOf(d).bits);
const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Random storage bytes of a tensor: every code (NaN codes included), sub-byte padding bits zero as pack() leaves them. */
function randomBytes(dtype: TensorDType, n: number, rand: () => number): Uint8Array {
  const bits = bitsOf(dtype);
  if (bits < 8) return pack(Uint8Array.from({ length: n }, () => Math.floor(rand() * 2 ** bits)), dtype);
  return Uint8Array.from({ length: storageBytes(dtype, n) }, () => Math.floor(rand() * 256));
}

/** A file from a header (object or exact JSON text) and a data buffer; the JSON is space-padded to 8 unless `pad` is false. */
function file(header: unknown, data: Uint8Array = new Uint8Array(0), pad = true): Uint8Array {
  let json = typeof header === 'string' ? header : JSON.stringify(header);
  let bytes = new TextEncoder().encode(json);
  if (pad && bytes.length % 8) bytes = new TextEncoder().encode((json += ' '.repeat(8 - (bytes.length % 8))));
  const out = new Uint8Array(8 + bytes.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(bytes.length), true);
  out.set(bytes, 8);
  out.set(data, 8 + bytes.length);
  return out;
}

function withLength(n: bigint, rest: Uint8Array = new TextEncoder().encode('{}')): Uint8Array {
  const out = new Uint8Array(8 + rest.length);
  new DataView(out.buffer).setBigUint64(0, n, true);
  out.set(rest, 8);
  return out;
}

/** Runs fn, which must throw a SafetensorsError (not a RangeError / TypeError / other); checks the message. */
function rejects(fn: () => unknown, re?: RegExp, what = ''): SafetensorsError {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof SafetensorsError)) assert.unreachable(`${what}: expected a SafetensorsError, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    if (re) assert.match(e.message, re, what);
    return e;
  }
  return assert.unreachable(`${what}: expected a SafetensorsError, parsed fine`);
}

async function rejectsAsync(p: Promise<unknown>, re?: RegExp): Promise<SafetensorsError> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof SafetensorsError)) assert.unreachable(`expected a SafetensorsError, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    if (re) assert.match(e.message, re);
    return e;
  }
  return assert.unreachable('expected a SafetensorsError');
}

// ---- round trips ---------------------------------------------------------------------------------

test('bytes round trip: every dtype, many shapes (odd sub-byte lengths, scalars, empty), bit-exact', () => {
  const rand = rng(1);
  const shapes = [[], [0], [1], [2], [3], [5], [7], [13], [3, 5], [2, 4], [4, 3, 2], [2, 0, 3]];
  const entries: Record<string, RawTensor> = {};
  for (const dtype of DTYPES) for (const shape of shapes) entries[`${dtype}/${shape.join('x')}`] = { dtype, shape, bytes: randomBytes(dtype, numel(shape), rand) };
  const bytes = serializeSafetensors(entries);
  const back = parseSafetensors(bytes);
  assert.is(back.tensors.size, Object.keys(entries).length);
  for (const [name, e] of Object.entries(entries)) {
    const raw = toRawTensor(name, back.tensors.get(name)!);
    assert.is(raw.dtype, e.dtype, name);
    assert.equal([...raw.shape], [...e.shape], name);
    assert.equal([...raw.bytes], [...e.bytes], name);
  }
  // Header: 8-byte aligned, space padded; tensors tile the data buffer in the reference's order.
  const h = parseSafetensorsHeader(bytes);
  assert.is((h.headerByteLength - 8) % 8, 0);
  assert.is(bytes[h.headerByteLength - 1] === 0x20 || bytes[h.headerByteLength - 1] === 0x7d, true);
  assert.is(back.tensors.get('float32/3x5')!.dataOffsets[0] % 4, 0, 'float32 data 4-byte aligned');
});

test('U8 storage of fp4/fp6/e8m0: documented shapes and the memfit.dtypes key', () => {
  const entries: Record<string, RawTensor> = {
    a: { dtype: 'float4_e2m1fn', shape: [3, 4], bytes: new Uint8Array(6) },
    b: { dtype: 'float4_e2m1fn', shape: [3, 5], bytes: new Uint8Array(8) },
    c: { dtype: 'float6_e2m3fn', shape: [2, 8], bytes: new Uint8Array(12) },
    d: { dtype: 'float6_e3m2fn', shape: [3, 3], bytes: new Uint8Array(7) },
    e: { dtype: 'float8_e8m0fnu', shape: [2, 3], bytes: new Uint8Array(6) },
    f: { dtype: 'float4_e2m1fn', shape: [], bytes: new Uint8Array(1) },
  };
  const bytes = serializeSafetensors(entries, { x: 'y' });
  const p = parseSafetensors(bytes);
  const shapes = Object.fromEntries([...p.tensors].map(([n, t]) => [n, [t.dtype, t.shape.join('x')]]));
  assert.equal(shapes, { a: ['U8', '3x2'], b: ['U8', '8'], c: ['U8', '2x6'], d: ['U8', '7'], e: ['U8', '2x3'], f: ['U8', '1'] });
  assert.equal({ ...p.metadata }, { x: 'y' }, 'the memfit key is not user metadata');
  const raw = new TextDecoder().decode(bytes.subarray(8, parseSafetensorsHeader(bytes).headerByteLength));
  const key = JSON.parse(JSON.parse(raw).__metadata__[MEMFIT_DTYPES_KEY]);
  assert.equal(key.c, { dtype: 'float6_e2m3fn', shape: [2, 8] });
  assert.throws(() => serializeSafetensors({}, { [MEMFIT_DTYPES_KEY]: '{}' }), /reserved/);
});

/** The storage bytes of elements start..end of `bytes` (n elements of dtype), computed without memfit's tensor code. */
function sliceBytes(dtype: TensorDType, bytes: Uint8Array, n: number, start: number, end: number): Uint8Array {
  const bits = bitsOf(dtype);
  if (bits < 8) return pack(unpack(bytes, dtype, n).subarray(start, end), dtype);
  return bytes.slice((start * bits) / 8, (end * bits) / 8);
}

test('tensor round trip on wasm: every dtype, odd lengths, NaN codes, views at odd offsets', async () => {
  const rand = rng(2);
  for (const dtype of DTYPES) {
    for (const n of [1, 3, 7, 13, 64]) {
      const bytes = randomBytes(dtype, n, rand);
      const t = Tensor.empty(w, [n], { dtype });
      w.write(t.storage, bytes);
      const ranges: Record<string, [number, number]> = { whole: [0, n], view1: [1, n], view2: [Math.min(2, n), n], view4: [Math.min(4, n), n], mid: [Math.floor(n / 3), Math.ceil((2 * n) / 3)] };
      const views = Object.fromEntries(Object.entries(ranges).map(([k, [a, b]]) => [k, a === 0 && b === n ? t : t.slice(a, b)]));
      const file = await tensorsToSafetensors(views, { n: String(n) });
      const back = safetensorsToTensors(file, w);
      assert.equal({ ...back.metadata }, { n: String(n) });
      for (const [name, [a, b]] of Object.entries(ranges)) {
        const got = back.tensors[name];
        assert.is(got.dtype, dtype);
        assert.equal([...got.shape], [b - a]);
        assert.is(got.category, 'parameter');
        const expected = sliceBytes(dtype, bytes, n, a, b);
        assert.equal([...(await w.read(got.storage, 0, expected.length))], [...expected], `${dtype} n=${n} ${name}`);
        if (dtype !== 'int32') {
          // The same codes, so the same values (NaN compared as NaN).
          const f = formatOf(dtype);
          const codes = f.bits < 8 ? unpack(expected, dtype, b - a) : f.codeBytes === 4 ? new Uint32Array(expected.slice().buffer) : f.codeBytes === 2 ? new Uint16Array(expected.slice().buffer) : expected;
          assert.equal(Array.from(await got.toArray(), String), Array.from(decode(codes, dtype), String), `${dtype} n=${n} ${name} values`);
        }
        got.dispose();
      }
      for (const v of Object.values(views)) if (v !== t) v.dispose();
      t.dispose();
    }
  }
});

test('readTensorBytes: a sub-byte view at an odd offset gives its own codes, packed, padding cleared', async () => {
  const codes = Uint8Array.from({ length: 13 }, (_, i) => (i * 5 + 3) % 16);
  const t = Tensor.empty(w, [13], { dtype: 'fp4' });
  w.write(t.storage, pack(codes, 'fp4'));
  const v = t.slice(3, 8);
  assert.equal([...(await readTensorBytes(v))], [...pack(codes.subarray(3, 8), 'fp4')]);
  const u = t.slice(2, 7); // byte-aligned start, odd length: the neighbour's nibble must be cleared
  assert.equal([...(await readTensorBytes(u))], [...pack(codes.subarray(2, 7), 'fp4')]);
  v.dispose();
  u.dispose();
  t.dispose();
  const c6 = Uint8Array.from({ length: 11 }, (_, i) => (i * 11 + 1) % 64);
  const s = Tensor.empty(w, [11], { dtype: 'e2m3' });
  w.write(s.storage, pack(c6, 'e2m3'));
  for (const [a, b] of [[1, 6], [4, 9], [4, 11], [0, 5]]) {
    const x = s.slice(a, b);
    assert.equal([...(await readTensorBytes(x))], [...pack(c6.subarray(a, b), 'e2m3')], `fp6 ${a}..${b}`);
    x.dispose();
  }
  s.dispose();
});

test('metadata round trip: unicode, escapes, empty strings, __proto__ as a key and as a tensor name', () => {
  const meta: Record<string, string> = { format: 'pt', '': '', 'quote"back\\slash': 'tab\tnew\nline\u0001', 'ünï🦀': '语言' };
  Object.defineProperty(meta, '__proto__', { value: 'not a prototype', enumerable: true });
  const t = { dtype: 'float32' as const, shape: [1], bytes: new Uint8Array(4) };
  const entries: Record<string, RawTensor> = Object.create(null);
  entries['__proto__'] = t;
  entries['a.b/c:d 🦀'] = t;
  const p = parseSafetensors(serializeSafetensors(entries, meta));
  assert.equal(Object.entries(p.metadata).sort(), Object.entries(meta).sort());
  assert.is(Object.getPrototypeOf(p.metadata), null);
  assert.equal([...p.tensors.keys()].sort(), ['__proto__', 'a.b/c:d 🦀']);
  const back = safetensorsToTensors(serializeSafetensors(entries), w);
  assert.ok(Object.hasOwn(back.tensors, '__proto__'));
  assert.instance(back.tensors['__proto__'], Tensor);
  for (const x of Object.values(back.tensors)) x.dispose();
  assert.throws(() => serializeSafetensors({ __metadata__: t } as Record<string, RawTensor>), /__metadata__/);
  assert.throws(() => serializeSafetensors({ ['\ud800']: t }), /surrogate/);
  assert.throws(() => serializeSafetensors({ a: t }, { k: 1 as unknown as string }), /string/);
  assert.throws(() => serializeSafetensors({ a: { ...t, bytes: new Uint8Array(3) } }), /4 bytes, got 3/);
});

// ---- the reference library's files ------------------------------------------------------------------

const idx = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const u16le = (codes: number[]): Uint8Array => new Uint8Array(Uint16Array.from(codes).buffer);

/** float16 codes of exactly representable normal values (or 0), built by hand: sign, exponent, 10-bit fraction. */
function f16Codes(values: number[]): Uint8Array {
  return u16le(values.map((v) => {
    if (v === 0) return 0;
    const a = Math.abs(v);
    const e = Math.floor(Math.log2(a));
    return (v < 0 ? 0x8000 : 0) | ((e + 15) << 10) | Math.round((a / 2 ** e - 1) * 1024);
  }));
}

/** reference.safetensors, rebuilt from the formulas in scripts/make-safetensors-fixtures.py. */
function referenceEntries(): Record<string, RawTensor> {
  return {
    f32: { dtype: 'float32', shape: [3, 4], bytes: new Uint8Array(Float32Array.from(idx(12), (i) => i * 0.5 - 2).buffer) },
    f16: { dtype: 'float16', shape: [16], bytes: f16Codes(idx(16).map((i) => (i - 8) * 0.25)) },
    f16_codes: { dtype: 'float16', shape: [8, 8], bytes: u16le(idx(64).map((i) => (i * 4099 + 7) % 65536)) },
    bf16_codes: { dtype: 'bfloat16', shape: [2, 3, 8], bytes: u16le(idx(48).map((i) => (i * 40503 + 11) % 65536)) },
    e4m3: { dtype: 'float8_e4m3fn', shape: [16, 16], bytes: Uint8Array.from(idx(256)) },
    e5m2: { dtype: 'float8_e5m2', shape: [256], bytes: Uint8Array.from(idx(256), (i) => 255 - i) },
    i32: { dtype: 'int32', shape: [2, 5], bytes: new Uint8Array(Int32Array.from(idx(10), (i) => (i - 5) * 123457).buffer) },
    scalar: { dtype: 'float32', shape: [], bytes: new Uint8Array(Float32Array.of(3.25).buffer) },
    empty: { dtype: 'float32', shape: [0, 3], bytes: new Uint8Array(0) },
  };
}

test('reads reference.safetensors (written by the safetensors library): values and codes', async () => {
  const bytes = fixture('reference.safetensors');
  const p = parseSafetensors(bytes);
  assert.equal({ ...p.metadata }, { format: 'pt' });
  const expected = referenceEntries();
  assert.equal([...p.tensors.keys()].sort(), Object.keys(expected).sort());
  for (const [name, e] of Object.entries(expected)) {
    const raw = toRawTensor(name, p.tensors.get(name)!);
    assert.is(raw.dtype, e.dtype, name);
    assert.equal([...raw.shape], [...e.shape], name);
    assert.equal([...raw.bytes], [...e.bytes], name);
  }
  const { tensors } = safetensorsToTensors(bytes, w, { category: 'data' });
  assert.equal(Array.from(await tensors.f32.toArray()), idx(12).map((i) => i * 0.5 - 2));
  assert.equal(Array.from(await tensors.f16.toArray()), idx(16).map((i) => (i - 8) * 0.25));
  assert.equal(Array.from(await tensors.i32.toArray()), idx(10).map((i) => (i - 5) * 123457));
  assert.equal(Array.from(await tensors.scalar.toArray()), [3.25]);
  assert.equal([...tensors.empty.shape], [0, 3]);
  assert.equal(Array.from(await tensors.e4m3.toArray(), String), Array.from(decode(Uint8Array.from(idx(256)), 'e4m3'), String));
  assert.is(tensors.f32.category, 'data');
  for (const t of Object.values(tensors)) t.dispose();
});

test('our writer is byte-identical to the reference writer (same tensors, one metadata key)', () => {
  assert.equal([...serializeSafetensors(referenceEntries(), { format: 'pt' })], [...fixture('reference.safetensors')]);
  assert.equal([...serializeSafetensors(memfitU8Entries())], [...fixture('memfit-u8.safetensors')]);
  assert.equal([...serializeSafetensors({})], [...fixture('nothing.safetensors')]);
  const note = 'memfit fixture: "quoted", \\ backslash, tab\t, ünïcödé, 🦀';
  assert.equal([...serializeSafetensors({}, { note })], [...fixture('empty.safetensors')]);
  assert.equal({ ...parseSafetensors(fixture('empty.safetensors')).metadata }, { note });
});

function memfitU8Entries(): Record<string, RawTensor> {
  const codes = (n: number, f: (i: number) => number) => Uint8Array.from(idx(n), f);
  return {
    fp4_odd: { dtype: 'float4_e2m1fn', shape: [7], bytes: pack(codes(7, (i) => (i * 5) % 16), 'fp4') },
    fp6: { dtype: 'float6_e2m3fn', shape: [2, 4], bytes: pack(codes(8, (i) => (i * 11 + 1) % 64), 'e2m3') },
    fp6_e3m2: { dtype: 'float6_e3m2fn', shape: [5], bytes: pack(codes(5, (i) => (i * 13 + 5) % 64), 'e3m2') },
    scales: { dtype: 'float8_e8m0fnu', shape: [3], bytes: codes(3, (i) => 125 + i) },
  };
}

test('reads memfit-u8.safetensors (packed independently in Python): codes, logical shapes, values', async () => {
  const p = parseSafetensors(fixture('memfit-u8.safetensors'));
  assert.equal({ ...p.metadata }, {});
  const fp6 = toRawTensor('fp6', p.tensors.get('fp6')!);
  assert.is(fp6.dtype, 'float6_e2m3fn');
  assert.equal([...fp6.shape], [2, 4]);
  assert.equal([...unpack(fp6.bytes, 'e2m3', 8)], idx(8).map((i) => (i * 11 + 1) % 64));
  const fp4 = toRawTensor('fp4_odd', p.tensors.get('fp4_odd')!);
  assert.equal([...unpack(fp4.bytes, 'fp4', 7)], idx(7).map((i) => (i * 5) % 16));
  assert.equal([...unpack(toRawTensor('fp6_e3m2', p.tensors.get('fp6_e3m2')!).bytes, 'e3m2', 5)], idx(5).map((i) => (i * 13 + 5) % 64));
  const { tensors } = safetensorsToTensors(fixture('memfit-u8.safetensors'), w);
  assert.equal(Array.from(await tensors.scales.toArray()), [0.25, 0.5, 1]);
  assert.equal([...tensors.fp6.shape], [2, 4]);
  for (const t of Object.values(tensors)) t.dispose();
});

test('reads subbyte.safetensors: native F4 (float4_e2m1fn_x2 bytes) and F8_E8M0', async () => {
  const p = parseSafetensors(fixture('subbyte.safetensors'));
  const fp4 = toRawTensor('fp4', p.tensors.get('fp4')!);
  assert.is(fp4.dtype, 'float4_e2m1fn');
  assert.equal([...fp4.shape], [3, 8]);
  const stored = idx(12).map((j) => (j * 37 + 11) % 256);
  assert.equal([...fp4.bytes], stored);
  // Element 2j is the low nibble of byte j, as in PyTorch's float4_e2m1fn_x2.
  assert.equal([...unpack(fp4.bytes, 'fp4', 24)], stored.flatMap((b) => [b & 15, b >> 4]));
  const e8 = toRawTensor('e8m0', p.tensors.get('e8m0')!);
  assert.is(e8.dtype, 'float8_e8m0fnu');
  assert.equal([...e8.bytes], idx(40).map((i) => (i * 7 + 3) % 256));
  const { tensors } = safetensorsToTensors(fixture('subbyte.safetensors'), w);
  assert.equal(Array.from(await tensors.e8m0.toArray(), String), idx(40).map((i) => String((i * 7 + 3) % 256 === 255 ? NaN : 2 ** ((i * 7 + 3) % 256 - 127))));
  for (const t of Object.values(tensors)) t.dispose();
});

test('unsupported dtypes parse for inspection, but do not become tensors; plain U8 is uint8', () => {
  const bytes = fixture('unsupported.safetensors');
  const p = parseSafetensors(bytes);
  assert.equal(Object.fromEntries([...p.tensors].map(([n, t]) => [n, [t.dtype, t.shape]])), { i64: ['I64', [2]], f64: ['F64', [3]], raw: ['U8', [4]], flags: ['BOOL', [2]] });
  const f64 = p.tensors.get('f64')!;
  assert.is(f64.memfit, null);
  assert.equal(Array.from(new Float64Array(f64.bytes.slice().buffer)), [0.5, 1.5, 2.5]);
  assert.equal([...p.tensors.get('raw')!.bytes], [0, 3, 6, 9]);
  rejects(() => toRawTensor('f64', f64), /^unsupported dtype F64 for tensor 'f64'$/);
  const raw = toRawTensor('raw', p.tensors.get('raw')!); // U8 without memfit metadata: uint8 bytes (8-bit optimizer codes)
  assert.is(raw.dtype, 'uint8');
  assert.equal([...raw.bytes], [0, 3, 6, 9]);
  const before = w.memory.memoryAllocated();
  const e = rejects(() => safetensorsToTensors(bytes, w), /^unsupported dtype I64 for tensor 'i64' \(and 2 more: 'f64', 'flags'\)$/);
  assert.is(e.tensor, 'i64');
  assert.is(w.memory.memoryAllocated(), before, 'nothing allocated');
  // Native F6: the bit order is not defined by safetensors, so memfit refuses to guess.
  const f6 = parseSafetensors(file({ x: { dtype: 'F6_E2M3', shape: [4], data_offsets: [0, 3] } }, new Uint8Array(3)));
  rejects(() => toRawTensor('x', f6.tensors.get('x')!), /F6_E2M3 .*bit order/);
});

// ---- corrupted files -------------------------------------------------------------------------------

const F32x2 = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };

test('every validation error is a SafetensorsError naming the problem and the tensor', () => {
  const d8 = new Uint8Array(8);
  const cases: Array<[Uint8Array, RegExp]> = [
    [new Uint8Array(0), /shorter than the 8-byte header length/],
    [new Uint8Array(7), /shorter than the 8-byte header length/],
    [withLength(100_000_001n), /over the 100000000-byte limit/],
    [withLength(2n ** 53n), /over the 100000000-byte limit/],
    [withLength(2n ** 64n - 1n), /18446744073709551615 bytes is over/],
    [withLength(100_000_000n), /runs past the end of the 10-byte file/],
    [withLength(3n), /runs past the end/],
    [withLength(0n, new Uint8Array(0)), /does not start with '\{'/],
    [file(' {}'), /does not start with '\{'/],
    [file('\ufeff{}'), /does not start with '\{'/],
    [file('[]'), /does not start with/],
    [(() => { const f = file('{"a":1}'); f[10] = 0xff; return f; })(), /not valid UTF-8/],
    [file('{"a":'), /not valid JSON: unexpected end/],
    [file('{}x'), /trailing characters/],
    [file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},}'), /expected a string key/],
    [file('{"a":"\u0001"}'), /control character/],
    [file('{"\\ud800":{}}'), /unpaired surrogate/],
    [file('{"a":1}'), /tensor 'a': entry must be an object/],
    [file({ a: { shape: [2], data_offsets: [0, 8] } }, d8), /tensor 'a': dtype must be a string, got nothing/],
    [file({ a: { ...F32x2, dtype: 'F31' } }, d8), /tensor 'a': unknown dtype "F31"/],
    [file({ a: { ...F32x2, dtype: 'constructor' } }, d8), /unknown dtype "constructor"/],
    [file({ a: { ...F32x2, shape: [-2] } }, d8), /tensor 'a': shape must be an array of non-negative integers/],
    [file({ a: { ...F32x2, shape: [2.5] } }, d8), /shape must be/],
    [file({ a: { ...F32x2, shape: 2 } }, d8), /shape must be/],
    [file('{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}', d8), /shape must be .*got \[2\.0\]/],
    [file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[-0,8]}}', d8), /data_offsets must be/],
    [file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8e0]}}', d8), /data_offsets must be/],
    [file('{"a":{"dtype":"F32","shape":[9007199254740993],"data_offsets":[0,8]}}', d8), /shape must be/],
    [file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,1e400]}}', d8), /data_offsets must be/],
    [file({ a: { ...F32x2, data_offsets: [0] } }, d8), /tensor 'a': data_offsets must be \[begin, end\]/],
    [file({ a: { ...F32x2, data_offsets: [0, 8, 9] } }, d8), /data_offsets must be/],
    [file({ a: { ...F32x2, data_offsets: [8, 0] } }, d8), /tensor 'a': data_offsets \[8, 0\] end before they begin/],
    [file({ a: { ...F32x2, shape: [3] } }, d8), /tensor 'a': shape \[3\] of F32 needs 12 bytes, data_offsets \[0, 8\] hold 8/],
    [file({ a: { ...F32x2, shape: [4194304, 4194304, 4194304] } }, d8), /tensor 'a': .* too large/],
    [file({ a: { dtype: 'F4', shape: [3], data_offsets: [0, 2] } }, new Uint8Array(2)), /tensor 'a': 3 F4 elements of 4 bits do not end on a byte boundary/],
    [file({ a: F32x2 }, new Uint8Array(7)), /tensor 'a': data_offsets \[0, 8\] run past the end of the 7-byte data buffer \(truncated file\?\)/],
    [file({ a: F32x2 }, new Uint8Array(9)), /the last 1 bytes belong to no tensor/],
    [file({ a: F32x2, b: { ...F32x2, data_offsets: [4, 12] } }, new Uint8Array(12)), /tensor 'b': data_offsets \[4, 12\] overlap tensor 'a'/],
    [file({ a: F32x2, b: F32x2 }, new Uint8Array(8)), /tensor '[ab]': data_offsets \[0, 8\] overlap tensor '[ab]'/],
    [file({ a: F32x2, b: { ...F32x2, data_offsets: [12, 20] } }, new Uint8Array(20)), /tensor 'b': .* leave bytes 8\.\.12 .* covered by no tensor/],
    [file({ a: { ...F32x2, data_offsets: [4, 12] } }, new Uint8Array(12)), /tensor 'a': .* leave bytes 0\.\.4/],
    [file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', d8), /duplicate key "a"/],
    [file('{"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}', d8), /duplicate key "dtype"/],
    [file({ __metadata__: { k: 1 }, a: F32x2 }, d8), /__metadata__ value of "k" must be a string, got 1/],
    [file({ __metadata__: ['x'], a: F32x2 }, d8), /__metadata__ must be an object of strings/],
    [file({ __metadata__: { [MEMFIT_DTYPES_KEY]: 'nope' }, a: F32x2 }, d8), /"memfit.dtypes" is not valid JSON/],
    [file({ __metadata__: { [MEMFIT_DTYPES_KEY]: '[]' } }), /"memfit.dtypes" must be a JSON object/],
    [file({ __metadata__: { [MEMFIT_DTYPES_KEY]: '{"a":{"dtype":"float32","shape":[2]}}' }, a: F32x2 }, d8), /tensor 'a': .*dtype must be one of/],
    [file({ __metadata__: { [MEMFIT_DTYPES_KEY]: '{"a":{"dtype":"fp4","shape":[2]}}' }, a: F32x2 }, d8), /tensor 'a': .*stored as F32, not U8/],
    [file({ __metadata__: { [MEMFIT_DTYPES_KEY]: '{"a":{"dtype":"fp4","shape":[3]}}' }, a: { dtype: 'U8', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)), /tensor 'a': float4_e2m1fn shape \[3\] .* needs 2 bytes, the file holds 1/],
    [file({ __metadata__: { [MEMFIT_DTYPES_KEY]: '{"b":{"dtype":"fp4","shape":[2]}}' } }), /names tensor 'b', which the file does not hold/],
    [file({ __metadata__: { [MEMFIT_DTYPES_KEY]: '{"a":{"dtype":"fp4","shape":[-1]}}' }, a: { dtype: 'U8', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)), /shape must be/],
  ];
  for (const [bytes, re] of cases) rejects(() => parseSafetensors(bytes), re, re.source);
  // Zero-size tensors may share an offset; __metadata__: null is "no metadata" (as the reference reads it).
  const ok = parseSafetensors(file({ __metadata__: null, a: { dtype: 'U8', shape: [0], data_offsets: [0, 0] }, b: { dtype: 'U8', shape: [0], data_offsets: [0, 0] } }));
  assert.is(ok.tensors.size, 2);
  // Extra fields in an entry are ignored, as the reference ignores them; whitespace after the JSON is fine.
  assert.is(parseSafetensors(file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":[1]}}\n\t', d8)).tensors.size, 1);
});

test('nesting deep enough to overflow a recursive parser is a SafetensorsError', () => {
  rejects(() => parseSafetensors(file(`{"a":${'['.repeat(200_000)}`)), /nesting deeper than/);
  rejects(() => parseSafetensors(file(`{"__metadata__":{"${MEMFIT_DTYPES_KEY}":${JSON.stringify('{"a":' + '['.repeat(100_000))}}}`)), /nesting deeper than/);
});

test('every prefix of small files is a SafetensorsError, never another error', () => {
  const files = [fixture('reference.safetensors'), fixture('memfit-u8.safetensors'), fixture('subbyte.safetensors'), fixture('nothing.safetensors'), fixture('empty.safetensors')];
  for (const f of files) {
    parseSafetensors(f);
    for (let n = 0; n < f.length; n++) rejects(() => parseSafetensors(f.subarray(0, n)), undefined, `prefix ${n}`);
    // Bytes appended after the data are not covered by any tensor.
    const longer = new Uint8Array(f.length + 1);
    longer.set(f);
    rejects(() => parseSafetensors(longer), /belong to no tensor/);
  }
});

test('fuzz: random byte flips in the header only ever give a SafetensorsError or a valid parse', () => {
  const rand = rng(42);
  const sources = [fixture('reference.safetensors'), fixture('memfit-u8.safetensors'), fixture('subbyte.safetensors'), fixture('unsupported.safetensors')];
  let parsed = 0, rejected = 0;
  for (let iter = 0; iter < 4000; iter++) {
    const src = sources[iter % sources.length];
    const f = src.slice();
    const headerEnd = parseSafetensorsHeader(src).headerByteLength;
    const flips = 1 + Math.floor(rand() * 3);
    for (let k = 0; k < flips; k++) {
      const at = Math.floor(rand() * headerEnd);
      // Mostly plausible JSON characters (digits, quotes, brackets), sometimes any byte.
      f[at] = rand() < 0.5 ? '0123456789[]{}",:-.eE '.charCodeAt(Math.floor(rand() * 22)) : Math.floor(rand() * 256);
    }
    try {
      const p = parseSafetensors(f);
      for (const t of p.tensors.values()) {
        // A successful parse only ever hands out views inside the file's data buffer.
        assert.ok(t.bytes.buffer === f.buffer && t.bytes.byteOffset >= 8 && t.bytes.byteOffset + t.bytes.length <= f.length);
        if (t.memfit) assert.is(t.bytes.length, storageBytes(t.memfit.dtype, numel(t.memfit.shape)));
      }
      parsed++;
    } catch (e) {
      if (!(e instanceof SafetensorsError)) assert.unreachable(`iteration ${iter}: ${(e as Error).name}: ${(e as Error).message}`);
      rejected++;
    }
  }
  assert.ok(rejected > 1000 && parsed > 10, `parsed ${parsed}, rejected ${rejected}`);
});

test('never reads outside the view it is given', () => {
  const f = serializeSafetensors({ a: { dtype: 'float32', shape: [4], bytes: new Uint8Array(Float32Array.of(1, 2, 3, 4).buffer) } });
  // Embedded in a larger buffer, with garbage before and after.
  const big = new Uint8Array(f.length + 64).fill(0xee);
  big.set(f, 32);
  const view = big.subarray(32, 32 + f.length);
  const p = parseSafetensors(view);
  const a = p.tensors.get('a')!;
  assert.is(a.bytes.buffer, big.buffer, 'a view, not a copy');
  assert.is(a.bytes.byteOffset + a.bytes.length, 32 + f.length);
  assert.equal(Array.from(new Float32Array(a.bytes.slice().buffer)), [1, 2, 3, 4]);
  // The bytes after the view are there in the buffer, but a truncated view must not reach for them.
  for (let cut = 1; cut <= 16; cut++) rejects(() => parseSafetensors(big.subarray(32, 32 + f.length - cut)), /run past the end|runs past the end|shorter/);
  // Header reading on a prefix: fine with the header bytes and the true file size.
  const h = parseSafetensorsHeader(f.subarray(0, parseSafetensorsHeader(f).headerByteLength), f.length);
  assert.equal(h.tensors.get('a')!.dataOffsets, [0, 16]);
  rejects(() => parseSafetensorsHeader(f.subarray(0, 20), f.length), /need the first \d+ bytes/);
  assert.is(MAX_HEADER_BYTES, 100_000_000);
});

test('webgpu: save from the GPU, load on wasm and back, bit-exact (sub-byte views, empty tensors)', async () => {
  const g: WebGPUBackend = await gpuBackend();
  try {
    const rand = rng(3);
    const src: Record<string, Tensor> = {};
    const expected: Record<string, Uint8Array> = {};
    for (const dtype of DTYPES) {
      const n = 13;
      const bytes = randomBytes(dtype, n, rand);
      const t = Tensor.empty(g, [n], { dtype });
      g.write(t.storage, bytes);
      src[dtype] = t;
      expected[dtype] = bytes;
      src[`${dtype}/view`] = t.slice(3, 10);
      expected[`${dtype}/view`] = sliceBytes(dtype, bytes, n, 3, 10);
    }
    src.empty = Tensor.empty(g, [0, 4], { dtype: 'bf16' });
    expected.empty = new Uint8Array(0);
    const onWasm = safetensorsToTensors(await tensorsToSafetensors(src), w);
    const onGpu = safetensorsToTensors(await tensorsToSafetensors(onWasm.tensors), g);
    for (const [name, bytes] of Object.entries(expected)) {
      assert.equal([...(await w.read(onWasm.tensors[name].storage, 0, bytes.length))], [...bytes], `${name} on wasm`);
      assert.equal([...(await g.read(onGpu.tensors[name].storage, 0, bytes.length))], [...bytes], `${name} back on webgpu`);
    }
    for (const t of [...Object.values(src), ...Object.values(onWasm.tensors), ...Object.values(onGpu.tensors)]) t.dispose();
  } finally {
    g.destroy();
  }
});

// ---- files -------------------------------------------------------------------------------------------

test('saveSafetensors / loadSafetensors: round trip, atomic replace, errors name the path', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'memfit-st-'));
  try {
    const path = join(dir, 'model.safetensors');
    const a = Tensor.from(w, [1, 2, 3, 4, 5, 6], [2, 3]);
    const b = Tensor.from(w, [0.5, -1, 6, 1.5, -3], [5], { dtype: 'fp4' });
    const c = Tensor.from(w, [7, -8], [2], { dtype: 'int32' });
    await saveSafetensors(path, { a, b, c }, { step: '10' });
    assert.equal([...readFileSync(path)], [...(await tensorsToSafetensors({ a, b, c }, { step: '10' }))], 'streamed file = in-memory bytes');
    const loaded = await loadSafetensors(path, w);
    assert.equal({ ...loaded.metadata }, { step: '10' });
    assert.equal(Array.from(await loaded.tensors.a.toArray()), [1, 2, 3, 4, 5, 6]);
    assert.equal(Array.from(await loaded.tensors.b.toArray()), Array.from(await b.toArray()));
    assert.is(loaded.tensors.b.dtype, 'float4_e2m1fn');
    assert.equal(Array.from(await loaded.tensors.c.toArray()), [7, -8]);
    for (const t of Object.values(loaded.tensors)) t.dispose();
    assert.equal([...(await readSafetensorsHeader(path)).tensors.keys()], ['a', 'c', 'b']);

    // A failing save (a tensor that cannot be read) leaves the previous file as it was, and no temp file.
    const before = readFileSync(path);
    const gone = Tensor.from(w, [1, 2], [2]);
    gone.dispose();
    const e = await rejectsAsync(saveSafetensors(path, { a, z: gone }), /model\.safetensors: cannot save: tensor used after dispose/);
    assert.ok(e.cause instanceof Error);
    assert.equal([...readFileSync(path)], [...before]);
    assert.equal(readdirSync(dir), ['model.safetensors']);
    // Argument errors come before any file is touched.
    try {
      await saveSafetensors(path, { __metadata__: a });
      assert.unreachable('saved a tensor named __metadata__');
    } catch (err) {
      assert.instance(err, InvalidArgumentError);
    }
    assert.equal([...readFileSync(path)], [...before]);
    await saveSafetensors(path, { a });
    assert.equal([...(await readSafetensorsHeader(path)).tensors.keys()], ['a']);
    assert.equal(readdirSync(dir), ['model.safetensors']);

    // Truncated files: a clear error naming the path; nothing left allocated.
    const full = await tensorsToSafetensors({ a, b, c });
    const mem = w.memory.memoryAllocated();
    for (const size of [0, 5, 8, 20, full.length - 12, full.length - 1]) {
      writeFileSync(path, full.subarray(0, size));
      await rejectsAsync(loadSafetensors(path, w), new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*(shorter|runs past|run past)`));
    }
    assert.is(w.memory.memoryAllocated(), mem);
    await rejectsAsync(loadSafetensors(join(dir, 'missing.safetensors'), w), /missing\.safetensors: cannot open: .*ENOENT/);
    await rejectsAsync(loadSafetensors(dir, w), /not a regular file|EISDIR/);
    writeFileSync(path, fixture('unsupported.safetensors'));
    await rejectsAsync(loadSafetensors(path, w), /model\.safetensors: unsupported dtype I64 for tensor 'i64'/);
    a.dispose();
    b.dispose();
    c.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loadSafetensors / safetensorsToTensors: bad arguments and unknown option keys are InvalidArgumentErrors naming them, before any work', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'memfit-st-'));
  try {
    const path = join(dir, 'model.safetensors');
    const a = Tensor.from(w, [1, 2], [2]);
    await saveSafetensors(path, { a });
    const mem = w.memory.memoryAllocated();
    await rejectsInvalid(loadSafetensors(path, w, { categroy: 'data' } as never), /loadSafetensors: unknown option "categroy"/);
    await rejectsInvalid(loadSafetensors(path, null as never), /loadSafetensors: backend must be a Backend .*got null/);
    await rejectsInvalid(loadSafetensors(path, {} as never), /loadSafetensors: backend must be a Backend .*got an object/);
    await rejectsInvalid(loadSafetensors(42 as never, w), /loadSafetensors: path must be a non-empty string, got 42/);
    await rejectsInvalid(loadSafetensors('', w), /loadSafetensors: path must be a non-empty string/);
    await rejectsInvalid(readSafetensorsHeader(undefined as never), /readSafetensorsHeader: path must be a non-empty string, got undefined/);
    const bytes = await tensorsToSafetensors({ a });
    invalid(() => safetensorsToTensors(bytes, w, { categroy: 'data' } as never), /safetensorsToTensors: unknown option "categroy"/);
    invalid(() => safetensorsToTensors(bytes, null as never), /safetensorsToTensors: backend must be a Backend/);
    assert.is(w.memory.memoryAllocated(), mem, 'nothing allocated');
    const ok = await loadSafetensors(path, w, { category: 'data' });
    assert.equal(Array.from(await ok.tensors.a.toArray()), [1, 2]);
    ok.tensors.a.dispose();
    a.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
