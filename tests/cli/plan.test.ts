// `memfit plan` and `memfit train --memory-budget`, run as child processes (dist/node/cli.js):
// the candidates, the plan, predicted and measured peak and step time, the report file, and the
// errors for a bad or unreachable budget.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'memfit-plan-'));
const SMALL = ['--batch-size', '4', '--seq-len', '32', '--repeats', '1'];

function memfit(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['bin/memfit.js', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 180_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const num = (re: RegExp, s: string): number => {
  const m = re.exec(s);
  assert.ok(m, `${re} in:\n${s}`);
  return Number(m![1]);
};

test('memfit plan prints the candidates, combinations and the plan; the measured peak is the predicted one within 5%; writes the report', () => {
  const report = join(dir, 'plan.html');
  const r = memfit('plan', '--config', 'tiny', '--budget', '90%', '--report', report, ...SMALL);
  assert.is(r.code, 0, r.stderr);
  const out = r.stdout;
  assert.match(out, /memfit plan: Llama tiny: 2 layers, hidden 64, 4 heads, intermediate 176, vocabulary 256; batch 4 x 32/);
  for (const c of ['layers.0', 'layers.0.selfAttn', 'layers.0.mlp [saveMatmuls]', 'layers.1.mlp']) assert.match(out, new RegExp(`\\n  ${c.replace(/[.[\]]/g, '\\$&')} +\\d`), c);
  assert.match(out, /layers\.0 \+ layers\.1 +\d/);
  assert.match(out, /\nplan: layers\./);
  const predicted = num(/predicted: peak [\d.]+ \w+ \((\d+) bytes\)/, out);
  const measured = num(/measured: peak [\d.]+ \w+ \((\d+) bytes/, out);
  const budget = num(/budget: 90% = [\d.]+ \w+ \((\d+) bytes\)/, out);
  assert.ok(predicted <= budget);
  assert.ok(Math.abs(measured / predicted - 1) <= 0.05, `measured ${measured}, predicted ${predicted}`);
  const html = readFileSync(report, 'utf8');
  assert.match(html, /^<!doctype html>\s*<html lang="en">\s*<head>\s*<meta charset="utf-8">\s*<meta name="generator" content="memfit plan report">/);
  assert.match(html, /data-chart="tradeoff"/);
  assert.match(html, /data-chart="timeline"/);
  assert.match(out, new RegExp(`report: ${report}`));
});

test('memfit plan --json: one object with the plan', () => {
  const r = memfit('plan', '--budget', '100%', '--json', ...SMALL);
  assert.is(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.plan.chosen, [], 'a 100% budget needs nothing checkpointed');
  assert.is(j.plan.predictedPeakBytes, j.unplanned.peakBytes);
  assert.is(j.candidates.length, 12);
});

test('memfit plan: bad and unreachable budgets, unknown config, a report path that is not ours', () => {
  let r = memfit('plan', '--budget', 'lots', ...SMALL);
  assert.is(r.code, 1);
  assert.match(r.stderr, /^memfit: --budget: memory budget "lots": not a size; give bytes/);
  r = memfit('plan', '--budget', '1000', ...SMALL);
  assert.is(r.code, 1);
  assert.match(r.stderr, /^memfit: memory budget 1000 bytes \(1000 bytes\) is below the smallest peak checkpointing can reach, [\d.]+ \w+ \((\d+) bytes; unplanned [\d.]+ \w+\); raise the budget to at least \1 bytes\n$/);
  r = memfit('plan', '--config', 'huge', '--budget', '50%');
  assert.is(r.code, 1);
  assert.match(r.stderr, /argument 'huge' is invalid. Allowed choices are tiny, medium/);
  const notes = join(dir, 'notes.html');
  writeFileSync(notes, '<p>mine</p>');
  r = memfit('plan', '--budget', '90%', '--report', notes, ...SMALL);
  assert.is(r.code, 1);
  assert.match(r.stderr, /--report .*notes\.html exists and is not a memfit report; not replacing it/);
  assert.is(readFileSync(notes, 'utf8'), '<p>mine</p>');
});

test('memfit train --memory-budget: the plan is printed and the run\'s peak stays within 5% of the prediction; an unreachable budget stops before training', () => {
  const r = memfit('train', '--steps', '2', '--batch-size', '4', '--seq-len', '32', '--sample', '0', '--backend', 'wasm', '--memory-budget', '80%', '--json');
  assert.is(r.code, 0, r.stderr);
  const predicted = num(/predicted peak [\d.]+ \w+ = (\d+) bytes with the optimizer state/, r.stderr);
  assert.match(r.stderr, /memfit: memory budget 80% = [\d.]+ \w+: checkpointing layers\./);
  const j = JSON.parse(r.stdout);
  assert.ok(Math.abs(j.peakAllocated / predicted - 1) <= 0.05, `run peak ${j.peakAllocated}, predicted ${predicted}`);
  // the optimizer state to come is the chosen optimizer's (8-bit: about a quarter of AdamW's), not AdamW's
  const q = memfit('train', '--steps', '2', '--batch-size', '4', '--seq-len', '32', '--sample', '0', '--backend', 'wasm', '--optimizer', 'adamw8bit', '--memory-budget', '80%', '--json');
  assert.is(q.code, 0, q.stderr);
  const predicted8 = num(/predicted peak [\d.]+ \w+ = (\d+) bytes with the optimizer state/, q.stderr), peak8 = JSON.parse(q.stdout).peakAllocated;
  assert.ok(Math.abs(peak8 / predicted8 - 1) <= 0.05, `adamw8bit: run peak ${peak8}, predicted ${predicted8}`);
  assert.ok(predicted8 < 0.8 * predicted, `adamw8bit predicted ${predicted8} against adamw's ${predicted}`);
  const bad = memfit('train', '--steps', '2', '--sample', '0', '--backend', 'wasm', '--memory-budget', '1%');
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /memfit: --memory-budget: memory budget .* is below the smallest peak checkpointing can reach/);
  assert.not.match(bad.stdout, /loss/);
  const both = memfit('train', '--steps', '1', '--memory-budget', '50%', '--checkpoint-modules', 'layers');
  assert.is(both.code, 1);
  assert.match(both.stderr, /--memory-budget chooses what to checkpoint itself; give it or --checkpoint-modules, not both/);
  const help = memfit('plan', '--help');
  assert.is(help.code, 0);
  assert.match(help.stdout, /--budget <bytes\|%>/);
});

test('memfit train --memory-budget with --gradient-release: profiling trains nothing (the same losses as without the plan, bit for bit: checkpointing changes no value)', () => {
  const args = ['train', '--steps', '2', '--batch-size', '4', '--seq-len', '32', '--sample', '0', '--backend', 'wasm', '--gradient-release', '--json'];
  const plain = memfit(...args), planned = memfit(...args, '--memory-budget', '80%');
  assert.is(plain.code, 0, plain.stderr);
  assert.is(planned.code, 0, planned.stderr);
  assert.match(planned.stderr, /memfit: memory budget 80% = [\d.]+ \w+: checkpointing layers\./);
  const a = JSON.parse(plain.stdout), b = JSON.parse(planned.stdout);
  assert.is(b.firstLoss, a.firstLoss);
  assert.is(b.lastLoss, a.lastLoss);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
