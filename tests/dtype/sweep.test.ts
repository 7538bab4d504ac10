// A sampled version of the exhaustive 2^32 sweep (npm run test:exhaustive): 256 runs of 2^13
// consecutive float32 bit patterns spread over the whole range, plus the runs around every special
// boundary (zero, subnormal/normal, the overflow threshold, inf/NaN), for every format and mode.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { encode, finfo, type DTypeName } from '../../src/index.js';
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

// An independent check of NaN handling, not through the reference: tests/fixtures/ml_dtypes_nan.json
// holds what ml_dtypes itself makes of every one of the 2 x (2^23 - 1) float32 NaN bit patterns
// (scripts/make-nan-fixture.py). fp6/fp4 have no NaN: a NaN with its sign bit clear becomes -0.0,
// one with it set +0.0. memfit keeps that rule in every rounding mode.
const NAN = JSON.parse(readFileSync(new URL('../fixtures/ml_dtypes_nan.json', import.meta.url), 'utf8')) as { formats: Record<string, [number, number, number][]> };
for (const [dtype, runs] of Object.entries(NAN.formats)) {
  test(`${dtype}: every float32 NaN gives ml_dtypes' code`, () => {
    const n = runs.reduce((a, r) => a + r[1], 0);
    assert.is(n, 2 * (2 ** 23 - 1));
    const bits = new Uint32Array(n), expected = new Uint16Array(n);
    let k = 0;
    for (const [first, count, code] of runs) for (let i = 0; i < count; i++, k++) { bits[k] = first + i; expected[k] = code; }
    const x = new Float32Array(bits.buffer);
    const modes = finfo(dtype as DTypeName).bits <= 6
      ? [{}, { saturate: true }, { rounding: 'toward-zero' as const }, { rounding: 'stochastic' as const, seed: 7 }]
      : [{}];
    for (const opts of modes) {
      const codes = encode(x, dtype as DTypeName, opts);
      let bad = -1;
      for (let i = 0; i < n && bad < 0; i++) if (codes[i] !== expected[i]) bad = i;
      assert.is(bad, -1, bad < 0 ? '' : `${JSON.stringify(opts)}: 0x${bits[bad].toString(16)} -> 0x${codes[bad].toString(16)}, ml_dtypes 0x${expected[bad].toString(16)}`);
    }
    // binary64 NaNs follow the same rule (ml_dtypes rounds through float32)
    const f64 = encode(new Float64Array(BigUint64Array.of(0x7ff8000000000001n, 0xfff8000000000001n).buffer), dtype as DTypeName);
    assert.equal([...f64], [expected[0], expected[n - 1]]);
  });
}

test.run();
