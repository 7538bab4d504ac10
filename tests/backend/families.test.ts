// The kernel families' case table (scripts/family-cases.ts) at small sizes: every family on
// SwiftShader against wasm, under the family's tolerance rules; the families together call every
// kernel of the Backend interface (a new kernel without conformance cases fails here); and the
// comparison rules themselves fail where they must.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpuBackend, WasmBackend, type WebGPUBackend } from '../helpers/backends.js';
import type { Backend } from '../../src/backend/backend.js';
import { KERNELS } from '../../src/backend/meta.js';
import { FAMILIES, compareCase, compareValues, runCase } from '../../scripts/family-cases.js';

const w = new WasmBackend();
let g: WebGPUBackend;

test.before(async () => {
  g = await gpuBackend();
});
test.after(() => g.destroy());

test('every kernel of the Backend interface is called by some family\'s small cases; family names are unique', async () => {
  const called = new Map<string, Set<string>>();
  for (const f of FAMILIES) {
    for (const c of f.cases('small')) {
      const recording = new Proxy(w, {
        get(target, prop) {
          const v = Reflect.get(target, prop, target) as unknown;
          if (typeof v !== 'function') return v;
          if ((KERNELS as readonly (string | symbol)[]).includes(prop)) {
            if (!called.has(prop as string)) called.set(prop as string, new Set());
            called.get(prop as string)!.add(f.family);
          }
          return (v as (...a: unknown[]) => unknown).bind(target);
        },
      }) as Backend;
      await runCase(recording, c);
    }
  }
  const missing = KERNELS.filter((k) => !called.has(k));
  assert.equal(missing, [], `kernels without conformance cases: ${missing.join(', ')}`);
  const names = FAMILIES.map((f) => f.family);
  assert.equal(new Set(names).size, names.length, 'family names are unique');
});

test('compareValues: exact, close, bound and mismatch rules pass and fail where they must', () => {
  const a = Float32Array.of(1, NaN, 3), b = Float32Array.of(1, NaN, 3.0001);
  assert.ok(!compareValues(a, b, { kind: 'exact' }).ok);
  assert.ok(compareValues(a, a.slice(), { kind: 'exact' }).ok, 'NaN matches NaN');
  assert.ok(compareValues(a, b, { kind: 'close', rel: 1e-4 }).ok);
  assert.ok(!compareValues(a, b, { kind: 'close', rel: 1e-5 }).ok);
  assert.ok(compareValues(a, b, { kind: 'close', rel: 0, absOfMax: 1e-4 }).ok, 'absOfMax: 1e-4 of the largest value (3)');
  assert.ok(!compareValues(a, Float32Array.of(1, 2, 3), { kind: 'close', rel: 1 }).ok, 'NaN against a number fails');
  assert.ok(!compareValues(Float32Array.of(Infinity), Float32Array.of(-Infinity), { kind: 'close', rel: 1 }).ok);
  assert.ok(compareValues(a, b, { kind: 'bound', bound: (i) => (i === 2 ? 2e-4 : 0) }).ok);
  assert.ok(!compareValues(a, b, { kind: 'bound', bound: () => 0 }).ok);
  const codes = Uint8Array.from({ length: 1000 }, (_, i) => i & 255), one = codes.slice(), two = codes.slice();
  one[5] ^= 1;
  two[5] ^= 1; two[6] ^= 1;
  assert.ok(compareValues(one, codes, { kind: 'mismatches', maxFraction: 1e-3 }).ok);
  assert.ok(!compareValues(two, codes, { kind: 'mismatches', maxFraction: 1e-3 }).ok);
  assert.ok(!compareValues(a, a.subarray(1), { kind: 'exact' }).ok, 'lengths differ');
});

for (const f of FAMILIES) {
  test(`${f.family}: every small case agrees on SwiftShader and wasm`, async () => {
    const cases = f.cases('small');
    assert.ok(cases.length > 0);
    const failed: string[] = [];
    for (const c of cases) {
      const r = await compareCase(g, w, c);
      if (!r.ok) failed.push(`${c.name}: ${r.detail}`);
    }
    assert.equal(failed, [], failed.join('\n'));
  });
}

test.run();
