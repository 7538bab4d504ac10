import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { gpuDeviceNodes, hardwareIcds, probeAdapter } from '../../src/backend/webgpu/node_device.js';
import { DEFAULT_SWIFTSHADER_ICD } from '../../src/backend/webgpu/device.js';
import { gpuBackend, WasmBackend, type WebGPUBackend } from '../helpers/backends.js';
import { Tensor, createBackend, decode, encode, InvalidArgumentError, ShapeMismatchError, UnknownDTypeError, type Backend } from '../../src/index.js';
import { dispatch } from '../../src/tensor/tensor.js';

let g: WebGPUBackend;
const w = new WasmBackend();
test.before(async () => {
  g = await gpuBackend();
});
test.after(() => g.destroy());

const values = Float32Array.from({ length: 37 }, (_, i) => (i - 18) * 0.37);

for (const name of ['wasm', 'webgpu'] as const) {
  const get = (): Backend => (name === 'wasm' ? w : g);

  test(`${name}: from / toArray round-trips every dtype (values rounded as encode does)`, async () => {
    for (const dtype of ['float32', 'float16', 'bfloat16', 'e4m3', 'e5m2', 'e3m2', 'e2m3', 'fp4']) {
      const t = Tensor.from(get(), values, [37], { dtype });
      const back = await t.toArray();
      assert.equal(Array.from(back), Array.from(decode(encode(values, dtype), dtype)), dtype);
      // views at every offset within a packing group (fp6: 4 codes in 3 bytes; fp4: 2 in a byte)
      for (let start = 0; start < 8; start++) {
        const v = t.slice(start, start + 7);
        assert.equal(Array.from(await v.toArray()), Array.from(back.subarray(start, start + 7)), `${dtype} slice(${start})`);
        v.dispose();
      }
      t.dispose();
    }
    const ids = Tensor.from(get(), [3, -1, 7], [3], { dtype: 'int32' });
    assert.equal(Array.from(await ids.toArray()), [3, -1, 7]);
    ids.dispose();
  });

  test(`${name}: sum, mean and max keep a bfloat16 or float16 input's dtype (float32 sums rounded once), int32 gives float32, as PyTorch`, async () => {
    // 4 x 9 values exact in bfloat16, whose float32 sums are exact: only the result's rounding differs by dtype
    const xs = Float32Array.from({ length: 36 }, (_, i) => ((i * 7) % 36 - 17) * 0.375 + (i % 5) * 0.125);
    const ref = (op: 'sum' | 'mean' | 'max', axis: number | null): number[] => {
      const rows = axis === null ? [Array.from(xs)] : axis === 0
        ? Array.from({ length: 9 }, (_, j) => Array.from({ length: 4 }, (_, r) => xs[r * 9 + j]))
        : Array.from({ length: 4 }, (_, r) => Array.from(xs.subarray(r * 9, r * 9 + 9)));
      return rows.map((v) => (op === 'max' ? Math.max(...v) : v.reduce((a, b) => a + b, 0) / (op === 'mean' ? v.length : 1)));
    };
    for (const dtype of ['bfloat16', 'float16'] as const) {
      const t = Tensor.from(get(), xs, [4, 9], { dtype });
      assert.equal(Array.from(decode(encode(xs, dtype), dtype)), Array.from(xs), `${dtype}: the inputs are exact`);
      for (const op of ['sum', 'mean', 'max'] as const) {
        for (const axis of [null, 0, 1]) {
          const r = t[op](axis);
          assert.is(r.dtype, dtype, `${dtype} ${op}(${axis})`);
          assert.equal(r.shape, axis === null ? [] : axis === 0 ? [9] : [4]);
          const want = Array.from(decode(encode(Float32Array.from(ref(op, axis)), dtype), dtype));
          assert.equal(Array.from(await r.toArray()), want, `${dtype} ${op}(${axis})`);
          r.dispose();
        }
      }
      t.dispose();
    }
    const ids = Tensor.from(get(), [3, -1, 7, 2], [2, 2], { dtype: 'int32' });
    for (const [op, want] of [['sum', [10, 1]], ['max', [7, 2]]] as const) {
      const r = ids[op](0);
      assert.is(r.dtype, 'float32', `int32 ${op}`);
      assert.equal(Array.from(await r.toArray()), [...want]);
      r.dispose();
    }
    ids.dispose();
    // the 8-bit and narrower formats sum into float32 (PyTorch does not sum float8; 1000 ones are 1000, not NaN)
    for (const dtype of ['e4m3', 'e5m2', 'e3m2', 'fp4'] as const) {
      const ones = Tensor.from(get(), new Float32Array(1000).fill(1), [1000], { dtype });
      for (const [op, want] of [['sum', 1000], ['mean', 1], ['max', 1]] as const) {
        const r = ones[op]();
        assert.is(r.dtype, 'float32', `${dtype} ${op}`);
        assert.equal(Array.from(await r.toArray()), [want], `${dtype} ${op}`);
        r.dispose();
      }
      ones.dispose();
    }
  });

  test(`${name}: ops refuse uint8 tensors (raw bytes) with a clear error, and allocate nothing`, async () => {
    const b = get();
    const u = Tensor.from(b, Array.from({ length: 12 }, (_, i) => i), [3, 4], { dtype: 'uint8' });
    const before = b.memory.memoryAllocated();
    const f32 = Tensor.from(b, new Float32Array(12), [3, 4]);
    for (const [what, run] of [['sum', () => u.sum()], ['max', () => u.max(0)], ['add', () => f32.add(u)], ['softmax', () => u.softmax()], ['matmul', () => u.matmul(f32, { transB: true })], ['exp', () => u.unary('exp')]] as const) {
      assert.throws(run, (e: unknown) => e instanceof InvalidArgumentError && new RegExp(`^${what}: a uint8 tensor holds raw bytes`).test((e as Error).message), what);
    }
    f32.dispose();
    assert.is(b.memory.memoryAllocated(), before);
    assert.equal(Array.from(await u.toArray()), Array.from({ length: 12 }, (_, i) => i)); // the bytes themselves still read back
    u.dispose();
  });

  test(`${name}: to(dtype) equals encode; ops; shape errors`, async () => {
    const b = get();
    const x = Tensor.from(b, values, [37]);
    const h = x.to('bf16');
    assert.equal(Array.from(await h.toArray()), Array.from(decode(encode(values, 'bf16'), 'bf16')));
    const a = Tensor.from(b, [1, 2, 3, 4, 5, 6], [2, 3]);
    const c = Tensor.from(b, [10, 20, 30], [3]);
    const s = a.add(c);
    assert.equal(Array.from(await s.toArray()), [11, 22, 33, 14, 25, 36]);
    assert.equal(Array.from(await a.sum(1).toArray()), [6, 15]);
    assert.equal(Array.from(await a.max(0).toArray()), [4, 5, 6]);
    const mm = a.matmul(a, { transB: true });
    assert.equal(mm.shape, [2, 2]);
    assert.equal(Array.from(await mm.toArray()), [14, 32, 32, 77]);
    assert.throws(() => a.matmul(a), (e: unknown) => e instanceof ShapeMismatchError && /inner dimensions differ/.test((e as Error).message));
    assert.throws(() => a.add(Tensor.from(b, [1, 2], [2])), /cannot be broadcast/);
    assert.throws(() => Tensor.from(b, [1, 2, 3], [2, 2]), /3 values do not fill shape \[2, 2\]/);
    assert.throws(() => Tensor.empty(b, [2], { dtype: 'float7' }), (e: unknown) => e instanceof UnknownDTypeError);
    assert.throws(() => a.reshape([4, 2]), /cannot reshape/);
    for (const t of [x, h, a, c, s, mm]) t.dispose();
  });
}

for (const name of ['wasm', 'webgpu'] as const) {
  test(`${name}: transpose swaps the last two dims, bit for bit (sub-byte and NaN payloads included)`, async () => {
    const b = name === 'wasm' ? w : g;
    const [B, R, C] = [2, 3, 5];
    const vals = Float32Array.from({ length: B * R * C }, (_, i) => (i - 13) * 0.75);
    for (const dtype of ['float32', 'bf16', 'e5m2', 'e3m2', 'fp4']) {
      const x = Tensor.from(b, vals, [B, R, C], { dtype });
      const t = x.transpose();
      assert.equal(t.shape, [B, C, R]);
      const xs = await x.toArray(), ts = await t.toArray();
      for (let k = 0; k < B; k++) for (let i = 0; i < R; i++) for (let j = 0; j < C; j++) {
        assert.is(ts[k * R * C + j * R + i], xs[k * R * C + i * C + j], `${dtype} ${k} ${i} ${j}`);
      }
      x.dispose();
      t.dispose();
    }
    // a bfloat16 NaN with a payload survives (a decode/encode round trip would canonicalise it)
    const nan = Tensor.empty(b, [1, 2], { dtype: 'bf16' });
    b.write(nan.storage, Uint16Array.of(0x7f81, 0x3f80));
    const view = nan.transpose(), tn = view.contiguous();
    assert.equal(Array.from(new Uint16Array((await b.read(tn.storage, 0, 4)).buffer)), [0x7f81, 0x3f80]);
    nan.dispose();
    view.dispose();
    tn.dispose();
  });
}

test('toBackend copies the same bytes; mixing backends is an error', async () => {
  const x = Tensor.from(w, values, [37], { dtype: 'e2m1' });
  const y = await x.slice(3).toBackend(g);
  assert.equal(Array.from(await y.toArray()), Array.from((await x.toArray()).subarray(3)));
  const z = Tensor.from(w, values, [37]);
  assert.throws(() => z.add(y), /different backends/);
  x.dispose(); y.dispose(); z.dispose();
});

test('createBackend: explicit wasm, explicit webgpu, auto, env override; one line says which and why', async () => {
  const lines: string[] = [];
  const a = await createBackend({ backend: 'wasm', log: (l) => lines.push(l) });
  assert.is(a.kind, 'wasm');
  const b = await createBackend({ backend: 'webgpu', log: (l) => lines.push(l) });
  assert.is(b.kind, 'webgpu');
  assert.match(lines[1], /webgpu backend on .*(swiftshader|SwiftShader|hardware)/i);
  b.destroy();
  process.env.MEMFIT_BACKEND = 'wasm';
  const c = await createBackend({ log: (l) => lines.push(l) });
  delete process.env.MEMFIT_BACKEND;
  assert.is(c.kind, 'wasm');
  assert.match(lines[lines.length - 1], /requested by MEMFIT_BACKEND/);
  try {
    await createBackend({ backend: 'cuda' as never, log: null });
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /unknown backend "cuda"/);
  }
  // auto never takes a software adapter: SwiftShader exists here, yet wasm is chosen, and the line says why
  const d = await createBackend({ log: (l) => lines.push(l) });
  if (gpuDeviceNodes().length === 0 || hardwareIcds().length === 0) {
    assert.is(d.kind, 'wasm');
    assert.match(lines[lines.length - 1], /wasm backend: automatic choice: no hardware WebGPU adapter: .*software WebGPU is ~100x slower than wasm/);
  } else if (d.kind === 'webgpu') {
    assert.not.ok((d as unknown as { software: boolean }).software, 'auto chose a software adapter');
    d.destroy();
  }
  // explicit webgpu without SwiftShader or hardware is an error, auto falls back
  const e = await createBackend({ swiftshaderIcd: '/nonexistent.json', forceSoftware: true, log: (l) => lines.push(l) });
  assert.is(e.kind, 'wasm');
  try {
    await createBackend({ backend: 'webgpu', swiftshaderIcd: '/nonexistent.json', forceSoftware: true, log: null });
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /no SwiftShader Vulkan ICD at \/nonexistent.json/);
  }
});

test('the automatic backend choice is quiet: one line on stderr, no driver messages (they appear with MEMFIT_VERBOSE=1)', () => {
  const script = `import { createBackend } from ${JSON.stringify(new URL('../../dist/node/index.js', import.meta.url).href)};
const b = await createBackend(); process.stdout.write(b.kind); b.destroy();`;
  const env = { ...process.env };
  delete env.MEMFIT_BACKEND; delete env.MEMFIT_VERBOSE; delete env.XDG_RUNTIME_DIR; delete env.VK_ICD_FILENAMES; delete env.VK_DRIVER_FILES;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  const err = r.stderr.trim().split('\n');
  assert.equal(err.length, 1, r.stderr);
  assert.match(err[0], new RegExp(`^memfit: ${r.stdout} backend`));
  const v = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...env, MEMFIT_VERBOSE: '1' }, encoding: 'utf8' });
  assert.is(v.status, 0, v.stderr);
  if (r.stdout === 'wasm') assert.match(v.stderr, /memfit: webgpu probe: /);
});

test('the WebGPU probe runs Dawn in a child and captures what the drivers print', () => {
  const sw = probeAdapter(DEFAULT_SWIFTSHADER_ICD, []);
  assert.ok(sw.adapter, sw.error ?? sw.stderr);
  assert.ok(sw.adapter!.software, 'SwiftShader must be seen as a software adapter');
  assert.is(sw.icd, DEFAULT_SWIFTSHADER_ICD);
  // A hardware driver without its device (Mesa's ICDs on a machine with no GPU): no adapter, and
  // whatever it printed is in .stderr, not on this process's stderr.
  const mesa = hardwareIcds()[0];
  if (mesa && gpuDeviceNodes().length === 0) {
    const p = probeAdapter(mesa, []);
    assert.is(p.adapter, null);
    assert.type(p.stderr, 'string');
  }
});

test('Tensor.to checks its options: seeds as encode takes them, rounding names, saturate a boolean, no unknown keys', async () => {
  const x = Tensor.from(w, [1.1, 2.3, -0.7, 5.9], [4]);
  const codes = async (t: Tensor) => { const a = Array.from(await t.to('float32').toArray()); t.dispose(); return a; };
  // a number seed is the same stream as the bigint seed (encode's rule)
  assert.equal(await codes(x.to('bfloat16', { rounding: 'stochastic', seed: 3 })), await codes(x.to('bfloat16', { rounding: 'stochastic', seed: 3n })));
  const bad = (options: unknown, re: RegExp) => assert.throws(() => x.to('bfloat16', options as never), (e: unknown) => e instanceof InvalidArgumentError && re.test((e as Error).message));
  bad({ rounding: 'towards-zero' }, /Tensor\.to: unknown rounding "towards-zero"; use 'nearest-even', 'toward-zero', 'stochastic'/);
  bad({ rounding: 'toString' }, /unknown rounding/);
  bad({ saturate: 'no' }, /saturate must be a boolean, got "no"/);
  bad({ rounding: 'stochastic', seed: 1.5 }, /seed must be an integer/);
  bad({ rounding: 'stochastic', sed: 1 }, /unknown option "sed"/);
  bad(null, /options must be an object, got null/);
  // the backend's cast checks the same (a strided view too)
  assert.throws(() => x.reshape([2, 2]).transpose().to('bfloat16', { saturate: 1 } as never), /saturate must be a boolean/);
  x.dispose();
});

test('Tensor.from int32 refuses non-integers and values outside [-2^31, 2^31) (as uint8 does); unknown options refused', () => {
  const before = w.memory.memoryAllocated('data');
  for (const v of [2 ** 31, -(2 ** 31) - 1, 1.9, NaN, Infinity]) {
    assert.throws(() => Tensor.from(w, [0, v], [2], { dtype: 'int32' }), (e: unknown) => e instanceof InvalidArgumentError && /int32 data\[1\] is .*not an integer in \[-2\^31, 2\^31\)/.test((e as Error).message));
  }
  const ok = Tensor.from(w, [2 ** 31 - 1, -(2 ** 31)], [2], { dtype: 'int32' });
  ok.dispose();
  assert.throws(() => Tensor.from(w, [1], [1], { dtyp: 'bfloat16' } as never), (e: unknown) => e instanceof InvalidArgumentError && /Tensor\.from: unknown option "dtyp" \(known: dtype, category, label\)/.test((e as Error).message));
  assert.throws(() => Tensor.empty(w, [1], { categry: 'data' } as never), /Tensor\.empty: unknown option "categry"/);
  assert.is(w.memory.memoryAllocated('data'), before); // nothing leaked by the refusals
});

test('max and amax over an empty dimension are errors (PyTorch raises), while the sum of nothing is 0', async () => {
  const e = Tensor.from(w, new Float32Array(0), [2, 0]);
  for (const op of ['max', 'amax'] as const) {
    const red = (axis: number | null) => dispatch.reduce(op, e, axis);
    assert.throws(() => red(1), (err: Error) => err instanceof InvalidArgumentError && new RegExp(`${op} over an empty dimension \\(size 0\\)`).test(err.message), op);
    assert.throws(() => red(null), (err: Error) => err instanceof InvalidArgumentError, `${op} of all`);
    const r = red(0); // along the non-empty axis: an empty result, no error
    assert.equal(r.shape, [0], op);
    r.dispose();
  }
  assert.throws(() => e.max(1), /max over an empty dimension/);
  assert.throws(() => e.sum('0' as never), (err: Error) => err instanceof InvalidArgumentError && /axis must be an integer \(or null for every axis\), got "0"/.test(err.message));
  assert.equal([...await e.sum(1).toArray()], [0, 0]);
  e.dispose();
});

test('Tensor.matmul refuses unknown options and non-boolean transposes', () => {
  const a = Tensor.from(w, [1, 2, 3, 4], [2, 2]);
  assert.throws(() => a.matmul(a, { transC: true } as never), (e: unknown) => e instanceof InvalidArgumentError && /matmul: unknown option "transC" \(known: transA, transB, alpha\)/.test((e as Error).message));
  assert.throws(() => a.matmul(a, { transB: 'yes' } as never), /matmul: transB must be a boolean, got "yes"/);
  a.dispose();
});

test('createBackend checks its options: null, a name instead of an object, unknown keys, a log that is no function', async () => {
  const bad = async (options: unknown, re: RegExp) => {
    try {
      await createBackend(options as never);
      assert.unreachable(`createBackend(${String(options)})`);
    } catch (e) {
      assert.instance(e, InvalidArgumentError);
      assert.match((e as Error).message, re);
    }
  };
  await bad(null, /createBackend: options must be an object, got null/);
  await bad('wasm', /createBackend: options must be an object, got "wasm"; to ask for a backend by name, write createBackend\(\{ backend: "wasm" \}\)/);
  await bad({ backend: 'wasm', log: 5 }, /createBackend: log must be a function/);
  await bad({ backend: 'wasm', log: null, thread: 2 }, /createBackend: unknown option "thread"/);
  await bad({ backend: 'wasm', log: null, threads: '2' }, /createBackend: threads must be a positive integer, got "2"/);
  await bad({ backend: 'wasm', log: null, verbose: 'yes' }, /createBackend: verbose must be a boolean/);
});

test.run();
