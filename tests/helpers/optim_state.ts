// Optimizer state as raw bits, for the tests that require a step to change nothing (or to equal another run bit for bit).
import type { Tensor } from '../../src/tensor/tensor.js';
import type { Variable } from '../../src/autograd/variable.js';
import type { Optimizer, OptimizerHyper, OptimizerStateDict } from '../../src/optim/index.js';

/** A tensor's values as float32 bits (decoded exactly from a low-precision dtype). */
export async function f32Bits(t: Tensor): Promise<number[]> {
  const c = t.dtype === 'float32' ? t : t.to('float32');
  try {
    return Array.from(new Uint32Array((await c.toArray()).buffer));
  } finally {
    if (c !== t) c.dispose();
  }
}

/** Every parameter and state tensor as raw bits, and the numbers of the state. */
export async function snapshot(ps: Variable[], opt: Optimizer<OptimizerHyper>): Promise<string[]> {
  const out: string[] = [];
  const bits = async (t: Tensor) => (await f32Bits(t)).join(',');
  for (const p of ps) out.push(`param ${await bits(p.data)}`);
  for (const [k, p] of ps.entries()) {
    const s = opt.getState(p) ?? {};
    for (const key of Object.keys(s).sort()) {
      const v = s[key];
      out.push(`${k}.${key} ${typeof v === 'number' ? v : await bits(v)}`);
    }
  }
  return out;
}

/** The state dict with its tensors as bits (for equality). */
export async function stateBits(opt: Optimizer<OptimizerHyper>): Promise<unknown> {
  const sd: OptimizerStateDict<OptimizerHyper> = opt.stateDict();
  const state: Record<string, Record<string, string | number>> = {};
  for (const [id, s] of Object.entries(sd.state)) {
    state[id] = {};
    for (const [k, v] of Object.entries(s)) state[id][k] = typeof v === 'number' ? v : (await f32Bits(v)).join(',');
  }
  return { state, paramGroups: sd.paramGroups };
}

