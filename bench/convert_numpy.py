#!/usr/bin/env python3
"""The peer of `npm run bench:convert`: a straightforward numpy conversion of a safetensors file
(load every tensor, astype, save), timed and measured (peak RSS) in the same run as memfit.

usage: convert_numpy.py IN OUT TARGET      TARGET: float16 | bfloat16 | float8_e4m3fn (per-tensor scale)
Prints one JSON line: {"seconds", "maxRssMiB", "loader", "numpy", "ml_dtypes"}.

Loading uses safetensors.numpy.load_file when the safetensors package is installed, else a plain
header + np.fromfile reader. Saving writes the header and tofile()s each array, then fsyncs, as memfit
does (safetensors.numpy.save_file knows no bfloat16 / float8). bfloat16 and float8 need ml_dtypes.
"""
import json
import os
import resource
import sys
import time

import numpy as np


def load(path):
    try:
        from safetensors.numpy import load_file
        return load_file(path), "safetensors.numpy.load_file"
    except ImportError:
        pass
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        base = 8 + n
    dt = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8}
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        out[name] = np.fromfile(path, dtype=dt[e["dtype"]], count=(end - b) // np.dtype(dt[e["dtype"]]).itemsize, offset=base + b).reshape(e["shape"])
    return out, "np.fromfile"


FILE_DTYPE = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float8_e4m3fn": "F8_E4M3"}


def save(tensors, path):
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, a in tensors.items():
        header[name] = {"dtype": FILE_DTYPE[str(a.dtype)], "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for a in tensors.values():
            a.tofile(f)
        f.flush()
        os.fsync(f.fileno())


def main():
    src, dst, target = sys.argv[1:4]
    mld = None
    if target != "float16":
        import ml_dtypes
        mld = ml_dtypes.__version__
    t0 = time.perf_counter()
    tensors, loader = load(src)
    out = {}
    for name, a in tensors.items():
        if a.ndim != 2:
            out[name] = a
        elif target == "float16":
            out[name] = a.astype(np.float16)
        elif target == "bfloat16":
            out[name] = a.astype(ml_dtypes.bfloat16)
        else:
            amax = np.abs(a).max()
            s = np.float32(amax / np.float32(448)) if amax > 0 else np.float32(1)
            out[name] = (a / s).astype(ml_dtypes.float8_e4m3fn)
            out[name + "_scale"] = np.array([s], dtype=np.float32)
    save(out, dst)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "maxRssMiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "loader": loader, "numpy": np.__version__, "ml_dtypes": mld}))


if __name__ == "__main__":
    main()
