// `memfit train --report <file>` and `memfit plan --report <file>`: where the HTML report may go (never over an input, never over a
// file that is not a memfit report unless --force), and the atomic write.
import { closeSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { resolve } from 'node:path';
import { writeFileAtomic } from '../io/fs_sync.js';
import { isMemfitReportHtml, trainingReportHtml, type TrainingReportData } from '../report/html.js';
import { CliError } from './format.js';

function statOrNull(path: string): Stats | null {
  try {
    return statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

function readHead(path: string, bytes = 1024): string {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    const n = readSync(fd, buf, 0, bytes, 0);
    return buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * Throws a CliError when `path` may not receive a report: it is one of `inputs` (label -> path, e.g.
 * { '--text': 'corpus.txt' }), not a regular file, or an existing file that is not a memfit report
 * (allowed with `force`; an input never is).
 */
export function checkReportTarget(path: string, options: { force?: boolean; inputs?: Record<string, string | undefined> } = {}): void {
  const st = statOrNull(path);
  for (const [flag, input] of Object.entries(options.inputs ?? {})) {
    if (input === undefined) continue;
    const other = statOrNull(input);
    const same = resolve(path) === resolve(input) || (st !== null && other !== null && st.dev === other.dev && st.ino === other.ino);
    if (same) throw new CliError(`--report ${path} is the ${flag} file; choose another report path`);
  }
  if (st === null) return;
  if (!st.isFile()) throw new CliError(`--report ${path} exists and is not a regular file`);
  if (!options.force && !isMemfitReportHtml(readHead(path))) {
    throw new CliError(`--report ${path} exists and is not a memfit report; not replacing it (choose another path, or pass --force)`);
  }
}

/** Checks the target again (it may have appeared during the run) and writes the report's HTML atomically. */
export async function writeReportFile(path: string, html: string, options: { force?: boolean; inputs?: Record<string, string | undefined> } = {}): Promise<void> {
  checkReportTarget(path, options);
  try {
    await writeFileAtomic(path, html);
  } catch (e) {
    throw new CliError(`cannot write the report ${path}: ${(e as Error).message}`);
  }
}

/** Checks the target again (it may have appeared during training) and writes the report atomically. */
export async function writeTrainingReport(path: string, data: TrainingReportData, options: { force?: boolean; inputs?: Record<string, string | undefined> } = {}): Promise<void> {
  await writeReportFile(path, trainingReportHtml(data), options);
}
