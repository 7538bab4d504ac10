// memfit's model-file tools (src/io/convert_model.ts, convert_model_file.ts): conversions equal PyTorch's
// (fixtures made with it), round trips are bit-exact, MX blocks equal mxQuantize, statistics equal a
// brute-force count, selection and bad input give clear errors, and a failed write loses nothing.
import { mulberry32 as rng } from '../helpers/values.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode, encode } from '../../src/dtype/encode.js';
import { finfo } from '../../src/dtype/finfo.js';
import { mxDequantize, mxQuantize } from '../../src/dtype/mx.js';
import { unpack } from '../../src/dtype/pack.js';
import { formatOf, type DType } from '../../src/dtype/formats.js';
import {
  MEMFIT_DTYPES_KEY, SafetensorsError, parseSafetensors, serializeSafetensors, toRawTensor, type RawTensor,
} from '../../src/io/safetensors.js';
import {
  CHUNK_ELEMENTS, CONVERSION_KEY, ConvertError, STAT_DTYPES, convertSafetensorsBytes, fp8Scale, inspectSafetensorsBytes, planConversion,
  resolveTarget, type ByteSink, type ConvertModelOptions, type ConversionMetadata,
} from '../../src/io/convert_model.js';
import { convertSafetensors, inspectSafetensors, memfitVersion } from '../../src/io/convert_model_file.js';
import { InvalidArgumentError } from '../../src/errors.js';

const FIXTURES = new URL('../fixtures/io/', import.meta.url);
const fixture = (name: string): Uint8Array => new Uint8Array(readFileSync(new URL(name, FIXTURES)));
const model = fixture('convert/model-f32.safetensors');


const f32 = (a: Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const raw = (shape: number[], values: Float32Array): RawTensor => ({ dtype: 'float32', shape, bytes: f32(values) });
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function tensors(bytes: Uint8Array) {
  return parseSafetensors(bytes).tensors;
}
function valuesOf(bytes: Uint8Array, name: string): Float32Array {
  const t = toRawTensor(name, tensors(bytes).get(name)!);
  assert.is(t.dtype, 'float32', `${name} is float32`);
  return new Float32Array(t.bytes.slice().buffer);
}
function conversionOf(bytes: Uint8Array): ConversionMetadata {
  return JSON.parse(parseSafetensors(bytes).metadata[CONVERSION_KEY]) as ConversionMetadata;
}
/** Bit patterns equal (NaN payloads included). */
function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.is(a.length, b.length, `${what}: length`);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length), y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) assert.unreachable(`${what}[${i}]: ${a[i]} (0x${x[i].toString(16)}) != ${b[i]} (0x${y[i].toString(16)})`);
}

async function rejects(p: Promise<unknown> | (() => unknown), cls: new (...a: never[]) => Error, re?: RegExp): Promise<Error> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    if (!(e instanceof cls)) assert.unreachable(`expected ${cls.name}, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    if (re) assert.match((e as Error).message, re);
    return e as Error;
  }
  return assert.unreachable(`expected ${cls.name}`);
}

// ---- against PyTorch ----------------------------------------------------------------------------

const REFERENCES: Array<[string, ConvertModelOptions]> = [
  ['bfloat16', { to: 'bfloat16' }],
  ['float16', { to: 'f16' }],
  ['float8_e4m3fn-tensor', { to: 'float8_e4m3fn' }],
  ['float8_e4m3fn-row', { to: 'e4m3', scale: 'row' }],
  ['float8_e5m2-tensor', { to: 'float8_e5m2', scale: 'tensor' }],
  ['float8_e5m2-row', { to: 'e5m2', scale: 'row' }],
];

for (const [label, options] of REFERENCES) {
  test(`convert-model --to ${label} writes PyTorch's codes and scales byte for byte (fixture made with torch)`, async () => {
    const ref = tensors(fixture(`convert/reference-${label}.safetensors`));
    const { bytes, report } = await convertSafetensorsBytes(model, options);
    const out = tensors(bytes);
    const input = tensors(model);
    let nonFinite = 0;
    for (const [name, t] of ref) {
      const o = out.get(name);
      assert.ok(o, `output has ${name}`);
      assert.is(o!.dtype, t.dtype, `${name}: file dtype`);
      assert.equal([...o!.shape], [...t.shape], `${name}: shape`);
      if (name.endsWith('_scale')) {
        assert.equal([...o!.bytes], [...t.bytes], `${name}: scale bytes`);
        continue;
      }
      // PyTorch's CPU casts differ from ml_dtypes (whose semantics memfit follows, see README "Semantics") on
      // non-finite inputs only: NaN -> bfloat16 0xffff (ml_dtypes 0x7fc0), ±inf -> e4m3fn ±448 (ml_dtypes NaN),
      // NaN -> e5m2 0x7f (ml_dtypes 0x7e). Those positions are checked against encode() by the round-trip tests.
      const x = new Float32Array(input.get(name)!.bytes.slice().buffer);
      const k = t.bytes.length / Math.max(x.length, 1);
      for (let i = 0; i < x.length; i++) {
        if (!Number.isFinite(x[i])) {
          nonFinite++;
          continue;
        }
        for (let j = 0; j < k; j++) {
          if (o!.bytes[i * k + j] !== t.bytes[i * k + j]) assert.unreachable(`${name}[${i}] = ${x[i]}: memfit ${[...o!.bytes.subarray(i * k, i * k + k)]} vs PyTorch ${[...t.bytes.subarray(i * k, i * k + k)]}`);
        }
      }
    }
    assert.is(nonFinite, 3, 'only the NaN and ±inf of specials.weight are left out');
    // Only the 2-D float tensors (and their scales) changed; everything else is byte-identical.
    for (const [name, t] of out) {
      if (ref.has(name)) continue;
      const i = input.get(name)!;
      assert.ok(i, `${name} comes from the input`);
      assert.is(t.dtype, i.dtype, name);
      assert.equal([...t.bytes], [...i.bytes], `${name} copied unchanged`);
    }
    assert.is(report.converted, [...ref.keys()].filter((n) => !n.endsWith('_scale')).length);
    assert.is(parseSafetensors(bytes).metadata.format, 'pt', 'metadata kept');
  });
}

test('reads a compressed-tensors / vLLM fp8 checkpoint (Python-made): dequantised values equal PyTorch\'s, bit for bit', async () => {
  const file = fixture('convert/compressed-fp8.safetensors');
  const ins = await inspectSafetensorsBytes(file);
  const by = new Map(ins.tensors.map((t) => [t.name, t]));
  assert.equal(by.get('a.weight')!.scale, { kind: 'tensor', tensor: 'a.weight_scale' });
  assert.equal(by.get('b.weight')!.scale, { kind: 'row', tensor: 'b.weight_scale' });
  assert.equal(by.get('c.weight')!.scale, { kind: 'tensor', tensor: 'c.weight_scale' });
  assert.is(by.get('c.weight_scale')!.scaleOf, 'c.weight');
  assert.is(by.get('a.input_scale')!.scaleOf, null);
  const { bytes, report } = await convertSafetensorsBytes(file, { to: 'float32', exclude: ['^expected\\.'] });
  for (const n of ['a', 'b', 'c']) {
    sameBits(valuesOf(bytes, `${n}.weight`), valuesOf(file, `expected.${n}.weight`), `${n}.weight`);
    assert.not.ok(tensors(bytes).has(`${n}.weight_scale`), 'scale consumed');
  }
  assert.equal([...tensors(bytes).get('a.input_scale')!.bytes], [...tensors(file).get('a.input_scale')!.bytes], 'activation scale copied');
  assert.is(tensors(bytes).get('norm.weight')!.dtype, 'BF16', '1-D norm weight stays bfloat16');
  assert.is(report.tensors.find((t) => t.name === 'b.weight')!.from, 'float8_e4m3fn*row');
  // A scale shape that is neither per tensor nor per row is refused, naming it.
  const p = parseSafetensors(file);
  const entries: Record<string, RawTensor> = {};
  for (const [name, t] of p.tensors) entries[name] = toRawTensor(name, t);
  entries['b.weight_scale'] = raw([1, 3], new Float32Array(3).fill(1));
  await rejects(convertSafetensorsBytes(serializeSafetensors(entries), { to: 'float32' }), SafetensorsError, /'b\.weight_scale'.*\[1, 3\].*neither per tensor/);
});

// ---- round trips ----------------------------------------------------------------------------------

/** A float32 file: 2-D tensors of several widths (K % 32 == 0 or not, odd K), a 3-D one, 1-D, 0-D, empty, with special values. */
function sampleFile(seed = 1): { bytes: Uint8Array; values: Map<string, { shape: number[]; v: Float32Array }> } {
  const rand = rng(seed);
  const shapes: Record<string, number[]> = {
    'l0.weight': [12, 64], 'l1.weight': [7, 45], 'l2.weight': [5, 3], 'l3.weight': [1, 33], 'cube.weight': [2, 3, 40],
    'norm.weight': [40], 'temp': [], 'empty.weight': [0, 8], 'hollow.weight': [4, 0], 'zeros.weight': [2, 32],
  };
  const values = new Map<string, { shape: number[]; v: Float32Array }>();
  const entries: Record<string, RawTensor> = {};
  for (const [name, shape] of Object.entries(shapes)) {
    const v = new Float32Array(numel(shape));
    if (name !== 'zeros.weight') {
      for (let i = 0; i < v.length; i++) v[i] = (rand() - 0.5) * 2 ** Math.floor(rand() * 30 - 20);
    }
    if (name === 'l1.weight') v.set([Infinity, -Infinity, NaN, 0, -0, 1e-40, 3e38, -1e-30, 448, 465, 60000], 3);
    if (name === 'l0.weight') v.fill(0, 64, 128); // an all-zero row
    values.set(name, { shape, v });
    entries[name] = raw(shape, v);
  }
  entries.ids = { dtype: 'int32', shape: [3], bytes: f32(new Float32Array(3)) };
  return { bytes: serializeSafetensors(entries, { format: 'pt', note: 'kept' }), values };
}

const ALL = ['l0.weight', 'l1.weight', 'l2.weight', 'l3.weight', 'cube.weight', 'norm.weight', 'temp', 'empty.weight', 'hollow.weight', 'zeros.weight'];

test('fp8 round trip: codes = encode(x / scale), dequantised = decode(code) * scale, bit for bit (per tensor, per row, none)', async () => {
  const { bytes: file, values } = sampleFile(2);
  for (const dtype of ['float8_e4m3fn', 'float8_e5m2'] as const) {
    for (const scale of ['tensor', 'row', 'none'] as const) {
      for (const saturate of [false, true]) {
        const { bytes } = await convertSafetensorsBytes(file, { to: dtype, scale, saturate, include: ['.'] });
        const out = tensors(bytes);
        const back = (await convertSafetensorsBytes(bytes, { to: 'float32', include: ['.'] })).bytes;
        for (const name of ALL) {
          const { shape, v } = values.get(name)!;
          const what = `${dtype} ${scale} saturate=${saturate} ${name}`;
          const t = toRawTensor(name, out.get(name)!);
          assert.is(t.dtype, dtype, what);
          assert.equal([...t.shape], shape, what);
          const rowLen = shape.length ? shape[shape.length - 1] : 1;
          let scales = new Float32Array(0);
          if (scale !== 'none') {
            const s = toRawTensor(name + '_scale', out.get(name + '_scale')!);
            assert.equal([...s.shape], scale === 'tensor' ? [1] : [...shape.slice(0, -1), 1], `${what}: scale shape`);
            scales = new Float32Array(s.bytes.slice().buffer);
            // Each scale is the smallest float32 >= 2^-126 with amax / s <= max (1 for an all-zero group).
            for (let r = 0; r < scales.length; r++) {
              const group = scale === 'tensor' ? v : v.subarray(r * rowLen, (r + 1) * rowLen);
              const amax = Math.max(0, ...[...group].filter(Number.isFinite).map(Math.abs));
              const s0 = scales[r];
              if (amax === 0) assert.is(s0, 1, `${what}: all-zero scale`);
              else {
                assert.ok(amax / s0 <= finfo(dtype).max, `${what}: amax / s <= max`);
                const below = new Float32Array([s0]);
                new Uint32Array(below.buffer)[0]--;
                assert.ok(s0 === 2 ** -126 || amax / below[0] > finfo(dtype).max, `${what}: s is the smallest such float32`);
              }
            }
          }
          const scaleAt = (i: number) => (scale === 'none' ? 1 : scale === 'tensor' ? scales[0] : scales[Math.floor(i / rowLen)]);
          const scaled = Float32Array.from(v, (x, i) => x / scaleAt(i));
          const want = encode(scaled, dtype, { saturate });
          assert.equal([...t.bytes], [...want], `${what}: codes`);
          const deq = decode(want, dtype).map((c, i) => Math.fround(c * scaleAt(i)));
          sameBits(valuesOf(back, name), deq, `${what}: dequantised`);
        }
      }
    }
  }
});

test('float16 / bfloat16 round trip equals encode / decode; float32 -> float32 is the identity', async () => {
  const { bytes: file, values } = sampleFile(3);
  for (const dtype of ['float16', 'bfloat16', 'float32'] as const) {
    for (const rounding of ['nearest-even', 'toward-zero'] as const) {
      const { bytes } = await convertSafetensorsBytes(file, { to: dtype, rounding, include: ['.'] });
      const back = (await convertSafetensorsBytes(bytes, { to: 'float32', include: ['.'] })).bytes;
      for (const name of ALL) {
        const { v } = values.get(name)!;
        const codes = encode(v, dtype, { rounding });
        const t = toRawTensor(name, tensors(bytes).get(name)!);
        assert.equal([...t.bytes], [...new Uint8Array(codes.buffer, codes.byteOffset, codes.byteLength)], `${dtype} ${rounding} ${name}`);
        sameBits(valuesOf(back, name), decode(codes, dtype), `${dtype} ${rounding} ${name}: back`);
      }
    }
  }
});

test('MX round trip: codes and E8M0 scales equal mxQuantize of each row, dequantised equals mxDequantize (fp8, fp6, fp4; block 32 and 16)', async () => {
  const { bytes: file, values } = sampleFile(4);
  for (const to of ['mxfp8_e4m3', 'mxfp8_e5m2', 'mxfp6_e3m2', 'mxfp6_e2m3', 'mxfp4', 'fp4']) {
    for (const blockSize of [32, 16, 5]) {
      const target = resolveTarget(to, undefined, blockSize);
      const { bytes, report } = await convertSafetensorsBytes(file, { to, blockSize, include: ['.'] });
      const out = tensors(bytes);
      const back = (await convertSafetensorsBytes(bytes, { to: 'float32', include: ['.'] })).bytes;
      for (const name of ALL) {
        const { shape, v } = values.get(name)!;
        const what = `${to} block ${blockSize} ${name}`;
        const t = toRawTensor(name, out.get(name)!);
        const s = toRawTensor(name + '_scale', out.get(name + '_scale')!);
        assert.is(t.dtype, target.dtype, what);
        assert.is(s.dtype, 'float8_e8m0fnu', what);
        const rowLen = shape.length ? shape[shape.length - 1] : 1;
        const perRow = Math.ceil(rowLen / blockSize);
        assert.equal([...s.shape], [...shape.slice(0, -1), perRow], `${what}: scale shape`);
        const codes = formatOf(target.dtype).bits < 8 ? unpack(t.bytes, target.dtype, v.length) : t.bytes;
        const deq = new Float32Array(v.length);
        for (let r = 0; r * rowLen < v.length; r++) {
          const mx = mxQuantize(v.subarray(r * rowLen, (r + 1) * rowLen), target.dtype, { blockSize });
          assert.equal([...codes.subarray(r * rowLen, (r + 1) * rowLen)], [...mx.codes], `${what}: row ${r} codes`);
          assert.equal([...s.bytes.subarray(r * perRow, (r + 1) * perRow)], [...mx.scales], `${what}: row ${r} scales`);
          deq.set(mxDequantize(mx), r * rowLen);
        }
        sameBits(valuesOf(back, name), deq, `${what}: dequantised`);
      }
      assert.is(report.tensors.find((r) => r.name === 'l0.weight')!.to, `${target.dtype}*mx${blockSize}`);
      assert.is(conversionOf(bytes).tensors['l1.weight'].blockSize, blockSize);
    }
  }
});

test('stochastic rounding: one stream over the converted tensors in file order (offset = elements before), seed recorded', async () => {
  const { bytes: file, values } = sampleFile(5);
  const { bytes, report } = await convertSafetensorsBytes(file, { to: 'bf16', rounding: 'stochastic', seed: 77n, include: ['.'] });
  assert.is(report.seed, '77');
  assert.is(conversionOf(bytes).runs[0].seed, '77');
  const order = [...tensors(file).keys()].filter((n) => n !== 'ids');
  let offset = 0;
  for (const name of order) {
    const { v } = values.get(name)!;
    const want = encode(v, 'bfloat16', { rounding: 'stochastic', seed: 77n, offset });
    assert.equal([...toRawTensor(name, tensors(bytes).get(name)!).bytes], [...new Uint8Array(want.buffer)], name);
    offset += v.length;
  }
  const again = await convertSafetensorsBytes(file, { to: 'bf16', rounding: 'stochastic', seed: 77n, include: ['.'], chunkElements: 7 });
  assert.equal([...again.bytes], [...bytes], 'same seed, other chunking: same file');
  const random = await convertSafetensorsBytes(file, { to: 'e4m3', rounding: 'stochastic' });
  assert.match(random.report.seed!, /^\d+$/, 'a random seed is chosen and reported');
});

test('chunking does not change the output (every target, chunks of 1 to 1000 elements)', async () => {
  const { bytes: file } = sampleFile(6);
  for (const [to, scale] of [['bf16'], ['e4m3', 'tensor'], ['e4m3', 'row'], ['mxfp4'], ['mxfp6_e2m3'], ['float32']] as const) {
    const whole = (await convertSafetensorsBytes(file, { to, scale, include: ['.'] })).bytes;
    for (const chunkElements of [1, 3, 64, 1000]) {
      const part = (await convertSafetensorsBytes(file, { to, scale, include: ['.'], chunkElements })).bytes;
      assert.equal([...part], [...whole], `${to} ${scale ?? ''} chunk ${chunkElements}`);
    }
  }
});

test('converting a converted file: scales are applied first (fp8 -> mxfp4 -> bf16 equals the direct chain)', async () => {
  const { bytes: file } = sampleFile(7);
  const fp8 = (await convertSafetensorsBytes(file, { to: 'e4m3', scale: 'row' })).bytes;
  const deq = (await convertSafetensorsBytes(fp8, { to: 'float32' })).bytes;
  const viaFp8 = (await convertSafetensorsBytes(fp8, { to: 'mxfp4' })).bytes;
  const viaF32 = (await convertSafetensorsBytes(deq, { to: 'mxfp4' })).bytes;
  for (const name of ['l0.weight', 'l1.weight', 'l0.weight_scale']) {
    assert.equal([...tensors(viaFp8).get(name)!.bytes], [...tensors(viaF32).get(name)!.bytes], name);
  }
  const meta = conversionOf(viaFp8);
  assert.is(meta.runs.length, 2, 'both runs recorded');
  assert.is(meta.tensors['l0.weight'].source, 'float8_e4m3fn*row');
  assert.is(meta.tensors['l0.weight'].dtype, 'float4_e2m1fn');
  // Tensors left out keep their scale and their record.
  const partial = (await convertSafetensorsBytes(fp8, { to: 'bf16', exclude: ['^l1\\.'] })).bytes;
  assert.ok(tensors(partial).has('l1.weight_scale'));
  assert.is(conversionOf(partial).tensors['l1.weight'].scale, 'row');
  assert.not.ok(tensors(partial).has('l0.weight_scale'));
});

// ---- reports ------------------------------------------------------------------------------------

test('report: max abs error, relative RMS error, clamped share, non-finite count and sizes are right', async () => {
  const v = Float32Array.of(1, -2, 3, 1000, 0.1, NaN, Infinity, 0);
  const file = serializeSafetensors({ w: raw([2, 4], v) });
  const { bytes, report } = await convertSafetensorsBytes(file, { to: 'float8_e4m3fn', scale: 'none', saturate: true });
  const r = report.tensors[0];
  const deq = decode(encode(v, 'float8_e4m3fn', { saturate: true }), 'float8_e4m3fn');
  let maxAbs = 0, se = 0, sr = 0;
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i])) continue;
    maxAbs = Math.max(maxAbs, Math.abs(deq[i] - v[i]));
    se += (deq[i] - v[i]) ** 2;
    sr += v[i] ** 2;
  }
  assert.is(r.maxAbsError, maxAbs);
  assert.ok(Math.abs(r.relRmsError! - Math.sqrt(se / sr)) < 1e-15);
  assert.is(r.clamped, 1, '1000 is beyond 448');
  assert.is(r.clampedShare, 1 / 8);
  assert.is(r.nonFinite, 2);
  assert.is(r.bytesBefore, 32);
  assert.is(r.bytesAfter, 8);
  assert.is(report.bytesBefore, file.length);
  assert.is(report.bytesAfter, bytes.length);
  // Not saturating: 1000 overflows to NaN, so the error is infinite.
  const ns = (await convertSafetensorsBytes(file, { to: 'float8_e4m3fn', scale: 'none' })).report.tensors[0];
  assert.is(ns.maxAbsError, Infinity);
  assert.is(ns.clamped, 1);
});

test('inspect --stats: min/max/absmax/mean/std and overflow/underflow per format equal a brute-force count', async () => {
  const { bytes: file, values } = sampleFile(8);
  const r = await inspectSafetensorsBytes(file, { stats: true });
  assert.is(r.fileBytes, file.length);
  assert.equal({ ...r.metadata }, { format: 'pt', note: 'kept' });
  for (const t of r.tensors) {
    if (t.name === 'ids') {
      assert.is(t.stats, null, 'int32: no stats');
      continue;
    }
    const v = values.get(t.name)!.v;
    const s = t.stats!;
    const fin = [...v].filter(Number.isFinite);
    assert.is(s.count, fin.length, t.name);
    assert.is(s.nonFinite, v.length - fin.length, t.name);
    if (fin.length) {
      assert.is(s.min, Math.min(...fin), `${t.name} min`);
      assert.is(s.max, Math.max(...fin), `${t.name} max`);
      assert.is(s.absmax, Math.max(...fin.map(Math.abs)), `${t.name} absmax`);
      const mean = fin.reduce((a, b) => a + b, 0) / fin.length;
      const std = Math.sqrt(fin.reduce((a, b) => a + (b - mean) ** 2, 0) / fin.length);
      assert.ok(Math.abs(s.mean - mean) <= 1e-12 * Math.max(...fin.map(Math.abs)), `${t.name} mean ${s.mean} vs ${mean}`);
      assert.ok(Math.abs(s.std - std) <= 1e-9 * std + 1e-300, `${t.name} std ${s.std} vs ${std}`);
    }
    for (const d of STAT_DTYPES) {
      // Brute force: encode each value (nearest-even, not saturating). fp6/fp4 have no inf/NaN and saturate, so
      // there a value overflows when rounding it to the top binade's ulp (ties to even) gives more than max.
      const deq = decode(encode(v, d), d);
      let over = 0, under = 0;
      for (let i = 0; i < v.length; i++) {
        if (!Number.isFinite(v[i])) continue;
        if (formatOf(d).bits >= 8 ? !Number.isFinite(deq[i]) : roundsPastMax(Math.abs(v[i]), d)) over++;
        if (v[i] !== 0 && deq[i] === 0) under++;
      }
      assert.is(s.overflow[d], over, `${t.name} overflow ${d}`);
      assert.is(s.underflow[d], under, `${t.name} underflow ${d}`);
    }
  }
  const total = r.totals.find((x) => x.dtype === 'float32')!;
  assert.is(total.tensors, ALL.length);
  assert.is(total.elements, ALL.reduce((a, n) => a + values.get(n)!.v.length, 0));
});

/** Does |x| = a round (nearest-even, at the top binade's spacing) to more than max? */
function roundsPastMax(a: number, d: DType): boolean {
  const max = finfo(d).max;
  const ulp = 2 ** (Math.floor(Math.log2(max)) - formatOf(d).mantissaBits);
  const q = a / ulp;
  const fl = Math.floor(q);
  const r = q - fl > 0.5 || (q - fl === 0.5 && fl % 2 === 1) ? fl + 1 : fl;
  return r * ulp > max;
}

test('inspect of a converted file: scales are paired with their tensors, stats are of the dequantised values', async () => {
  const { bytes: file, values } = sampleFile(9);
  const { bytes } = await convertSafetensorsBytes(file, { to: 'mxfp4' });
  const back = (await convertSafetensorsBytes(bytes, { to: 'float32' })).bytes;
  const r = await inspectSafetensorsBytes(bytes, { stats: true });
  const l0 = r.tensors.find((t) => t.name === 'l0.weight')!;
  assert.equal(l0.scale, { kind: 'mx', tensor: 'l0.weight_scale', blockSize: 32 });
  assert.is(l0.dtype, 'float4_e2m1fn');
  assert.is(l0.fileDType, 'U8');
  const deq = valuesOf(back, 'l0.weight');
  assert.is(l0.stats!.absmax, Math.max(...[...deq].map(Math.abs)));
  assert.is(r.tensors.find((t) => t.name === 'l0.weight_scale')!.scaleOf, 'l0.weight');
  assert.is(r.conversion!.runs[0].target, 'mxfp4');
  assert.ok(values.size > 0);
});

// ---- selection and options ------------------------------------------------------------------------

test('selection: 2-D float tensors by default; --include / --exclude; 1-D, 0-D, ints and unsupported dtypes copied unchanged', async () => {
  const { bytes: file } = sampleFile(10);
  const def = await convertSafetensorsBytes(file, { to: 'bf16' });
  const conv = def.report.tensors.filter((t) => t.action === 'converted').map((t) => t.name).sort();
  assert.equal(conv, ['empty.weight', 'hollow.weight', 'l0.weight', 'l1.weight', 'l2.weight', 'l3.weight', 'zeros.weight']);
  for (const n of ['norm.weight', 'temp', 'cube.weight', 'ids']) assert.equal([...tensors(def.bytes).get(n)!.bytes], [...tensors(file).get(n)!.bytes], n);
  const inc = await convertSafetensorsBytes(file, { to: 'bf16', include: ['^norm', /cube/], exclude: ['nothing-to-see|zeros'] });
  assert.equal(inc.report.tensors.filter((t) => t.action === 'converted').map((t) => t.name).sort(), ['cube.weight', 'norm.weight']);
  const exc = await convertSafetensorsBytes(file, { to: 'bf16', exclude: ['^l[01]\\.'] });
  assert.equal(exc.report.tensors.filter((t) => t.action === 'converted').map((t) => t.name).sort(), ['empty.weight', 'hollow.weight', 'l2.weight', 'l3.weight', 'zeros.weight']);
  // F64 / I64 / BOOL / raw U8 are copied with their header entries (fixture written by the safetensors library).
  const un = fixture('unsupported.safetensors');
  const withF32 = parseSafetensors(un);
  await rejects(convertSafetensorsBytes(un, { to: 'bf16' }), ConvertError, /no tensor to convert: the file has no 2-D float tensor/);
  const f64 = await convertSafetensorsBytes(un, { to: 'bf16', include: ['f64'] });
  const out = tensors(f64.bytes);
  for (const n of ['i64', 'raw', 'flags']) {
    assert.is(out.get(n)!.dtype, withF32.tensors.get(n)!.dtype, n);
    assert.equal([...out.get(n)!.shape], [...withF32.tensors.get(n)!.shape], n);
    assert.equal([...out.get(n)!.bytes], [...withF32.tensors.get(n)!.bytes], n);
  }
  // F64 converts from binary64, correctly rounded (encode of the Float64Array).
  const f = Float64Array.of(0.5, 1.5, 2.5);
  assert.equal([...toRawTensor('f64', out.get('f64')!).bytes], [...new Uint8Array(encode(f, 'bfloat16').buffer)]);
});

test('bad options: unknown target, scale misuse, a regex matching nothing, an invalid regex, MX with stochastic rounding', async () => {
  const { bytes: file } = sampleFile(11);
  const e = await rejects(convertSafetensorsBytes(file, { to: 'float7' }), ConvertError, /unknown target "float7"; targets: float32, float16, bfloat16, float8_e4m3fn/);
  assert.is((e as ConvertError).code, 'CONVERT');
  await rejects(convertSafetensorsBytes(file, { to: 'e8m0' }), ConvertError, /scale format, not a conversion target/);
  await rejects(convertSafetensorsBytes(file, { to: 'nvfp4' }), ConvertError, /nvfp4.*not supported; use mxfp4/);
  await rejects(convertSafetensorsBytes(file, { to: 'bf16', scale: 'row' }), ConvertError, /bfloat16 is stored without scales/);
  await rejects(convertSafetensorsBytes(file, { to: 'mxfp4', scale: 'tensor' }), ConvertError, /MX format/);
  await rejects(convertSafetensorsBytes(file, { to: 'mxfp4', rounding: 'stochastic' }), ConvertError, /nearest-even/);
  await rejects(convertSafetensorsBytes(file, { to: 'mxfp4', blockSize: 0 }), ConvertError, /block size must be a positive integer/);
  await rejects(convertSafetensorsBytes(file, { to: 'bf16', seed: 1 }), ConvertError, /seed only applies to stochastic/);
  await rejects(convertSafetensorsBytes(file, { to: 'bf16', include: ['^model\\.'] }), ConvertError, /--include \^model\\\.: matches no tensor of the file/);
  await rejects(convertSafetensorsBytes(file, { to: 'bf16', exclude: ['lm_head'] }), ConvertError, /--exclude lm_head: matches no tensor/);
  await rejects(convertSafetensorsBytes(file, { to: 'bf16', include: ['(['] }), ConvertError, /include: invalid regular expression/);
  await rejects(convertSafetensorsBytes(file, { to: 'bf16', include: ['ids'] }), ConvertError, /no tensor to convert: no float tensor matches --include/);
  // A scale name already taken by another tensor of the file.
  const clash = serializeSafetensors({ w: raw([2, 2], new Float32Array(4)), w_scale: raw([3], new Float32Array(3)) });
  await rejects(convertSafetensorsBytes(clash, { to: 'e4m3' }), ConvertError, /two tensors named 'w_scale'/);
});

test('unknown option keys are refused (never ignored) by convert and inspect, before any file is opened or written', async () => {
  const { bytes: file } = sampleFile(11);
  await rejects(convertSafetensorsBytes(file, { to: 'bf16', chunkElments: 4 } as never), InvalidArgumentError, /convertSafetensorsBytes: unknown option "chunkElments"/);
  await rejects(inspectSafetensorsBytes(file, { stat: true } as never), InvalidArgumentError, /inspectSafetensorsBytes: unknown option "stat"/);
  const dir = mkdtempSync(join(tmpdir(), 'memfit-convert-'));
  try {
    const input = join(dir, 'in.safetensors'), output = join(dir, 'out.safetensors');
    writeFileSync(input, file);
    writeFileSync(output, 'not a model');
    await rejects(convertSafetensors(input, output, { to: 'bf16', overWrite: true } as never), InvalidArgumentError, /convertSafetensors: unknown option "overWrite"/);
    await rejects(inspectSafetensors(join(dir, 'missing'), { stat: true } as never), InvalidArgumentError, /inspectSafetensors: unknown option "stat"/);
    assert.is(readFileSync(output, 'utf8'), 'not a model');
    assert.equal(readdirSync(dir).sort(), ['in.safetensors', 'out.safetensors']);
    // the file entry's own keys are known
    await convertSafetensors(input, output, { to: 'bf16', overwrite: true, handleSignals: false });
    assert.ok((await inspectSafetensors(output, { stats: true })).tensors.length > 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- hostile input --------------------------------------------------------------------------------

test('every prefix of a converted file is a SafetensorsError for inspect and convert, never another error', async () => {
  const { bytes: file } = sampleFile(12);
  const conv = (await convertSafetensorsBytes(file, { to: 'mxfp6_e3m2', include: ['^l[0-3]'] })).bytes;
  for (let n = 0; n < conv.length; n += n < 600 ? 1 : 61) {
    const cut = conv.subarray(0, n);
    await rejects(inspectSafetensorsBytes(cut, { stats: true }), SafetensorsError, undefined);
    await rejects(convertSafetensorsBytes(cut, { to: 'float32' }), SafetensorsError, undefined);
  }
});

function withConversion(bytes: Uint8Array, edit: (m: Record<string, unknown>) => unknown): Uint8Array {
  const p = parseSafetensors(bytes);
  const entries: Record<string, RawTensor> = {};
  for (const [name, t] of p.tensors) entries[name] = toRawTensor(name, t);
  const meta = JSON.parse(p.metadata[CONVERSION_KEY]);
  const replaced = edit(meta);
  const text = typeof replaced === 'string' ? replaced : JSON.stringify(replaced ?? meta);
  return serializeSafetensors(entries, { ...p.metadata, [CONVERSION_KEY]: text });
}

test('a hostile memfit.conversion record is a SafetensorsError naming the tensor (never a wrong dequantisation)', async () => {
  const { bytes: file } = sampleFile(13);
  const conv = (await convertSafetensorsBytes(file, { to: 'e4m3', scale: 'row', include: ['^l[0-2]\\.'] })).bytes;
  const cases: Array<[(m: Record<string, any>) => unknown, RegExp]> = [
    [() => '{not json', /"memfit\.conversion" is not valid JSON/],
    [() => '[]', /must be an object/],
    [(m) => { m.tensors['ghost'] = { source: 'float32', dtype: 'float8_e4m3fn', scale: 'none' }; }, /'ghost'.*does not hold it/],
    [(m) => { m.tensors['l0.weight'].dtype = 'float8_e5m2'; }, /'l0\.weight'.*says float8_e5m2, the file holds float8_e4m3fn/],
    [(m) => { m.tensors['l0.weight'].scaleTensor = 'l1.weight_scale'; }, /'l1\.weight_scale'.*(shape|scale of both)/],
    [(m) => { m.tensors['l0.weight'].scaleTensor = 'missing'; }, /'l0\.weight': its scale tensor 'missing' is missing/],
    [(m) => { m.tensors['l0.weight'].scale = 'diagonal'; }, /"scale" must be one of/],
    [(m) => { m.tensors['l0.weight'].scale = 'mx'; m.tensors['l0.weight'].blockSize = 32; }, /MX scales must be float8_e8m0fnu/],
    [(m) => { m.tensors['l0.weight'].scale = 'mx'; m.tensors['l0.weight'].blockSize = -1; }, /"blockSize" must be an integer from 1 to 2\^31 - 1, got -1/],
    [(m) => { m.tensors['l0.weight'].scale = 'mx'; m.tensors['l0.weight'].blockSize = 2 ** 32 + 1; }, /"blockSize" must be an integer from 1 to 2\^31 - 1, got 4294967297/],
    [(m) => { m.tensors['l2.weight'].scaleTensor = 'l2.weight'; }, /'l2\.weight'/],
    [(m) => { m.tensors['l0.weight'].dtype = 'float9'; }, /unknown dtype "float9"/],
    [(m) => { m.tensors['l0.weight'].scale = 'tensor'; }, /'l0\.weight_scale': shape \[12, 1\] does not fit tensor scales/],
  ];
  for (const [edit, re] of cases) {
    const bad = withConversion(conv, edit);
    await rejects(inspectSafetensorsBytes(bad), SafetensorsError, re);
    await rejects(convertSafetensorsBytes(bad, { to: 'float32' }), SafetensorsError, re);
  }
  // Seeded corruptions of the record text: a SafetensorsError or a valid result, never another error.
  const rand = rng(99);
  const text = parseSafetensors(conv).metadata[CONVERSION_KEY];
  for (let k = 0; k < 300; k++) {
    const chars = [...text];
    for (let j = 0; j < 3; j++) chars[Math.floor(rand() * chars.length)] = '{}[]":,0a-19e'[Math.floor(rand() * 13)];
    const bad = withConversion(conv, () => chars.join(''));
    try {
      await convertSafetensorsBytes(bad, { to: 'float32' });
    } catch (e) {
      if (!(e instanceof SafetensorsError)) assert.unreachable(`corruption ${k}: ${(e as Error).name}: ${(e as Error).message}`);
    }
  }
});

test('the output records each conversion in __metadata__ (and memfit.dtypes for U8-stored codes) and keeps the rest', async () => {
  const { bytes: file } = sampleFile(14);
  const { bytes } = await convertSafetensorsBytes(file, { to: 'mxfp6_e2m3', blockSize: 16, exclude: ['zeros'], memfitVersion: '9.9.9' });
  const p = parseSafetensors(bytes);
  assert.is(p.metadata.format, 'pt');
  assert.is(p.metadata.note, 'kept');
  const m = conversionOf(bytes);
  assert.is(m.version, 1);
  assert.equal(m.runs, [{ memfit: '9.9.9', target: 'mxfp6_e2m3', scale: 'mx', blockSize: 16, rounding: 'nearest-even', saturate: true, converted: 6 }]);
  assert.equal(m.tensors['l1.weight'], { source: 'float32', dtype: 'float6_e2m3fn', scale: 'mx', scaleTensor: 'l1.weight_scale', blockSize: 16 });
  assert.not.ok('zeros.weight' in m.tensors);
  // U8-stored codes carry their real dtype and logical shape (safetensors.ts's convention).
  const u8 = p.tensors.get('l1.weight')!;
  assert.is(u8.dtype, 'U8');
  assert.equal(u8.memfit, { dtype: 'float6_e2m3fn', shape: [7, 45] });
  assert.ok(!(MEMFIT_DTYPES_KEY in p.metadata));
});

// ---- files ----------------------------------------------------------------------------------------

const dir = mkdtempSync(join(tmpdir(), 'memfit-convert-'));

test('files: convertSafetensors streams to an atomic output, equals the bytes version, inspectSafetensors reads it', async () => {
  const inPath = join(dir, 'in.safetensors');
  writeFileSync(inPath, model);
  const outPath = join(dir, 'out.safetensors');
  writeFileSync(outPath, 'old');
  const seen: number[] = [];
  const report = await convertSafetensors(inPath, outPath, { to: 'e4m3', scale: 'row', chunkElements: 16, onProgress: (d) => seen.push(d), overwrite: true });
  const mem = await convertSafetensorsBytes(model, { to: 'e4m3', scale: 'row', memfitVersion: report.conversion.runs[0].memfit });
  assert.equal([...readFileSync(outPath)], [...mem.bytes]);
  assert.match(report.conversion.runs[0].memfit, /^\d+\.\d+\.\d+/, 'the package version is recorded');
  assert.ok(seen.length > 5 && seen.every((d, i) => i === 0 || d >= seen[i - 1]), 'progress only grows');
  assert.is(seen[seen.length - 1], parseSafetensors(model).tensors.size ? readFileSync(inPath).length - (await inspectSafetensors(inPath)).headerBytes : 0);
  const ins = await inspectSafetensors(outPath, { stats: true });
  assert.is(ins.tensors.find((t) => t.name === 'specials.weight')!.scale!.kind, 'row');
  assert.equal(readdirSync(dir).sort(), ['in.safetensors', 'out.safetensors'], 'no temporary file left');
});

test('files: refuses to overwrite its input (same path, another spelling, a hard link); errors name the path', async () => {
  const inPath = join(dir, 'model.safetensors');
  writeFileSync(inPath, model);
  linkSync(inPath, join(dir, 'hard.safetensors'));
  for (const out of [inPath, join(dir, '.', 'model.safetensors'), join(dir, 'hard.safetensors')]) {
    await rejects(convertSafetensors(inPath, out, { to: 'bf16' }), ConvertError, /is the input file/);
  }
  assert.equal([...readFileSync(inPath)], [...model], 'input untouched');
  await rejects(inspectSafetensors(join(dir, 'absent.safetensors')), SafetensorsError, /absent\.safetensors: cannot open: ENOENT/);
  writeFileSync(join(dir, 'trunc.safetensors'), model.subarray(0, 3000));
  await rejects(convertSafetensors(join(dir, 'trunc.safetensors'), join(dir, 'x.safetensors'), { to: 'bf16' }), SafetensorsError, /trunc\.safetensors: .*truncated/);
  await rejects(convertSafetensors(dir, join(dir, 'x.safetensors'), { to: 'bf16' }), SafetensorsError, /not a regular file/);
  // An error after the output was opened (a bad option found late is impossible: all are checked first) leaves no file.
  assert.not.ok(readdirSync(dir).some((f) => f.includes('x.safetensors')), 'nothing written');
});

test('a failing write stops the conversion with the sink error; planConversion checks everything before writing', async () => {
  let writes = 0;
  const sink: ByteSink = {
    write: async () => {
      if (++writes === 3) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    },
  };
  const { bytes: file } = sampleFile(15);
  const { bytesSource } = await import('../../src/io/convert_model.js');
  const plan = await planConversion(bytesSource(file), { to: 'bf16' });
  const e = await rejects(plan.run(sink), Error, /no space left/);
  assert.is((e as { code?: string }).code, 'ENOSPC');
  assert.is(writes, 3, 'nothing written after the failure');
});

test('files: a full disk (a 64 KiB tmpfs) is a clear ConvertError; the previous output survives, no partial file', async (ctx) => {
  const mnt = join(dir, 'small');
  mkdirSync(mnt);
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt], { encoding: 'utf8' });
  if (m.status !== 0) {
    // Mounting needs root (or CAP_SYS_ADMIN); the sink test above covers the error path without it.
    console.log(`  skipped the tmpfs full-disk case: cannot mount a tmpfs here (${(m.stderr || m.error?.message || '').trim()})`);
    return;
  }
  try {
    const inPath = join(dir, 'big.safetensors');
    const v = new Float32Array(48 * 1024).map((_, i) => Math.sin(i));
    writeFileSync(inPath, serializeSafetensors({ w: raw([48, 1024], v) }));
    const outPath = join(mnt, 'out.safetensors');
    writeFileSync(outPath, 'previous');
    const e = await rejects(convertSafetensors(inPath, outPath, { to: 'bf16', overwrite: true }), ConvertError, /cannot write .*out\.safetensors: no space left on device \(ENOSPC\) after \d+ of 98\d\d\d bytes; the partial file was removed/);
    assert.ok(e.cause);
    assert.is(readFileSync(outPath, 'utf8'), 'previous', 'the previous output is untouched');
    assert.equal(readdirSync(mnt), ['out.safetensors'], 'no temporary file left');
    void ctx;
  } finally {
    spawnSync('umount', [mnt]);
  }
});

/** A safetensors file written by hand: any file dtype (F64, F8_E4M3, ...), tensors in the order given. */
function handFile(list: Array<[name: string, dtype: string, shape: number[], bytes: Uint8Array]>): Uint8Array {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, dtype, shape, b] of list) {
    header[name] = { dtype, shape, data_offsets: [offset, offset + b.length] };
    offset += b.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(new TextEncoder().encode(json), 8);
  let at = 8 + json.length;
  for (const [, , , b] of list) { out.set(b, at); at += b.length; }
  return out;
}

test('an fp8 tensor with a DeepSeek-style <name>_scale_inv (or an unpaired _scale) is refused, not read as unscaled codes', async () => {
  const codes = new Uint8Array(encode(Float32Array.of(1, 2, -3, 0.5), 'float8_e4m3fn').buffer);
  for (const [suffix, sdtype, sbytes] of [['_scale_inv', 'F32', f32(Float32Array.of(4))], ['_scale', 'I32', new Uint8Array(4)]] as const) {
    const file = handFile([['m.weight', 'F8_E4M3', [2, 2], codes], [`m.weight${suffix}`, sdtype, [1, 1], sbytes]]);
    await rejects(convertSafetensorsBytes(file, { to: 'float32' }), SafetensorsError, new RegExp(`tensor 'm\\.weight': float8_e4m3fn codes with a scale tensor 'm\\.weight${suffix}' .* that memfit does not apply`));
    await rejects(inspectSafetensorsBytes(file, { stats: true }), SafetensorsError, /does not apply/);
    // Listing it and copying it through are fine: nothing is read as values.
    assert.is((await inspectSafetensorsBytes(file)).tensors.length, 2);
  }
  // The layouts memfit reads still convert: a float32 _scale of shape [1] multiplies the codes.
  const scaled = handFile([['m.weight', 'F8_E4M3', [2, 2], codes], ['m.weight_scale', 'F32', [1], f32(Float32Array.of(4))]]);
  const { bytes } = await convertSafetensorsBytes(scaled, { to: 'float32' });
  assert.equal([...valuesOf(bytes, 'm.weight')], [4, 8, -12, 2]);
});

test('float64 values beyond float32 range: a scaled fp8 or MX target is a ConvertError naming the tensor (no NaN scale or block); --block-size without MX is refused', async () => {
  const big = new Float64Array([1e300, -2, 3, 4]);
  const file = handFile([['w', 'F64', [2, 2], new Uint8Array(big.buffer)]]);
  for (const scale of ['tensor', 'row'] as const) {
    await rejects(convertSafetensorsBytes(file, { to: 'e4m3', scale }), ConvertError, /tensor 'w': its largest finite \|value\| 1e\+300 .* beyond float32's range/);
  }
  // Within float32 range a float64 tensor converts with a finite scale.
  const ok = handFile([['w', 'F64', [2, 2], new Uint8Array(new Float64Array([1e30, -2, 3, 4]).buffer)]]);
  const { report } = await convertSafetensorsBytes(ok, { to: 'e4m3' });
  assert.is(report.tensors[0].nonFinite, 0);
  assert.ok(Number.isFinite(report.tensors[0].maxAbsError!));
  // MX runs on float32 values: a float64 value beyond float32's range would have made its whole block NaN.
  for (const to of ['mxfp8_e4m3', 'mxfp4'] as const) {
    await rejects(convertSafetensorsBytes(file, { to }), ConvertError, /tensor 'w': the float64 value 1e\+300 is beyond float32's range, and MX quantisation to float\w+ runs on float32 values/);
  }
  // Just above float32's largest finite value but within half an ulp of it: it rounds to that value, not to inf.
  const edge = 3.4028234663852886e38 + 5e30;
  assert.is(Math.fround(edge), 3.4028234663852886e38);
  const near = handFile([['w', 'F64', [2, 2], new Uint8Array(new Float64Array([edge, 1, 2, 3]).buffer)]]);
  assert.is((await convertSafetensorsBytes(near, { to: 'mxfp8_e4m3' })).report.tensors[0].nonFinite, 0);
  const mx = await convertSafetensorsBytes(ok, { to: 'mxfp8_e4m3' });
  assert.is(mx.report.tensors[0].nonFinite, 0);
  assert.ok(Number.isFinite(mx.report.tensors[0].maxAbsError!));
  await rejects(convertSafetensorsBytes(ok, { to: 'e4m3', blockSize: 16 }), ConvertError, /block size applies to MX targets/);
  await rejects(convertSafetensorsBytes(ok, { to: 'bf16', blockSize: 32 }), ConvertError, /block size applies to MX targets/);
  assert.ok((await convertSafetensorsBytes(ok, { to: 'e4m3', scale: 'mx', blockSize: 16 })).report);
});

test('plain U8 bytes are integers like I32: inspect --stats gives them no stats (no unknown-dtype error), --include of one finds no float tensor', async () => {
  const un = fixture('unsupported.safetensors');
  const r = await inspectSafetensorsBytes(un, { stats: true });
  assert.equal(r.tensors.map((t) => [t.name, t.stats === null]), [['i64', true], ['f64', false], ['raw', true], ['flags', true]]);
  const both = handFile([['u', 'U8', [2, 2], Uint8Array.of(1, 2, 3, 4)], ['i', 'I32', [1], new Uint8Array(4)], ['w', 'F32', [1, 2], f32(Float32Array.of(1, -2))]]);
  const s = await inspectSafetensorsBytes(both, { stats: true });
  assert.equal(s.tensors.map((t) => t.stats === null), [true, true, false]);
  for (const n of ['u', 'i']) await rejects(convertSafetensorsBytes(both, { to: 'bf16', include: [`^${n}$`] }), ConvertError, /no tensor to convert: no float tensor matches --include/);
  // Copied byte for byte beside a converted tensor.
  const out = await convertSafetensorsBytes(both, { to: 'bf16', include: ['.'] });
  assert.equal(out.report.tensors.map((t) => [t.name, t.action]), [['u', 'copied'], ['i', 'copied'], ['w', 'converted']]);
  assert.equal([...tensors(out.bytes).get('u')!.bytes], [1, 2, 3, 4]);
});

test('inspect --stats of float64 values near the ends of their range: mean and std finite and right (no overflow to nan, no underflow to 0)', async () => {
  const f64 = (a: number[]) => new Uint8Array(new Float64Array(a).buffer);
  const file = handFile([
    ['big', 'F64', [4], f64([1e200, 2e200, 3e200, 4e200])],
    ['max', 'F64', [2], f64([1.7e308, 1.7e308])],
    ['spread', 'F64', [2], f64([1.7e308, -1.7e308])],
    ['tiny', 'F64', [4], f64([1e-200, 2e-200, 3e-200, 4e-200])],
  ]);
  // Tiny values fill the first chunk, huge ones come in the second: the running unit grows between chunks.
  const n = CHUNK_ELEMENTS + 2;
  const grow = new Float64Array(n).map((_, i) => (i % 2 ? 3e-200 : 1e-200));
  grow.set([1e200, 3e200], CHUNK_ELEMENTS);
  const growing = handFile([['g', 'F64', [n], new Uint8Array(grow.buffer)]]);
  const near = (got: number, want: number, what: string) => assert.ok(Math.abs(got - want) <= 1e-12 * Math.abs(want), `${what}: ${got} vs ${want}`);
  const r = await inspectSafetensorsBytes(file, { stats: true });
  const st = (n: string) => r.tensors.find((t) => t.name === n)!.stats!;
  near(st('big').mean, 2.5e200, 'big mean');
  near(st('big').std, Math.sqrt(1.25) * 1e200, 'big std');
  near(st('max').mean, 1.7e308, 'max mean');
  assert.is(st('max').std, 0, 'max std');
  assert.is(st('spread').mean, 0, 'spread mean');
  near(st('spread').std, 1.7e308, 'spread std');
  near(st('tiny').mean, 2.5e-200, 'tiny mean');
  near(st('tiny').std, Math.sqrt(1.25) * 1e-200, 'tiny std');
  for (const n of ['big', 'max', 'spread', 'tiny']) assert.is(st(n).nonFinite, 0, n);
  const g = (await inspectSafetensorsBytes(growing, { stats: true })).tensors[0].stats!;
  near(g.mean, (4 / n) * 1e200, 'growing mean');
  near(g.std, Math.sqrt(10 / n - 16 / n / n) * 1e200, 'growing std');
  assert.is(g.absmax, 3e200);
});

test('convert report of float64 values near the ends of their range: the relative RMS error is right (no nan, no 0 for values flushed to zero)', async () => {
  const f64 = (a: number[]) => new Uint8Array(new Float64Array(a).buffer);
  const file = handFile([['tiny', 'F64', [2, 2], f64([1e-200, 2e-200, -3e-200, 4e-200])], ['huge', 'F64', [1, 2], f64([1e300, -1e300])]]);
  const sat = (await convertSafetensorsBytes(file, { to: 'bf16', saturate: true })).report.tensors;
  const tiny = sat.find((t) => t.name === 'tiny')!;
  assert.is(tiny.maxAbsError, 4e-200);
  assert.is(tiny.relRmsError, 1, 'every value flushes to 0: the whole value is the error');
  const huge = sat.find((t) => t.name === 'huge')!;
  assert.is(huge.clamped, 2);
  assert.ok(Math.abs(huge.relRmsError! - 1) < 1e-12, `saturated to +-bfloat16 max: ${huge.relRmsError}`);
  const inf = (await convertSafetensorsBytes(file, { to: 'bf16' })).report.tensors.find((t) => t.name === 'huge')!;
  assert.is(inf.relRmsError, Infinity, 'overflow to inf without --saturate');
});

test('files: the output follows openOutput: a FIFO is written in place, a link kept, a directory refused before converting, a foreign file kept unless overwrite, the mode kept', async () => {
  const inPath = join(dir, 'src.safetensors');
  writeFileSync(inPath, model);
  const want = (await convertSafetensorsBytes(model, { to: 'bf16', memfitVersion: memfitVersion() })).bytes;
  // A FIFO: the file comes through the pipe, in order; the FIFO stays.
  const fifo = join(dir, 'out.fifo');
  assert.is(spawnSync('mkfifo', [fifo]).status, 0);
  const cat = spawn('cat', [fifo]);
  const chunks: Buffer[] = [];
  cat.stdout.on('data', (d: Buffer) => chunks.push(d));
  const closed = new Promise((r) => cat.on('close', r));
  await convertSafetensors(inPath, fifo, { to: 'bf16' });
  await closed;
  assert.equal([...Buffer.concat(chunks)], [...want], 'the reader got the converted file');
  assert.ok(lstatSync(fifo).isFIFO(), 'still a FIFO');
  // A directory: refused before any conversion work (no progress reported).
  mkdirSync(join(dir, 'outdir'));
  let progressed = false;
  await rejects(convertSafetensors(inPath, join(dir, 'outdir'), { to: 'bf16', onProgress: () => { progressed = true; } }), ConvertError, /outdir is a directory/);
  assert.not.ok(progressed, 'refused before converting');
  await rejects(convertSafetensors(inPath, join(dir, 'nodir', 'x.safetensors'), { to: 'bf16' }), ConvertError, /the directory .*nodir does not exist/);
  await rejects(convertSafetensors(inPath, '', { to: 'bf16' }), ConvertError, /output: empty path/);
  // A file that is not a converted model: kept unless overwrite.
  const foreign = join(dir, 'precious.txt');
  writeFileSync(foreign, 'precious\n');
  chmodSync(foreign, 0o600);
  await rejects(convertSafetensors(inPath, foreign, { to: 'bf16' }), ConvertError, /precious\.txt exists and is not a model memfit converted \(it is not a safetensors file\); not replacing it/);
  await rejects(convertSafetensors(inPath, join(dir, 'src-copy.safetensors'), { to: 'bf16' }).then(() => convertSafetensors(join(dir, 'src-copy.safetensors'), inPath, { to: 'bf16' })), ConvertError, /not a model memfit converted \(it is a safetensors file memfit did not convert\)/);
  assert.is(readFileSync(foreign, 'utf8'), 'precious\n');
  await convertSafetensors(inPath, foreign, { to: 'bf16', overwrite: true });
  assert.equal([...readFileSync(foreign)], [...want]);
  assert.is(statSync(foreign).mode & 0o777, 0o600, 'the replaced file keeps its mode');
  // A link to a converted model: the model is replaced (a converted file may be), the link kept.
  symlinkSync(foreign, join(dir, 'link.safetensors'));
  await convertSafetensors(inPath, join(dir, 'link.safetensors'), { to: 'e4m3' });
  assert.ok(lstatSync(join(dir, 'link.safetensors')).isSymbolicLink());
  assert.is(parseSafetensors(new Uint8Array(readFileSync(foreign))).tensors.get('model.embed_tokens.weight')!.dtype, 'F8_E4M3');
  assert.is(statSync(foreign).mode & 0o777, 0o600);
  assert.equal(readdirSync(dir).filter((f) => f.includes('tmp')), [], 'no temporary file');
});

test('fp8Scale: documented edge cases', () => {
  assert.is(fp8Scale(0, 'float8_e4m3fn'), 1);
  assert.is(fp8Scale(448, 'float8_e4m3fn'), 1);
  assert.is(fp8Scale(1e-45, 'float8_e4m3fn'), 2 ** -126);
  assert.is(fp8Scale(57344 * 2, 'float8_e5m2'), 2);
  const s = fp8Scale(0.1, 'float8_e4m3fn');
  assert.ok(0.1 / s <= 448 && s === Math.fround(s));
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
