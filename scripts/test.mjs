// `npm test`: runs the uvu suites one folder of tests/ at a time, each in its own Node process, so
// that native state (Dawn/SwiftShader devices, WebAssembly memory grown by the memory tests) does
// not pile up across the whole suite in one process, and a crash names its folder. Prints every
// suite's output, then one closing line "N passed, N failed" (and skipped), and exits non-zero if
// any suite failed or crashed. `npm test -- nn optim` runs only those folders.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const uvu = join(root, 'node_modules', 'uvu', 'bin.js');
const asked = process.argv.slice(2);
const dirs = readdirSync(join(root, 'tests')).filter((d) => !['fixtures', 'helpers'].includes(d) && statSync(join(root, 'tests', d)).isDirectory()).sort();
for (const a of asked) if (!dirs.includes(a)) { console.error(`no test folder tests/${a}; folders: ${dirs.join(', ')}`); process.exit(2); }
let passed = 0, failed = 0, skipped = 0;
const broken = [];
const strip = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');
for (const d of asked.length ? asked : dirs) {
  console.log(`\n==> tests/${d}`);
  const r = spawnSync(process.execPath, [uvu, join('tests', d), '-r', 'tsx'], { cwd: root, encoding: 'utf8', maxBuffer: 1 << 28 });
  process.stdout.write(r.stdout ?? '');
  process.stderr.write(r.stderr ?? '');
  const out = strip(r.stdout ?? '');
  const num = (k) => Number((new RegExp(`${k}:\\s+(\\d+)`).exec(out) ?? [])[1] ?? 0);
  const total = num('Total'), p = num('Passed'), s = num('Skipped');
  // uvu's Total counts the tests that ran (Passed and the failures), not the Skipped ones
  passed += p; skipped += s; failed += total - p;
  if (r.status !== 0) {
    broken.push(`tests/${d} (${r.signal ?? `exit ${r.status}`})`);
    if (total - p === 0) failed += 1; // a crash or an error outside a test counts as a failure
  }
}
if (broken.length) console.log(`\nfailed or crashed: ${broken.join(', ')}`);
console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(broken.length ? 1 : 0);
