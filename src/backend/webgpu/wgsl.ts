// WGSL source pieces shared by the WebGPU backend and its kernel families (their own module, so
// that the families need not import the backend, which imports them): format ids, storage accessors
// and the extensions a shader may enable.
import type { TensorDType } from '../backend.js';
import { formatOf, INT32_FORMAT_ID, UINT8_FORMAT_ID } from '../../dtype/formats.js';

/** Format id used in shaders (int32 is 9). */
export function fmtId(dtype: TensorDType): number {
  return dtype === 'int32' ? INT32_FORMAT_ID : dtype === 'uint8' ? UINT8_FORMAT_ID : formatOf(dtype).id;
}

/** A storage-buffer binding declared as array<u32>, with `<name>_code(i, fmt)` and `<name>_f32(i, fmt)` readers. */
export function accessor(name: string, binding: number, access: 'read' | 'read_write'): string {
  return `@group(0) @binding(${binding}) var<storage, ${access}> ${name}: array<u32>;\n${readers(name, name)}`;
}

/**
 * `<name>_code(i, fmt)` and `<name>_f32(i, fmt)` reading the array `array` (declared elsewhere):
 * an input read through the output's read_write binding when both are one buffer.
 */
export function readers(name: string, array: string): string {
  return `fn ${name}_code(i: u32, f: u32) -> u32 {
  let nbits = fmt_bits(f);
  if (nbits == 32u) { return ${array}[i]; }
  let bit = i * nbits;
  let word = bit >> 5u;
  let sh = bit & 31u;
  var v = ${array}[word] >> sh;
  if (sh + nbits > 32u) { v = v | (${array}[word + 1u] << (32u - sh)); }
  return v & ((1u << nbits) - 1u);
}
fn ${name}_f32(i: u32, f: u32) -> f32 { return bitcast<f32>(decode_bits(f, ${name}_code(i, f))); }
`;
}

/** WGSL extensions a shader may ask for with a `//#enable NAME` line, and the device feature each needs. */
export const WGSL_EXTENSIONS: Readonly<Record<string, string>> = {
  f16: 'shader-f16',
  subgroups: 'subgroups',
  chromium_experimental_subgroup_matrix: 'chromium-experimental-subgroup-matrix',
  /** Dawn's, no device feature (allowed by the allow_unsafe_apis toggle memfit always asks for). */
  chromium_disable_uniformity_analysis: '',
};

