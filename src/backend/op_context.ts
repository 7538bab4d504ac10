// The context of the op that is running: its name and the module path. Every allocation is
// labelled with them (`layers.0.selfAttn.qProj/matmul`, `layers.0.inputLayernorm/rms_norm/rstd`,
// `lmHead/matmul.backward`), so memory traces say who allocated what, and observers (a profiler)
// are told when each op begins and ends. Module forwards push their dotted name (nn/module.ts);
// every op runs through observeOp (autograd's apply, each node's backward, Tensor methods,
// optimizer updates).

let currentOp: string | null = null;
let modules: string[] = [];

/** The label an allocation gets: module path / op / the allocator's own label, each where known. */
export function allocationLabel(explicit = ''): string {
  const path = modules[modules.length - 1];
  const parts: string[] = [];
  if (path) parts.push(path);
  if (currentOp && currentOp !== explicit) parts.push(currentOp);
  if (explicit) parts.push(explicit);
  return parts.join('/');
}

/** Sets the op that allocations are made for (null: none); returns the previous one. */
export function setAllocationOp(op: string | null): string | null {
  const previous = currentOp;
  currentOp = op;
  return previous;
}

/** Runs fn with allocations labelled as made by `op`. */
export function withAllocationOp<T>(op: string, fn: () => T): T {
  const previous = setAllocationOp(op);
  try { return fn(); } finally { currentOp = previous; }
}

/** Runs fn inside the module at dotted `path`. */
export function withModulePath<T>(path: string, fn: () => T): T {
  modules.push(path);
  const previous = setAllocationOp(null);
  try { return fn(); } finally { modules.pop(); currentOp = previous; }
}

/** The dotted path of the module whose forward is running ('' outside any). */
export function currentModulePath(): string {
  return modules[modules.length - 1] ?? '';
}

/** The module paths in force, outermost first (a copy): what a recompute runs under again. */
export function modulePathStack(): readonly string[] {
  return [...modules];
}

/** Runs fn with the module path stack replaced by `stack` (restored afterwards). */
export function withModulePathStack<T>(stack: readonly string[], fn: () => T): T {
  const prevModules = modules, prevOp = currentOp;
  modules = [...stack];
  currentOp = null;
  try { return fn(); } finally { modules = prevModules; currentOp = prevOp; }
}

/** Whether a module forward is running (the outermost one names its submodules). */
export function insideModule(): boolean {
  return modules.length > 0;
}

/** Where an op runs: its PyTorch name and the dotted path of the module whose forward called it. */
export interface OpContext {
  readonly op: string;
  readonly module: string;
}

/** A profiler's view of every op: begin and end around each forward (and each backward, op 'name.backward'). */
export interface OpObserver {
  begin?(ctx: OpContext): void;
  end?(ctx: OpContext): void;
}

const observers: OpObserver[] = [];

/** Runs fn with `observer` told about every op (forward and backward) inside it. */
export function withOpObserver<T>(observer: OpObserver, fn: () => T): T {
  observers.push(observer);
  try { return fn(); } finally { observers.splice(observers.lastIndexOf(observer), 1); }
}

/** Runs one op's body between the observers' begin and end, with its allocations labelled. */
export function observeOp<T>(op: string, fn: () => T): T {
  if (observers.length === 0) return withAllocationOp(op, fn);
  const ctx: OpContext = { op, module: currentModulePath() };
  const list = [...observers];
  for (const o of list) o.begin?.(ctx);
  try {
    return withAllocationOp(op, fn);
  } finally {
    for (const o of list.reverse()) o.end?.(ctx);
  }
}
