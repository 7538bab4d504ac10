import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mxQuantize, mxDequantize, encode, decode, finfo, amax, scaleFromAmax, quantizePerTensor, dequantizePerTensor, MX_ELEMENT_DTYPES } from '../../src/index.js';
import { invalid } from '../helpers/errors.js';

const EMAX: Record<string, number> = { float8_e4m3fn: 8, float8_e5m2: 15, float6_e3m2fn: 4, float6_e2m3fn: 2, float4_e2m1fn: 2 };

test('shared scale is floor(log2(amax)) - emax_elem, as an E8M0 code', () => {
  for (const dtype of MX_ELEMENT_DTYPES) {
    for (const amaxV of [1, 3584, 0.001, 6, 448, 57344, 2 ** -100]) {
      const v = new Float32Array(32).fill(amaxV / 3);
      v[5] = -amaxV;
      const q = mxQuantize(v, dtype);
      const shared = Math.floor(Math.log2(Math.fround(amaxV))) - EMAX[dtype];
      assert.is(q.scales[0], Math.max(shared, -127) + 127, `${dtype} amax ${amaxV}`);
    }
  }
});

test('elements are round-to-nearest-even(V / X), normals clamped to the element max', () => {
  const rnd = (i: number) => Math.sin(i * 12.9898) * 43758.5453 % 1;
  for (const dtype of MX_ELEMENT_DTYPES) {
    const n = 32 * 9 + 5; // a partial last block
    const v = Float32Array.from({ length: n }, (_, i) => rnd(i) * 2 ** ((i >> 5) * 3 - 10));
    const q = mxQuantize(v, dtype);
    assert.is(q.scales.length, 10);
    const deq = mxDequantize(q);
    for (let b = 0; b < q.scales.length; b++) {
      const X = 2 ** (q.scales[b] - 127);
      const block = v.subarray(b * 32, b * 32 + 32);
      const want = encode(Float64Array.from(block, (x) => x / X), dtype, { saturate: true });
      assert.equal([...q.codes.subarray(b * 32, b * 32 + 32)], [...want], `${dtype} block ${b}`);
      const vals = decode(want, dtype);
      for (let i = 0; i < block.length; i++) assert.is(deq[b * 32 + i], Math.fround(vals[i] * X));
    }
  }
});

test('values that exceed the element max after scaling saturate (e4m3: amax/X in [256, 512) > 448)', () => {
  const v = new Float32Array(32);
  v[0] = 500; // floor(log2 500) = 8 -> X = 1 -> 500 clamps to 448
  const q = mxQuantize(v, 'e4m3');
  assert.is(q.scales[0], 127);
  assert.is(q.codes[0], 0x7e);
  assert.is(mxDequantize(q)[0], 448);
});

test('exactly representable blocks round-trip; all-zero blocks; NaN/inf blocks', () => {
  const fp4Values = [0, 0.5, 1, 1.5, 2, 3, 4, 6];
  const v = Float32Array.from({ length: 64 }, (_, i) => fp4Values[i % 8] * 2 ** 20 * (i % 3 ? 1 : -1));
  v.fill(0, 32, 64);
  const q = mxQuantize(v, 'mxfp4');
  assert.equal([...mxDequantize(q)], [...v].map((x) => (x === 0 ? 0 : x)));
  assert.is(q.scales[1], 0); // all-zero block: smallest scale 2^-127
  const w = new Float32Array(96).fill(1);
  w[40] = NaN;
  w[70] = -Infinity;
  const qn = mxQuantize(w, 'mxfp8_e4m3');
  assert.equal([...qn.scales], [127 - 8, 0xff, 0xff]); // block 0: amax 1 -> 2^(0 - 8)
  const d = mxDequantize(qn);
  assert.ok(d.subarray(32).every(Number.isNaN));
  assert.ok(d.subarray(0, 32).every((x) => x === 1));
});

test('blockSize option and validation', () => {
  const v = Float32Array.from({ length: 50 }, (_, i) => i);
  const q = mxQuantize(v, 'e2m3', { blockSize: 16 });
  assert.is(q.scales.length, 4);
  assert.throws(() => mxQuantize(v, 'bf16'), /not an MX element type/);
  assert.throws(() => mxQuantize(v, 'e2m3', { blockSize: 0 }), /blockSize/);
  assert.throws(() => mxDequantize({ ...q, scales: q.scales.subarray(0, 2) }), /expected ceil\(50 \/ 16\) = 4/);
});

test('per-tensor scaling maps amax to the format max', () => {
  const v = Float32Array.of(0.01, -3, 2.5, 0);
  assert.is(amax(v), 3);
  assert.ok(Number.isNaN(amax([1, NaN])));
  assert.is(scaleFromAmax(3, 'e4m3'), 448 / 3);
  assert.is(scaleFromAmax(0, 'e4m3'), 1);
  assert.is(scaleFromAmax(3, 'e4m3', { margin: 1 }), 448 / 3 / 2);
  const q = quantizePerTensor(v, 'e4m3');
  assert.is(q.codes[1], 0xfe); // -3 * scale = -448
  const back = dequantizePerTensor(q);
  for (let i = 0; i < v.length; i++) assert.ok(Math.abs(back[i] - v[i]) <= Math.abs(v[i]) * finfo('e4m3').eps, `${i}`);
});


test('blockSize of 2^31 or more is refused before the kernel (it was cut to 32 bits: a division by zero, writes past the scales, reads past them)', () => {
  const v64 = Float32Array.from({ length: 64 }, (_, i) => (i % 7) - 3);
  for (const blockSize of [2 ** 32, 2 ** 32 + 1, 2 ** 31, 2 ** 40]) {
    invalid(() => mxQuantize(v64, 'mxfp8_e4m3', { blockSize }), new RegExp(`mxQuantize: blockSize must be an integer from 1 to 2147483647 \\(2\\^31 - 1\\), got ${blockSize}`));
  }
  // The heap is intact: a valid call afterwards works (it was a bogus OutOfMemoryError).
  const q = mxQuantize(v64, 'mxfp4');
  assert.equal(Array.from(mxDequantize(q)), Array.from(v64));
  // A block size of 2^31 - 1 is one (partial) block, the same as a block of the whole length.
  const big = mxQuantize(v64, 'mxfp4', { blockSize: 2 ** 31 - 1 });
  const whole = mxQuantize(v64, 'mxfp4', { blockSize: 64 });
  assert.equal([Array.from(big.scales), Array.from(big.codes)], [Array.from(whole.scales), Array.from(whole.codes)]);
  assert.equal(Array.from(mxDequantize(big)), Array.from(mxDequantize(whole)));
  // mxDequantize read 2 scales of a 1-scale tensor ([1, 2.9e-39]).
  invalid(() => mxDequantize({ elemDtype: 'fp4' as never, blockSize: 2 ** 32 + 1, length: 2, scales: Uint8Array.of(127), codes: Uint8Array.of(2, 1) }), /mxDequantize: blockSize must be an integer from 1 to 2147483647/);
  assert.equal(Array.from(mxDequantize({ elemDtype: 'float4_e2m1fn', blockSize: 2 ** 31 - 1, length: 2, scales: Uint8Array.of(127), codes: Uint8Array.of(2, 1) })), [1, 0.5]);
  for (const blockSize of [1.5, -1, NaN, '32']) invalid(() => mxQuantize(v64, 'mxfp4', { blockSize: blockSize as never }), /blockSize must be an integer/);
});

test('quantizePerTensor: NaN or inf in the data is named as such (not as an amax the caller never passed)', () => {
  invalid(() => quantizePerTensor([1, NaN, 2], 'e4m3'), /quantizePerTensor values\[1\] is NaN: per-tensor scaling needs finite values/);
  invalid(() => quantizePerTensor(Float32Array.of(1, 2, -Infinity), 'e4m3'), /quantizePerTensor values\[2\] is -Infinity/);
});

test('a margin (or amax) that puts the scale out of range is refused, never a scale of 0 or inf', () => {
  for (const margin of [2000, 1100, 19]) {
    invalid(() => quantizePerTensor([1, 2, 3], 'e4m3', { margin }), new RegExp(`quantizePerTensor: options.margin ${margin} maps amax to float8_e4m3fn's max / 2\\^${margin}, below its smallest subnormal .*at most log2\\(max / smallestSubnormal\\) = 17.8074`));
    invalid(() => scaleFromAmax(3, 'e4m3', { margin }), /scaleFromAmax: options.margin .* below its smallest subnormal/);
  }
  for (const margin of [-2000, -1100]) {
    invalid(() => quantizePerTensor([1, 2, 3], 'e4m3', { margin }), new RegExp(`quantizePerTensor: scale = max / amax / 2\\^margin = 448 / 3 / 2\\^${margin} is Infinity, not a positive finite number`));
    invalid(() => scaleFromAmax(3, 'e4m3', { margin }), /scaleFromAmax: scale = .* is Infinity, not a positive finite number/);
  }
  invalid(() => quantizePerTensor([1e-310], 'e4m3'), /448 \/ 1e-310 \/ 2\^0 is Infinity/);
  invalid(() => scaleFromAmax(NaN, 'e4m3'), /scaleFromAmax: amax must be a non-negative number, got NaN/);
  // The largest margin allowed still maps amax to a nonzero code (the smallest subnormal), and round-trips it.
  const top = Math.log2(448 / 2 ** -9);
  const q = quantizePerTensor([3, 0], 'e4m3', { margin: top });
  assert.equal(Array.from(q.codes), [1, 0]);
  assert.equal(Array.from(dequantizePerTensor(q)), [3, 0]);
  assert.is(scaleFromAmax(3, 'fp4', { margin: -1000 }), 6 / 3 * 2 ** 1000, 'a negative margin that keeps the scale finite is allowed');
  assert.is(scaleFromAmax(Infinity, 'e4m3'), 1, 'documented: amax inf gives 1');
});

test('mxQuantize takes float32, float64 and numbers only; a finite value beyond float32\'s range is refused, not a NaN block', () => {
  for (const bad of [Uint16Array.of(0x3c00), Int8Array.of(1), Uint8ClampedArray.of(1), Uint32Array.of(1)]) {
    invalid(() => mxQuantize(bad as never, 'e4m3'), /mxQuantize values must be a Float32Array, a Float64Array or an array of numbers/);
  }
  invalid(() => mxQuantize([1e39, 1], 'e4m3', { blockSize: 2 }), /mxQuantize values\[0\] = 1e\+39 is beyond float32's range/);
  invalid(() => mxQuantize(Float64Array.of(1, -1e300), 'e4m3', { blockSize: 2 }), /values\[1\] = -1e\+300/);
  // Float64 within range: the same as its float32 rounding.
  const x = Float64Array.of(1, 2, 3, 4.5), m = mxQuantize(x, 'e4m3', { blockSize: 4 });
  assert.equal([...mxDequantize(m)], [...mxDequantize(mxQuantize(Float32Array.from(x), 'e4m3', { blockSize: 4 }))]);
  assert.equal([...mxDequantize(m)], [1, 2, 3, 4.5]);
});

test.run();
