import { describeValue, InvalidArgumentError } from '../errors.js';
import { formatOf, type DTypeName } from './formats.js';
import { hostCopy } from './host_array.js';
import { firstCodeAbove, MAX_KERNEL_INT, memoryBuffer, wasm, wasmAlloc, wasmFree } from './wasm.js';

/** Bytes that `n` packed codes of `dtype` take: ceil(n * bits / 8). */
export function packedByteLength(dtype: DTypeName, n: number): number {
  const bits = formatOf(dtype).bits;
  if (!(typeof n === 'number' && Number.isSafeInteger(n) && n >= 0)) throw new InvalidArgumentError(`packedByteLength: n must be a non-negative integer, got ${describeValue(n)}`);
  return Math.ceil((n * bits) / 8);
}

function subByteBits(dtype: DTypeName): 4 | 6 {
  const f = formatOf(dtype);
  if (f.bits !== 4 && f.bits !== 6) throw new InvalidArgumentError(`pack/unpack are for the 4- and 6-bit formats; ${f.name} has ${f.bits}-bit codes, one per element already`);
  return f.bits;
}

/** A plain list or another typed array of codes, checked element by element (integers in [0, limit]). */
function codesFromList(codes: ArrayLike<number>, limit: number, name: string): Uint8Array {
  if (codes === null || typeof codes !== 'object' || typeof codes.length !== 'number') {
    throw new InvalidArgumentError(`pack codes must be a Uint8Array or an array of integer codes, got ${describeValue(codes)}`);
  }
  if (!Number.isSafeInteger(codes.length) || codes.length < 0 || codes.length > MAX_KERNEL_INT) {
    throw new InvalidArgumentError(`pack codes: length must be an integer from 0 to 2^31 - 1, got ${describeValue(codes.length)}`);
  }
  const out = new Uint8Array(codes.length);
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    if (typeof c !== 'number' || !Number.isInteger(c) || c < 0 || c > limit) throw new InvalidArgumentError(`pack codes[${i}] = ${describeValue(c)} does not fit ${name} (integers 0..${limit})`);
    out[i] = c;
  }
  return out;
}

// Chunks are whole groups (2 fp4 codes a byte, 4 fp6 codes in 3 bytes), so a chunk boundary never splits a byte.
const GROUP = 1 << 15;

/**
 * Packs unpacked fp4/fp6 codes (one a byte, from encode) densely, little-endian bit order:
 * fp4: two codes a byte, the first element in the low nibble (PyTorch's float4_e2m1fn_x2);
 * fp6: four codes in three bytes, element j of each group in bits [6j, 6j+6).
 * An odd tail is zero-filled. Throws on a code that does not fit the format.
 */
export function pack(codes: Uint8Array | ArrayLike<number>, dtype: DTypeName): Uint8Array {
  const bits = subByteBits(dtype);
  // a Uint8Array is copied: a view of WebAssembly memory would be detached by the allocations below
  const list = codes instanceof Uint8Array ? hostCopy(codes, 'pack codes') : codesFromList(codes, (1 << bits) - 1, formatOf(dtype).name);
  const n = list.length;
  const out = new Uint8Array(packedByteLength(dtype, n));
  const w = wasm();
  const limit = (1 << bits) - 1;
  for (let i = 0; i < n; i += GROUP) {
    const c = Math.min(GROUP, n - i);
    const part = list.subarray(i, i + c);
    const dst = out.subarray((i * bits) / 8, (i * bits) / 8 + Math.ceil((c * bits) / 8));
    let src = 0, d = 0;
    try {
      src = wasmAlloc(c, 'pack input');
      d = wasmAlloc(dst.length, 'pack output');
      new Uint8Array(memoryBuffer(), src, c).set(part);
      const bad = firstCodeAbove(src, c, limit);
      if (bad >= 0) throw new InvalidArgumentError(`code ${part[bad]} at index ${i + bad} does not fit ${formatOf(dtype).name} (${bits} bits)`);
      w.pack(bits, src, d, c);
      dst.set(new Uint8Array(memoryBuffer(), d, dst.length));
    } finally {
      wasmFree(src);
      wasmFree(d);
    }
  }
  return out;
}

/** Unpacks `length` fp4/fp6 codes from packed bytes to one code a byte (the inverse of pack). */
export function unpack(packed: Uint8Array, dtype: DTypeName, length: number): Uint8Array {
  const bits = subByteBits(dtype);
  if (!(packed instanceof Uint8Array)) throw new InvalidArgumentError(`unpack bytes must be a Uint8Array, got ${describeValue(packed)}`);
  if (!(typeof length === 'number' && Number.isSafeInteger(length) && length >= 0)) throw new InvalidArgumentError(`unpack length must be a non-negative integer, got ${describeValue(length)}`);
  packed = hostCopy(packed, 'unpack bytes');
  const need = packedByteLength(dtype, length);
  if (packed.length < need) throw new InvalidArgumentError(`${length} ${formatOf(dtype).name} codes need ${need} packed bytes, got ${packed.length}`);
  const out = new Uint8Array(length);
  const w = wasm();
  for (let i = 0; i < length; i += GROUP) {
    const c = Math.min(GROUP, length - i);
    const bytes = Math.ceil((c * bits) / 8);
    let src = 0, d = 0;
    try {
      src = wasmAlloc(bytes, 'unpack input');
      d = wasmAlloc(c, 'unpack output');
      new Uint8Array(memoryBuffer(), src, bytes).set(packed.subarray((i * bits) / 8, (i * bits) / 8 + bytes));
      w.unpack(bits, src, d, c);
      out.set(new Uint8Array(memoryBuffer(), d, c), i);
    } finally {
      wasmFree(src);
      wasmFree(d);
    }
  }
  return out;
}
