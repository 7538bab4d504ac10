// Model folders (config.json + model.safetensors) between memfit and PyTorch: the PyTorch-written
// fixtures load, and saving them again writes model.safetensors byte for byte as PyTorch's
// safetensors wrote it (same keys, dtypes - num_batches_tracked as I64 - order, metadata) with the
// same config fields; a model trained here round-trips; transformers' extra keys (pooler,
// next-sentence head, position_ids, LayerNorm gamma/beta) load; files are never overwritten
// unasked. With MEMFIT_WRITE_FOLDERS=dir the memfit-written folders and memfit's logits are kept
// there for `python3 scripts/make-model-fixtures.py --check dir` (PyTorch loads them strictly).
import { mkdtempSync, readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Variable, noGrad } from '../../src/autograd/index.js';
import { saveModelFolder, loadModelFolder } from '../../src/io/model_folder_file.js';
import { modelFromFolderFiles, modelToFolderFiles, type PretrainedModel } from '../../src/io/model_folder.js';
import { tensorsToSafetensors, parseSafetensors } from '../../src/io/safetensors.js';
import { serializeSafetensors } from '../../src/io/safetensors.js';
import { Llama } from '../../src/nn/llama.js';
import { BertForMaskedLM } from '../../src/nn/bert.js';
import { ResNet, resnet } from '../../src/nn/resnet.js';
import { SGD } from '../../src/optim/index.js';
import { Generator } from '../../src/random.js';
import { loadModelFixture, MODEL_FIXTURES } from '../helpers/model_fixtures.js';
import { invalid, rejectsInvalid } from '../helpers/errors.js';
import { ModelFolderError } from '../../src/io/model_folder.js';

const w = new WasmBackend();
const FIXTURES = ['resnet18_w8', 'resnet50_w8', 'llama_tiny', 'bert_tiny'];
const tmp = () => mkdtempSync(join(tmpdir(), 'memfit-folder-'));

/** Logits of `model` in eval mode on the fixture's inputs (and those inputs, for the Python check). */
function evalLogits(name: string, model: PretrainedModel): { logits: Variable; inputs: Record<string, Tensor> } {
  const fx = loadModelFixture(name);
  const t = (k: string, int: boolean) => Tensor.from(w, fx.ref.get(k)!.values, fx.ref.get(k)!.shape, { dtype: int ? 'int32' : 'float32', category: 'data' });
  model.eval();
  return noGrad(() => {
    if (model instanceof ResNet) {
      const input = t('input', false);
      return { logits: model.forward(new Variable(input)), inputs: { input } };
    }
    if (model instanceof Llama) {
      const inputs = { input_ids: t('input_ids', true), attention_mask: t('attention_mask', true) };
      return { logits: model.forward(inputs.input_ids, { attentionMask: inputs.attention_mask }), inputs };
    }
    const inputs = { input_ids: t('input_ids', true), token_type_ids: t('token_type_ids', true), attention_mask: t('attention_mask', true) };
    return { logits: model.forward(inputs.input_ids, { tokenTypeIds: inputs.token_type_ids, attentionMask: inputs.attention_mask }), inputs };
  });
}

/** One SGD step (lr 0.1) on the fixture's batch, in train mode. */
function trainStep(name: string, model: PretrainedModel): void {
  const fx = loadModelFixture(name);
  const t = (k: string, int: boolean) => Tensor.from(w, fx.ref.get(k)!.values, fx.ref.get(k)!.shape, { dtype: int ? 'int32' : 'float32', category: 'data' });
  model.train();
  const made: Tensor[] = [];
  const T = (k: string, int: boolean) => { const x = t(k, int); made.push(x); return x; };
  const loss = model instanceof ResNet ? model.loss(new Variable(T('input', false)), T('labels', true))
    : model instanceof Llama ? model.loss(T('input_ids', true), T('targets', true), { attentionMask: T('attention_mask', true) })
      : model.loss(T('input_ids', true), T('labels', true), { tokenTypeIds: T('token_type_ids', true), attentionMask: T('attention_mask', true) });
  loss.backward();
  new SGD(model.parameters(), { lr: 0.1 }).step();
  model.zeroGrad();
  loss.dispose();
  for (const x of made) x.dispose();
}

for (const name of FIXTURES) {
  test(`${name}: the PyTorch folder loads; saved again, model.safetensors is PyTorch's file byte for byte, config.json has its fields`, async () => {
    const dir = join(MODEL_FIXTURES, name);
    const loaded = await loadModelFolder(dir, { backend: w });
    const out = join(tmp(), name);
    await saveModelFolder(out, loaded.model);
    assert.ok(Buffer.compare(readFileSync(join(out, 'model.safetensors')), readFileSync(join(dir, 'model.safetensors'))) === 0, 'model.safetensors differs');
    const ours = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')), theirs = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    for (const [k, v] of Object.entries(theirs)) if (k in ours) assert.equal(ours[k], v, `config.json ${k}`);
    const kind = loaded.kind;
    const expected = kind === 'resnet' ? ['block', 'layers', 'num_classes', 'width'] : ['vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size'];
    for (const k of expected) assert.ok(k in ours, `config.json has ${k}`);
    if (process.env.MEMFIT_WRITE_FOLDERS) { // for scripts/make-model-fixtures.py --check
      const keep = join(process.env.MEMFIT_WRITE_FOLDERS, name);
      trainStep(name, loaded.model); // weights PyTorch has never seen
      await saveModelFolder(keep, loaded.model, { overwrite: true });
      const { logits, inputs } = evalLogits(name, loaded.model);
      writeFileSync(join(keep, 'memfit_outputs.safetensors'), await tensorsToSafetensors({ ...inputs, logits: logits.data }));
      logits.dispose();
      for (const t of Object.values(inputs)) t.dispose();
    }
    loaded.model.dispose();
  });
}

if (process.env.MEMFIT_WRITE_FOLDERS) {
  test('full-size ResNet-18 folder for the PyTorch check (torchvision.models.resnet18 loads it)', async () => {
    const m = resnet('resnet18', { numClasses: 10 }, { backend: w, generator: new Generator(18) });
    const keep = join(process.env.MEMFIT_WRITE_FOLDERS!, 'resnet18_full');
    await saveModelFolder(keep, m, { overwrite: true });
    const input = Tensor.from(w, new Float32Array(3 * 64 * 64).map((_, i) => Math.sin(i * 0.01)), [1, 3, 64, 64], { category: 'data' });
    m.eval();
    const logits = noGrad(() => m.forward(new Variable(input)));
    writeFileSync(join(keep, 'memfit_outputs.safetensors'), await tensorsToSafetensors({ input, logits: logits.data }));
    logits.dispose(); input.dispose(); m.dispose();
  });
}

test('a model trained here round-trips through a folder: same weights, same logits; I64 and tied keys as PyTorch stores them', async () => {
  const m = new ResNet({ block: 'basic', layers: [1, 1, 1, 1], width: 4, numClasses: 5 }, { backend: w, generator: new Generator(5) });
  const opt = new SGD(m.parameters(), { lr: 0.1 });
  const x = Variable.from(w, new Float32Array(2 * 3 * 32 * 32).map((_, i) => Math.cos(i * 0.11)), [2, 3, 32, 32]);
  const labels = Tensor.from(w, [1, 4], [2], { dtype: 'int32' });
  const loss = m.loss(x, labels);
  loss.backward();
  opt.step();
  loss.dispose();
  const dir = tmp();
  await saveModelFolder(dir, m);
  const header = parseSafetensors(new Uint8Array(readFileSync(join(dir, 'model.safetensors')))).tensors;
  assert.is(header.get('bn1.num_batches_tracked')!.dtype, 'I64');
  assert.is(header.get('layer2.0.downsample.0.weight')!.dtype, 'F32');
  const back = await loadModelFolder(dir, { backend: w });
  assert.is(back.kind, 'resnet');
  for (const [k, t] of Object.entries(m.stateDict())) assert.equal([...await back.model.stateDict()[k].toArray()], [...await t.toArray()], k);
  m.eval();
  const a = noGrad(() => m.forward(x)), b = noGrad(() => (back.model as ResNet).eval().forward(x));
  assert.equal([...await a.data.toArray()], [...await b.data.toArray()]);
  // a tied Llama stores the embedding once (no lm_head.weight), as save_pretrained does
  const tied = new Llama({ vocabSize: 16, hiddenSize: 8, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 12, maxPositionEmbeddings: 8, tieWordEmbeddings: true }, { backend: w });
  const files = await modelToFolderFiles(tied);
  const keys = [...parseSafetensors(files.weights).tensors.keys()];
  assert.ok(keys.includes('model.embed_tokens.weight') && !keys.includes('lm_head.weight'), keys.join());
  assert.is(JSON.parse(files.config).tie_word_embeddings, true);
  const again = modelFromFolderFiles(files, { backend: w });
  assert.equal([...await again.model.stateDict()['embedTokens.weight'].toArray()], [...await tied.stateDict()['embedTokens.weight'].toArray()]);
  for (const t of [a, b, x]) t.dispose();
  for (const mm of [m, back.model, tied, again.model]) mm.dispose();
  labels.dispose();
});

test('transformers checkpoints with heads memfit lacks load: pooler, next-sentence head, position_ids, gamma/beta, the tied decoder stored twice', async () => {
  const fx = loadModelFixture('bert_tiny');
  const { tensors } = { tensors: parseSafetensors(fx.files.weights).tensors };
  const entries: Record<string, { dtype: 'float32'; shape: number[]; bytes: Uint8Array }> = {};
  for (const [k, t] of tensors) {
    const key = k.replace(/LayerNorm\.weight$/, 'LayerNorm.gamma').replace(/LayerNorm\.bias$/, 'LayerNorm.beta');
    entries[key] = { dtype: 'float32', shape: [...t.shape], bytes: t.bytes.slice() };
  }
  const f32 = (shape: number[]) => ({ dtype: 'float32' as const, shape, bytes: new Uint8Array(shape.reduce((a, b) => a * b, 4)) });
  entries['bert.pooler.dense.weight'] = f32([32, 32]);
  entries['bert.pooler.dense.bias'] = f32([32]);
  entries['cls.seq_relationship.weight'] = f32([2, 32]);
  entries['cls.predictions.decoder.weight'] = entries['bert.embeddings.word_embeddings.weight'];
  const weights = serializeSafetensors(entries);
  const loaded = modelFromFolderFiles({ config: fx.files.config, weights }, { backend: w });
  assert.equal(loaded.droppedKeys.sort(), ['bert.pooler.dense.bias', 'bert.pooler.dense.weight', 'cls.predictions.decoder.weight', 'cls.seq_relationship.weight']);
  const ref = modelFromFolderFiles(fx.files, { backend: w });
  for (const [k, t] of Object.entries(ref.model.stateDict())) assert.equal([...await loaded.model.stateDict()[k].toArray()], [...await t.toArray()], k);
  loaded.model.dispose();
  ref.model.dispose();
});

test('errors: existing files are not replaced unasked, unknown configs and missing keys are named, nothing half-written', async () => {
  const dir = tmp();
  writeFileSync(join(dir, 'config.json'), '{"mine": true}');
  const m = new ResNet({ block: 'basic', layers: [1, 1, 1, 1], width: 2, numClasses: 2 }, { backend: w });
  let threw = false;
  try { await saveModelFolder(dir, m); } catch (e) { threw = /exists/.test((e as Error).message); }
  assert.ok(threw);
  assert.is(readFileSync(join(dir, 'config.json'), 'utf8'), '{"mine": true}');
  assert.equal(readdirSync(dir), ['config.json']);
  await saveModelFolder(dir, m, { overwrite: true });
  assert.ok(existsSync(join(dir, 'model.safetensors')));
  const fx = loadModelFixture('resnet18_w8');
  assert.throws(() => modelFromFolderFiles({ config: '{"model_type": "gpt2"}', weights: fx.files.weights }, { backend: w }), /unknown model/);
  assert.throws(() => modelFromFolderFiles({ config: 'not json', weights: fx.files.weights }, { backend: w }), /not valid JSON/);
  const parsed = parseSafetensors(fx.files.weights).tensors;
  const partial: Record<string, { dtype: 'float32'; shape: number[]; bytes: Uint8Array }> = {};
  for (const [k, t] of parsed) if (k !== 'fc.bias' && t.dtype === 'F32') partial[k] = { dtype: 'float32', shape: [...t.shape], bytes: t.bytes.slice() };
  assert.throws(() => modelFromFolderFiles({ config: fx.files.config, weights: serializeSafetensors(partial) }, { backend: w }), /missing keys: .*"fc.bias"/);
  let e: unknown;
  try { await loadModelFolder(join(dir, 'nope'), { backend: w }); } catch (x) { e = x; }
  assert.match(String(e), /config.json: cannot read/);
  m.dispose();
});

test('bad arguments (ModelFolderError) and unknown option keys (InvalidArgumentError) are refused naming them, before any work', async () => {
  const dir = tmp();
  const m = new ResNet({ block: 'basic', layers: [1, 1, 1, 1], width: 2, numClasses: 2 }, { backend: w });
  await rejectsInvalid(saveModelFolder(dir, m, { overWrite: true } as never), /saveModelFolder: unknown option "overWrite"/);
  await rejectsInvalid(saveModelFolder(dir, m, { overwrite: 'yes' } as never), /overwrite must be a boolean, got "yes"/, ModelFolderError);
  await rejectsInvalid(saveModelFolder(undefined as never, m), /saveModelFolder: dir must be a non-empty string .*got undefined/, ModelFolderError);
  const file = join(dir, 'a-file');
  writeFileSync(file, 'mine');
  await rejectsInvalid(saveModelFolder(file, m), /saveModelFolder: .*a-file exists and is not a folder/, ModelFolderError);
  await rejectsInvalid(saveModelFolder(join(file, 'sub'), m), /saveModelFolder: .*a-file.sub/, ModelFolderError);
  assert.is(readFileSync(file, 'utf8'), 'mine');
  assert.equal(readdirSync(dir), ['a-file']);
  await saveModelFolder(dir, m);
  await rejectsInvalid(loadModelFolder(dir, { backnd: w } as never), /loadModelFolder: unknown option "backnd"/);
  await rejectsInvalid(loadModelFolder(dir, { backend: null } as never), /loadModelFolder: backend must be a Backend .*got null/);
  await rejectsInvalid(loadModelFolder(42 as never, { backend: w }), /loadModelFolder: dir must be a non-empty string .*got 42/, ModelFolderError);
  const files = await modelToFolderFiles(m);
  invalid(() => modelFromFolderFiles(files, { backnd: w } as never), /modelFromFolderFiles: unknown option "backnd"/);
  const back = await loadModelFolder(dir, { backend: w });
  assert.is(back.kind, 'resnet');
  back.model.dispose();
  m.dispose();
});

test.run();
