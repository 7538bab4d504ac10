// Dispatch hygiene and the fill kernel: backend.stats() counters on a steady training step (no
// device allocations, bind groups or uniform buffers after warm-up; few submits and compute
// passes), fill on both backends, in-place elementwise ops without temporaries, writes that keep
// their place among recorded work without a submit, the `//#enable` header slot.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpuBackend, tensor, readF32, WasmBackend, type WebGPUBackend } from '../helpers/backends.js';
import type { Backend, BackendStats, TensorDType, TensorRef } from '../../src/backend/backend.js';
import { storageBytes } from '../../src/backend/storage.js';
import { BufferPool, MemoryTracker } from '../../src/backend/memory.js';
import { decode, encode, FORMATS, InvalidArgumentError, MemfitError } from '../../src/index.js';
import { ByteTextDataset } from '../../src/data/byte_text.js';
import { loadSotuText } from '../../src/data/sotu.js';
import { LanguageModelTrainer, TINY_LLAMA } from '../../src/train/language_model.js';

const w = new WasmBackend();
let g: WebGPUBackend;
test.before(async () => {
  g = await gpuBackend();
});
test.after(() => g.destroy());

const delta = (a: BackendStats, b: BackendStats): BackendStats =>
  Object.fromEntries(Object.keys(a).map((k) => [k, b[k as keyof BackendStats] - a[k as keyof BackendStats]])) as unknown as BackendStats;

/** Deterministic pseudo-random bytes. */
function bytes(n: number, seed: number): Uint8Array {
  let s = seed >>> 0;
  return Uint8Array.from({ length: n }, () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) >>> 24);
}

const bitsOf = (dt: TensorDType) => (dt === 'int32' ? 32 : FORMATS.find((f) => f.name === dt)!.bits);

/** `before` with elements [offset, offset + n) set to `code`, bit by bit (little-endian packing from bit 0). */
function filledReference(before: Uint8Array, dt: TensorDType, offset: number, n: number, code: number): Uint8Array {
  const out = before.slice();
  const nb = bitsOf(dt);
  for (let e = offset; e < offset + n; e++) {
    for (let b = 0; b < nb; b++) {
      const k = e * nb + b;
      if ((code >>> b) & 1) out[k >> 3] |= 1 << (k & 7);
      else out[k >> 3] &= ~(1 << (k & 7));
    }
  }
  return out;
}

const DTYPES: TensorDType[] = [...FORMATS.map((f) => f.name), 'int32'];

test('fill: every dtype, whole tensors and views at odd offsets, keeps the bits around them; both backends give the reference bytes', async () => {
  const total = 37;
  for (const dt of DTYPES) {
    const nbytes = storageBytes(dt, total);
    for (const [offset, n, value] of [[0, total, 0], [5, 23, dt === 'int32' ? -3 : 0.3], [1, 1, dt === 'int32' ? 7 : -2.5], [16, 21, dt === 'int32' ? 2 ** 31 - 1 : 448]] as const) {
      const init = bytes(nbytes, offset * 131 + nbytes);
      const code = dt === 'int32' ? value >>> 0 : encode([value], dt)[0];
      const want = filledReference(init, dt, offset, n, code);
      for (const b of [w, g] as Backend[]) {
        const t = tensor(b, [total], dt, init);
        b.fill({ ...t, offset, shape: [n] }, value);
        const got = await b.read(t.storage, 0, nbytes);
        assert.equal([...got], [...want], `${b.kind} ${dt} fill [${offset}, ${offset + n}) with ${value}`);
        b.free(t.storage);
      }
    }
  }
  // The codes themselves, independently of encode(): bfloat16 1.0 is 0x3f80, fp4 e2m1 1.0 is 0b0010.
  for (const b of [w, g] as Backend[]) {
    const h = tensor(b, [3], 'bfloat16');
    b.fill(h, 1);
    assert.equal([...new Uint16Array((await b.read(h.storage, 0, 6)).buffer)], [0x3f80, 0x3f80, 0x3f80], `${b.kind} bfloat16`);
    const q = tensor(b, [4], 'float4_e2m1fn');
    b.fill(q, 1);
    assert.equal([...await b.read(q.storage, 0, 2)], [0x22, 0x22], `${b.kind} fp4`);
    b.free(h.storage);
    b.free(q.storage);
  }
});

test('fill: an int32 fill with a non-integer and a range past the storage are clear errors', () => {
  for (const b of [w, g] as Backend[]) {
    const t = tensor(b, [4], 'int32');
    assert.throws(() => b.fill(t, 0.5), (e: unknown) => e instanceof InvalidArgumentError && /int32/.test((e as Error).message));
    assert.throws(() => b.fill({ ...t, offset: 2, shape: [3] }, 1), (e: unknown) => e instanceof InvalidArgumentError && /overruns a 16-byte storage/.test((e as Error).message));
    b.free(t.storage);
  }
});

test('fill runs on the device: a 64 KiB zero fill uploads at most its uniform block', async () => {
  for (const b of [w, g] as Backend[]) {
    const t = tensor(b, [16384], 'float32');
    await b.synchronize();
    const s0 = b.stats();
    b.fill(t, 0);
    await b.synchronize();
    const d = delta(s0, b.stats());
    assert.ok(d.bytesUploaded <= 256, `${b.kind}: ${d.bytesUploaded} bytes uploaded`);
    assert.equal([...await readF32(b, t)].filter((v) => v !== 0), []);
    b.free(t.storage);
  }
});

test('in place on WebGPU: elementwise ops with the output as an input allocate no temporary and match wasm bit for bit (packed dtypes too)', async () => {
  for (const dt of ['float32', 'bfloat16', 'float6_e3m2fn', 'float4_e2m1fn'] as const) {
    const n = 37; // the last word group is partial
    const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 3), y = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.7) * 2);
    const got: Uint8Array[] = [];
    for (const b of [w, g] as Backend[]) {
      const p = tensor(b, [n], dt), q = tensor(b, [n], dt);
      const fx = tensor(b, [n], 'float32', x), fy = tensor(b, [n], 'float32', y);
      b.cast(fx, p);
      b.cast(fy, q);
      const { trace } = b.memory.memoryTrace(() => {
        b.binary('mul', p, q, p);      // p = x * y
        b.unary('addScalar', p, p, 1); // p = x * y + 1
        b.binary('sub', q, p, q);      // q = y - p
        b.binary('mul', q, q, q);      // q = q * q (both inputs are the output)
      });
      if (b === g) assert.equal(trace.events.filter((e) => e.category === 'temporary' && e.label.includes('in-place')), [], `${dt}: no in-place temporary`);
      got.push(await b.read(q.storage, 0, storageBytes(dt, n)));
      for (const t of [p, q, fx, fy]) b.free(t.storage);
    }
    assert.equal([...got[1]], [...got[0]], `${dt}: webgpu vs wasm`);
  }
});

test('in place on WebGPU where the aliased input is read at another offset: a temporary keeps the result right', async () => {
  const data = Float32Array.from({ length: 20 }, (_, i) => i * 1.5 - 7), q = Float32Array.from({ length: 15 }, (_, i) => 100 + i);
  const got: Float32Array[] = [];
  for (const b of [w, g] as Backend[]) {
    const p = tensor(b, [20], 'float32', data), t = tensor(b, [15], 'float32', q);
    const { trace } = b.memory.memoryTrace(() => b.binary('add', { ...p, offset: 5, shape: [15] }, t, { ...p, shape: [15] }));
    if (b === g) assert.ok(trace.events.some((e) => e.label.includes('in-place result')), 'the temporary is used');
    got.push(await readF32(b, p));
    b.free(p.storage);
    b.free(t.storage);
  }
  const want = Float32Array.from(data, (v, i) => (i < 15 ? Math.fround(data[i + 5] + q[i]) : v));
  assert.equal([...got[0]], [...want]);
  assert.equal([...got[1]], [...want]);
});

test('writes into a buffer that recorded work reads keep their place without a submit (and past the upload ring, with one)', async () => {
  for (const n of [4, 80_000]) { // 80,000 float32: larger than the 256 KiB upload ring
    const a = Float32Array.from({ length: n }, (_, i) => i + 1);
    const x = tensor(g, [n], 'float32', a), y = tensor(g, [n], 'float32'), z = tensor(g, [n], 'float32');
    await g.synchronize();
    g.unary('scale', x, y, 2); // recorded, not submitted
    const s0 = g.stats();
    g.write(x.storage, a.map((v) => v * 10));
    const s1 = g.stats();
    g.unary('scale', x, z, 2);
    if (n === 4) assert.is(s1.submits - s0.submits, 0, 'a small write into a buffer in use does not submit');
    const ry = await readF32(g, y), rz = await readF32(g, z);
    assert.equal([ry[0], ry[n - 1], rz[0], rz[n - 1]], [2, 2 * n, 20, 20 * n], `n=${n}`);
    for (const t of [x, y, z]) g.free(t.storage);
  }
});

test('emptyCache with recorded work on a freed buffer: the work is submitted first, no device error', async () => {
  const x = tensor(g, [8], 'float32', Float32Array.from({ length: 8 }, (_, i) => i)), y = tensor(g, [8], 'float32');
  g.unary('neg', x, y);
  g.free(x.storage);
  g.emptyCache(); // destroys x's buffer
  assert.equal([...await readF32(g, y)], [-0, -1, -2, -3, -4, -5, -6, -7]);
  await g.synchronize();
  g.free(y.storage);
});

test('cast between shapes of the same size reads in row-major order on both backends (a reshape, never a broadcast); different sizes are refused', async () => {
  const values = Float32Array.from({ length: 3 * 64 }, (_, i) => (i % 97) - 48.25);
  const bf = encode(values, 'bfloat16') as Uint16Array;
  for (const b of [w, g] as Backend[]) {
    const x = tensor(b, [3, 2, 32], 'bfloat16', bf);
    const out = tensor(b, [3, 64], 'float32');
    b.cast(x, out);
    assert.equal(Array.from(await readF32(b, out)), Array.from(values, (v) => v), b.kind);
    const fp8 = tensor(b, [6, 32], 'float8_e4m3fn');
    b.cast(out, fp8, { saturate: true });
    const back = tensor(b, [192], 'float32');
    b.cast(fp8, back);
    assert.equal(Array.from(await readF32(b, back)), Array.from(decode(encode(values, 'float8_e4m3fn', { saturate: true }), 'float8_e4m3fn')), b.kind);
    for (const t of [x, out, fp8, back]) b.free(t.storage);
  }
  const x = tensor(g, [2, 32], 'float32'), out = tensor(g, [2, 2, 32], 'float32');
  assert.throws(() => g.cast(x, out), (e: unknown) => e instanceof InvalidArgumentError && /different numbers of elements/.test((e as Error).message));
  g.free(x.storage); g.free(out.storage);
});

test('WebGPU write takes a view of shared WebAssembly memory (the threaded wasm backend\'s) and writes its bytes', async () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 16, shared: true }); // as the wasm backend's
  const shared = new Float32Array(memory.buffer, 1024, 64).map((_, i) => i * 0.5);
  const t = tensor(g, [48], 'float32');
  g.write(t.storage, shared.subarray(8, 56));
  assert.equal(Array.from(await readF32(g, t)), Array.from(shared.subarray(8, 56)));
  g.free(t.storage);
});

test('BufferPool hands out the free buffer created first, whatever order they were freed in', () => {
  let made = 0;
  const pool = new BufferPool<string>(new MemoryTracker(), () => `b${made++}`, () => {});
  const [a, b, c] = [pool.acquire(100), pool.acquire(100), pool.acquire(100)].map((r) => r.buffer);
  pool.release(c, 256);
  pool.release(a, 256);
  pool.release(b, 256);
  assert.equal([pool.acquire(100).buffer, pool.acquire(100).buffer, pool.acquire(100).buffer, pool.acquire(100).buffer], ['b0', 'b1', 'b2', 'b3']);
  assert.throws(() => pool.release('stranger', 256), /did not create it/);
});

test('a steady training step: no device allocations, bind groups, uniform buffers or pipelines; few submits and compute passes; no zeros uploaded', async () => {
  const text = loadSotuText({ fromYear: 1990 });
  const config = { ...TINY_LLAMA, batchSize: 1, seqLen: 8, steps: 4, warmupSteps: 1 };
  for (const b of [w, g] as Backend[]) {
    const t = new LanguageModelTrainer(b, new ByteTextDataset(text), config);
    try {
      await t.trainStep();
      await t.trainStep();
      const s0 = b.stats();
      await t.trainStep();
      const d = delta(s0, b.stats());
      assert.is(d.deviceAllocations, 0, `${b.kind} device allocations`);
      const data = 2 * 4 * config.batchSize * config.seqLen; // ids and targets
      if (b === w) assert.ok(d.bytesUploaded <= data + 64, `wasm uploads ${d.bytesUploaded} bytes`);
      else {
        assert.is(d.bindGroupsCreated, 0, 'bind groups');
        assert.is(d.uniformBuffersCreated, 0, 'uniform buffers');
        assert.is(d.pipelinesCreated, 0, 'pipelines');
        assert.ok(d.dispatches > 100, `${d.dispatches} dispatches`);
        assert.ok(d.submits <= Math.ceil(d.dispatches / 64) + 1, `${d.submits} submits for ${d.dispatches} dispatches`);
        assert.ok(d.computePasses <= d.submits + 2, `${d.computePasses} compute passes, ${d.submits} submits`);
        assert.ok(d.bytesUploaded <= 256 * d.dispatches + data + 64, `${d.bytesUploaded} bytes uploaded (uniform slots, data)`);
      }
    } finally {
      t.dispose();
    }
  }
});

test('//#enable lines become enable directives at the very top; a feature the device lacks is a clear error', async () => {
  const src = g.withDirectives('t', 'fn a() {}\n//#enable subgroups\n  //#enable subgroups\nfn b() {}\n');
  if (g.features.has('subgroups')) assert.is(src, 'enable subgroups;\nfn a() {}\n//#enable subgroups\n  //#enable subgroups\nfn b() {}\n');
  assert.throws(() => g.withDirectives('t', '//#enable f17\n'), (e: unknown) => e instanceof MemfitError && e.code === 'UNKNOWN_WGSL_EXTENSION');
  const f16 = () => g.pipeline('test.enable-f16', () => `${g.shader('dtype')}//#enable f16
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1) fn main() { let h: f16 = 1.5h; out[0] = f32(h); }
`);
  if (!g.features.has('shader-f16')) {
    assert.throws(f16, (e: unknown) => e instanceof MemfitError && e.code === 'UNSUPPORTED_FEATURE' && /shader-f16/.test((e as Error).message) && /enable f16;/.test((e as Error).message));
  } else {
    const o = tensor(g, [1], 'float32');
    g.dispatch(f16(), [{ storage: o.storage }], null, 1);
    assert.equal([...await readF32(g, o)], [1.5]);
    g.free(o.storage);
  }
  // A shader that needs an extension SwiftShader has: subgroups (the dtype library comes before the marker).
  if (g.features.has('subgroups')) {
    const p = g.pipeline('test.enable-subgroups', () => `${g.shader('dtype')}//#enable subgroups
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(64) fn main(@builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sg: u32) {
  let s = subgroupAdd(1u);
  if (lid == 0u) { out[0] = sg; out[1] = s; }
}
`);
    const o = tensor(g, [2], 'int32');
    g.dispatch(p, [{ storage: o.storage }], null, 1);
    const [sg, sum] = new Uint32Array((await g.read(o.storage, 0, 8)).buffer);
    assert.ok(sg >= 1 && sg <= 128 && (sg & (sg - 1)) === 0, `subgroup size ${sg}`);
    assert.is(sum, sg, 'subgroupAdd(1) over a subgroup is its size');
    g.free(o.storage);
  } else {
    assert.throws(() => g.withDirectives('t', '//#enable subgroups\n'), (e: unknown) => e instanceof MemfitError && e.code === 'UNSUPPORTED_FEATURE');
  }
});

test.run();
