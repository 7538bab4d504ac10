import { checkOptions, describeValue, InvalidArgumentError, ShapeMismatchError } from '../errors.js';
import { decode } from './encode.js';
import { formatOf, type DType, type DTypeName } from './formats.js';
import { hostCopy } from './host_array.js';
import { firstCodeAbove, kernelInt, memoryBuffer, wasm, wasmAlloc, wasmFree, type CodeArray } from './wasm.js';

const SCALED_MM_OPTIONS = ['m', 'k', 'n', 'aDtype', 'bDtype', 'scaleA', 'scaleB', 'blockSize', 'outDtype', 'accumulate'] as const;

/**
 * A scale for one operand: a number (per tensor), a Float32Array (per row of A: M values; per
 * column of B: N values), or E8M0 block scales as a Uint8Array (MX: A M x (K / blockSize)
 * row-major; B (K / blockSize) x N row-major, one scale per block of K for each column).
 */
export type MatmulScale = number | Float32Array | Uint8Array;

export interface ScaledMatmulOptions {
  m: number;
  k: number;
  n: number;
  /** Element format of A (default float8_e4m3fn); any format of 8 bits or fewer, codes one a byte. */
  aDtype?: DTypeName;
  bDtype?: DTypeName;
  scaleA: MatmulScale;
  scaleB: MatmulScale;
  /** MX block size along K (default 32). */
  blockSize?: number;
  /** Output format (default float32); the result is rounded once to it, nearest-even, non-saturating. */
  outDtype?: DTypeName;
  /**
   * 'float64' (default): binary64 with compensated (Neumaier) summation: exact for e4m3 x e4m3 and within
   * 2^-100 relative otherwise. 'float32': float32 adds in increasing k, as a simple GPU kernel does.
   */
  accumulate?: 'float64' | 'float32';
}

/** The result: codes of outDtype and their exact values. */
export interface ScaledMatmulResult {
  readonly dtype: DType;
  readonly codes: CodeArray;
  readonly values: Float32Array;
}

const KIND = { tensor: 0, row: 1, mx: 2 } as const;

/**
 * True when `v` is a scale the kernel can apply as given: it applies float32 scales (as
 * torch._scaled_mm's float32 scale tensors), so v must round (Math.fround) to a positive finite
 * float32. Subnormal float32 scales are accepted (applied as their float32 value, as GradScaler's).
 */
function float32Scale(v: number): boolean {
  const f = Math.fround(v);
  return v > 0 && f > 0 && Number.isFinite(f);
}

function scaleKind(s: MatmulScale, which: 'A' | 'B', count: number, mxCount: number): number {
  if (typeof s === 'number') {
    if (!float32Scale(s)) throw new InvalidArgumentError(`scale${which} must be a positive finite number in float32's range (it is applied as a float32: 0 < Math.fround(scale) <= 3.4028234663852886e38), got ${s}`);
    return KIND.tensor;
  }
  if (s instanceof Float32Array) {
    if (s.length !== count) throw new ShapeMismatchError(`scale${which} has ${s.length} values; a ${which === 'A' ? 'row-wise' : 'column-wise'} scale needs ${count}`);
    const bad = s.findIndex((v) => !float32Scale(v));
    if (bad >= 0) throw new InvalidArgumentError(`scale${which}[${bad}] must be a positive finite number, got ${s[bad]}`);
    return KIND.row;
  }
  if (s instanceof Uint8Array) {
    if (s.length !== mxCount) throw new ShapeMismatchError(`scale${which} has ${s.length} E8M0 block scales, expected ${mxCount}`);
    return KIND.mx;
  }
  throw new InvalidArgumentError(`scale${which} must be a number, a Float32Array or a Uint8Array of E8M0 codes, got ${describeValue(s)}`);
}

/**
 * The reference for torch._scaled_mm: D = (A * scaleA) @ (B * scaleB) with A an M x K and B a K x N
 * matrix of fp8 (or fp6/fp4, unpacked) codes, row-major. Products are exact; see `accumulate`.
 */
export function scaledMatmul(a: Uint8Array, b: Uint8Array, options: ScaledMatmulOptions): ScaledMatmulResult {
  if (options === undefined) throw new InvalidArgumentError('scaledMatmul: options { m, k, n, scaleA, scaleB } are required');
  checkOptions(options, SCALED_MM_OPTIONS, 'scaledMatmul');
  for (const [name, v] of [['A', a], ['B', b]] as const) {
    if (!(v instanceof Uint8Array)) throw new InvalidArgumentError(`scaledMatmul: ${name} must be a Uint8Array of codes (one a byte), got ${describeValue(v)}`);
  }
  // Views of WebAssembly memory would be detached by the allocations below: copies.
  a = hostCopy(a, 'scaledMatmul A');
  b = hostCopy(b, 'scaledMatmul B');
  const scaleA = typeof options.scaleA === 'object' && options.scaleA !== null && ArrayBuffer.isView(options.scaleA) ? hostCopy(options.scaleA, 'scaleA') : options.scaleA;
  const scaleB = typeof options.scaleB === 'object' && options.scaleB !== null && ArrayBuffer.isView(options.scaleB) ? hostCopy(options.scaleB, 'scaleB') : options.scaleB;
  const { m, k, n } = options;
  // The kernel takes m, k, n and blockSize as 32-bit integers.
  for (const [name, v] of [['m', m], ['k', k], ['n', n]] as const) kernelInt(v, `scaledMatmul: ${name}`, 1);
  const fa = formatOf(options.aDtype ?? 'float8_e4m3fn');
  const fb = formatOf(options.bDtype ?? 'float8_e4m3fn');
  for (const f of [fa, fb]) if (f.bits > 8) throw new InvalidArgumentError(`scaledMatmul takes formats of 8 bits or fewer, got ${f.name}`);
  const out = formatOf(options.outDtype ?? 'float32');
  if (a.length !== m * k) throw new ShapeMismatchError(`A has ${a.length} codes, expected m * k = ${m} * ${k} = ${m * k}`);
  if (b.length !== k * n) throw new ShapeMismatchError(`B has ${b.length} codes, expected k * n = ${k} * ${n} = ${k * n}`);
  const blockSize = kernelInt(options.blockSize ?? 32, 'scaledMatmul: blockSize', 1);
  const isMx = scaleA instanceof Uint8Array || scaleB instanceof Uint8Array;
  if (options.blockSize !== undefined && !isMx) throw new InvalidArgumentError('scaledMatmul: blockSize applies to E8M0 block scales (MX, Uint8Array scales); these scales are per tensor or per row/column');
  if (isMx && k % blockSize !== 0) {
    throw new ShapeMismatchError(`MX block scales need k (${k}) to be a multiple of blockSize (${blockSize})`);
  }
  const kb = isMx ? k / blockSize : 0;
  const ka = scaleKind(scaleA, 'A', m, m * kb);
  const kbKind = scaleKind(scaleB, 'B', n, kb * n);
  if (ka !== kbKind) throw new InvalidArgumentError('scaleA and scaleB must be of the same kind (both per-tensor, both row/column-wise, or both MX block scales)');
  const acc = options.accumulate ?? 'float64';
  if (acc !== 'float64' && acc !== 'float32') throw new InvalidArgumentError(`accumulate must be 'float64' or 'float32', got ${JSON.stringify(acc)}`);

  const w = wasm();
  // The kernel decodes A and B to float64 into `work`: sized here, where (m * k + k * n) * 8 bytes
  // cannot wrap around 2^32 as it did inside the kernel (a buffer far too small, written past), and
  // allocated first, so that a size WebAssembly memory cannot hold is an OutOfMemoryError before
  // anything is copied.
  const pw = wasmAlloc(Math.max((m * k + k * n) * 8, 16), `scaledMatmul work memory (A and B decoded to float64, ${m * k} + ${k * n} values)`);
  const ptrs: number[] = [pw];
  const sizeOf = (s: MatmulScale) => (typeof s === 'number' ? 4 : s.byteLength);
  const put = (data: ArrayBufferView | number, bytes: number): number => {
    const p = wasmAlloc(Math.max(bytes, 16), 'scaledMatmul operand');
    ptrs.push(p);
    const dst = new Uint8Array(memoryBuffer(), p, bytes);
    if (typeof data === 'number') dst.set(new Uint8Array(Float32Array.of(data).buffer));
    else dst.set(new Uint8Array(data.buffer, data.byteOffset, bytes));
    return p;
  };
  try {
    const pa = put(a, a.length);
    const pb = put(b, b.length);
    const psa = put(scaleA, sizeOf(scaleA));
    const psb = put(scaleB, sizeOf(scaleB));
    for (const [p, len, f] of [[pa, a.length, fa], [pb, b.length, fb]] as const) {
      const bad = firstCodeAbove(p, len, 2 ** f.bits - 1);
      if (bad >= 0) throw new InvalidArgumentError(`code at index ${bad} is not a valid ${f.name} code`);
    }
    const pd = wasmAlloc(Math.max(m * n * out.codeBytes, 16), 'scaledMatmul result');
    ptrs.push(pd);
    w.scaledMatmul(fa.id, fb.id, pa, pb, m, k, n, psa, ka, psb, kbKind, blockSize, acc === 'float32', out.id, pd, pw);
    const bytes = new Uint8Array(memoryBuffer(), pd, m * n * out.codeBytes).slice();
    const codes = out.codeBytes === 4 ? new Uint32Array(bytes.buffer) : out.codeBytes === 2 ? new Uint16Array(bytes.buffer) : bytes;
    return { dtype: out.name, codes, values: decode(codes, out.name) };
  } finally {
    for (const p of ptrs) wasmFree(p);
  }
}
