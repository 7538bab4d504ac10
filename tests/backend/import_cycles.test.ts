// Issue #10: no module of src/backend imports, at run time, a module that imports it back (type-only
// imports do not count: they vanish from the JavaScript). The kernel families import the shared
// pieces (src/backend/wasm/exports.ts, src/backend/webgpu/wgsl.ts), never their backend.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src', import.meta.url));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** The modules a file imports at run time (relative imports; `import type` and all-type braces left out). */
export function runtimeImports(file: string, text = readFileSync(file, 'utf8')): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/^(?:import|export)\s+(?!type\b)([^;]*?)from\s+'(\.[^']+)'/gms)) {
    if (/^\{\s*(?:type\s+\w+(?:\s+as\s+\w+)?\s*,?\s*)+\}\s*$/.test(m[1])) continue;
    const target = normalize(join(dirname(file), m[2].replace(/\.js$/, '.ts')));
    if (existsSync(target)) out.push(target);
  }
  return out;
}

/** Strongly connected components of more than one module (Tarjan). */
export function cycles(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>(), low = new Map<string, number>(), stack: string[] = [], on = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next); low.set(v, next); next++;
    stack.push(v); on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const c: string[] = [];
      for (let w = stack.pop()!; ; w = stack.pop()!) { on.delete(w); c.push(w); if (w === v) break; }
      if (c.length > 1) found.push(c);
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

test('the cycle finder finds a cycle and ignores type-only imports', () => {
  const g = new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]]);
  assert.equal(cycles(g).map((c) => c.sort()), [['a', 'b', 'c']]);
  const file = join(SRC, 'backend/webgpu/matmul.ts');
  const text = "import type { A } from './backend.js';\nimport { type B, type C } from './stages.js';\nimport { d, type E } from './wgsl.js';\nexport { f } from './occupancy.js';\n";
  assert.equal(runtimeImports(file, text).map((f) => relative(SRC, f)), ['backend/webgpu/wgsl.ts', 'backend/webgpu/occupancy.ts']);
});

test('src/backend has no import cycles', () => {
  const graph = new Map(files(SRC).map((f) => [f, runtimeImports(f)]));
  const inBackend = cycles(graph).filter((c) => c.some((f) => relative(SRC, f).startsWith('backend')));
  assert.equal(inBackend.map((c) => c.map((f) => relative(SRC, f)).sort()), []);
});

test.run();
