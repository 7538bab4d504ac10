// bench/checkpoint_choices.ts: the hand-written checkpointModules regexes bench:train --checkpoint
// regexes measures beside the planner wrap the modules their names say, on a Llama of 1, 2 and 4
// layers; fastestFitting picks the fastest arm whose peak fits the budget.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fastestFitting, regexChoices } from '../../bench/checkpoint_choices.js';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { Llama } from '../../src/nn/llama.js';
import { checkpointModules } from '../../src/recompute/checkpoint.js';

test('regexChoices: each wraps exactly the modules its name says (1, 2 and 4 layers)', () => {
  const be = new WasmBackend();
  try {
    for (const layers of [1, 2, 4]) {
      const model = new Llama({ vocabSize: 32, hiddenSize: 8, numHiddenLayers: layers, numAttentionHeads: 2, intermediateSize: 16, maxPositionEmbeddings: 8 }, { backend: be });
      const choices = regexChoices(layers);
      assert.is(choices.length, 2 + 2 * (layers - 1), `${layers} layers`);
      assert.is(new Set(choices.map((c) => c.regex)).size, choices.length, 'no choice twice');
      const all = Array.from({ length: layers }, (_, i) => i);
      const expected: Record<string, string[]> = {
        'every mlp': all.map((i) => `layers.${i}.mlp`),
        'every selfAttn': all.map((i) => `layers.${i}.selfAttn`),
      };
      for (let k = 1; k < layers; k++) {
        const first = all.slice(0, k).map((i) => `layers.${i}`), rest = all.slice(k).map((i) => `layers.${i}.mlp`);
        const span = (xs: number[]) => (xs.length === 1 ? `${xs[0]}` : `${xs[0]}-${xs[xs.length - 1]}`);
        expected[`layers ${span(all.slice(0, k))}`] = first;
        expected[`layers ${span(all.slice(0, k))} + mlp ${span(all.slice(k))}`] = [...first, ...rest];
      }
      assert.equal(choices.map((c) => c.name).sort(), Object.keys(expected).sort());
      for (const c of choices) {
        const { wrapped, undo } = checkpointModules(model, new RegExp(c.regex));
        assert.equal([...wrapped].sort(), [...expected[c.name]].sort(), `${layers} layers, ${c.name}: ${c.regex}`);
        undo();
      }
      model.dispose();
    }
  } finally {
    be.destroy();
  }
  assert.throws(() => regexChoices(0), /positive whole number of layers, got 0/);
  assert.throws(() => regexChoices(2.5), /got 2.5/);
});

test('fastestFitting: the smallest median step among the arms that fit; none when none fits', () => {
  const arms = [
    { name: 'a', stepMs: [10, 30, 11], peakBytes: 100 }, // median 11
    { name: 'b', stepMs: [9, 9, 50], peakBytes: 101 }, // faster, but over the budget
    { name: 'c', stepMs: [12, 10.5, 10.6], peakBytes: 90 }, // median 10.6
    { name: 'd', stepMs: [], peakBytes: 1 }, // not measured
  ];
  assert.is(fastestFitting(arms, 100)?.name, 'c');
  assert.is(fastestFitting(arms, 101)?.name, 'b');
  assert.is(fastestFitting(arms, 89), undefined);
});

test.run();
