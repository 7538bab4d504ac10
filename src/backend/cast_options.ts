// The options of a cast (Tensor.to, Backend.cast), checked once for every backend: the same
// rounding names and seed types as encode(), and nothing unknown silently ignored.
import { checkOptions, describeValue, InvalidArgumentError } from '../errors.js';
import { ROUNDING_IDS } from '../dtype/formats.js';
import type { CastOptions } from './backend.js';

/** Options of Tensor.to: as CastOptions, with a seed that may also be a safe-integer number (as encode takes). */
export interface TensorCastOptions {
  /** Clamp values past the largest finite value to it instead of infinity/NaN (default false). */
  saturate?: boolean;
  /** 'nearest-even' (default), 'toward-zero' or 'stochastic'. */
  rounding?: CastOptions['rounding'];
  /** Seed of the stochastic-rounding stream (0 when omitted): an integer number up to 2^53 or a bigint (taken mod 2^64). */
  seed?: number | bigint;
}

const CAST_OPTIONS = ['saturate', 'rounding', 'seed'] as const;

/** Checks cast options (unknown keys, saturate a boolean, a known rounding name, an integer seed) and returns them with a bigint seed. */
export function checkCastOptions(options: TensorCastOptions | undefined, fn: string): CastOptions {
  const o = checkOptions(options, CAST_OPTIONS, fn);
  if (o.saturate !== undefined && typeof o.saturate !== 'boolean') throw new InvalidArgumentError(`${fn}: saturate must be a boolean, got ${describeValue(o.saturate)}`);
  const rounding: unknown = o.rounding;
  // own keys only, so that 'toString' or '__proto__' is no rounding mode
  if (rounding !== undefined && !(typeof rounding === 'string' && Object.hasOwn(ROUNDING_IDS, rounding))) {
    throw new InvalidArgumentError(`${fn}: unknown rounding ${describeValue(rounding)}; use ${Object.keys(ROUNDING_IDS).map((r) => `'${r}'`).join(', ')}`);
  }
  const seed: unknown = o.seed;
  let s: bigint | undefined;
  if (typeof seed === 'bigint') s = BigInt.asUintN(64, seed);
  else if (typeof seed === 'number' && Number.isSafeInteger(seed)) s = BigInt.asUintN(64, BigInt(seed));
  else if (seed !== undefined) throw new InvalidArgumentError(`${fn}: seed must be an integer (a number up to 2^53 or a bigint), got ${describeValue(seed)}`);
  const out: CastOptions = {};
  if (o.saturate !== undefined) out.saturate = o.saturate;
  if (rounding !== undefined) out.rounding = rounding as CastOptions['rounding'];
  if (s !== undefined) out.seed = s;
  return out;
}
