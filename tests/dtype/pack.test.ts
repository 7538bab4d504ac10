import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pack, unpack, packedByteLength, encode, decode, InvalidArgumentError } from '../../src/index.js';

test('fp4 packing: two codes a byte, first element in the low nibble (float4_e2m1fn_x2)', () => {
  assert.equal([...pack(Uint8Array.of(0x1, 0x2, 0x3, 0xf), 'fp4')], [0x21, 0xf3]);
  assert.equal([...pack(Uint8Array.of(0x1, 0x2, 0x3), 'fp4')], [0x21, 0x03]); // odd tail: high nibble zero
  assert.is(packedByteLength('fp4', 7), 4);
});

test('fp6 packing: four codes in three bytes, little-endian bit order', () => {
  // 1 | 2 << 6 | 3 << 12 | 4 << 18 = 0x103081
  assert.equal([...pack(Uint8Array.of(1, 2, 3, 4), 'e3m2')], [0x81, 0x30, 0x10]);
  assert.equal([...pack(Uint8Array.of(1, 2, 3, 4, 5), 'e2m3')], [0x81, 0x30, 0x10, 0x05]);
  assert.equal([...pack(Uint8Array.of(63, 63), 'e2m3')], [0xff, 0x0f]);
  assert.is(packedByteLength('e3m2', 5), 4);
  assert.is(packedByteLength('e3m2', 4), 3);
});

test('pack/unpack round-trip every length 0..67 and a long array', () => {
  for (const dtype of ['fp4', 'e3m2', 'e2m3']) {
    const limit = dtype === 'fp4' ? 16 : 64;
    for (const n of [...Array(68).keys(), 100_003]) {
      const codes = Uint8Array.from({ length: n }, (_, i) => (i * 37 + (i >> 3)) % limit);
      const packed = pack(codes, dtype);
      assert.is(packed.length, packedByteLength(dtype, n));
      assert.equal(unpack(packed, dtype, n), codes, `${dtype} n=${n}`);
    }
  }
});

test('values survive encode -> pack -> unpack -> decode', () => {
  const v = Float32Array.of(0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.5, -6, 1.25);
  const codes = encode(v, 'fp4') as Uint8Array;
  const back = decode(unpack(pack(codes, 'fp4'), 'fp4', v.length), 'fp4');
  assert.equal([...back.slice(0, 10)], [...v.slice(0, 10)]);
  assert.is(back[10], 1); // 1.25 is a tie between 1 and 1.5: even code (1.0)
});

test('bad input: codes that do not fit, formats that are not sub-byte, short buffers', () => {
  assert.throws(() => pack(Uint8Array.of(1, 16), 'fp4'), /code 16 at index 1 does not fit float4_e2m1fn/);
  assert.throws(() => pack(Uint8Array.of(64), 'e3m2'), /code 64 at index 0/);
  assert.throws(() => pack(Uint8Array.of(1), 'e4m3'), /4- and 6-bit formats/);
  assert.throws(() => unpack(Uint8Array.of(1, 2), 'e3m2', 4), /need 3 packed bytes, got 2/);
  // an array-like whose length no array can have: a clear error, not a RangeError from new Uint8Array
  for (const length of [2 ** 40, -1, 1.5, NaN]) {
    assert.throws(() => pack({ length } as ArrayLike<number>, 'fp4'), (e: Error) => e instanceof InvalidArgumentError && /pack codes: length must be an integer from 0 to 2\^31 - 1/.test(e.message));
  }
});

test.run();
