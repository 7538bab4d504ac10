// Module: the base class of layers and models (torch.nn.Module). Children and parameters are found
// the way PyTorch's __setattr__ registers them, without any registration call: a module's own
// enumerable properties holding a Module are its children and those holding a Parameter are its
// parameters, in property-definition order. Everything else (numbers, plain Tensors, arrays, ES
// #private fields, getters) is ignored, so a module can keep a reference to another module without
// owning it by holding it in a #private field. Buffers (tensors that are state but not trained,
// e.g. running statistics or rotary tables) are registered explicitly with registerBuffer, as in
// PyTorch, because a plain Tensor property is just as often a cache that must not be saved.
//
// Names are dotted paths (`layers.3.mlp.fc.weight`), the same strings PyTorch uses as state-dict
// keys, so checkpoints map one to one. Modules are replaced by path (setSubmodule) so that wrappers
// (gradient checkpointing, adapters) can be put around any submodule without the model's code
// knowing; a wrapper lists the child it wraps in stateDictTransparentChildren() to keep the
// model's checkpoint keys unchanged.
import type { DTypeName } from '../dtype/formats.js';
import { currentModulePath, insideModule, modulePathStack, withModulePath, withModulePathStack } from '../backend/op_context.js';
import { describeValue, InvalidArgumentError, MemfitError, ShapeMismatchError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import type { Backend } from '../backend/backend.js';
import { canonicalDType, formatOf } from '../dtype/formats.js';
import { Parameter } from './parameter.js';
import { checkZeroGradOptions, type ZeroGradOptions } from '../autograd/variable.js';

/** A state dict: dotted name -> tensor, in PyTorch's order and naming. */
export type StateDict = Record<string, Tensor>;

/** Options of registerBuffer(). */
export interface BufferOptions {
  /** Saved in stateDict (default true); false for tensors recomputed at construction (rotary tables). */
  persistent?: boolean;
}

/** Options of loadStateDict(). */
export interface LoadStateDictOptions {
  /** Throw if any key is missing or unexpected (default true). */
  strict?: boolean;
}

/** What loadStateDict() did not match (both empty after a strict load). */
export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

/** The arguments of M's forward (unknown[] if it has none): types a wrapper's forward after the module it wraps. */
export type ForwardArgs<M> = M extends { forward(...args: infer A): unknown } ? A : unknown[];

/** The result of M's forward (unknown if it has none). */
export type ForwardResult<M> = M extends { forward(...args: never[]): infer R } ? R : unknown;

/** A class (abstract or not) whose instances are modules of type M; used to check getSubmodule's result. */
export type ModuleClass<M extends Module> = abstract new (...args: never[]) => M;

interface BufferEntry {
  tensor: Tensor;
  persistent: boolean;
}

/** Where a state-dict entry lives, so that loading writes into the module's own tensor. */
type Slot =
  | { readonly key: string; readonly kind: 'parameter'; readonly param: Parameter }
  | { readonly key: string; readonly kind: 'buffer'; readonly module: Module; readonly name: string };

const join = (prefix: string, name: string): string => (prefix ? `${prefix}.${name}` : name);
const dims = (s: readonly number[]): string => `[${s.join(', ')}]`;
const quote = (keys: readonly string[]): string => keys.map((k) => JSON.stringify(k)).join(', ');

function describe(v: unknown): string {
  if (v === null) return 'null';
  const name = v instanceof Parameter ? 'Parameter' : v instanceof Tensor ? 'Tensor'
    : typeof v === 'object' ? (v.constructor?.name ?? 'object') : typeof v;
  return `${/^[aeiou]/i.test(name) ? 'an' : 'a'} ${name}`;
}

/** The dotted names of the submodules of the outermost module whose forward is running. */
let rootNames: { root: Module; names: Map<Module, string> } | null = null;

/** Where a module forward runs: the path stack and the names of the outermost module's submodules. */
export interface ModuleContext {
  readonly paths: readonly string[];
  readonly names: { root: Module; names: Map<Module, string> } | null;
}

/** The module context in force now (a checkpoint captures it to recompute under it). */
export function moduleContext(): ModuleContext {
  return { paths: modulePathStack(), names: rootNames };
}

/** Runs fn in a captured module context: its ops get the module paths they had when it was captured. */
export function withModuleContext<T>(ctx: ModuleContext, fn: () => T): T {
  const saved = rootNames;
  rootNames = ctx.names;
  try {
    return withModulePathStack(ctx.paths, fn);
  } finally {
    rootNames = saved;
  }
}

/**
 * Wraps a module's forward call (inside its labelled scope): `call(...args)` runs the forward.
 * Set per instance by checkpointModules (src/recompute) without touching the module's code.
 */
export type ForwardWrapper = (call: (...args: unknown[]) => unknown, args: unknown[]) => unknown;

const forwardWrappers = new WeakMap<Module, ForwardWrapper>();

/** Installs (or with null removes) the wrapper of m's forward; returns the one it replaces. */
export function setForwardWrapper(m: Module, wrapper: ForwardWrapper | null): ForwardWrapper | null {
  const prev = forwardWrappers.get(m) ?? null;
  if (wrapper) forwardWrappers.set(m, wrapper);
  else forwardWrappers.delete(m);
  return prev;
}

/** The wrapper installed on m's forward, if any. */
export function forwardWrapper(m: Module): ForwardWrapper | null {
  return forwardWrappers.get(m) ?? null;
}

/** Runs a module's forward with its dotted path as the allocation context. */
function runLabelled<T>(m: Module, fn: () => T): T {
  if (!insideModule()) {
    const names = new Map<Module, string>();
    for (const [n, sub] of m.namedModules()) if (!names.has(sub)) names.set(sub, n);
    const saved = rootNames;
    rootNames = { root: m, names };
    try {
      return withModulePath(m.constructor.name, fn);
    } finally {
      rootNames = saved;
    }
  }
  const name = rootNames?.names.get(m);
  const path = name !== undefined && name !== '' ? name : `${currentModulePath()}.${m.constructor.name}`;
  return withModulePath(path, fn);
}

/** Base class of layers and models; subclasses assign children and Parameters as properties and define forward. */
export abstract class Module {
  /** True in training mode (the default), false after eval(); layers like dropout read it. */
  training = true;

  // ES #private: not an enumerable property, so it can neither be mistaken for a child nor clash
  // with a subclass's property names.
  #buffers = new Map<string, BufferEntry>();

  constructor() {
    // forward is wrapped per instance so that allocations made inside it are labelled with this
    // module's dotted path (memory traces say who allocated what). Own, non-enumerable: never a child.
    // Assigning a forward (a wrapper such as autocast's) replaces the implementation, still labelled.
    const self = this;
    let own: unknown;
    let wrapped: ((...args: unknown[]) => unknown) | undefined;
    Object.defineProperty(this, 'forward', {
      configurable: true, enumerable: false,
      get(): unknown {
        const f = own ?? (Object.getPrototypeOf(self).forward as unknown);
        if (typeof f !== 'function') return f;
        wrapped ??= function labelled(this: Module, ...args: unknown[]): unknown {
          const call = (...a: unknown[]): unknown => (f as (...a: unknown[]) => unknown).apply(this, a);
          return runLabelled(self, () => {
            const w = forwardWrappers.get(self);
            return w ? w(call, args) : call(...args);
          });
        };
        return wrapped;
      },
      set(v: unknown): void { own = v; wrapped = undefined; },
    });
  }

  /**
   * Calls this module's forward with `args`: the generic entry point for code that runs modules it
   * does not know (wrappers, containers). Module declares no forward itself, so that subclasses
   * define `forward(x: Variable, ...): Variable` with their own types and no `override` (which
   * noImplicitOverride would demand of every layer); modules are not callable, so users call
   * `m.forward(x)` directly.
   */
  callForward(...args: unknown[]): unknown {
    const f = (this as { forward?: unknown }).forward;
    if (typeof f !== 'function') throw new MemfitError('NOT_IMPLEMENTED', `${this.constructor.name} does not define forward()`);
    return f.apply(this, args);
  }

  // ---- structure -------------------------------------------------------------------------------

  /**
   * Direct children as [name, module], duplicates included (the same module under two names is
   * listed twice). Containers that keep children elsewhere than in properties override this and
   * replaceChild.
   */
  protected childEntries(): [string, Module][] {
    const out: [string, Module][] = [];
    for (const [k, v] of Object.entries(this)) if (v instanceof Module) out.push([k, v]);
    return out;
  }

  /**
   * Replaces the existing direct child `name` with `module`. Containers override this along with
   * childEntries.
   */
  protected replaceChild(name: string, module: Module): void {
    const desc = Object.getOwnPropertyDescriptor(this, name);
    if (!desc?.enumerable || !(desc.value instanceof Module)) throw new InvalidArgumentError(`${this.constructor.name} has no child ${JSON.stringify(name)}`);
    if (!Reflect.set(this, name, module)) throw new InvalidArgumentError(`${this.constructor.name}.${name} is not writable`);
  }

  /**
   * Names of direct children whose own name is left out of stateDict keys: their entries appear as
   * if they were this module's. A wrapper holding the wrapped module as a child returns that
   * child's name, so wrapping (e.g. for gradient checkpointing) keeps checkpoint keys unchanged.
   * Default: none.
   */
  protected stateDictTransparentChildren(): readonly string[] {
    return [];
  }

  /** Own parameters as [name, parameter], in property order. */
  #ownParameters(): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    for (const [k, v] of Object.entries(this)) if (v instanceof Parameter) out.push([k, v]);
    return out;
  }

  /** Direct children as [name, module], each module once (torch named_children). */
  namedChildren(): [string, Module][] {
    const seen = new Set<Module>();
    return this.childEntries().filter(([, m]) => !seen.has(m) && seen.add(m));
  }

  /** Direct children, each once. */
  children(): Module[] {
    return this.namedChildren().map(([, m]) => m);
  }

  /** This module (named `prefix`, '' by default) and every submodule, depth first, each once, with dotted names. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [];
    const seen = new Set<Module>();
    const walk = (m: Module, name: string): void => {
      if (seen.has(m)) return;
      seen.add(m);
      out.push([name, m]);
      for (const [n, c] of m.childEntries()) walk(c, join(name, n));
    };
    walk(this, prefix);
    return out;
  }

  /** This module and every submodule, each once. */
  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  /** Parameters with dotted names, each Parameter once even if reachable twice (tied weights); recurse=false: own only. */
  namedParameters(prefix = '', recurse = true): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    const seen = new Set<Parameter>();
    const mods: [string, Module][] = recurse ? this.namedModules(prefix) : [[prefix, this]];
    for (const [mp, m] of mods) {
      for (const [n, p] of m.#ownParameters()) {
        if (seen.has(p)) continue;
        seen.add(p);
        out.push([join(mp, n), p]);
      }
    }
    return out;
  }

  /** Parameters, each once. */
  parameters(recurse = true): Parameter[] {
    return this.namedParameters('', recurse).map(([, p]) => p);
  }

  /** Buffers (persistent or not) with dotted names, each tensor once; recurse=false: own only. */
  namedBuffers(prefix = '', recurse = true): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    const mods: [string, Module][] = recurse ? this.namedModules(prefix) : [[prefix, this]];
    for (const [mp, m] of mods) {
      for (const [n, b] of m.#buffers) {
        if (seen.has(b.tensor)) continue;
        seen.add(b.tensor);
        out.push([join(mp, n), b.tensor]);
      }
    }
    return out;
  }

  /** Buffers, each once. */
  buffers(recurse = true): Tensor[] {
    return this.namedBuffers('', recurse).map(([, t]) => t);
  }

  /**
   * Registers (or replaces) buffer `name`: module state that is not trained. The module takes the
   * tensor over (dispose() frees it; a replaced buffer is disposed). Non-persistent buffers are
   * left out of stateDict.
   */
  registerBuffer(name: string, tensor: Tensor, options: BufferOptions = {}): void {
    if (!name || name.includes('.')) throw new InvalidArgumentError(`registerBuffer: invalid name ${JSON.stringify(name)} (non-empty, without '.')`);
    if (!(tensor instanceof Tensor)) throw new InvalidArgumentError(`registerBuffer(${JSON.stringify(name)}): expected a Tensor, got ${describe(tensor)}`);
    if (tensor.isDisposed) throw new InvalidArgumentError(`registerBuffer(${JSON.stringify(name)}): the tensor was already disposed`);
    const own = (this as Record<string, unknown>)[name];
    if (Object.prototype.hasOwnProperty.call(this, name) && (own instanceof Module || own instanceof Parameter)) {
      throw new InvalidArgumentError(`registerBuffer(${JSON.stringify(name)}): ${this.constructor.name} already has ${describe(own)} named so`);
    }
    const old = this.#buffers.get(name);
    if (old && old.tensor !== tensor) old.tensor.dispose();
    this.#buffers.set(name, { tensor, persistent: options.persistent ?? true });
  }

  /**
   * The submodule at a dotted path ('' is this module). With `type`, checks the class (a wrapper put
   * there by setSubmodule is not the class the model declared).
   */
  getSubmodule<M extends Module = Module>(path: string, type?: ModuleClass<M>): M {
    let m: Module = this;
    if (path !== '') {
      const segs = path.split('.');
      segs.forEach((seg, i) => {
        const here = segs.slice(0, i).join('.');
        const child = m.childEntries().find(([n]) => n === seg);
        if (!child) {
          const v = (m as unknown as Record<string, unknown>)[seg];
          const what = Object.prototype.hasOwnProperty.call(m, seg) ? `is ${describe(v)}, not a Module` : 'does not exist';
          const names = m.childEntries().map(([n]) => n);
          throw new InvalidArgumentError(
            `getSubmodule(${JSON.stringify(path)}): ${JSON.stringify(join(here, seg))} ${what} ` +
            `(${m.constructor.name}${here ? ` at ${JSON.stringify(here)}` : ''} has children: ${names.length ? names.join(', ') : 'none'})`,
          );
        }
        m = child[1];
      });
    }
    if (type && !(m instanceof type)) throw new InvalidArgumentError(`getSubmodule(${JSON.stringify(path)}): is a ${m.constructor.name}, not a ${type.name}`);
    return m as M;
  }

  /**
   * Replaces the submodule at a dotted path (an existing child: a property or a container slot
   * such as `layers.3`) with `module`, and returns the module it replaced. The declared type of
   * that property is not checked: the replacement must accept the same forward arguments.
   */
  setSubmodule(path: string, module: Module): Module {
    if (!(module instanceof Module)) throw new InvalidArgumentError(`setSubmodule(${JSON.stringify(path)}): expected a Module, got ${describe(module)}`);
    if (path === '') throw new InvalidArgumentError("setSubmodule: the path must name a submodule, not '' (the module itself)");
    const old = this.getSubmodule(path); // throws naming the path when it does not lead to a module
    const cut = path.lastIndexOf('.');
    const parent = this.getSubmodule(cut < 0 ? '' : path.slice(0, cut));
    if (module.modules().includes(parent)) throw new InvalidArgumentError(`setSubmodule(${JSON.stringify(path)}): the new module contains its own parent (a cycle)`);
    parent.replaceChild(path.slice(cut + 1), module);
    return old;
  }

  /** The parameter at a dotted path, e.g. `layers.0.fc.weight`. */
  getParameter(path: string): Parameter {
    const { owner, name } = this.#resolveLeaf(path, 'getParameter');
    const v = (owner as unknown as Record<string, unknown>)[name];
    if (Object.prototype.hasOwnProperty.call(owner, name) && v instanceof Parameter) return v;
    throw new InvalidArgumentError(`getParameter(${JSON.stringify(path)}): ${owner.constructor.name} has no parameter ${JSON.stringify(name)}${v === undefined ? '' : ` (it is ${describe(v)})`}`);
  }

  /** The buffer at a dotted path, e.g. `rope.cos`. */
  getBuffer(path: string): Tensor {
    const { owner, name } = this.#resolveLeaf(path, 'getBuffer');
    const b = owner.#buffers.get(name);
    if (!b) throw new InvalidArgumentError(`getBuffer(${JSON.stringify(path)}): ${owner.constructor.name} has no buffer ${JSON.stringify(name)}`);
    return b.tensor;
  }

  #resolveLeaf(path: string, fn: string): { owner: Module; name: string } {
    if (!path) throw new InvalidArgumentError(`${fn}: empty path`);
    const cut = path.lastIndexOf('.');
    return { owner: this.getSubmodule(cut < 0 ? '' : path.slice(0, cut)), name: path.slice(cut + 1) };
  }

  /** Calls fn on every submodule (children before parents, each once) and then on this module. */
  apply(fn: (module: Module) => void): this {
    const seen = new Set<Module>();
    const walk = (m: Module): void => {
      if (seen.has(m)) return;
      seen.add(m);
      for (const [, c] of m.childEntries()) walk(c);
      fn(m);
    };
    walk(this);
    return this;
  }

  // ---- modes and gradients -----------------------------------------------------------------------

  /** Sets training mode on this module and, through their train(), on all submodules. */
  train(mode = true): this {
    this.training = mode;
    // Through each child's train() (not a flat loop) so that a subclass overriding train() sees it.
    for (const c of this.children()) c.train(mode);
    return this;
  }

  /** train(false). */
  eval(): this {
    return this.train(false);
  }

  /** Frees every parameter's gradient (default), or with setToNone: false fills them with zeros in place. */
  zeroGrad(options: ZeroGradOptions = {}): void {
    const o = checkZeroGradOptions(options, `${this.constructor.name}.zeroGrad`); // checked even when no parameter holds a grad
    for (const p of this.parameters()) p.zeroGrad(o);
  }

  /** Number of elements of all parameters (each once); trainableOnly: only those that require grad. */
  numParameters(trainableOnly = false): number {
    return this.parameters().reduce((n, p) => n + (trainableOnly && !p.requiresGrad ? 0 : p.data.size), 0);
  }

  // ---- state dict --------------------------------------------------------------------------------

  /** Every state-dict entry in PyTorch's order: per module its parameters, then its persistent buffers, then its children. */
  #slots(): Slot[] {
    const out: Slot[] = [];
    const keys = new Set<string>();
    const add = (s: Slot): void => {
      if (keys.has(s.key)) throw new InvalidArgumentError(`stateDict: two different entries would both be named ${JSON.stringify(s.key)}`);
      keys.add(s.key);
      out.push(s);
    };
    // Not deduplicated, as in PyTorch: a module or parameter reachable twice is saved under both
    // names (tied embeddings keep both keys), so checkpoints load into untied models too.
    const walk = (m: Module, prefix: string, path: readonly Module[]): void => {
      if (path.includes(m)) throw new InvalidArgumentError(`stateDict: module cycle at ${JSON.stringify(prefix.replace(/\.$/, ''))}`);
      for (const [n, p] of m.#ownParameters()) add({ key: prefix + n, kind: 'parameter', param: p });
      for (const [n, b] of m.#buffers) if (b.persistent) add({ key: prefix + n, kind: 'buffer', module: m, name: n });
      const flat = new Set(m.stateDictTransparentChildren());
      for (const [n, c] of m.childEntries()) walk(c, flat.has(n) ? prefix : `${prefix}${n}.`, [...path, m]);
    };
    walk(this, '', []);
    return out;
  }

  #slotTensor(s: Slot): Tensor {
    return s.kind === 'parameter' ? s.param.data : s.module.#buffers.get(s.name)!.tensor;
  }

  /**
   * Parameters and persistent buffers by dotted name (`layers.0.attn.q.weight`), in PyTorch's order.
   * The tensors are the module's own, not copies: do not dispose them, and copy one (`t.to(t.dtype)`)
   * to keep its values past the next training step.
   */
  stateDict(): StateDict {
    const sd: StateDict = {};
    for (const s of this.#slots()) sd[s.key] = this.#slotTensor(s);
    return sd;
  }

  /**
   * Copies values into the module's existing tensors (so references held elsewhere, e.g. by an
   * optimizer, stay valid), converting to each tensor's dtype with the backend's cast. Everything
   * is validated before anything is written: strict (default) throws one error listing all missing
   * and unexpected keys; a shape mismatch, a tensor on another backend, or a float/int32 mismatch
   * throws naming the key. Non-strict returns the keys it did not match.
   */
  loadStateDict(stateDict: Readonly<StateDict>, options: LoadStateDictOptions = {}): LoadStateDictResult {
    const { plan, missingKeys, unexpectedKeys } = this.#planLoad(stateDict, options);
    // Strided views (transpose(), permute()) are copied contiguous before anything is written, so a
    // failure there (out of memory) leaves the module as it was: the load is all-or-nothing.
    const copies: Tensor[] = [];
    try {
      const sources = plan.map(([src]) => {
        if (src.isContiguous) return src;
        const c = src.contiguous();
        copies.push(c);
        return c;
      });
      plan.forEach(([, dst], i) => {
        const src = sources[i];
        if (src === dst || (src.storage === dst.storage && src.offset === dst.offset && src.dtype === dst.dtype)) return; // its own values
        dst.backend.cast(src, dst); // same dtype: an exact copy of the codes
      });
    } finally {
      for (const c of copies) c.dispose();
    }
    return { missingKeys, unexpectedKeys };
  }

  /** Checks a state dict as loadStateDict does (same errors) without writing anything. */
  checkStateDict(stateDict: Readonly<StateDict>, options: LoadStateDictOptions = {}): LoadStateDictResult {
    const { missingKeys, unexpectedKeys } = this.#planLoad(stateDict, options);
    return { missingKeys, unexpectedKeys };
  }

  #planLoad(stateDict: Readonly<StateDict>, options: LoadStateDictOptions): LoadStateDictResult & { plan: [Tensor, Tensor][] } {
    if (stateDict === null || typeof stateDict !== 'object' || Array.isArray(stateDict) || stateDict instanceof Tensor) {
      throw new InvalidArgumentError(`loadStateDict: the state dict must be an object of Tensors, got ${describeValue(stateDict)}`);
    }
    if (options === null || typeof options !== 'object') throw new InvalidArgumentError(`loadStateDict: options must be an object, got ${describeValue(options)}`);
    const slots = this.#slots();
    const expected = new Set(slots.map((s) => s.key));
    const has = (k: string): boolean => Object.prototype.hasOwnProperty.call(stateDict, k);
    const missingKeys = slots.filter((s) => !has(s.key)).map((s) => s.key);
    const unexpectedKeys = Object.keys(stateDict).filter((k) => !expected.has(k));
    if ((options.strict ?? true) && (missingKeys.length || unexpectedKeys.length)) {
      const parts = [];
      if (missingKeys.length) parts.push(`missing keys: ${quote(missingKeys)}`);
      if (unexpectedKeys.length) parts.push(`unexpected keys: ${quote(unexpectedKeys)}`);
      throw new InvalidArgumentError(`loadStateDict: the state dict does not match ${this.constructor.name}: ${parts.join('; ')}`);
    }
    const plan: [Tensor, Tensor][] = [];
    const shapeProblems: string[] = [];
    const otherProblems: string[] = [];
    for (const s of slots) {
      if (!has(s.key)) continue;
      const src: unknown = stateDict[s.key];
      const dst = this.#slotTensor(s);
      const key = JSON.stringify(s.key);
      if (!(src instanceof Tensor)) otherProblems.push(`${key} is ${describe(src)}, not a Tensor`);
      else if (src.isDisposed) otherProblems.push(`${key} was disposed`);
      else if (dst.isDisposed) otherProblems.push(`the module's tensor for ${key} was disposed`);
      else if (src.backend !== dst.backend) {
        otherProblems.push(`${key} is on another backend (${src.backend.description}) than the module (${dst.backend.description}); move it with toBackend() or the module with to(backend)`);
      } else if (src.shape.join() !== dst.shape.join() || src.rank !== dst.rank) {
        shapeProblems.push(`${key} has shape ${dims(src.shape)} in the state dict but ${dims(dst.shape)} in the module`);
      } else if ((src.dtype === 'int32') !== (dst.dtype === 'int32')) {
        otherProblems.push(`${key} is ${src.dtype} in the state dict but ${dst.dtype} in the module (int32 and float values do not convert)`);
      } else if (dst.offset !== 0 || !dst.isContiguous) {
        // Backend kernels write outputs at offset 0: a view elsewhere in a storage cannot be a cast target.
        otherProblems.push(`the module's tensor for ${key} is a view (element offset ${dst.offset}${dst.strides ? `, strides [${dst.strides.join(', ')}]` : ''}), which cannot be loaded in place`);
      } else plan.push([src, dst]);
    }
    if (otherProblems.length) throw new InvalidArgumentError(`loadStateDict: ${[...otherProblems, ...shapeProblems].join('; ')}`);
    if (shapeProblems.length) throw new ShapeMismatchError(`loadStateDict: ${shapeProblems.join('; ')}`);
    return { plan, missingKeys, unexpectedKeys };
  }

  // ---- dtype, backend, lifetime ----------------------------------------------------------------

  /** Unique buffer tensors of this module and all submodules, with where each is registered. */
  #bufferSites(): Map<Tensor, [Module, string][]> {
    const sites = new Map<Tensor, [Module, string][]>();
    for (const m of this.modules()) {
      for (const [n, b] of m.#buffers) {
        const list = sites.get(b.tensor);
        if (list) list.push([m, n]);
        else sites.set(b.tensor, [[m, n]]);
      }
    }
    return sites;
  }

  #replaceBuffer(old: Tensor, next: Tensor, sites: readonly [Module, string][]): void {
    for (const [m, n] of sites) m.#buffers.get(n)!.tensor = next;
    old.dispose();
  }

  /**
   * Casts floating parameters and buffers to `dtype` (int32 ones are left as they are), replacing
   * each `param.data` (the Parameter objects stay the same) and disposing the old storage; a
   * converted parameter's grad is freed. Values round exactly as Tensor.to does.
   */
  to(dtype: DTypeName): this;
  /** Moves every parameter, gradient and buffer to `backend`, disposing the old storage. */
  to(backend: Backend): Promise<this>;
  to(target: DTypeName | Backend): this | Promise<this> {
    return typeof target === 'string' ? this.#toDType(target) : this.#toBackend(target);
  }

  #toDType(name: string): this {
    if (name === 'int32') throw new InvalidArgumentError("Module.to('int32'): parameters are cast to float dtypes only");
    const dtype = canonicalDType(name); // throws UnknownDTypeError with the valid names
    // One tensor at a time, each old one freed at once: the peak is the model plus its largest tensor.
    for (const p of this.parameters()) {
      if (p.data.dtype === 'int32' || p.data.dtype === dtype) continue;
      const next = p.data.to(dtype);
      p.data.dispose();
      p.data = next;
      p.zeroGrad();
    }
    for (const [t, sites] of this.#bufferSites()) {
      if (t.dtype === 'int32' || t.dtype === dtype) continue;
      this.#replaceBuffer(t, t.to(dtype), sites);
    }
    return this;
  }

  async #toBackend(backend: Backend): Promise<this> {
    const params = this.parameters();
    const sites = this.#bufferSites();
    const made: Tensor[] = [];
    const move = async (t: Tensor): Promise<Tensor> => {
      if (t.backend === backend) return t;
      const c = await t.toBackend(backend);
      made.push(c);
      return c;
    };
    // Everything is copied before anything is swapped, so a failure (out of memory on the target)
    // leaves the module whole on its old backend.
    const data: Tensor[] = [], grads: (Tensor | null)[] = [], bufs = new Map<Tensor, Tensor>();
    try {
      for (const p of params) {
        data.push(await move(p.data));
        grads.push(p.grad ? await move(p.grad) : null);
      }
      for (const t of sites.keys()) bufs.set(t, await move(t));
    } catch (e) {
      for (const t of made) t.dispose();
      throw e;
    }
    params.forEach((p, i) => {
      if (data[i] !== p.data) { p.data.dispose(); p.data = data[i]; }
      if (p.grad && grads[i] !== p.grad) { p.grad.dispose(); p.grad = grads[i]; }
    });
    for (const [t, next] of bufs) if (next !== t) this.#replaceBuffer(t, next, sites.get(t)!);
    return this;
  }

  /** Frees every parameter (data and grad) and buffer of this module and its submodules; the module is unusable afterwards. */
  dispose(): void {
    for (const p of this.parameters()) p.dispose();
    for (const t of this.buffers()) t.dispose();
  }
}
