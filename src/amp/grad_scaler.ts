// GradScaler: PyTorch's dynamic loss scaling (torch.amp.GradScaler) with everything on the device.
// PyTorch reads the found-inf flag back to the host at every step() to decide whether to call
// optimizer.step(). Here the scale, its inverse, the growth tracker and the found-inf flags are
// device tensors: unscale() checks and unscales the gradients in one kernel, step() hands the flag
// to the optimizer (whose kernels leave parameters and state untouched when it is set), and
// update() computes the new scale and tracker with one kernel. A training step never waits for
// the device; getScale() and stateDict() read back, so they return Promises.
import { InvalidArgumentError, MemfitError } from '../errors.js';
import type { Backend } from '../backend/backend.js';
import { Tensor } from '../tensor/tensor.js';
import { Variable } from '../autograd/variable.js';
import { mul } from '../autograd/ops.js';
import { GradientReleaseError, markScaledLoss, type Optimizer, type OptimizerHyper } from '../optim/optimizer.js';

export interface GradScalerOptions {
  /** The first scale (default 2^16). */
  initScale?: number;
  /** Factor the scale grows by after growthInterval steps without inf/NaN (default 2; > 1). */
  growthFactor?: number;
  /** Factor the scale shrinks by after a step with inf/NaN gradients (default 0.5; in (0, 1)). */
  backoffFactor?: number;
  /** Steps without inf/NaN before the scale grows (default 2000; a positive integer). */
  growthInterval?: number;
  /** false makes every method a no-op (scale returns its input, step calls optimizer.step()). Default true. */
  enabled?: boolean;
}

/** GradScaler.stateDict(): PyTorch's keys and values (an empty object for a disabled scaler). */
export interface GradScalerStateDict {
  scale: number;
  growth_factor: number;
  backoff_factor: number;
  growth_interval: number;
  _growth_tracker: number;
}

/** A GradScaler used out of order (PyTorch's RuntimeErrors), or given a bad state dict. */
/** Throws when the optimizer steps inside backward: a GradScaler cannot skip a step already taken. */
function refuseReleased(optimizer: Optimizer<OptimizerHyper>, what: string): void {
  if (optimizer.attachedToBackward) {
    throw new GradientReleaseError(`GradScaler.${what}: the optimizer steps inside backward (attachToBackward), so its parameters were updated before the gradients could be checked for inf/NaN; a GradScaler cannot be combined with gradient release (use bfloat16, which needs no scaler)`);
  }
}

export class GradScalerError extends MemfitError {
  constructor(message: string) {
    super('GRAD_SCALER', message);
  }
}

type Stage = 'unscaled' | 'stepped';

/** What the scaler did to one optimizer since the last update(). */
interface OptimizerRecord {
  stage: Stage;
  /** float32 []: set to 1 by unscale() if a gradient held inf or NaN; null when the optimizer had no gradients. */
  foundInf: Tensor | null;
}

const KEYS = ['scale', 'growth_factor', 'backoff_factor', 'growth_interval', '_growth_tracker'] as const;

/** Largest growth interval: the tracker is an int32 on the device. */
const MAX_INTERVAL = 2 ** 31 - 1;

/**
 * Dynamic loss scaling for float16 training (torch.amp.GradScaler):
 * `scaler.scale(loss).backward(); scaler.step(opt); scaler.update();`, with
 * `scaler.unscale(opt)` before clipping gradients. Every decision is made on the device.
 */
export class GradScaler {
  private readonly enabled: boolean;
  private growthFactor: number;
  private backoffFactor: number;
  private growthInterval: number;
  /** Used until the device tensors exist (the first scale()), as PyTorch's _init_scale. */
  private initScale: number;
  private initGrowthTracker = 0;
  private backend: Backend | null = null;
  private scaleT: Tensor | null = null;
  private invScaleT: Tensor | null = null;
  private trackerT: Tensor | null = null;
  private readonly records = new Map<Optimizer<OptimizerHyper>, OptimizerRecord>();

  constructor(options: GradScalerOptions = {}) {
    if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('GradScaler: options must be an object');
    const known = ['initScale', 'growthFactor', 'backoffFactor', 'growthInterval', 'enabled'];
    for (const k of Object.keys(options)) if (!known.includes(k)) throw new InvalidArgumentError(`GradScaler: unknown option '${k}' (known: ${known.join(', ')})`);
    const { initScale = 2 ** 16, growthFactor = 2, backoffFactor = 0.5, growthInterval = 2000, enabled = true } = options;
    if (typeof enabled !== 'boolean') throw new InvalidArgumentError(`GradScaler: enabled must be true or false, got ${String(enabled)}`);
    checkScale('GradScaler: initScale', initScale);
    checkGrowthFactor(growthFactor);
    checkBackoffFactor(backoffFactor);
    checkInterval(growthInterval);
    this.enabled = enabled;
    this.initScale = Math.fround(initScale);
    this.growthFactor = growthFactor;
    this.backoffFactor = backoffFactor;
    this.growthInterval = growthInterval;
  }

  /** PyTorch's defaults, as a fresh scaler's stateDict() gives them. */
  static readonly DEFAULTS: Readonly<GradScalerStateDict> = { scale: 65536, growth_factor: 2, backoff_factor: 0.5, growth_interval: 2000, _growth_tracker: 0 };

  isEnabled(): boolean {
    return this.enabled;
  }

  /**
   * outputs * scale (a differentiable multiply by a copy of the current scale, on the device), for
   * a Variable or an array of them; unchanged when the scaler is disabled. The first call makes
   * the scaler's tensors on the outputs' backend.
   */
  scale<T extends Variable | readonly Variable[]>(outputs: T): T {
    if (!this.enabled) return outputs;
    const list: readonly Variable[] = outputs instanceof Variable ? [outputs] : outputs;
    if (!Array.isArray(list) || list.some((v) => !(v instanceof Variable))) {
      throw new InvalidArgumentError('GradScaler.scale: expected a Variable (the loss) or an array of Variables');
    }
    for (const v of list) {
      if (v.data.isDisposed) throw new InvalidArgumentError('GradScaler.scale: an output was disposed');
      if (v.data.dtype === 'int32') throw new InvalidArgumentError('GradScaler.scale: outputs must be float tensors, got int32');
      if (this.backend && v.backend !== this.backend) throw new InvalidArgumentError(`GradScaler.scale: an output is on the ${v.backend.kind} backend, the scaler's tensors on ${this.backend.kind}`);
    }
    if (list.length === 0) return outputs;
    this.lazyInit(list[0].backend);
    const scaled = list.map((v) => {
      // A copy: the graph keeps the scale of this iteration even if update() changes it before backward.
      const s = Tensor.empty(v.backend, [], { dtype: 'float32', category: 'temporary', label: 'GradScaler.scale' });
      v.backend.cast(this.scaleT!, s);
      const sv = new Variable(s, { requiresGrad: false });
      try {
        const out = mul(v, sv);
        markScaledLoss(out); // gradient release refuses a backward from it
        return out;
      } finally {
        s.dispose(); // the product's node keeps its own reference for backward
      }
    });
    return (outputs instanceof Variable ? scaled[0] : scaled) as unknown as T;
  }

  /**
   * Divides the optimizer's gradients by the scale, in place, and records on the device whether
   * any of them holds inf or NaN (torch's unscale_). Call it before clipping gradients; step()
   * calls it when it has not been called. Once per optimizer between updates.
   */
  unscale(optimizer: Optimizer<OptimizerHyper>): void {
    if (!this.enabled) return;
    refuseReleased(optimizer, 'unscale');
    const rec = this.records.get(optimizer);
    if (rec?.stage === 'unscaled') throw new GradScalerError('GradScaler.unscale: unscale() has already been called on this optimizer since the last update()');
    if (rec?.stage === 'stepped') throw new GradScalerError('GradScaler.unscale: unscale() is being called after step(); call update() first');
    this.records.set(optimizer, this.unscaleGrads(optimizer, 'unscale'));
  }

  /**
   * Unscales the gradients (unless unscale() did), then runs optimizer.step({ foundInf }): where a
   * gradient held inf or NaN the optimizer changes nothing, decided on the device. Once per
   * optimizer between updates. Disabled: optimizer.step().
   */
  step(optimizer: Optimizer<OptimizerHyper>): void {
    if (!this.enabled) return optimizer.step();
    refuseReleased(optimizer, 'step');
    const prior = this.records.get(optimizer);
    if (prior?.stage === 'stepped') throw new GradScalerError('GradScaler.step: step() has already been called since the last update()');
    const rec = prior ?? this.unscaleGrads(optimizer, 'step');
    if (!rec.foundInf) throw new GradScalerError('GradScaler.step: no inf checks were recorded for this optimizer: none of its parameters has a gradient');
    // From here the gradients are unscaled: if the optimizer refuses its step (checked before it
    // changes anything), the scaler stays at 'unscaled' for it, as if unscale() had been called.
    this.records.set(optimizer, rec);
    optimizer.step({ foundInf: rec.foundInf });
    rec.stage = 'stepped';
  }

  /**
   * Updates the scale on the device (torch's update): backed off when any optimizer's gradients
   * held inf or NaN since the last update, grown after growthInterval clean updates. With
   * `newScale` (a number, or a float32 tensor of one element) the scale is set to it instead.
   */
  update(newScale?: number | Tensor): void {
    if (!this.enabled) return;
    if (!this.scaleT) throw new GradScalerError('GradScaler.update: the scale does not exist yet; call scale(loss) first in the iteration');
    const be = this.backend!;
    if (newScale !== undefined) {
      if (typeof newScale === 'number') {
        checkScale('GradScaler.update: newScale', newScale);
        this.writeScale(newScale);
      } else {
        if (!(newScale instanceof Tensor) || newScale.isDisposed) throw new InvalidArgumentError('GradScaler.update: newScale must be a number or a live float32 Tensor of one element');
        if (newScale.dtype !== 'float32' || newScale.size !== 1) throw new InvalidArgumentError(`GradScaler.update: newScale must be float32 with one element, got ${newScale.dtype} [${newScale.shape.join(', ')}]`);
        if (newScale.backend !== be) throw new InvalidArgumentError(`GradScaler.update: newScale is on the ${newScale.backend.kind} backend, the scale on ${be.kind}`);
        be.cast(newScale, this.scaleT); // one element either way: the same bits
        const one = Tensor.from(be, [1], [], { dtype: 'float32', category: 'temporary', label: 'one' });
        be.binary('div', one, this.scaleT, this.invScaleT!);
        one.dispose();
      }
    } else {
      const found = [...this.records.values()].map((r) => r.foundInf).filter((t): t is Tensor => t !== null);
      if (found.length === 0) throw new GradScalerError('GradScaler.update: no inf checks were recorded prior to update(); call step(optimizer) (or unscale) first');
      let combined = found[0];
      if (found.length > 1) {
        combined = Tensor.empty(be, [], { dtype: 'float32', category: 'temporary', label: 'GradScaler.found_inf' });
        be.binary('add', found[0], found[1], combined);
        for (const f of found.slice(2)) be.binary('add', combined, f, combined);
      }
      be.ampUpdateScale(this.scaleT, this.invScaleT!, this.trackerT!, combined, this.growthFactor, this.backoffFactor, this.growthInterval);
      if (combined !== found[0]) combined.dispose();
    }
    for (const r of this.records.values()) this.dropRecord(r);
    this.records.clear();
  }

  /** The current scale (reads it back from the device): initScale before the first scale(), 1 when disabled. */
  async getScale(): Promise<number> {
    if (!this.enabled) return 1;
    if (!this.scaleT) return this.initScale;
    return (await this.scaleT.toArray())[0];
  }

  getGrowthFactor(): number { return this.growthFactor; }
  setGrowthFactor(v: number): void { checkGrowthFactor(v); this.growthFactor = v; }
  getBackoffFactor(): number { return this.backoffFactor; }
  setBackoffFactor(v: number): void { checkBackoffFactor(v); this.backoffFactor = v; }
  getGrowthInterval(): number { return this.growthInterval; }
  setGrowthInterval(v: number): void { checkInterval(v); this.growthInterval = v; }

  /** PyTorch's state_dict (scale, growth_factor, backoff_factor, growth_interval, _growth_tracker), read from the device; {} when disabled. */
  async stateDict(): Promise<GradScalerStateDict | Record<string, never>> {
    if (!this.enabled) return {};
    const scale = await this.getScale();
    const tracker = this.trackerT ? (await this.trackerT.toArray())[0] : this.initGrowthTracker;
    return { scale, growth_factor: this.growthFactor, backoff_factor: this.backoffFactor, growth_interval: this.growthInterval, _growth_tracker: tracker };
  }

  /** Loads a stateDict() (checked first: nothing changes on an error). A disabled scaler ignores it, as PyTorch's. */
  loadStateDict(stateDict: GradScalerStateDict | Record<string, never>): void {
    if (!this.enabled) return;
    const where = 'GradScaler.loadStateDict';
    if (typeof stateDict !== 'object' || stateDict === null || Array.isArray(stateDict)) throw new GradScalerError(`${where}: expected an object with keys ${KEYS.join(', ')}`);
    const sd = stateDict as Partial<GradScalerStateDict>;
    if (Object.keys(sd).length === 0) throw new GradScalerError(`${where}: the state dict is empty, possibly because it was saved from a disabled GradScaler`);
    for (const k of Object.keys(sd)) if (!(KEYS as readonly string[]).includes(k)) throw new GradScalerError(`${where}: unknown key '${k}' (expected ${KEYS.join(', ')})`);
    for (const k of KEYS) if (!(k in sd)) throw new GradScalerError(`${where}: missing key '${k}'`);
    const fail = (fn: () => void) => {
      try { fn(); } catch (e) { throw new GradScalerError(`${where}: ${(e as Error).message}`); }
    };
    fail(() => checkScale('scale', sd.scale));
    fail(() => checkGrowthFactor(sd.growth_factor));
    fail(() => checkBackoffFactor(sd.backoff_factor));
    fail(() => checkInterval(sd.growth_interval));
    const tracker = sd._growth_tracker;
    if (!(typeof tracker === 'number' && Number.isInteger(tracker) && tracker >= 0 && tracker <= MAX_INTERVAL)) {
      throw new GradScalerError(`${where}: _growth_tracker must be an integer >= 0, got ${String(tracker)}`);
    }
    this.initScale = Math.fround(sd.scale!);
    this.growthFactor = sd.growth_factor!;
    this.backoffFactor = sd.backoff_factor!;
    this.growthInterval = sd.growth_interval!;
    this.initGrowthTracker = tracker;
    if (this.scaleT) {
      this.writeScale(sd.scale!);
      this.backend!.write(this.trackerT!.storage, Int32Array.of(tracker));
    }
  }

  /** Frees the scaler's device tensors (the next scale() makes them again from the last known state: call stateDict() first to keep it). */
  dispose(): void {
    for (const r of this.records.values()) this.dropRecord(r);
    this.records.clear();
    for (const t of [this.scaleT, this.invScaleT, this.trackerT]) t?.dispose();
    this.scaleT = this.invScaleT = this.trackerT = null;
    this.backend = null;
  }

  // ---- internals ----------------------------------------------------------------------------

  private lazyInit(backend: Backend): void {
    if (this.scaleT) return;
    this.backend = backend;
    this.scaleT = Tensor.from(backend, [this.initScale], [], { dtype: 'float32', category: 'optimizer', label: 'GradScaler.scale' });
    this.invScaleT = Tensor.from(backend, [1 / this.initScale], [], { dtype: 'float32', category: 'optimizer', label: 'GradScaler.inv_scale' });
    this.trackerT = Tensor.from(backend, Int32Array.of(this.initGrowthTracker), [], { dtype: 'int32', category: 'optimizer', label: 'GradScaler.growth_tracker' });
  }

  /** Writes a host-known scale and its inverse (float32 of the float64 reciprocal, as PyTorch's). */
  private writeScale(scale: number): void {
    const s = Math.fround(scale);
    this.backend!.write(this.scaleT!.storage, Float32Array.of(s));
    this.backend!.write(this.invScaleT!.storage, Float32Array.of(1 / s));
  }

  /** Checks every gradient, then unscales them all into a new found-inf flag (the record returned, stage 'unscaled'). */
  private unscaleGrads(optimizer: Optimizer<OptimizerHyper>, what: string): OptimizerRecord {
    const where = `GradScaler.${what}`;
    if (!this.scaleT) throw new GradScalerError(`${where}: the scale does not exist yet; call scale(loss) first in the iteration`);
    const grads: Tensor[] = [];
    let index = 0;
    for (const g of optimizer.paramGroups) {
      for (const p of g.params) {
        const id = index++;
        const grad = p.grad;
        if (!grad) continue;
        if (grad.dtype === 'float16') throw new GradScalerError(`${where}: attempting to unscale float16 gradients (parameter ${id}); keep gradients in float32 (memfit's default)`);
        if (grad.dtype !== 'float32') throw new GradScalerError(`${where}: parameter ${id} has a ${grad.dtype} gradient; the scaler unscales float32 gradients`);
        if (grad.backend !== this.backend) throw new InvalidArgumentError(`${where}: parameter ${id}'s gradient is on the ${grad.backend.kind} backend, the scale on ${this.backend!.kind}`);
        if (grad.isDisposed) throw new InvalidArgumentError(`${where}: parameter ${id}'s gradient was disposed`);
        grads.push(grad);
      }
    }
    if (grads.length === 0) return { stage: 'unscaled', foundInf: null };
    const found = Tensor.from(this.backend!, [0], [], { dtype: 'float32', category: 'temporary', label: 'GradScaler.found_inf' });
    this.backend!.nonFiniteCheckAndUnscale(grads, found, this.invScaleT!);
    return { stage: 'unscaled', foundInf: found };
  }

  private dropRecord(r: OptimizerRecord): void {
    r.foundInf?.dispose();
    r.foundInf = null;
  }
}

function checkScale(what: string, v: unknown): void {
  if (!(typeof v === 'number' && Number.isFinite(v) && v > 0 && Math.fround(v) > 0 && Number.isFinite(Math.fround(v)))) {
    throw new InvalidArgumentError(`${what} must be a finite number > 0 (in float32's range), got ${String(v)}`);
  }
}

function checkGrowthFactor(v: unknown): void {
  if (!(typeof v === 'number' && Number.isFinite(v) && v > 1)) throw new InvalidArgumentError(`GradScaler: growthFactor must be a finite number > 1, got ${String(v)}`);
}

function checkBackoffFactor(v: unknown): void {
  if (!(typeof v === 'number' && v > 0 && v < 1)) throw new InvalidArgumentError(`GradScaler: backoffFactor must be a number in (0, 1), got ${String(v)}`);
}

function checkInterval(v: unknown): void {
  if (!(typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= MAX_INTERVAL)) throw new InvalidArgumentError(`GradScaler: growthInterval must be an integer in [1, 2^31 - 1], got ${String(v)}`);
}
