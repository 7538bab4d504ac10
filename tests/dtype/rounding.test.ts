import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encode, decode, finfo, allocate, InvalidArgumentError } from '../../src/index.js';

const one = (x: number, dtype: string, opts = {}) => encode(Float32Array.of(x), dtype, opts)[0];

test('saturate: finite overflow and ±inf clamp to ±max, NaN stays NaN', () => {
  assert.is(one(1000, 'e4m3'), 0x7f); // ml_dtypes default: overflow -> NaN
  assert.is(one(1000, 'e4m3', { saturate: true }), 0x7e);
  assert.is(one(-Infinity, 'e4m3', { saturate: true }), 0xfe);
  assert.is(one(NaN, 'e4m3', { saturate: true }), 0x7f);
  assert.is(one(Infinity, 'e5m2'), 0x7c);
  assert.is(one(Infinity, 'e5m2', { saturate: true }), 0x7b);
  assert.is(one(1e6, 'e5m2', { saturate: true }), 0x7b);
  assert.is(one(NaN, 'e5m2', { saturate: true }), 0x7e);
  assert.is(one(70000, 'float16'), 0x7c00);
  assert.is(one(70000, 'float16', { saturate: true }), 0x7bff);
  assert.is(one(-1e39 * 0 - 3.5e38, 'bf16', { saturate: true }), 0xff7f);
  assert.is(one(100, 'fp4'), 0x7); // fp4 has no inf: saturates anyway
  assert.is(one(NaN, 'fp4'), 0x8); // ml_dtypes: NaN -> -0
  assert.is(one(NaN, 'e3m2'), 0x20);
  assert.is(one(Infinity, 'e8m0'), 0xff);
  assert.is(one(Infinity, 'e8m0', { saturate: true }), 0xfe);
  assert.is(one(0, 'e8m0', { saturate: true }), 0x00);
});

test('toward-zero truncates magnitudes; finite overflow gives max (IEEE), inf follows the format', () => {
  assert.is(decode(Uint8Array.of(one(0.3, 'e4m3', { rounding: 'toward-zero' })), 'e4m3')[0], 0.28125);
  assert.is(decode(Uint8Array.of(one(-0.3, 'e4m3', { rounding: 'toward-zero' })), 'e4m3')[0], -0.28125);
  assert.is(one(0.3, 'e4m3'), one(0.3125, 'e4m3')); // nearest goes up here
  assert.is(one(500, 'e4m3', { rounding: 'toward-zero' }), 0x7e);
  assert.is(one(1e6, 'float16', { rounding: 'toward-zero' }), 0x7bff);
  assert.is(one(Infinity, 'float16', { rounding: 'toward-zero' }), 0x7c00);
  assert.is(one(1.9999, 'e8m0', { rounding: 'toward-zero' }), 127);
  assert.is(one(1.9999, 'fp4', { rounding: 'toward-zero' }), 0x3); // 1.5
});

test('stochastic rounding: unbiased (the mean converges to the input), only the two neighbours', () => {
  const n = 200_000;
  for (const [x, dtype] of [[0.3, 'e4m3'], [1 / 3, 'bf16'], [2.6, 'fp4'], [-0.7, 'e5m2'], [1e-3, 'e2m3'], [12345.678, 'float16']] as [number, string][]) {
    const values = new Float32Array(n).fill(x);
    const dec = decode(encode(values, dtype, { rounding: 'stochastic', seed: 7 }), dtype);
    const lo = decode(encode(Float32Array.of(x), dtype, { rounding: 'toward-zero' }), dtype)[0];
    const seen = new Set(dec);
    assert.ok(seen.size <= 2, `${dtype}: ${[...seen]}`);
    let sum = 0;
    for (const v of dec) sum += v;
    const mean = sum / n;
    const hi = [...seen].find((v) => v !== lo) ?? lo;
    const x32 = Math.fround(x);
    const p = (x32 - lo) / (hi - lo || 1);
    const sigma = Math.abs(hi - lo) * Math.sqrt((p * (1 - p)) / n);
    assert.ok(Math.abs(mean - x32) < 5 * sigma + 1e-12, `${dtype}: mean ${mean} vs ${x32} (sigma ${sigma})`);
  }
});

test('stochastic rounding is reproducible with a seed, chunk-independent with offset, exact values unchanged', () => {
  const v = Float32Array.from({ length: 100_003 }, (_, i) => Math.sin(i) * 100);
  const a = encode(v, 'e5m2', { rounding: 'stochastic', seed: 123n });
  assert.equal(encode(v, 'e5m2', { rounding: 'stochastic', seed: 123 }), a);
  assert.not.equal(encode(v, 'e5m2', { rounding: 'stochastic', seed: 124 }), a);
  const first = encode(v.subarray(0, 40_000), 'e5m2', { rounding: 'stochastic', seed: 123n });
  const rest = encode(v.subarray(40_000), 'e5m2', { rounding: 'stochastic', seed: 123n, offset: 40_000 });
  assert.equal([...first, ...rest], [...a]);
  const exact = Float32Array.of(0.5, -448, 0, 3.5e-3 * 0 + 0.001953125);
  for (let k = 0; k < 20; k++) assert.equal(encode(exact, 'e4m3', { rounding: 'stochastic', seed: k }), encode(exact, 'e4m3'));
  // float64 input goes through the same generator
  const d = encode(Float64Array.from(v), 'e5m2', { rounding: 'stochastic', seed: 123n });
  assert.equal(d, a);
});

test('bfloat16 stochastic rounding of float32 (its fast path) gives the codes of the generic path (float64 input), every kind of value', () => {
  const bits = new Uint32Array(200_000);
  let s = 12345;
  const r = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
  for (let i = 0; i < bits.length; i++) {
    const k = i % 8;
    bits[i] = k === 0 ? r() & 0x807fffff // subnormals and zeros
      : k === 1 ? (r() & 0x80000000) | 0x7f7f0000 | (r() & 0xffff) // largest binade: carries to infinity
        : k === 2 ? (r() & 0x80000000) | 0x7f800000 | (i % 3 === 0 ? 0 : r() & 0x7fffff) // inf and NaN
          : k === 3 ? (r() & 0xffff0000) // exact bfloat16 values
            : r();
  }
  const v = new Float32Array(bits.buffer);
  for (const saturate of [false, true]) {
    for (const seed of [0n, 7n, 2n ** 63n + 5n]) {
      const fast = encode(v, 'bfloat16', { rounding: 'stochastic', seed, saturate, offset: 3 });
      const generic = encode(Float64Array.from(v), 'bfloat16', { rounding: 'stochastic', seed, saturate, offset: 3 });
      assert.equal([...fast], [...generic], `saturate ${saturate}, seed ${seed}`);
    }
  }
});

test('options are validated', () => {
  assert.throws(() => encode(Float32Array.of(1), 'e4m3', { rounding: 'up' as never }), /unknown rounding/);
  assert.throws(() => encode(Float32Array.of(1), 'e4m3', { out: new Uint16Array(1) }), (e: unknown) => e instanceof InvalidArgumentError && /Uint8Array/.test((e as Error).message));
  assert.throws(() => encode(Float32Array.of(1, 2), 'e4m3', { out: new Uint8Array(1) }), /length 1, expected 2/);
  assert.throws(() => decode([16], 'fp4'), /code 16 at index 0 is not a valid float4_e2m1fn code/);
  assert.throws(() => decode(Uint8Array.of(1, 2, 200), 'e2m3'), /code 200 at index 2/);
  assert.throws(() => encode('abc' as never, 'e4m3'), /expects a Float32Array/);
});

test('WasmArray: encode and decode in place (no copies) give the same codes', () => {
  const n = 100_000;
  const src = allocate('float32', n);
  const data = Float32Array.from({ length: n }, (_, i) => (i - n / 2) * 0.37);
  (src.array as Float32Array).set(data);
  for (const dtype of ['bf16', 'e4m3', 'fp4', 'float16']) {
    const out = allocate(dtype, n);
    encode(src, dtype, { out });
    assert.equal(Array.from(out.array), Array.from(encode(data, dtype)), dtype);
    const back = allocate('float32', n);
    decode(out, dtype, { out: back });
    assert.equal(Array.from(back.array), Array.from(decode(encode(data, dtype), dtype)), dtype);
    out.free();
    back.free();
  }
  // Growing the module's memory must not break existing WasmArrays.
  const big = allocate('float32', 20_000_000);
  assert.is((src.array as Float32Array)[1], data[1]);
  big.free();
  src.free();
  assert.throws(() => src.array, /after free/);
  assert.is(finfo('e4m3').max, 448);
});

function refused(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof InvalidArgumentError && pattern.test((e as Error).message), String(pattern));
}

test('a WasmArray is checked by its dtype, not only by its byte width (e4m3 codes went into an fp4 array)', () => {
  const fp4 = allocate('fp4', 1), e4m3 = allocate('e4m3', 1), f16 = allocate('float16', 1), f32 = allocate('float32', 1), f64 = allocate('float64', 1);
  try {
    assert.is(fp4.kind, 'float4_e2m1fn');
    refused(() => encode([448], 'e4m3', { out: fp4 }), /encode options\.out for float8_e4m3fn must be a Uint8Array \(or a WasmArray of float8_e4m3fn\), got a WasmArray of float4_e2m1fn/);
    assert.is((fp4.array as Uint8Array)[0], 0, 'nothing was written');
    refused(() => encode([1], 'bf16', { out: f16 }), /got a WasmArray of float16/);
    refused(() => decode(e4m3, 'e5m2'), /decode codes: the WasmArray holds float8_e4m3fn codes, not float8_e5m2 codes/);
    refused(() => decode(f32, 'bf16'), /decode codes: the WasmArray holds float32 codes, not bfloat16 codes/);
    refused(() => decode(e4m3, 'e4m3', { out: f64 }), /decode options\.out must be a Float32Array/);
    // The right dtype, under any alias, works.
    encode([448], 'float8_e4m3fn', { out: e4m3 });
    assert.equal(Array.from(decode(e4m3, 'E4M3')), [448]);
    encode([6], 'e2m1', { out: fp4 });
    assert.equal(Array.from(decode(fp4, 'fp4', { out: f32 })), [6]);
  } finally {
    for (const x of [fp4, e4m3, f16, f32, f64]) x.free();
  }
});

test('a seed without stochastic rounding is refused (it meant nothing)', () => {
  for (const rounding of [undefined, 'nearest-even', 'toward-zero'] as const) {
    refused(() => encode([1.1], 'e4m3', { rounding, seed: 1 }), new RegExp(`encode: options\\.seed only applies to rounding 'stochastic' \\(rounding is "${rounding ?? 'nearest-even'}"\\)`));
  }
  refused(() => encode([1.1], 'e4m3', { seed: 1.5 }), /options\.seed must be an integer/);
  assert.equal(encode([1.1], 'e4m3', { rounding: 'stochastic', seed: 1 }).length, 1);
});

test('stochastic offsets past 2^53 are exact: chunked (JS memory) and in-place (WasmArray) encodes agree', () => {
  // A JS array goes through the kernel in chunks of 262144 at offset + chunk start; that sum was a
  // float64 and lost its low bit past 2^53, shifting the stream of every chunk after the first.
  const n = 262144 + 4096;
  const v = Float32Array.from({ length: n }, (_, i) => 1 + Math.sin(i) * 0.01);
  const src = allocate('float32', n), dst = allocate('bf16', n); // both in wasm memory: one kernel call at offset
  try {
    (src.array as Float32Array).set(v);
    for (const offset of [2 ** 53 - 1, 2 ** 53 - 262145]) {
      const o = { rounding: 'stochastic', seed: 9, offset } as const;
      encode(src, 'bf16', { ...o, out: dst });
      assert.equal(Array.from(encode(v, 'bf16', o)), Array.from(dst.array), `offset ${offset}`);
    }
  } finally {
    src.free();
    dst.free();
  }
});

test('encode: options.offset (a position in the random stream) only applies to stochastic rounding, as options.seed', () => {
  for (const rounding of [undefined, 'nearest-even', 'toward-zero'] as const) {
    assert.throws(() => encode([1], 'e4m3', { offset: 3, ...(rounding ? { rounding } : {}) }), (e: Error) => e instanceof InvalidArgumentError && /options\.offset only applies to rounding 'stochastic'/.test(e.message));
  }
  assert.equal([...encode([1.1, 2.2], 'e4m3', { rounding: 'stochastic', seed: 5, offset: 3 })], [...encode([0, 0, 0, 1.1, 2.2], 'e4m3', { rounding: 'stochastic', seed: 5 }).subarray(3)]);
});

test('encode of a number[] checks its elements before allocating: a sparse array of 2^32 - 1 holes is refused at its first hole', () => {
  const a: number[] = [];
  a.length = 2 ** 32 - 1;
  assert.throws(() => encode(a, 'e4m3'), (e: Error) => e instanceof InvalidArgumentError && /encode values\[0\] is not a number: undefined/.test(e.message));
});

test.run();
