// Containers: ModuleList (an indexed list of children named '0', '1', ..., torch.nn.ModuleList)
// and Sequential (a ModuleList whose forward chains its children). Children live in an array
// rather than in numbered properties, so the list can grow and be iterated like one; childEntries
// and replaceChild expose it to Module, which is what makes paths like `layers.3` resolve and
// setSubmodule('layers.3', wrapper) work.
import { describeValue, InvalidArgumentError } from '../errors.js';
import { Variable } from '../autograd/variable.js';
import { Module } from './module.js';

/** Children held by index, named '0', '1', ... in dotted paths and state-dict keys. */
export class ModuleList<M extends Module = Module> extends Module implements Iterable<M> {
  #items: M[] = [];

  /** A list of `modules` (an array or another iterable), in order. */
  constructor(modules: Iterable<M> = []) {
    super();
    if (modules === null || typeof (modules as Partial<Iterable<M>>)[Symbol.iterator] !== 'function' || modules instanceof Module) {
      throw new InvalidArgumentError(`${new.target.name}: expected an iterable of Modules (an array), got ${describeValue(modules)}`);
    }
    this.push(...modules);
  }

  /** Number of children. */
  get length(): number {
    return this.#items.length;
  }

  /** The child at index i (negative counts from the end); throws when out of range. */
  at(i: number): M {
    const m = Number.isInteger(i) ? this.#items.at(i) : undefined;
    if (!m) throw new InvalidArgumentError(`${this.constructor.name}.at(${i}): index out of range for length ${this.#items.length}`);
    return m;
  }

  /** Appends modules; returns this. */
  push(...modules: M[]): this {
    for (const m of modules) {
      if (!(m instanceof Module)) throw new InvalidArgumentError(`${this.constructor.name}: expected Modules, got ${describeValue(m)}`);
    }
    this.#items.push(...modules);
    return this;
  }

  /** Appends one module (torch's ModuleList.append). */
  append(module: M): this {
    return this.push(module);
  }

  /** Appends every module of an iterable (torch's ModuleList.extend). */
  extend(modules: Iterable<M>): this {
    return this.push(...modules);
  }

  /** The children in order. */
  [Symbol.iterator](): Iterator<M> {
    return this.#items[Symbol.iterator]();
  }

  /** The items as '0', '1', ..., then any children a subclass holds in properties. */
  protected override childEntries(): [string, Module][] {
    return [...this.#items.map((m, i): [string, Module] => [String(i), m]), ...super.childEntries()];
  }

  /**
   * Replaces child `name` (an index). The replacement is stored as an M although it may be another
   * class (a wrapper): setSubmodule's contract is that it takes the same forward arguments.
   */
  protected override replaceChild(name: string, module: Module): void {
    if (!/^\d+$/.test(name)) return super.replaceChild(name, module);
    const i = /^(0|[1-9]\d*)$/.test(name) ? Number(name) : -1;
    if (i < 0 || i >= this.#items.length) throw new InvalidArgumentError(`${this.constructor.name} has no child ${JSON.stringify(name)} (length ${this.#items.length})`);
    this.#items[i] = module as M;
  }
}

/** A ModuleList whose forward passes its input through each child in turn. */
export class Sequential<M extends Module = Module> extends ModuleList<M> {
  /** Children in order: an iterable (`new Sequential([a, b])`) or, as torch.nn.Sequential, the modules as arguments (`new Sequential(a, b)`). */
  constructor(modules?: Iterable<M>);
  constructor(...modules: M[]);
  constructor(...args: (Iterable<M> | M | undefined)[]) {
    super(args.length === 1 && !(args[0] instanceof Module) ? (args[0] as Iterable<M> | undefined) : (args as M[]));
  }

  /** x through every child in order; each child's forward takes one Variable and returns one. */
  forward(x: Variable): Variable {
    let y: unknown = x;
    let i = 0;
    for (const m of this) {
      y = m.callForward(y);
      if (!(y instanceof Variable)) throw new InvalidArgumentError(`Sequential: child ${i} (${m.constructor.name}) returned ${y === null ? 'null' : typeof y}, not a Variable`);
      i++;
    }
    return y as Variable;
  }
}
