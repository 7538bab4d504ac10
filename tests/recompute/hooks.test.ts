// Saved-tensor hooks that keep less: compressed activations (bfloat16; float16 and fp8 per-tensor or MX
// blocks) with their decode checked against the host reference and the gradient error bounded,
// and saveOnHost on wasm (nothing moves; a note says so once).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  WasmBackend, Module, Linear, RMSNorm, Tensor, Variable, manualSeed, tidy, withSavedTensorsHooks, savedTensorStats,
  compressSavedTensors, saveOnHost, checkpoint, mxQuantize, mxDequantize, silu, add, sum, matmul, mul, relu, InvalidArgumentError,
  type SavedTensorContext,
} from '../../src/index.js';

const be = new WasmBackend();
const ctx: SavedTensorContext = { op: 'linear', module: 'm', slot: 'input0' };

const values = (n: number, seed: number, spread = 1): Float32Array => {
  let s = seed;
  return Float32Array.from({ length: n }, (_, i) => (((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) - 0.5) * spread * (1 + (i % 7) * 3));
};

class Mlp extends Module {
  norm = new RMSNorm(16, 1e-5, { backend: be });
  up: Linear;
  down: Linear;
  constructor() {
    super();
    manualSeed(4);
    this.up = new Linear(16, 48, { backend: be });
    this.down = new Linear(48, 16, { backend: be });
  }
  forward(x: Variable): Variable {
    return tidy(() => add(x, this.down.forward(silu(this.up.forward(this.norm.forward(x))))));
  }
}

/** The parameters' gradients (flattened, in order) and the saved bytes held after the forward. */
async function run(net: Mlp, wrap: (f: () => Variable) => Variable): Promise<{ g: Float32Array; held: number }> {
  const x = Variable.from(be, values(4 * 16, 9), [4, 16], { requiresGrad: true });
  const loss = wrap(() => tidy(() => sum(net.forward(x))));
  const held = savedTensorStats().bytes;
  loss.backward();
  const parts: number[] = [];
  for (const p of [...net.parameters(), x]) parts.push(...await p.grad!.toArray());
  net.zeroGrad(); loss.dispose(); x.dispose();
  return { g: Float32Array.from(parts), held };
}

const relErr = (a: Float32Array, b: Float32Array): number => {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2; }
  return Math.sqrt(num / den);
};

test('fp8 MX compression decodes to exactly what mxQuantize/mxDequantize give (E8M0 block scales)', async () => {
  for (const dtype of ['float8_e4m3fn', 'float8_e5m2'] as const) {
    const v = values(4 * 64, 3, 40);
    v[5] = 0; v.fill(0, 64, 96); // a zero element and an all-zero block
    const t = Tensor.from(be, v, [4, 64]);
    const h = compressSavedTensors({ dtype, scale: 'mx' });
    const p = h.pack(t, ctx);
    assert.is(h.bytes!(p, t), 4 * 64 + 8, 'one byte a code, one byte a block scale');
    const back = h.unpack(p);
    assert.equal([...await back.toArray()], [...mxDequantize(mxQuantize(v, dtype))], dtype);
    back.dispose(); t.dispose();
  }
});

test('fp8 per-tensor and bfloat16 compression: each value within the format\'s rounding of the original', async () => {
  const v = values(300, 5, 10);
  const t = Tensor.from(be, v, [3, 100]);
  const amax = Math.max(...v.map(Math.abs));
  for (const [opts, rel, sub] of [
    [{ dtype: 'fp8_e4m3' }, 2 ** -4, amax * 2 ** -9 / 448],
    [{ dtype: 'float8_e5m2', scale: 'tensor' as const }, 2 ** -3, amax * 2 ** -16 / 57344],
    [{ dtype: 'bf16' }, 2 ** -8, 0],
  ] as const) {
    const h = compressSavedTensors(opts);
    const back = h.unpack(h.pack(t, ctx));
    assert.is(back.dtype, 'float32');
    const b = await back.toArray();
    for (let i = 0; i < v.length; i++) assert.ok(Math.abs(b[i] - v[i]) <= Math.abs(v[i]) * rel + sub * 1.0001, `${JSON.stringify(opts)}: ${v[i]} -> ${b[i]}`);
    back.dispose();
  }
  // parameters and statistics are kept as they are (the same storage back)
  const h = compressSavedTensors({ dtype: 'fp8_e4m3' });
  const p = h.pack(t, { ...ctx, slot: 'rstd' });
  assert.is(h.bytes!(p, t), 300 * 4);
  const same = h.unpack(p);
  assert.equal([...await same.toArray()], [...v]);
  same.dispose(); t.dispose();
});

test('compressed activations: less held, gradient error bounded (relative L2: bf16 < 3e-3, fp8 < 4e-2; measured 1.1e-3, 1.8e-2), nothing leaks', async () => {
  const net = new Mlp();
  const before = be.memory.memoryAllocated();
  const ref = await run(net, (f) => f());
  const weights = (16 * 48 * 2) * 4; // the two weights, saved as they are (parameters stay resident anyway)
  const errs: Record<string, number> = {};
  for (const [name, opts, bound, heldRatio] of [
    ['bf16', { dtype: 'bfloat16' }, 3e-3, 0.55],
    ['fp8 tensor', { dtype: 'float8_e4m3fn' }, 4e-2, 0.3],
    ['fp8 mx', { dtype: 'float8_e4m3fn', scale: 'mx' as const }, 4e-2, 0.35],
  ] as const) {
    const r = await run(net, (f) => withSavedTensorsHooks(compressSavedTensors(opts), f));
    errs[name] = relErr(r.g, ref.g);
    assert.ok(errs[name] > 0 && errs[name] < bound, `${name}: relative gradient error ${errs[name]}`);
    assert.ok(r.held - weights <= (ref.held - weights) * heldRatio, `${name}: held ${r.held - weights} of ${ref.held - weights} activation bytes`);
  }
  assert.ok(errs['bf16'] < errs['fp8 tensor']);
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
  assert.is(be.memory.memoryAllocated(), before);
});

test('float16 compression keeps a per-tensor scale: activations past 65504 or below its subnormals come back finite and within float16 rounding', async () => {
  const n = 256;
  for (const k of [300, 1e5, 1e-6, 1e-30]) { // 300^2 and 1e5 overflow an unscaled float16 copy; 1e-6 and 1e-30 underflow it
    const v = Float32Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i + 1) * k));
    const t = Tensor.from(be, v, [n]);
    for (const opts of [{ dtype: 'float16' }, { dtype: 'fp16', scale: 'tensor' as const }, { dtype: 'float16', scale: 'mx' as const }]) {
      const h = compressSavedTensors(opts);
      const p = h.pack(t, ctx);
      const b = await h.unpack(p).toArray();
      const amax = Math.max(...v.map(Math.abs));
      for (let i = 0; i < n; i++) {
        assert.ok(Number.isFinite(b[i]), `${k} ${JSON.stringify(opts)}: element ${i} is ${b[i]}`);
        // float16's 11 significant bits, and its subnormal step at the scaled magnitude (amax lands near 65504)
        assert.ok(Math.abs(b[i] - v[i]) <= Math.abs(v[i]) * 2 ** -11 + amax * 2 ** -24 / 65504 * 1.0001 * 2, `${k} ${JSON.stringify(opts)}: ${v[i]} -> ${b[i]}`);
      }
    }
    t.dispose();
  }
  // the reviewer's case: relu(a) * a with |a| up to 300, float16-compressed, then backward: finite gradients close to the uncompressed ones
  const a = new Variable(Tensor.from(be, Float32Array.from({ length: 64 }, (_, i) => Math.sin(i) * 300), [8, 8]), { requiresGrad: true });
  const w = new Variable(Tensor.from(be, Float32Array.from({ length: 64 }, (_, i) => Math.cos(i) * 300), [8, 8]), { requiresGrad: true });
  const grads = async (hooks: boolean): Promise<Float32Array> => {
    const f = () => sum(matmul(mul(relu(a), a), w));
    const loss = hooks ? withSavedTensorsHooks(compressSavedTensors({ dtype: 'float16' }), f) : f();
    loss.backward();
    const g = await w.grad!.toArray() as Float32Array;
    a.zeroGrad(); w.zeroGrad();
    return g;
  };
  const ref = await grads(false), got = await grads(true);
  assert.ok(got.every(Number.isFinite), 'finite gradients');
  assert.ok(relErr(got, ref) < 2e-3, `relative gradient error ${relErr(got, ref)}`);
});

test('compression around a checkpoint compresses what the checkpoint keeps (its inputs)', async () => {
  const net = new Mlp();
  const plain = await run(net, (f) => checkpoint(f));
  const both = await run(net, (f) => withSavedTensorsHooks(compressSavedTensors({ dtype: 'bfloat16' }), () => checkpoint(f)));
  assert.is(both.held * 2, plain.held);
  assert.ok(relErr(both.g, plain.g) < 1e-2);
});

test('compressSavedTensors refuses bad options', () => {
  assert.throws(() => compressSavedTensors({ dtype: 'float4_e2m1fn' }), (e: unknown) => e instanceof InvalidArgumentError && /bfloat16, float16, float8_e4m3fn or float8_e5m2/.test((e as Error).message));
  assert.throws(() => compressSavedTensors({ dtype: 'bfloat16', scale: 'mx' }), /applies to float16 and fp8 only/);
  assert.throws(() => compressSavedTensors({ dtype: 'fp8_e4m3', blockSize: 0 }), /blockSize/);
  assert.throws(() => compressSavedTensors({ dtyp: 'bf16' } as never), /unknown option "dtyp"/);
  // blockSize only means something with MX scales: given alone it would be silently ignored
  assert.throws(() => compressSavedTensors({ dtype: 'fp8_e4m3', blockSize: 7 }), (e: unknown) => e instanceof InvalidArgumentError && /blockSize applies to scale 'mx' only \(got scale undefined\)/.test((e as Error).message));
  assert.throws(() => compressSavedTensors({ dtype: 'fp8_e4m3', scale: 'tensor', blockSize: 16 }), /blockSize applies to scale 'mx' only/);
  compressSavedTensors({ dtype: 'fp8_e4m3', scale: 'mx', blockSize: 16 });
});

test('saveOnHost on wasm: tensors stay (gradients identical), one note unless quiet', async () => {
  const net = new Mlp();
  const ref = await run(net, (f) => f());
  const warn = console.warn;
  const notes: string[] = [];
  console.warn = (m: string) => { notes.push(m); };
  try {
    const a = await run(net, (f) => withSavedTensorsHooks(saveOnHost(), f));
    const b = await run(net, (f) => withSavedTensorsHooks(saveOnHost(), f));
    assert.equal([...a.g], [...ref.g]);
    assert.equal([...b.g], [...ref.g]);
  } finally {
    console.warn = warn;
  }
  assert.is(notes.length, 1);
  assert.match(notes[0], /already live in host/);
  assert.throws(() => saveOnHost({ filter: 3 } as never), /filter must be a function/);
});

test.run();
