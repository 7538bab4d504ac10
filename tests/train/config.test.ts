// LanguageModelTrainer checks its config before building anything: no unknown keys (a typo would be
// ignored), positive sizes (batchSize 0 made the loss NaN), finite rates, boolean flags.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { ByteTextDataset } from '../../src/data/byte_text.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { LanguageModelTrainer, TINY_LLAMA, type TrainConfig } from '../../src/train/language_model.js';

const w = new WasmBackend();
const dataset = new ByteTextDataset('the quick brown fox jumps over the lazy dog. '.repeat(40));
const small: TrainConfig = { ...TINY_LLAMA, batchSize: 2, seqLen: 16, steps: 2, warmupSteps: 1 };

test('LanguageModelTrainer refuses bad configs clearly, allocating nothing', () => {
  const refused = (config: unknown, re: RegExp) => {
    assert.throws(() => new LanguageModelTrainer(w, dataset, config as TrainConfig), (e: unknown) => e instanceof InvalidArgumentError && re.test((e as Error).message));
  };
  refused({ ...small, batchSize: 0 }, /config: batchSize must be a positive integer, got 0/);
  refused({ ...small, seqLen: 2.5 }, /seqLen must be a positive integer, got 2\.5/);
  refused({ ...small, steps: -1 }, /steps must be a positive integer/);
  refused({ ...small, warmupSteps: -1 }, /warmupSteps must be a non-negative integer/);
  refused({ ...small, lr: 0 }, /lr must be a finite number > 0, got 0/);
  refused({ ...small, lr: NaN }, /lr must be a finite number > 0, got NaN/);
  refused({ ...small, minLrRatio: 2 }, /minLrRatio must be a number in \[0, 1\]/);
  refused({ ...small, maxGradNorm: '1' }, /maxGradNorm must be a finite number >= 0, got "1"/);
  refused({ ...small, seed: -3 }, /seed must be an integer in \[0, 2\^53\)/);
  refused({ ...small, gradientRelease: 'yes' }, /gradientRelease must be a boolean/);
  refused({ ...small, batchsize: 4 }, /unknown option "batchsize"/);
  refused({ ...small, stochasticRouding: true }, /unknown option "stochasticRouding"/);
  refused(null, /config must be an object, got null/);
  assert.is(w.memory.memoryAllocated(), 0);
});

test('a valid config still builds (optional fields given as undefined are fine)', () => {
  const t = new LanguageModelTrainer(w, dataset, { ...small, checkpointModules: undefined });
  assert.is(t.config.batchSize, 2);
  t.model.dispose();
  t.optimizer.dispose();
});

test.run();
