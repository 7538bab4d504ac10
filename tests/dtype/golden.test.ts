import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encode, decode } from '../../src/index.js';
import { golden, f64FromHex, GOLDEN_FORMATS } from '../helpers/golden.js';
import { ReferenceEncoder } from '../helpers/reference.js';

const dec = golden('decode.json');
const vectors = golden('encode_vectors.json');
const inputs = Float64Array.from(vectors.inputs_f64_hex as string[], f64FromHex);
const inputs32 = new Float32Array(inputs);

test('decode: every code of every format gives ml_dtypes float32 bits (NaN payloads included)', () => {
  for (const name of GOLDEN_FORMATS) {
    const expected: number[] = dec[name];
    const codes = Array.from(expected, (_, i) => i);
    const got = new Uint32Array(decode(codes, name).buffer);
    for (let c = 0; c < expected.length; c++) assert.is(got[c], expected[c] >>> 0, `${name} code 0x${c.toString(16)}`);
  }
});

test('encode (float32 path) matches ml_dtypes on the golden vectors', () => {
  for (const name of GOLDEN_FORMATS) {
    const want: number[] = vectors[name];
    // Whole array (SIMD path) and one element at a time (scalar tail path).
    const got = encode(inputs32, name);
    for (let i = 0; i < want.length; i++) assert.is(got[i], want[i], `${name} input ${vectors.inputs_f64_hex[i]}`);
    for (let i = 0; i < want.length; i += 7) assert.is(encode(inputs32.subarray(i, i + 1), name)[0], want[i], `${name} scalar ${i}`);
  }
});

test('the plain TypeScript reference matches ml_dtypes on the golden vectors (it is a trustworthy oracle)', () => {
  for (const name of GOLDEN_FORMATS) {
    const ref = new ReferenceEncoder(name);
    const want: number[] = vectors[name];
    const out = new Uint32Array(inputs32.length);
    ref.encodeBits32(new Uint32Array(inputs32.buffer), out);
    for (let i = 0; i < want.length; i++) assert.is(out[i], want[i], `${name} input ${vectors.inputs_f64_hex[i]}`);
  }
});

test('float8_e8m0fnu matches ml_dtypes on e8m0_compare.json (zero and negatives -> NaN)', () => {
  const g = golden('e8m0_compare.json');
  const bits = Uint32Array.from(g.f32_bits as number[], (b) => b >>> 0);
  const got = encode(new Float32Array(bits.buffer), 'e8m0');
  for (let i = 0; i < bits.length; i++) assert.is(got[i], g.mldtypes[i], `input 0x${bits[i].toString(16)}`);
});

test('float64 input equals the float32 path wherever rounding to float32 first is exact', () => {
  for (const name of GOLDEN_FORMATS) {
    const exact = inputs.filter((x) => Object.is(Math.fround(x), x) || Number.isNaN(x));
    const a = encode(Float64Array.from(exact), name);
    const b = encode(Float32Array.from(exact), name);
    assert.equal(Array.from(a), Array.from(b), name);
  }
});

test.run();
