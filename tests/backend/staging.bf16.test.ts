// The wasm backend keeps no whole float32 copy of bfloat16 operands where it need not: matmul reads
// bfloat16 A and B in place (the packing widens them exactly), attention stages a group of batch
// entries at a time, a cast to float32 decodes straight into its output (at the output's offset),
// and an embedding of a bfloat16 table gives bfloat16 rows. Each is bit-identical to computing on
// float32 copies, at 1 and 3 threads; the memory traces show what is no longer allocated.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Variable, tidy, functional } from '../../src/index.js';
import type { MemoryTrace } from '../../src/backend/memory.js';
import { rand } from '../helpers/values.js';

const backends: WasmBackend[] = [];
test.before(async () => {
  for (const threads of [1, 3]) backends.push(await WasmBackend.create(`bf16 ${threads}`, { threads, parallelMinWork: 1 }));
});
test.after(() => { for (const b of backends) b.destroy(); });

const bitsOf = async (t: Tensor): Promise<number[]> => {
  const a = await t.to('float32').toArray();
  return [...new Uint32Array(a.buffer, a.byteOffset, a.length)];
};
/** bfloat16 values (rounded from seeded random floats) as a bfloat16 tensor and as its exact float32 copy. */
function pair(b: WasmBackend, shape: number[], seed: number): [Tensor, Tensor] {
  const n = shape.reduce((x, y) => x * y, 1);
  const f = Tensor.from(b, rand(n, seed), shape);
  const h = f.to('bfloat16');
  f.dispose();
  return [h, h.to('float32')];
}
const stagedBytes = (t: MemoryTrace): number[] => t.events.filter((e) => e.kind === 'alloc' && /stage-in/.test(e.label)).map((e) => e.bytes);

test('matmul reads bfloat16 operands in place: bit-identical to their float32 copies (transposes, batches, edges, row bands), nothing staged', async () => {
  for (const b of backends) {
    // [batch, m, k, n]; the 2000-row case takes the row-band path (bfloat16 A, shared B, 2000 x 72 > 2 blocks).
    for (const [batch, m, k, n] of [[1, 5, 7, 9], [3, 13, 17, 11], [1, 2000, 72, 40], [2, 33, 260, 24]] as const) {
      for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
        if (m === 2000 && tA) continue;
        const [ah, af] = pair(b, tA ? [batch, k, m] : [batch, m, k], m + k);
        const [bh, bf] = pair(b, tB ? [batch, n, k] : [batch, k, n], n + 3 * k);
        const opts = { transA: tA, transB: tB };
        for (const [x, y, what] of [[ah, bh, 'both'], [ah, bf, 'A'], [af, bh, 'B']] as const) {
          const { result, trace } = b.memory.memoryTrace(() => x.matmul(y, opts));
          const ref = af.matmul(bf, opts);
          assert.equal(await bitsOf(result), await bitsOf(ref), `${b.threads} threads, ${batch}x${m}x${k}x${n} tA=${tA} tB=${tB}, bfloat16 ${what}`);
          assert.equal(stagedBytes(trace), [], `${what}: no float32 copy of a bfloat16 operand`);
          result.dispose(); ref.dispose();
        }
        for (const t of [ah, af, bh, bf]) t.dispose();
      }
    }
  }
});

test('attention on bfloat16 stages one group of batch entries at a time; forward and backward bit-identical to float32 inputs rounded the same way', async () => {
  for (const b of backends) {
    const [B, H, T, D] = [4, 2, 6, 8];
    const q = pair(b, [B, H, T, D], 1), k = pair(b, [B, H, T, D], 2), v = pair(b, [B, H, T, D], 3), dout = pair(b, [B, H, T, D], 4);
    const run = (i: 0 | 1) => {
      const out = Tensor.empty(b, [B, H, T, D], { dtype: i === 0 ? 'bfloat16' : 'float32' });
      const lse = Tensor.empty(b, [B, H, T]);
      b.attention(q[i], k[i], v[i], out, lse, null, 0.3);
      const outH = i === 0 ? out : out.to('bfloat16'); // the float32 run's output rounded once, as the bfloat16 run rounds it
      const g = [0, 1, 2].map(() => Tensor.empty(b, [B, H, T, D]));
      b.attentionBackward(dout[i], q[i], k[i], v[i], outH, lse, null, 0.3, g[0], g[1], g[2]);
      return { out: outH, lse, g, extra: i === 0 ? [] : [out] };
    };
    const { result: h, trace } = b.memory.memoryTrace(() => run(0));
    const f = run(1);
    assert.equal(await bitsOf(h.out), await bitsOf(f.out), `${b.threads} threads: out`);
    assert.equal(await bitsOf(h.lse), await bitsOf(f.lse), 'lse');
    for (let i = 0; i < 3; i++) assert.equal(await bitsOf(h.g[i]), await bitsOf(f.g[i]), `gradient ${i}`);
    const group = Math.min(B, Math.ceil((2 * b.threads) / H));
    const entry = H * T * D * 4;
    const staged = stagedBytes(trace);
    assert.ok(staged.length > 0 && staged.every((x) => x <= group * entry), `${b.threads} threads: staging copies ${staged.join(', ')} hold at most ${group} batch entries (${group * entry} bytes)`);
    for (const t of [...q, ...k, ...v, ...dout, h.out, h.lse, ...h.g, f.out, f.lse, ...f.g, ...f.extra]) t.dispose();
  }
});

test('a cast to float32 decodes into its output at the output\'s offset, with no staging copy', async () => {
  const b = backends[0];
  const [h] = pair(b, [2, 5], 7);
  const out = Tensor.from(b, new Float32Array(20).fill(-1), [4, 5]);
  const rows = out.slice(1, 3);
  const { trace } = b.memory.memoryTrace(() => b.cast(h, rows));
  assert.equal(stagedBytes(trace), []);
  const all = await out.toArray(), ref = await h.to('float32').toArray();
  assert.equal([...all.slice(0, 5)], [-1, -1, -1, -1, -1]);
  assert.equal([...all.slice(5, 15)], [...ref]);
  assert.equal([...all.slice(15)], [-1, -1, -1, -1, -1]);
  for (const t of [h, rows, out]) t.dispose();
});

test('embedding: a bfloat16 (or float16) table gives rows in its dtype, an 8-bit table float32 rows; values exact', async () => {
  const b = backends[0];
  const ids = Tensor.from(b, Int32Array.of(2, 0, 3), [3], { dtype: 'int32' });
  const table = Tensor.from(b, rand(20, 5), [4, 5]);
  for (const [dtype, out] of [['bfloat16', 'bfloat16'], ['float16', 'float16'], ['float8_e4m3fn', 'float32'], ['float32', 'float32']] as const) {
    const t = new Variable(table.to(dtype));
    const y = tidy(() => functional.embedding(ids, t));
    assert.is(y.data.dtype, out, dtype);
    const vals = await y.data.to('float32').toArray(), tv = await t.data.to('float32').toArray();
    assert.equal([...vals], [...tv.slice(10, 15), ...tv.slice(0, 5), ...tv.slice(15, 20)], dtype);
    y.dispose(); t.dispose();
  }
  ids.dispose(); table.dispose();
});

test.run();
