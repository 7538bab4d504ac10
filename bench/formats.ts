// Format throughput benchmark (`npm run bench`): elements per second of float32 -> codes
// (nearest-even) and codes -> float32 for every format, measured in one process next to its peers:
// memfit over plain typed arrays (chunked through WebAssembly memory), memfit over WasmArrays (zero
// copy), a plain per-element JavaScript implementation (bench/plain_js.ts, verified against memfit
// first), @petamoriken/float16, numpy (and ml_dtypes when installed) in a python3 child process, and
// the copy limit (Float32Array.prototype.set).
//
// Usage: node --import tsx bench/formats.ts [--size N] [--quick] [--no-python]
// Statistic: the best (fastest) repetition after warm-up; the median is reported next to it.
// stdout: one JSON object; the same JSON goes to bench/results/formats.json. Logs go to stderr.
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Float16Array, getFloat16 } from '@petamoriken/float16';
import { allocate, decode, encode, formatOf, type WasmArray } from '../src/index.js';
import { plainJs, type Decoder, type Encoder } from './plain_js.js';

// ---- options ----------------------------------------------------------------------------------

const FULL_SIZE = 16 * 2 ** 20;
const QUICK_SIZE = 2 ** 20;
const VERIFY_SIZE = 2 ** 20;
const PEER_SIZE = 2 ** 20; // @petamoriken/float16 is timed on a slice this long

const DTYPES = [
  'float16', 'bfloat16', 'float8_e4m3fn', 'float8_e5m2', 'float8_e8m0fnu',
  'float6_e3m2fn', 'float6_e2m3fn', 'float4_e2m1fn',
] as const;

function parseArgs(argv: string[]): { size: number; quick: boolean; python: boolean } {
  let size = FULL_SIZE;
  let quick = false;
  let python = true;
  let sizeGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') quick = true;
    else if (a === '--no-python') python = false;
    else if (a === '--size' || a.startsWith('--size=')) {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < 1024) throw new Error(`--size must be an integer >= 1024, got ${v}`);
      size = n;
      sizeGiven = true;
    } else if (a === '--help' || a === '-h') {
      process.stderr.write('usage: node --import tsx bench/formats.ts [--size N] [--quick] [--no-python]\n');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (quick && !sizeGiven) size = QUICK_SIZE;
  return { size, quick, python };
}

const opts = parseArgs(process.argv.slice(2));
const N = opts.size;
// Repetition policy: at least MIN_REPS, then until MIN_TIME_MS of measured time or MAX_REPS.
const MIN_REPS = opts.quick ? 3 : 5;
const MAX_REPS = opts.quick ? 10 : 25;
const MIN_TIME_MS = opts.quick ? 200 : 1000;

const log = (msg: string): void => {
  process.stderr.write(`[bench] ${msg}\n`);
};

// ---- helpers ----------------------------------------------------------------------------------

interface Timing {
  /** Million elements per second of the best repetition. */
  melemPerSec: number;
  /** Million elements per second of the median repetition. */
  melemPerSecMedian: number;
  bestMs: number;
  medianMs: number;
  reps: number;
  elements: number;
}

const round3 = (x: number): number => (Number.isFinite(x) ? Number(x.toPrecision(4)) : x);

function timeIt(elements: number, fn: () => void, warmup = 2): Timing {
  for (let i = 0; i < warmup; i++) fn();
  const times: number[] = [];
  let total = 0;
  while (times.length < MIN_REPS || (total < MIN_TIME_MS && times.length < MAX_REPS)) {
    const t0 = performance.now();
    fn();
    const dt = performance.now() - t0;
    times.push(dt);
    total += dt;
  }
  times.sort((a, b) => a - b);
  const best = times[0];
  const median = times.length % 2 ? times[(times.length - 1) / 2] : (times[times.length / 2 - 1] + times[times.length / 2]) / 2;
  return {
    melemPerSec: round3(elements / best / 1e3),
    melemPerSecMedian: round3(elements / median / 1e3),
    bestMs: round3(best),
    medianMs: round3(median),
    reps: times.length,
    elements,
  };
}

/** Deterministic xorshift128+ style generator (32-bit halves) so every run times the same data. */
function rng(seed: number): () => number {
  let a = seed >>> 0 || 1, b = 0x9e3779b9, c = 0x243f6a88, d = 0xb7e15162;
  return () => {
    const t = a ^ (a << 11);
    a = b; b = c; c = d;
    d = (d ^ (d >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    return d;
  };
}

/** Standard normal float32 values (Box-Muller): the benchmark input, like weights or activations. */
function normalInput(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u1 = (r() + 1) / 4294967297;
    const u2 = r() / 4294967296;
    const m = Math.sqrt(-2 * Math.log(u1));
    out[i] = m * Math.cos(2 * Math.PI * u2);
    if (i + 1 < n) out[i + 1] = m * Math.sin(2 * Math.PI * u2);
  }
  return out;
}

/**
 * Verification input: random float32 bit patterns (every exponent, NaN and inf included), values
 * with exponents near the small formats' ranges, exact ties at every rounding position, specials.
 */
function verifyInput(n: number): Float32Array {
  const r = rng(12345);
  const u = new Uint32Array(n);
  const specials = [
    0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7fa00000,
    0x7f802000, 0x7f801fff, 0x7fffffff, 0xffffffff, 0x00000001, 0x80000001, 0x007fffff, 0x00400000,
    0x00400001, 0x003fffff, 0x00800000, 0x7f7fffff, 0xff7fffff, 0x3f800000, 0xbf800000,
  ];
  let i = 0;
  for (; i < specials.length; i++) u[i] = specials[i];
  for (; i < n; i++) {
    const kind = r() & 3;
    const x = r();
    if (kind <= 1) u[i] = x; // uniform bit pattern
    else {
      const sign = x & 0x80000000;
      const exp = 127 - 40 + (r() % 62); // 2^-40 .. 2^21
      let mant = r() & 0x7fffff;
      if (kind === 3) {
        const k = 1 + (r() % 23); // exact tie at bit k-1 (or the next code up)
        mant = (mant & ~((1 << k) - 1)) | (1 << (k - 1));
        if (r() & 1) mant = (mant + 1) & 0x7fffff;
      }
      u[i] = (sign | (exp << 23) | mant) >>> 0;
    }
  }
  return new Float32Array(u.buffer);
}

type Codes = Uint8Array | Uint16Array;

function codesFor(dtype: string, n: number): Codes {
  return formatOf(dtype).codeBytes === 2 ? new Uint16Array(n) : new Uint8Array(n);
}

interface Mismatch { count: number; nanPayloadOnly: number; examples: string[] }

function compare(
  expected: ArrayLike<number>, got: ArrayLike<number>, label: (i: number) => string, isNanPair: (a: number, b: number) => boolean,
): Mismatch {
  const m: Mismatch = { count: 0, nanPayloadOnly: 0, examples: [] };
  for (let i = 0; i < expected.length; i++) {
    if (expected[i] !== got[i]) {
      m.count++;
      if (isNanPair(expected[i], got[i])) m.nanPayloadOnly++;
      if (m.examples.length < 5) m.examples.push(`${label(i)}: memfit 0x${expected[i].toString(16)}, plain JS 0x${got[i].toString(16)}`);
    }
  }
  return m;
}

const hex32 = (x: number): string => `0x${(x >>> 0).toString(16).padStart(8, '0')}`;

function isF16Nan(c: number): boolean {
  return (c & 0x7c00) === 0x7c00 && (c & 0x3ff) !== 0;
}
function isF32NanBits(b: number): boolean {
  return (b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0;
}

/** Checks the plain-JS encoder/decoder of `dtype` against memfit; returns a summary. */
function verifyPlain(dtype: string, enc: Encoder, dec: Decoder, vin: Float32Array): Record<string, unknown> {
  const f = formatOf(dtype);
  const vinBits = new Uint32Array(vin.buffer, vin.byteOffset, vin.length);
  const want = codesFor(dtype, vin.length);
  encode(vin, dtype, { out: want });
  const got = codesFor(dtype, vin.length);
  enc(vin, got);
  const nanPair = f.codeBytes === 2 ? (a: number, b: number) => (dtype === 'float16' ? isF16Nan(a) && isF16Nan(b) : false) : () => false;
  const encRes = compare(want, got, (i) => `encode ${hex32(vinBits[i])}`, nanPair);
  // decode: every code of the format
  const codeCount = 2 ** f.bits;
  const all = codesFor(dtype, codeCount);
  for (let c = 0; c < codeCount; c++) all[c] = c;
  const dWant = decode(all, dtype);
  const dGot = new Float32Array(codeCount);
  dec(all, dGot);
  const decRes = compare(
    new Uint32Array(dWant.buffer), new Uint32Array(dGot.buffer), (i) => `decode code 0x${i.toString(16)}`,
    (a, b) => isF32NanBits(a) && isF32NanBits(b),
  );
  return {
    encodeInputs: vin.length,
    decodeCodes: codeCount,
    encodeMismatches: encRes.count,
    encodeMismatchesNanPayloadOnly: encRes.nanPayloadOnly,
    decodeMismatches: decRes.count,
    decodeMismatchesNanPayloadOnly: decRes.nanPayloadOnly,
    nanPayloadsCompared: true,
    ok: encRes.count === 0 && decRes.count === 0,
    examples: [...encRes.examples, ...decRes.examples],
  };
}

// ---- python peers -----------------------------------------------------------------------------

const PY_SCRIPT = String.raw`
import json, sys, time
out = {}
try:
    import numpy as np
except Exception as e:
    print(json.dumps({"numpy": "unavailable: %s" % e})); sys.exit(0)
path, n, min_reps, min_time = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
x = np.fromfile(path, dtype=np.float32, count=n)
assert x.size == n
def bench(fn, warm=2):
    for _ in range(warm): fn()
    ts = []
    while len(ts) < min_reps or (sum(ts) < min_time and len(ts) < 25):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    ts.sort()
    med = ts[len(ts)//2] if len(ts) % 2 else (ts[len(ts)//2-1] + ts[len(ts)//2]) / 2
    return {"melemPerSec": n / ts[0] / 1e6, "melemPerSecMedian": n / med / 1e6,
            "bestMs": ts[0]*1e3, "medianMs": med*1e3, "reps": len(ts), "elements": n}
res = {"version": np.__version__}
h = x.astype(np.float16)
res["float16_encode_astype"] = bench(lambda: x.astype(np.float16))
o16 = np.empty(n, np.float16)
res["float16_encode_copyto"] = bench(lambda: np.copyto(o16, x, casting="same_kind"))
res["float16_decode_astype"] = bench(lambda: h.astype(np.float32))
o32 = np.empty(n, np.float32)
res["float16_decode_copyto"] = bench(lambda: np.copyto(o32, h))
res["float32_copy"] = bench(lambda: np.copyto(o32, x))
out["numpy"] = res
try:
    import ml_dtypes
    bf = ml_dtypes.bfloat16
    b = x.astype(bf)
    r2 = {"version": ml_dtypes.__version__}
    r2["bfloat16_encode_astype"] = bench(lambda: x.astype(bf))
    r2["bfloat16_decode_astype"] = bench(lambda: b.astype(np.float32))
    for name in ["float8_e4m3fn", "float8_e5m2"]:
        t = getattr(ml_dtypes, name)
        c = x.astype(t)
        r2[name + "_encode_astype"] = bench(lambda: x.astype(t))
        r2[name + "_decode_astype"] = bench(lambda: c.astype(np.float32))
    out["ml_dtypes"] = r2
except ImportError as e:
    out["ml_dtypes"] = "unavailable: %s" % e
print(json.dumps(out))
`;

function runPython(input: Float32Array): Record<string, unknown> {
  const probe = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    return { numpy: `unavailable: ${probe.error?.message ?? probe.stderr.trim().split('\n').pop()}`, ml_dtypes: 'unavailable (no numpy)' };
  }
  const tmp = path.join(os.tmpdir(), `memfit-bench-${process.pid}.f32`);
  writeFileSync(tmp, new Uint8Array(input.buffer, input.byteOffset, input.byteLength));
  try {
    const r = spawnSync('python3', ['-c', PY_SCRIPT, tmp, String(input.length), String(MIN_REPS), String(MIN_TIME_MS / 1000)], {
      encoding: 'utf8', maxBuffer: 1 << 20, timeout: 600_000,
    });
    if (r.error || r.status !== 0) return { numpy: `failed: ${r.error?.message ?? r.stderr.trim().split('\n').slice(-3).join(' | ')}` };
    const parsed = JSON.parse(r.stdout.trim().split('\n').pop() as string) as Record<string, unknown>;
    const fix = (o: unknown): unknown => {
      if (o && typeof o === 'object') {
        for (const [k, v] of Object.entries(o)) (o as Record<string, unknown>)[k] = typeof v === 'number' ? (Number.isInteger(v) ? v : round3(v)) : fix(v);
      }
      return o;
    };
    return fix(parsed) as Record<string, unknown>;
  } finally {
    rmSync(tmp, { force: true });
  }
}

// ---- main -------------------------------------------------------------------------------------

function main(): void {
  const started = performance.now();
  const warnings: string[] = [];
  log(`size ${N} elements (${opts.quick ? 'quick' : 'full'}); statistic: best of >= ${MIN_REPS} reps after 2 warm-up runs`);

  // Inputs: N(0, 1) for the signed formats; |N(0, 1)| for e8m0fnu (scales are positive).
  const input = normalInput(N, 1);
  const inputPos = new Float32Array(N);
  for (let i = 0; i < N; i++) inputPos[i] = Math.abs(input[i]);
  const inputOf = (dtype: string): Float32Array => (dtype === 'float8_e8m0fnu' ? inputPos : input);

  // Copy limit.
  const copyDst = new Float32Array(N);
  const copy = timeIt(N, () => copyDst.set(input));
  log(`copy limit Float32Array.prototype.set: ${copy.melemPerSec} M elem/s`);

  // Zero-copy inputs in WebAssembly memory, filled once.
  const wIn = allocate('float32', N);
  (wIn.array as Float32Array).set(input);
  const wInPos = allocate('float32', N);
  (wInPos.array as Float32Array).set(inputPos);
  const wDecOut = allocate('float32', N);
  const decOut = new Float32Array(N);

  const vin = verifyInput(VERIFY_SIZE);
  const formats: Record<string, unknown> = {};
  const speeds: Record<string, { enc: Record<string, number>; dec: Record<string, number> }> = {};

  for (const dtype of DTYPES) {
    const f = formatOf(dtype);
    const src = inputOf(dtype);
    const wSrc = dtype === 'float8_e8m0fnu' ? wInPos : wIn;
    const impl = plainJs(dtype);

    log(`${dtype}: verifying plain JS against memfit on ${VERIFY_SIZE} inputs and all ${2 ** f.bits} codes`);
    const verify = verifyPlain(dtype, impl.encode, impl.decode, vin);
    if (!verify.ok) {
      warnings.push(`plain JS ${dtype} disagrees with memfit: ${verify.encodeMismatches} encode / ${verify.decodeMismatches} decode mismatches (${(verify.examples as string[]).slice(0, 2).join('; ')})`);
      log(`WARNING: ${warnings[warnings.length - 1]}`);
    }

    const codes = codesFor(dtype, N);
    const wCodes: WasmArray = allocate(dtype, N);
    const plainCodes = codesFor(dtype, N);
    log(`${dtype}: encode`);
    const encJs = timeIt(N, () => encode(src, dtype, { out: codes }));
    const encWasm = timeIt(N, () => encode(wSrc, dtype, { out: wCodes }));
    const encPlain = timeIt(N, () => impl.encode(src, plainCodes));
    // Same codes from all three paths on the benchmark input.
    const wCodesView = wCodes.array as Codes;
    let diff = 0;
    for (let i = 0; i < N; i++) if (codes[i] !== wCodesView[i] || codes[i] !== plainCodes[i]) diff++;
    if (diff) {
      warnings.push(`${dtype}: ${diff} benchmark-input codes differ between memfit JS arrays, memfit WasmArray and plain JS`);
      log(`WARNING: ${warnings[warnings.length - 1]}`);
    }

    log(`${dtype}: decode`);
    const decJs = timeIt(N, () => decode(codes, dtype, { out: decOut }));
    const decWasm = timeIt(N, () => decode(wCodes, dtype, { out: wDecOut }));
    const decPlain = timeIt(N, () => impl.decode(codes, decOut));
    wCodes.free();

    formats[dtype] = {
      codeBytes: f.codeBytes,
      input: dtype === 'float8_e8m0fnu' ? '|N(0,1)|' : 'N(0,1)',
      encode: { memfitJsArrays: encJs, memfitWasmArray: encWasm, plainJs: encPlain },
      decode: { memfitJsArrays: decJs, memfitWasmArray: decWasm, plainJs: decPlain },
      plainJsVerification: verify,
    };
    speeds[dtype] = {
      enc: { js: encJs.melemPerSec, wasm: encWasm.melemPerSec, plain: encPlain.melemPerSec },
      dec: { js: decJs.melemPerSec, wasm: decWasm.melemPerSec, plain: decPlain.melemPerSec },
    };
    log(`${dtype}: encode M elem/s js ${encJs.melemPerSec} wasm ${encWasm.melemPerSec} plain ${encPlain.melemPerSec}; decode js ${decJs.melemPerSec} wasm ${decWasm.melemPerSec} plain ${decPlain.melemPerSec}`);
  }
  wIn.free();
  wInPos.free();
  wDecOut.free();

  // @petamoriken/float16 on a slice.
  const pn = Math.min(PEER_SIZE, N);
  log(`@petamoriken/float16 on ${pn} elements`);
  const slice = input.subarray(0, pn);
  let f16arr = new Float16Array(slice);
  const petaEnc = timeIt(pn, () => { f16arr = new Float16Array(slice); });
  const petaCodes = new Uint16Array(f16arr.buffer, f16arr.byteOffset, pn);
  const memfitCodes = encode(slice, 'float16') as Uint16Array;
  let petaDiff = 0;
  for (let i = 0; i < pn; i++) if (petaCodes[i] !== memfitCodes[i]) petaDiff++;
  if (petaDiff) warnings.push(`@petamoriken/float16 encode differs from memfit on ${petaDiff} of ${pn} inputs`);
  const f16view = new Float16Array(memfitCodes.buffer, memfitCodes.byteOffset, pn);
  let petaOut = new Float32Array(0);
  const petaDecFrom = timeIt(pn, () => { petaOut = Float32Array.from(f16view); });
  const dv = new DataView(memfitCodes.buffer, memfitCodes.byteOffset, pn * 2);
  const petaLoopOut = new Float32Array(pn);
  const petaDecGet = timeIt(pn, () => {
    for (let i = 0; i < pn; i++) petaLoopOut[i] = getFloat16(dv, i * 2, true);
  });
  const ref = decode(memfitCodes, 'float16');
  let petaDecDiff = 0;
  for (let i = 0; i < pn; i++) if (!Object.is(ref[i], petaOut[i]) || !Object.is(ref[i], petaLoopOut[i])) petaDecDiff++;
  if (petaDecDiff) warnings.push(`@petamoriken/float16 decode differs from memfit on ${petaDecDiff} of ${pn} codes`);
  const petaDecBest = petaDecGet.melemPerSec >= petaDecFrom.melemPerSec ? petaDecGet : petaDecFrom;

  // python: numpy (and ml_dtypes).
  let python: Record<string, unknown> = { numpy: 'skipped (--no-python)', ml_dtypes: 'skipped (--no-python)' };
  if (opts.python) {
    log(`numpy / ml_dtypes in python3 on ${N} elements`);
    python = runPython(input);
  }
  const np = typeof python.numpy === 'object' ? (python.numpy as Record<string, Timing & Record<string, unknown>>) : undefined;
  const npEncBest = np ? Math.max(np.float16_encode_astype.melemPerSec, np.float16_encode_copyto.melemPerSec) : NaN;
  const npDecBest = np ? Math.max(np.float16_decode_astype.melemPerSec, np.float16_decode_copyto.melemPerSec) : NaN;
  if (!np) warnings.push(`numpy ${String(python.numpy)}: numpy ratios not computed`);

  // Ratios (from the best repetitions of this run).
  type Ratio = { name: string; memfitPath: 'jsArrays' | 'wasmArray'; value: number; goal: number; met: boolean; numerator: number; denominator: number };
  const ratios: Ratio[] = [];
  const paths = [['jsArrays', 'js'], ['wasmArray', 'wasm']] as const;
  const add = (name: string, path: Ratio['memfitPath'], num: number, den: number, goal: number): void => {
    if (!Number.isFinite(den) || !Number.isFinite(num)) return;
    const value = round3(num / den);
    ratios.push({ name, memfitPath: path, value, goal, met: value >= goal, numerator: num, denominator: den });
  };
  for (const dt of ['bfloat16', 'float16'] as const) {
    for (const [p, k] of paths) add(`float32->${dt} encode / Float32Array.set copy`, p, speeds[dt].enc[k], copy.melemPerSec, 0.5);
  }
  for (const dt of ['bfloat16', 'float16'] as const) {
    for (const [p, k] of paths) add(`float32->${dt} encode / numpy float32->float16 (faster of astype, copyto)`, p, speeds[dt].enc[k], npEncBest, 2);
  }
  for (const dt of DTYPES) {
    if (formatOf(dt).bits > 8) continue;
    for (const [p, k] of paths) add(`${dt} encode / plain JS`, p, speeds[dt].enc[k], speeds[dt].enc.plain, 2);
    for (const [p, k] of paths) add(`${dt} decode / plain JS`, p, speeds[dt].dec[k], speeds[dt].dec.plain, 2);
  }
  for (const dt of ['bfloat16', 'float16'] as const) {
    for (const [p, k] of paths) add(`${dt} decode / plain JS`, p, speeds[dt].dec[k], speeds[dt].dec.plain, 2);
  }
  // Informational (no project goal): against the other float16 peers.
  const info: Record<string, number> = {};
  for (const [p, k] of paths) {
    info[`float16 encode ${p} / @petamoriken new Float16Array(f32)`] = round3(speeds.float16.enc[k] / petaEnc.melemPerSec);
    info[`float16 decode ${p} / @petamoriken (faster decode)`] = round3(speeds.float16.dec[k] / petaDecBest.melemPerSec);
    if (np) info[`float16 decode ${p} / numpy float16->float32 (faster)`] = round3(speeds.float16.dec[k] / npDecBest);
    info[`bfloat16 decode ${p} / Float32Array.set copy`] = round3(speeds.bfloat16.dec[k] / copy.melemPerSec);
  }
  const ml = typeof python.ml_dtypes === 'object' ? (python.ml_dtypes as Record<string, Timing>) : undefined;
  if (ml) {
    for (const [p, k] of paths) {
      info[`bfloat16 encode ${p} / ml_dtypes float32->bfloat16`] = round3(speeds.bfloat16.enc[k] / ml.bfloat16_encode_astype.melemPerSec);
      info[`bfloat16 decode ${p} / ml_dtypes bfloat16->float32`] = round3(speeds.bfloat16.dec[k] / ml.bfloat16_decode_astype.melemPerSec);
    }
  }
  // Cost of the chunked copy path: memfit over JS typed arrays relative to WasmArrays (1 = free).
  for (const dt of DTYPES) {
    info[`${dt} encode jsArrays / wasmArray`] = round3(speeds[dt].enc.js / speeds[dt].enc.wasm);
    info[`${dt} decode jsArrays / wasmArray`] = round3(speeds[dt].dec.js / speeds[dt].dec.wasm);
  }

  const cpus = os.cpus();
  const result = {
    benchmark: 'memfit format throughput',
    machine: {
      node: process.version,
      v8: process.versions.v8,
      os: `${os.type()} ${os.release()} ${os.arch()}`,
      cpuModel: cpus[0]?.model ?? 'unknown',
      cpuCount: cpus.length,
      totalMemGiB: round3(os.totalmem() / 2 ** 30),
      loadAverage: os.loadavg().map(round3),
      date: new Date().toISOString(),
    },
    config: {
      size: N,
      quick: opts.quick,
      peerSliceSize: pn,
      verifySize: VERIFY_SIZE,
      statistic: 'best repetition (fastest) after 2 warm-up runs; median also reported',
      reps: { min: MIN_REPS, max: MAX_REPS, minMeasuredMs: MIN_TIME_MS },
      units: 'melemPerSec = million elements per second',
      rounding: 'nearest-even, non-saturating; fp6/fp4 codes unpacked one per byte',
      input: 'float32 N(0,1) (deterministic); float8_e8m0fnu uses |N(0,1)|; decode input = memfit codes of that input',
      memfitJsArrays: 'encode(Float32Array, dtype, { out: code typed array }) / decode(codes, dtype, { out: Float32Array }): chunked copies through WebAssembly memory',
      memfitWasmArray: "encode(allocate('float32', n), dtype, { out: allocate(dtype, n) }) / decode(WasmArray, dtype, { out: allocate('float32', n) }): zero copy",
      plainJs: 'bench/plain_js.ts: per-element bit arithmetic through Uint32Array views, verified against memfit (NaN payloads compared exactly)',
    },
    copyLimit: { 'Float32Array.prototype.set': copy },
    formats,
    peers: {
      '@petamoriken/float16': {
        version: '3.9.3',
        elements: pn,
        encode_newFloat16Array: petaEnc,
        decode_Float32ArrayFrom: petaDecFrom,
        decode_getFloat16Loop: petaDecGet,
        encodeMismatchesVsMemfit: petaDiff,
        decodeMismatchesVsMemfit: petaDecDiff,
      },
      ...python,
    },
    ratios,
    informational: info,
    warnings,
    elapsedSec: round3((performance.now() - started) / 1000),
  };
  const json = JSON.stringify(result, null, 2);

  const here = path.dirname(fileURLToPath(import.meta.url));
  const dir = path.join(here, 'results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'formats.json');
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, json + '\n');
  renameSync(tmp, file);

  // Human summary on stderr.
  log('M elem/s (best)        enc js  enc wasm  enc plain | dec js  dec wasm  dec plain');
  for (const dt of DTYPES) {
    const s = speeds[dt];
    const c = (x: number): string => x.toFixed(0).padStart(8);
    log(`${dt.padEnd(16)} ${c(s.enc.js)} ${c(s.enc.wasm)} ${c(s.enc.plain)}   | ${c(s.dec.js)} ${c(s.dec.wasm)} ${c(s.dec.plain)}`);
  }
  for (const r of ratios) log(`${r.met ? 'MET   ' : 'MISSED'} ${r.name} [${r.memfitPath}] = ${r.value} (goal >= ${r.goal})`);
  log(`wrote ${path.relative(process.cwd(), file)} in ${result.elapsedSec} s`);
  process.stdout.write(json + '\n');
}

main();
