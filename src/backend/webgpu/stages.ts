// Multi-stage shader files: a common part, then `//#stage NAME` sections, each compiled (with the
// dtype and workgroup libraries and the accessors it reads) as its own pipeline with entry 'main';
// `//#part NAME` sections are snippets that stages share (`//#stage NAME +PART`), and
// `//#unroll $v N` ... `//#end` blocks are written out N times (expandUnroll). A `//#enable NAME`
// line anywhere in a pipeline's source (f16, subgroups, ...) becomes `enable NAME;` at its very top,
// before the dtype library (WebGPUBackend.pipeline).
import type { TensorRef } from '../backend.js';
import { numel } from '../shape.js';
import { formatOf, INT32_FORMAT_ID } from '../../dtype/formats.js';

const F32_ID = formatOf('float32').id;
import type { WebGPUBackend } from './backend.js';
import { accessor } from './wgsl.js';

/**
 * The common part of `source` plus stage `name`. A stage starts at a line `//#stage NAME` and runs
 * to the next `//#stage` or `//#part` line; `//#stage NAME +A +B` also takes the shared parts A and
 * B (sections starting `//#part A`), in that order, between the common part and the stage.
 */
export function shaderStage(source: string, name: string, defs: Record<string, number> = {}): string {
  const sections = source.split(/^\/\/#(?=(?:stage|part) )/m);
  const find = (kind: string, n: string): { head: string[]; body: string } => {
    for (const sec of sections.slice(1)) {
      const nl = sec.indexOf('\n');
      const head = (nl < 0 ? sec : sec.slice(0, nl)).trim().split(/\s+/);
      if (head[0] === kind && head[1] === n) return { head: head.slice(2), body: nl < 0 ? '' : sec.slice(nl + 1) };
    }
    throw new Error(`shader ${kind} ${n} not found`);
  };
  const stage = find('stage', name);
  const parts = stage.head.map((p) => {
    if (!p.startsWith('+')) throw new Error(`shader stage ${name}: bad part reference ${p}`);
    return find('part', p.slice(1)).body;
  });
  return expandUnroll(sections[0] + parts.join('') + stage.body, defs);
}

/** Longest `//#unroll` written out; longer ones become a loop. */
export const UNROLL_MAX = 64;

/**
 * Expands `//#unroll $v N` ... `//#end` blocks (not nested): the lines between, N times, with the
 * token $v replaced by 0u, 1u, ... N - 1u; N is a number or a name in `defs`. Constant indices let
 * a compiler keep small arrays in registers (SwiftShader's JIT unrolls nothing itself). Past
 * UNROLL_MAX the block becomes a loop: on SwiftShader, attention at head dim 64 runs ~3x slower
 * with its 64-element row loops as loops (UNROLL_MAX 32) but compiles in 0.5 s instead of 2 s.
 */
export function expandUnroll(src: string, defs: Record<string, number>): string {
  return src.replace(/^[ \t]*\/\/#unroll (\$\w+) (\w+)[ \t]*\n([\s\S]*?)^[ \t]*\/\/#end[ \t]*(?:\n|$)/gm, (_, v: string, n: string, body: string) => {
    const count = /^\d+$/.test(n) ? Number(n) : defs[n];
    if (count === undefined) throw new Error(`//#unroll ${v} ${n}: unknown count ${n}`);
    const token = new RegExp(`\\${v}\\b`, 'g');
    if (count <= UNROLL_MAX) return Array.from({ length: count }, (_, i) => body.replace(token, `${i}u`)).join('');
    const u = `unroll_${v.slice(1)}`;
    return `for (var ${u} = 0u; ${u} < ${count}u; ${u} = ${u} + 1u) {\n${body.replace(token, u)}}\n`;
  });
}

export interface StageOptions {
  /**
   * `const NAME: u32 = value;` lines before the shader (part of the pipeline key): sizes WGSL needs
   * as constants (function-scope array lengths, `//#unroll` counts), where an override will not do.
   */
  readonly defs?: Record<string, number>;
  /**
   * Format ids of inputs (by name), where the stage reads them in a fixed format. float32 and int32
   * inputs then get a reader of one load (same bits as the generic decoder): shaders that read
   * many elements by name (unrolled rows) get much smaller, and compile several times faster on
   * SwiftShader. The shader must read those inputs with that format.
   */
  readonly formats?: Record<string, number>;
}

/** A read accessor as backend.ts accessor() gives, one load for 32-bit formats (float32 0, int32 9). */
export function readAccessor(name: string, binding: number, fmt?: number): string {
  if (fmt !== F32_ID && fmt !== INT32_FORMAT_ID) return accessor(name, binding, 'read');
  const value = fmt === F32_ID ? `bitcast<f32>(${name}[i])` : `f32(bitcast<i32>(${name}[i]))`;
  return `@group(0) @binding(${binding}) var<storage, read> ${name}: array<u32>;
fn ${name}_code(i: u32, f: u32) -> u32 { return ${name}[i]; }
fn ${name}_f32(i: u32, f: u32) -> f32 { return ${value}; }
`;
}

/** Compiles stage `name` of shaders/<file>.wgsl with read accessors for `inputs` at bindings 0... */
export function stagePipeline(
  g: WebGPUBackend, file: string, name: string, inputs: readonly string[], constants: Record<string, number>, options: StageOptions = {},
): GPUComputePipeline {
  const defs = Object.entries(options.defs ?? {});
  for (const [k, v] of defs) if (!(Number.isInteger(v) && v >= 0 && v < 2 ** 32)) throw new Error(`shader const ${k} must be a u32, got ${v}`);
  const formats = options.formats ?? {};
  const fast = inputs.filter((n) => formats[n] === F32_ID || formats[n] === INT32_FORMAT_ID).map((n) => `${n}=${formats[n]}`);
  const key = [`${file}:${name}`, defs.map(([k, v]) => `${k}=${v}`).join(','), fast.join(',')].join(':');
  return g.pipeline(key, () => g.shader('dtype') + g.shader('workgroup') + defs.map(([k, v]) => `const ${k}: u32 = ${v}u;\n`).join('')
    + inputs.map((n, i) => readAccessor(n, i, formats[n])).join('') + shaderStage(g.shader(file), name, options.defs), constants);
}

/** Invocations of a row kernel's 64-wide workgroup: 64 / threads rows of `threads` invocations each (grp_* in shaders/workgroup.wgsl). */
export const ROW_GROUP = 64;

/**
 * Invocations per row for the row kernels (norms, cross-entropy): a power of two, 1..64.
 * - software adapters (SwiftShader, llvmpipe): 1, one invocation per row and no barrier (a barrier
 *   there costs each invocation about a hundred loop iterations: a 256-wide workgroup per row made
 *   rmsNorm over 512 x 64 take 340 ms, one invocation per row takes a few);
 * - hardware: enough invocations that each reads about 8 elements, at most 64 (64 / threads rows
 *   a workgroup, coalesced reads, few idle invocations for short rows).
 */
export function rowThreads(adapter: { readonly software: boolean }, cols: number): number {
  if (adapter.software) return 1;
  let t = 1;
  while (t < ROW_GROUP && t * 8 < cols) t *= 2;
  return t;
}

/** Workgroups for `rows` rows at `threads` invocations a row. */
export function rowGroups(rows: number, threads: number): number {
  return Math.ceil(rows / (ROW_GROUP / threads));
}

/** Checks a row-thread override (tests force the hardware layout on software adapters). */
export function checkRowThreads(threads: number): number {
  if (!(Number.isInteger(threads) && threads >= 1 && threads <= ROW_GROUP && (threads & (threads - 1)) === 0)) {
    throw new Error(`row threads must be a power of two in [1, ${ROW_GROUP}], got ${threads}`);
  }
  return threads;
}

/** A float32 tensor to write `out` into: out itself, or a temporary that done() casts into out and frees. */
export function f32Target(g: WebGPUBackend, out: TensorRef, label: string): { ref: TensorRef; done(): void } {
  if (out.dtype === 'float32') return { ref: out, done() {} };
  const ref: TensorRef = { storage: g.alloc(Math.max(numel(out.shape), 1) * 4, 'temporary', label), offset: 0, shape: out.shape, dtype: 'float32' };
  return { ref, done() { g.cast(ref, out); g.free(ref.storage); } };
}
