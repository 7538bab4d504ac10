// bench:peak (bench/peak.ts, bench/live_peak.ts): the replay of a traced training step finds the same peak that
// trainStep reports, and what it lists at that peak adds up to it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { livePeak } from '../../bench/live_peak.js';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { ByteTextDataset } from '../../src/data/byte_text.js';
import { CATEGORIES } from '../../src/backend/memory.js';
import { LanguageModelTrainer, TINY_LLAMA } from '../../src/train/language_model.js';

test('livePeak: the peak equals trainStep\'s; the groups live at it plus what was held before sum to it; the least preset\'s peak lies in backward', async () => {
  const text = 'the quick brown fox jumps over the lazy dog. '.repeat(400);
  for (const config of [{}, { memory: 'least' as const }]) {
    const t = new LanguageModelTrainer(new WasmBackend(), new ByteTextDataset(text), { ...TINY_LLAMA, ...config, batchSize: 4, seqLen: 32, steps: 4, warmupSteps: 1 });
    await t.trainStep();
    const r = await livePeak(t);
    assert.is(r.peak, r.stepPeak, 'the replay reaches trainStep\'s peak');
    const before = CATEGORIES.reduce((a, c) => a + r.before[c], 0);
    assert.is(before + r.groups.reduce((a, g) => a + g.bytes, 0), r.peak, 'held before + live at the peak = the peak');
    assert.ok(r.groups.every((g, i) => i === 0 || r.groups[i - 1].bytes >= g.bytes), 'largest first');
    assert.is(r.around[r.at].kind, 'alloc', 'an allocation reaches the peak');
    if (config.memory) assert.ok(r.groups.some((g) => /backward/.test(g.label)), `least: its peak is in backward (${r.groups.map((g) => g.label).join(', ')})`);
    t.dispose();
    t.backend.destroy();
  }
});

test.run();
