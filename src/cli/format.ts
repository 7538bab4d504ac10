// Printing and parsing helpers of the command-line tool: lines safe for a terminal, exact decimals, hex codes,
// number and code arguments.
import { formatOf, type FormatTraits } from '../index.js';

/**
 * C0 controls but the newline, DEL and C1 controls: what a terminal may take as a command (ESC, BEL,
 * CSI, OSC...); and the bidirectional overrides and isolates, which reorder what is shown (a name that
 * reads as another: "Trojan Source").
 */
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/**
 * `text` safe to print on a terminal: the control characters a hostile file can put in a tensor name, a
 * metadata value or an error message (ESC [2J clearing the screen, ESC ]0;...BEL setting the window title)
 * are shown as JSON-style escapes (\u001b, \t, \r); newlines are kept (they separate lines). Inside
 * JSON strings the escapes are valid JSON for the same characters.
 */
export function terminalSafe(text: string): string {
  return text.replace(CONTROL, (c) => {
    const j = JSON.stringify(c); // "\t" for \b \t \f \r; DEL and C1 JSON leaves as they are
    return j.length === 4 ? j.slice(1, -1) : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}

/** Writes `line` and a newline to `stream` (stdout or stderr), control characters escaped (terminalSafe): every line the CLI prints goes through here. */
export function writeLine(stream: NodeJS.WritableStream, line: string): void {
  stream.write(`${terminalSafe(line)}\n`);
}

/** A mistake in the command line or the input (printed as `memfit: <message>`, exit code 1, no stack). */
export class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliError';
  }
}

/**
 * The exact decimal value of a binary64 number (every format here is a subset of binary64), e.g.
 * 0.100000001490116119384765625 for float32 0.1. Plain notation for 1e-6 <= |x| < 1e21 (as JavaScript),
 * scientific otherwise; Infinity, -Infinity and NaN as such, -0 as "-0".
 */
export function exactDecimal(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  const dv = new DataView(new ArrayBuffer(8));
  dv.setFloat64(0, x);
  const hi = dv.getUint32(0);
  const lo = dv.getUint32(4);
  const sign = hi >>> 31 ? '-' : '';
  const biased = (hi >>> 20) & 0x7ff;
  let mant = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let exp: number;
  if (biased === 0) exp = -1074;
  else {
    mant |= 1n << 52n;
    exp = biased - 1075;
  }
  // x = mant * 2^exp; with exp < 0, mant * 2^exp = mant * 5^-exp / 10^-exp.
  let digits: string;
  let pointFromRight: number;
  if (exp >= 0) {
    digits = (mant << BigInt(exp)).toString();
    pointFromRight = 0;
  } else {
    digits = (mant * 5n ** BigInt(-exp)).toString();
    pointFromRight = -exp;
  }
  // Strip trailing zeros of the fraction.
  while (pointFromRight > 0 && digits.endsWith('0')) {
    digits = digits.slice(0, -1);
    pointFromRight--;
  }
  const a = Math.abs(x);
  if (a >= 1e-6 && a < 1e21) {
    if (pointFromRight === 0) return sign + digits;
    const padded = digits.padStart(pointFromRight + 1, '0');
    return `${sign}${padded.slice(0, -pointFromRight)}.${padded.slice(-pointFromRight)}`;
  }
  // Scientific: d.ddd e±E where E = (digit count - 1) - pointFromRight.
  const e = digits.length - 1 - pointFromRight;
  const sig = digits.replace(/0+$/, '');
  const mantissa = sig.length > 1 ? `${sig[0]}.${sig.slice(1)}` : sig;
  return `${sign}${mantissa}e${e >= 0 ? '+' : ''}${e}`;
}

/** A short display form (5 significant digits) for tables. */
export function shortNumber(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (Object.is(x, -0)) return '-0';
  return String(Number(x.toPrecision(5)));
}

/** Hex digits a code of this format is printed with: 1 for fp4, 2 for fp6/fp8, 4 for 16-bit, 8 for float32. */
export function hexDigits(f: FormatTraits): number {
  return Math.ceil(f.bits / 4);
}

/** `0x7e`, zero-padded to the format's width. */
export function hexCode(f: FormatTraits, code: number): string {
  return `0x${code.toString(16).padStart(hexDigits(f), '0')}`;
}

/** Parses one code given in hex (with or without 0x) and checks that it fits the format. */
export function parseHexCode(text: string, f: FormatTraits): number {
  const m = /^(?:0x)?([0-9a-f]+)$/i.exec(text.trim());
  if (!m) throw new CliError(`${JSON.stringify(text)} is not a hex code (e.g. 7e or 0x7e)`);
  const code = parseInt(m[1], 16);
  const limit = 2 ** f.bits - 1;
  if (!(code <= limit)) {
    throw new CliError(`code ${text} does not fit ${f.name} (${f.bits}-bit codes 0x0..${hexCode(f, limit)})`);
  }
  return code;
}

const F64 = new DataView(new ArrayBuffer(8));

/** The quiet NaN with the sign bit set (`negative`) or clear: a NaN whose sign does not depend on the platform. */
function quietNaN(negative: boolean): number {
  F64.setUint32(0, negative ? 0xfff80000 : 0x7ff80000);
  F64.setUint32(4, 0);
  return F64.getFloat64(0);
}

/** The sign bit of a binary64 number (set for -0 and for a negative NaN). */
export function signBit(x: number): boolean {
  F64.setFloat64(0, x);
  return F64.getUint32(0) >>> 31 === 1;
}

/**
 * Parses a number argument as a JavaScript number (binary64): decimal, exponent, hex (0x.., with an
 * optional sign: -0x10), inf / infinity / nan in any case with an optional sign, or a fraction a/b such
 * as 1/3. `nan` and `+nan` give the NaN with the sign bit clear, `-nan` the one with it set; a NaN that
 * a fraction computes (0/0) is the positive one, whatever the platform's arithmetic gives.
 */
export function parseNumber(text: string): number {
  const t = text.trim();
  const special = /^([+-]?)(inf|infinity|nan)$/i.exec(t);
  if (special) {
    if (special[2].toLowerCase() === 'nan') return quietNaN(special[1] === '-');
    return special[1] === '-' ? -Infinity : Infinity;
  }
  const frac = /^([^/]+)\/([^/]+)$/.exec(t);
  if (frac) {
    const v = parseNumber(frac[1]) / parseNumber(frac[2]);
    return Number.isNaN(v) ? quietNaN(false) : v;
  }
  // Number() reads unsigned hex only: the sign of -0x10 / +0x10 is applied here.
  const hex = /^([+-])(0[xob][0-9a-f]+)$/i.exec(t);
  const v = hex ? (hex[1] === '-' ? -Number(hex[2]) : Number(hex[2])) : t === '' ? NaN : Number(t);
  if (Number.isNaN(v)) throw new CliError(`${JSON.stringify(text)} is not a number`);
  return v;
}

/** A parsed number as `encode` echoes it: JavaScript's String(), but -0 as "-0" and a negative NaN as "-NaN". */
export function echoNumber(x: number): string {
  if (Number.isNaN(x)) return signBit(x) ? '-NaN' : 'NaN';
  if (x === 0) return signBit(x) ? '-0' : '0';
  return String(x);
}

/** Resolves a dtype argument (canonical name or alias); throws the library's UnknownDTypeError. */
export function dtypeArg(text: string): FormatTraits {
  return formatOf(text);
}
