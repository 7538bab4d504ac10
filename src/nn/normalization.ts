// RMSNorm and LayerNorm over the last axis (one fused kernel each, forward and backward).
import type { Variable } from '../autograd/variable.js';
import { layerNorm, rmsNorm } from './functional.js';
import { constantParameter } from './init.js';
import { defaultBackend, positiveInt, type LayerOptions } from './layers.js';
import { Module } from './module.js';
import type { Parameter } from './parameter.js';

/**
 * x * rsqrt(mean(x^2) + eps) * weight; weight starts at ones. torch.nn.RMSNorm: eps defaults to
 * float32's machine epsilon, as there (Llama passes its rmsNormEps).
 */
export class RMSNorm extends Module {
  weight: Parameter;

  constructor(readonly normalizedShape: number, readonly eps = 2 ** -23, options: Pick<LayerOptions, 'backend'> = {}) {
    super();
    positiveInt('normalizedShape', normalizedShape);
    this.weight = constantParameter(options.backend ?? defaultBackend(), [normalizedShape], 1, 'rmsnorm.weight');
  }

  forward(x: Variable): Variable {
    return rmsNorm(x, this.weight, this.eps);
  }
}

/** (x - mean) * rsqrt(var + eps) * weight + bias; weight ones, bias zeros. torch.nn.LayerNorm. */
export class LayerNorm extends Module {
  weight: Parameter;
  bias: Parameter;

  constructor(readonly normalizedShape: number, readonly eps = 1e-5, options: Pick<LayerOptions, 'backend'> = {}) {
    super();
    positiveInt('normalizedShape', normalizedShape);
    const be = options.backend ?? defaultBackend();
    this.weight = constantParameter(be, [normalizedShape], 1, 'layernorm.weight');
    this.bias = constantParameter(be, [normalizedShape], 0, 'layernorm.bias');
  }

  forward(x: Variable): Variable {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}
