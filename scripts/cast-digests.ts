// The exhaustive cast check of `npm run conformance -- --all-casts`: every float32 bit pattern
// (2^32 inputs) through the GPU cast, for every format and every rounding mode, compared with the
// WebAssembly encoder bit for bit.
//
// Reading 2^32 outputs back per format and mode (about 200 GB in all) and encoding them again on the
// CPU would take far longer than a GPU run has, so both sides are reduced to digests of chunks of
// 2^24 inputs: the GPU builds its inputs (an iota), casts them, and digests the output words in a
// kernel; the WebAssembly side digests the same chunks once, on any machine (this script, run as
// `node --import tsx scripts/cast-digests.ts`, writes tests/fixtures/cast_digests.json), and the
// conformance run compares the two. A chunk whose digests differ is then encoded on the CPU too and
// its first differing inputs are named.
//
// The digest of a chunk's output words w_j (j = word index in the chunk) is a pair of sums mod 2^32:
//   d1 = sum_j fmix32(w_j ^ (j * 0x9e3779b9)),   d2 = sum_j fmix32((w_j + j * 0x7feb352d) ^ 0x68e31da4)
// (fmix32: MurmurHash3's finalizer, a bijection). For a fixed j each term is a bijection of w_j, so a
// chunk with one differing word always gets other digests; several differences cancel in both sums
// with probability about 2^-64.
//
// Usage: node --import tsx scripts/cast-digests.ts [--shard i/n] [--out file]   (the WebAssembly side)
//        node --import tsx scripts/cast-digests.ts --merge out.json part1.json part2.json ...
//        node --import tsx scripts/cast-digests.ts --compare conformance-report.json   (check a GPU report's digests)
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Backend, CastOptions, TensorDType, TensorRef } from '../src/backend/backend.js';
import { storageBytes } from '../src/backend/storage.js';
import type { WebGPUBackend } from '../src/backend/webgpu/backend.js';
import { kernelExports, WasmBackend } from '../src/backend/wasm/backend.js';
import { wasmBuild } from '../src/dtype/wasm.js';
import { FORMATS } from '../src/dtype/formats.js';

/** Inputs a chunk: 2^24 (256 chunks cover 2^32). */
export const CHUNK = 1 << 24;
export const CHUNKS = 2 ** 32 / CHUNK;

export interface CastMode { readonly label: string; readonly opts: CastOptions; readonly share: number }
/**
 * The rounding modes conformance checks (`share`: without --all-casts the extra modes take a
 * 1/share sample). Stochastic casts count positions from 0 in every call (a backend cast has no
 * stream offset), so chunk k takes seed + k to keep the draws independent.
 */
export const CAST_MODES: readonly CastMode[] = [
  { label: '', opts: {}, share: 1 },
  { label: ', toward-zero', opts: { rounding: 'toward-zero' }, share: 8 },
  { label: ', toward-zero saturate', opts: { rounding: 'toward-zero', saturate: true }, share: 8 },
  { label: ', stochastic', opts: { rounding: 'stochastic', seed: 0x243f6a8885a308d3n }, share: 4 },
  { label: ', stochastic saturate', opts: { rounding: 'stochastic', seed: 0x13198a2e03707344n, saturate: true }, share: 4 },
];

/** The options of chunk k of a mode. */
export function chunkOptions(mode: CastMode, k: number): CastOptions {
  return mode.opts.seed === undefined ? mode.opts : { ...mode.opts, seed: mode.opts.seed + BigInt(k) };
}

/** The formats a float32 cast goes to. */
export const CAST_FORMATS = FORMATS.filter((f) => f.name !== 'float32').map((f) => f.name as TensorDType);

/** The fixture key of a format and mode. */
export const digestKey = (format: string, mode: CastMode) => `${format}${mode.label}`;

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The digest pair of a chunk's output words (see the header). */
export function digestWords(words: Uint32Array): [number, number] {
  let d1 = 0, d2 = 0;
  for (let j = 0; j < words.length; j++) {
    const w = words[j];
    d1 = (d1 + fmix32((w ^ Math.imul(j, 0x9e3779b9)) >>> 0)) >>> 0;
    d2 = (d2 + fmix32(((w + Math.imul(j, 0x7feb352d)) ^ 0x68e31da4) >>> 0)) >>> 0;
  }
  return [d1, d2];
}

/** The WGSL twin of digestWords: per-invocation partial sums over a grid-stride loop, added atomically at slot. */
const DIGEST_WGSL = `
@group(0) @binding(0) var<storage, read> words: array<u32>;
@group(0) @binding(1) var<storage, read_write> sums: array<atomic<u32>>;
struct P { n: u32, slot: u32, threads: u32, pad: u32 }
@group(0) @binding(2) var<uniform> p: P;
fn fmix32(x: u32) -> u32 {
  var h = x;
  h ^= h >> 16u; h *= 0x85ebca6bu; h ^= h >> 13u; h *= 0xc2b2ae35u; h ^= h >> 16u;
  return h;
}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = (wid.y * nwg.x + wid.x) * 256u + lid;
  if (t >= p.threads) { return; }
  var d1 = 0u;
  var d2 = 0u;
  for (var j = t; j < p.n; j += p.threads) {
    let w = words[j];
    d1 += fmix32(w ^ (j * 0x9e3779b9u));
    d2 += fmix32((w + j * 0x7feb352du) ^ 0x68e31da4u);
  }
  atomicAdd(&sums[2u * p.slot], d1);
  atomicAdd(&sums[2u * p.slot + 1u], d2);
}`;

/** Fills x (u32 words) with first + i, i < n. */
const IOTA_WGSL = `
@group(0) @binding(0) var<storage, read_write> x: array<u32>;
struct P { n: u32, first: u32, threads: u32, pad: u32 }
@group(0) @binding(1) var<uniform> p: P;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = (wid.y * nwg.x + wid.x) * 256u + lid;
  for (var i = t; i < p.n; i += p.threads) { x[i] = p.first + i; }
}`;

/** Grid of the GPU helpers: 1024 workgroups of 256 (grid-stride loops over the rest). */
const THREADS = 1024 * 256;

const uniform = (a: number, b: number) => new Uint32Array([a, b, THREADS, 0]).buffer;

/** Writes the float32 bit patterns k * chunk + i (i < chunk) into x on the GPU: chunk k's inputs, nothing uploaded. */
function gpuIota(gpu: WebGPUBackend, x: TensorRef, k: number, chunk: number): void {
  gpu.dispatch(gpu.pipeline('conformance iota', () => IOTA_WGSL), [{ storage: x.storage }], uniform(chunk, (k * chunk) >>> 0), THREADS / 256);
}

/**
 * The GPU side: digests of the given chunks (of `chunk` inputs; the chunk k holds the float32 bit
 * patterns k * chunk + i) of the cast float32 -> format under mode. Nothing is read back until the end.
 */
export async function gpuChunkDigests(gpu: WebGPUBackend, format: TensorDType, mode: CastMode, chunks: readonly number[], chunk = CHUNK): Promise<[number, number][]> {
  const digest = gpu.pipeline('conformance digest', () => DIGEST_WGSL);
  const x: TensorRef = { storage: gpu.alloc(chunk * 4, 'data', 'conformance inputs'), offset: 0, shape: [chunk], dtype: 'float32' };
  const o: TensorRef = { storage: gpu.alloc(storageBytes(format, chunk), 'data', 'conformance outputs'), offset: 0, shape: [chunk], dtype: format };
  const sums = gpu.alloc(chunks.length * 8, 'data', 'conformance digests');
  gpu.write(sums, new Uint32Array(chunks.length * 2));
  const words = Math.ceil(storageBytes(format, chunk) / 4);
  try {
    chunks.forEach((k, slot) => {
      gpuIota(gpu, x, k, chunk);
      gpu.cast(x, o, chunkOptions(mode, k));
      gpu.dispatch(digest, [{ storage: o.storage }, { storage: sums }], uniform(words, slot), THREADS / 256);
    });
    const bytes = await gpu.read(sums, 0, chunks.length * 8);
    const u = new Uint32Array(bytes.buffer, bytes.byteOffset, chunks.length * 2);
    return chunks.map((_, slot) => [u[2 * slot], u[2 * slot + 1]]);
  } finally {
    for (const s of [x.storage, o.storage, sums]) gpu.free(s);
  }
}

/**
 * The encoded bytes of chunk k: on the GPU from its own iota (nothing uploaded), elsewhere (the
 * WebAssembly reference) from uploaded inputs.
 */
export async function chunkBytes(b: Backend, format: TensorDType, mode: CastMode, k: number, chunk = CHUNK): Promise<Uint8Array> {
  const x: TensorRef = { storage: b.alloc(chunk * 4, 'data', 'conformance inputs'), offset: 0, shape: [chunk], dtype: 'float32' };
  const o: TensorRef = { storage: b.alloc(storageBytes(format, chunk), 'data', 'conformance outputs'), offset: 0, shape: [chunk], dtype: format };
  try {
    if (isGpu(b)) gpuIota(b, x, k, chunk);
    else {
      const bits = new Int32Array(chunk);
      const first = (k * chunk) | 0; // int32 arithmetic (wrapping) keeps this loop on the fast path
      for (let i = 0; i < chunk; i++) bits[i] = (first + i) | 0;
      b.write(x.storage, bits);
    }
    b.cast(x, o, chunkOptions(mode, k));
    return await b.read(o.storage, 0, storageBytes(format, chunk)); // a copy on every backend
  } finally {
    b.free(x.storage);
    b.free(o.storage);
  }
}

function isGpu(b: Backend): b is WebGPUBackend {
  return typeof (b as Partial<WebGPUBackend>).dispatch === 'function' && typeof (b as Partial<WebGPUBackend>).pipeline === 'function';
}

/** The first groups of 8 inputs (float32 bits, hex) whose codes differ between two outputs of chunk k, at most `max`. */
export function differingInputs(format: TensorDType, gpu: Uint8Array, ref: Uint8Array, k: number, chunk = CHUNK, max = 5): string[] {
  const per = storageBytes(format, 8); // 8 codes fill whole bytes in every format
  const found: string[] = [];
  for (let g = 0; g < chunk / 8 && found.length < max; g++) {
    for (let j = 0; j < per; j++) {
      if (gpu[g * per + j] === ref[g * per + j]) continue;
      found.push(`0x${((k * chunk + g * 8) >>> 0).toString(16).padStart(8, '0')}..+7`);
      break;
    }
  }
  return found;
}

/**
 * The digest of chunk k of the cast on the WebAssembly backend (the reference side). Inputs are
 * written and outputs digested in place, through views of the module's memory: copies out of a
 * shared WebAssembly memory are slow.
 */
export async function chunkDigest(b: WasmBackend, format: TensorDType, mode: CastMode, k: number, chunk = CHUNK): Promise<[number, number]> {
  const bytes = storageBytes(format, chunk);
  const x: TensorRef = { storage: b.alloc(chunk * 4, 'data', 'conformance inputs'), offset: 0, shape: [chunk], dtype: 'float32' };
  const o: TensorRef = { storage: b.alloc(Math.ceil(bytes / 4) * 4, 'data', 'conformance outputs'), offset: 0, shape: [chunk], dtype: format };
  try {
    const ptr = (s: TensorRef) => (s.storage as unknown as { ptr: number }).ptr;
    const bits = new Int32Array(kernelExports().memory.buffer, ptr(x), chunk);
    const first = (k * chunk) | 0; // int32 arithmetic (wrapping) keeps this loop on the fast path
    for (let i = 0; i < chunk; i++) bits[i] = (first + i) | 0;
    new Uint8Array(kernelExports().memory.buffer, ptr(o) + bytes, Math.ceil(bytes / 4) * 4 - bytes).fill(0);
    b.cast(x, o, chunkOptions(mode, k));
    return digestWords(new Uint32Array(kernelExports().memory.buffer, ptr(o), Math.ceil(bytes / 4)));
  } finally {
    b.free(x.storage);
    b.free(o.storage);
  }
}

/** GPU digests of one format and mode against the reference's: ok, the differing chunks, and a line saying so. */
export function compareDigests(got: readonly (readonly [number, number])[], want: readonly (readonly [number, number])[] | undefined): { ok: boolean; bad: number[]; detail: string } {
  if (!want || want.length !== CHUNKS) return { ok: false, bad: [], detail: `no reference digests for this format and mode in ${DIGEST_FIXTURE} (run scripts/cast-digests.ts, then --compare the report)` };
  const bad = want.map((_, k) => k).filter((k) => got[k]?.[0] !== want[k][0] || got[k]?.[1] !== want[k][1]);
  return bad.length
    ? { ok: false, bad, detail: `${bad.length} of ${CHUNKS} chunks differ` }
    : { ok: true, bad, detail: `${CHUNKS} chunks of ${CHUNK} inputs, every digest equal to the WebAssembly encoder's` };
}

/** tests/fixtures/cast_digests.json: per format and mode, the 256 chunk digests of the WebAssembly encoder. */
export interface DigestFile {
  chunk: number;
  /** What made it: the WebAssembly build and the date. */
  made: string;
  digests: Record<string, [number, number][]>;
}

export const DIGEST_FIXTURE = fileURLToPath(new URL('../tests/fixtures/cast_digests.json', import.meta.url));

/** The reference digests (none yet when the file is missing). */
export function readDigests(file = DIGEST_FIXTURE): DigestFile {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as DigestFile;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { chunk: CHUNK, made: 'none', digests: {} };
    throw e;
  }
}

async function main(argv: string[]): Promise<void> {
  const out = argv.includes('--out') ? argv[argv.indexOf('--out') + 1] : DIGEST_FIXTURE;
  const write = (file: string, data: DigestFile) => {
    const tmp = `${file}.tmp-${process.pid}`;
    writeFileSync(tmp, `${JSON.stringify(data)}\n`);
    renameSync(tmp, file);
  };
  if (argv.includes('--compare')) {
    // A conformance report made with --all-casts before the reference had every digest: check its
    // GPU digests now and rewrite its cast results (atomically; the report is ours).
    const file = argv[argv.indexOf('--compare') + 1];
    const report = JSON.parse(readFileSync(file, 'utf8')) as { castChunk?: number; gpuCastDigests?: Record<string, [number, number][]>; results: { name: string; ok: boolean; detail: string }[]; passed: number; failed: number; comparedAt?: string };
    const ref = readDigests();
    if (!report.gpuCastDigests || report.castChunk !== CHUNK || ref.chunk !== CHUNK) throw new Error(`${file} holds no GPU cast digests of ${CHUNK}-input chunks`);
    for (const [key, got] of Object.entries(report.gpuCastDigests)) {
      const c = compareDigests(got, ref.digests[key]);
      const r = report.results.find((x) => x.name.startsWith(`cast float32 -> ${key} (all 2^32 inputs)`));
      if (r) { r.ok = c.ok; r.detail = c.bad.length ? `${c.detail} (chunks ${c.bad.slice(0, 8).join(', ')}${c.bad.length > 8 ? ', ...' : ''})` : c.detail; }
      process.stderr.write(`${c.ok ? 'ok  ' : 'FAIL'} ${key}: ${c.detail}\n`);
    }
    report.failed = report.results.filter((r) => !r.ok).length;
    report.passed = report.results.length - report.failed;
    report.comparedAt = new Date().toISOString();
    const tmp = `${file}.tmp-${process.pid}`;
    writeFileSync(tmp, `${JSON.stringify(report, null, 2)}\n`);
    renameSync(tmp, file);
    process.exitCode = report.failed ? 1 : 0;
    return;
  }
  if (argv.includes('--merge')) {
    const [target, ...parts] = argv.slice(argv.indexOf('--merge') + 1);
    const files = parts.map((p) => JSON.parse(readFileSync(p, 'utf8')) as DigestFile);
    const digests: DigestFile['digests'] = {};
    for (const f of files) Object.assign(digests, f.digests);
    const order = CAST_FORMATS.flatMap((f) => CAST_MODES.map((m) => digestKey(f, m)));
    const missing = order.filter((k) => !digests[k]);
    if (missing.length) throw new Error(`--merge: no digests for ${missing.join('; ')}`);
    write(target, { chunk: CHUNK, made: files[0].made, digests: Object.fromEntries(order.map((k) => [k, digests[k]])) });
    return;
  }
  const [shard, shards] = argv.includes('--shard') ? argv[argv.indexOf('--shard') + 1].split('/').map(Number) : [0, 1];
  const wasm = new WasmBackend('reference');
  // Deterministic modes first (cheap), stochastic ones last (the encoder draws a random number per element).
  const all = CAST_FORMATS.flatMap((f) => CAST_MODES.map((m) => [f, m] as const));
  const jobs = [...all.filter(([, m]) => m.opts.rounding !== 'stochastic'), ...all.filter(([, m]) => m.opts.rounding === 'stochastic')].filter((_, i) => i % shards === shard);
  // Resumable: digests already in the output file are kept.
  let digests: DigestFile['digests'] = {};
  try { digests = (JSON.parse(readFileSync(out, 'utf8')) as DigestFile).digests; } catch { /* a new file */ }
  for (const [f, m] of jobs) {
    if (digests[digestKey(f, m)]?.length === CHUNKS) continue;
    const t0 = performance.now();
    const list: [number, number][] = [];
    for (let k = 0; k < CHUNKS; k++) list.push(await chunkDigest(wasm, f, m, k));
    digests[digestKey(f, m)] = list;
    process.stderr.write(`${digestKey(f, m)}: ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    write(out, { chunk: CHUNK, made: `memfit WebAssembly encoder (${JSON.stringify(wasmBuild())}), ${new Date().toISOString().slice(0, 10)}`, digests });
  }
}

// Run as a script (no top-level await: the tests load this module through a CommonJS transform).
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).catch((e: Error) => {
    process.stderr.write(`${e.stack ?? e}\n`);
    process.exit(1);
  });
}
