// First contact as a user meets it: `npm pack`, install the tarball into an empty project (nothing
// else beside it), then use it from a Node script, from strict TypeScript, from the command line,
// and bundled with esbuild for a browser page in headless Chromium.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { withPage } from '../helpers/chromium.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const app = mkdtempSync(join(tmpdir(), 'memfit-app-'));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function run(cmd: string, args: string[], options: SpawnSyncOptions = {}): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { cwd: app, encoding: 'utf8', timeout: 300_000, ...options, env: { ...process.env, MEMFIT_BACKEND: '', ...(options.env ?? {}) } });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

let tarball = '';
test.before(() => {
  const p = run(npm, ['pack', '--pack-destination', app, '--ignore-scripts', '--json'], { cwd: root });
  assert.is(p.status, 0, p.out);
  tarball = join(app, readdirSync(app).find((f) => f.endsWith('.tgz'))!);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'memfit-user-app', version: '1.0.0', private: true, type: 'module' }));
  const i = run(npm, ['install', tarball, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error']);
  assert.is(i.status, 0, i.out);
});
test.after(() => rmSync(app, { recursive: true, force: true }));

test('the tarball holds what users need, not sources, maps or debug builds', () => {
  const r = run('tar', ['tzf', tarball]);
  const files = r.out.trim().split('\n').map((f) => f.replace(/^package\//, ''));
  for (const need of ['LICENSE', 'README.md', 'bin/memfit.js', 'dist/node/index.js', 'dist/node/node.js', 'dist/node/cli.js', 'dist/browser/memfit.js', 'dist/types/src/index.d.ts', 'data/sotu-since-1990.json.gz']) {
    assert.ok(files.includes(need), `the tarball lacks ${need}`);
  }
  const unwanted = files.filter((f) => /\.map$|^src\/|^assembly\/|^build\/|^tests\/|\.wasm$|\.wat$/.test(f));
  assert.equal(unwanted, []);
  // webgpu (Dawn, ~130 MB of native binaries) is an optional peer: not installed with memfit
  assert.not.ok(existsSync(join(app, 'node_modules', 'webgpu')), 'webgpu was installed as a dependency');
});

test('a Node script: the formats, the automatic backend (wasm without a GPU), the shipped corpus', () => {
  writeFileSync(join(app, 'main.mjs'), `
import { encode, decode, createBackend, Tensor } from 'memfit';
import { loadSotuText } from 'memfit/node';
const codes = encode(Float32Array.of(1, 448, 500), 'e4m3');
const b = await createBackend();
const t = Tensor.from(b, [1, 2, 3, 4], [2, 2]);
const s = t.matmul(t);
console.log(JSON.stringify({ codes: [...codes], back: [...decode(codes, 'e4m3')], kind: b.kind, mm: [...await s.toArray()], text: loadSotuText().length }));
`);
  const r = run(process.execPath, ['main.mjs']);
  assert.is(r.status, 0, r.out);
  const got = JSON.parse(r.out.trim().split('\n').find((l) => l.startsWith('{'))!);
  assert.equal(got.codes, [0x38, 0x7e, 0x7f]);
  assert.equal(got.back.slice(0, 2), [1, 448]);
  assert.equal(got.mm, [7, 10, 15, 22]);
  assert.ok(got.text > 1_000_000);
  assert.ok(['wasm', 'webgpu'].includes(got.kind));
  // without the optional webgpu package, asking for WebGPU says what to install
  writeFileSync(join(app, 'gpu.mjs'), `import { createBackend } from 'memfit'; await createBackend({ backend: 'webgpu', log: null });`);
  const g = run(process.execPath, ['gpu.mjs']);
  assert.is.not(g.status, 0);
  assert.match(g.out, /npm install webgpu/);
});

test('strict TypeScript against the shipped declarations: dtype names are checked at compile time', () => {
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: false, types: [], lib: ['ES2022', 'DOM'] }, include: ['*.ts'] }));
  writeFileSync(join(app, 'typed.ts'), `
import { encode, finfo, isDTypeName, formatOf, type DTypeName } from 'memfit';
const ok: DTypeName = 'float8_e4m3fn';
encode(Float32Array.of(1), ok);
encode([1, 2], 'bf16');
finfo('mxfp4');
// @ts-expect-error: a typo in a dtype name does not compile
encode(Float32Array.of(1), 'float8_e4m3fnn');
const fromUser: string = 'E4M3';
if (isDTypeName(fromUser)) encode([1], fromUser);
formatOf(fromUser);
`);
  const r = run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json']);
  assert.is(r.status, 0, r.out);
});

test('the command line of the installed package: npx memfit finfo, and memfit train on the shipped corpus', () => {
  const f = run(npm, ['exec', '--offline', '--', 'memfit', 'finfo', 'e4m3']);
  assert.is(f.status, 0, f.out);
  assert.match(f.out, /float8_e4m3fn\s+8\s+4\s+3\s+7\s+448/);
  const t = run(npm, ['exec', '--offline', '--', 'memfit', 'train', '--steps', '3', '--batch-size', '2', '--seq-len', '16', '--sample', '0', '--json']);
  assert.is(t.status, 0, t.out);
  const report = JSON.parse(t.out.slice(t.out.indexOf('{')));
  assert.is(report.steps, 3);
  assert.ok(Number.isFinite(report.lastLoss));
});

test('bundled with esbuild for the browser (no Node built-ins), it runs in headless Chromium', async () => {
  writeFileSync(join(app, 'page.js'), `
import { encode, createBackend, Tensor } from 'memfit';
const b = await createBackend({ backend: 'wasm', log: null });
const t = Tensor.from(b, [1, 2, 3, 4], [2, 2]);
window.__result = { codes: [...encode(Float32Array.of(1, 448), 'e4m3')], mm: [...await t.matmul(t).toArray()] };
window.__ready = true;
`);
  const out = await build({ entryPoints: [join(app, 'page.js')], bundle: true, format: 'esm', platform: 'browser', write: false, absWorkingDir: app, logLevel: 'silent' });
  const js = out.outputFiles[0].text;
  const html = '<!doctype html><script>window.__ready = false</script><script type="module" src="/page.js"></script>';
  const result = await withPage(html, { '/page.js': { body: js, type: 'text/javascript' } }, async ({ page, log }) => {
    await page.waitForFunction(() => (globalThis as { __result?: unknown }).__result !== undefined, undefined, { timeout: 30_000 }).catch(() => { throw new Error(log.join('\n')); });
    return page.evaluate(() => (globalThis as unknown as { __result: { codes: number[]; mm: number[] } }).__result);
  });
  assert.equal(result.codes, [0x38, 0x7e]);
  assert.equal(result.mm, [7, 10, 15, 22]);
});

test.run();
