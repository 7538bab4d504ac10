// Parameter initialisation on the host from a seeded Generator (torch.nn.init's role), so a model
// built with the same seed has the same weights on every backend.
import type { Backend } from '../backend/backend.js';
import { numel } from '../backend/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { Parameter } from './parameter.js';
import type { Generator } from '../random.js';

/** A Parameter of `shape` with values from fill(i) (float32, category 'parameter'). */
export function parameterFrom(backend: Backend, shape: readonly number[], fill: (i: number) => number, label = 'parameter'): Parameter {
  // The meta backend holds no values: nothing to draw (the generator does not advance).
  if (backend.kind === 'meta') return new Parameter(Tensor.empty(backend, shape, { category: 'parameter', label }));
  const values = new Float32Array(numel(shape));
  for (let i = 0; i < values.length; i++) values[i] = fill(i);
  return new Parameter(Tensor.from(backend, values, shape, { category: 'parameter', label }));
}

/** U(low, high) values. torch.nn.init.uniform_. */
export function uniform(backend: Backend, shape: readonly number[], low: number, high: number, generator: Generator, label?: string): Parameter {
  return parameterFrom(backend, shape, () => generator.uniform(low, high), label);
}

/** N(mean, std^2) values. torch.nn.init.normal_. */
export function normal(backend: Backend, shape: readonly number[], std: number, generator: Generator, label?: string, mean = 0): Parameter {
  return parameterFrom(backend, shape, () => mean + std * generator.normal(), label);
}

/** A constant. torch.nn.init.constant_ (ones_, zeros_). */
export function constantParameter(backend: Backend, shape: readonly number[], value: number, label?: string): Parameter {
  return parameterFrom(backend, shape, () => value, label);
}
