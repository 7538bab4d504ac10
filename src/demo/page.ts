// The demo page's script (bundled to dist/browser/demo.js; its import of the library is left as
// './memfit.js', the browser bundle, so the page loads one copy of memfit). Trains the tiny Llama on
// the State of the Union text served at ./sotu.txt, on the main thread, yielding to the page after
// every step; draws the charts shared with `memfit train --report`.
import {
  ByteTextDataset, LanguageModelTrainer, createBackend, tinyLlamaConfig, trainingCharts, trainingReportHtml,
  type Backend, type StepResult, type TrainOptimizer, type TrainPrecision, type ValidationPoint,
} from '../index.js';

type State = 'loading' | 'ready' | 'training' | 'done' | 'error';

const $ = <T extends HTMLElement>(id: string): T => {
  const e = document.getElementById(id);
  if (!e) throw new Error(`the page has no #${id}`);
  return e as T;
};
const backendSelect = $<HTMLSelectElement>('backend'), optimizerSelect = $<HTMLSelectElement>('optimizer'), precisionSelect = $<HTMLSelectElement>('precision');
const checkpointSelect = $<HTMLSelectElement>('checkpointing');
const stepsInput = $<HTMLInputElement>('steps'), batchInput = $<HTMLInputElement>('batchSize');
const seqInput = $<HTMLInputElement>('seqLen'), lrInput = $<HTMLInputElement>('lr');
const trainButton = $<HTMLButtonElement>('train'), stopButton = $<HTMLButtonElement>('stop'), saveButton = $<HTMLButtonElement>('save');
const statusLine = $('status'), errorBox = $('error'), samplesBox = $('samples');

/** A peak lr that trains the tiny Llama well with each optimizer (set when the optimizer changes). */
const DEFAULT_LR: Record<TrainOptimizer, number> = { adamw: 3e-3, adam: 3e-3, sgd: 0.1, adamw8bit: 3e-3, 'adamw8bit-paged': 3e-3 };

let text = '';
let stopRequested = false;
let last: { steps: StepResult[]; validation: ValidationPoint[]; samples: { step: number; text: string }[]; summary: [string, string][] } | null = null;

function setState(s: State): void {
  document.body.dataset.state = s;
  const busy = s === 'training' || s === 'loading';
  trainButton.disabled = busy || text === '';
  stopButton.disabled = s !== 'training';
  saveButton.disabled = busy || last === null || last.steps.length === 0;
  for (const el of [backendSelect, optimizerSelect, precisionSelect, checkpointSelect, stepsInput, batchInput, seqInput, lrInput]) el.disabled = busy;
  if (!busy) backendSelect.querySelector<HTMLOptionElement>('option[value=webgpu]')!.disabled = !webgpuAvailable;
}

function showError(e: unknown): void {
  errorBox.textContent = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  setState('error');
}

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(2)} MiB`;
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

function drawCharts(steps: readonly StepResult[], validation: readonly ValidationPoint[]): void {
  const charts = trainingCharts(steps, validation);
  $('chart-loss').innerHTML = charts.loss;
  $('chart-throughput').innerHTML = charts.throughput;
  $('chart-memory').innerHTML = charts.memory;
}

function drawSamples(samples: readonly { step: number; text: string }[]): void {
  samplesBox.replaceChildren(...samples.map((s) => {
    const div = document.createElement('div'), b = document.createElement('b');
    b.textContent = `after step ${s.step}: `;
    div.append(b, s.text);
    return div;
  }));
}

/** Reads and checks an integer input. */
function intInput(input: HTMLInputElement, name: string, min: number, max: number): number {
  const v = Number(input.value);
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(input.value)}`);
  return v;
}

/** Lets the page paint (a trainStep on wasm never gives the event loop a turn by itself). */
const yieldToPage = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

async function train(): Promise<void> {
  errorBox.textContent = '';
  let backend: Backend | undefined;
  let trainer: LanguageModelTrainer | undefined;
  try {
    const optimizer = optimizerSelect.value as TrainOptimizer;
    const config = tinyLlamaConfig({
      steps: intInput(stepsInput, 'steps', 1, 100000), batchSize: intInput(batchInput, 'batch size', 1, 256),
      seqLen: intInput(seqInput, 'seq len', 2, 1024), lr: Number(lrInput.value), optimizer, precision: precisionSelect.value as TrainPrecision,
      checkpointModules: checkpointSelect.value || undefined,
    });
    if (!(config.lr > 0)) throw new RangeError(`the learning rate must be a positive number, got ${JSON.stringify(lrInput.value)}`);
    stopRequested = false;
    setState('training');
    statusLine.textContent = 'starting…';
    // wasm: threads on a cross-origin isolated page (the demo server sends COOP/COEP), else one thread and a console line saying why.
    backend = await createBackend({ backend: backendSelect.value === 'webgpu' ? 'webgpu' : 'wasm', log: (l) => console.info(l) });
    trainer = new LanguageModelTrainer(backend, new ByteTextDataset(text), config);
    const steps: StepResult[] = [], validation: ValidationPoint[] = [], samples: { step: number; text: string }[] = [];
    const evalEvery = Math.max(10, Math.round(config.steps / 10)), sampleEvery = Math.max(25, Math.round(config.steps / 4));
    const params = trainer.model.numParameters();
    last = { steps, validation, samples, summary: [] };
    drawSamples(samples);
    let drawn = 0;
    while (trainer.step < config.steps && !stopRequested) {
      const r = await trainer.trainStep();
      if (!Number.isFinite(r.loss)) throw new Error(`the loss is ${r.loss} at step ${r.step}: lower the learning rate`);
      steps.push(r);
      if (r.step % evalEvery === 0 && r.step < config.steps) validation.push({ step: r.step, loss: await trainer.evaluate() });
      if (r.step % sampleEvery === 0 && r.step < config.steps) {
        samples.push({ step: r.step, text: await trainer.generate('The ', 80, { temperature: 0.8 }) });
        drawSamples(samples);
      }
      statusLine.textContent = `step ${r.step} / ${config.steps} · loss ${r.loss.toFixed(3)} · ${fmt(r.tokensPerSecond)} tokens/s · peak ${mib(r.peakAllocated)} in the step`;
      if (performance.now() - drawn > 250) { drawCharts(steps, validation); drawn = performance.now(); }
      await yieldToPage();
    }
    statusLine.textContent = `step ${trainer.step}: evaluating and sampling…`;
    await yieldToPage();
    const val = await trainer.evaluate();
    validation.push({ step: trainer.step, loss: val });
    samples.push({ step: trainer.step, text: await trainer.generate('The ', 160, { temperature: 0.8 }) });
    drawSamples(samples);
    drawCharts(steps, validation);
    const first = steps[0]?.loss ?? NaN, lastLoss = steps[steps.length - 1]?.loss ?? NaN;
    const later = steps.slice(1), tps = (later.length * config.batchSize * config.seqLen) / (later.reduce((a, s) => a + s.ms, 0) / 1000);
    const peak = Math.max(...steps.map((s) => s.peakAllocated));
    statusLine.dataset.firstLoss = String(first);
    statusLine.dataset.lastLoss = String(lastLoss);
    statusLine.dataset.validationLoss = String(val);
    statusLine.textContent = `${stopRequested ? 'stopped' : 'done'} after ${trainer.step} steps on ${backend.kind}: loss ${first.toFixed(3)} → ${lastLoss.toFixed(3)}, validation ${val.toFixed(3)}`
      + (later.length ? ` · ${fmt(tps)} tokens/s` : '') + ` · peak ${mib(peak)} allocated`;
    const m = config.model;
    last.summary = [
      ['backend', backend.description],
      ['model', `Llama: ${m.numHiddenLayers} layers, hidden ${m.hiddenSize}, ${m.numAttentionHeads} heads, vocabulary ${m.vocabSize} bytes, ${params.toLocaleString('en-US')} parameters`],
      ['data', `State of the Union addresses since 1990, ${text.length.toLocaleString('en-US')} characters`],
      ['training', `${trainer.step} steps, batch ${config.batchSize} x ${config.seqLen} tokens, ${optimizer} lr ${config.lr}, warmup ${config.warmupSteps} + cosine, precision ${config.precision}${trainer.checkpointed.length ? `, checkpointed ${trainer.checkpointed.join(' ')}` : ''}, seed ${config.seed}`],
      ['loss', `${first.toFixed(4)} -> ${lastLoss.toFixed(4)}; validation ${val.toFixed(4)}`],
      ['throughput', later.length ? `${fmt(tps)} tokens/s (after step 1)` : 'one step only'],
      ['peak memory', `${mib(peak)} allocated (in a training step)`],
      ['browser', navigator.userAgent],
    ];
    setState('done');
  } catch (e) {
    showError(e);
  } finally {
    trainer?.dispose();
    backend?.destroy();
  }
}

function saveReport(): void {
  if (!last) return;
  const html = trainingReportHtml({
    title: 'memfit demo', summary: last.summary, steps: last.steps, validation: last.validation,
    sample: last.samples.length ? last.samples[last.samples.length - 1].text : undefined,
  });
  const url = URL.createObjectURL(new Blob([html], { type: 'text/html' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = 'memfit-report.html';
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

let webgpuAvailable = false;

async function detectWebGPU(): Promise<void> {
  const option = backendSelect.querySelector<HTMLOptionElement>('option[value=webgpu]')!;
  try {
    const adapter = navigator.gpu ? await navigator.gpu.requestAdapter() : null;
    webgpuAvailable = adapter !== null;
    const info = adapter?.info;
    const name = info ? [info.vendor, info.architecture, info.description].filter((x) => x).join(' ') : '';
    option.textContent = adapter ? `WebGPU${name ? ` (${name})` : ''}` : 'WebGPU (not available here)';
  } catch {
    option.textContent = 'WebGPU (not available here)';
  }
  option.disabled = !webgpuAvailable || document.body.dataset.state === 'training';
}

async function init(): Promise<void> {
  drawCharts([], []);
  optimizerSelect.addEventListener('change', () => { lrInput.value = String(DEFAULT_LR[optimizerSelect.value as TrainOptimizer]); });
  trainButton.addEventListener('click', () => { void train(); });
  stopButton.addEventListener('click', () => { stopRequested = true; stopButton.disabled = true; });
  saveButton.addEventListener('click', saveReport);
  await detectWebGPU();
  const res = await fetch('./sotu.txt');
  if (!res.ok) throw new Error(`could not load ./sotu.txt: HTTP ${res.status}`);
  text = await res.text();
  $('corpus').textContent = `${text.length.toLocaleString('en-US')} characters of addresses since 1990, 5% held out for validation`;
  setState('ready');
}

init().catch(showError);
