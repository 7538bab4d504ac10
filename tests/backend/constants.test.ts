// One source for the facts TypeScript, AssemblyScript and WGSL share: the generated constants
// (scripts/gen-constants.ts) equal the TypeScript tables, and kernels switch on their names.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, readdirSync } from 'node:fs';
import { FORMATS, INT32_FORMAT_ID, ROUNDING_IDS } from '../../src/dtype/formats.js';
import { BINARY_IDS, REDUCE_IDS, UNARY_IDS } from '../../src/backend/ops.js';
import { QUANT_BUCKETS, QUANT_LOW_BITS, QUANT_LUT_OFFSET } from '../../src/backend/quant.js';
import { shaders } from '../../build/shaders.js';

const root = new URL('../../', import.meta.url);
const read = (p: string) => readFileSync(new URL(p, root), 'utf8');

function constants(src: string, re: RegExp): Map<string, number> {
  const m = new Map<string, number>();
  for (const x of src.matchAll(re)) m.set(x[1], Number(x[2]));
  return m;
}

test('the generated AssemblyScript and WGSL constants equal the TypeScript tables', () => {
  const as = constants(read('build/constants.ts'), /export const (\w+): i32 = (\d+);/g);
  const wgsl = constants(shaders.dtype, /const (\w+): u32 = (\d+)u;/g);
  const expect = new Map<string, number>([['I32', INT32_FORMAT_ID], ['FORMAT_COUNT', FORMATS.length], ['F32', 0], ['BF16', 2], ['E4M3FN', 3], ['E2M1FN', 8]]);
  for (const [k, v] of Object.entries(ROUNDING_IDS)) expect.set(`ROUND_${k.replace('-', '_').toUpperCase()}`, v);
  for (const [k, v] of Object.entries(UNARY_IDS)) expect.set(`U_${k.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()}`, v);
  for (const [k, v] of Object.entries(BINARY_IDS)) expect.set(`B_${k.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()}`, v);
  for (const [k, v] of Object.entries(REDUCE_IDS)) expect.set(`R_${k.toUpperCase()}`, v);
  expect.set('QUANT_BUCKETS', QUANT_BUCKETS).set('QUANT_LOW_BITS', QUANT_LOW_BITS).set('QUANT_LUT_OFFSET', QUANT_LUT_OFFSET);
  for (const [k, v] of expect) {
    assert.is(as.get(k), v, `AssemblyScript ${k}`);
    assert.is(wgsl.get(k), v, `WGSL ${k}`);
  }
});

test('kernels switch on the generated names, never on literal ids', () => {
  const files = [
    ...readdirSync(new URL('shaders/', root)).filter((f) => f.endsWith('.wgsl')).map((f) => `shaders/${f}`),
    'assembly/kernels/elementwise.ts', 'assembly/formats.ts', 'shaders/dtype.wgsl',
  ];
  for (const f of files) {
    const src = read(f);
    assert.not.match(src, /case \d+u?:/, `${f} switches on a literal id`);
    assert.not.match(src, /\bOP (==|>=|<=) \d+u?\b/, `${f} compares OP with a literal id`);
  }
});

test.run();
