/** Base class of every error memfit throws on purpose; `code` is stable for programs to test. */
export class MemfitError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A dtype name that memfit does not know; the message lists the valid names. */
export class UnknownDTypeError extends MemfitError {
  constructor(name: unknown, valid: readonly string[]) {
    super('UNKNOWN_DTYPE', `unknown dtype ${JSON.stringify(name)}; valid names: ${valid.join(', ')}`);
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
