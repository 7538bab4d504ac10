// `npm run bench:train -- --model resnet152 | bert-base | llama-small`: one training step of a
// full-size model (ResNet-152 on 224 x 224 images, bert-base with the masked-LM head, the
// anchors' "small" Llama), AdamW, on synthetic data, with a reduced batch on the CPU. Reports step
// time, images or tokens per second, peak bytes by category, the bytes a training forward holds
// (saved activations) against an inference forward, and the bytes each top-level block holds
// after its training forward (ResNet: stem, layer1..layer4, head; BERT/Llama: embeddings, each
// layer, head): what a checkpoint planner trades against recompute. `--autocast bf16` runs the
// forward under autocast (the mixed-precision figures); `--batch N` and `--steps N` override.
import type { Backend } from '../src/backend/backend.js';
import { CATEGORIES } from '../src/backend/memory.js';
import { inferenceMode, tidy, Variable } from '../src/autograd/variable.js';

type V = Variable;
import { relu } from '../src/autograd/ops.js';
import { autocast } from '../src/amp/autocast.js';
import { Tensor } from '../src/tensor/tensor.js';
import { crossEntropy } from '../src/nn/functional.js';
import { resnet, type ResNet } from '../src/nn/resnet.js';
import { BERT_BASE, BertForMaskedLM } from '../src/nn/bert.js';
import { Llama } from '../src/nn/llama.js';
import { AdamW } from '../src/optim/index.js';
import { Generator } from '../src/random.js';
import type { Module } from '../src/nn/module.js';

export type BenchModel = 'resnet152' | 'bert-base' | 'llama-small';
export const BENCH_MODELS: readonly BenchModel[] = ['resnet152', 'bert-base', 'llama-small'];

/** The anchors' "small" Llama (vocab 8192, dim 512, 8 layers, 8 heads, ffn 1408). */
const LLAMA_SMALL = { vocabSize: 8192, hiddenSize: 512, numHiddenLayers: 8, numAttentionHeads: 8, intermediateSize: 1408, maxPositionEmbeddings: 256, rmsNormEps: 1e-5 };

/** Default sizes on the CPU (wasm) and on a GPU: [batch, sequence length or image side]. */
const SIZES: Record<BenchModel, { cpu: [number, number]; gpu: [number, number] }> = {
  resnet152: { cpu: [2, 224], gpu: [32, 224] },
  'bert-base': { cpu: [2, 128], gpu: [32, 128] },
  'llama-small': { cpu: [2, 256], gpu: [16, 256] },
};

interface Workload {
  model: Module;
  unit: 'images' | 'tokens';
  units: number;
  /** The scalar training loss of one batch. */
  loss(): V;
  /** Top-level blocks in forward order: [name, run(h) -> h]; the first takes null (the input). */
  stages(): [string, (h: V | null) => V][];
  dispose(): void;
}

function rng(seed: number): () => number {
  const g = new Generator(seed);
  return () => g.random();
}

function workload(name: BenchModel, be: Backend, batch: number, size: number): Workload {
  const r = rng(1);
  if (name === 'resnet152') {
    const m = resnet('resnet152', {}, { backend: be, generator: new Generator(0) });
    const x = new Variable(Tensor.from(be, Float32Array.from({ length: batch * 3 * size * size }, () => r() * 2 - 1), [batch, 3, size, size], { category: 'data' }));
    const y = Tensor.from(be, Int32Array.from({ length: batch }, () => Math.floor(r() * 1000)), [batch], { dtype: 'int32', category: 'data' });
    const rn = m as ResNet;
    return {
      model: m, unit: 'images', units: batch,
      loss: () => m.loss(x, y),
      stages: () => [
        ['stem', () => rn.maxpool.forward(relu(rn.bn1.forward(rn.conv1.forward(x))))],
        ['layer1', (h) => rn.layer1.forward(h!)], ['layer2', (h) => rn.layer2.forward(h!)],
        ['layer3', (h) => rn.layer3.forward(h!)], ['layer4', (h) => rn.layer4.forward(h!)],
        ['head', (h) => crossEntropy(rn.fc.forward(rn.flatten.forward(rn.avgpool.forward(h!))), y)],
      ],
      dispose: () => { x.dispose(); y.dispose(); },
    };
  }
  const ids = (v: number) => Tensor.from(be, Int32Array.from({ length: batch * size }, () => Math.floor(r() * v)), [batch, size], { dtype: 'int32', category: 'data' });
  if (name === 'bert-base') {
    const m = new BertForMaskedLM({ ...BERT_BASE, maxPositionEmbeddings: Math.max(512, size) }, { backend: be, generator: new Generator(0) });
    const input = ids(BERT_BASE.vocabSize);
    const labels = Tensor.from(be, Int32Array.from({ length: batch * size }, () => (r() < 0.15 ? Math.floor(r() * BERT_BASE.vocabSize) : -100)), [batch, size], { dtype: 'int32', category: 'data' });
    return {
      model: m, unit: 'tokens', units: batch * size,
      loss: () => m.loss(input, labels),
      stages: () => [
        ['embeddings', () => m.bert.embeddings.forward(input, null)],
        ...[...m.bert.encoder.layer].map((l, i): [string, (h: V | null) => V] => [`layer.${i}`, (h) => l.forward(h!, null)]),
        ['head', (h) => crossEntropy(m.cls.forward(h!), labels)],
      ],
      dispose: () => { input.dispose(); labels.dispose(); },
    };
  }
  const m = new Llama({ ...LLAMA_SMALL, maxPositionEmbeddings: Math.max(256, size) }, { backend: be, generator: new Generator(0) });
  const input = ids(LLAMA_SMALL.vocabSize), targets = ids(LLAMA_SMALL.vocabSize);
  return {
    model: m, unit: 'tokens', units: batch * size,
    loss: () => m.loss(input, targets),
    stages: () => [
      ['embeddings', () => m.embedTokens.forward(input)],
      ...[...m.layers].map((l, i): [string, (h: V | null) => V] => [`layers.${i}`, (h) => l.forward(h!)]),
      ['head', (h) => crossEntropy(m.lmHead!.forward(m.norm.forward(h!)), targets)],
    ],
    dispose: () => { input.dispose(); targets.dispose(); },
  };
}

const round = (x: number) => Number(x.toPrecision(4));

export interface ModelBenchOptions {
  batch?: number;
  steps?: number;
  warmup?: number;
  autocast?: 'bfloat16' | 'float16' | null;
  log?: (m: string) => void;
}

/** One model's training figures on `be`. */
export async function benchModel(name: BenchModel, be: Backend, options: ModelBenchOptions = {}): Promise<Record<string, unknown>> {
  const gpu = be.kind === 'webgpu';
  const [defBatch, size] = SIZES[name][gpu ? 'gpu' : 'cpu'];
  const batch = options.batch ?? defBatch;
  const steps = options.steps ?? (gpu ? 10 : 2), warmup = options.warmup ?? 1;
  const log = options.log ?? (() => {});
  const w = workload(name, be, batch, size);
  const amp = options.autocast ?? null;
  const inAmp = <T>(fn: () => T): T => (amp ? autocast({ dtype: amp }, fn) : fn());
  const opt = new AdamW(w.model.parameters(), { lr: 1e-4 });
  const mem = be.memory;
  try {
    const ms: number[] = [];
    let first = 0, last = 0;
    for (let i = 0; i < warmup + steps; i++) {
      const t0 = performance.now();
      const loss = inAmp(() => tidy(() => w.loss()));
      loss.backward();
      opt.step();
      opt.zeroGrad();
      const v = (await loss.data.toArray())[0];
      loss.dispose();
      const dt = performance.now() - t0;
      if (i === 0) first = v;
      last = v;
      if (i >= warmup) ms.push(dt);
      log(`${name} step ${i + 1}/${warmup + steps}: ${dt.toFixed(0)} ms, loss ${v.toFixed(4)}`);
    }
    const stats = mem.memoryStats();
    ms.sort((a, b) => a - b);
    const median = ms[Math.floor(ms.length / 2)];
    // The training forward, block by block: bytes each block's forward leaves held (its saved activations and output).
    await be.synchronize();
    const base = mem.memoryAllocated();
    mem.resetPeakMemoryStats();
    const held: Record<string, number> = {};
    const outs: V[] = [];
    inAmp(() => {
      let h: V | null = null;
      for (const [stage, run] of w.stages()) {
        const before = mem.memoryAllocated();
        const next: V = tidy(() => run(h));
        held[stage] = mem.memoryAllocated() - before;
        outs.push(next);
        h = next;
      }
    });
    const fwdHeld = mem.memoryAllocated() - base, fwdPeak = mem.maxMemoryAllocated() - base;
    const lossVar = outs[outs.length - 1];
    lossVar.releaseGraph();
    for (const o of outs) o.dispose();
    mem.resetPeakMemoryStats();
    const inf = inferenceMode(() => inAmp(() => w.loss()));
    const infPeak = mem.maxMemoryAllocated() - base;
    inf.dispose();
    return {
      model: name, backend: be.description, autocast: amp ?? 'off',
      parameters: w.model.numParameters(), batch, [w.unit === 'images' ? 'imageSize' : 'seqLen']: size,
      steps: ms.length, stepMsMedian: round(median),
      [w.unit === 'images' ? 'imagesPerSecond' : 'tokensPerSecond']: round(w.units / (median / 1000)),
      lossFirst: round(first), lossLast: round(last),
      peakBytesByCategory: Object.fromEntries(CATEGORIES.map((c) => [c, stats.byCategory[c].peak])),
      peakAllocatedBytes: stats.allocated.peak,
      trainingForwardHeldBytes: fwdHeld, trainingForwardPeakBytes: fwdPeak, inferenceForwardPeakBytes: infPeak,
      heldBytesByBlock: held,
    };
  } finally {
    opt.dispose();
    w.dispose();
    w.model.dispose();
  }
}
