// The default floating dtype (torch.set_default_dtype / torch.get_default_dtype): the dtype of
// tensors, parameters and float module buffers created without an explicit dtype. memfit's own
// temporaries, gradients and optimizer state name their dtype and do not follow it.
import type { DTypeName } from '../dtype/formats.js';
import { canonicalDType } from '../dtype/formats.js';
import { describeValue, InvalidArgumentError } from '../errors.js';

/** The dtypes that can be the default: those every kernel computes from and writes. */
export const DEFAULT_DTYPES = ['float32', 'bfloat16', 'float16'] as const;
export type DefaultDType = (typeof DEFAULT_DTYPES)[number];

let current: DefaultDType = 'float32';

/**
 * Sets the default floating dtype (torch.set_default_dtype): 'float32' (the initial one),
 * 'bfloat16' or 'float16' (aliases such as 'bf16' work). Every Parameter (so every layer's
 * weights), float module buffer and tensor created afterwards without a dtype uses it; tensors
 * that exist keep theirs. Returns the previous default, so a scope can restore it.
 */
export function setDefaultDtype(dtype: DTypeName): DefaultDType {
  let name: string;
  try {
    name = canonicalDType(dtype);
  } catch {
    throw new InvalidArgumentError(`setDefaultDtype: unknown dtype ${describeValue(dtype)}; the default can be ${DEFAULT_DTYPES.join(', ')}`);
  }
  if (!(DEFAULT_DTYPES as readonly string[]).includes(name)) {
    throw new InvalidArgumentError(`setDefaultDtype: ${name} cannot be the default dtype (as in PyTorch, only float types every op computes in); use ${DEFAULT_DTYPES.join(', ')}, and cast to ${name} explicitly`);
  }
  const previous = current;
  current = name as DefaultDType;
  return previous;
}

/** The default floating dtype (torch.get_default_dtype); 'float32' unless setDefaultDtype changed it. */
export function getDefaultDtype(): DefaultDType {
  return current;
}
