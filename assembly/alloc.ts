// The module's allocator. Blocks below LARGE come from AssemblyScript's TLSF heap, which cannot
// hold a block of 1 GiB or more (it aborts) and doubles memory when it grows. Blocks of LARGE or
// more are whole 64 KiB pages at the end of memory, so that everything the 4 GiB of a wasm32 memory
// can hold can be allocated: they are kept in a small region table, reused best-fit after free (a
// larger free region is split, neighbouring free regions are merged, and a free region at the end of
// memory is grown in place). alloc() returns 0 when memory cannot grow (the caller reports it);
// sizes of 2^32 bytes or more cannot be asked for (usize is 32 bits: the JavaScript side checks).

/** Requests of this many bytes or more get their own pages (TLSF's own limit is 2^30 - 4). */
const LARGE: usize = 1 << 26;
const PAGE: u64 = 65536;
/** Regions (used or free) the table holds; each used one is >= 64 MiB, so 4 GiB holds at most 64 of them. */
const MAX_REGIONS: i32 = 256;
/** Region i: base (u32), size (u32), used (u32). */
const TABLE: usize = memory.data(MAX_REGIONS * 12, 16);
let regionCount: i32 = 0;
/** Whether TLSF has set itself up (it does so on its first allocation). */
let heapReady = false;

@inline function baseOf(i: i32): u32 { return load<u32>(TABLE + <usize>i * 12); }
@inline function sizeOf(i: i32): u32 { return load<u32>(TABLE + <usize>i * 12, 4); }
@inline function usedOf(i: i32): bool { return load<u32>(TABLE + <usize>i * 12, 8) != 0; }
@inline function setRegion(i: i32, base: u32, size: u32, used: bool): void {
  store<u32>(TABLE + <usize>i * 12, base);
  store<u32>(TABLE + <usize>i * 12, size, 4);
  store<u32>(TABLE + <usize>i * 12, used ? 1 : 0, 8);
}

function removeRegion(i: i32): void {
  regionCount--;
  if (i != regionCount) setRegion(i, baseOf(regionCount), sizeOf(regionCount), usedOf(regionCount));
}

/** Bytes at the end of memory, as a u64 (65536 pages are exactly 2^32 bytes). */
@inline function memoryEnd(): u64 {
  return <u64>memory.size() * PAGE;
}

/** Grows memory by `bytes` (a multiple of PAGE); false when the engine refuses. */
function grow(bytes: u64): bool {
  return memory.grow(<i32>(bytes / PAGE)) >= 0;
}

function largeAlloc(size: usize): usize {
  const need: u64 = (<u64>size + PAGE - 1) & ~(PAGE - 1);
  // Best fit among free regions.
  let best: i32 = -1;
  for (let i: i32 = 0; i < regionCount; i++) {
    if (!usedOf(i) && <u64>sizeOf(i) >= need && (best < 0 || sizeOf(i) < sizeOf(best))) best = i;
  }
  if (best >= 0) {
    const base = baseOf(best), have = <u64>sizeOf(best);
    if (have > need && regionCount < MAX_REGIONS) {
      setRegion(best, base, <u32>need, true);
      setRegion(regionCount++, base + <u32>need, <u32>(have - need), false);
    } else setRegion(best, base, <u32>have, true);
    return base;
  }
  // A free region that ends where memory ends grows in place.
  const end = memoryEnd();
  for (let i: i32 = 0; i < regionCount; i++) {
    if (!usedOf(i) && <u64>baseOf(i) + <u64>sizeOf(i) == end) {
      if (!grow(need - <u64>sizeOf(i))) return 0;
      setRegion(i, baseOf(i), <u32>need, true);
      return baseOf(i);
    }
  }
  if (regionCount >= MAX_REGIONS || end + need > (<u64>1 << 32) || !grow(need)) return 0;
  setRegion(regionCount++, <u32>end, <u32>need, true);
  return <usize>end;
}

/** Frees a large region; false when `ptr` is not one. */
function largeFree(ptr: usize): bool {
  let at: i32 = -1;
  for (let i: i32 = 0; i < regionCount; i++) {
    if (usedOf(i) && <usize>baseOf(i) == ptr) { at = i; break; }
  }
  if (at < 0) return false;
  let base = <u64>baseOf(at), size = <u64>sizeOf(at);
  removeRegion(at);
  // Merge with free neighbours on either side (repeat: removal reorders the table).
  for (let merged = true; merged;) {
    merged = false;
    for (let i: i32 = 0; i < regionCount; i++) {
      if (usedOf(i)) continue;
      const b = <u64>baseOf(i), s = <u64>sizeOf(i);
      if (b + s == base) { base = b; size += s; removeRegion(i); merged = true; break; }
      if (base + size == b) { size += s; removeRegion(i); merged = true; break; }
    }
  }
  // size < 2^32 always: regions never cover page 0, which holds the static data.
  setRegion(regionCount++, <u32>base, <u32>size, false);
  return true;
}

/** Allocates `size` bytes (16-byte aligned); 0 when memory cannot grow to hold them. */
export function alloc(size: usize): usize {
  if (size >= LARGE) {
    // TLSF sets itself up on its first allocation and then claims every page memory has at that
    // moment: a large region made before that would be handed out again as heap blocks. So the
    // heap is set up before the first large region.
    if (!heapReady) heap.free(heap.alloc(16));
    heapReady = true;
    return largeAlloc(size);
  }
  heapReady = true;
  return heap.alloc(size);
}

/** Frees a block returned by alloc. */
export function free(ptr: usize): void {
  if (ptr == 0) return;
  if (!largeFree(ptr)) heap.free(ptr);
}
