// Parameter: the leaf Variable that a Module owns and an optimizer updates (torch.nn.Parameter).
// Its storage is accounted in the 'parameter' memory category, so a memory breakdown shows weights
// apart from activations and data; the constructor insists on that rather than silently copying,
// because a copy would double the weight's memory for as long as the caller keeps its tensor.
import type { DTypeName } from '../dtype/formats.js';
import { InvalidArgumentError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import type { Backend } from '../backend/backend.js';
import { Variable } from '../autograd/variable.js';

/** Options of new Parameter(). */
export interface ParameterOptions {
  /** Default true (a parameter is trained unless frozen). */
  requiresGrad?: boolean;
}

/** Options of Parameter.from(). */
export interface ParameterFromOptions extends ParameterOptions {
  /** Storage dtype (values rounded nearest-even); default float32. */
  dtype?: DTypeName;
  /** Label of the storage in memory traces. */
  label?: string;
}

/** A leaf Variable that requires grad by default, its data in the 'parameter' memory category. */
export class Parameter extends Variable {
  /**
   * Wraps `data` (taken over: the module that holds this parameter disposes it). The tensor must
   * already be in the 'parameter' category: allocate it with `{ category: 'parameter' }` or use
   * Parameter.from.
   */
  constructor(data: Tensor, options: ParameterOptions = {}) {
    if (!(data instanceof Tensor)) throw new InvalidArgumentError('Parameter: expected a Tensor');
    if (data.isDisposed) throw new InvalidArgumentError('Parameter: the tensor was already disposed');
    if (data.category !== 'parameter') {
      throw new InvalidArgumentError(`Parameter: the tensor is in the '${data.category}' memory category; allocate it with { category: 'parameter' } or use Parameter.from()`);
    }
    super(data, { requiresGrad: options.requiresGrad ?? true });
  }

  /** A parameter from values (rounded to `dtype`), allocated in the 'parameter' category. */
  static override from(backend: Backend, values: ArrayLike<number> | Float32Array, shape: readonly number[], options: ParameterFromOptions = {}): Parameter {
    const t = Tensor.from(backend, values, shape, { dtype: options.dtype, category: 'parameter', label: options.label });
    try {
      return new Parameter(t, { requiresGrad: options.requiresGrad });
    } catch (e) {
      t.dispose(); // e.g. an int32 parameter that was asked to require grad
      throw e;
    }
  }
}
