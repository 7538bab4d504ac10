// An independent encoder written from the format definitions in plain TypeScript: it knows every
// finite value of a format (codeValue), and rounds by comparing the input with its neighbours and
// their midpoint in exact binary64 arithmetic. It shares no code with the WebAssembly converter
// (which works on bit patterns), so agreement between the two is evidence, not tautology.
import { FORMATS, codeValue, formatOf, maxFiniteCode, type FormatTraits } from '../../src/dtype/formats.js';

export type RefRounding = 'nearest-even' | 'toward-zero';

export interface RefOptions {
  saturate?: boolean;
  rounding?: RefRounding;
}

/** Rounds binary64 values (or float32 bit patterns) to codes of one format. */
export class ReferenceEncoder {
  readonly f: FormatTraits;
  private readonly values: number[]; // every finite non-negative value, increasing
  private readonly codes: number[]; // their codes
  private readonly signMask: number;
  private readonly max: number;
  private readonly maxCode: number;
  /** The value one step above max if the format continued (the target of an overflowing round-up). */
  private readonly beyondMax: number;
  private last = 0;

  constructor(dtype: string, private readonly opts: RefOptions = {}) {
    this.f = formatOf(dtype);
    const f = this.f;
    this.signMask = f.signed ? 2 ** (f.bits - 1) : 0;
    const pairs: [number, number][] = [];
    const top = f.signed ? this.signMask : 2 ** f.bits;
    for (let c = 0; c < top; c++) {
      const v = codeValue(f, c);
      if (Number.isFinite(v)) pairs.push([v, c]);
    }
    pairs.sort((a, b) => a[0] - b[0]);
    this.values = pairs.map((p) => p[0]);
    this.codes = pairs.map((p) => p[1]);
    this.maxCode = maxFiniteCode(f);
    this.max = codeValue(f, this.maxCode);
    // max = (2^M + frac) * 2^(e - M): one more unit in the last place of max's binade.
    const binade = 2 ** Math.floor(Math.log2(this.max));
    this.beyondMax = this.max + binade * 2 ** -f.mantissaBits;
  }

  private nanCode(negative: boolean, payloadTop: number): number {
    const f = this.f;
    switch (f.nan) {
      case 'none': return negative ? 0 : this.signMask; // ml_dtypes: the zero of the NaN's opposite sign
      case 'unsigned-all-ones': return 0xff;
      case 'all-ones': return (negative ? this.signMask : 0) | (2 ** (f.bits - 1) - 1);
      case 'ieee': {
        const inf = (2 ** f.exponentBits - 1) * 2 ** f.mantissaBits;
        const s = negative ? this.signMask : 0;
        if (f.name === 'float16' || f.name === 'float32') return s + inf + (payloadTop === 0 ? 1 : payloadTop); // numpy keeps the payload
        return s + inf + 2 ** (f.mantissaBits - 1); // canonical quiet NaN
      }
    }
  }

  /** What an overflow (or infinity) becomes, unsigned. */
  private overflow(): number {
    const f = this.f;
    if (this.opts.saturate) return this.maxCode;
    if (f.hasInf) return (2 ** f.exponentBits - 1) * 2 ** f.mantissaBits;
    if (f.nan === 'all-ones' || f.nan === 'unsigned-all-ones') return this.maxCode + 1;
    return this.maxCode;
  }

  /** Encodes a binary64 value (every float32 is one). `nanPayloadTop` is the NaN's payload cut to the format's mantissa width. */
  encode(x: number, nanPayloadTop = 0, nanNegative = false): number {
    const f = this.f;
    if (x !== x) return this.nanCode(nanNegative, nanPayloadTop);
    const negative = x < 0 || Object.is(x, -0);
    if (!f.signed && (negative || x === 0)) return this.opts.saturate ? 0 : 0xff;
    const s = negative ? this.signMask : 0;
    const a = Math.abs(x);
    if (a === Infinity) return s + (f.hasInf && !this.opts.saturate ? this.overflow() : this.overflowSat());
    if (a === 0) return s;
    const rtz = this.opts.rounding === 'toward-zero';
    if (a > this.max) {
      if (rtz) return s + this.maxCode;
      const mid = (this.max + this.beyondMax) / 2;
      const maxIsEven = this.maxCode % 2 === 0 && f.name !== 'float8_e8m0fnu';
      if (a < mid || (a === mid && maxIsEven)) return s + this.maxCode;
      return s + this.overflow();
    }
    const i = this.locate(a); // values[i] <= a < values[i + 1]
    if (a === this.values[i]) return s + this.codes[i];
    if (f.name === 'float8_e8m0fnu') return s + this.e8m0(a, i, rtz);
    if (i < 0) return s; // unreachable: zero is a value of every signed format
    if (rtz) return s + this.codes[i];
    const lo = this.values[i], hi = this.values[i + 1];
    const mid = (lo + hi) / 2; // exact: neighbours differ in one binade step
    if (a < mid) return s + this.codes[i];
    if (a > mid) return s + this.codes[i + 1];
    return s + (this.codes[i] % 2 === 0 ? this.codes[i] : this.codes[i + 1]);
  }

  private overflowSat(): number {
    // ±inf without an inf code: saturating formats and saturate mode give max; e4m3fn / e8m0 give NaN.
    return this.overflow();
  }

  /**
   * e8m0fnu has no zero and no subnormals. ml_dtypes rounds ties between powers of two up, and
   * treats its code 0 (2^-127) as the "zero" bucket of a subnormal range: inputs in (2^-127, 2^-126)
   * go to 2^-126, inputs below 2^-127 to code 0 (seen in shared/golden/e8m0_compare.json).
   */
  private e8m0(a: number, i: number, rtz: boolean): number {
    if (i < 0) return 0; // below 2^-127
    if (i === 0) return rtz ? 0 : 1; // (2^-127, 2^-126)
    if (rtz) return this.codes[i];
    return a >= (this.values[i] + this.values[i + 1]) / 2 ? this.codes[i + 1] : this.codes[i];
  }

  /** Index of the largest value <= a (-1 if none); amortised O(1) for increasing sweeps. */
  private locate(a: number): number {
    const v = this.values;
    let i = this.last;
    if (i < v.length && v[i] <= a && (i + 1 >= v.length || a < v[i + 1])) return i;
    if (i + 1 < v.length && v[i + 1] <= a && (i + 2 >= v.length || a < v[i + 2])) return (this.last = i + 1);
    let lo = -1, hi = v.length; // v[lo] <= a < v[hi]
    while (hi - lo > 1) {
      const m = (lo + hi) >> 1;
      if (v[m] <= a) lo = m;
      else hi = m;
    }
    this.last = Math.max(lo, 0);
    return lo;
  }

  /** Encodes float32 bit patterns (NaN payloads from the bits). */
  encodeBits32(bits: Uint32Array, out: Uint8Array | Uint16Array | Uint32Array): void {
    const f32 = new Float32Array(bits.buffer, bits.byteOffset, bits.length);
    const keep = this.f.mantissaBits;
    for (let k = 0; k < bits.length; k++) {
      const x = f32[k];
      if (x !== x) {
        const b = bits[k];
        out[k] = this.encode(NaN, Math.floor((b & 0x7fffff) / 2 ** (23 - keep)), b >= 0x80000000);
      } else out[k] = this.encode(x);
    }
  }
}

/** Names of all formats but float32. */
export const NARROW_FORMATS = FORMATS.filter((f) => f.name !== 'float32').map((f) => f.name);
