// The module's exports are typed by the bindings the AssemblyScript compiler emits
// (scripts/embed-wasm.mjs turns them into build/wasm_bindings.ts), not by interfaces written by hand.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { wasm } from '../../src/dtype/wasm.js';
import { wasmBase64 } from '../../build/wasm_module.js';

const root = new URL('../../', import.meta.url);
const read = (p: string) => readFileSync(new URL(p, root), 'utf8');

test('the generated bindings declare every function the module exports, and nothing else', () => {
  const module = new WebAssembly.Module(Buffer.from(wasmBase64, 'base64'));
  const exported = WebAssembly.Module.exports(module).filter((e) => e.kind === 'function').map((e) => e.name).sort();
  const declared = [...read('build/wasm_bindings.ts').matchAll(/^ {2}export function (\w+)\(/gm)].map((m) => m[1]).sort();
  assert.ok(exported.length > 40, `${exported.length} exports`);
  assert.equal(declared, exported);
});

test("the compiler's adapter is in use: booleans become 0/1, unsigned results stay unsigned", () => {
  const w = wasm();
  const raw = Object.getPrototypeOf(w) as Record<string, unknown>;
  assert.type(raw.alloc, 'function', 'the raw exports sit behind the adapter');
  assert.is.not(w.alloc, raw.alloc, 'alloc goes through the adapter (it returns usize)');
  assert.is(w.free, raw.free, 'free needs no adapting and is the raw export');
  // softmaxF32 takes `log: bool`: true must give log-softmax through the adapter.
  const p = w.alloc(32);
  try {
    const f = new Float32Array(w.memory.buffer, p, 8);
    f.set([0, Math.log(3), 0, 0]);
    w.softmaxF32(p, p + 16, 1, 4, true);
    const out = new Float32Array(w.memory.buffer, p + 16, 4);
    assert.ok(Math.abs(out[1] - Math.log(0.5)) < 1e-6, `log-softmax ${out[1]}`);
  } finally {
    w.free(p);
  }
});

test('no source file types the module exports by hand', () => {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const f of readdirSync(new URL(dir, root))) {
      const p = `${dir}/${f}`;
      if (statSync(new URL(p, root)).isDirectory()) walk(p);
      else if (p.endsWith('.ts')) files.push(p);
    }
  };
  walk('src');
  for (const f of files) {
    const src = read(f);
    assert.not.match(src, /(kernelExports|wasm)\(\) as /, `${f} casts the module exports`);
    assert.not.match(src, /instance\.exports as/, `${f} casts an instance's exports`);
  }
});

test.run();
