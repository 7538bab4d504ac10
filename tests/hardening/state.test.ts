// Issue #9, item 13: saved optimizer and scheduler state with absurd numbers (a scheduler lastEpoch
// of 1e308 or 2^60, an AdamW step of 2^60, a non-object `extra`) is refused on load, clearly, with
// nothing changed; a checkpoint file carrying them is refused as a whole.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AdamW, cosineWithWarmup, Generator, InvalidArgumentError, Linear, MemfitError, parseSafetensors, serializeSafetensors, StepLR, sum, Tensor, Variable, WasmBackend,
  type RawTensor,
} from '../../src/index.js';
import { loadCheckpoint, saveCheckpoint } from '../../src/io/checkpoint.js';
import { CHECKPOINT_KEY } from '../../src/io/checkpoint.js';
import { MAX_STEP } from '../../src/optim/optimizer.js';
import { invalid, rejectsInvalid } from '../helpers/errors.js';

const w = new WasmBackend();

function setup() {
  const model = new Linear(3, 2, { backend: w });
  const optimizer = new AdamW(model.parameters(), { lr: 0.1 });
  const scheduler = cosineWithWarmup(optimizer, { warmupSteps: 2, totalSteps: 10, minLrRatio: 0.1 });
  const x = new Variable(Tensor.from(w, [1, 2, 3, 4, 5, 6], [2, 3]));
  const loss = sum(model.forward(x));
  loss.backward();
  optimizer.step();
  scheduler.step();
  optimizer.zeroGrad();
  loss.dispose();
  x.dispose();
  return { model, optimizer, scheduler, dispose: () => { optimizer.dispose(); model.dispose(); } };
}


test('a scheduler lastEpoch of 1e308, 2^60, -1, 1.5 or "3" is refused; the scheduler is unchanged', () => {
  const s = setup();
  const good = s.scheduler.stateDict();
  for (const bad of [1e308, 2 ** 60, MAX_STEP + 1, -1, 1.5, '3', null, NaN]) {
    invalid(() => s.scheduler.loadStateDict({ ...good, lastEpoch: bad as never }), /LambdaLR\.loadStateDict: lastEpoch must be a non-negative integer no larger than 2\^40/);
  }
  assert.equal(s.scheduler.stateDict(), good, 'unchanged');
  // What the refused state did: at 2^60 the cosine gave lr 0.098 although the floor is 0.01.
  invalid(() => s.scheduler.loadStateDict({ ...good, baseLrs: [-0.1, 0.1] as never }), /baseLrs must be an array of finite numbers >= 0/);
  s.scheduler.loadStateDict({ ...good, lastEpoch: 5 });
  assert.is(s.scheduler.lastEpoch, 5, 'a sane value loads');
  const step = new StepLR(s.optimizer, 3);
  invalid(() => step.loadStateDict({ ...step.stateDict(), lastEpoch: 2 ** 60 }), /StepLR\.loadStateDict: lastEpoch/);
  s.dispose();
});

test('an AdamW step of 2^60 (where counting stops) is refused; the state is unchanged', async () => {
  const s = setup();
  const sd = s.optimizer.stateDict();
  for (const bad of [2 ** 60, 2 ** 53 + 2, MAX_STEP + 1, -1, 0.5, '1', 1e308]) {
    const state = Object.fromEntries(Object.entries(sd.state).map(([k, v]) => [k, { ...v, step: bad }]));
    invalid(() => s.optimizer.loadStateDict({ ...sd, state } as never), /AdamW\.loadStateDict: state\[0\]\.step must be a non-negative integer no larger than 2\^40/);
  }
  assert.is(s.optimizer.getState(s.model.parameters()[0])!.step, 1, 'unchanged');
  s.dispose();
});

/** The checkpoint at `path` with its JSON part changed by `edit`, written to `out`. */
function tamper(path: string, out: string, edit: (json: Record<string, any>) => void): void {
  const parsed = parseSafetensors(new Uint8Array(readFileSync(path)));
  const entries: Record<string, RawTensor> = {};
  for (const [name, t] of parsed.tensors) entries[name] = { dtype: t.memfit!.dtype, shape: t.memfit!.shape, bytes: t.bytes };
  const json = JSON.parse(parsed.metadata[CHECKPOINT_KEY]);
  edit(json);
  writeFileSync(out, serializeSafetensors(entries, { ...parsed.metadata, [CHECKPOINT_KEY]: JSON.stringify(json) }));
}

test('a checkpoint with absurd step counts or a non-object extra is refused as a whole; nothing changes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'memfit-harden-state-'));
  const s = setup();
  try {
    const path = join(dir, 'ckpt.safetensors');
    await saveCheckpoint(path, { model: s.model, optimizer: s.optimizer, scheduler: s.scheduler, step: 1, extra: { note: 'ok' } });
    const cases: Array<[string, (j: Record<string, any>) => void, RegExp]> = [
      ['step 2^60', (j) => { j.step = 2 ** 60; }, /step 1152921504606847000 is not a non-negative integer no larger than 2\^40/],
      ['step 1e308', (j) => { j.step = 1e308; }, /step 1e\+308 is not a non-negative integer/],
      ['extra 5', (j) => { j.extra = 5; }, /extra must be a JSON object, got 5/],
      ['extra []', (j) => { j.extra = []; }, /extra must be a JSON object, got an array/],
      ['extra "x"', (j) => { j.extra = 'x'; }, /extra must be a JSON object, got "x"/],
      ['scheduler lastEpoch 1e308', (j) => { j.scheduler.lastEpoch = 1e308; }, /lastEpoch must be a non-negative integer no larger than 2\^40/],
      ['scheduler lastEpoch 2^60', (j) => { j.scheduler.lastEpoch = 2 ** 60; }, /lastEpoch must be a non-negative integer no larger than 2\^40/],
      ['AdamW step 2^60', (j) => { for (const k of Object.keys(j.optimizer.numbers)) j.optimizer.numbers[k].step = 2 ** 60; }, /step must be a non-negative integer no larger than 2\^40/],
      ['scheduler "x"', (j) => { j.scheduler = 'x'; }, /scheduler must be a JSON object or null/],
      ['generators []', (j) => { j.generators = []; }, /generators must be a JSON object/],
      ['generator spare Infinity', (j) => { j.generators['memfit.default'].spare = '1e999'; }, /spare must be a number or null/],
      ['generator words', (j) => { j.generators['memfit.default'].words = [1, 2, 3, 2 ** 40]; }, /generator state must be four uint32 words/],
    ];
    const w0 = Array.from(await s.model.weight.data.toArray());
    const sched0 = s.scheduler.stateDict();
    for (const [what, edit, pattern] of cases) {
      const bad = join(dir, 'bad.safetensors');
      tamper(path, bad, edit);
      try {
        await loadCheckpoint(bad, { model: s.model, optimizer: s.optimizer, scheduler: s.scheduler });
        assert.unreachable(`${what}: loaded`);
      } catch (e) {
        assert.instance(e, MemfitError, `${what}: ${String(e)}`);
        assert.match((e as Error).message, pattern, what);
      }
      assert.equal(Array.from(await s.model.weight.data.toArray()), w0, `${what}: model unchanged`);
      assert.equal(s.scheduler.stateDict(), sched0, `${what}: scheduler unchanged`);
      assert.is(s.optimizer.getState(s.model.parameters()[0])!.step, 1, `${what}: optimizer unchanged`);
    }
    // The untouched file still loads.
    assert.equal((await loadCheckpoint(path, { model: s.model, optimizer: s.optimizer, scheduler: s.scheduler })).extra, { note: 'ok' });
    // And saving refuses what loading would.
    for (const extra of [[1], 'x', 5, null]) {
      try {
        await saveCheckpoint(path, { model: s.model, step: 1, extra: extra as never });
        assert.unreachable(`saved extra ${String(extra)}`);
      } catch (e) {
        assert.instance(e, InvalidArgumentError);
        assert.match((e as Error).message, /checkpoint extra must be a plain object of JSON values/);
      }
    }
    try {
      await saveCheckpoint(path, { model: s.model, step: 2 ** 60 });
      assert.unreachable('saved step 2^60');
    } catch (e) {
      assert.match((e as Error).message, /checkpoint step must be a non-negative integer no larger than 2\^40/);
    }
  } finally {
    s.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('saveCheckpoint / loadCheckpoint refuse unknown state keys (a misspelt scheduler is not silently left out) and a state without a model', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'memfit-harden-state-'));
  const s = setup();
  try {
    const path = join(dir, 'ckpt.safetensors');
    await rejectsInvalid(saveCheckpoint(path, { model: s.model, optimizer: s.optimizer, schedular: s.scheduler, step: 1 } as never), /saveCheckpoint state: unknown option "schedular"/);
    await rejectsInvalid(saveCheckpoint(path, { model: null, step: 1 } as never), /saveCheckpoint: state.model must be a Module, got null/);
    assert.not.ok(existsSync(path), 'nothing written');
    await saveCheckpoint(path, { model: s.model, optimizer: s.optimizer, scheduler: s.scheduler, step: 1 });
    const before = s.scheduler.lastEpoch;
    await rejectsInvalid(loadCheckpoint(path, { model: s.model, optimiser: s.optimizer } as never), /loadCheckpoint state: unknown option "optimiser"/);
    await rejectsInvalid(loadCheckpoint(path, null as never), /loadCheckpoint: state must be an object/);
    await rejectsInvalid(loadCheckpoint(path, {} as never), /loadCheckpoint: state.model must be a Module, got undefined/);
    assert.is((await loadCheckpoint(path, { model: s.model, optimizer: s.optimizer, scheduler: s.scheduler, step: 0 } as never)).step, 1);
    assert.is(s.scheduler.lastEpoch, before);
  } finally {
    s.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Generator.setState refuses a non-object, bad words and a non-finite spare', () => {
  const g = new Generator(1);
  const before = g.getState();
  invalid(() => g.setState(null as never), /generator state must be an object/);
  invalid(() => g.setState({ words: [1, 2, 3], spare: null }), /four uint32 words/);
  invalid(() => g.setState({ words: [1, 2, 3, 4], spare: Infinity }), /spare must be a finite number or null, got Infinity/);
  invalid(() => g.setState({ words: [1, 2, 3, 4], spare: 'x' as never }), /got "x"/);
  assert.equal(g.getState(), before, 'unchanged');
});

test.run();
