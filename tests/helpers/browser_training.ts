// What the browser training tests share: a page that imports the browser bundle as window.memfit,
// the bundle to serve, a small corpus and config, and the losses Node gets on them.
import { fileURLToPath } from 'node:url';
import { WasmBackend } from '../../src/backend/wasm/backend.js';
import { ByteTextDataset } from '../../src/data/byte_text.js';
import { loadSotuText } from '../../src/data/sotu.js';
import { LanguageModelTrainer, TINY_LLAMA, type TrainConfig } from '../../src/train/language_model.js';

/** The files withPage serves: the browser bundle at /memfit.js. */
export const BUNDLE_FILES = { '/memfit.js': { file: fileURLToPath(new URL('../../dist/browser/memfit.js', import.meta.url)) } };

/** A page titled `title` that imports the bundle as window.memfit and sets window.__ready. */
export function bundlePage(title: string): string {
  return `<!doctype html><meta charset="utf-8"><title>${title}</title>
<script>window.__ready = false;</script>
<script type="module">import * as memfit from '/memfit.js'; window.memfit = memfit; window.__ready = true;</script>`;
}

export const text = loadSotuText({ fromYear: 2015 }).slice(0, 20000);
export const config: TrainConfig = { ...TINY_LLAMA, batchSize: 2, seqLen: 16, steps: 3, warmupSteps: 1 };

/** The losses of config's steps on Node's wasm backend (one thread). */
export async function nodeLosses(): Promise<number[]> {
  const t = new LanguageModelTrainer(new WasmBackend(), new ByteTextDataset(text), config);
  const node: number[] = [];
  for (let i = 0; i < config.steps; i++) node.push((await t.trainStep()).loss);
  t.dispose();
  return node;
}
