// Optimizer state as raw bits, for the tests that require a step to change nothing (or to equal another run bit for bit).
// Also the harness of the found-inf tests: every optimizer run with some iterations' gradients
// holding inf/NaN, stepped with a flag or (PyTorch's way) not stepped on those iterations.
import { Tensor } from '../../src/tensor/tensor.js';
import type { Variable } from '../../src/autograd/variable.js';
import type { Backend } from '../../src/backend/backend.js';
import {
  SGD, Adam, AdamW, RMSprop, Adagrad, type Optimizer, type OptimizerHyper, type OptimizerStateDict,
} from '../../src/optim/index.js';
import { rand, param, setGrad } from './values.js';

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


const SHAPES = [[3, 4], [5]];

export const CASES: [string, (ps: Variable[]) => Optimizer<OptimizerHyper>, string][] = [
  ['SGD', (ps) => new SGD(ps, { lr: 0.1 }), 'float32'],
  ['SGD momentum dampening nesterov=false', (ps) => new SGD(ps, { lr: 0.1, momentum: 0.9, dampening: 0.3, weightDecay: 0.01 }), 'float32'],
  ['SGD nesterov maximize', (ps) => new SGD(ps, { lr: 0.05, momentum: 0.8, nesterov: true, maximize: true }), 'float32'],
  ['Adam L2', (ps) => new Adam(ps, { lr: 0.01, weightDecay: 0.1 }), 'float32'],
  ['AdamW', (ps) => new AdamW(ps, { lr: 0.01, betas: [0.8, 0.9] }), 'float32'],
  ['AdamW bfloat16', (ps) => new AdamW(ps, { lr: 0.02 }), 'bfloat16'],
  ['AdamW amsgrad maximize', (ps) => new AdamW(ps, { lr: 0.01, amsgrad: true, maximize: true }), 'float32'],
  ['RMSprop centered momentum', (ps) => new RMSprop(ps, { lr: 0.01, centered: true, momentum: 0.5, weightDecay: 0.1 }), 'float32'],
  ['Adagrad lrDecay', (ps) => new Adagrad(ps, { lr: 0.1, lrDecay: 0.3, initialAccumulatorValue: 0.1 }), 'float32'],
  ['Adagrad bfloat16', (ps) => new Adagrad(ps, { lr: 0.1 }), 'bfloat16'],
];

/** Steps whose gradients hold inf or NaN (the first among them: the parameters' state starts with a skip). */
export const SKIPS = new Set([0, 3, 4, 7]);
export const STEPS = 10;

export function makeParams(b: Backend, dtype: string): Variable[] {
  return SHAPES.map((s, k) => param(b, rand(s[0] * (s[1] ?? 1), 1 + k), s, dtype));
}

/** The gradients of step t: finite, or with an inf / NaN / -inf planted on skipped steps. */
export function gradsAt(t: number, k: number, n: number): Float32Array {
  const g = rand(n, 100 + 10 * t + k, [1, 0.3, 2][t % 3]);
  if (SKIPS.has(t)) g[(t + k) % n] = [Infinity, NaN, -Infinity][(t + k) % 3];
  return g;
}

export type Mode = 'plain' | 'flag, never awaited' | 'flag, synchronized each step';

/** Runs STEPS steps; 'plain' does not step on skipped iterations (PyTorch's GradScaler), the others pass the flag. */
export async function runFlagged(b: Backend, make: (ps: Variable[]) => Optimizer<OptimizerHyper>, dtype: string, mode: Mode, check?: (before: string[], after: string[], t: number) => void) {
  const ps = makeParams(b, dtype);
  const opt = make(ps);
  for (let t = 0; t < STEPS; t++) {
    ps.forEach((p, k) => setGrad(p, gradsAt(t, k, p.data.size)));
    if (mode === 'plain') {
      if (!SKIPS.has(t)) opt.step();
      continue;
    }
    const flag = Tensor.from(b, [SKIPS.has(t) ? 1 : 0], [], { category: 'temporary' });
    const before = check ? await snapshot(ps, opt) : null;
    opt.step({ foundInf: flag });
    flag.dispose();
    if (mode === 'flag, synchronized each step') await opt.synchronize();
    if (check) check(before!, await snapshot(ps, opt), t);
  }
  await opt.synchronize();
  const result = { params: await Promise.all(ps.map((p) => f32Bits(p.data))), state: await stateBits(opt) };
  opt.zeroGrad();
  opt.dispose();
  for (const p of ps) p.dispose();
  return result;
}
