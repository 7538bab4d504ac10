// The conformance harness on small shapes (CI runs it on SwiftShader): every kernel on both
// backends with the same inputs. Bit for bit for casts; stated bounds elsewhere.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpuBackend, tensor, readF32, WasmBackend, type WebGPUBackend } from '../helpers/backends.js';
import type { Backend, BinaryOp, TensorDType, UnaryOp } from '../../src/backend/backend.js';
import { storageBytes } from '../../src/backend/wasm/backend.js';
import { numel } from '../../src/backend/shape.js';
import { encode, decode } from '../../src/index.js';
import { NARROW_FORMATS } from '../helpers/reference.js';

const w = new WasmBackend();
let g: WebGPUBackend;

test.before(async () => {
  g = await gpuBackend();
});
test.after(() => g.destroy());

async function castOn(b: Backend, input: ArrayBufferView, from: TensorDType, to: TensorDType, n: number, opts = {}): Promise<Uint8Array> {
  const x = tensor(b, [n], from, input);
  const out = tensor(b, [n], to);
  b.cast(x, out, opts);
  const bytes = await b.read(out.storage, 0, storageBytes(to, n));
  b.free(x.storage);
  b.free(out.storage);
  return bytes;
}

function firstDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return -2;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

test('GPU casts: all 65,536 codes of float16 and bfloat16 decode to the same float32 bits as decode()', async () => {
  const codes = Uint16Array.from({ length: 65536 }, (_, i) => i);
  for (const dt of ['float16', 'bfloat16'] as const) {
    const gotGpu = await castOn(g, codes, dt, 'float32', 65536);
    const want = new Uint8Array(decode(codes, dt).buffer);
    assert.is(firstDiff(gotGpu, want), -1, dt);
    assert.is(firstDiff(await castOn(w, codes, dt, 'float32', 65536), want), -1, `${dt} wasm`);
  }
});

test('GPU casts: 2^24 float32 inputs spread over all 2^32 encode bit-identically to the WebAssembly encoder, every format', async () => {
  const n = 1 << 24;
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) bits[i] = (i * 256 + ((i * 40503) & 255)) >>> 0; // every 256th pattern, jittered
  const f32 = new Float32Array(bits.buffer);
  for (const dt of NARROW_FORMATS) {
    const gpuBytes = await castOn(g, bits, 'float32', dt, n);
    const codes = encode(f32, dt);
    const f = dt.startsWith('float4') || dt.startsWith('float6');
    const { pack } = await import('../../src/index.js');
    const want = f ? pack(codes as Uint8Array, dt) : new Uint8Array(codes.buffer);
    const d = firstDiff(gpuBytes, want);
    assert.is(d, -1, `${dt}: first differing byte ${d}`);
  }
});

test('GPU casts: saturate and toward-zero match the WebAssembly encoder; sub-byte round trips', async () => {
  const bits = Uint32Array.from({ length: 1 << 16 }, (_, i) => (Math.imul(i, 2654435761) >>> 0));
  for (const dt of NARROW_FORMATS) {
    for (const opts of [{ saturate: true }, { rounding: 'toward-zero' as const }]) {
      const a = await castOn(g, bits, 'float32', dt, bits.length, opts);
      const b = await castOn(w, bits, 'float32', dt, bits.length, opts);
      assert.is(firstDiff(a, b), -1, `${dt} ${JSON.stringify(opts)}`);
    }
  }
  // format -> format through the GPU equals decode then encode
  const src = encode(Float32Array.from({ length: 999 }, (_, i) => Math.sin(i) * 300), 'bf16');
  const a = await castOn(g, src, 'bfloat16', 'float6_e3m2fn', 999);
  const b = await castOn(w, src, 'bfloat16', 'float6_e3m2fn', 999);
  assert.is(firstDiff(a, b), -1);
});

function randn(n: number, seed = 1): Float32Array {
  let s = seed;
  const r = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r()));
}

function close(a: Float32Array, b: Float32Array, rel: number, abs: number, what: string): void {
  assert.is(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]) && Number.isNaN(b[i])) continue;
    const ok = Math.abs(a[i] - b[i]) <= abs + rel * Math.abs(b[i]);
    if (!ok) assert.unreachable(`${what}: element ${i}: gpu ${a[i]} vs wasm ${b[i]}`);
  }
}

async function both(fn: (b: Backend) => Promise<Float32Array>): Promise<[Float32Array, Float32Array]> {
  return [await fn(g), await fn(w)];
}

test('unary and binary (broadcasting) ops agree within WGSL accuracy bounds; low-precision inputs and outputs', async () => {
  const x = randn(1000, 3).map((v) => v * 3);
  const unary: UnaryOp[] = ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'relu', 'gelu', 'silu', 'sigmoid', 'tanh', 'abs', 'square', 'scale', 'powScalar', 'addScalar'];
  for (const op of unary) {
    const [a, b] = await both(async (be) => {
      const xi = tensor(be, [10, 100], 'float32', op === 'log' || op === 'sqrt' || op === 'rsqrt' || op === 'powScalar' ? x.map(Math.abs) : x);
      const o = tensor(be, [10, 100], 'float32');
      be.unary(op, xi, o, 1.5);
      return readF32(be, o);
    });
    // WGSL's accuracy: exp within 3 + 2|x| ulp, log within 2^-21 absolute on [0.5, 2] (3 ulp elsewhere),
    // pow via exp2(y log2 x); with |x| < 12 that is < 30 ulp relative plus 2^-20 absolute.
    close(a, b, 30 * 2 ** -23, 2 ** -20, op);
  }
  const y = randn(1000, 5);
  const binary: BinaryOp[] = [
    'add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'reluBackward', 'geluBackward', 'siluBackward', 'sigmoidBackwardY', 'tanhBackwardY',
  ];
  const viaExp = (op: BinaryOp) => op === 'pow' || op === 'geluBackward' || op === 'siluBackward';
  for (const op of binary) {
    for (const [sa, sb] of [[[10, 100], [10, 100]], [[10, 100], [100]], [[10, 1], [1, 100]], [[10, 100], []]] as number[][][]) {
      const [a, b] = await both(async (be) => {
        const xa = tensor(be, sa, 'float32', op === 'pow' ? x.slice(0, numel(sa)).map(Math.abs) : x.slice(0, numel(sa)));
        const xb = tensor(be, sb, 'float32', y.slice(0, numel(sb)));
        const o = tensor(be, [10, 100], 'float32');
        be.binary(op, xa, xb, o);
        return readF32(be, o);
      });
      close(a, b, viaExp(op) ? 30 * 2 ** -23 : 2 ** -23, viaExp(op) ? 2 ** -20 : 0, `${op} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`);
    }
  }
  // bfloat16 in, float8 out: both round the same float32 result once, so exact equality is expected
  const xb16 = encode(x, 'bf16');
  const outs: Uint8Array[] = [];
  for (const be of [g, w] as Backend[]) {
    const xa = tensor(be, [1000], 'bfloat16', xb16);
    const o = tensor(be, [1000], 'float8_e4m3fn');
    be.binary('mul', xa, xa, o);
    outs.push(await be.read(o.storage, 0, 1000));
  }
  assert.is(firstDiff(outs[0], outs[1]), -1, 'bf16*bf16 -> e4m3');
});

test('where, reductions, softmax, matmul agree (float32 accumulation bounds)', async () => {
  const x = randn(6 * 70, 7);
  const [wa, wb] = await both(async (be) => {
    const c = tensor(be, [6, 70], 'float32', x.map((v) => (v > 0 ? 1 : 0)));
    const a = tensor(be, [6, 70], 'float32', x);
    const b = tensor(be, [70], 'float32', x.slice(0, 70));
    const o = tensor(be, [6, 70], 'float32');
    be.where(c, a, b, o);
    return readF32(be, o);
  });
  close(wa, wb, 0, 0, 'where');
  for (const op of ['sum', 'mean', 'max', 'amax'] as const) {
    for (const axis of [0, 1, null]) {
      const [a, b] = await both(async (be) => {
        const xi = tensor(be, [6, 70], 'float32', x);
        const o = tensor(be, axis === null ? [] : axis === 0 ? [70] : [6], 'float32');
        be.reduce(op, xi, o, axis);
        return readF32(be, o);
      });
      // |gpu - ref| <= len * eps * sum|x|
      close(a, b, 70 * 2 ** -23, 70 * 2 ** -23 * 3 * 70, `${op} axis ${axis}`);
    }
  }
  for (const log of [false, true]) {
    const [a, b] = await both(async (be) => {
      const xi = tensor(be, [6, 70], 'float32', x);
      const o = tensor(be, [6, 70], 'float32');
      be.softmax(xi, o, log);
      return readF32(be, o);
    });
    close(a, b, 1e-5, 1e-7, log ? 'log-softmax' : 'softmax');
  }
  const A = randn(2 * 33 * 47, 11), B = randn(2 * 47 * 29, 12);
  for (const [ta, tb, dt] of [[false, false, 'float32'], [true, false, 'float32'], [false, true, 'bfloat16'], [true, true, 'float16']] as const) {
    const [a, b] = await both(async (be) => {
      const ai = tensor(be, ta ? [2, 47, 33] : [2, 33, 47], dt, dt === 'float32' ? A : encode(A, dt));
      const bi = tensor(be, tb ? [2, 29, 47] : [2, 47, 29], dt, dt === 'float32' ? B : encode(B, dt));
      const o = tensor(be, [2, 33, 29], 'float32');
      be.matmul(ai, bi, o, { transA: ta, transB: tb, alpha: 0.5 });
      return readF32(be, o);
    });
    // |gpu - wasm| <= 2 * K * eps * sum_k |a||b| (|a|,|b| ~ N(0,1): sum ~ 0.64 K)
    close(a, b, 0, 2 * 47 * 2 ** -24 * 47 * 3, `matmul ${ta} ${tb} ${dt}`);
  }
});

test('limits are checked before a dispatch, naming the tensor', () => {
  assert.throws(() => g.alloc(g.maxBufferSize + 4, 'activation', 'huge activations'), /huge activations needs \d+ bytes, more than this device's maxBufferSize/);
  assert.throws(() => w.alloc(2 ** 31 + 1, 'data', 'big input'), /big input needs \d+ bytes, more than the wasm backend's maxBufferSize/);
});

test('GPU errors surface as errors, not wrong numbers', async () => {
  g.pipeline('broken', () => 'this is not WGSL');
  let threw = false;
  try {
    await g.synchronize();
  } catch (e) {
    threw = /WebGPU error/.test((e as Error).message);
  }
  assert.ok(threw, 'a shader compile error must be reported at the next synchronize');
});

test.run();
