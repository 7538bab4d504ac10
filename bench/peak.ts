// What is live at the peak of one training step (`npm run bench:peak -- [tiny|medium] [config JSON]`):
// the allocations alive at the step's highest allocated total, grouped by category and label
// (module path / op), largest first, then the allocations and frees just before the peak. A
// diagnostic for the least-memory step (bench:memory gives the totals by category; this says which
// tensors they are). Default: the medium config under {"memory":"least"}; the JSON is merged into
// the TrainConfig (e.g. '{"memory":"least","checkpointChunks":4}'). Text on stdout; nothing timed.
import { CATEGORIES, type MemoryEvent } from '../src/backend/memory.js';
import { WasmBackend } from '../src/backend/wasm/backend.js';
import { ByteTextDataset } from '../src/data/byte_text.js';
import { loadSotuText } from '../src/data/sotu.js';
import { LanguageModelTrainer, MEDIUM_LLAMA, TINY_LLAMA, type TrainConfig } from '../src/train/language_model.js';

const [which = 'medium', json = '{"memory":"least"}'] = process.argv.slice(2);
if (which !== 'tiny' && which !== 'medium') throw new Error(`bench:peak takes tiny or medium, then a TrainConfig JSON; got ${which}`);
const extra = JSON.parse(json) as Partial<TrainConfig>;
const trainer = new LanguageModelTrainer(new WasmBackend(), new ByteTextDataset(loadSotuText({ fromYear: 1990 })), {
  ...(which === 'tiny' ? TINY_LLAMA : MEDIUM_LLAMA), ...extra, steps: 5, warmupSteps: 1,
});
await trainer.trainStep(); // the optimizer state exists from here on
const mem = trainer.backend.memory;
const before = mem.memoryAllocated();
const held = Object.fromEntries(CATEGORIES.map((c) => [c, mem.memoryAllocated(c)]));
mem.startTrace();
await trainer.trainStep();
const { events } = mem.stopTrace();

// Replay the step: the set of live allocations at the highest total.
let now = before, peak = before, at = -1;
const live = new Map<number, MemoryEvent>();
let atPeak: MemoryEvent[] = [];
events.forEach((e, i) => {
  if (e.kind === 'alloc') { now += e.bytes; live.set(e.id, e); } else { now -= e.bytes; live.delete(e.id); }
  if (now > peak) { peak = now; at = i; atPeak = [...live.values()]; }
});
const mib = (x: number): string => (x / 2 ** 20).toFixed(3);
console.log(`${which} ${JSON.stringify(extra)}: peak ${mib(peak)} MiB; held before the step ${mib(before)} MiB (${CATEGORIES.filter((c) => held[c] > 0).map((c) => `${c} ${mib(held[c])}`).join(', ')})`);
console.log('allocated during the step and live at the peak (MiB, count, category label):');
const groups = new Map<string, { n: number; bytes: number }>();
for (const e of atPeak) {
  const g = groups.get(`${e.category} ${e.label}`) ?? { n: 0, bytes: 0 };
  g.n++;
  g.bytes += e.bytes;
  groups.set(`${e.category} ${e.label}`, g);
}
for (const [k, g] of [...groups].sort((x, y) => y[1].bytes - x[1].bytes)) console.log(`${mib(g.bytes).padStart(9)} ${String(g.n).padStart(4)}  ${k}`);
console.log('just before the peak (>> marks it):');
for (const [i, e] of events.slice(Math.max(0, at - 12), at + 3).entries()) console.log(`${i + Math.max(0, at - 12) === at ? '>>' : '  '} ${e.kind.padEnd(5)} ${mib(e.bytes)} ${e.category} ${e.label}`);
