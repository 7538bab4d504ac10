// Builds only when the build's inputs changed since the last build, so `npm install && npm start`
// (or `npm test`) builds once: `prepare` builds at install time, and `prestart`/`pretest` then find
// the build current. The inputs are hashed (contents, not times: a checkout changes times).
//   node scripts/ensure-build.mjs          build if stale
//   node scripts/ensure-build.mjs --stamp  record the current inputs as built (the end of `npm run build`)
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const STAMP = join(root, 'dist', '.build-inputs');
const INPUT_DIRS = ['assembly', 'src', 'shaders'];
const INPUT_FILES = ['scripts/build.mjs', 'scripts/gen-constants.ts', 'scripts/embed-wasm.mjs', 'scripts/embed-shaders.mjs', 'asconfig.json', 'tsconfig.json', 'package.json'];

function files(dir) {
  const out = [];
  for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) out.push(...files(rel));
    else out.push(rel);
  }
  return out;
}

function inputsHash() {
  const h = createHash('sha256');
  for (const f of [...INPUT_DIRS.flatMap(files), ...INPUT_FILES].sort()) {
    h.update(f).update('\0').update(readFileSync(join(root, f))).update('\0');
  }
  return h.digest('hex');
}

const OUTPUTS = ['dist/node/index.js', 'dist/node/node.js', 'dist/node/cli.js', 'dist/browser/memfit.js', 'dist/types/src/index.d.ts'];

if (process.argv.includes('--stamp')) {
  mkdirSync(join(root, 'dist'), { recursive: true });
  writeFileSync(STAMP, inputsHash() + '\n');
} else {
  const current = existsSync(STAMP) && OUTPUTS.every((f) => existsSync(join(root, f))) && readFileSync(STAMP, 'utf8').trim() === inputsHash();
  if (current) console.error('memfit: the build is current');
  else execFileSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
}
