// 8-bit optimizers as bitsandbytes has them (Dettmers et al. 2021, "8-bit Optimizers via
// Block-wise Quantization"): Adam8bit, AdamW8bit, SGD8bit (momentum) and RMSprop8bit. Each keeps
// its state block-wise quantized (src/backend/quant.ts: uint8 codes of bitsandbytes' dynamic map,
// signed for first moments and unsigned for second moments, plus one float32 absmax per block of
// `blockSize`), and steps each parameter with one fused kernel (Kernels.optimizer8bit): dequantize
// the state, update state and parameter in float32 with the 32-bit optimizer's arithmetic,
// requantize the state with the block's new absmax.
//
// Options and defaults are those of the 32-bit versions, plus (bitsandbytes' names in camelCase):
// - optimBits (default 8): 32 keeps this group's state in float32 (bitsandbytes' per-parameter
//   override, what StableEmbedding asks for: put embeddings in a group with optimBits: 32);
// - minSize8bit (default 4096): parameters with fewer elements keep float32 state;
// - blockSize (default 256, bitsandbytes' current block; the paper used 2048): 256 to 4096, a power of two;
// - paged, pagedBudget: see src/optim/paged.ts.
// Parameters with float32 state take exactly the 32-bit optimizer's step. State dict keys of an
// 8-bit state K are `${K}Codes` (uint8) and `${K}Absmax` (float32); loadStateDict converts between
// the layouts both ways (see Optimizer.loadStateDict), so a 32-bit optimizer loads 8-bit state and back.
import { InvalidArgumentError, MemfitError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import type { Variable } from '../autograd/variable.js';
import type { AdamWDeviceInputs, CastOptions, Optim8bitStep, QuantizedStateRef, TensorRef } from '../backend/backend.js';
import { adamwScalars } from '../backend/adamw.js';
import { blockCount, DEFAULT_BLOCK_SIZE, isBlockSize } from '../backend/quant.js';
import { dynamicMap } from './dynamic_map.js';
import {
  checkBool, checkNumber, withStepOps, UNSIGNED_STATE_KEYS,
  type OptimizerAttachment, type ParamGroup, type ParamState, type ParamsInput, type SkipContext, type StateSpec, type StepOps,
} from './optimizer.js';
import { Adam, type AdamHyper } from './adam.js';
import { SGD, type SGDHyper } from './sgd.js';
import { RMSprop, type RMSpropHyper } from './rmsprop.js';
import { hostBackend, PagedState } from './paged.js';

/** The options every 8-bit optimizer adds to its 32-bit version's. */
export interface Optim8bitOptions {
  /** 8 (default) or 32: float32 state for this group's parameters (bitsandbytes' optim_bits override). */
  optimBits: 8 | 32;
  /** Parameters with fewer elements keep float32 state (default 4096, bitsandbytes' min_8bit_size). */
  minSize8bit: number;
  /** Elements per quantization block, each with its float32 absmax (default 256; a power of two from 256 to 4096). */
  blockSize: number;
  /** Keep the 8-bit state in host memory and stream it to the device for each parameter's update (default false; see README). */
  paged: boolean;
  /** With paged: device bytes the streamed optimizer state may take at once (default 64 MiB). */
  pagedBudget: number;
}

export const OPTIM8BIT_DEFAULTS: Readonly<Optim8bitOptions> = { optimBits: 8, minSize8bit: 4096, blockSize: DEFAULT_BLOCK_SIZE, paged: false, pagedBudget: 64 * 2 ** 20 };

export type Adam8bitHyper = AdamHyper & Optim8bitOptions;
export type SGD8bitHyper = SGDHyper & Optim8bitOptions;
export type RMSprop8bitHyper = RMSpropHyper & Optim8bitOptions;

function validate8bit(owner: string, g: Optim8bitOptions): void {
  if (g.optimBits !== 8 && g.optimBits !== 32) throw new InvalidArgumentError(`${owner}: optimBits must be 8 or 32, got ${String(g.optimBits)}`);
  checkNumber(owner, 'minSize8bit', g.minSize8bit);
  if (!Number.isInteger(g.minSize8bit)) throw new InvalidArgumentError(`${owner}: minSize8bit must be an integer, got ${g.minSize8bit}`);
  if (!isBlockSize(g.blockSize)) throw new InvalidArgumentError(`${owner}: blockSize must be a power of two from 256 to 4096, got ${String(g.blockSize)}`);
  checkBool(owner, 'paged', g.paged);
  checkNumber(owner, 'pagedBudget', g.pagedBudget, 0, true);
}

/** Whether `param` in group `g` keeps 8-bit state. */
function uses8bit(param: Variable, g: Optim8bitOptions): boolean {
  return g.optimBits === 8 && param.data.size >= g.minSize8bit;
}

/** Whether the fused kernel steps `param` in its own dtype (8-bit state on the device: not paged, whose pieces are streamed). */
function inPlace8bit(param: Variable, g: Optim8bitOptions): boolean {
  return uses8bit(param, g) && !g.paged;
}

/** The code of 0 in a map (zero-initialized state: codes of 0, absmax 0). */
function zeroCode(signed: boolean): number {
  return dynamicMap(signed).indexOf(0);
}

/**
 * The quantized state K of `param` ('optimizer' category): codes of 0 and absmax 0 (dequantizes to
 * exactly 0); in host memory when the state is paged.
 */
function newQuantized(owner: string, param: Variable, key: string, blockSize: number, state: ParamState, paged: PagedState | null): void {
  const b = paged?.active ? hostBackend() : param.backend;
  const codes = Tensor.empty(b, param.shape, { dtype: 'uint8', category: 'optimizer', label: `${owner}.${key}Codes` });
  let absmax: Tensor | null = null;
  try {
    absmax = Tensor.empty(b, [blockCount(param.data.size, blockSize)], { dtype: 'float32', category: 'optimizer', label: `${owner}.${key}Absmax` });
    b.fill(codes, zeroCode(!UNSIGNED_STATE_KEYS.has(key)));
    b.fill(absmax, 0);
  } catch (e) {
    codes.dispose();
    absmax?.dispose();
    throw e;
  }
  state[`${key}Codes`] = codes;
  state[`${key}Absmax`] = absmax;
}

/** The spec of a parameter's state: the 32-bit one, or its tensors quantized. */
function spec8bit(spec32: StateSpec, param: Variable | undefined, g: Optim8bitOptions): StateSpec {
  if (!param || !uses8bit(param, g)) return spec32;
  return { tensors: [], numbers: spec32.numbers, quantized: spec32.tensors, blockSize: g.blockSize };
}

/**
 * Runs the fused kernel on the quantized states `keys` of `param`, under a found-inf flag too (the
 * device skips the step where the flag is set, and picks h[6], h[7] among the host's candidates
 * while the step count is not back from it), streaming paged state through the device.
 */
function run8bit(
  ops: StepOps, param: Variable, grad: Tensor, state: ParamState, keys: readonly string[], step: Optim8bitStep,
  skip: SkipContext | null, hostT: number, h67: (t: number) => number[], paged: PagedState | null, rounding: CastOptions,
): void {
  let device: AdamWDeviceInputs | undefined;
  const h = [...step.h];
  if (skip) {
    const sc = ops.stepScalars(skip, hostT, h67);
    if (Array.isArray(sc)) [h[6], h[7]] = sc;
    device = { foundInf: skip.foundInf, scalars: sc instanceof Tensor ? sc : undefined };
  }
  const b = param.backend;
  const go = (p: TensorRef, refs: QuantizedStateRef[], start: number, n: number) => {
    const g: TensorRef = n === grad.size ? grad : { storage: grad.storage, offset: grad.offset + start, shape: [n], dtype: grad.dtype };
    b.optimizer8bit(p, g, refs[0], refs[1] ?? null, { ...step, h, ...(rounding.rounding || rounding.saturate ? { rounding } : {}) }, device);
  };
  if (paged?.active) paged.update(param, state, keys, step.blockSize, go);
  else go(param.data, keys.map((k) => ({ codes: state[`${k}Codes`] as Tensor, absmax: state[`${k}Absmax`] as Tensor })), 0, param.data.size);
}

/**
 * Adam with 8-bit state (bitsandbytes' Adam8bit): PyTorch's Adam update in float32 on the
 * dequantized moments; expAvg quantized with the signed map, expAvgSq with the unsigned one.
 * amsgrad is not offered (as in bitsandbytes).
 */
export class Adam8bit extends Adam {
  static override readonly DEFAULTS: Readonly<AdamHyper> = { ...Adam.DEFAULTS, ...OPTIM8BIT_DEFAULTS } as AdamHyper;
  private readonly pagedStates = attachPager(this.attachments);
  // where paged state lives is this optimizer's choice, not a loaded state dict's
  protected override readonly ownGroupKeys: readonly string[] = PAGING_KEYS;

  constructor(params: ParamsInput<Adam8bitHyper>, options: Partial<Adam8bitHyper> = {}) {
    super(params as ParamsInput<AdamHyper>, options as Partial<AdamHyper>);
  }

  protected override get name(): string { return 'Adam8bit'; }

  protected override validateGroup(g: AdamHyper): void {
    super.validateGroup(g);
    const q = g as Adam8bitHyper;
    validate8bit(this.name, q);
    if (q.amsgrad && q.optimBits === 8) throw new InvalidArgumentError(`${this.name}: amsgrad is not supported with 8-bit state (bitsandbytes neither); use optimBits: 32 for it`);
  }

  protected override stateSpec(g: AdamHyper, param?: Variable): StateSpec {
    return spec8bit(super.stateSpec(g), param, g as Adam8bitHyper);
  }

  protected override updateParam(param: Variable, grad: Tensor, g: ParamGroup<AdamHyper>, state: ParamState, skip: SkipContext | null): void {
    const q = g as unknown as Adam8bitHyper;
    if (!uses8bit(param, q)) return super.updateParam(param, grad, g, state, skip);
    if (state.step === undefined) {
      const pg = pagedFor(this.pagedStates, this.name, param, q);
      newQuantized(this.name, param, 'expAvg', q.blockSize, state, pg);
      newQuantized(this.name, param, 'expAvgSq', q.blockSize, state, pg);
      state.step = 0;
    }
    const step = (state.step as number) + 1;
    withStepOps(param.backend, (ops) => {
      let gr: Tensor = grad;
      let gradScale = g.maximize ? -1 : 1;
      if (!this.decoupled && g.weightDecay !== 0) {
        gr = ops.direction(param.data, grad, g.weightDecay, g.maximize);
        gradScale = 1;
      }
      const hyper = { lr: g.lr, beta1: g.betas[0], beta2: g.betas[1], eps: g.eps, weightDecay: this.decoupled ? g.weightDecay : 0, step, gradScale };
      const s = adamwScalars(hyper);
      const h = [s.gradScale, s.decay, s.beta1, s.omb1, s.beta2, s.omb2, s.stepSize, s.bc2Sqrt, s.eps];
      run8bit(ops, param, gr, state, ['expAvg', 'expAvgSq'], { kind: 'adam', blockSize: q.blockSize, h }, skip, step, (t) => {
        const c = adamwScalars({ ...hyper, step: t });
        return [c.stepSize, c.bc2Sqrt];
      }, pagedFor(this.pagedStates, this.name, param, q), this.paramRounding);
    });
    state.step = step;
  }

  protected override roundsInPlace(param: Variable, g: ParamGroup<AdamHyper>): boolean {
    return inPlace8bit(param, g as unknown as Adam8bitHyper);
  }

}

/** AdamW with 8-bit state (bitsandbytes' AdamW8bit): decoupled weight decay, default 1e-2. */
export class AdamW8bit extends Adam8bit {
  static override readonly DEFAULTS: Readonly<AdamHyper> = { ...Adam.DEFAULTS, weightDecay: 1e-2, ...OPTIM8BIT_DEFAULTS } as AdamHyper;
  protected override get name(): string { return 'AdamW8bit'; }
  protected override get decoupled(): boolean { return true; }
}

/**
 * SGD with an 8-bit momentum buffer (bitsandbytes' SGD8bit): PyTorch's SGD update (dampening,
 * Nesterov, L2 weight decay, maximize) on the dequantized buffer, quantized with the signed map.
 * Without momentum there is no state, and the step is SGD's.
 */
export class SGD8bit extends SGD {
  static override readonly DEFAULTS: Readonly<SGDHyper> = { ...SGD.DEFAULTS, ...OPTIM8BIT_DEFAULTS } as SGDHyper;
  private readonly pagedStates = attachPager(this.attachments);
  // where paged state lives is this optimizer's choice, not a loaded state dict's
  protected override readonly ownGroupKeys: readonly string[] = PAGING_KEYS;

  constructor(params: ParamsInput<SGD8bitHyper>, options: Partial<SGD8bitHyper> = {}) {
    super(params as ParamsInput<SGDHyper>, options as Partial<SGDHyper>);
  }

  protected override get name(): string { return 'SGD8bit'; }

  protected override validateGroup(g: SGDHyper): void {
    super.validateGroup(g);
    validate8bit(this.name, g as SGD8bitHyper);
  }

  protected override stateSpec(g: SGDHyper, param?: Variable): StateSpec {
    return spec8bit(super.stateSpec(g), param, g as SGD8bitHyper);
  }

  protected override stepsTaken(state: ParamState): number {
    return state.momentumBuffer || state.momentumBufferCodes ? 1 : 0;
  }

  protected override updateParam(param: Variable, grad: Tensor, g: ParamGroup<SGDHyper>, state: ParamState, skip: SkipContext | null): void {
    const q = g as unknown as SGD8bitHyper;
    if (!uses8bit(param, q) || g.momentum === 0) return super.updateParam(param, grad, g, state, skip);
    const first = state.momentumBufferCodes === undefined;
    if (first) newQuantized(this.name, param, 'momentumBuffer', q.blockSize, state, pagedFor(this.pagedStates, this.name, param, q));
    withStepOps(param.backend, (ops) => {
      const d = ops.direction(param.data, grad, g.weightDecay, g.maximize);
      const h = [g.momentum, 1 - g.dampening, -g.lr, g.nesterov ? 1 : 0, 0, 0, first ? 1 : 0, 0, 0];
      // Under a flag the host may not know whether this is the buffer's first step; the device does (its count is 0).
      run8bit(ops, param, d, state, ['momentumBuffer'], { kind: 'momentum', blockSize: q.blockSize, h }, skip, first ? 1 : 2,
        (t) => [t === 1 ? 1 : 0, 0], pagedFor(this.pagedStates, this.name, param, q), this.paramRounding);
    });
  }

  protected override roundsInPlace(param: Variable, g: ParamGroup<SGDHyper>): boolean {
    return g.momentum !== 0 && inPlace8bit(param, g as unknown as SGD8bitHyper);
  }

}

/**
 * RMSprop with an 8-bit squared-gradient average (bitsandbytes' RMSprop8bit), quantized with the
 * unsigned map: PyTorch's update (L2 weight decay, maximize). As in bitsandbytes, the centered
 * variant and momentum need 32-bit state (optimBits: 32).
 */
export class RMSprop8bit extends RMSprop {
  static override readonly DEFAULTS: Readonly<RMSpropHyper> = { ...RMSprop.DEFAULTS, ...OPTIM8BIT_DEFAULTS } as RMSpropHyper;
  private readonly pagedStates = attachPager(this.attachments);
  // where paged state lives is this optimizer's choice, not a loaded state dict's
  protected override readonly ownGroupKeys: readonly string[] = PAGING_KEYS;

  constructor(params: ParamsInput<RMSprop8bitHyper>, options: Partial<RMSprop8bitHyper> = {}) {
    super(params as ParamsInput<RMSpropHyper>, options as Partial<RMSpropHyper>);
  }

  protected override get name(): string { return 'RMSprop8bit'; }

  protected override validateGroup(g: RMSpropHyper): void {
    super.validateGroup(g);
    const q = g as RMSprop8bitHyper;
    validate8bit(this.name, q);
    if (q.optimBits === 8 && (g.centered || g.momentum !== 0)) throw new InvalidArgumentError(`${this.name}: centered and momentum are not supported with 8-bit state (bitsandbytes neither); use optimBits: 32 for them`);
  }

  protected override stateSpec(g: RMSpropHyper, param?: Variable): StateSpec {
    return spec8bit(super.stateSpec(g), param, g as RMSprop8bitHyper);
  }

  protected override updateParam(param: Variable, grad: Tensor, g: ParamGroup<RMSpropHyper>, state: ParamState, skip: SkipContext | null): void {
    const q = g as unknown as RMSprop8bitHyper;
    if (!uses8bit(param, q)) return super.updateParam(param, grad, g, state, skip);
    if (state.step === undefined) {
      newQuantized(this.name, param, 'squareAvg', q.blockSize, state, pagedFor(this.pagedStates, this.name, param, q));
      state.step = 0;
    }
    withStepOps(param.backend, (ops) => {
      const d = ops.direction(param.data, grad, g.weightDecay, g.maximize);
      const h = [g.alpha, 1 - g.alpha, -g.lr, g.eps, 0, 0, 0, 0, 0];
      run8bit(ops, param, d, state, ['squareAvg'], { kind: 'rmsprop', blockSize: q.blockSize, h }, skip, 1, () => [0, 0], pagedFor(this.pagedStates, this.name, param, q), this.paramRounding);
    });
    state.step = (state.step as number) + 1;
  }

  protected override roundsInPlace(param: Variable, g: ParamGroup<RMSpropHyper>): boolean {
    return inPlace8bit(param, g as unknown as RMSprop8bitHyper);
  }

}

/** The paged-state streamer of a backend (null unless the group asks for paging). */
function pagedFor(map: Map<object, PagedState>, owner: string, param: Variable, g: Optim8bitOptions): PagedState | null {
  if (!g.paged) return null;
  let p = map.get(param.backend);
  if (!p) map.set(param.backend, (p = new PagedState(param.backend, owner, g.pagedBudget)));
  p.budget = g.pagedBudget;
  return p;
}

const PAGING_KEYS = ['paged', 'pagedBudget'] as const;

/** The paged-state streamers of an optimizer (one a backend), attached so they are freed, settled and checked with it. */
function attachPager(attachments: OptimizerAttachment[]): Map<object, PagedState> {
  const map = new Map<object, PagedState>();
  attachments.push({
    dispose() { for (const p of map.values()) p.dispose(); map.clear(); },
    async settle() { for (const p of map.values()) await p.settle(); },
    checkSettled(what: string) {
      for (const p of map.values()) if (!p.settled) throw new MemfitError('PAGED_PENDING', `${what}: paged state is still on its way back to host memory; await optimizer.synchronize() first`);
    },
  });
  return map;
}
