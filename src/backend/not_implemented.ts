import { MemfitError } from '../errors.js';

/** A kernel that a backend does not have (yet); names the kernel and the backend. */
export class NotImplementedError extends MemfitError {
  constructor(kernel: string, backend: string) {
    super('NOT_IMPLEMENTED', `kernel ${kernel} is not implemented on the ${backend} backend`);
  }
}

/** A function that throws NotImplementedError (placeholder in a family module). */
export function missing(kernel: string, backend: string): (...args: unknown[]) => never {
  return () => {
    throw new NotImplementedError(kernel, backend);
  };
}
