// The casts on both backends with the same inputs, bit for bit (CI runs it on SwiftShader), the
// --all-casts digests, device limits and errors, in-place ops. The other kernel families: families.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpuBackend, tensor, readF32, WasmBackend, type WebGPUBackend } from '../helpers/backends.js';
import type { Backend, TensorDType } from '../../src/backend/backend.js';
import { storageBytes } from '../../src/backend/storage.js';
import { encode, decode, formatOf, pack, unpack } from '../../src/index.js';
import { NARROW_FORMATS } from '../helpers/reference.js';
import { readFileSync } from 'node:fs';
import {
  CAST_FORMATS, CAST_MODES, CHUNK, CHUNKS, chunkDigest, DIGEST_FIXTURE, differingInputs, digestKey, digestWords, gpuChunkDigests, type DigestFile,
} from '../../scripts/cast-digests.js';

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

// ---- stochastic rounding ---------------------------------------------------------------------

/** splitmix64 output `index` of stream `seed` (assembly/convert.ts randomBits), written independently in BigInt. */
function splitmix64(seed: bigint, index: bigint): bigint {
  const M = (1n << 64n) - 1n;
  let z = (seed + (index + 1n) * 0x9e3779b97f4a7c15n) & M;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
  return z ^ (z >> 31n);
}

const hash = (i: number) => Math.imul(i ^ 0x5bd1e995, 2654435761) >>> 0;

/**
 * 2^16 float32 bit patterns: specials (±0, ±inf, NaNs with payloads, float32 max, subnormals), every
 * exponent and sign with one- and two-bit mantissas, every exponent with the dropped bits of each
 * format's normal-range shift (13, 16, 20..23) at 0, 1, half - 1, half, half + 1 and all ones
 * (so near every rounding and overflow boundary, and deep below each format's subnormals), then hashes.
 */
function stressBits(): Uint32Array {
  const out: number[] = [0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001,
    0x7fbfffff, 0xffffffff, 0x7f7fffff, 0xff7fffff, 1, 0x80000001, 0x007fffff, 0x00800000, 0x00400000];
  for (let e = 0; e < 256; e++) {
    for (const sign of [0, 0x80000000]) {
      const base = (sign | (e << 23)) >>> 0;
      for (let p = 0; p < 23; p++) out.push(base | (1 << p), base | ((1 << p) + 1) & 0x7fffff, base | ((1 << p) - 1));
      out.push(base | 0x7fffff);
      for (const d of [13, 16, 20, 21, 22, 23]) {
        const half = 2 ** (d - 1);
        const kept = (hash(e * 64 + d + sign / 2 ** 31) & ((1 << (23 - d)) - 1)) << d;
        for (const r of [0, 1, half - 1, half, half + 1, 2 ** d - 1]) out.push((base | kept | r) >>> 0);
      }
    }
  }
  for (let i = out.length; i < 1 << 16; i++) out.push(hash(i));
  return Uint32Array.from(out.slice(0, 1 << 16));
}

/**
 * n float32 inputs for positions start..start+n-1 of stream `seed`, each placed exactly at its
 * stochastic decision boundary for format `dt`: the dropped bits equal the top `shift` bits of the
 * position's random number (must not round up) or exceed them by one (must round up). Half sit in
 * the normal range; where float32 can hold them, half sit below the format's smallest subnormal
 * with shift = 88 - bitlength(r), which for small r (shift > 32) exercises the low-word compare.
 * Returns the bits, whether each must round up, and how many decisions had shift > 32.
 */
function boundaryBits(dt: string, seed: bigint, start: number, n: number): { bits: Uint32Array; up: Uint8Array; deep32: number } {
  const f = formatOf(dt);
  const m = f.mantissaBits, lo = 1 - f.bias, normalShift = 23 - m;
  const bits = new Uint32Array(n), up = new Uint8Array(n);
  let deep32 = 0;
  for (let j = 0; j < n; j++) {
    const r = splitmix64(seed, BigInt(start + j));
    let u = j & 1;
    const sign = f.signed && (j & 2) ? 0x80000000 : 0;
    const s = 88 - r.toString(2).length;
    const e = lo - (s - normalShift);
    if ((j & 4) && s > normalShift && s <= 64 && e >= -126) {
      let sig = Number(r >> BigInt(64 - s)) + u; // in [2^23, 2^24]
      if (sig === 2 ** 24) { sig--; u = 0; }
      bits[j] = (sign | ((e + 127) << 23) | (sig & 0x7fffff)) >>> 0;
      if (s > 32) deep32++;
    } else {
      let rem = Number(r >> BigInt(64 - normalShift)) + u;
      if (rem === 2 ** normalShift) { rem--; u = 0; }
      const kept = normalShift < 23 ? (hash(j) & ((1 << (23 - normalShift)) - 1)) << normalShift : 0;
      bits[j] = (sign | ((lo + ((j >> 3) & 1) + 127) << 23) | kept | rem) >>> 0;
    }
    up[j] = u;
  }
  return { bits, up, deep32 };
}

/** Unpacked codes from a cast's output bytes. */
function codesOf(bytes: Uint8Array, dt: string, n: number): Uint8Array | Uint16Array {
  const f = formatOf(dt);
  if (f.bits < 8) return unpack(bytes, dt, n);
  return f.bits === 16 ? new Uint16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + n * 2)) : bytes;
}

const SEEDS = [0x243f6a8885a308d3n, 7n];

test('GPU casts: stochastic (two seeds) and toward-zero, saturate or not, bit-identical to the wasm backend, every format', async () => {
  const stress = stressBits();
  const G = stress.length, B = 1 << 13;
  let deep32 = 0;
  for (const dt of NARROW_FORMATS) {
    for (const saturate of [false, true]) {
      const opts = { rounding: 'toward-zero' as const, saturate };
      const a = await castOn(g, stress, 'float32', dt, G, opts);
      assert.is(firstDiff(a, await castOn(w, stress, 'float32', dt, G, opts)), -1, `${dt} ${JSON.stringify(opts)}`);
    }
    for (const seed of SEEDS) {
      // The stress set at positions 0..G-1, then boundary inputs for positions G..G+B-1.
      const bnd = boundaryBits(dt, seed, G, B);
      deep32 += bnd.deep32;
      const bits = new Uint32Array(G + B);
      bits.set(stress);
      bits.set(bnd.bits, G);
      for (const saturate of [false, true]) {
        const opts = { rounding: 'stochastic' as const, seed, saturate };
        const what = `${dt} stochastic seed ${seed} saturate ${saturate}`;
        const a = await castOn(g, bits, 'float32', dt, G + B, opts);
        const b = await castOn(w, bits, 'float32', dt, G + B, opts);
        const d = firstDiff(a, b);
        assert.is(d, -1, `${what}: first differing byte ${d}`);
        // The public encoder (counter = position, offset 0) gives the same codes.
        const enc = encode(new Float32Array(bits.buffer), dt, { rounding: 'stochastic', seed, saturate });
        assert.is(firstDiff(formatOf(dt).bits < 8 ? pack(enc as Uint8Array, dt) : new Uint8Array(enc.buffer), b), -1, `${what} vs encode()`);
        // Each boundary input rounds up exactly when the independent splitmix64 says it must.
        const got = decode(codesOf(a, dt, G + B).subarray(G), dt);
        const x = new Float32Array(bnd.bits.buffer);
        for (let j = 0; j < B; j++) {
          if ((Math.abs(got[j]) > Math.abs(x[j])) !== (bnd.up[j] === 1)) {
            assert.unreachable(`${what}: boundary input ${x[j]} at position ${G + j} gave ${got[j]}, expected rounding ${bnd.up[j] ? 'up' : 'down'}`);
          }
        }
      }
    }
  }
  assert.ok(deep32 > 20, `boundary inputs with shift > 32 (64-bit compare's low word): ${deep32}`);
});

test('GPU casts: stochastic from low-precision inputs and from views at a non-zero offset match wasm', async () => {
  const all16 = Uint16Array.from({ length: 65536 }, (_, i) => i);
  for (const [from, tos] of [
    ['float16', ['bfloat16', 'float8_e4m3fn', 'float8_e8m0fnu', 'float4_e2m1fn']],
    ['bfloat16', ['float16', 'float8_e5m2', 'float6_e3m2fn', 'float6_e2m3fn']],
  ] as const) {
    for (const to of tos) {
      const opts = { rounding: 'stochastic' as const, seed: 99n, saturate: to.endsWith('fn') };
      assert.is(firstDiff(await castOn(g, all16, from, to, 65536, opts), await castOn(w, all16, from, to, 65536, opts)), -1, `${from} -> ${to}`);
    }
  }
  const all8 = Uint8Array.from({ length: 4096 }, (_, i) => i & 255);
  for (const [from, to] of [['float8_e4m3fn', 'float4_e2m1fn'], ['float8_e5m2', 'float6_e2m3fn']] as const) {
    const opts = { rounding: 'stochastic' as const, seed: 5n };
    assert.is(firstDiff(await castOn(g, all8, from, to, 4096, opts), await castOn(w, all8, from, to, 4096, opts)), -1, `${from} -> ${to}`);
  }
  // Views: the counter is the output element index (the input view's offset does not move the stream).
  const n = 3000, off = 37;
  const vals = randn(n + off, 9).map((v) => v * 4);
  for (const [from, data] of [['float32', vals], ['bfloat16', encode(vals, 'bf16')], ['float6_e3m2fn', pack(encode(vals, 'e3m2') as Uint8Array, 'e3m2')]] as const) {
    const outs: Uint8Array[] = [];
    for (const be of [g, w] as Backend[]) {
      const x = tensor(be, [n + off], from, data);
      const o = tensor(be, [n], 'float8_e5m2');
      be.cast({ ...x, offset: off, shape: [n] }, o, { rounding: 'stochastic', seed: 3n });
      outs.push(await be.read(o.storage, 0, n));
      be.free(x.storage);
      be.free(o.storage);
    }
    assert.is(firstDiff(outs[0], outs[1]), -1, `${from} view at offset ${off}`);
    if (from === 'float32') {
      const want = encode(vals.subarray(off), 'e5m2', { rounding: 'stochastic', seed: 3n });
      assert.is(firstDiff(outs[0], want as Uint8Array), -1, 'counter starts at output element 0');
    }
  }
});

test('GPU casts: stochastic rounding differs across seeds and is unbiased', async () => {
  const n = 1 << 16;
  // 1 + 2^-12 lies 2^-5 of the way from 1 to bfloat16's next value 1 + 2^-7: rounds up with p = 1/32.
  for (const [x, dt, lo, hi] of [[1 + 2 ** -12, 'bfloat16', 1, 1 + 2 ** -7], [1.09375, 'float8_e4m3fn', 1, 1.125], [-0.3, 'float4_e2m1fn', -0.5, 0]] as const) {
    const p = (x - lo) / (hi - lo);
    const input = new Float32Array(n).fill(x);
    const codes: ArrayLike<number>[] = [];
    for (const seed of [1n, 2n]) {
      const got = decode(codesOf(await castOn(g, input, 'float32', dt, n, { rounding: 'stochastic', seed }), dt, n), dt);
      let ups = 0, sum = 0;
      for (let i = 0; i < n; i++) {
        assert.ok(got[i] === lo || got[i] === hi, `${dt}: ${got[i]} is not a neighbour of ${x}`);
        if (got[i] === hi) ups++;
        sum += got[i];
      }
      const sd = Math.sqrt(n * p * (1 - p));
      assert.ok(Math.abs(ups - n * p) < 5 * sd, `${dt} seed ${seed}: ${ups} of ${n} rounded up, expected ${n * p} ± ${5 * sd}`);
      assert.ok(Math.abs(sum / n - Math.fround(x)) < 5 * (hi - lo) * sd / n, `${dt} seed ${seed}: mean ${sum / n}, x ${x}`);
      codes.push(got);
    }
    let differ = 0;
    for (let i = 0; i < n; i++) if (codes[0][i] !== codes[1][i]) differ++;
    // Independent streams differ where exactly one rounds up: 2 p (1 - p) of positions.
    assert.ok(Math.abs(differ - 2 * n * p * (1 - p)) < 6 * Math.sqrt(2 * n * p * (1 - p)), `${dt}: seeds 1 and 2 differ at ${differ} positions`);
  }
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

test('--all-casts digests: the GPU digests of chunks (GPU-made inputs) equal the WebAssembly side, every format and mode; one changed word changes both digests', async () => {
  const chunk = 1 << 12;
  const ks = [0, 0x7f800, 0xff800, 0xfffff]; // zero, +inf, -inf and the NaNs, the last chunk
  for (const f of CAST_FORMATS) {
    for (const mode of CAST_MODES) {
      const got = await gpuChunkDigests(g, f, mode, ks, chunk);
      for (let i = 0; i < ks.length; i++) {
        const want = await chunkDigest(w, f, mode, ks[i], chunk);
        assert.equal(got[i], want, `${f}${mode.label}, chunk ${ks[i]}`);
      }
    }
  }
  // The digests see a single changed word anywhere (each term is a bijection of its word).
  const words = Uint32Array.from({ length: 4096 }, (_, i) => Math.imul(i, 2654435761) >>> 0);
  const d0 = digestWords(words);
  for (const at of [0, 1, 2047, 4095]) {
    const changed = words.slice();
    changed[at] ^= 1 << (at % 32);
    const d = digestWords(changed);
    assert.ok(d[0] !== d0[0] && d[1] !== d0[1], `word ${at}`);
  }
  // And differingInputs names the group of inputs of a changed byte.
  const a = new Uint8Array(storageBytes('float8_e4m3fn', chunk)), b = a.slice();
  b[100] = 1;
  assert.equal(differingInputs('float8_e4m3fn', a, b, 3, chunk), [`0x${(3 * chunk + 96).toString(16).padStart(8, '0')}..+7`]);
});

test('the reference digests of --all-casts are the WebAssembly encoder\'s: one chunk of every format and mode recomputed', async () => {
  const file = JSON.parse(readFileSync(DIGEST_FIXTURE, 'utf8')) as DigestFile;
  assert.is(file.chunk, CHUNK);
  for (const f of CAST_FORMATS) {
    for (const mode of CAST_MODES) {
      const list = file.digests[digestKey(f, mode)];
      assert.is(list?.length, CHUNKS, `${f}${mode.label}`);
      const k = (f.length * 37 + mode.label.length * 11) % CHUNKS; // a chunk that varies by case
      assert.equal(await chunkDigest(w, f, mode, k), list[k], `${f}${mode.label}, chunk ${k}`);
    }
  }
});

// The float kernels against wasm (unary, binary, where, reductions, softmax, matmul and every other
// family): tests/backend/families.test.ts, from the case table in scripts/family-cases.ts.

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

test('in place (out is an input): unary and binary give the out-of-place result on both backends', async () => {
  const x = randn(300, 11), y = randn(300, 12);
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const [a, b] = await both(async (be) => {
      const enc = (v: Float32Array) => (dtype === 'float32' ? v : encode(v, dtype));
      const p = tensor(be, [300], dtype, enc(x)), q = tensor(be, [300], dtype, enc(y));
      be.binary('mul', p, q, p);      // p = x * y
      be.unary('addScalar', p, p, 1); // p = x * y + 1
      be.binary('sub', q, p, q);      // q = y - p
      const o = tensor(be, [300], 'float32');
      be.cast(q, o);
      return readF32(be, o);
    });
    close(a, b, 0, 0, `in place ${dtype}`);
    const f = Math.fround;
    const want = Float32Array.from(x, (v, i) => f(y[i] - f(f(v * y[i]) + 1))); // float32 rounding after each op
    if (dtype === 'float32') close(a, want, 0, 0, 'in place float32 vs plain arithmetic');
  }
});

test.run();
