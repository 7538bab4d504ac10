// Loads the golden data (ml_dtypes 0.6.0 / PyTorch 2.11 outputs; never edited), kept in the
// repository at tests/fixtures/golden (see its PROVENANCE.md).
import { readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));

/** The golden directory: $MEMFIT_GOLDEN, else the repository's own copy in tests/fixtures/golden. */
export const GOLDEN_DIR = process.env.MEMFIT_GOLDEN ?? resolve(here, '../fixtures/golden');

export function golden<T = any>(file: string): T {
  const p = resolve(GOLDEN_DIR, file);
  if (!existsSync(p)) throw new Error(`golden file ${p} is missing: tests/fixtures/golden is part of the repository (or set MEMFIT_GOLDEN to a golden directory)`);
  return JSON.parse(readFileSync(p, 'utf8')) as T;
}

/** Big-endian hex of a binary64 -> number. */
export function f64FromHex(hex: string): number {
  const dv = new DataView(new ArrayBuffer(8));
  dv.setBigUint64(0, BigInt('0x' + hex));
  return dv.getFloat64(0);
}

export const GOLDEN_FORMATS = ['float16', 'bfloat16', 'float8_e4m3fn', 'float8_e5m2', 'float8_e8m0fnu', 'float6_e3m2fn', 'float6_e2m3fn', 'float4_e2m1fn'] as const;
