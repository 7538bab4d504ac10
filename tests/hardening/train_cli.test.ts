// Issue #9, items 5 and 11: `memfit train` with careless values and paths (the CLI as a child
// process, dist/node/cli.js). Tiny shapes: every run is a few steps of batch 1 x 8 bytes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { linkSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tensor, WasmBackend } from '../../src/index.js';
import { readSafetensorsHeader, saveSafetensors } from '../../src/io/safetensors_file.js';
import { CHECKPOINT_KEY } from '../../src/io/checkpoint.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'memfit-harden-train-'));
const path = (name: string): string => join(dir, name);
const TINY = ['--backend', 'wasm', '--batch-size', '1', '--seq-len', '8', '--sample', '0'];

function memfit(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['bin/memfit.js', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function oneLineError(stderr: string, pattern: RegExp): void {
  assert.match(stderr, pattern);
  assert.not.match(stderr, /\n\s+at /, 'no stack trace');
  assert.not.match(stderr, /internal error/);
}

async function checkpointStep(p: string): Promise<number> {
  return (JSON.parse((await readSafetensorsHeader(p)).metadata[CHECKPOINT_KEY]) as { step: number }).step;
}

const text = path('corpus.txt');
writeFileSync(text, 'The quick brown fox jumps over the lazy dog. '.repeat(40));

// ---- item 5: --checkpoint over files that are not this run's checkpoints -----------------------------

test('--checkpoint over a foreign safetensors model is refused without --resume; --force overwrites it', async () => {
  const model = path('model.safetensors');
  const w = new WasmBackend();
  const t = Tensor.from(w, [1, 2, 3], [3]);
  await saveSafetensors(model, { 'some.weight': t });
  t.dispose();
  const before = readFileSync(model);
  const r = memfit('train', ...TINY, '--steps', '1', '--checkpoint', model);
  assert.is(r.code, 1, r.stderr);
  oneLineError(r.stderr, /--checkpoint .*model\.safetensors exists and is not a checkpoint of this run \(it is a safetensors file but not a memfit checkpoint\).*--resume.*--force/);
  assert.equal(readFileSync(model), before, 'the model file is untouched');
  const f = memfit('train', ...TINY, '--steps', '1', '--checkpoint', model, '--force');
  assert.is(f.code, 0, f.stderr);
  assert.is(await checkpointStep(model), 1, '--force overwrote it with a checkpoint');
});

test('--checkpoint over any other file (a text file) is refused', () => {
  const notes = path('notes.txt');
  writeFileSync(notes, 'my notes');
  const r = memfit('train', ...TINY, '--steps', '1', '--checkpoint', notes);
  assert.is(r.code, 1);
  oneLineError(r.stderr, /not a checkpoint of this run \(it is not a safetensors file\)/);
  assert.is(readFileSync(notes, 'utf8'), 'my notes');
});

test('--checkpoint equal to --text is refused, even with --force (same path, hard link, symbolic link)', () => {
  linkSync(text, path('corpus.hard'));
  symlinkSync(text, path('corpus.soft'));
  const before = readFileSync(text);
  for (const ckpt of [text, path('corpus.hard'), path('corpus.soft')]) {
    for (const extra of [[], ['--force'], ['--resume']]) {
      const r = memfit('train', ...TINY, '--steps', '1', '--text', text, '--checkpoint', ckpt, ...extra);
      assert.is(r.code, 1, `${ckpt} ${extra}: ${r.stderr}`);
      oneLineError(r.stderr, /is the --text file; a checkpoint would overwrite the training data/);
    }
  }
  assert.equal(readFileSync(text), before, 'the corpus is untouched');
});

test('a checkpoint of this run is overwritten by a fresh run; one of another run is refused', async () => {
  const ckpt = path('run.safetensors');
  let r = memfit('train', ...TINY, '--steps', '2', '--text', text, '--checkpoint', ckpt);
  assert.is(r.code, 0, r.stderr);
  assert.is(await checkpointStep(ckpt), 2);
  r = memfit('train', ...TINY, '--steps', '1', '--text', text, '--checkpoint', ckpt);
  assert.is(r.code, 0, r.stderr);
  assert.is(await checkpointStep(ckpt), 1, 'the same run started again replaced its own checkpoint');
  r = memfit('train', '--backend', 'wasm', '--batch-size', '2', '--seq-len', '8', '--sample', '0', '--steps', '1', '--text', text, '--checkpoint', ckpt);
  assert.is(r.code, 1);
  oneLineError(r.stderr, /not a checkpoint of this run \(it was trained with --batch-size 1, not 2\)/);
  r = memfit('train', ...TINY, '--steps', '1', '--checkpoint', ckpt);
  assert.is(r.code, 1, 'another corpus is another run');
  oneLineError(r.stderr, /not a checkpoint of this run \(it was trained with data .*corpus\.txt, not sotu\)/);
  // another optimizer or precision (the --memory preset's included) is another run: its state is not this run's
  for (const [args, why] of [[['--optimizer', 'sgd'], /--optimizer adamw, not sgd/], [['--memory', 'least'], /--optimizer adamw, not adamw8bit/], [['--precision', 'bf16-mixed'], /--precision 32-true, not bf16-mixed/]] as const) {
    r = memfit('train', ...TINY, '--steps', '1', '--text', text, '--checkpoint', ckpt, ...args);
    assert.is(r.code, 1, args.join(' '));
    oneLineError(r.stderr, new RegExp(`not a checkpoint of this run \\(it was trained with ${why.source}\\)`));
  }
  assert.is(await checkpointStep(ckpt), 1, 'left as it was');
});

test('master weights and stochastic rounding are part of a run: --resume with others is refused, a fresh run does not overwrite', async () => {
  const ckpt = path('weights.safetensors');
  const half = ['--precision', 'bf16-true', '--optimizer', 'adamw8bit'];
  let r = memfit('train', ...TINY, '--steps', '1', '--text', text, '--checkpoint', ckpt, ...half, '--master-weights');
  assert.is(r.code, 0, r.stderr);
  const before = readFileSync(ckpt);
  // the least preset: bf16-true and adamw8bit as well, but stochastic rounding and no master copy
  r = memfit('train', ...TINY, '--steps', '2', '--text', text, '--checkpoint', ckpt, '--memory', 'least', '--resume');
  assert.is(r.code, 1);
  oneLineError(r.stderr, /cannot resume .*weights\.safetensors with no --master-weights: its run was trained with --master-weights/);
  r = memfit('train', ...TINY, '--steps', '2', '--text', text, '--checkpoint', ckpt, ...half, '--stochastic-rounding', '--master-weights', '--resume');
  assert.is(r.code, 1);
  oneLineError(r.stderr, /cannot resume .* with --stochastic-rounding: its run was trained with no --stochastic-rounding/);
  r = memfit('train', ...TINY, '--steps', '1', '--text', text, '--checkpoint', ckpt, ...half);
  assert.is(r.code, 1);
  oneLineError(r.stderr, /not a checkpoint of this run \(it was trained with --master-weights\)/);
  assert.equal(readFileSync(ckpt), before, 'the checkpoint is unchanged');
  r = memfit('train', ...TINY, '--steps', '2', '--text', text, '--checkpoint', ckpt, ...half, '--master-weights', '--resume');
  assert.is(r.code, 0, r.stderr);
  assert.is(await checkpointStep(ckpt), 2);
  // paging is where adamw8bit's state lives, not another state: a paged run resumes it
  r = memfit('train', ...TINY, '--steps', '3', '--text', text, '--checkpoint', ckpt, '--precision', 'bf16-true', '--optimizer', 'adamw8bit-paged', '--master-weights', '--resume');
  assert.is(r.code, 0, r.stderr);
  assert.is(await checkpointStep(ckpt), 3);
});

// ---- item 11: values, non-finite losses, binary text, resume --------------------------------------

test('negative --checkpoint-every / --sample and a non-finite --lr are refused', () => {
  for (const [args, msg] of [
    [['--checkpoint-every', '-1'], /--checkpoint-every must be an integer >= 0, got -1/],
    [['--sample', '-5'], /--sample must be an integer >= 0, got -5/],
    [['--lr', 'inf'], /--lr must be a positive finite number, got Infinity/],
    [['--lr', '0'], /--lr must be a positive finite number/],
  ] as const) {
    const r = memfit('train', '--backend', 'wasm', '--steps', '1', ...args);
    assert.is(r.code, 1, `${args}: ${r.stderr}`);
    oneLineError(r.stderr, msg);
  }
});

test('--lr 1e308: the run stops with a clear message and exit 1, the last good checkpoint is kept', async () => {
  const ckpt = path('explode.safetensors');
  // 30 steps: 3 warm-up steps, the first at lr 0 (a good checkpoint at step 1), then the weights blow up.
  const r = memfit('train', ...TINY, '--steps', '30', '--lr', '1e308', '--text', text, '--checkpoint', ckpt, '--checkpoint-every', '1');
  assert.is(r.code, 1, r.stdout);
  oneLineError(r.stderr, /training stopped at step 2: .* is no longer finite \(the learning rate 1e\+308 may be too high\); the last good checkpoint, .*explode\.safetensors at step 1, is kept/);
  assert.is(await checkpointStep(ckpt), 1, 'the checkpoint holds step 1, not the non-finite weights');
  // Without checkpoints: the loss itself turns NaN and the run stops there.
  const n = memfit('train', ...TINY, '--steps', '30', '--lr', '1e308', '--text', text);
  assert.is(n.code, 1);
  oneLineError(n.stderr, /training stopped at step \d+: the loss is NaN .*no checkpoint was written/);
});

test('a binary --text file is trained on with a warning', () => {
  const bin = path('data.bin');
  const bytes = new Uint8Array(4096);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) & 0xff; // NUL bytes and invalid UTF-8
  writeFileSync(bin, bytes);
  const r = memfit('train', ...TINY, '--steps', '1', '--text', bin, '--json');
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /warning: .*data\.bin does not look like UTF-8 text \(it contains NUL bytes\); training on its raw bytes/);
  assert.is(JSON.parse(r.stdout).steps, 1, 'stdout is still one JSON object');
  const ok = memfit('train', ...TINY, '--steps', '1', '--text', text, '--json');
  assert.is(ok.code, 0);
  assert.not.match(ok.stderr, /warning/, 'no warning for text');
});

test('--resume says what the checkpoint keeps (lr, seed, schedule) and refuses another --seq-len or --batch-size', async () => {
  const ckpt = path('resume.safetensors');
  let r = memfit('train', ...TINY, '--steps', '2', '--lr', '0.002', '--seed', '3', '--text', text, '--checkpoint', ckpt);
  assert.is(r.code, 0, r.stderr);
  const before = readFileSync(ckpt);
  for (const [flag, value, was] of [['--seq-len', '16', '8'], ['--batch-size', '2', '1']]) {
    const args = ['--backend', 'wasm', '--sample', '0', '--steps', '4', '--text', text, '--checkpoint', ckpt, '--resume', '--batch-size', '1', '--seq-len', '8', flag, value];
    r = memfit('train', ...args);
    assert.is(r.code, 1, r.stdout);
    oneLineError(r.stderr, new RegExp(`cannot resume .*resume\\.safetensors with ${flag} ${value}: its run was trained with ${flag} ${was}`));
    assert.equal(readFileSync(ckpt), before, 'the checkpoint is untouched');
  }
  r = memfit('train', ...TINY, '--steps', '4', '--lr', '0.01', '--seed', '5', '--text', text, '--checkpoint', ckpt, '--resume');
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /resumed from .* at step 2/);
  assert.match(r.stdout, /kept the checkpoint's learning rate 0\.002 \(--lr 0\.01 does not apply to a resumed run\)/);
  assert.match(r.stdout, /kept the checkpoint's weights and data order from --seed 3 \(--seed 5 does not apply/);
  assert.match(r.stdout, /the learning-rate schedule now ends at step 4 \(the checkpoint's run planned 2\)/);
  assert.is(await checkpointStep(ckpt), 4);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
