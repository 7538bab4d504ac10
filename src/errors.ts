/** Base class of every error memfit throws on purpose; `code` is stable for programs to test. */
export class MemfitError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A short description of any value for messages (never throws: bigints, symbols and cycles included). */
export function describeValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  if (typeof v === 'bigint') return `${v}n (a bigint)`;
  if (v === null || v === undefined || typeof v === 'number' || typeof v === 'boolean' || typeof v === 'symbol') return String(v);
  if (typeof v === 'function') return 'a function';
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  const proto = Object.getPrototypeOf(v) as { constructor?: { name?: string } } | null;
  return proto === null || proto === Object.prototype ? 'an object' : `a ${proto.constructor?.name || 'object'}`;
}

/**
 * Checks an options argument of `fn`: undefined or a plain object whose keys are all in `known`
 * (an unknown key is refused, never ignored). Returns it as an object.
 */
export function checkOptions<T extends object>(options: T | undefined, known: readonly string[], fn: string): Partial<T> {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object' || Array.isArray(options) || ArrayBuffer.isView(options)) {
    throw new InvalidArgumentError(`${fn}: options must be an object, got ${describeValue(options)}`);
  }
  for (const k of Object.keys(options)) {
    if (!known.includes(k)) throw new InvalidArgumentError(`${fn}: unknown option ${JSON.stringify(k)} (known: ${known.join(', ')})`);
  }
  return options;
}

/** A dtype name that memfit does not know; the message lists the valid names. */
export class UnknownDTypeError extends MemfitError {
  constructor(name: unknown, valid: readonly string[]) {
    super('UNKNOWN_DTYPE', `unknown dtype ${describeValue(name)}; valid names: ${valid.join(', ')}`);
  }
}

/** An argument of the wrong type, length or value; the message names it. */
export class InvalidArgumentError extends MemfitError {
  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
  }
}

/** Shapes that do not fit together (matmul inner dimensions, scale lengths, block sizes). */
export class ShapeMismatchError extends MemfitError {
  constructor(message: string) {
    super('SHAPE_MISMATCH', message);
  }
}

/** Bytes as a short human figure (GiB/MiB/KiB) for messages. */
export function humanBytes(n: number): string {
  for (const [unit, size] of [['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const) {
    if (n >= size) return `${(n / size).toFixed(2)} ${unit}`;
  }
  return `${n} bytes`;
}

/**
 * Memory that cannot be had: a buffer larger than a backend's limit, or memory that cannot grow
 * (WebAssembly's 4 GiB, the engine's own limit). Names what needed it, its size and the limit.
 */
export class OutOfMemoryError extends MemfitError {
  /** What needed the memory (a tensor's label, 'WasmArray', ...). */
  readonly what: string;
  /** Bytes requested. */
  readonly bytes: number;
  /** The limit that was hit, in bytes (for WebAssembly memory, 2^32: the engine may allow less). */
  readonly limit: number;
  constructor(what: string, bytes: number, limit: number, reason: string) {
    super('OUT_OF_MEMORY', `out of memory: ${what} needs ${humanBytes(bytes)} (${bytes} bytes); ${reason}`);
    this.what = what;
    this.bytes = bytes;
    this.limit = limit;
  }
}

/**
 * A checkpoint's recompute did not reproduce its forward (torch.utils.checkpoint.CheckpointError):
 * fn saved other tensors (shape, dtype or number) the second time, or a policy decided otherwise.
 */
export class CheckpointError extends MemfitError {
  constructor(message: string) {
    super('CHECKPOINT', message);
  }
}
