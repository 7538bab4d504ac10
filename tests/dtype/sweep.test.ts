// A sampled version of the exhaustive 2^32 sweep (npm run test:exhaustive): 256 runs of 2^13
// consecutive float32 bit patterns spread over the whole range, plus the runs around every special
// boundary (zero, subnormal/normal, the overflow threshold, inf/NaN), for every format and mode.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { finfo } from '../../src/index.js';
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

test.run();
