// Basic layers: Linear, Embedding, Dropout and activation modules, with PyTorch's default
// initialisation drawn from a seeded Generator.
import type { Backend } from '../backend/backend.js';
import { WasmBackend } from '../backend/wasm/backend.js';
import type { Variable } from '../autograd/variable.js';
import { gelu, relu, silu } from '../autograd/ops.js';
import { InvalidArgumentError } from '../errors.js';
import { defaultGenerator, type Generator } from '../random.js';
import type { Tensor } from '../tensor/tensor.js';
import { dropout, embedding, linear } from './functional.js';
import { constantParameter, normal, uniform } from './init.js';
import { Module } from './module.js';
import type { Parameter } from './parameter.js';

/** Where a layer's parameters live and which generator initialises them. */
export interface LayerOptions {
  /** The backend of the parameters (default: a shared WebAssembly backend, as PyTorch defaults to the CPU). */
  backend?: Backend;
  /** Initialisation draws from this generator (default: the global one, see manualSeed). */
  generator?: Generator;
}

let cpu: WasmBackend | null = null;

/** The backend used when a layer is given none: one shared WebAssembly backend. */
export function defaultBackend(): Backend {
  cpu ??= new WasmBackend();
  return cpu;
}

export function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v <= 0) throw new InvalidArgumentError(`${name} must be a positive integer, got ${v}`);
  return v;
}

/** Existing parameters a Linear takes over instead of initialising its own (weight [out, in], bias [out] or null). */
export interface LinearParameters {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
}

/** y = x W^T + b. torch.nn.Linear: W, b ~ U(-1/sqrt(in), 1/sqrt(in)). */
export class Linear extends Module {
  weight: Parameter;
  bias: Parameter | null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, options: LayerOptions & { bias?: boolean; initStd?: number; parameters?: LinearParameters } = {}) {
    super();
    positiveInt('inFeatures', inFeatures);
    positiveInt('outFeatures', outFeatures);
    if (options.parameters) { // adopted, not initialised (a subclass taking over a layer: Float8Linear)
      this.weight = options.parameters.weight;
      this.bias = options.parameters.bias;
      return;
    }
    const be = options.backend ?? defaultBackend(), g = options.generator ?? defaultGenerator;
    const bound = 1 / Math.sqrt(inFeatures);
    // initStd: normal(0, std) instead (Llama's initializer_range), biases zero.
    this.weight = options.initStd !== undefined
      ? normal(be, [outFeatures, inFeatures], options.initStd, g, 'linear.weight')
      : uniform(be, [outFeatures, inFeatures], -bound, bound, g, 'linear.weight');
    this.bias = options.bias === false ? null
      : options.initStd !== undefined ? constantParameter(be, [outFeatures], 0, 'linear.bias')
        : uniform(be, [outFeatures], -bound, bound, g, 'linear.bias');
  }

  forward(x: Variable): Variable {
    return linear(x, this.weight, this.bias);
  }
}

/** A lookup table of rows picked by int32 ids. torch.nn.Embedding: N(0, 1) (or N(0, initStd)). */
export class Embedding extends Module {
  weight: Parameter;

  constructor(readonly numEmbeddings: number, readonly embeddingDim: number, options: LayerOptions & { initStd?: number } = {}) {
    super();
    positiveInt('numEmbeddings', numEmbeddings);
    positiveInt('embeddingDim', embeddingDim);
    this.weight = normal(options.backend ?? defaultBackend(), [numEmbeddings, embeddingDim], options.initStd ?? 1, options.generator ?? defaultGenerator, 'embedding.weight');
  }

  forward(ids: Tensor): Variable {
    return embedding(ids, this.weight);
  }
}

/** Zeroes elements with probability p while training (seeded: reproducible); identity in eval(). */
export class Dropout extends Module {
  constructor(readonly p = 0.5, private readonly generator: Generator = defaultGenerator) {
    super();
    if (!(p >= 0 && p <= 1)) throw new InvalidArgumentError(`dropout probability must be in [0, 1], got ${p}`);
  }

  forward(x: Variable): Variable {
    return dropout(x, this.p, this.training, this.generator);
  }
}

export class ReLU extends Module {
  forward(x: Variable): Variable { return relu(x); }
}

/** The exact (erf) GELU. */
export class GELU extends Module {
  forward(x: Variable): Variable { return gelu(x); }
}

export class SiLU extends Module {
  forward(x: Variable): Variable { return silu(x); }
}

