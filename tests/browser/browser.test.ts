// The esbuild browser bundle (dist/browser/memfit.js) in Debian's headless Chromium: it loads
// with no fs/fetch, and gives bit-identical codes and values to the library in Node.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { withPage } from '../helpers/chromium.js';
import { encode, decode, finfo, formatOf } from '../../src/index.js';

const BUNDLE = fileURLToPath(new URL('../../dist/browser/memfit.js', import.meta.url));

const DTYPES = [
  'float16', 'bfloat16', 'float8_e4m3fn', 'float8_e5m2', 'float8_e8m0fnu',
  'float6_e3m2fn', 'float6_e2m3fn', 'float4_e2m1fn',
] as const;

/** Formats whose every code is decoded (all of 2^bits). */
const DECODE_ALL = DTYPES.filter((d) => formatOf(d).bits <= 16);

/** Encode options compared (the stochastic one with a fixed seed, so it is deterministic). */
const OPTIONS = [
  {},
  { saturate: true },
  { rounding: 'toward-zero' },
  { rounding: 'stochastic', seed: 20240611 },
] as const;

/** ~1000 deterministic float32 bit patterns: specials, subnormals, format boundaries, random bits. */
function inputBits(): number[] {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const bitsOf = (x: number) => { f[0] = x; return u[0]; };
  const out: number[] = [];
  // ±0, ±Infinity, NaNs (quiet, signalling, negative, with payloads), float32 subnormals and limits.
  out.push(0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7f800001, 0x7fa00000, 0xffffffff);
  out.push(0x00000001, 0x80000001, 0x00000002, 0x007fffff, 0x807fffff, 0x00400000, 0x00800000, 0x80800000, 0x7f7fffff, 0xff7fffff);
  // Large and small values, limits of each format and the values around them.
  for (const x of [1, -1, 0.5, 1.5, 2, 3, 6, 7.5, 448, 464, 480, 512, 57344, 61440, 65504, 65520, 65536, 1e6, 3.4e38, 1e-3, 1e-5, 1e-7, 6e-8, 1e-40, 1e-45]) {
    out.push(bitsOf(x), bitsOf(-x));
  }
  for (const d of DTYPES) {
    const i = finfo(d);
    for (const x of [i.max, i.smallestNormal, i.smallestSubnormal, i.eps, 1 + i.eps, 1 + i.eps / 2, i.smallestSubnormal / 2]) {
      const b = bitsOf(x);
      out.push(b, b - 1, b + 1, (b ^ 0x80000000) >>> 0);
    }
  }
  // Exact halfway points and neighbours on a fine grid (ties to even matter here).
  for (let k = -64; k <= 64; k++) out.push(bitsOf(k / 8), bitsOf(k / 8) + 1, bitsOf(k * 0.0625 + 0.03125));
  // Random bit patterns (xorshift32), and random values over a wide exponent range.
  let s = 0x9e3779b9;
  const next = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s; };
  while (out.length < 800) out.push(next());
  while (out.length < 1024) {
    const mant = (next() >>> 9) | 0;
    const exp = 127 - 40 + (next() % 60);
    out.push(((next() & 1) << 31 | exp << 23 | mant) >>> 0);
  }
  return out.map((b) => b >>> 0);
}

interface Results {
  encoded: Record<string, number[][]>;
  decoded: Record<string, number[]>;
}

/** The comparison, written once and run both in Node and in the page (it must be self-contained). */
function compute(lib: { encode: typeof encode; decode: typeof decode }, bits: number[], dtypes: readonly string[],
  decodeAll: readonly string[], options: readonly object[], codeCounts: Record<string, number>): Results {
  const values = new Float32Array(new Uint32Array(bits).buffer);
  const encoded: Record<string, number[][]> = {};
  for (const d of dtypes) encoded[d] = options.map((o) => Array.from(lib.encode(values, d, o as never)));
  const decoded: Record<string, number[]> = {};
  for (const d of decodeAll) {
    const n = codeCounts[d];
    const codes = n > 256 ? new Uint16Array(n) : new Uint8Array(n);
    for (let i = 0; i < n; i++) codes[i] = i;
    // Float32 bit patterns, so NaN payloads and -0 are compared exactly.
    decoded[d] = Array.from(new Uint32Array(lib.decode(codes, d).buffer));
  }
  return { encoded, decoded };
}

function sameArray(what: string, got: number[], want: number[], ctx = ''): void {
  assert.is(got.length, want.length, `${what}: length${ctx}`);
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) {
      assert.unreachable(`${what}: first difference at index ${i}: browser ${got[i]} (0x${got[i].toString(16)}), node ${want[i]} (0x${want[i].toString(16)})${ctx}`);
    }
  }
}

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>memfit browser test</title>
<script>window.__ready = false;</script>
<script type="module">
import * as memfit from '/memfit.js';
window.memfit = memfit;
window.__ready = true;
</script>`;

test('browser bundle has no Node-only imports and embeds the WebAssembly', () => {
  assert.ok(existsSync(BUNDLE), `${BUNDLE} is missing: build it first (node scripts/build.mjs)`);
  const text = readFileSync(BUNDLE, 'utf8');
  const requireFs = text.match(/require\(\s*["'](node:)?fs(\/promises)?["']\s*\)/);
  assert.not.ok(requireFs, `bundle contains ${requireFs?.[0]}`);
  const nodeImport = text.match(/["']node:[\w/]+["']/);
  assert.not.ok(nodeImport, `bundle imports ${nodeImport?.[0]}`);
  const anyRequire = text.match(/\brequire\(\s*["'][^"']+["']\s*\)/);
  assert.not.ok(anyRequire, `bundle contains ${anyRequire?.[0]}`);
  assert.not.ok(/fetch\([^)]*\.wasm/.test(text), 'bundle fetches a .wasm file');
  assert.match(text, /AGFzbQ/, 'bundle embeds the WebAssembly module as base64 (\\0asm = "AGFzbQ")');
});

test('browser bundle in headless Chromium matches Node bit for bit', async () => {
  assert.ok(existsSync(BUNDLE), `${BUNDLE} is missing: build it first (node scripts/build.mjs)`);
  const bits = inputBits();
  const codeCounts = Object.fromEntries(DECODE_ALL.map((d) => [d, 2 ** formatOf(d).bits]));
  const want = compute({ encode, decode }, bits, DTYPES, DECODE_ALL, OPTIONS, codeCounts);

  await withPage(PAGE, { '/memfit.js': { file: BUNDLE } }, async ({ page, log }) => {
    const computeSource = compute.toString();
    const got = await page.evaluate(({ src, args }) => {
      // eslint-disable-next-line @typescript-eslint/no-implied-eval
      const fn = new Function(`return (${src});`)();
      const m = (globalThis as unknown as { memfit: unknown }).memfit;
      return fn(m, ...args) as Results;
    }, { src: computeSource, args: [bits, DTYPES, DECODE_ALL, OPTIONS, codeCounts] as const });
    const ctx = log.length ? `\npage log:\n${log.join('\n')}` : '';

    for (const d of DTYPES) {
      OPTIONS.forEach((o, k) => sameArray(`encode ${d} ${JSON.stringify(o)}`, got.encoded[d][k], want.encoded[d][k], ctx));
    }
    for (const d of DECODE_ALL) sameArray(`decode all ${d} codes`, got.decoded[d], want.decoded[d], ctx);

    const e4m3Max = await page.evaluate(() => (globalThis as any).memfit.finfo('e4m3').max);
    assert.is(e4m3Max, 448, 'finfo("e4m3").max in the page');

    const err = await page.evaluate(() => {
      try {
        (globalThis as any).memfit.encode(new Float32Array(2), 'float7_e9m9');
        return null;
      } catch (e) {
        return { name: (e as Error).name, code: (e as { code?: string }).code, message: (e as Error).message, isError: e instanceof Error };
      }
    });
    assert.ok(err, 'encode with an unknown dtype should throw in the page');
    assert.ok(err.isError, 'thrown value is an Error');
    assert.is(err.code, 'UNKNOWN_DTYPE');
    assert.match(err.message, 'float7_e9m9');
    assert.match(err.message, /valid names: .*float16.*bfloat16.*float8_e4m3fn.*float4_e2m1fn/);

    // WebGPU (used later): the API is there, and SwiftShader gives a (CPU) adapter.
    const gpu = await page.evaluate(async () => {
      const nav = navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } };
      if (!nav.gpu) return { hasGpu: false, adapter: false, error: null as string | null, info: null as unknown };
      try {
        const adapter = await nav.gpu.requestAdapter() as { info?: Record<string, string> } | null;
        const info = adapter?.info ? { vendor: adapter.info.vendor, architecture: adapter.info.architecture, description: adapter.info.description } : null;
        return { hasGpu: true, adapter: adapter !== null, error: null, info };
      } catch (e) {
        return { hasGpu: true, adapter: false, error: String(e), info: null };
      }
    });
    assert.ok(gpu.hasGpu, `navigator.gpu is missing in headless Chromium (is it a secure context? flags?)${ctx}`);
    assert.ok(gpu.adapter, `navigator.gpu.requestAdapter() gave no adapter${gpu.error ? `: ${gpu.error}` : ''}${ctx}`);
  });
});

test.run();
