// `memfit inspect` and `memfit convert-model`, run as child processes (needs dist/node/cli.js: node scripts/build.mjs).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseSafetensors } from '../../src/io/safetensors.js';
import { CONVERSION_KEY, convertSafetensorsBytes, inspectSafetensorsBytes } from '../../src/io/convert_model.js';
import { table } from '../../src/cli/inspect.js';
import { terminalSafe } from '../../src/cli/format.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'memfit-cli-model-'));
const MODEL = join(ROOT, 'tests/fixtures/io/convert/model-f32.safetensors');
const model = new Uint8Array(readFileSync(MODEL));

function memfit(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['bin/memfit.js', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const tmp = (name: string) => join(dir, name);

function failsClearly(r: { code: number | null; stdout: string; stderr: string }, re: RegExp): void {
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, /^memfit: /);
  assert.match(r.stderr, re);
  assert.not.match(r.stderr, /\n\s+at |internal error/, 'no stack trace');
}

test('inspect lists every tensor with dtype, shape and bytes, and totals by dtype', () => {
  const r = memfit('inspect', MODEL);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /model-f32\.safetensors: 10 tensors, 8\.3 KiB \(header \d+ B\); metadata: format=pt/);
  assert.match(r.stdout, /model\.layers\.0\.mlp\.down_proj\.weight\s+float32\s+\[8, 33\]\s+1\.0 KiB/);
  assert.match(r.stdout, /f64\.bias\s+F64\s+\[3\]\s+24 B/);
  assert.match(r.stdout, /flags\s+BOOL\s+\[2\]\s+2 B/);
  assert.match(r.stdout, /totals by dtype:\nfloat32\s+7 tensors\s+1,908 elements\s+7\.5 KiB\nF64\s+1 tensor\s+3 elements\s+24 B/);
  assert.not.match(r.stdout, /absmax/, 'no statistics without --stats');
});

test('inspect --stats --json equals inspectSafetensors; --stats text has the statistics and the overflow table', async () => {
  const r = memfit('inspect', '--stats', '--json', MODEL);
  assert.is(r.code, 0, r.stderr);
  const got = JSON.parse(r.stdout);
  const want = JSON.parse(JSON.stringify(await inspectSafetensorsBytes(model, { stats: true }), (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? String(x) : x)));
  assert.equal(got, want);
  const specials = got.tensors.find((t: { name: string }) => t.name === 'specials.weight');
  assert.is(specials.stats.nonFinite, 3);
  assert.is(specials.stats.overflow.float8_e4m3fn, 7, '500, -1e6, 57344, 61440, 65504, ±3e38 overflow e4m3 (464 ties to 448)');
  const text = memfit('inspect', '--stats', MODEL);
  assert.is(text.code, 0, text.stderr);
  assert.match(text.stdout, /name\s+dtype\s+shape\s+bytes\s+scale\s+min\s+max\s+absmax\s+mean\s+std\s+non-finite/);
  assert.match(text.stdout, /values that would overflow \/ flush to zero in each format/);
  assert.match(text.stdout, /specials\.weight\s+3\/3\s+0\/1\s+7\/8\s/);
});

test('convert-model writes what convertSafetensorsBytes writes and prints the per-tensor error report and sizes', async () => {
  const out = tmp('fp8.safetensors');
  const r = memfit('convert-model', MODEL, out, '--to', 'e4m3', '--scale', 'row', '--exclude', 'embed');
  assert.is(r.code, 0, r.stderr);
  const want = await convertSafetensorsBytes(model, { to: 'e4m3', scale: 'row', exclude: ['embed'] });
  const got = new Uint8Array(readFileSync(out));
  const meta = JSON.parse(parseSafetensors(got).metadata[CONVERSION_KEY]);
  // Byte-identical apart from the version string recorded in the metadata.
  const again = await convertSafetensorsBytes(model, { to: 'e4m3', scale: 'row', exclude: ['embed'], memfitVersion: meta.runs[0].memfit });
  assert.equal([...got], [...again.bytes]);
  assert.match(r.stdout, /-> .*fp8\.safetensors: to float8_e4m3fn \(per row\)/);
  assert.match(r.stdout, /name\s+shape\s+from\s+to\s+max abs err\s+rel RMS err\s+clamped\s+non-finite/);
  assert.match(r.stdout, /model\.layers\.0\.self_attn\.q_proj\.weight\s+\[16, 64\]\s+float32\s+float8_e4m3fn\*row\s+\S+\s+\S+\s+0 \(0\.00%\)\s+0/);
  assert.match(r.stdout, /model\.embed_tokens\.weight\s+\[32, 16\]\s+float32\s+copied/);
  assert.match(r.stdout, new RegExp(`size: 8\\.3 KiB -> ${(want.bytes.length / 1024).toFixed(1)} KiB \\(\\d+\\.\\d\\d%\\); 5 tensors converted, 5 copied`));
  // --json and dequantising back.
  const j = memfit('convert-model', out, tmp('back.safetensors'), '--to', 'float32', '--json', '-q');
  assert.is(j.code, 0, j.stderr);
  const report = JSON.parse(j.stdout);
  assert.is(report.converted, 6, 'the five converted tensors and the float32 embedding');
  assert.is(report.tensors.find((t: { name: string }) => t.name === 'specials.weight').from, 'float8_e4m3fn*row');
  assert.equal(readdirSync(dir).sort(), ['back.safetensors', 'fp8.safetensors'], 'no temporary files');
});

test('convert-model errors: exit 1 with a clear message, no stack, nothing written, the input never overwritten', () => {
  writeFileSync(tmp('keep.safetensors'), 'previous');
  failsClearly(memfit('convert-model', MODEL, tmp('keep.safetensors'), '--to', 'float7'), /unknown target "float7"; targets: float32, float16, bfloat16/);
  failsClearly(memfit('convert-model', MODEL, tmp('keep.safetensors'), '--to', 'bf16', '--include', 'lm_head'), /--include lm_head: matches no tensor of the file/);
  failsClearly(memfit('convert-model', MODEL, tmp('keep.safetensors'), '--to', 'bf16', '--scale', 'row'), /stored without scales/);
  failsClearly(memfit('convert-model', MODEL, tmp('keep.safetensors'), '--to', 'mxfp4', '--rounding', 'stochastic'), /nearest-even/);
  failsClearly(memfit('convert-model', MODEL, tmp('keep.safetensors'), '--to', 'mxfp4', '--block-size', '0'), /--block-size must be a positive integer/);
  assert.is(readFileSync(tmp('keep.safetensors'), 'utf8'), 'previous', 'output untouched');
  const copy = tmp('in.safetensors');
  writeFileSync(copy, model);
  failsClearly(memfit('convert-model', copy, copy, '--to', 'bf16'), /is the input file/);
  assert.equal([...readFileSync(copy)], [...model], 'input untouched');
  writeFileSync(tmp('trunc.safetensors'), model.subarray(0, 100));
  failsClearly(memfit('convert-model', tmp('trunc.safetensors'), tmp('x.safetensors'), '--to', 'bf16'), /trunc\.safetensors: header length \d+ bytes runs past the end/);
  failsClearly(memfit('inspect', tmp('trunc.safetensors')), /trunc\.safetensors: header length/);
  failsClearly(memfit('inspect', tmp('absent.safetensors')), /absent\.safetensors: cannot open/);
  assert.equal(readdirSync(dir).filter((f) => !['keep.safetensors', 'in.safetensors', 'trunc.safetensors', 'fp8.safetensors', 'back.safetensors'].includes(f)), [], 'no partial or temporary files');
});

test('inspect of a valid file without tensors (header {}) prints an empty listing; a FIFO input is refused at once (no hang)', () => {
  const empty = tmp('empty.safetensors');
  const b = new Uint8Array(10);
  b[0] = 2;
  b.set([0x7b, 0x7d], 8); // {}
  writeFileSync(empty, b);
  const r = memfit('inspect', empty);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /empty\.safetensors: 0 tensors, 10 B/);
  assert.match(r.stdout, /totals by dtype: none/);
  const j = memfit('inspect', '--json', empty);
  assert.is(j.code, 0, j.stderr);
  assert.equal(JSON.parse(j.stdout).tensors, []);
  const fifo = tmp('in.fifo');
  assert.is(spawnSync('mkfifo', [fifo]).status, 0);
  for (const args of [['inspect', fifo], ['convert-model', fifo, tmp('never.safetensors'), '--to', 'bf16'], ['convert', '--from', 'f32', '--to', 'e4m3', fifo, tmp('never.bin')]]) {
    const t = spawnSync(process.execPath, ['bin/memfit.js', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 15_000 });
    failsClearly({ code: t.status, stdout: t.stdout, stderr: t.stderr }, /in\.fifo: not a regular file \(a FIFO\)/);
  }
  rmSync(fifo);
  rmSync(empty);
});

test('convert-model output rules (openOutput, as convert): a FIFO written in place, a foreign file kept without --force, a directory or an empty path refused up front, the mode kept', () => {
  // A FIFO: a reader gets the whole converted file through it; the FIFO stays a FIFO.
  const fifo = tmp('out.fifo');
  assert.is(spawnSync('mkfifo', [fifo]).status, 0);
  const got = tmp('from-fifo.bin');
  const sh = spawnSync('sh', ['-c', `cat "$1" > "$2" & ${JSON.stringify(process.execPath)} bin/memfit.js convert-model "$3" "$1" --to bf16 -q; rc=$?; wait; exit $rc`, 'sh', fifo, got, MODEL], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  assert.is(sh.status, 0, sh.stderr);
  assert.ok(lstatSync(fifo).isFIFO(), 'still a FIFO');
  const direct = tmp('direct.safetensors');
  assert.is(memfit('convert-model', MODEL, direct, '--to', 'bf16', '-q').code, 0);
  const fromFifo = new Uint8Array(readFileSync(got));
  assert.equal(parseSafetensors(fromFifo).metadata, parseSafetensors(new Uint8Array(readFileSync(direct))).metadata, 'a whole safetensors file came through');
  assert.is(fromFifo.length, readFileSync(direct).length);
  // A file memfit did not write is kept, unless --force; the replacement keeps its mode.
  const precious = tmp('precious.txt');
  writeFileSync(precious, 'precious\n');
  chmodSync(precious, 0o640);
  failsClearly(memfit('convert-model', MODEL, precious, '--to', 'bf16'), /precious\.txt exists and is not a model memfit converted \(it is not a safetensors file\); not replacing it \(choose another path, or pass --force/);
  assert.is(readFileSync(precious, 'utf8'), 'precious\n');
  const f = memfit('convert-model', MODEL, precious, '--to', 'bf16', '--force', '-q');
  assert.is(f.code, 0, f.stderr);
  assert.is(parseSafetensors(new Uint8Array(readFileSync(precious))).tensors.size, 10);
  assert.is(statSync(precious).mode & 0o777, 0o640, 'mode kept');
  // A converted model is ours: replaced without --force.
  assert.is(memfit('convert-model', MODEL, direct, '--to', 'e4m3', '-q').code, 0);
  // Refused before converting: a directory, a missing directory, an empty path, a --block-size that does not apply.
  mkdirSync(tmp('outdir'));
  const d = memfit('convert-model', MODEL, tmp('outdir'), '--to', 'bf16');
  failsClearly(d, /outdir is a directory/);
  assert.is(d.stdout, '');
  failsClearly(memfit('convert-model', MODEL, tmp('nodir/x.safetensors'), '--to', 'bf16'), /the directory .*nodir does not exist/);
  failsClearly(memfit('convert-model', MODEL, '', '--to', 'bf16'), /output: empty path/);
  failsClearly(memfit('convert', '--from', 'f32', '--to', 'e4m3', MODEL, ''), /output: empty path/);
  failsClearly(memfit('convert-model', MODEL, tmp('x.safetensors'), '--to', 'e4m3', '--block-size', '16'), /a block size applies to MX targets/);
  assert.ok(statSync(tmp('outdir')).isDirectory());
  for (const n of [fifo, got, direct, precious, tmp('outdir')]) rmSync(n, { recursive: true });
});

/** A safetensors file from a header object (tensors and __metadata__) and its data bytes. */
function stFile(header: Record<string, unknown>, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

test('a plain U8 tensor is listed like I32: inspect --stats shows - for its stats and prints the rest; convert-model --include of it finds no float tensor', () => {
  const file = tmp('u8.safetensors');
  const f = new Float32Array([1.5, -2]);
  writeFileSync(file, stFile({
    t: { dtype: 'U8', shape: [2, 2], data_offsets: [0, 4] },
    i: { dtype: 'I32', shape: [1], data_offsets: [4, 8] },
    w: { dtype: 'F32', shape: [1, 2], data_offsets: [8, 16] },
  }, new Uint8Array([1, 2, 3, 4, 0, 0, 0, 0, ...new Uint8Array(f.buffer)])));
  const r = memfit('inspect', '--stats', file);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /\nt\s+uint8\s+\[2, 2\]\s+4 B(\s+-){6}\n/);
  assert.match(r.stdout, /\ni\s+int32\s+\[1\]\s+4 B(\s+-){6}\n/);
  assert.match(r.stdout, /\nw\s+float32\s+\[1, 2\]\s+8 B\s+-2\s+1\.5\s+2\s+-0\.25\s+1\.75\s+0\n/);
  assert.match(r.stdout, /totals by dtype:/);
  for (const n of ['t', 'i']) {
    failsClearly(memfit('convert-model', file, tmp('never.safetensors'), '--to', 'bf16', '--include', `^${n}$`), /no tensor to convert: no float tensor matches --include/);
  }
  rmSync(file);
});

test('control characters from a file (tensor names, metadata, error messages) are printed escaped, never sent raw to the terminal', () => {
  const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;
  const title = '\u001b]0;pwned\u0007\u001b[2J';
  const name = 'a\u001b[31mRED\u009b2J\u007f\r';
  const file = tmp('hostile.safetensors');
  const f = new Float32Array([1, 2]);
  writeFileSync(file, stFile({
    __metadata__: { k: title },
    [name]: { dtype: 'F32', shape: [1, 2], data_offsets: [0, 8] },
    b: { dtype: 'F32', shape: [1, 2], data_offsets: [8, 16] },
  }, new Uint8Array([...new Uint8Array(f.buffer), ...new Uint8Array(f.buffer)])));
  const r = memfit('inspect', '--stats', file);
  assert.is(r.code, 0, r.stderr);
  assert.not.match(r.stdout, RAW);
  assert.ok(r.stdout.includes('metadata: k=\\u001b]0;pwned\\u0007\\u001b[2J'), r.stdout);
  assert.ok(r.stdout.includes('\na\\u001b[31mRED\\u009b2J\\u007f\\r  float32'), r.stdout);
  // The columns stay aligned: the escaped name is measured as printed.
  const lines = r.stdout.split('\n');
  const row = (n: string) => lines.find((l) => l.startsWith(n))!;
  assert.is(row('b ').indexOf('float32'), row('a\\u001b').indexOf('float32'));
  assert.is(row('b ').length, row('a\\u001b').length);
  // A newline in a name cannot forge a row: a table cell is one line.
  assert.equal(table([['w\nfake', 'float64'], ['b', 'float32']]), ['w\\nfake  float64', 'b        float32']);
  // Bidirectional overrides reorder what a terminal shows (a name reading as another): escaped too.
  assert.is(terminalSafe('w\u202eth.exe\u2066x'), 'w\\u202eth.exe\\u2066x');
  // JSON: the escapes are JSON's own, so the report parses back to the file's strings.
  const j = memfit('inspect', '--json', file);
  assert.is(j.code, 0, j.stderr);
  assert.not.match(j.stdout, RAW);
  const report = JSON.parse(j.stdout);
  assert.is(report.metadata.k, title);
  assert.is(report.tensors[0].name, name);
  // convert-model's report names the tensor.
  const c = memfit('convert-model', file, tmp('hostile-bf16.safetensors'), '--to', 'bf16', '-q');
  assert.is(c.code, 0, c.stderr);
  assert.not.match(c.stdout, RAW);
  assert.ok(c.stdout.includes('a\\u001b[31mRED\\u009b2J\\u007f\\r'), c.stdout);
  // An error message quoting a tensor name of the file.
  const bad = tmp('hostile-bad.safetensors');
  writeFileSync(bad, stFile({ [name]: { dtype: 'F32', shape: [1, 3], data_offsets: [0, 8] } }, new Uint8Array(f.buffer)));
  for (const args of [['inspect', bad], ['convert-model', bad, tmp('never.safetensors'), '--to', 'bf16']]) {
    const e = memfit(...args);
    failsClearly(e, /tensor 'a\\u001b\[31mRED\\u009b2J\\u007f\\r'/);
    assert.not.match(e.stderr, RAW);
  }
  for (const n of [file, bad, tmp('hostile-bf16.safetensors')]) rmSync(n);
});

test('convert-model --help documents the scale naming convention', () => {
  const r = memfit('convert-model', '--help');
  assert.is(r.code, 0);
  assert.match(r.stdout, /<name>_scale \(x\.weight -> x\.weight_scale\)/);
  assert.match(r.stdout, /--to float32 dequantises/);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
