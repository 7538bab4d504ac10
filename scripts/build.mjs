// Bundles the library for Node and the browser with esbuild and emits type declarations.
// Run after build:wasm (which writes build/wasm_module.ts, the embedded WebAssembly).
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';

// Start clean: split chunks have content-hashed names, and old ones would otherwise pile up (and ship).
for (const dir of ['dist/node', 'dist/browser', 'dist/types']) rmSync(dir, { recursive: true, force: true });

// In the browser bundle, Node-only modules are replaced by their .browser.ts stand-ins.
const browserStubs = {
  name: 'browser-stubs',
  setup(b) {
    b.onResolve({ filter: /\/node_(device|worker)\.js$/ }, (args) => ({ path: new URL(args.path.replace(/\.js$/, '.browser.ts'), 'file://' + args.resolveDir + '/').pathname }));
  },
};
// The demo page's script imports the library from the browser bundle next to it (one copy of memfit).
const libraryFromBundle = {
  name: 'library-from-bundle',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/index\.js$/ }, () => ({ path: './memfit.js', external: true }));
  },
};
const common = { bundle: true, format: 'esm', target: 'es2022', sourcemap: true, loader: { '.wgsl': 'text' }, logLevel: 'warning' };
await Promise.all([
  // One build with code splitting: memfit, memfit/node and the CLI share one copy of every module
  // (one Tensor class, one grad mode), so objects from one entry work with the other.
  build({
    ...common, entryPoints: { index: 'src/index.ts', node: 'src/node.ts', cli: 'src/cli/main.ts' }, outdir: 'dist/node',
    splitting: true, platform: 'node', packages: 'external',
  }),
  build({ ...common, entryPoints: ['src/index.ts'], outfile: 'dist/browser/memfit.js', platform: 'browser', plugins: [browserStubs] }),
  build({ ...common, entryPoints: ['src/demo/page.ts'], outfile: 'dist/browser/demo.js', platform: 'browser', plugins: [libraryFromBundle] }),
]);
execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
