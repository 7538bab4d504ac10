// The `memfit` command, run as a child process (needs dist/node/cli.js: node scripts/build.mjs).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FORMATS, decode, encode, pack } from '../../src/index.js';
import { parseSafetensors, serializeSafetensors, toRawTensor } from '../../src/io/safetensors.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'memfit-cli-'));

function memfit(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['bin/memfit.js', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function bytes(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function tmp(name: string): string {
  return join(dir, name);
}

function noStack(stderr: string): void {
  assert.not.match(stderr, /\n\s+at /, 'no stack trace');
}

/** Test input: ordinary values at several scales, subnormals, overflow, ±0, ±inf and NaN. */
function sampleFloats(n: number): Float32Array {
  const a = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    a[i] = ((s / 2 ** 32) - 0.5) * 2 ** ((i % 40) - 20);
  }
  a.set([0, -0, Infinity, -Infinity, NaN, 448, 464, 500, -1e6, 2 ** -10, 1e-30], 0);
  return a;
}

test('finfo prints every format, e.g. 448 for float8_e4m3fn', () => {
  const r = memfit('finfo');
  assert.is(r.code, 0, r.stderr);
  for (const f of FORMATS) assert.ok(r.stdout.includes(f.name), f.name);
  const line = r.stdout.split('\n').find((l) => l.startsWith('float8_e4m3fn'));
  assert.ok(line && /\b448\b/.test(line), line);
  const one = memfit('finfo', 'e4m3');
  assert.is(one.code, 0);
  assert.match(one.stdout, /float8_e4m3fn .*448/);
  assert.not.match(one.stdout, /float16/);
});

test('finfo --json', () => {
  const r = memfit('finfo', '--json', 'fp4');
  assert.is(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  assert.is(info.dtype, 'float4_e2m1fn');
  assert.is(info.max, 6);
  const all = JSON.parse(memfit('finfo', '--json').stdout);
  assert.equal(all.map((i: { dtype: string }) => i.dtype), FORMATS.map((f) => f.name));
});

test('finfo of an unknown dtype exits 1 and lists the valid names', () => {
  const r = memfit('finfo', 'float7');
  assert.is(r.code, 1);
  assert.is(r.stdout, '');
  assert.match(r.stderr, /^memfit: unknown dtype "float7"; valid names: /);
  for (const f of FORMATS) assert.ok(r.stderr.includes(f.name), f.name);
  noStack(r.stderr);
});

test('convert float32 -> float8_e4m3fn matches encode byte for byte (also chunked, saturating)', () => {
  const values = sampleFloats(10_001);
  writeFileSync(tmp('in.f32'), bytes(values));
  for (const extra of [[], ['--chunk-size', '64'], ['--saturate', '--chunk-size', '4096']]) {
    // --force: each run replaces the last one's output.
    const r = memfit('convert', '--force', '--from', 'float32', '--to', 'float8_e4m3fn', ...extra, tmp('in.f32'), tmp('out.e4m3'));
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stdout, '');
    const want = encode(values, 'float8_e4m3fn', { saturate: extra.includes('--saturate') });
    assert.equal(new Uint8Array(readFileSync(tmp('out.e4m3'))), bytes(want), extra.join(' '));
  }
});

test('convert to /dev/stdout, /dev/stderr or /proc/self/fd/N of a pipe (a shell pipeline) or a socket (Node\'s child stdio) writes through it in place', async () => {
  const values = sampleFloats(1 << 20);
  writeFileSync(tmp('piped.f32'), bytes(values));
  const want = bytes(encode(values, 'float8_e4m3fn'));
  const args = ['bin/memfit.js', 'convert', '-q', '--from', 'float32', '--to', 'e4m3', tmp('piped.f32')];
  // A real pipe: `memfit ... /dev/stdout | cat > file` (was: "/dev/stdout is a symbolic link to a missing file").
  for (const out of ['/dev/stdout', '/proc/self/fd/1']) {
    const sh = spawnSync('sh', ['-c', '"$@" | cat > "$0"', tmp('from-pipe.e4m3'), process.execPath, ...args, out], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    assert.is(sh.status, 0, sh.stderr);
    assert.is(sh.stderr, '');
    assert.equal(new Uint8Array(readFileSync(tmp('from-pipe.e4m3'))), want, out);
  }
  // A reader that quits early (`| head -c 4`): memfit stops quietly with status 141, as a tool
  // killed by SIGPIPE (pipefail sees the output was cut short).
  const early = spawnSync('bash', ['-c', 'set -o pipefail; "$@" | head -c 4 > /dev/null', 'sh', process.execPath, ...args, '/dev/stdout'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  assert.is(early.stderr, '');
  assert.is(early.status, 141);
  // A socket (what spawn's 'pipe' stdio is), read slowly: 1 MiB is more than the socket holds, so the
  // writer waits for the reader (EAGAIN on Node's non-blocking stdio) and loses nothing.
  for (const [out, stream] of [['/dev/stdout', 'stdout'], ['/dev/stderr', 'stderr'], ['/dev/fd/1', 'stdout']] as const) {
    const p = spawn(process.execPath, [...args, out], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const got: Record<string, Buffer[]> = { stdout: [], stderr: [] };
    for (const k of ['stdout', 'stderr'] as const) {
      p[k].on('data', (d: Buffer) => {
        got[k].push(d);
        p[k].pause();
        setTimeout(() => p[k].resume(), 1);
      });
    }
    const code = await new Promise<number | null>((res) => p.on('close', res));
    const other = stream === 'stdout' ? 'stderr' : 'stdout';
    assert.is(code, 0, Buffer.concat(got.stderr).toString());
    assert.equal(new Uint8Array(Buffer.concat(got[stream])), want, out);
    assert.is(Buffer.concat(got[other]).length, 0, `${out}: nothing on ${other}`);
  }
  // A socket that is not this process's own stream (a named Unix socket) is still refused.
  const server = createServer();
  await new Promise<void>((res) => server.listen(tmp('named.sock'), res));
  const r = memfit('convert', '-q', '--from', 'float32', '--to', 'e4m3', tmp('piped.f32'), tmp('named.sock'));
  await new Promise((res) => server.close(res));
  assert.is(r.code, 1);
  assert.match(r.stderr, /named\.sock is a socket; memfit writes only regular files/);
  noStack(r.stderr);
  rmSync(tmp('piped.f32'));
  rmSync(tmp('from-pipe.e4m3'));
});

test('convert float32 -> bfloat16 (little-endian uint16) and back to float32', () => {
  const values = sampleFloats(3001);
  writeFileSync(tmp('in2.f32'), bytes(values));
  assert.is(memfit('convert', '--from', 'f32', '--to', 'bf16', '--rounding', 'toward-zero', '--chunk-size', '100', tmp('in2.f32'), tmp('out.bf16')).code, 0);
  const codes = encode(values, 'bfloat16', { rounding: 'toward-zero' });
  const file = readFileSync(tmp('out.bf16'));
  assert.is(file.length, values.length * 2);
  assert.equal(new Uint8Array(file), bytes(codes));
  assert.is(memfit('convert', '--from', 'bf16', '--to', 'float32', tmp('out.bf16'), tmp('back.f32')).code, 0);
  const back = readFileSync(tmp('back.f32'));
  assert.equal(new Uint8Array(back), bytes(decode(codes, 'bfloat16')));
});

test('convert float32 -> fp4 (packed) and back round-trips representable values', () => {
  const grid = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.5, -1, -1.5, -2, -3, -4, -6, 0];
  const values = Float32Array.from({ length: 16 * 65 }, (_, i) => grid[(i * 7) % 16]);
  writeFileSync(tmp('in.f32'), bytes(values));
  let r = memfit('convert', '--from', 'float32', '--to', 'fp4', '--chunk-size', '40', tmp('in.f32'), tmp('out.fp4'));
  assert.is(r.code, 0, r.stderr);
  const packed = new Uint8Array(readFileSync(tmp('out.fp4')));
  assert.is(packed.length, values.length / 2);
  assert.equal(packed, pack(encode(values, 'fp4') as Uint8Array, 'fp4'));
  r = memfit('convert', '--from', 'fp4', '--to', 'float32', tmp('out.fp4'), tmp('back-fp4.f32'));
  assert.is(r.code, 0, r.stderr);
  const buf = readFileSync(tmp('back-fp4.f32'));
  const back = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  assert.equal(Array.from(back), Array.from(values));
});

test('convert --unpacked fp4 writes one code a byte', () => {
  const values = Float32Array.from([1, -6, 0.5, 3, 2.9]);
  writeFileSync(tmp('in5.f32'), bytes(values));
  const r = memfit('convert', '--from', 'float32', '--to', 'e2m1', '--unpacked', tmp('in5.f32'), tmp('out.u4'));
  assert.is(r.code, 0, r.stderr);
  assert.equal(new Uint8Array(readFileSync(tmp('out.u4'))), encode(values, 'e2m1'));
  writeFileSync(tmp('bad.u4'), Uint8Array.from([1, 2, 0x1f]));
  const bad = memfit('convert', '--from', 'e2m1', '--to', 'f32', '--unpacked', tmp('bad.u4'), tmp('x.f32'));
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /bad\.u4: byte 2 holds 0x1f/);
});

test('convert to packed fp6 across chunk boundaries, and back', () => {
  const values = sampleFloats(1001).map((v) => (Number.isFinite(v) ? v : 1));
  writeFileSync(tmp('in6.f32'), bytes(values));
  let r = memfit('convert', '--from', 'float32', '--to', 'float6_e2m3fn', '--chunk-size', '8', tmp('in6.f32'), tmp('out.fp6'));
  assert.is(r.code, 0, r.stderr);
  const codes = encode(values, 'float6_e2m3fn') as Uint8Array;
  const packed = new Uint8Array(readFileSync(tmp('out.fp6')));
  assert.is(packed.length, Math.ceil((1001 * 6) / 8));
  assert.equal(packed, pack(codes, 'float6_e2m3fn'));
  // floor(8 * 751 / 6) = 1001 codes come back.
  r = memfit('convert', '--from', 'e2m3', '--to', 'e2m3', '--unpacked', tmp('out.fp6'), tmp('x')); // unpacked input: 751 codes, some > 63
  assert.is(r.code, 1);
  r = memfit('convert', '--from', 'e2m3', '--to', 'e2m3', tmp('out.fp6'), tmp('same.fp6'));
  assert.is(r.code, 0, r.stderr);
  assert.equal(new Uint8Array(readFileSync(tmp('same.fp6'))), packed);
});

test('convert refuses a 7-byte float32 file and leaves the existing output untouched', () => {
  writeFileSync(tmp('seven.f32'), new Uint8Array(7));
  writeFileSync(tmp('keep.bin'), 'previous contents');
  const r = memfit('convert', '--from', 'float32', '--to', 'e4m3fn', tmp('seven.f32'), tmp('keep.bin'));
  assert.is(r.code, 1);
  assert.ok(r.stderr.startsWith('memfit: '), r.stderr);
  assert.ok(r.stderr.includes(tmp('seven.f32')), r.stderr);
  assert.match(r.stderr, /size 7 bytes is not a whole number of float32 elements \(4 bytes each\)/);
  noStack(r.stderr);
  assert.is(readFileSync(tmp('keep.bin'), 'utf8'), 'previous contents');
  assert.equal(readdirSync(dir).filter((f) => f.includes('.tmp-')), []);
});

test('convert: missing input and bad options are clean errors', () => {
  let r = memfit('convert', '--from', 'float32', '--to', 'e4m3fn', tmp('missing.f32'), tmp('o'));
  assert.is(r.code, 1);
  assert.match(r.stderr, /^memfit: .*ENOENT.*missing\.f32/);
  noStack(r.stderr);
  r = memfit('convert', '--from', 'float32', '--to', 'float9', tmp('in.f32'), tmp('o'));
  assert.is(r.code, 1);
  assert.match(r.stderr, /^memfit: unknown dtype "float9"/);
  r = memfit('convert', '--from', 'float32', tmp('in.f32'), tmp('o'));
  assert.is(r.code, 1);
  assert.match(r.stderr, /^memfit: .*--to/);
  r = memfit('convert', '--from', 'float32', '--to', 'fp4', '--seed', '3', tmp('in.f32'), tmp('o'));
  assert.is(r.code, 1);
  assert.match(r.stderr, /--seed only applies to --rounding stochastic/);
  r = memfit('convert', '--unpacked', '--from', 'float32', '--to', 'e4m3', tmp('in.f32'), tmp('o'));
  assert.is(r.code, 1);
  assert.match(r.stderr, /^memfit: --unpacked applies to the sub-byte formats .*float32 and e4m3 have whole-byte codes/);
});

test('convert replaces an existing output file only with --force (raw codes carry no header to tell an earlier conversion)', () => {
  writeFileSync(tmp('w.f32'), bytes(Float32Array.of(1, 2, 3, 4)));
  writeFileSync(tmp('notes.txt'), 'my notes');
  let r = memfit('convert', '-q', '--from', 'float32', '--to', 'e4m3', tmp('w.f32'), tmp('notes.txt'));
  assert.is(r.code, 1);
  assert.match(r.stderr, /^memfit: .*notes\.txt exists; not replacing it \(choose another output, or add --force to replace it\)/);
  noStack(r.stderr);
  assert.is(readFileSync(tmp('notes.txt'), 'utf8'), 'my notes');
  r = memfit('convert', '-q', '--force', '--from', 'float32', '--to', 'e4m3', tmp('w.f32'), tmp('notes.txt'));
  assert.is(r.code, 0, r.stderr);
  assert.equal([...readFileSync(tmp('notes.txt'))], [...encode(Float32Array.of(1, 2, 3, 4), 'float8_e4m3fn')]);
});

test('convert with stochastic rounding and a seed is reproducible', () => {
  const values = sampleFloats(5000);
  writeFileSync(tmp('in7.f32'), bytes(values));
  const run = (out: string, seed: string) => {
    const r = memfit('convert', '--from', 'f32', '--to', 'e5m2', '--rounding', 'stochastic', '--seed', seed, '--chunk-size', '1024', tmp('in7.f32'), tmp(out));
    assert.is(r.code, 0, r.stderr);
    return new Uint8Array(readFileSync(tmp(out)));
  };
  const a = run('s1', '42');
  assert.equal(run('s2', '42'), a);
  assert.not.equal(run('s3', '43'), a);
  // Chunked (1024 elements) equals one encode() of the whole array: the stream offset carries over.
  const whole = encode(values, 'e5m2', { rounding: 'stochastic', seed: 42n });
  assert.equal(a, new Uint8Array(whole.buffer));
});

test('decode prints code and exact value', () => {
  const r = memfit('decode', '--dtype', 'float8_e4m3fn', '7e');
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, '0x7e  448\n');
  const more = memfit('decode', '--dtype', 'e4m3', '0x7F', '01', 'fe');
  assert.is(more.stdout, '0x7f  NaN\n0x01  0.001953125\n0xfe  -448\n');
  assert.is(memfit('decode', '--dtype', 'f32', '3dcccccd').stdout, '0x3dcccccd  0.100000001490116119384765625\n');
  assert.is(memfit('decode', '--dtype', 'e5m2', '7c', 'fc').stdout, '0x7c  Infinity\n0xfc  -Infinity\n');
  const bad = memfit('decode', '--dtype', 'fp4', '10');
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /^memfit: code 10 does not fit float4_e2m1fn/);
  assert.is(memfit('decode', '--dtype', 'e4m3', 'xyz').code, 1);
});

test('encode handles negative values with and without --', () => {
  let r = memfit('encode', '--dtype', 'e4m3', '--', '-1.5');
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, '-1.5 -> 0xbc (-1.5)\n');
  r = memfit('encode', '--dtype', 'e4m3', '-1.5', '500', '-2e-3');
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, '-1.5 -> 0xbc (-1.5)\n500 -> 0x7f (NaN)\n-0.002 -> 0x81 (-0.001953125)\n');
  r = memfit('encode', '--dtype', 'e4m3', '--saturate', '500', '--', '-inf');
  assert.is(r.stdout, '500 -> 0x7e (448)\n-Infinity -> 0xfe (-448)\n');
  r = memfit('encode', '--dtype', 'e4m3', 'abc');
  assert.is(r.code, 1);
  assert.match(r.stderr, /^memfit: "abc" is not a number/);
});

test('demo runs and stays short', () => {
  const r = memfit('demo');
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /float8_e4m3fn/);
  assert.match(r.stdout, /fp4 packing: .* 4 bytes/);
  assert.ok(r.stdout.split('\n').length <= 60);
});

test('train picks its backend quietly: one line says which and why, no driver noise; --verbose shows the probe', () => {
  const r = memfit('train', '--steps', '1', '--batch-size', '1', '--seq-len', '8', '--sample', '0');
  assert.is(r.code, 0, r.stderr);
  const all = r.stdout + r.stderr;
  assert.not.match(all, /XDG_RUNTIME_DIR|Vulkan|dawn|\.cpp:/i);
  const lines = all.split('\n').filter((l) => l.startsWith('memfit: '));
  assert.is(lines.length, 1, all);
  assert.match(lines[0], /^memfit: (wasm backend: automatic choice: .*|webgpu backend on .*)$/);
  if (lines[0].includes('wasm backend')) {
    const v = memfit('train', '--steps', '1', '--batch-size', '1', '--seq-len', '8', '--sample', '0', '--verbose');
    assert.is(v.code, 0, v.stderr);
    assert.match(v.stdout + v.stderr, /memfit: webgpu probe: /);
  }
});

test('train --precision bf16-mixed trains under autocast; an unknown precision is refused', () => {
  const r = memfit('train', '--steps', '3', '--batch-size', '2', '--seq-len', '16', '--sample', '0', '--precision', 'bf16-mixed', '--backend', 'wasm');
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /precision bf16-mixed/);
  const bad = memfit('train', '--steps', '1', '--precision', 'fp7');
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /--precision.*fp7.*32-true, bf16-mixed, 16-mixed, bf16-true, 16-true, fp8/s);
});

test('train --precision bf16-true --master-weights --stochastic-rounding trains half-precision weights; the flags are refused for float32 weights', () => {
  const r = memfit('train', '--steps', '3', '--batch-size', '2', '--seq-len', '16', '--sample', '0', '--precision', 'bf16-true', '--master-weights', '--stochastic-rounding', '--backend', 'wasm');
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /precision bf16-true, float32 master weights, stochastic rounding/);
  const f16 = memfit('train', '--steps', '2', '--batch-size', '2', '--seq-len', '16', '--sample', '0', '--precision', '16-true', '--backend', 'wasm');
  assert.is(f16.code, 0, f16.stderr);
  const bad = memfit('train', '--steps', '1', '--master-weights', '--backend', 'wasm');
  assert.is(bad.code, 1, bad.stderr);
  assert.match(bad.stderr, /--master-weights applies to .*bf16-true or 16-true \(got 32-true\)/);
});

test('train --memory least: bf16 weights, adamw8bit, every layer checkpointed, gradient release; lower peaks; explicit options win; bad combinations refused', () => {
  const args = ['train', '--backend', 'wasm', '--steps', '3', '--batch-size', '4', '--seq-len', '32', '--sample', '0', '--json'];
  const plain = memfit(...args);
  assert.is(plain.code, 0, plain.stderr);
  const least = memfit(...args, '--memory', 'least');
  assert.is(least.code, 0, least.stderr);
  const a = JSON.parse(plain.stdout), b = JSON.parse(least.stdout);
  assert.equal(b.checkpointedModules, ['layers.0', 'layers.1']);
  assert.is(b.checkpointChunks, 1, "the preset's auto: 4 x 32 tokens x 64 hidden = 8Ki activations, less than two pieces of 16Ki");
  assert.ok(Number.isFinite(b.lastLoss));
  // Released as soon as complete: at most one layer's weight gradients (they add up over the layer's chunks) and a few others.
  assert.ok(b.memory.gradient.peak < a.memory.gradient.peak / 2, `gradient peak ${b.memory.gradient.peak} vs ${a.memory.gradient.peak}`);
  assert.is(b.memory.parameter.current, a.memory.parameter.current / 2, 'bfloat16 weights');
  assert.ok(b.memory.optimizer.peak < a.memory.optimizer.peak / 3, '8-bit state');
  const text = memfit('train', '--backend', 'wasm', '--steps', '1', '--batch-size', '2', '--seq-len', '16', '--sample', '0', '--memory', 'least', '--optimizer', 'adamw');
  assert.is(text.code, 0, text.stderr);
  assert.match(text.stdout, /adamw lr .*precision bf16-true, stochastic rounding/);
  assert.match(text.stdout, /gradient release: the optimizer steps inside backward/);
  const budget = memfit('train', '--steps', '1', '--memory', 'least', '--memory-budget', '50%');
  assert.is(budget.code, 1);
  assert.match(budget.stderr, /--memory least checkpoints every layer itself; give it or --memory-budget, not both/);
  const f16 = memfit('train', '--steps', '1', '--backend', 'wasm', '--gradient-release', '--precision', '16-mixed');
  assert.is(f16.code, 1);
  assert.match(f16.stderr, /--gradient-release cannot be combined with --precision 16-mixed/);
  const least16 = memfit('train', '--steps', '1', '--backend', 'wasm', '--memory', 'least', '--precision', '16-mixed');
  assert.is(least16.code, 1);
  assert.match(least16.stderr, /--memory least \(gradient release\) cannot be combined with --precision 16-mixed/);
});

test('train --checkpoint-modules: the layers named, the same losses bit for bit, a lower activation peak; no match lists the modules', () => {
  const args = ['train', '--backend', 'wasm', '--steps', '3', '--batch-size', '4', '--seq-len', '32', '--sample', '0', '--json'];
  const plain = memfit(...args);
  assert.is(plain.code, 0, plain.stderr);
  const ck = memfit(...args, '--checkpoint-modules', '^layers\\.\\d+$');
  assert.is(ck.code, 0, ck.stderr);
  const a = JSON.parse(plain.stdout), b = JSON.parse(ck.stdout);
  assert.equal(a.checkpointedModules, []);
  assert.equal(b.checkpointedModules, ['layers.0', 'layers.1']);
  assert.is(b.firstLoss, a.firstLoss);
  assert.is(b.lastLoss, a.lastLoss);
  assert.is(b.validationLoss, a.validationLoss);
  assert.ok(b.memory.activation.peak < a.memory.activation.peak * 0.8, `activation peak ${b.memory.activation.peak} vs ${a.memory.activation.peak}`);
  const lean = memfit(...args, '--recompute-logits');
  assert.is(lean.code, 0, lean.stderr);
  const c = JSON.parse(lean.stdout);
  assert.equal([c.firstLoss, c.lastLoss, c.validationLoss], [a.firstLoss, a.lastLoss, a.validationLoss], '--recompute-logits: the same losses bit for bit');
  const text = memfit('train', '--backend', 'wasm', '--steps', '1', '--batch-size', '2', '--seq-len', '16', '--sample', '0', '--checkpoint-modules', 'mlp$', '--recompute-logits');
  assert.is(text.code, 0, text.stderr);
  assert.match(text.stdout, /activation checkpointing: layers\.0\.mlp, layers\.1\.mlp \(recomputed in backward\)/);
  assert.match(text.stdout, /logits recomputed in backward: none kept between forward and backward/);
  const none = memfit('train', '--steps', '1', '--checkpoint-modules', '^blocks');
  assert.is(none.code, 1);
  assert.match(none.stderr, /memfit: checkpointModules: \/\^blocks\/ matches none of Llama's submodules: embedTokens, rotaryEmb, layers, layers\.0, /);
  noStack(none.stderr);
  const bad = memfit('train', '--steps', '1', '--checkpoint-modules', '(');
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /"\(" is not a regular expression/);
  const chunked = memfit(...args, '--checkpoint-modules', '^layers\\.\\d+$', '--checkpoint-chunks', '2');
  assert.is(chunked.code, 0, chunked.stderr);
  assert.is(JSON.parse(chunked.stdout).firstLoss, a.firstLoss, 'chunks change no forward');
  const lone = memfit('train', '--steps', '1', '--checkpoint-chunks', '2');
  assert.is(lone.code, 1);
  assert.match(lone.stderr, /--checkpoint-chunks splits the checkpoints of --checkpoint-modules \(or --memory least\): give one of them/);
  const zero = memfit('train', '--steps', '1', '--checkpoint-modules', 'mlp$', '--checkpoint-chunks', '0');
  assert.is(zero.code, 1);
  assert.match(zero.stderr, /--checkpoint-chunks must be a positive integer or auto, got 0/);
});

test('train --precision fp8 trains with fp8 Linear layers', () => {
  const r = memfit('train', '--steps', '3', '--batch-size', '2', '--seq-len', '16', '--sample', '0', '--precision', 'fp8', '--backend', 'wasm');
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /precision fp8/);
});

test('train --precision 16-mixed: a non-finite loss is a step the GradScaler skips; twenty in a row stop the run', () => {
  const r = memfit('train', '--backend', 'wasm', '--precision', '16-mixed', '--lr', '1e30', '--steps', '60', '--batch-size', '2', '--seq-len', '16', '--sample', '0');
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stdout, /the GradScaler skipped the update/);
  assert.match(r.stderr, /the loss was not finite for 20 steps in a row/);
});

test('encode: signed hex (the suggested `-- -0x10` works), NaN signs independent of the platform, -0 echoed as -0', () => {
  let r = memfit('encode', '--dtype', 'bf16', '-0x10');
  assert.is(r.code, 1);
  assert.match(r.stderr, /memfit encode --dtype e4m3fn -- -0x10/);
  r = memfit('encode', '--dtype', 'bf16', '--', '-0x10', '+0x10', '0x10');
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, '-16 -> 0xc180 (-16)\n16 -> 0x4180 (16)\n16 -> 0x4180 (16)\n');
  // nan and 0/0 give the NaN with the sign bit clear, -nan the one with it set; -0 stays -0.
  r = memfit('encode', '--dtype', 'e4m3', 'nan', '0/0', '--', '-nan', '-0', '-0/0');
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, 'NaN -> 0x7f (NaN)\nNaN -> 0x7f (NaN)\n-NaN -> 0xff (NaN)\n-0 -> 0x80 (-0)\nNaN -> 0x7f (NaN)\n');
  // fp6/fp4 have no NaN: a NaN gives the zero of the opposite sign (README, ml_dtypes' rule).
  r = memfit('encode', '--dtype', 'e3m2', 'nan', '0/0', '--', '-nan');
  assert.is(r.stdout, 'NaN -> 0x20 (-0)\nNaN -> 0x20 (-0)\n-NaN -> 0x00 (0)\n');
  r = memfit('encode', '--dtype', 'fp4', 'nan', '--', '-nan');
  assert.is(r.stdout, 'NaN -> 0x8 (-0)\n-NaN -> 0x0 (0)\n');
});

test('output piped into a reader that has quit (memfit demo | head -1): a quiet exit, no EPIPE stack trace', async () => {
  for (const args of [['demo'], ['finfo', '--json'], ['finfo']]) {
    const p = spawn(process.execPath, ['bin/memfit.js', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout.destroy(); // the reader is gone before the first write
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((res) => p.on('close', res));
    assert.is(stderr, '', `${args.join(' ')}: nothing on stderr`);
    assert.is(code, 0, args.join(' '));
  }
});

test('train checks --checkpoint, --report and --text before training: bad paths, empty paths, a FIFO or a device as text', () => {
  mkdirSync(tmp('ckdir'), { recursive: true });
  symlinkSync(tmp('missing-target'), tmp('dangling.st'));
  spawnSync('mkfifo', [tmp('text.fifo')]);
  const base = ['train', '--backend', 'wasm', '--steps', '2', '--batch-size', '1', '--seq-len', '8', '--sample', '0'];
  const cases: Array<[string[], RegExp]> = [
    [['--checkpoint', `${tmp('ckdir')}/`], /--checkpoint .*ckdir\/ is a directory/],
    [['--checkpoint', `${tmp('nosuch')}/`], /--checkpoint .*nosuch\/ names a directory \(it ends in \/\)/],
    [['--checkpoint', tmp('nodir/ck.st')], /--checkpoint .*nodir\/ck\.st: the directory .*nodir does not exist/],
    [['--checkpoint', tmp('dangling.st')], /--checkpoint .*dangling\.st is a symbolic link to a missing file/],
    [['--report', tmp('nodir/r.html')], /--report .*nodir\/r\.html: the directory .*nodir does not exist/],
    [['--report', tmp('ckdir')], /--report .*ckdir is a directory/],
    [['--checkpoint', ''], /--checkpoint: empty path/],
    [['--report', ''], /--report: empty path/],
    [['--text', ''], /--text: empty path/],
    [['--text', '/dev/zero'], /--text \/dev\/zero: not a regular file \(a character device\)/],
    [['--text', tmp('text.fifo')], /--text .*text\.fifo: not a regular file \(a FIFO\)/],
  ];
  for (const [extra, re] of cases) {
    const r = memfit(...base, ...extra);
    assert.is(r.code, 1, `${extra.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.is(r.stdout, '', `${extra.join(' ')}: refused before training`);
    noStack(r.stderr);
  }
  assert.ok(statSync(tmp('ckdir')).isDirectory());
});

test('train --resume: nothing left to train is an error (checkpoint unchanged); another optimizer is named; the checkpoint keeps its mode; --checkpoint-chunks clamping is stated', () => {
  const ckpt = tmp('resume.safetensors');
  const base = ['train', '--backend', 'wasm', '--batch-size', '2', '--seq-len', '8', '--sample', '0', '--checkpoint', ckpt];
  let r = memfit(...base, '--steps', '4');
  assert.is(r.code, 0, r.stderr);
  chmodSync(ckpt, 0o600);
  const before = readFileSync(ckpt);
  const mtime = statSync(ckpt).mtimeMs;
  for (const steps of ['3', '4']) {
    r = memfit(...base, '--steps', steps, '--resume');
    assert.is(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`nothing to train: .*resume\\.safetensors is at step 4 and --steps is ${steps}`));
    noStack(r.stderr);
  }
  r = memfit(...base, '--steps', '6', '--resume', '--optimizer', 'sgd');
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, /cannot resume .*resume\.safetensors with --optimizer sgd: the checkpoint holds the state of --optimizer adamw/);
  for (const p of ['16-mixed', 'bf16-true']) {
    r = memfit(...base, '--steps', '6', '--resume', '--precision', p);
    assert.is(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`cannot resume .*resume\\.safetensors with --precision ${p}: its run was trained with --precision 32-true`));
  }
  assert.equal(readFileSync(ckpt), before, 'the checkpoint is unchanged');
  assert.is(statSync(ckpt).mtimeMs, mtime);
  r = memfit(...base, '--steps', '5', '--resume');
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /checkpoint: .* \(step 5\)/);
  assert.is(statSync(ckpt).mode & 0o777, 0o600, 'the replaced checkpoint keeps its mode');
  // A checkpoint of an earlier version records no optimizer: the load error is said to be about the optimizer.
  const parsed = parseSafetensors(new Uint8Array(readFileSync(ckpt)));
  const meta = { ...parsed.metadata };
  const json = JSON.parse(meta['memfit.checkpoint']);
  delete json.extra.run.optimizer;
  meta['memfit.checkpoint'] = JSON.stringify(json);
  delete meta['memfit.dtypes'];
  const old = tmp('old-version.safetensors');
  writeFileSync(old, serializeSafetensors(Object.fromEntries([...parsed.tensors].map(([n, t]) => [n, toRawTensor(n, t)])), meta));
  r = memfit(...base.map((a) => (a === ckpt ? old : a)), '--steps', '9', '--resume', '--optimizer', 'sgd');
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, /cannot resume .*old-version\.safetensors with --optimizer sgd: the checkpoint holds the state of another optimizer \(.*betas/);
  noStack(r.stderr);
  r = memfit('train', '--backend', 'wasm', '--steps', '1', '--batch-size', '2', '--seq-len', '8', '--sample', '0', '--checkpoint-modules', '^layers\\.0$', '--checkpoint-chunks', '100');
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /--checkpoint-chunks 100 is more pieces than the batch has sequences: clamped to the batch size, 2/);
});

test('train and plan refuse, before any work, a batch no buffer holds, a text too short for a window (validation split too) and bad numbers', () => {
  for (const cmd of [['train', '--steps', '1', '--sample', '0'], ['plan', '--budget', '50%', '--repeats', '1']]) {
    let r = memfit(...cmd, '--backend', 'wasm', '--batch-size', '100000000');
    assert.is(r.code, 1, r.stderr);
    assert.match(r.stderr, /^memfit: a batch of 100000000 x \d+ token ids needs \d+ bytes, more than the wasm backend's maxBufferSize/);
    noStack(r.stderr);
    r = memfit(...cmd, '--backend', 'wasm', '--batch-size', '1', '--seq-len', '2000000000');
    assert.is(r.code, 1, r.stderr);
    assert.match(r.stderr, /^memfit: the train split has \d+ bytes, fewer than seqLen \+ 1 = 2000000001/);
    noStack(r.stderr);
  }
  // 1035 bytes: a train split of 983, a validation split of 52, too short for windows of 100: refused before training.
  writeFileSync(tmp('short.txt'), 'the quick brown fox jumps over the lazy dog. '.repeat(23));
  const ckpt = tmp('short-run.safetensors');
  let r = memfit('train', '--backend', 'wasm', '--steps', '2', '--batch-size', '1', '--seq-len', '100', '--sample', '0', '--text', tmp('short.txt'), '--checkpoint', ckpt);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, /^memfit: the validation split has 52 bytes, fewer than seqLen \+ 1 = 101/);
  assert.not.match(r.stdout, /step 1/);
  assert.throws(() => statSync(ckpt), /ENOENT/, 'no checkpoint written');
  for (const bad of ['', '0x10', '1e3', '2.5']) {
    r = memfit('train', '--steps', bad);
    assert.is(r.code, 1);
    assert.match(r.stderr, new RegExp(`--steps must be an integer, got ${JSON.stringify(JSON.stringify(bad)).slice(1, -1).replace(/\./g, '\\.')}`));
  }
  r = memfit('plan', '--budget', '50%', '--seed', '-1');
  assert.is(r.code, 1);
  assert.match(r.stderr, /^memfit: --seed must be an integer >= 0, got -1/);
  // plan's --report is checked up front, as train's: an empty path, a missing directory.
  r = memfit('plan', '--budget', '50%', '--repeats', '1', '--report', '');
  assert.is(r.code, 1);
  assert.match(r.stderr, /--report/);
  r = memfit('plan', '--budget', '50%', '--repeats', '1', '--report', tmp('no-such-dir/p.html'));
  assert.is(r.code, 1);
  assert.not.match(r.stdout, /plan/, 'nothing planned');
  assert.match(r.stderr, /no-such-dir/);
});

test('train (what npm start runs): the loss falls, memory is reported by category, a checkpoint resumes', () => {
  const ckpt = tmp('train.safetensors');
  const args = ['train', '--backend', 'wasm', '--steps', '12', '--batch-size', '4', '--seq-len', '32', '--sample', '16', '--checkpoint', ckpt];
  const r = memfit(...args, '--json');
  assert.is(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { steps: number; firstLoss: number; lastLoss: number; memory: Record<string, { current: number; peak: number }>; sample: string };
  assert.is(j.steps, 12);
  assert.ok(j.lastLoss < j.firstLoss - 0.3, `loss ${j.firstLoss} -> ${j.lastLoss}`);
  assert.ok(j.memory.parameter.current > 0 && j.memory.optimizer.current === 2 * j.memory.parameter.current);
  assert.ok(j.memory.activation.peak > 0 && j.memory.gradient.current === 0);
  assert.ok(j.sample.startsWith('The ') && Buffer.byteLength(j.sample) >= 16);
  const again = memfit(...args.map((a) => (a === '12' ? '14' : a)), '--resume');
  assert.is(again.code, 0, again.stderr);
  assert.match(again.stdout, /resumed from .* at step 12/);
  assert.match(again.stdout, /memory by category/);
  assert.match(again.stdout, /checkpoint: .* \(step 14\)/);
  const bad = memfit('train', '--steps', '0');
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /--steps must be a positive integer/);
  noStack(bad.stderr);
});

test('train --report writes one self-contained HTML report with the three charts, and never replaces a foreign file or the input', () => {
  const report = tmp('report.html');
  const args = ['train', '--backend', 'wasm', '--steps', '8', '--batch-size', '2', '--seq-len', '16', '--sample', '8'];
  const r = memfit(...args, '--report', report);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`report: ${report.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\n`));
  const html = readFileSync(report, 'utf8');
  assert.match(html, /^<!doctype html>/);
  assert.not.match(html, /\b(?:src|href|action)\s*=|<link\b|url\(|@import/i, 'no external resources');
  assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
  const chart = (id: string): string => {
    const m = new RegExp(`<svg[^>]*data-chart="${id}"[\\s\\S]*?</svg>`).exec(html);
    assert.ok(m, `the ${id} chart`);
    return m![0];
  };
  const seriesPoints = (svg: string, name: string): number => {
    const m = new RegExp(`<path data-series="${name}" d="([^"]*)"`).exec(svg);
    assert.ok(m, `series ${name}`);
    return (m![1].match(/[ML]/g) ?? []).length;
  };
  assert.is(seriesPoints(chart('loss'), 'train loss'), 8);
  assert.is(seriesPoints(chart('loss'), 'validation loss'), 1);
  assert.match(chart('loss'), /cross-entropy \(nats per byte\)/);
  assert.is(seriesPoints(chart('throughput'), 'tokens/s per step'), 8);
  assert.match(chart('throughput'), />tokens\/s</);
  for (const c of ['parameter', 'gradient', 'optimizer', 'activation', 'data', 'temporary']) assert.is(seriesPoints(chart('memory'), c), 8, c);
  assert.match(chart('memory'), /allocated \((KiB|MiB)\)/);
  const records = JSON.parse(/<script type="application\/json" id="memfit-records">(.*?)<\/script>/s.exec(html)![1]) as { steps: { step: number; loss: number; memory: Record<string, number>; peakAllocated: number }[] };
  assert.equal(records.steps.map((s) => s.step), [1, 2, 3, 4, 5, 6, 7, 8]);
  for (const s of records.steps) assert.is(Object.values(s.memory).reduce((a, b) => a + b, 0), s.peakAllocated);
  assert.ok(records.steps[7].memory.optimizer === 2 * records.steps[7].memory.parameter, 'AdamW state at the peak');
  // A report replaces a report.
  assert.is(memfit(...args, '--report', report).code, 0);

  // A file that is not a report: refused before training, untouched, nothing left behind; --force replaces it.
  const notes = tmp('notes.html');
  writeFileSync(notes, '<!doctype html><title>my notes</title>');
  const before = readdirSync(dir).sort();
  const refused = memfit(...args, '--report', notes);
  assert.is(refused.code, 1);
  assert.match(refused.stderr, /--report .*notes\.html exists and is not a memfit report; not replacing it \(choose another path, or pass --force\)/);
  assert.not.match(refused.stdout, /training a Llama/, 'refused before training');
  noStack(refused.stderr);
  assert.is(readFileSync(notes, 'utf8'), '<!doctype html><title>my notes</title>');
  assert.equal(readdirSync(dir).sort(), before, 'no temporary file left');
  const forced = memfit(...args, '--report', notes, '--force');
  assert.is(forced.code, 0, forced.stderr);
  assert.match(readFileSync(notes, 'utf8'), /<meta name="generator" content="memfit training report">/);

  // The --text input is never the report, --force or not.
  const corpus = tmp('corpus.txt');
  writeFileSync(corpus, 'Four score and seven years ago our fathers brought forth on this continent a new nation. '.repeat(20));
  for (const extra of [[], ['--force']]) {
    const r2 = memfit(...args, '--text', corpus, '--report', corpus, ...extra);
    assert.is(r2.code, 1);
    assert.match(r2.stderr, /--report .*corpus\.txt is the --text file; choose another report path/);
  }
  assert.match(readFileSync(corpus, 'utf8'), /^Four score/);
  const dirReport = memfit(...args, '--report', dir);
  assert.is(dirReport.code, 1);
  assert.match(dirReport.stderr, /--report .* is a directory/);
});

test('--help works on the program and every command', () => {
  for (const cmd of [[], ['finfo'], ['convert'], ['decode'], ['encode'], ['demo'], ['train']]) {
    const r = memfit(...cmd, '--help');
    assert.is(r.code, 0, cmd.join(' '));
    assert.match(r.stdout, /Usage: memfit/);
  }
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
