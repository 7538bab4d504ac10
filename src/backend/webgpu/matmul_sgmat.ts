// The tensor-core matmul (shaders/matmul_sgmat.wgsl): subgroup matrices through Dawn's
// 'chromium-experimental-subgroup-matrix', for inputs whose values float16 holds exactly.
//
// Which inputs: float16, float8 e4m3fn and e5m2, float6 e3m2fn and e2m3fn, float4 e2m1fn, in any
// mix: each is decoded to f16 in the tile load without rounding, products of two f16 are exact in
// float32, and the sums are float32, so the result differs from the register-tiled kernel's only
// in the order and rounding of float32 additions. bfloat16 and float32 stay on the register-tiled
// kernel: float16 holds neither exactly (bfloat16's range runs from 2^-133 to 3.4e38, float16's
// from 2^-24 to 65504), and rounding inputs would change the product, not just its last bits.
// float8 e8m0fnu (powers of two from 2^-127 to 2^127) is out of float16's range too.
//
// Dawn has changed the spelling of subgroupMatrixLoad / subgroupMatrixStore (the layout was a bool
// argument, then a template argument), so the backend compiles a small probe kernel when it starts,
// in the newer spelling and else the older one; then, for each way past the uniformity rule (see
// SubgroupMatrixSupport.uniformity), it runs the real kernel on small exact cases (sgmatSelfTest)
// and keeps the first that passes. With none, no subgroup matrices (backend.probeNotes says why).
import type { MatmulOptions, TensorDType, TensorRef } from '../backend.js';
import { numel } from '../shape.js';
import type { WebGPUBackend } from './backend.js';
import { accessor, fmtId } from './wgsl.js';
import { blocks, MIN_BLOCKS } from './occupancy.js';

/** One entry of adapter.info.subgroupMatrixConfigs (WebGPU's GPUSubgroupMatrixConfig). */
export interface SubgroupMatrixConfig {
  readonly componentType: string;
  readonly resultComponentType: string;
  readonly M: number;
  readonly N: number;
  readonly K: number;
}

/**
 * How this Dawn spells the load and store: layout as a template argument, or as a bool argument
 * (older). 'emulated' runs the same kernel with subgroup matrices emulated in plain WGSL (every
 * invocation holds whole 16 x 16 matrices, f16 as f32): tests on adapters without subgroup matrices
 * check the kernel's indexing, staging, transposes and edge stores with it.
 */
export type SubgroupMatrixSyntax = 'template' | 'bool' | 'emulated';

/** What the tensor-core matmul runs with on this device (WebGPUBackend.subgroupMatrix). */
export interface SubgroupMatrixSupport {
  /** The f16 x f16 -> f32 shape used: left M x K, right K x N, result M x N. */
  readonly config: SubgroupMatrixConfig;
  readonly subgroupSize: number;
  readonly syntax: SubgroupMatrixSyntax;
  /**
   * How the kernel meets WGSL's uniformity rules: its subgroup-matrix offsets come from the
   * subgroup's index (local_invocation_index / subgroup size), uniform in each subgroup but not
   * provably so (as written, Dawn refuses it). 'diagnostic-off': `diagnostic(off,
   * chromium.subgroup_matrix_uniformity)`; 'analysis-off': `enable
   * chromium_disable_uniformity_analysis` (needs allow_unsafe_apis). The backend tries both and
   * takes the first that compiles and passes its self-test; absent (the emulated kernel), neither.
   */
  readonly uniformity?: 'diagnostic-off' | 'analysis-off';
}

/** The directives a kernel source starts with for a support's uniformity choice. */
export function uniformityHeader(s: SubgroupMatrixSupport): string {
  if (s.uniformity === 'diagnostic-off') return 'diagnostic(off, chromium.subgroup_matrix_uniformity);\n';
  if (s.uniformity === 'analysis-off') return '//#enable chromium_disable_uniformity_analysis\n';
  return '';
}

/**
 * Block and subgroup tiles: a workgroup computes bm x bn, stepping K by bk; each subgroup owns wm x wn
 * (bm / wm x bn / wn subgroups a workgroup).
 */
export interface SgmatTiles {
  readonly bm: number;
  readonly bn: number;
  readonly bk: number;
  readonly wm: number;
  readonly wn: number;
}

/** 128 x 128 blocks, K steps of 32, 8 subgroups of 64 x 32 (4 x 2 result matrices of 16 x 16 each). */
export const SGMAT_TILES: SgmatTiles = { bm: 128, bn: 128, bk: 32, wm: 64, wn: 32 };
/**
 * 128 x 256 blocks, 8 subgroups of 64 x 64 (4 x 4 result matrices): on an H200 (2026-11-30,
 * bench/results/gpu-h200-kernels-run2.json) 25.1 TFLOP/s at 4096^3 in float16 against 18.0 for
 * SGMAT_TILES. For outputs that make enough of them (sgmatTiles).
 */
export const SGMAT_WIDE_TILES: SgmatTiles = { bm: 128, bn: 256, bk: 32, wm: 64, wn: 64 };

/** 64 x 64 blocks, 4 subgroups of 32 x 32: for outputs that make few larger blocks. */
export const SGMAT_SMALL_TILES: SgmatTiles = { bm: 64, bn: 64, bk: 32, wm: 32, wn: 32 };

/**
 * The tiles for `batch` m x n outputs: the largest blocks that still make MIN_BLOCKS workgroups
 * (src/backend/webgpu/occupancy.ts): SGMAT_WIDE_TILES, SGMAT_TILES, else SGMAT_SMALL_TILES.
 */
export function sgmatTiles(m: number, n: number, batch = 1): SgmatTiles {
  for (const t of [SGMAT_WIDE_TILES, SGMAT_TILES]) if (blocks(m, n, batch, t.bm, t.bn) >= MIN_BLOCKS) return t;
  return SGMAT_SMALL_TILES;
}

/** Input dtypes float16 holds exactly (see the header). */
const EXACT_IN_F16: ReadonlySet<TensorDType> = new Set<TensorDType>(['float16', 'float8_e4m3fn', 'float8_e5m2', 'float6_e3m2fn', 'float6_e2m3fn', 'float4_e2m1fn']);

/** Whether a matmul of these input dtypes may run on subgroup matrices. */
export function sgmatEligible(a: TensorDType, b: TensorDType): boolean {
  return EXACT_IN_F16.has(a) && EXACT_IN_F16.has(b);
}

/**
 * The subgroup-matrix shape for f16 x f16 -> f32 from the adapter's list: M = N = 16 preferred, then
 * the largest K; null when there is none.
 */
export function pickConfig(configs: readonly SubgroupMatrixConfig[]): SubgroupMatrixConfig | null {
  const ok = configs.filter((c) => c.componentType === 'f16' && c.resultComponentType === 'f32' && c.M > 0 && c.N > 0 && c.K > 0);
  ok.sort((x, y) => (Number(y.M === 16 && y.N === 16) - Number(x.M === 16 && x.N === 16)) || y.K - x.K || y.N - x.N);
  return ok[0] ?? null;
}

/** Checks tiles against a config: every size a multiple of what holds it. */
export function checkTiles(t: SgmatTiles, c: SubgroupMatrixConfig): string | null {
  if (t.bm % t.wm || t.bn % t.wn) return `block ${t.bm} x ${t.bn} is not a whole number of ${t.wm} x ${t.wn} subgroup tiles`;
  if (t.wm % c.M || t.wn % c.N || t.bk % c.K) return `subgroup tile ${t.wm} x ${t.wn} (K step ${t.bk}) is not a whole number of ${c.M} x ${c.N} x ${c.K} matrices`;
  if (t.bk % 2 || t.bm % 2 || t.bn % 2) return 'tile sizes must be even';
  return null;
}

const MATRIX = {
  left: (c: SubgroupMatrixConfig) => `subgroup_matrix_left<f16, ${c.K}, ${c.M}>`,
  right: (c: SubgroupMatrixConfig) => `subgroup_matrix_right<f16, ${c.N}, ${c.K}>`,
  result: (c: SubgroupMatrixConfig) => `subgroup_matrix_result<f32, ${c.N}, ${c.M}>`,
};

/** A load of `type` from `ptr` at `offset` (elements) with `stride`, column-major or not, in `syntax`. */
function loadCall(syntax: SubgroupMatrixSyntax, type: string, ptr: string, offset: string, stride: string, colMajor: boolean): string {
  if (syntax === 'emulated') return `emu_load_${ptr.slice(1)}(${offset}, ${stride}, ${colMajor})`;
  return syntax === 'template'
    ? `subgroupMatrixLoad<${type}, ${colMajor ? 'col_major' : 'row_major'}>(${ptr}, ${offset}, ${stride})`
    : `subgroupMatrixLoad<${type}>(${ptr}, ${offset}, ${colMajor}, ${stride})`;
}

/** A row-major store of `value` at `offset` with `stride`, in `syntax`. */
function storeCall(syntax: SubgroupMatrixSyntax, ptr: string, offset: string, value: string, stride: string): string {
  if (syntax === 'emulated') return `emu_store_${ptr.slice(1)}(${offset}, ${value}, ${stride})`;
  return syntax === 'template'
    ? `subgroupMatrixStore<row_major>(${ptr}, ${offset}, ${value}, ${stride})`
    : `subgroupMatrixStore(${ptr}, ${offset}, ${value}, false, ${stride})`;
}

/** The probe kernel: one multiply-accumulate from workgroup memory, stored to a storage buffer. */
export function probeSource(syntax: SubgroupMatrixSyntax, c: SubgroupMatrixConfig, subgroupSize: number): string {
  return `enable f16;
enable chromium_experimental_subgroup_matrix;
@group(0) @binding(0) var<storage, read_write> o: array<f32>;
var<workgroup> w: array<f16, ${Math.max(c.M, c.N) * c.K * 2}>;
@compute @workgroup_size(${subgroupSize})
fn main(@builtin(local_invocation_index) i: u32) {
  w[i] = f16(1.0);
  workgroupBarrier();
  let l = ${loadCall(syntax, MATRIX.left(c), '&w', '0u', `${c.K}u`, false)};
  let r = ${loadCall(syntax, MATRIX.right(c), '&w', '0u', `${c.N}u`, true)};
  var acc = ${MATRIX.result(c)}();
  acc = subgroupMatrixMultiplyAccumulate(l, r, acc);
  ${storeCall(syntax, '&o', '0u', 'acc', `${c.N}u`)};
}
`;
}

/**
 * Finds out whether this device runs the tensor-core matmul: the features, an f16 -> f32 config, one
 * subgroup size, and a probe kernel that compiles in one of the two spellings. `log` hears why not.
 */
export async function probeSubgroupMatrix(device: GPUDevice, info: GPUAdapterInfo, features: ReadonlySet<string>, log?: (line: string) => void): Promise<SubgroupMatrixSupport[]> {
  if (!features.has('chromium-experimental-subgroup-matrix') || !features.has('shader-f16')) return [];
  const ext = info as GPUAdapterInfo & { subgroupMatrixConfigs?: readonly SubgroupMatrixConfig[]; subgroupMinSize?: number; subgroupMaxSize?: number };
  const config = pickConfig(Array.from(ext.subgroupMatrixConfigs ?? []));
  if (!config) { log?.('subgroup matrices: no f16 -> f32 configuration'); return []; }
  const size = ext.subgroupMinSize;
  if (!size || size !== ext.subgroupMaxSize) { log?.(`subgroup matrices: subgroup size not fixed (${ext.subgroupMinSize}..${ext.subgroupMaxSize})`); return []; }
  const found: SubgroupMatrixSupport[] = [];
  for (const syntax of ['template', 'bool'] as const) {
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code: probeSource(syntax, config, size), label: `subgroup matrix probe (${syntax})` });
    device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: 'subgroup matrix probe' });
    const err = await device.popErrorScope();
    if (err) { log?.(`subgroup matrices, ${syntax} spelling: ${err.message.split('\n').slice(0, 3).join(' | ')}`); continue; }
    // The kernel's offsets are not provably uniform (as written it fails validation: "requires argument
    // 1 to be uniform", Dawn through webgpu 0.6.2 on an H200), so those two choices only. The
    // older spelling is tried only when the newer one fails: Dawn prints a deprecation warning
    // for it on stdout.
    for (const uniformity of ['diagnostic-off', 'analysis-off'] as const) found.push({ config, subgroupSize: size, syntax, uniformity });
    break;
  }
  return found;
}

/** One line naming a support (probe notes, pipeline keys). */
export const supportName = (s: SubgroupMatrixSupport) => `${s.syntax} spelling, uniformity ${s.uniformity ?? 'as written'}, ${s.config.M}x${s.config.N}x${s.config.K}`;

/** The kernel source for one support, tile set and pair of transposes (everything the template leaves open). */
export function sgmatSource(s: SubgroupMatrixSupport, t: SgmatTiles, transA: boolean, transB: boolean, template: string): string {
  const c = s.config;
  const mt = t.wm / c.M, nt = t.wn / c.N;
  const sa = (transA ? t.bm : t.bk) + 8, sb = (transB ? t.bk : t.bn) + 8;
  const defs: Record<string, number> = {
    SM: c.M, SN: c.N, SK: c.K, BM: t.bm, BN: t.bn, BK: t.bk, WM: t.wm, WN: t.wn, SG: s.subgroupSize,
    NSG: (t.bm / t.wm) * (t.bn / t.wn), MT: mt, NT: nt, SA: sa, SB: sb,
    TA_SIZE: sa * (transA ? t.bk : t.bm), TB_SIZE: sb * (transB ? t.bn : t.bk),
    TRANS_A: transA ? 1 : 0, TRANS_B: transB ? 1 : 0,
  };
  const acc = (i: number, j: number) => `acc_${i}_${j}`;
  const lines = (n: number, m: number, f: (i: number, j: number) => string) =>
    Array.from({ length: n * m }, (_, q) => f(Math.floor(q / m), q % m)).join('\n');
  const decl = lines(mt, nt, (i, j) => `  var ${acc(i, j)} = ${MATRIX.result(c)}();`);
  const mma = [
    ...Array.from({ length: mt }, (_, i) => `      let la_${i} = ${loadCall(s.syntax, MATRIX.left(c), '&ta', `off_a(wr, ${i}u, kk)`, 'SA', transA)};`),
    ...Array.from({ length: nt }, (_, j) => `      let rb_${j} = ${loadCall(s.syntax, MATRIX.right(c), '&tb', `off_b(wc, ${j}u, kk)`, 'SB', transB)};`),
    lines(mt, nt, (i, j) => `      ${acc(i, j)} = subgroupMatrixMultiplyAccumulate(la_${i}, rb_${j}, ${acc(i, j)});`),
  ].join('\n');
  const at = (i: number, j: number) => `base + (row0 + wr * WM + ${i}u * SM) * params.n + col0 + wc * WN + ${j}u * SN`;
  const full = lines(mt, nt, (i, j) => `    ${storeCall(s.syntax, '&out', at(i, j), acc(i, j), 'params.n')};`);
  const edge = lines(mt, nt, (i, j) => [
    `    ${storeCall(s.syntax, '&tc', 'sg * SM * SN', acc(i, j), 'SN')};`,
    '    workgroupBarrier();',
    `    write_edge(sg, tid % SG, base, row0 + wr * WM + ${i}u * SM, col0 + wc * WN + ${j}u * SN);`,
    '    workgroupBarrier();',
  ].join('\n'));
  const body = template.replace('/*@ACC_DECL*/', decl).replace('/*@MMA*/', mma).replace('/*@STORE_FULL*/', full).replace('/*@STORE_EDGE*/', edge);
  const source = Object.entries(defs).map(([k, v]) => `const ${k}: u32 = ${v}u;\n`).join('') + body;
  return s.syntax === 'emulated' ? emulate(source, c) : source;
}

/** The kernel with subgroup matrices emulated in plain WGSL (16 x 16 x 16 only; f16 becomes f32, which holds every f16 value). */
function emulate(source: string, c: SubgroupMatrixConfig): string {
  if (c.M !== 16 || c.N !== 16 || c.K !== 16) throw new Error('the emulated subgroup matrices are 16 x 16 x 16');
  const lib = `struct EmuMat { v: array<f32, 256> }
fn emu_load_ta(off: u32, stride: u32, col_major: bool) -> EmuMat {
  var m: EmuMat;
  for (var r = 0u; r < 16u; r++) { for (var q = 0u; q < 16u; q++) { m.v[r * 16u + q] = select(ta[off + r * stride + q], ta[off + q * stride + r], col_major); } }
  return m;
}
fn emu_load_tb(off: u32, stride: u32, col_major: bool) -> EmuMat {
  var m: EmuMat;
  for (var r = 0u; r < 16u; r++) { for (var q = 0u; q < 16u; q++) { m.v[r * 16u + q] = select(tb[off + r * stride + q], tb[off + q * stride + r], col_major); } }
  return m;
}
fn emu_mma(l: EmuMat, r: EmuMat, acc: EmuMat) -> EmuMat {
  var o = acc;
  for (var i = 0u; i < 16u; i++) { for (var j = 0u; j < 16u; j++) {
    var sum = o.v[i * 16u + j];
    for (var k = 0u; k < 16u; k++) { sum = sum + l.v[i * 16u + k] * r.v[k * 16u + j]; }
    o.v[i * 16u + j] = sum;
  } }
  return o;
}
fn emu_store_out(off: u32, m: EmuMat, stride: u32) { for (var r = 0u; r < 16u; r++) { for (var q = 0u; q < 16u; q++) { out[off + r * stride + q] = m.v[r * 16u + q]; } } }
fn emu_store_tc(off: u32, m: EmuMat, stride: u32) { for (var r = 0u; r < 16u; r++) { for (var q = 0u; q < 16u; q++) { tc[off + r * stride + q] = m.v[r * 16u + q]; } } }
`;
  return lib + source
    .replace(/^[ \t]*\/\/#enable.*$/gm, '')
    .replace(/subgroup_matrix_(left|right|result)<[^>]*>/g, 'EmuMat')
    .replace(/subgroupMatrixMultiplyAccumulate\(/g, 'emu_mma(')
    .replace(/bitcast<vec2<f16>>\(/g, 'unpack2x16float(')
    .replace(/\bf16\b/g, 'f32');
}

/**
 * Whether float16 pairs can be read as words: float16, and the contiguous length, the offset and
 * the batch stride all even (so every pair starts a word).
 */
function pairs(t: TensorRef, contiguous: number, batchStride: number): boolean {
  return t.dtype === 'float16' && contiguous % 2 === 0 && t.offset % 2 === 0 && batchStride % 2 === 0;
}

/** Batched matmul on subgroup matrices into a float32 `out` (offset 0). The caller checks sgmatEligible. */
export function matmulSgmat(g: WebGPUBackend, s: SubgroupMatrixSupport, a: TensorRef, b: TensorRef, out: TensorRef, options: MatmulOptions, given?: SgmatTiles): void {
  const r = out.shape.length;
  const m = out.shape[r - 2], n = out.shape[r - 1];
  const k = options.transA ? a.shape[a.shape.length - 2] : a.shape[a.shape.length - 1];
  const batch = numel(out.shape.slice(0, r - 2));
  const tiles = given ?? sgmatTiles(m, n, batch);
  const bad = checkTiles(tiles, s.config);
  if (bad) throw new Error(`subgroup-matrix tiles: ${bad}`);
  const batchOf = (t: TensorRef) => numel(t.shape.slice(0, t.shape.length - 2));
  const strideA = batchOf(a) === 1 ? 0 : m * k, strideB = batchOf(b) === 1 ? 0 : k * n;
  const transA = !!options.transA, transB = !!options.transB;
  const pairA = pairs(a, transA ? m : k, strideA), pairB = pairs(b, transB ? k : n, strideB);
  const key = `matmul_sgmat ${supportName(s)} ${tiles.bm}x${tiles.bn}x${tiles.bk}/${tiles.wm}x${tiles.wn} ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`;
  const p = g.pipeline(key, () => uniformityHeader(s) + g.shader('dtype') + accessor('a', 0, 'read') + accessor('b', 1, 'read') + sgmatSource(s, tiles, transA, transB, g.shader('matmul_sgmat')), {
    FA: fmtId(a.dtype), FB: fmtId(b.dtype), PAIR_A: pairA ? 1 : 0, PAIR_B: pairB ? 1 : 0,
  });
  const tilesN = Math.ceil(n / tiles.bn), tilesM = Math.ceil(m / tiles.bm);
  const u = new ArrayBuffer(48);
  new Uint32Array(u).set([m, k, n, batch, strideA, strideB, a.offset, b.offset]);
  new Float32Array(u)[8] = options.alpha ?? 1;
  new Uint32Array(u)[9] = tilesN;
  g.dispatch(p, [{ storage: a.storage }, { storage: b.storage }, { storage: out.storage, what: 'matmul output' }], u, tilesM * tilesN * batch);
}

/** A small integer, exact in float16, for element (i, j) of self-test operand `which`. */
const testValue = (which: number, i: number, j: number) => ((i * (7 + which) + j * (3 + 2 * which)) % 9) - 4;

/**
 * Runs the tensor-core matmul on small integer matrices, whose products and sums are exact, in every
 * transpose, with both tile sets and through both stores (whole blocks, and edge blocks), and compares with
 * the exact result computed here. A driver that compiles the kernel but gets it wrong is caught at
 * start, not in training. Returns null when every case agrees, else what went wrong.
 */
export async function sgmatSelfTest(g: WebGPUBackend, s: SubgroupMatrixSupport): Promise<string | null> {
  // Every tile set sgmatTiles() picks, whole blocks and edges, every transpose.
  const cases = [
    { m: 128, k: 64, n: 128, transA: false, transB: false, tiles: SGMAT_TILES },
    { m: 128, k: 64, n: 256, transA: false, transB: true, tiles: SGMAT_WIDE_TILES },
    { m: 100, k: 48, n: 300, transA: true, transB: false, tiles: SGMAT_WIDE_TILES },
    { m: 128, k: 64, n: 64, transA: true, transB: true, tiles: SGMAT_SMALL_TILES },
    { m: 100, k: 48, n: 70, transA: false, transB: false, tiles: SGMAT_SMALL_TILES },
    { m: 100, k: 48, n: 70, transA: false, transB: true, tiles: SGMAT_TILES },
    { m: 100, k: 48, n: 70, transA: true, transB: false, tiles: SGMAT_SMALL_TILES },
    { m: 100, k: 48, n: 70, transA: true, transB: true, tiles: SGMAT_TILES },
  ];
  g.device.pushErrorScope('validation');
  g.device.pushErrorScope('internal');
  const refs: TensorRef[] = [];
  const upload = (rows: number, cols: number, which: number): TensorRef => {
    const data = Float32Array.from({ length: rows * cols }, (_, e) => testValue(which, Math.floor(e / cols), e % cols));
    const f32: TensorRef = { storage: g.alloc(rows * cols * 4, 'temporary', 'subgroup-matrix self-test'), offset: 0, shape: [rows, cols], dtype: 'float32' };
    const f16: TensorRef = { storage: g.alloc(rows * cols * 2, 'temporary', 'subgroup-matrix self-test'), offset: 0, shape: [rows, cols], dtype: 'float16' };
    g.write(f32.storage, data);
    g.cast(f32, f16);
    refs.push(f32, f16);
    return f16;
  };
  let problem: string | null = null;
  try {
    for (const c of cases) {
      const a = c.transA ? upload(c.k, c.m, 0) : upload(c.m, c.k, 0);
      const b = c.transB ? upload(c.n, c.k, 1) : upload(c.k, c.n, 1);
      const out: TensorRef = { storage: g.alloc(c.m * c.n * 4, 'temporary', 'subgroup-matrix self-test'), offset: 0, shape: [c.m, c.n], dtype: 'float32' };
      refs.push(out);
      matmulSgmat(g, s, a, b, out, { transA: c.transA, transB: c.transB }, c.tiles);
      const bytes = await g.read(out.storage, 0, c.m * c.n * 4);
      const got = new Float32Array(bytes.buffer, bytes.byteOffset, c.m * c.n);
      let wrong = 0, first = '';
      for (let i = 0; i < c.m; i++) {
        for (let j = 0; j < c.n; j++) {
          let want = 0;
          for (let p = 0; p < c.k; p++) want += testValue(0, c.transA ? p : i, c.transA ? i : p) * testValue(1, c.transB ? j : p, c.transB ? p : j);
          if (got[i * c.n + j] !== want && wrong++ === 0) first = `${got[i * c.n + j]} for ${want} at (${i}, ${j})`;
        }
      }
      if (wrong) {
        const zeros = got.every((v) => v === 0) ? ', all zeros' : '';
        problem = `subgroup matrices (${supportName(s)}) gave ${first}, ${wrong} of ${c.m * c.n} wrong${zeros}, in a ${c.m}x${c.k}x${c.n} product${c.transA ? ', A transposed' : ''}${c.transB ? ', B transposed' : ''}`;
      }
      if (problem) break;
    }
  } catch (e) {
    problem = `subgroup-matrix self-test failed: ${(e as Error).message.split('\n')[0]}`;
  } finally {
    for (const r of refs) g.free(r.storage);
    const internal = await g.device.popErrorScope();
    const validation = await g.device.popErrorScope();
    const err = validation ?? internal;
    if (err) problem = `subgroup-matrix kernel (${supportName(s)}): ${err.message.split('\n').slice(0, 6).join(' | ')}`;
  }
  return problem;
}
