import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { finfo, formatTable, formatOf, canonicalDType, DTYPE_NAMES, UnknownDTypeError, FORMATS, codeValue, maxFiniteCode, InvalidArgumentError } from '../../src/index.js';
import { golden, GOLDEN_FORMATS } from '../helpers/golden.js';

test('aliases resolve to canonical names', () => {
  const cases: [string, string][] = [
    ['f16', 'float16'], ['half', 'float16'], ['bf16', 'bfloat16'], ['fp8_e4m3', 'float8_e4m3fn'], ['e4m3', 'float8_e4m3fn'],
    ['E5M2', 'float8_e5m2'], ['e8m0', 'float8_e8m0fnu'], ['mxfp4', 'float4_e2m1fn'], ['fp4', 'float4_e2m1fn'],
    ['e3m2', 'float6_e3m2fn'], ['e2m3', 'float6_e2m3fn'], ['f32', 'float32'], ['float8_e4m3fn', 'float8_e4m3fn'],
  ];
  for (const [alias, name] of cases) assert.is(canonicalDType(alias), name, alias);
});

test('an unknown dtype is an error that lists the valid names', () => {
  try {
    formatOf('float7');
    assert.unreachable('should throw');
  } catch (e) {
    assert.instance(e, UnknownDTypeError);
    const msg = (e as Error).message;
    assert.match(msg, '"float7"');
    for (const f of FORMATS) assert.ok(msg.includes(f.name), f.name);
  }
  assert.throws(() => finfo('int8'), /valid names/);
  assert.ok(DTYPE_NAMES.includes('bf16'));
});

test('finfo equals ml_dtypes finfo for every format', () => {
  const dec = golden('decode.json');
  for (const name of GOLDEN_FORMATS) {
    const g = dec[`${name}:finfo`];
    const i = finfo(name);
    assert.is(i.bits, g.bits, `${name} bits`);
    assert.is(i.exponentBits, g.nexp, `${name} nexp`);
    assert.is(i.mantissaBits, g.nmant, `${name} nmant`);
    assert.is(i.max, g.max, `${name} max`);
    assert.is(i.min, g.min, `${name} min`);
    assert.is(i.eps, g.eps, `${name} eps`);
    assert.is(i.smallestNormal, g.smallest_normal, `${name} smallest_normal`);
    assert.is(i.smallestSubnormal, g.smallest_subnormal, `${name} smallest_subnormal`);
    assert.is(i.maxExp, g.maxexp, `${name} maxexp`);
    assert.is(i.minExp, g.minexp, `${name} minexp`);
  }
});

test('finfo agrees with torch.finfo where PyTorch has the format', () => {
  const t = golden('torch_finfo.json');
  for (const [name, g] of Object.entries<any>(t)) {
    const i = finfo(name);
    assert.is(i.max, g.max, name);
    assert.is(i.min, g.min, name);
    assert.is(i.eps, g.eps, name);
    assert.is(i.smallestNormal, g.tiny, name);
  }
});

test('finfo flags: inf, NaN, sign', () => {
  assert.equal([finfo('float16').hasInf, finfo('float16').hasNaN], [true, true]);
  assert.equal([finfo('e4m3').hasInf, finfo('e4m3').hasNaN], [false, true]);
  assert.equal([finfo('e2m1').hasInf, finfo('e2m1').hasNaN], [false, false]);
  assert.equal([finfo('e8m0').signed, finfo('e8m0').hasNaN], [false, true]);
});

test('codeValue (plain TypeScript) decodes every code as ml_dtypes does', () => {
  const dec = golden('decode.json');
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  for (const name of GOLDEN_FORMATS) {
    const bits: number[] = dec[name];
    const f = formatOf(name);
    for (let c = 0; c < bits.length; c++) {
      u32[0] = bits[c] >>> 0;
      const v = codeValue(f, c);
      if (Number.isNaN(f32[0])) assert.ok(Number.isNaN(v), `${name} code ${c}`);
      else assert.ok(Object.is(v, f32[0]), `${name} code ${c}: ${v} vs ${f32[0]}`);
    }
  }
});

test('formatTable prints a row per format with correct limits', () => {
  const t = formatTable();
  for (const f of FORMATS) assert.ok(t.includes(f.name), f.name);
  const e4m3 = t.split('\n').find((l) => l.startsWith('float8_e4m3fn'))!;
  assert.match(e4m3, /\b448\b/);
  assert.match(e4m3, /-448/);
  const fp4 = t.split('\n').find((l) => l.startsWith('float4_e2m1fn'))!;
  assert.match(fp4, /\b6\b.*-6/);
  assert.match(formatTable(['bf16']), /bfloat16/);
});

function refused(fn: () => unknown, pattern: RegExp, type: new (...a: never[]) => Error = InvalidArgumentError): void {
  assert.throws(fn, (e: unknown) => e instanceof type && pattern.test((e as Error).message), String(pattern));
}

test('codeValue refuses codes outside [0, 2^bits) (256 gave 0, -1 NaN); codeValue and maxFiniteCode take dtype names', () => {
  const e4m3 = formatOf('e4m3');
  for (const code of [256, -1, 1.5, NaN, 2 ** 32]) refused(() => codeValue(e4m3, code), new RegExp(`codeValue: ${String(code).replace(/[.+-]/g, '\\$&')} is not a float8_e4m3fn code \\(integers 0\\.\\.255\\)`));
  refused(() => codeValue('fp4', 16), /16 is not a float4_e2m1fn code \(integers 0\.\.15\)/);
  refused(() => codeValue(e4m3, '1' as never), /"1" is not a float8_e4m3fn code/);
  // The edges of the range are codes.
  assert.ok(Number.isNaN(codeValue(e4m3, 255)));
  assert.is(codeValue(e4m3, 0xfe), -448);
  assert.is(codeValue(e4m3, 0), 0);
  assert.ok(Number.isNaN(codeValue(formatOf('float32'), 2 ** 32 - 1)));
  assert.is(codeValue('e8m0', 255 - 1), 2 ** 127);
  // Names and aliases, any case, as everywhere else (a name gave NaN).
  assert.is(codeValue('e4m3', 0x7e), 448);
  assert.is(codeValue('FLOAT8_E5M2', 0x7b), 57344);
  assert.is(maxFiniteCode('e4m3'), 0x7e);
  assert.is(maxFiniteCode('fp4'), 7);
  assert.is(maxFiniteCode({ ...formatOf('bf16') }), 0x7f7f, 'a copy of a format record is still that format');
  refused(() => codeValue('e4m3x' as never, 0), /unknown dtype "e4m3x"/, UnknownDTypeError);
  for (const bad of [null, undefined, 3, {}, { name: 'e4m3' }, [e4m3]]) {
    refused(() => codeValue(bad as never, 0), /codeValue expects a format \(an entry of FORMATS, or formatOf\(name\)\) or a dtype name/);
    refused(() => maxFiniteCode(bad as never), /maxFiniteCode expects a format/);
  }
});

test('formatTable takes one dtype name too; anything else but a list of names is an InvalidArgumentError', () => {
  assert.is(formatTable('e4m3'), formatTable(['float8_e4m3fn']));
  assert.is(formatTable('e4m3').split('\n').length, 3);
  for (const bad of [null, 3, {}, new Set(['e4m3'])]) refused(() => formatTable(bad as never), /formatTable expects a dtype name or an array of dtype names, got/);
  refused(() => formatTable(['e4m3', null as never]), /unknown dtype null/, UnknownDTypeError);
  refused(() => formatTable('nope' as never), /unknown dtype "nope"/, UnknownDTypeError);
});

test('the format table is frozen: changing a shared trait cannot change every decode after it', () => {
  assert.ok(Object.isFrozen(FORMATS) && FORMATS.every((f) => Object.isFrozen(f) && Object.isFrozen(f.aliases)));
  assert.ok(Object.isFrozen(DTYPE_NAMES));
  assert.is(Reflect.set(formatOf('e4m3'), 'bias', 3), false);
  assert.throws(() => { (DTYPE_NAMES as string[]).push('zzz'); }, TypeError);
  assert.is(formatOf('e4m3').bias, 7);
  assert.is(codeValue('e4m3', 0x38), 1);
});

test.run();
