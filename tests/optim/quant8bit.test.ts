// Block-wise dynamic 8-bit quantization (bitsandbytes): the dynamic map against bitsandbytes' own
// values, quantize/dequantize against a plain-JavaScript reference of the rule on wasm, and
// bit-identical on WebGPU (SwiftShader); the fused 8-bit optimizer kernel on both backends.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createDynamicMap, mapThresholds } from '../../src/optim/dynamic_map.js';
import { quantTable } from '../../src/backend/quant.js';
import { golden } from '../helpers/golden.js';
import { gpuBackend, tensor, readF32, WasmBackend, type WebGPUBackend } from '../helpers/backends.js';
import type { Backend, TensorRef } from '../../src/backend/backend.js';
import { Tensor } from '../../src/tensor/tensor.js';

const w = new WasmBackend();
let g: WebGPUBackend;
test.before(async () => { g = await gpuBackend(); });
test.after(() => g.destroy());

const f = Math.fround;

/** Plain JavaScript reference of the rule in src/backend/quant.ts (a linear scan, not a binary search). */
function refQuantize(x: Float32Array, block: number, signed: boolean): { codes: Uint8Array; absmax: Float32Array } {
  const thr = mapThresholds(signed);
  const codes = new Uint8Array(x.length);
  const absmax = new Float32Array(Math.ceil(x.length / block));
  for (let b = 0; b < absmax.length; b++) {
    let m = 0;
    let nan = false;
    for (let i = b * block; i < Math.min(x.length, (b + 1) * block); i++) { if (Number.isNaN(x[i])) nan = true; m = Math.max(m, Math.abs(x[i])); }
    absmax[b] = nan ? NaN : m;
    for (let i = b * block; i < Math.min(x.length, (b + 1) * block); i++) {
      let k = 0;
      while (k < 255 && x[i] > f(thr[k] * absmax[b])) k++;
      codes[i] = k;
    }
  }
  return { codes, absmax };
}

function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const r = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  // a spread of magnitudes over 8 decades, signs mixed, with zeros and exact code values
  return Float32Array.from({ length: n }, (_, i) => (i % 97 === 0 ? 0 : (r() - 0.5) * 10 ** (-8 * r() + 2)));
}

async function bytes(b: Backend, t: TensorRef, n: number): Promise<Uint8Array> {
  return (await b.read(t.storage, 0, n)).slice();
}

test('dynamic maps match bitsandbytes create_dynamic_map bit for bit (signed and unsigned, 256 values each)', () => {
  const data = golden<{ signed: number[]; unsigned: number[] }>('bnb_dynamic_map.json');
  for (const signed of [true, false]) {
    const got = new Uint32Array(createDynamicMap(signed).buffer);
    const want = data[signed ? 'signed' : 'unsigned'];
    assert.is(got.length, 256);
    for (let i = 0; i < 256; i++) assert.is(got[i], want[i] >>> 0, `${signed ? 'signed' : 'unsigned'}[${i}]`);
  }
  const s = createDynamicMap(true), u = createDynamicMap(false);
  assert.is(s[255], 1); assert.is(u[0], 0); assert.is(u[255], 1);
  assert.ok(s.includes(0));
});

for (const block of [256, 2048]) {
  test(`quantize/dequantize (block ${block}) follow the rule on wasm and are bit-identical on WebGPU`, async () => {
    const n = block * 3 + 77; // a short last block
    const x = values(n, block);
    x[5] = f(0.5 * (createDynamicMap(true)[200] + createDynamicMap(true)[201])); // near a threshold
    for (const signed of [true, false]) {
      const xs = signed ? x : x.map(Math.abs);
      const want = refQuantize(xs, block, signed);
      const outs: { codes: Uint8Array; absmax: Float32Array; deq: Float32Array }[] = [];
      for (const b of [w, g] as Backend[]) {
        const xt = tensor(b, [n], 'float32', xs);
        const codes = tensor(b, [n], 'uint8');
        const absmax = tensor(b, [Math.ceil(n / block)], 'float32');
        const out = tensor(b, [n], 'float32');
        b.quantizeBlockwise(xt, codes, absmax, signed, block);
        b.dequantizeBlockwise(codes, absmax, out, signed, block);
        outs.push({ codes: await bytes(b, codes, n), absmax: (await readF32(b, absmax)).slice(), deq: (await readF32(b, out)).slice() });
        for (const t of [xt, codes, absmax, out]) b.free(t.storage);
      }
      const [ow, og] = outs;
      assert.equal([...ow.absmax], [...want.absmax], 'absmax');
      let bad = -1;
      for (let i = 0; i < n; i++) if (ow.codes[i] !== want.codes[i]) { bad = i; break; }
      assert.is(bad, -1, `wasm code ${bad}: ${ow.codes[bad]} vs reference ${want.codes[bad]}`);
      const map = createDynamicMap(signed);
      for (let i = 0; i < n; i++) {
        const bl = Math.floor(i / block);
        assert.is(ow.deq[i], f(map[want.codes[i]] * want.absmax[bl]));
        // nearest code, up to the midpoint rounding: the error is at most half the local code gap (plus rounding)
        const c = want.codes[i];
        const gap = Math.max(c > 0 ? map[c] - map[c - 1] : 0, c < 255 ? map[c + 1] - map[c] : 0) * want.absmax[bl];
        assert.ok(Math.abs(ow.deq[i] - xs[i]) <= gap / 2 + 1e-6 * want.absmax[bl], `error at ${i}`);
      }
      assert.equal(og.codes, ow.codes, 'GPU codes');
      assert.equal(new Uint32Array(og.absmax.buffer), new Uint32Array(ow.absmax.buffer), 'GPU absmax');
      assert.equal(new Uint32Array(og.deq.buffer), new Uint32Array(ow.deq.buffer), 'GPU dequantized');
    }
  });
}

test('quantize: NaN in a block makes the block NaN; a zero block stays zero; ties go to the lower code', async () => {
  const n = 512;
  const x = new Float32Array(n);
  x[3] = NaN; x[4] = 1;
  const t = quantTable(true);
  x[300] = 1; x[301] = t[256 + 200]; // exactly on threshold 200 (absmax 1): code 200, not 201
  for (const b of [w, g] as Backend[]) {
    const xt = tensor(b, [n], 'float32', x);
    const codes = tensor(b, [n], 'uint8');
    const absmax = tensor(b, [2], 'float32');
    const out = tensor(b, [n], 'float32');
    b.quantizeBlockwise(xt, codes, absmax, true, 256);
    b.dequantizeBlockwise(codes, absmax, out, true, 256);
    const d = await readF32(b, out);
    const c = await bytes(b, codes, n);
    assert.ok(Number.isNaN(d[0]) && Number.isNaN(d[4]), `${b.kind}: NaN block`);
    assert.is(c[301], 200, `${b.kind}: tie`);
    assert.is(d[302], 0, `${b.kind}: zero`);
    for (const r of [xt, codes, absmax, out]) b.free(r.storage);
  }
  // a block of zeros
  const z = Tensor.from(w, new Float32Array(256), [256]);
  const codes = Tensor.empty(w, [256], { dtype: 'uint8' }), absmax = Tensor.empty(w, [1]), out = Tensor.empty(w, [256]);
  w.quantizeBlockwise(z, codes, absmax, false, 256);
  w.dequantizeBlockwise(codes, absmax, out, false, 256);
  assert.equal([...(await out.toArray())], new Array(256).fill(0));
  for (const r of [z, codes, absmax, out]) r.dispose();
});

test('quantize (wasm, a branchless search): every threshold, its neighbours and a block holding infinity follow the linear-scan rule', async () => {
  for (const signed of [true, false]) {
    const thr = mapThresholds(signed);
    const x = new Float32Array(1024);
    for (let k = 0; k < 255; k++) { // block 0..2 (absmax 1): each threshold, and the floats either side
      const t = f(thr[k]);
      x[3 * k] = t;
      x[3 * k + 1] = t + Math.abs(t) * 2 ** -23;
      x[3 * k + 2] = t - Math.abs(t) * 2 ** -23;
    }
    x[765] = 1; x[766] = -1;
    for (let i = 768; i < 1024; i++) x[i] = i % 5 === 0 ? Infinity : i % 7 === 0 ? -Infinity : (i - 900) / 37; // block 3: absmax inf
    const want = refQuantize(x, 256, signed);
    const xt = Tensor.from(w, x, [1024]);
    const codes = Tensor.empty(w, [1024], { dtype: 'uint8' }), absmax = Tensor.empty(w, [4]);
    w.quantizeBlockwise(xt, codes, absmax, signed, 256);
    assert.equal([...(await bytes(w, codes, 1024))], [...want.codes], `codes (signed ${signed})`);
    for (const r of [xt, codes, absmax]) r.dispose();
  }
});

test('quantize (wasm, the bucket search): every scaled threshold t_k * absmax and the floats either side, for absmax of every size, follow the linear-scan rule', async () => {
  const bits = new Uint32Array(1), val = new Float32Array(bits.buffer);
  const step = (v: number, d: number): number => { // the float32 d steps of one ulp away from v (v finite, not 0)
    val[0] = v;
    bits[0] += (v > 0 ? d : -d);
    return val[0];
  };
  let s = 12345;
  const r = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  // absmax from 2^-126 (subnormal products: the binary search) to 2^127, random mantissas, and the edges of the fast range
  const amaxes = [2 ** -126, f(1e-38), 2 ** -100, f(2 ** -100 * 1.5), 2 ** 100, f(2 ** 100 * 1.01), f(3e38), 1, f(1 - 2 ** -24)];
  for (let i = 0; i < 40; i++) amaxes.push(f((1 + r()) * 2 ** Math.round(-120 + 245 * r())));
  const block = 1024, n = block * amaxes.length;
  for (const signed of [true, false]) {
    const thr = mapThresholds(signed);
    const x = new Float32Array(n);
    amaxes.forEach((amax, b) => {
      const o = b * block;
      x[o] = signed && b % 2 ? -amax : amax;
      for (let k = 0; k < 255; k++) {
        const p = f(thr[k] * amax);
        x[o + 1 + 3 * k] = p;
        x[o + 2 + 3 * k] = p === 0 ? 0 : step(p, 1);
        x[o + 3 + 3 * k] = p === 0 ? -0 : step(p, -1);
      }
      for (let i = 766; i < block; i++) x[o + i] = f((signed ? 2 * r() - 1 : r()) * amax * (i % 3 ? 1 : 2 ** (-30 * r())));
      for (let i = 0; i < block; i++) if (Math.abs(x[o + i]) > amax) x[o + i] = Math.sign(x[o + i]) * amax; // a neighbour of the top threshold may pass absmax
    });
    const want = refQuantize(x, block, signed);
    assert.equal([...want.absmax], amaxes, 'each block\'s absmax is the planted one');
    const xt = Tensor.from(w, x, [n]);
    const codes = Tensor.empty(w, [n], { dtype: 'uint8' }), absmax = Tensor.empty(w, [amaxes.length]);
    w.quantizeBlockwise(xt, codes, absmax, signed, block);
    const got = await bytes(w, codes, n);
    let bad = -1;
    for (let i = 0; i < n; i++) if (got[i] !== want.codes[i]) { bad = i; break; }
    assert.is(bad, -1, `signed ${signed}: element ${bad} (${x[bad]}, absmax ${amaxes[Math.floor(bad / block)]}): code ${got[bad]}, the rule gives ${want.codes[bad]}`);
    for (const t of [xt, codes, absmax]) t.dispose();
  }
});

test('uint8 tensors: from, toArray, copies, moves between backends, 1 byte an element; no float casts', async () => {
  const data = Uint8Array.from({ length: 13 }, (_, i) => (i * 37) & 255);
  const t = Tensor.from(w, data, [13], { dtype: 'uint8' });
  assert.is(t.storage.byteLength, 13);
  assert.equal([...(await t.toArray())], [...data]);
  const gt = await t.toBackend(g);
  const gc = gt.to('uint8');
  assert.equal([...(await gc.toArray())], [...data]);
  assert.throws(() => t.to('float32'), /uint8/);
  assert.throws(() => Tensor.from(w, [256], [1], { dtype: 'uint8' }), /\[0, 255\]/);
  for (const x of [t, gt, gc]) x.dispose();
});

test.run();
