// Issue #9, item 6: a failed tensor op must free what it allocated (its outputs, temporaries and
// views), on every route: Tensor methods, the dispatch, differentiable ops, nn functional ops,
// backward functions and the wasm backend's own staging buffers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  add, exp, functional, matmul, MemfitError, softmax, sum, Tensor, Variable, WasmBackend, withSavedTensorsHooks,
} from '../../src/index.js';
import { wasm } from '../../src/dtype/wasm.js';

const w = new WasmBackend();

/** Runs `fn` `times` times, expecting a MemfitError each time; asserts that no byte stayed allocated. */
function failsWithoutLeak(what: string, fn: () => unknown, times = 1): void {
  const allocated = w.memory.memoryAllocated(), reserved = w.memory.memoryReserved();
  for (let i = 0; i < times; i++) {
    try {
      fn();
      assert.unreachable(`${what}: no error`);
    } catch (e) {
      assert.instance(e, MemfitError, `${what}: ${String(e)}`);
    }
  }
  assert.is(w.memory.memoryAllocated(), allocated, `${what}: bytes still allocated after the failure`);
  assert.ok(w.memory.memoryReserved() <= reserved + 4096, `${what}: reserved memory grew from ${reserved} to ${w.memory.memoryReserved()}`);
}

const disposed = (shape: number[], dtype = 'float32'): Tensor => {
  const t = Tensor.from(w, new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, { dtype });
  t.dispose();
  return t;
};

test('1,000 failed exp calls on a disposed 256 KiB tensor leak nothing (the report: 250 MiB)', () => {
  const t = disposed([65536]);
  const before = wasm().memory.buffer.byteLength;
  failsWithoutLeak('Tensor.unary exp', () => t.unary('exp'), 1000);
  const v = new Variable(Tensor.from(w, new Float32Array(65536), [65536]), { requiresGrad: true });
  v.data.dispose();
  failsWithoutLeak('autograd exp', () => exp(v), 1000);
  assert.ok(wasm().memory.buffer.byteLength - before < 16 << 20, 'WebAssembly memory did not grow by the leaked outputs');
});

test('an unknown op frees its output', () => {
  const t = Tensor.from(w, [1, 2, 3], [3]);
  failsWithoutLeak('unknown unary', () => t.unary('nope' as never), 100);
  failsWithoutLeak('unknown binary', () => (w as WasmBackend).binary('nope' as never, t, t, t), 10);
  t.dispose();
});

test('Tensor ops with a disposed operand: binary, matmul, reductions, softmax, casts, transpose', () => {
  const a = Tensor.from(w, new Float32Array(64), [8, 8]);
  const bf = Tensor.from(w, new Float32Array(64), [8, 8], { dtype: 'bf16' }); // staged to float32 by the backend
  const gone = disposed([8, 8]);
  for (const [what, fn] of [
    ['add', () => a.add(gone)], ['add (bf16 first)', () => bf.add(gone)], ['mul', () => gone.mul(a)],
    ['matmul', () => bf.matmul(gone)], ['sum', () => gone.sum(0)], ['max', () => gone.max()],
    ['softmax', () => gone.softmax()], ['logSoftmax', () => gone.logSoftmax()], ['to', () => gone.to('bf16')],
    ['transpose', () => gone.transpose()], ['reshape', () => gone.reshape([64])],
  ] as const) failsWithoutLeak(what, fn, 20);
  a.dispose();
  bf.dispose();
});

test('the wasm backend frees its staging buffers when a later operand fails', () => {
  const bf = Tensor.from(w, new Float32Array(1024), [1024], { dtype: 'bf16' });
  const out = Tensor.empty(w, [1024]);
  const gone = disposed([1024]);
  failsWithoutLeak('binary (bf16 staged, then a freed operand)', () => w.binary('add', bf, gone, out), 20);
  const one = Tensor.from(w, [1], [1]);
  failsWithoutLeak('where with broadcasts and a freed operand', () => w.where(bf, one, gone, out), 20);
  one.dispose();
  bf.dispose();
  out.dispose();
});

test('differentiable and nn ops with a disposed input free their outputs', () => {
  const x = new Variable(Tensor.from(w, new Float32Array(32), [4, 8]), { requiresGrad: true });
  const gone = new Variable(Tensor.from(w, new Float32Array(32), [4, 8]), { requiresGrad: true });
  gone.data.dispose();
  const weight = new Variable(Tensor.from(w, new Float32Array(8).fill(1), [8]), { requiresGrad: true });
  const ids = Tensor.from(w, [1, 2, 3, 0], [4], { dtype: 'int32' });
  const goneIds = Tensor.from(w, [1, 2, 3, 0], [4], { dtype: 'int32' });
  goneIds.dispose();
  const table = new Variable(Tensor.from(w, new Float32Array(32), [4, 8]), { requiresGrad: true });
  const targets = Tensor.from(w, [1, 2, 3, 0], [4], { dtype: 'int32' });
  for (const [what, fn] of [
    ['add', () => add(x, gone)], ['matmul', () => matmul(x, gone, { transB: true })], ['softmax', () => softmax(gone)],
    ['sum', () => sum(gone)], ['rmsNorm', () => functional.rmsNorm(gone, weight, 1e-5)],
    ['layerNorm (freed bias)', () => functional.layerNorm(x, weight, new Variable(disposed([8]), { requiresGrad: false }), 1e-5)],
    ['embedding', () => functional.embedding(goneIds, table)], ['crossEntropy', () => functional.crossEntropy(gone, targets)],
    ['crossEntropy (freed targets)', () => functional.crossEntropy(x, goneIds)],
  ] as const) failsWithoutLeak(what, fn, 5);
  for (const t of [x.data, weight.data, ids, table.data, targets]) t.dispose();
});

test('a backward function that fails midway frees the gradients it had made', () => {
  const before = w.memory.memoryAllocated();
  const x = new Variable(Tensor.from(w, new Float32Array(256).fill(0.5), [16, 16]), { requiresGrad: true });
  // The saved output comes back disposed: softmax's backward fails after its first kernels.
  const broken = { pack: (t: Tensor) => t.reshape(t.shape), unpack: (t: Tensor) => { t.dispose(); return t; } };
  const y = withSavedTensorsHooks(broken, () => softmax(x));
  const loss = sum(y);
  try {
    loss.backward();
    assert.unreachable('backward succeeded');
  } catch (e) {
    assert.instance(e, MemfitError);
  }
  loss.dispose();
  y.dispose();
  assert.is(x.grad, null, 'no gradient was written');
  x.data.dispose();
  assert.is(w.memory.memoryAllocated(), before, 'everything the failed backward made was freed');
});

test.run();
