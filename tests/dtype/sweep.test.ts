// A sampled version of the exhaustive 2^32 sweep (npm run test:exhaustive): 256 runs of 2^13
// consecutive float32 bit patterns spread over the whole range, plus the runs around every special
// boundary (zero, subnormal/normal, the overflow threshold, inf/NaN), for every format and mode.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encode, finfo } from '../../src/index.js';
import { NARROW_FORMATS } from '../helpers/reference.js';
import { sweep } from '../helpers/sweep.js';

const RUN = 1 << 13;
const starts: number[] = [];
for (let k = 0; k < 256; k++) starts.push(Math.floor((k * 2 ** 32) / 256 + k * 40503) >>> 0);
const f32bits = (x: number) => new Uint32Array(Float32Array.of(x).buffer)[0];

for (const dtype of NARROW_FORMATS) {
  const i = finfo(dtype);
  // Boundaries of this format: both signs.
  const edges = [0, i.smallestSubnormal, i.smallestNormal, i.max, Infinity].map(f32bits);
  const local = edges.flatMap((b) => [b, (b | 0x80000000) >>> 0]).map((b) => (b - RUN / 2) >>> 0);
  // NaNs of both signs: the first payloads, the quiet bit, and the last payloads before the next sign.
  for (const nan of [0x7f800001, 0x7fc00000 - RUN / 2, 0x80000000 - RUN]) local.push(nan, (nan | 0x80000000) >>> 0);
  for (const opts of [{}, { saturate: true }, { rounding: 'toward-zero' as const }]) {
    test(`${dtype} ${JSON.stringify(opts)}: wasm encoder = reference on sampled float32 inputs`, () => {
      let checked = 0;
      for (const s of [...starts, ...local]) {
        const r = sweep(dtype, opts, s, RUN);
        checked += r.checked;
        assert.is(r.mismatches, 0, `from 0x${s.toString(16)}: [bits, wasm, ref] ${JSON.stringify(r.examples.map((e) => e.map((v) => '0x' + v.toString(16))))}`);
      }
      assert.ok(checked >= 256 * RUN);
    });
  }
}

// An independent check of the NaN rule, not through the reference: tests/fixtures/golden/README.md
// records ml_dtypes' behaviour (made with ml_dtypes itself): fp6/fp4 have no NaN, and a float32 NaN
// becomes the code of -0.0 when its sign bit is clear and +0.0 (code 0) when it is set. Every one of
// the 2 x (2^23 - 1) NaN bit patterns, in every rounding mode.
for (const dtype of ['float6_e3m2fn', 'float6_e2m3fn', 'float4_e2m1fn'] as const) {
  test(`${dtype}: every float32 NaN gives the zero of the opposite sign (ml_dtypes), in every mode`, () => {
    const negZero = 1 << (finfo(dtype).bits - 1);
    const n = (1 << 23) - 1;
    const bits = new Uint32Array(2 * n);
    for (let i = 0; i < n; i++) { bits[i] = 0x7f800001 + i; bits[n + i] = (0xff800001 + i) >>> 0; }
    const x = new Float32Array(bits.buffer);
    for (const opts of [{}, { saturate: true }, { rounding: 'toward-zero' as const }, { rounding: 'stochastic' as const, seed: 7 }]) {
      const codes = encode(x, dtype, opts);
      let bad = -1;
      for (let i = 0; i < 2 * n && bad < 0; i++) if (codes[i] !== (i < n ? negZero : 0)) bad = i;
      assert.is(bad, -1, bad < 0 ? '' : `${JSON.stringify(opts)}: 0x${bits[bad].toString(16)} -> 0x${codes[bad].toString(16)}`);
    }
    // Float64 input takes the same rule (ml_dtypes rounds through float32).
    assert.equal([...encode(new Float64Array(BigUint64Array.of(0x7ff8000000000001n, 0xfff8000000000001n).buffer), dtype)], [negZero, 0]);
  });
}

test.run();
