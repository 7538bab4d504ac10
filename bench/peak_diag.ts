import { WasmBackend } from '../src/backend/wasm/backend.js';
import { ByteTextDataset } from '../src/data/byte_text.js';
import { loadSotuText } from '../src/data/sotu.js';
import { LanguageModelTrainer, MEDIUM_LLAMA, TINY_LLAMA } from '../src/train/language_model.js';
const which = process.argv[2] ?? 'medium';
const extra = JSON.parse(process.argv[3] ?? '{"memory":"least"}');
const base = which === 'tiny' ? TINY_LLAMA : MEDIUM_LLAMA;
const dataset = new ByteTextDataset(loadSotuText({ fromYear: 1990 }));
const b = new WasmBackend();
const t = new LanguageModelTrainer(b, dataset, { ...base, ...extra, steps: 5, warmupSteps: 1 });
await t.trainStep();
const mem = b.memory;
const before = mem.memoryAllocated();
mem.startTrace();
const s = await t.trainStep();
const tr = mem.stopTrace();
let cur = before, peak = before, peakSeq = -1;
const live = new Map<number, typeof tr.events[0]>();
let peakLive: typeof tr.events[0][] = [];
for (const e of tr.events) {
  if (e.kind === 'alloc') { cur += e.bytes; live.set(e.id, e); } else { cur -= e.bytes; live.delete(e.id); }
  if (cur > peak) { peak = cur; peakSeq = e.seq; peakLive = [...live.values()]; }
}
const MiB = (x: number) => (x / 2 ** 20).toFixed(3);
console.log(`step ${s.ms.toFixed(0)} ms peak ${MiB(s.peakAllocated)} (replayed ${MiB(peak)}), before ${MiB(before)}`);
console.log('before-step live by category:', Object.fromEntries(['parameter','gradient','optimizer','activation','data','temporary'].map((c) => [c, MiB(mem.memoryAllocated(c as never))])));
const agg = new Map<string, { n: number; bytes: number }>();
for (const e of peakLive) { const k = `${e.category} ${e.label}`; const a = agg.get(k) ?? { n: 0, bytes: 0 }; a.n++; a.bytes += e.bytes; agg.set(k, a); }
for (const [k, a] of [...agg].sort((x, y) => y[1].bytes - x[1].bytes)) console.log(MiB(a.bytes).padStart(8), String(a.n).padStart(4), k);
// what happened just before the peak
const idx = tr.events.findIndex((e) => e.seq === peakSeq);
for (const e of tr.events.slice(Math.max(0, idx - 12), idx + 3)) console.log(e.seq === peakSeq ? '>>' : '  ', e.kind, MiB(e.bytes), e.category, e.label);
