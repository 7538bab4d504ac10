import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { scaledMatmul, encode, decode, finfo, ShapeMismatchError, InvalidArgumentError, OutOfMemoryError } from '../../src/index.js';
import { golden } from '../helpers/golden.js';

interface Case {
  M: number; K: number; N: number; a_dtype: string; b_dtype: string; out_dtype: string;
  scale_a: number; scale_b: number; a_codes_rowmajor_MxK: number[]; b_codes_rowmajor_KxN: number[];
  out_f32_bits_rowmajor: number[]; exact_f64_rowmajor: number[]; max_abs_err_vs_exact: number;
}
const cases = golden<Case[]>('scaled_mm.json');

test('torch._scaled_mm cases: within PyTorch\'s error of exact, closer than PyTorch, correctly rounded', () => {
  for (const c of cases) {
    for (const accumulate of ['float64', 'float32'] as const) {
      const r = scaledMatmul(Uint8Array.from(c.a_codes_rowmajor_MxK), Uint8Array.from(c.b_codes_rowmajor_KxN), {
        m: c.M, k: c.K, n: c.N, aDtype: c.a_dtype, bDtype: c.b_dtype, scaleA: c.scale_a, scaleB: c.scale_b, outDtype: c.out_dtype, accumulate,
      });
      const torch = new Float32Array(Uint32Array.from(c.out_f32_bits_rowmajor, (b) => b >>> 0).buffer);
      let ours = 0, theirs = 0;
      for (let i = 0; i < r.values.length; i++) {
        ours = Math.max(ours, Math.abs(r.values[i] - c.exact_f64_rowmajor[i]));
        theirs = Math.max(theirs, Math.abs(torch[i] - c.exact_f64_rowmajor[i]));
      }
      const label = `${c.M}x${c.K}x${c.N} ${c.a_dtype}*${c.b_dtype}->${c.out_dtype} ${accumulate}`;
      assert.ok(ours <= c.max_abs_err_vs_exact, `${label}: ${ours} > torch ${c.max_abs_err_vs_exact}`);
      assert.ok(ours <= theirs, label);
      if (accumulate === 'float64') {
        // Exact accumulation, one rounding: the codes are those of the exact result.
        assert.equal(Array.from(r.codes), Array.from(encode(Float64Array.from(c.exact_f64_rowmajor), c.out_dtype)), label);
        if (c.out_dtype === 'float32') assert.ok(ours < theirs, `${label}: strictly closer`);
      }
    }
  }
});

/** Plain float64 reference of D = (A * sa) @ (B * sb) for small integer-valued checks. */
function naive(a: Float32Array, b: Float32Array, m: number, k: number, n: number, sa: (i: number, kk: number) => number, sb: (kk: number, j: number) => number): number[] {
  const d: number[] = [];
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let kk = 0; kk < k; kk++) s += a[i * k + kk] * sa(i, kk) * b[kk * n + j] * sb(kk, j);
    d.push(s);
  }
  return d;
}

test('row-wise and MX block scales', () => {
  const m = 3, k = 64, n = 2;
  const av = Float32Array.from({ length: m * k }, (_, i) => ((i * 7) % 13) - 6);
  const bv = Float32Array.from({ length: k * n }, (_, i) => ((i * 5) % 9) / 2 - 2);
  const a = encode(av, 'e4m3') as Uint8Array, b = encode(bv, 'e4m3') as Uint8Array;
  const ra = Float32Array.of(0.5, 2, 0.25), rb = Float32Array.of(4, 0.125);
  const row = scaledMatmul(a, b, { m, k, n, scaleA: ra, scaleB: rb });
  assert.equal(Array.from(row.values), naive(av, bv, m, k, n, (i) => ra[i], (_, j) => rb[j]));
  // MX: two blocks of 32 along K; A scales M x 2, B scales 2 x N (E8M0 codes: 127 = 1).
  const sa = Uint8Array.of(127, 128, 126, 127, 130, 120), sb = Uint8Array.of(127, 129, 125, 127);
  const mx = scaledMatmul(a, b, { m, k, n, scaleA: sa, scaleB: sb, blockSize: 32 });
  const e = (c: number) => 2 ** (c - 127);
  assert.equal(Array.from(mx.values), naive(av, bv, m, k, n, (i, kk) => e(sa[i * 2 + (kk >> 5)]), (kk, j) => e(sb[(kk >> 5) * n + j])));
  // bfloat16 and fp8 outputs are the rounded float64 results
  const bf = scaledMatmul(a, b, { m, k, n, scaleA: 1.5, scaleB: 1.1, outDtype: 'bf16' });
  const exact = naive(av, bv, m, k, n, () => 1.5, () => Math.fround(1.1));
  assert.equal(Array.from(bf.codes), Array.from(encode(Float64Array.from(exact), 'bf16')));
  const f8 = scaledMatmul(a, b, { m, k, n, scaleA: 1, scaleB: 1, outDtype: 'e5m2' });
  assert.equal(Array.from(f8.values), Array.from(decode(encode(Float64Array.from(naive(av, bv, m, k, n, () => 1, () => 1)), 'e5m2'), 'e5m2')));
  assert.ok(finfo('e5m2').max >= Math.max(...f8.values.map(Math.abs)));
});

test('shape and argument errors name the problem', () => {
  const a = new Uint8Array(6), b = new Uint8Array(6);
  assert.throws(() => scaledMatmul(a, b, { m: 2, k: 3, n: 3, scaleA: 1, scaleB: 1 }), (e: unknown) => e instanceof ShapeMismatchError && /B has 6 codes, expected k \* n = 3 \* 3 = 9/.test((e as Error).message));
  assert.throws(() => scaledMatmul(a, b, { m: 2, k: 3, n: 2, scaleA: Float32Array.of(1), scaleB: Float32Array.of(1, 1) }), /scaleA has 1 values; a row-wise scale needs 2/);
  assert.throws(() => scaledMatmul(a, b, { m: 2, k: 3, n: 2, scaleA: new Uint8Array(2), scaleB: new Uint8Array(2) }), /multiple of blockSize/);
  assert.throws(() => scaledMatmul(a, b, { m: 2, k: 3, n: 2, scaleA: 1, scaleB: Float32Array.of(1, 1) }), /same kind/);
  assert.throws(() => scaledMatmul(a, b, { m: 2, k: 3, n: 2, scaleA: 1, scaleB: 1, aDtype: 'bf16' }), /8 bits or fewer/);
  assert.throws(() => scaledMatmul(Uint8Array.of(1, 2, 3, 4, 5, 99), b, { m: 2, k: 3, n: 2, scaleA: 1, scaleB: 1, aDtype: 'fp4' }), /not a valid float4_e2m1fn code/);
});

test('per-tensor scales must be positive finite float32 (they are applied as float32: 1e-46 became 0, 1e46 inf)', () => {
  const one = encode([1], 'e4m3') as Uint8Array;
  const mm = (scaleA: number, scaleB: number) => scaledMatmul(one, one, { m: 1, k: 1, n: 1, scaleA, scaleB });
  const refused = (fn: () => unknown, pattern: RegExp) =>
    assert.throws(fn, (e: unknown) => e instanceof InvalidArgumentError && pattern.test((e as Error).message), String(pattern));
  for (const [sa, sb, bad] of [[1e-46, 1e46, 'A'], [1e39, 1e-39, 'A'], [1, 1e39, 'B'], [0, 1, 'A'], [1, -2, 'B'], [NaN, 1, 'A'], [1, Infinity, 'B'], [-0, 1, 'A']] as const) {
    refused(() => mm(sa, sb), new RegExp(`scale${bad} must be a positive finite number in float32's range .*got ${String(bad === 'A' ? sa : sb).replace(/[.+-]/g, '\\$&')}`));
  }
  // In range: applied as their float32 values, subnormal float32 included.
  assert.equal(Array.from(mm(2 ** -140, 2 ** 100).values), [2 ** -40]);
  assert.equal(Array.from(mm(3.4e38, 2 ** -100).values), [Math.fround(Math.fround(3.4e38) * 2 ** -100)]);
  assert.equal(Array.from(mm(0.1, 10).values), [Math.fround(Math.fround(0.1) * Math.fround(10))]);
  // Row-wise scales: each one checked the same way.
  const a = encode([1, 2], 'e4m3') as Uint8Array;
  refused(() => scaledMatmul(a, a, { m: 2, k: 1, n: 2, scaleA: Float32Array.of(1, Infinity), scaleB: Float32Array.of(1, 1) }), /scaleA\[1\] must be a positive finite number, got Infinity/);
  refused(() => scaledMatmul(a, a, { m: 2, k: 1, n: 2, scaleA: Float32Array.of(1, 1), scaleB: Float32Array.of(0, 1) }), /scaleB\[0\] must be a positive finite number, got 0/);
});

test('m, k, n and blockSize beyond 2^31 - 1 are refused before the kernel (its parameters are 32-bit)', () => {
  const one = encode([1], 'e4m3') as Uint8Array;
  for (const blockSize of [2 ** 32, 2 ** 32 + 1, 0, 1.5]) {
    assert.throws(() => scaledMatmul(one, one, { m: 1, k: 1, n: 1, scaleA: 1, scaleB: 1, blockSize }), (e: unknown) => e instanceof InvalidArgumentError && /scaledMatmul: blockSize must be an integer from 1 to 2147483647/.test((e as Error).message), `blockSize ${blockSize}`);
  }
  assert.throws(() => scaledMatmul(one, one, { m: 2 ** 32 + 1, k: 1, n: 1, scaleA: 1, scaleB: 1 }), /scaledMatmul: m must be an integer from 1 to 2147483647 \(2\^31 - 1\), got 4294967297/);
  const mxCodes = new Uint8Array(32).fill(0x38);
  assert.equal(Array.from(scaledMatmul(mxCodes, mxCodes, { m: 1, k: 32, n: 1, scaleA: Uint8Array.of(127), scaleB: Uint8Array.of(127), blockSize: 32 }).values), [32]);
});

test('operands whose float64 copies need 4 GiB or more are an OutOfMemoryError before anything is copied (the size wrapped around 2^32 in the kernel)', () => {
  // B: 2^29 codes (512 MiB, zero pages never touched); decoded to float64 it needs 4 GiB + 8 bytes,
  // which the kernel computed as a usize: 8 bytes, then wrote 4 GiB into them.
  const n = 2 ** 29;
  const b = new Uint8Array(n);
  try {
    scaledMatmul(Uint8Array.of(0x38), b, { m: 1, k: 1, n, scaleA: 1, scaleB: 1 });
    assert.unreachable('no error');
  } catch (e) {
    assert.instance(e, OutOfMemoryError, String(e));
    assert.is((e as OutOfMemoryError).bytes, (n + 1) * 8);
    assert.match((e as Error).message, /scaledMatmul work memory \(A and B decoded to float64, 1 \+ 536870912 values\)/);
  }
  // The module is intact.
  const one = encode([1], 'e4m3') as Uint8Array;
  assert.equal(Array.from(scaledMatmul(one, one, { m: 1, k: 1, n: 1, scaleA: 2, scaleB: 3 }).values), [6]);
});

test('scaledMatmul: blockSize with per-tensor or row/column scales is refused (it applies to E8M0 block scales)', () => {
  const a = encode([1, 2, 3, 4], 'e4m3'), b = encode([1, 0, 0, 1], 'e4m3');
  assert.throws(() => scaledMatmul(a, b, { m: 2, k: 2, n: 2, scaleA: 1, scaleB: 1, aDtype: 'e4m3', bDtype: 'e4m3', blockSize: 2 }), (e: Error) => e instanceof InvalidArgumentError && /blockSize applies to E8M0 block scales/.test(e.message));
  assert.equal([...scaledMatmul(a, b, { m: 2, k: 2, n: 2, scaleA: 1, scaleB: 1, aDtype: 'e4m3', bDtype: 'e4m3' }).values], [1, 2, 3, 4]);
});

test.run();
