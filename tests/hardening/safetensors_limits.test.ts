// Issue #9, item 8: a safetensors header of 1.5 million (empty) tensors took 23 s to parse, 43 s
// and 1.5-1.9 GB to load. The tensor count (and shape rank) are capped, checked while parsing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError, parseSafetensors, SafetensorsError, serializeSafetensors, WasmBackend } from '../../src/index.js';
import { loadSafetensors } from '../../src/io/safetensors_file.js';
import { MAX_RANK, MAX_TENSORS } from '../../src/io/safetensors.js';

/** A safetensors file whose header lists `n` empty F32 tensors (and nothing else). */
function emptyTensors(n: number, extra = ''): Uint8Array {
  const parts: string[] = [];
  for (let i = 0; i < n; i++) parts.push(`"t${i}":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`);
  const body = new TextEncoder().encode(`{${extra}${parts.join(',')}}`);
  const bytes = new Uint8Array(8 + body.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(body.length), true);
  bytes.set(body, 8);
  return bytes;
}

function refused(fn: () => unknown, pattern: RegExp): void {
  try {
    fn();
    assert.unreachable('parsed');
  } catch (e) {
    assert.instance(e, SafetensorsError, String(e));
    assert.match((e as Error).message, pattern);
  }
}

test('the reported file: 1.5 million empty tensors in an 85 MB header is refused with a clear error', async () => {
  const bytes = emptyTensors(1_500_000);
  assert.ok(bytes.length > 80e6 && bytes.length < 100e6, `under the header limit: ${bytes.length}`);
  refused(() => parseSafetensors(bytes), new RegExp(`more than ${MAX_TENSORS + 1} entries \\(memfit reads at most ${MAX_TENSORS} tensors a file`));
  const dir = mkdtempSync(join(tmpdir(), 'memfit-harden-st-'));
  try {
    const path = join(dir, 'many.safetensors');
    writeFileSync(path, bytes);
    const w = new WasmBackend();
    try {
      await loadSafetensors(path, w);
      assert.unreachable('loaded');
    } catch (e) {
      assert.instance(e, SafetensorsError);
      assert.match((e as Error).message, /many\.safetensors: header is not valid JSON: an object with more than/);
    }
    assert.is(w.memory.memoryAllocated(), 0, 'nothing was allocated');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('exactly MAX_TENSORS tensors (plus __metadata__) still load; one more does not', () => {
  const ok = parseSafetensors(emptyTensors(MAX_TENSORS, '"__metadata__":{"a":"b"},'));
  assert.is(ok.tensors.size, MAX_TENSORS);
  refused(() => parseSafetensors(emptyTensors(MAX_TENSORS + 1, '"__metadata__":{"a":"b"},')), /more than 100001 entries/);
});

test('a shape of rank above MAX_RANK is refused when read and when written', () => {
  const shape = new Array(MAX_RANK + 1).fill(1);
  const body = new TextEncoder().encode(`{"x":{"dtype":"U8","shape":[${shape.join(',')}],"data_offsets":[0,1]}}`);
  const bytes = new Uint8Array(8 + body.length + 1);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(body.length), true);
  bytes.set(body, 8);
  refused(() => parseSafetensors(bytes), new RegExp(`an array longer than ${MAX_RANK}`));
  assert.throws(() => serializeSafetensors({ x: { dtype: 'float8_e4m3fn', shape, bytes: new Uint8Array(1) } }), (e: unknown) => e instanceof InvalidArgumentError && /rank 65 is above the 64/.test((e as Error).message));
  const fine = new Array(MAX_RANK).fill(1);
  assert.equal(parseSafetensors(serializeSafetensors({ x: { dtype: 'float8_e4m3fn', shape: fine, bytes: new Uint8Array(1) } })).tensors.get('x')!.shape, fine);
});

test.run();
