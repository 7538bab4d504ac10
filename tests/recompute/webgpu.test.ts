// checkpoint and saveOnHost on the WebGPU backend (SwiftShader in CI; tensors kept tiny):
// checkpointed gradients equal the plain ones and wasm's within the usual bound, and saveOnHost
// moves saved activations off the device (device bytes drop once the copies land) with gradients
// equal to those without it; compressed activations decode on the device as on the host.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpuBackend, type WebGPUBackend } from '../helpers/backends.js';
import {
  WasmBackend, Module, Linear, RMSNorm, Variable, manualSeed, tidy, withSavedTensorsHooks, savedTensorStats,
  checkpoint, saveOnHost, compressSavedTensors, profileMemory, mxQuantize, mxDequantize, Tensor, silu, add, sum, mul, narrow, cat, InvalidArgumentError, type Backend,
} from '../../src/index.js';

let g: WebGPUBackend;
test.before(async () => { g = await gpuBackend(); });
test.after(() => g.destroy());

class Mlp extends Module {
  norm: RMSNorm;
  up: Linear;
  down: Linear;
  constructor(be: Backend) {
    super();
    manualSeed(4);
    this.norm = new RMSNorm(8, 1e-5, { backend: be });
    this.up = new Linear(8, 16, { backend: be });
    this.down = new Linear(16, 8, { backend: be });
  }
  forward(x: Variable): Variable {
    return tidy(() => add(x, this.down.forward(silu(this.up.forward(this.norm.forward(x))))));
  }
}

const input = (be: Backend) => Variable.from(be, Float32Array.from({ length: 24 }, (_, i) => Math.sin(i * 0.7)), [3, 8], { requiresGrad: true });

async function grads(net: Mlp, be: Backend, wrap: (f: () => Variable) => Variable, between?: () => Promise<void>): Promise<number[]> {
  const x = input(be);
  const loss = wrap(() => tidy(() => sum(net.forward(x))));
  await between?.();
  loss.backward();
  const out: number[] = [];
  for (const p of [...net.parameters(), x]) out.push(...await p.grad!.toArray());
  net.zeroGrad(); loss.dispose(); x.dispose();
  return out;
}

const close = (a: number[], b: number[], tol: number, what: string) => {
  assert.is(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol * (1 + Math.abs(b[i])), `${what} [${i}]: ${a[i]} vs ${b[i]}`);
};

test('WebGPU: checkpointed gradients equal the plain ones (same kernels run again) and wasm\'s within 1e-5', async () => {
  const net = new Mlp(g);
  const plain = await grads(net, g, (f) => f());
  const ck = await grads(net, g, (f) => checkpoint(f));
  close(ck, plain, 0, 'checkpoint vs plain on WebGPU');
  const wasm = new WasmBackend();
  close(ck, await grads(new Mlp(wasm), wasm, (f) => checkpoint(f)), 1e-5, 'WebGPU vs wasm');
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
});

test('WebGPU saveOnHost: the saved activations leave the device once their copies land; gradients equal', async () => {
  const net = new Mlp(g);
  const plain = await grads(net, g, (f) => f());
  const base = g.memory.memoryAllocated('activation');
  let held = 0, moved = 0, host = 0;
  const hooks = saveOnHost();
  const got = await grads(net, g, (f) => withSavedTensorsHooks(hooks, f), async () => {
    held = g.memory.memoryAllocated('activation') - base;
    await hooks.flush();
    moved = g.memory.memoryAllocated('activation') - base;
    host = hooks.hostStats().bytes;
  });
  // saved activations: the norm's input and output ([3, 8]), up's output and silu's output ([3, 16])
  assert.ok(host >= (2 * 24 + 2 * 48) * 4, `host holds ${host} bytes`);
  // every activation but the loss left the device; the host also holds x (the norm's input, 'data' memory)
  assert.is(held - moved, host - 24 * 4, `device activation bytes ${held} -> ${moved}`);
  assert.is(moved, 4 + 3 * 4, 'only the loss scalar and the norm\'s rstd statistic (kept by the default filter) stay');
  close(got, plain, 0, 'saveOnHost vs plain');
  assert.equal(hooks.hostStats(), { count: 0, bytes: 0 });
  assert.is(g.memory.memoryAllocated('activation'), base);
});

test('WebGPU compressSavedTensors: MX fp8 decodes exactly as mxQuantize/mxDequantize; bfloat16 as a cast', async () => {
  const v = Float32Array.from({ length: 128 }, (_, i) => Math.sin(i * 1.3) * (1 + (i % 5) * 7));
  const t = Tensor.from(g, v, [2, 64]);
  const ctx = { op: 'linear', module: '', slot: 'output' };
  const mx = compressSavedTensors({ dtype: 'float8_e4m3fn', scale: 'mx' });
  const back = mx.unpack(mx.pack(t, ctx));
  assert.equal([...await back.toArray()], [...mxDequantize(mxQuantize(v, 'float8_e4m3fn'))]);
  const bf = compressSavedTensors({ dtype: 'bfloat16' });
  const b2 = bf.unpack(bf.pack(t, ctx));
  assert.equal([...await b2.toArray()], [...await t.to('bfloat16').to('float32').toArray()]);
  back.dispose(); b2.dispose(); t.dispose();
});

test('WebGPU profileMemory times the forwards with GPU timestamps (timestamp-query); wasm with wall time', async () => {
  const net = new Mlp(g);
  const x = input(g);
  const opts = { loss: (m: Module, b: Variable) => sum((m as Mlp).forward(b)), modules: ['up', 'down'], policies: {}, repeats: 1, warmup: 0, forwardRepeats: 2 };
  const p = await profileMemory(net, x, opts);
  assert.is(p.forwardTiming, 'timestamp-query');
  assert.match(p.timing, /GPU time \(timestamp-query\)/);
  for (const m of p.modules) assert.ok(m.forwardMs > 0 && m.forwardMs < 1000, `${m.name}: ${m.forwardMs} ms`);
  x.dispose();
  const wasm = new WasmBackend(), xw = input(wasm);
  const pw = await profileMemory(new Mlp(wasm), xw, opts);
  assert.is(pw.forwardTiming, 'wall');
  xw.dispose();
});

test('chunks on WebGPU: narrow and cat (bfloat16 pieces of odd sizes too) and a chunked checkpoint give wasm\'s values and gradients', async () => {
  // cat of bfloat16 pieces whose rows start at odd elements: two codes share a 32-bit word.
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const vals = Float32Array.from({ length: 15 }, (_, i) => i + 0.5);
    const out: number[][] = [];
    for (const be of [new WasmBackend(), g] as Backend[]) {
      const x = new Variable(Tensor.from(be, vals, [5, 3]).to(dtype));
      const j = tidy(() => cat([narrow(x, 3, 5), narrow(x, 0, 1), narrow(x, 1, 3)]));
      out.push([...await j.data.to('float32').toArray()]);
      j.dispose(); x.dispose();
    }
    assert.equal(out[1], out[0], dtype);
    assert.equal(out[0], [9.5, 10.5, 11.5, 12.5, 13.5, 14.5, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5]);
  }
  // Kernel outputs inside a larger storage: whole words only (bfloat16: two codes a word).
  const dst = Tensor.from(g, Float32Array.from({ length: 6 }, () => -1), [6]).to('bfloat16');
  const src = Tensor.from(g, [1, 2, 3, 4], [4]).to('bfloat16');
  const two = src.slice(0, 2);
  for (const [a, b] of [[1, 3], [0, 3]]) {
    const v = dst.slice(a, b), x = src.slice(0, b - a);
    assert.throws(() => g.cast(x, v), (e: unknown) => e instanceof InvalidArgumentError && /write whole 32-bit words/.test((e as Error).message), `[${a}, ${b})`);
    v.dispose(); x.dispose();
  }
  const mid = dst.slice(2, 4);
  g.copy(two, mid);
  assert.equal([...await dst.to('float32').toArray()], [-1, -1, 1, 2, -1, -1], 'an aligned slice is written in place, its neighbours kept');
  for (const t of [dst, src, two, mid]) t.dispose();
  const run = async (be: Backend, chunks: number): Promise<number[]> => {
    const net = new Mlp(be);
    const w = Variable.from(be, Float32Array.from({ length: 24 }, (_, i) => Math.cos(i)), [3, 8]);
    const x = input(be);
    const loss = tidy(() => sum(mul(checkpoint((v: Variable) => net.forward(v), x, { chunks }), w)));
    loss.backward();
    const gs: number[] = [];
    for (const p of [...net.parameters(), x]) gs.push(...await p.grad!.toArray());
    net.zeroGrad(); loss.dispose(); x.dispose(); w.dispose();
    return gs;
  };
  const ref = await run(new WasmBackend(), 1);
  close(await run(g, 3), ref, 1e-5, 'WebGPU, 3 chunks');
  close(await run(new WasmBackend(), 3), ref, 1e-6, 'wasm, 3 chunks');
  assert.equal(savedTensorStats(), { count: 0, bytes: 0 });
});

test.run();
