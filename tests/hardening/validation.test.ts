// Issue #9, item 9 (and item 13's neighbours): bad arguments at the public boundary are an
// InvalidArgumentError (a MemfitError) naming the argument; never silently NaN, 0, nearest-even or
// a truncated copy, and never a plain TypeError from deep inside.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  add, AdamW, allocate, functional, amax, decode, dequantizePerTensor, encode, finfo, formatOf, InvalidArgumentError, Linear, matmul, MemfitError,
  mul, mxDequantize, mxQuantize, pack, packedByteLength, parseSafetensors, quantizePerTensor, safetensorsToTensors, scaledMatmul,
  savedTensorStats, scaleFromAmax, serializeSafetensors, StepLR, Tensor, unpack, Variable, WasmBackend,
} from '../../src/index.js';
import { describeValue } from '../../src/errors.js';
import { invalid } from '../helpers/errors.js';

const w = new WasmBackend();


test('encode: list elements that are not numbers are refused, naming the index', () => {
  invalid(() => encode(['abc'] as never, 'e4m3'), /encode values\[0\] is not a number: "abc"/);
  invalid(() => encode([1, null] as never, 'e4m3'), /encode values\[1\] is not a number: null/);
  invalid(() => encode([1, 2, [3]] as never, 'e4m3'), /encode values\[2\] is not a number: an array of length 1/);
  invalid(() => encode([1n] as never, 'e4m3'), /encode values\[0\] is not a number: 1n \(a bigint\)/);
  invalid(() => encode('abc' as never, 'e4m3'), /encode expects a Float32Array, Float64Array, number\[\] or WasmArray as values, got "abc"/);
  assert.equal(Array.from(encode([1, NaN, -2], 'e4m3')), [0x38, 0x7f, 0xc0], 'NaN is a number: still encoded');
});

test('encode: unknown options, bad rounding names (toString, __proto__), bad seeds and flags are refused', () => {
  const x = Float32Array.of(1.1);
  invalid(() => encode(x, 'e4m3', { saturated: true } as never), /encode: unknown option "saturated" \(known: saturate, rounding, seed, offset, out\)/);
  invalid(() => encode(x, 'e4m3', { roundng: 'toward-zero' } as never), /unknown option "roundng"/);
  for (const r of ['toString', '__proto__', 'constructor', 'up', '']) invalid(() => encode(x, 'e4m3', { rounding: r as never }), /unknown rounding/);
  invalid(() => encode(x, 'e4m3', { rounding: 2 as never }), /unknown rounding 2/);
  for (const [seed, shown] of [[null, 'null'], [{}, 'an object'], ['1', '"1"'], [1.5, '1.5'], [NaN, 'NaN'], [[1n], 'an array of length 1']] as const) {
    invalid(() => encode(x, 'bf16', { rounding: 'stochastic', seed: seed as never }), new RegExp(`options\\.seed must be an integer .*got ${shown.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  }
  invalid(() => encode(x, 'e4m3', { seed: {} as never }), /options\.seed must be an integer/);
  invalid(() => encode(x, 'e4m3', { saturate: 'yes' as never }), /options\.saturate must be a boolean, got "yes"/);
  invalid(() => encode(x, 'e4m3', { offset: '3' as never }), /options\.offset must be a non-negative integer, got "3"/);
  invalid(() => encode(x, 'e4m3', null as never), /encode: options must be an object, got null/);
  invalid(() => encode(x, 'e4m3', { out: [0] as never }), /out for float8_e4m3fn must be a Uint8Array .*got an array of length 1/);
  assert.equal(Array.from(encode(x, 'bf16', { rounding: 'stochastic', seed: 7n })), Array.from(encode(x, 'bf16', { rounding: 'stochastic', seed: 7 })), 'bigint seeds work');
});

test('decode: a wrong out type is refused (it truncated); bad codes arguments and options too', () => {
  const codes = Uint8Array.of(0x38, 0x7e);
  invalid(() => decode(codes, 'e4m3', { out: new Uint8Array(2) as never }), /decode options\.out must be a Float32Array \(or a float32 WasmArray\), got a Uint8Array/);
  invalid(() => decode(codes, 'e4m3', { out: new Float64Array(2) as never }), /got a Float64Array/);
  invalid(() => decode(codes, 'e4m3', { out: allocate('e4m3', 2) as never }), /options\.out must be a Float32Array/);
  invalid(() => decode(null as never, 'e4m3'), /decode codes must be a Uint8Array, an array of integer codes or a WasmArray, got null/);
  invalid(() => decode(undefined as never, 'e4m3'), /got undefined/);
  invalid(() => decode({ length: 2 } as never, 'e4m3'), /got an object/);
  invalid(() => decode(['0x38'] as never, 'e4m3'), /code "0x38" at index 0 is not a valid float8_e4m3fn code/);
  invalid(() => decode(codes, 'e4m3', { outt: 1 } as never), /decode: unknown option "outt"/);
  assert.equal(Array.from(decode(codes, 'e4m3', { out: new Float32Array(2) })), [1, 448]);
});

test('loadStateDict(null), add(variable, tensor) and friends are InvalidArgumentErrors naming the argument', () => {
  const lin = new Linear(2, 2, { backend: w });
  invalid(() => lin.loadStateDict(null as never), /loadStateDict: the state dict must be an object of Tensors, got null/);
  invalid(() => lin.loadStateDict('x' as never), /got "x"/);
  invalid(() => lin.checkStateDict(undefined as never), /got undefined/);
  const v = new Variable(Tensor.from(w, [1, 2], [2]), { requiresGrad: true });
  const t = Tensor.from(w, [1, 2], [2]);
  invalid(() => add(v, t as never), /add: argument 2 must be a Variable, got a Tensor \(wrap it: new Variable\(tensor\)\)/);
  invalid(() => mul(null as never, v), /mul: argument 1 must be a Variable, got null/);
  invalid(() => matmul(v, 3 as never), /matmul: argument 2 must be a Variable, got 3/);
  invalid(() => new Variable(null as never), /Variable: data must be a Tensor, got null/);
  const opt = new AdamW(lin.parameters(), { lr: 0.1 });
  invalid(() => opt.loadStateDict(null as never), /expected \{ state, paramGroups \}/);
  const sched = new StepLR(opt, 2);
  invalid(() => sched.loadStateDict(null as never), /expected an object/);
  v.data.dispose();
  t.dispose();
  lin.dispose();
});

test('Tensor.from: values that are not numbers are refused (they became NaN)', () => {
  invalid(() => Tensor.from(w, ['abc'] as never, [1]), /Tensor\.from: data\[0\] is not a number: "abc"/);
  invalid(() => Tensor.from(w, [1, null] as never, [2], { dtype: 'int32' }), /data\[1\] is not a number: null/);
  invalid(() => Tensor.from(w, null as never, [1]), /data must be an array or a typed array of numbers, got null/);
  const ok = Tensor.from(w, Int32Array.of(1, 2), [2], { dtype: 'int32' });
  ok.dispose();
});

/** Hostile values every public function below is called with, in every argument position. */
const HOSTILE: unknown[] = [
  null, undefined, 'abc', '', 1n, [1n], {}, Symbol('s'), NaN, -1, 1.5, Infinity, [null], [['x']], () => 1,
  new DataView(new ArrayBuffer(8)), new BigInt64Array(2), Object.create(null), { length: 3 }, [1, 'a'], true,
];

test('a sweep of the dtype and file API with hostile arguments: only MemfitErrors, never TypeErrors', () => {
  const f32 = Float32Array.of(1, 2, 3, 4), u8 = Uint8Array.of(1, 2, 3, 4);
  const calls: Array<[string, number, (...a: unknown[]) => unknown, unknown[]]> = [
    ['encode', 3, encode as never, [f32, 'e4m3', {}]], ['decode', 3, decode as never, [u8, 'e4m3', {}]],
    ['pack', 2, pack as never, [u8, 'fp4']], ['unpack', 3, unpack as never, [u8, 'fp4', 4]],
    ['packedByteLength', 2, packedByteLength as never, ['fp4', 4]], ['mxQuantize', 3, mxQuantize as never, [f32, 'mxfp4', {}]],
    ['mxDequantize', 1, mxDequantize as never, [mxQuantize(f32, 'mxfp4')]], ['amax', 1, amax as never, [f32]],
    ['scaleFromAmax', 3, scaleFromAmax as never, [2, 'e4m3', {}]], ['quantizePerTensor', 3, quantizePerTensor as never, [f32, 'e4m3', {}]],
    ['dequantizePerTensor', 1, dequantizePerTensor as never, [quantizePerTensor(f32, 'e4m3')]],
    ['scaledMatmul', 3, scaledMatmul as never, [u8, u8, { m: 2, k: 2, n: 2, scaleA: 1, scaleB: 1 }]],
    ['finfo', 1, finfo as never, ['e4m3']], ['formatOf', 1, formatOf as never, ['e4m3']],
    ['allocate', 2, ((k: string, n: number) => allocate(k, n).free()) as never, ['e4m3', 4]],
    ['parseSafetensors', 1, parseSafetensors as never, [serializeSafetensors({})]],
    ['serializeSafetensors', 2, serializeSafetensors as never, [{}, {}]],
    ['safetensorsToTensors', 2, ((b: Uint8Array, be: unknown) => safetensorsToTensors(b, be as never)) as never, [serializeSafetensors({}), w]],
    ['Tensor.from', 3, ((d: unknown, s: unknown, o: unknown) => Tensor.from(w, d as never, s as never, o as never).dispose()) as never, [[1, 2], [2], {}]],
    ['Tensor.empty', 2, ((s: unknown, o: unknown) => Tensor.empty(w, s as never, o as never).dispose()) as never, [[2], {}]],
  ];
  const problems: string[] = [];
  for (const [name, arity, fn, good] of calls) {
    for (let pos = 0; pos < arity; pos++) {
      for (const bad of HOSTILE) {
        const args = [...good];
        args[pos] = bad;
        try {
          fn(...args);
        } catch (e) {
          if (!(e instanceof MemfitError)) problems.push(`${name} argument ${pos + 1} = ${describeValue(bad)}: ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
        }
      }
    }
  }
  assert.equal(problems, []);
});

test('a sweep of the autograd, nn and optimizer API with hostile arguments: only MemfitErrors', () => {
  const x = new Variable(Tensor.from(w, new Float32Array(8).fill(0.5), [2, 4]), { requiresGrad: true });
  const wt = new Variable(Tensor.from(w, new Float32Array(4).fill(1), [4]), { requiresGrad: true });
  const ids = Tensor.from(w, [0, 1], [2], { dtype: 'int32' });
  const lin = new Linear(4, 4, { backend: w });
  const opt = new AdamW(lin.parameters(), { lr: 0.1 });
  const sched = new StepLR(opt, 2);
  const saved0 = savedTensorStats();
  const made: Variable[] = [];
  const keep = (v: unknown): void => { if (v instanceof Variable) made.push(v); };
  const calls: Array<[string, number, (...a: unknown[]) => unknown, unknown[]]> = [
    ['add', 2, add as never, [x, x]], ['mul', 2, mul as never, [x, x]], ['matmul', 3, matmul as never, [x, x, { transB: true }]],
    ['functional.linear', 3, functional.linear as never, [x, lin.weight, null]],
    ['functional.embedding', 2, functional.embedding as never, [ids, x]],
    ['functional.rmsNorm', 3, functional.rmsNorm as never, [x, wt, 1e-5]],
    ['functional.crossEntropy', 3, functional.crossEntropy as never, [x, ids, {}]],
    ['functional.dropout', 3, functional.dropout as never, [x, 0.5, true]],
    ['lin.loadStateDict', 2, ((sd: unknown, o: unknown) => lin.loadStateDict(sd as never, o as never)) as never, [lin.stateDict(), {}]],
    ['opt.loadStateDict', 1, ((sd: unknown) => opt.loadStateDict(sd as never)) as never, [opt.stateDict()]],
    ['sched.loadStateDict', 1, ((sd: unknown) => sched.loadStateDict(sd as never)) as never, [sched.stateDict()]],
  ];
  const problems: string[] = [];
  for (const [name, arity, fn, good] of calls) {
    for (let pos = 0; pos < arity; pos++) {
      for (const bad of HOSTILE) {
        const args = [...good];
        args[pos] = bad;
        try {
          keep(fn(...args));
        } catch (e) {
          if (!(e instanceof MemfitError)) problems.push(`${name} argument ${pos + 1} = ${describeValue(bad)}: ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
        }
      }
    }
  }
  assert.equal(problems, []);
  for (const v of made) { v.releaseGraph(); v.dispose(); } // dispose() alone keeps the graph's saved tensors (by design)
  assert.equal(savedTensorStats(), saved0, 'no saved tensor outlives the sweep');
  for (const t of [x.data, wt.data, ids]) t.dispose();
  opt.dispose();
  lin.dispose();
});

test.run();
