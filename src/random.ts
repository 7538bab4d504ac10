// A seeded, serialisable pseudo-random generator (torch.Generator's role): parameter
// initialisation, dropout masks and data shuffling draw from it, and its state goes into training
// checkpoints so a resumed run draws the same numbers. sfc32 (Chris Doty-Humphrey's Small Fast
// Counting generator, 128-bit state, period >= 2^32) in 32-bit integer arithmetic: the same
// sequence in every JavaScript engine.
import { describeValue, InvalidArgumentError } from './errors.js';

/** A generator's whole state: four uint32 words. */
export type GeneratorState = [number, number, number, number];

export class Generator {
  private a = 0; private b = 0; private c = 0; private d = 0;
  /** A spare standard normal from the last Box-Muller pair (kept so the stream does not depend on call grouping). */
  private spare: number | null = null;

  constructor(seed = 0) { this.manualSeed(seed); }

  /** Restarts the stream from a seed (an integer in [0, 2^53)). */
  manualSeed(seed: number): this {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new InvalidArgumentError(`seed must be an integer in [0, 2^53), got ${seed}`);
    this.a = 0x9e3779b9; this.b = seed >>> 0; this.c = Math.floor(seed / 2 ** 32) >>> 0; this.d = 1;
    this.spare = null;
    for (let i = 0; i < 15; i++) this.nextUint32(); // mix the seed into every word
    return this;
  }

  /** The next uint32. */
  nextUint32(): number {
    if (drawObservers.length) noteDraw(this);
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = (this.b ^ (this.b >>> 9)) >>> 0;
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** Uniform in [0, 1) with 32 random bits. */
  random(): number { return this.nextUint32() / 2 ** 32; }

  /** Uniform in [low, high). */
  uniform(low: number, high: number): number { return low + (high - low) * this.random(); }

  /** A standard normal (Box-Muller). */
  normal(): number {
    if (drawObservers.length) noteDraw(this);
    if (this.spare !== null) { const s = this.spare; this.spare = null; return s; }
    const u1 = (this.nextUint32() + 1) / (2 ** 32 + 1), u2 = this.random();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }

  /** An integer in [0, n). */
  randint(n: number): number { return Math.floor(this.random() * n); }

  /** The state, to save in a checkpoint. */
  getState(): { words: GeneratorState; spare: number | null } {
    return { words: [this.a, this.b, this.c, this.d], spare: this.spare };
  }

  /** Restores a state from getState(). */
  setState(state: { words: readonly number[]; spare: number | null }): this {
    if (state === null || typeof state !== 'object') throw new InvalidArgumentError(`generator state must be an object { words, spare }, got ${describeValue(state)}`);
    const w = state.words;
    if (!Array.isArray(w) || w.length !== 4 || !w.every((x) => Number.isInteger(x) && x >= 0 && x < 2 ** 32)) {
      throw new InvalidArgumentError('generator state must be four uint32 words');
    }
    if (!(state.spare === null || state.spare === undefined || (typeof state.spare === 'number' && Number.isFinite(state.spare)))) {
      throw new InvalidArgumentError(`generator state: spare must be a finite number or null, got ${describeValue(state.spare)}`);
    }
    [this.a, this.b, this.c, this.d] = w;
    this.spare = state.spare ?? null;
    return this;
  }
}

/** Told of each generator before it draws (a checkpoint notes the states to replay its dropout masks). */
export type DrawObserver = (g: Generator) => void;

const drawObservers: DrawObserver[] = [];

function noteDraw(g: Generator): void {
  for (const o of drawObservers) o(g);
}

/** Runs fn with `observer` told of every generator about to draw inside it. */
export function withDrawObserver<T>(observer: DrawObserver, fn: () => T): T {
  drawObservers.push(observer);
  try { return fn(); } finally { drawObservers.splice(drawObservers.lastIndexOf(observer), 1); }
}

/** The default generator (torch.manual_seed's). */
export const defaultGenerator = new Generator(0);

/** Seeds the default generator. */
export function manualSeed(seed: number): Generator { return defaultGenerator.manualSeed(seed); }
