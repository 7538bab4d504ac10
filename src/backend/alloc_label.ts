// Who is allocating: every allocation is labelled with the module path and the op that made it
// (`layers.0.selfAttn.qProj/matmul`, `layers.0.inputLayernorm/rmsNorm/rstd`, `lmHead/matmul.backward`),
// so memory traces can say who allocated what. Module forwards push their dotted name (nn/module.ts);
// ops set their name (autograd: applyOpPolicy, and the backward pass per node; Tensor ops: dispatch).

let currentOp: string | null = null;
const modules: string[] = [];

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

/** Whether a module forward is running (the outermost one names its submodules). */
export function insideModule(): boolean {
  return modules.length > 0;
}
