// Assertions about refused input.
import * as assert from 'uvu/assert';
import { InvalidArgumentError } from '../../src/errors.js';

/** Asserts that fn throws an InvalidArgumentError whose message matches pattern. */
export function invalid(fn: () => unknown, pattern: RegExp): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, InvalidArgumentError, `${pattern}: got ${String(e)}`);
    assert.match((e as Error).message, pattern);
    return;
  }
  assert.unreachable(`no error, expected ${pattern}`);
}

/** Asserts that `promise` rejects with an error of class `cls` (default InvalidArgumentError) whose message matches pattern. */
export async function rejectsInvalid(promise: Promise<unknown>, pattern: RegExp, cls: new (...args: never[]) => Error = InvalidArgumentError): Promise<void> {
  try {
    await promise;
  } catch (e) {
    assert.instance(e, cls, `${pattern}: got ${String(e)}`);
    assert.match((e as Error).message, pattern);
    return;
  }
  assert.unreachable(`no error, expected ${pattern}`);
}
