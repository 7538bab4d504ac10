#!/usr/bin/env python3
"""Writes tests/fixtures/io/*.safetensors with the reference safetensors library (Rust-backed, >= 0.8).

CI has no Python: the fixtures are committed and tests/io/safetensors.test.ts recomputes every expected
value from the formulas below (keep the two in step). To regenerate:

    python3 -m venv --system-site-packages /tmp/stvenv
    /tmp/stvenv/bin/pip install safetensors numpy
    /tmp/stvenv/bin/python scripts/make-safetensors-fixtures.py

Every tensor goes through `safetensors.serialize` with raw bytes (TensorSpec), so no framework dtype is
needed for bfloat16 / float8 / float4: the bytes are the codes given by the formulas. Each file has at most
one `__metadata__` key, because the library writes metadata from a hash map in no fixed order and the
fixtures should be byte-for-byte reproducible.

Formulas (i is the flat element index, row-major):
  reference.safetensors   __metadata__ {"format": "pt"}
    f32        F32  [3, 4]     value i * 0.5 - 2
    f16        F16  [16]       value (i - 8) * 0.25           (numpy float16)
    f16_codes  F16  [8, 8]     code (i * 4099 + 7) % 65536     (includes inf / NaN codes)
    bf16_codes BF16 [2, 3, 8]  code (i * 40503 + 11) % 65536
    e4m3       F8_E4M3 [16, 16] code i                         (every code, NaNs 0x7f / 0xff included)
    e5m2       F8_E5M2 [256]   code 255 - i
    i32        I32  [2, 5]     value (i - 5) * 123457
    scalar     F32  []         value 3.25
    empty      F32  [0, 3]     no elements
  subbyte.safetensors     (the reference's native sub-byte dtypes, no metadata)
    fp4        F4   [3, 8]     written as float4_e2m1fn_x2 storage [3, 4]; byte j = (j * 37 + 11) % 256
    e8m0       F8_E8M0 [5, 8]  code (i * 7 + 3) % 256
  memfit-u8.safetensors   (memfit's convention: U8 bytes + "memfit.dtypes" metadata, packed here independently)
    fp4_odd    U8 [4]  = float4_e2m1fn [7]     code (i * 5) % 16, two a byte, element 0 in the low nibble
    fp6        U8 [2, 3] = float6_e2m3fn [2, 4]  code (i * 11 + 1) % 64, 4 codes in 3 bytes, code j of a group at bits 6j..6j+5
    fp6_e3m2   U8 [4]  = float6_e3m2fn [5]     code (i * 13 + 5) % 64
    scales     U8 [3]  = float8_e8m0fnu [3]    code 125 + i
  unsupported.safetensors (dtypes memfit does not hold)
    f64        F64 [3]   value i + 0.5
    i64        I64 [2]   value i - 1
    raw        U8  [4]   value i * 3            (no memfit.dtypes entry)
    flags      BOOL [2]  value [True, False]
  empty.safetensors       no tensors; __metadata__ {"note": NOTE}
  nothing.safetensors     no tensors, no metadata
"""
import json
import os

import numpy as np
from safetensors import TensorSpec, deserialize, serialize

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "io")
NOTE = 'memfit fixture: "quoted", \\ backslash, tab\t, ünïcödé, 🦀'


def spec(dtype, shape, arr, keep):
    arr = np.ascontiguousarray(arr)
    keep.append(arr)  # the serializer reads through the raw pointer: keep the array alive
    return TensorSpec(dtype=dtype, shape=list(shape), data_ptr=arr.ctypes.data, data_len=arr.nbytes)


def idx(n):
    return np.arange(n, dtype=np.int64)


def pack_fp4(codes):
    codes = list(codes) + [0] * (len(codes) % 2)
    return np.array([codes[k] | (codes[k + 1] << 4) for k in range(0, len(codes), 2)], dtype=np.uint8)


def pack_fp6(codes):
    n = len(codes)
    codes = list(codes) + [0] * (-n % 4)
    out = []
    for k in range(0, len(codes), 4):
        v = codes[k] | (codes[k + 1] << 6) | (codes[k + 2] << 12) | (codes[k + 3] << 18)
        out += [v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF]
    return np.array(out[: (n * 6 + 7) // 8], dtype=np.uint8)


def write(name, tensors, metadata=None):
    data = serialize(tensors, metadata=metadata)
    path = os.path.join(OUT, name)
    with open(path, "wb") as f:
        f.write(data)
    back = deserialize(data)  # the library must read its own file
    print(f"{name}: {len(data)} bytes, {[(n, d['dtype'], d['shape']) for n, d in back]}")


def main():
    os.makedirs(OUT, exist_ok=True)
    keep = []

    write("reference.safetensors", {
        "f32": spec("float32", [3, 4], (idx(12) * 0.5 - 2).astype(np.float32), keep),
        "f16": spec("float16", [16], ((idx(16) - 8) * 0.25).astype(np.float16), keep),
        "f16_codes": spec("float16", [8, 8], ((idx(64) * 4099 + 7) % 65536).astype("<u2"), keep),
        "bf16_codes": spec("bfloat16", [2, 3, 8], ((idx(48) * 40503 + 11) % 65536).astype("<u2"), keep),
        "e4m3": spec("float8_e4m3fn", [16, 16], idx(256).astype(np.uint8), keep),
        "e5m2": spec("float8_e5m2", [256], (255 - idx(256)).astype(np.uint8), keep),
        "i32": spec("int32", [2, 5], ((idx(10) - 5) * 123457).astype("<i4"), keep),
        "scalar": spec("float32", [], np.array([3.25], dtype="<f4"), keep),
        "empty": spec("float32", [0, 3], np.zeros(0, dtype="<f4"), keep),
    }, {"format": "pt"})

    write("subbyte.safetensors", {
        # float4_e2m1fn_x2 is given in storage shape (bytes); the library doubles the last dim for the header.
        "fp4": spec("float4_e2m1fn_x2", [3, 4], ((idx(12) * 37 + 11) % 256).astype(np.uint8), keep),
        "e8m0": spec("float8_e8m0fnu", [5, 8], ((idx(40) * 7 + 3) % 256).astype(np.uint8), keep),
    })

    fp4 = pack_fp4([(i * 5) % 16 for i in range(7)])
    fp6 = pack_fp6([(i * 11 + 1) % 64 for i in range(8)])
    fp6b = pack_fp6([(i * 13 + 5) % 64 for i in range(5)])
    scales = np.array([125, 126, 127], dtype=np.uint8)
    dtypes = {
        "fp4_odd": {"dtype": "float4_e2m1fn", "shape": [7]},
        "fp6": {"dtype": "float6_e2m3fn", "shape": [2, 4]},
        "fp6_e3m2": {"dtype": "float6_e3m2fn", "shape": [5]},
        "scales": {"dtype": "float8_e8m0fnu", "shape": [3]},
    }
    write("memfit-u8.safetensors", {
        "fp4_odd": spec("uint8", [4], fp4, keep),
        "fp6": spec("uint8", [2, 3], fp6, keep),
        "fp6_e3m2": spec("uint8", [4], fp6b, keep),
        "scales": spec("uint8", [3], scales, keep),
    }, {"memfit.dtypes": json.dumps(dtypes, separators=(",", ":"))})

    write("unsupported.safetensors", {
        "f64": spec("float64", [3], (idx(3) + 0.5).astype("<f8"), keep),
        "i64": spec("int64", [2], (idx(2) - 1).astype("<i8"), keep),
        "raw": spec("uint8", [4], (idx(4) * 3).astype(np.uint8), keep),
        "flags": spec("bool", [2], np.array([True, False]), keep),
    })

    write("empty.safetensors", {}, {"note": NOTE})
    write("nothing.safetensors", {})


if __name__ == "__main__":
    main()
