// What is live at the peak of one training step (`npm run bench:peak -- [tiny|medium] [config JSON]`):
// the allocations alive at the step's highest allocated total, grouped by category and label
// (module path / op), largest first, then the allocations and frees just before the peak. A
// diagnostic for the least-memory step (bench:memory gives the totals by category; this says which
// tensors they are). Default: the medium config under {"memory":"least"}; the JSON is merged into
// the TrainConfig (e.g. '{"memory":"least","checkpointChunks":4}'). Text on stdout; nothing timed.
import { CATEGORIES } from '../src/backend/memory.js';
import { WasmBackend } from '../src/backend/wasm/backend.js';
import { ByteTextDataset } from '../src/data/byte_text.js';
import { loadSotuText } from '../src/data/sotu.js';
import { LanguageModelTrainer, MEDIUM_LLAMA, TINY_LLAMA, type TrainConfig } from '../src/train/language_model.js';
import { livePeak } from './live_peak.js';

const [which = 'medium', json = '{"memory":"least"}'] = process.argv.slice(2);
if (which !== 'tiny' && which !== 'medium') throw new Error(`bench:peak takes tiny or medium, then a TrainConfig JSON; got ${which}`);
const extra = JSON.parse(json) as Partial<TrainConfig>;
const trainer = new LanguageModelTrainer(new WasmBackend(), new ByteTextDataset(loadSotuText({ fromYear: 1990 })), {
  ...(which === 'tiny' ? TINY_LLAMA : MEDIUM_LLAMA), ...extra, steps: 5, warmupSteps: 1,
});
await trainer.trainStep(); // the optimizer state exists from here on
const r = await livePeak(trainer);
const mib = (x: number): string => (x / 2 ** 20).toFixed(3);
const held = CATEGORIES.filter((c) => r.before[c] > 0).map((c) => `${c} ${mib(r.before[c])}`).join(', ');
console.log(`${which} ${JSON.stringify(extra)}: peak ${mib(r.peak)} MiB; held before the step ${mib(CATEGORIES.reduce((a, c) => a + r.before[c], 0))} MiB (${held})`);
console.log('allocated during the step and live at the peak (MiB, count, category label):');
for (const g of r.groups) console.log(`${mib(g.bytes).padStart(9)} ${String(g.count).padStart(4)}  ${g.category} ${g.label}`);
console.log('just before the peak (>> marks it):');
r.around.forEach((e, i) => console.log(`${i === r.at ? '>>' : '  '} ${e.kind.padEnd(5)} ${mib(e.bytes)} ${e.category} ${e.label}`));
trainer.dispose();
