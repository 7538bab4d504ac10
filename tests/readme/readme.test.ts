// Every TypeScript/JavaScript code block of README.md is tested code: each block is written to a
// file inside the repository (so `import ... from 'memfit'` resolves to this package, built), type-
// checked with strict TypeScript against the published declarations, and run on the wasm backend.
// A line `console.log(a, b); // → text` also checks its output: it must print exactly `text`.
// A block that should not run must not be a ts/js block.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dir = join(root, 'scratch', 'readme-blocks');

interface Block { line: number; lang: string; code: string }

export function readmeBlocks(text: string): Block[] {
  const blocks: Block[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w+)\s*$/.exec(lines[i]);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]); i++) body.push(lines[i]);
    if (['ts', 'typescript', 'js', 'javascript'].includes(open[1])) blocks.push({ line: start + 1, lang: open[1], code: body.join('\n') + '\n' });
  }
  return blocks;
}

/** Turns `console.log(args); // → text` lines into checks of what they print. */
export function withOutputChecks(b: Block): { code: string; checks: number } {
  let checks = 0;
  const lines = b.code.split('\n').map((l, i) => {
    const m = /^(\s*)console\.log\((.*)\);\s*\/\/ → (.*)$/.exec(l);
    if (!m) return l;
    checks++;
    return `${m[1]}__expectPrinted(${b.line + 1 + i}, ${JSON.stringify(m[3].trim())}, ${m[2]});`;
  });
  const prelude = `import { format as __format } from 'node:util';
function __expectPrinted(line: number, expected: string, ...args: unknown[]): void {
  const got = __format(...args);
  console.log(got);
  if (got !== expected) throw new Error(\`README line \${line} prints \${JSON.stringify(got)}, the README says \${JSON.stringify(expected)}\`);
}`;
  return { code: `${lines.join('\n')}\n${prelude}\n`, checks };
}

const blocks = readmeBlocks(readFileSync(join(root, 'README.md'), 'utf8'));
const file = (b: Block) => join(dir, `readme-line-${b.line}.${b.lang.startsWith('j') ? 'mjs' : 'mts'}`);

test.before(() => {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const b of blocks) writeFileSync(file(b), withOutputChecks(b).code);
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('README.md has code blocks, each importing from the package', () => {
  assert.ok(blocks.length >= 5, `found ${blocks.length} blocks`);
  for (const b of blocks) assert.match(b.code, /from 'memfit(\/node)?'/, `README line ${b.line}: a block must import what it uses`);
  assert.ok(blocks.reduce((n, b) => n + withOutputChecks(b).checks, 0) >= 10, 'the README states outputs (console.log(...); // → ...) that are checked');
});

test('every README code block type-checks (strict TypeScript, against the built declarations)', () => {
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true,
      skipLibCheck: true, types: ['node'], lib: ['ES2022', 'DOM'],
    },
    include: ['*.mts', '*.mjs'],
  }));
  const r = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(dir, 'tsconfig.json')], { encoding: 'utf8', cwd: root });
  assert.is(r.status, 0, `tsc found errors in README blocks:\n${r.stdout}${r.stderr}`);
});

test('every link to a heading (#anchor) leads to one, as GitHub makes anchors', () => {
  const text = readFileSync(join(root, 'README.md'), 'utf8').replace(/```[\s\S]*?```/g, '');
  const anchors = new Set([...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) => m[1].trim().toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-')));
  const links = [...text.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]);
  assert.ok(links.length > 10, 'the README links to its sections');
  assert.equal(links.filter((l) => !anchors.has(l)), []);
});

test('the Layout section names every folder of src/ and tests/ (and every top-level folder)', () => {
  const text = readFileSync(join(root, 'README.md'), 'utf8');
  const layout = text.slice(text.indexOf('## Layout'));
  assert.ok(layout.length > 100, 'README.md has a Layout section');
  const dirs = (d: string) => readdirSync(join(root, d), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => `${d}/${e.name}/`);
  const tracked = ['assembly', 'bench', 'bin', 'data', 'docs', 'scripts', 'shaders', 'src', 'tests'];
  for (const d of [...tracked.map((t) => `${t}/`), ...dirs('src'), ...dirs('tests')]) {
    // tests/X mirroring src/X is covered by "one folder per source folder"
    const mirrored = /^tests\/(\w+)\/$/.exec(d);
    if (mirrored && existsSync(join(root, 'src', mirrored[1]))) continue;
    assert.ok(layout.includes(d), `the Layout section does not mention ${d}`);
  }
});

for (const b of blocks) {
  test(`README line ${b.line}: the block runs`, () => {
    const env = { ...process.env, MEMFIT_BACKEND: 'wasm' };
    const r = spawnSync(process.execPath, ['--import', 'tsx', file(b)], { encoding: 'utf8', cwd: dir, env, timeout: 240_000 });
    assert.is(r.status, 0, `README line ${b.line} failed (status ${r.status}, ${r.signal ?? ''}):\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-4000)}`);
  });
}

test.run();
