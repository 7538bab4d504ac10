// `memfit demo` (what `npm start` runs): the formats table and a short tour of encoding, packing and MX.
import * as lib from '../index.js';
import { FORMATS, decode, encode, formatTable, pack } from '../index.js';
import { hexCode, shortNumber } from './format.js';

const DEMO_VALUES: readonly [string, number][] = [
  ['0.1', 0.1], ['1/3', 1 / 3], ['448', 448], ['500', 500], ['1e-3', 1e-3], ['-2.5', -2.5],
  ['65504', 65504], ['70000', 70000], ['Infinity', Infinity], ['NaN', NaN],
];

/** Aligns rows of cells: first column left, the others right. */
function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ').trimEnd());
}

function hexBytes(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
}

/** Optional library features, looked up at run time so the demo works before (and after) they exist. */
type MxTensorLike = { elemDtype: string; blockSize: number; scales: Uint8Array; codes: Uint8Array };
function optional<T>(name: string): T | undefined {
  const l = lib as unknown as Record<string, unknown>;
  return name in l && typeof l[name] === 'function' ? (l[name] as T) : undefined;
}

export function demoLines(): string[] {
  const out: string[] = [];
  out.push('memfit: bit-exact low-precision floats (fp16, bf16, fp8, fp6, fp4, OCP MX) in WebAssembly', '');
  out.push('Formats', formatTable(), '');

  const head = ['value', ...FORMATS.map((f) => f.aliases[0] ?? f.name)];
  const values = DEMO_VALUES.map(([, v]) => v);
  const codes = FORMATS.map((f) => encode(values, f.name));
  const decoded = FORMATS.map((f, i) => decode(codes[i], f.name));
  out.push('Encoded (round to nearest even, not saturating): codes in hex');
  out.push(...table([head, ...DEMO_VALUES.map(([label], r) => [label, ...FORMATS.map((f, c) => hexCode(f, codes[c][r]).slice(2))])]), '');
  out.push('Decoded back (5 significant digits)');
  out.push(...table([head, ...DEMO_VALUES.map(([label], r) => [label, ...FORMATS.map((_, c) => shortNumber(decoded[c][r]))])]), '');

  const fp4Values = [0, 0.5, 1, 1.5, -2, 3, -4, 6];
  const fp4Codes = encode(fp4Values, 'float4_e2m1fn') as Uint8Array;
  const packed = pack(fp4Codes, 'float4_e2m1fn');
  out.push(`fp4 packing: [${fp4Values.join(', ')}] -> codes ${Array.from(fp4Codes, (c) => c.toString(16)).join(' ')}`
    + ` -> ${packed.length} bytes ${hexBytes(packed)} (low nibble first)`);

  const mxQuantize = optional<(v: number[], dtype: string, o?: { blockSize?: number }) => MxTensorLike>('mxQuantize');
  if (mxQuantize) {
    const mxValues = [0.3, -1.2, 2.5, 7.9, 0.05, -3.3, 12, 1];
    const mx = mxQuantize(mxValues, 'float4_e2m1fn', { blockSize: 8 });
    let line = `MXFP4 (block ${mx.blockSize}): [${mxValues.join(', ')}] -> scale 2^${mx.scales[0] - 127}, codes ${Array.from(mx.codes, (c) => c.toString(16)).join(' ')}`;
    const mxDequantize = optional<(m: MxTensorLike) => Float32Array>('mxDequantize');
    if (mxDequantize) line += ` -> [${Array.from(mxDequantize(mx), shortNumber).join(', ')}]`;
    out.push(line);
  }
  return out;
}
