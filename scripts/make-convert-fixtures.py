#!/usr/bin/env python3
"""Writes tests/fixtures/io/convert/*.safetensors with the reference safetensors library and PyTorch.

CI has no Python: the fixtures are committed, and tests/io/convert_model.test.ts compares memfit's
convert-model output with them byte for byte. To regenerate (PyTorch's CPU wheel is enough):

    python3 -m venv --system-site-packages /tmp/stvenv
    /tmp/stvenv/bin/pip install safetensors numpy torch
    /tmp/stvenv/bin/python scripts/make-convert-fixtures.py

Files (i is the flat element index, row-major; all values computed in numpy float32):
  model-f32.safetensors   a small float32 "model", __metadata__ {"format": "pt"}
    model.embed_tokens.weight           F32 [32, 16]  sin(i * 0.7) * 0.05 * (1 + i % 5)
    model.layers.0.self_attn.q_proj.weight F32 [16, 64]  cos(i * 0.31) * 0.1 * (1 + (i // 64) % 3)
    model.layers.0.mlp.down_proj.weight F32 [8, 33]   sin(i * 1.3 + 0.2) * 2 ** ((i % 11) - 6)   (odd K)
    specials.weight                     F32 [4, 8]    SPECIALS (zeros, subnormals, overflow, inf, nan)
    zeros.weight                        F32 [3, 4]    0
    empty.weight                        F32 [0, 4]    no elements
    model.norm.weight                   F32 [64]      1 + i * 1e-3
    f64.bias                            F64 [3]       i + 0.5
    steps                               I64 [3]       i * 7
    flags                               BOOL [2]      [True, False]
  reference-<target>.safetensors      what convert-model must write for the 2-D float tensors of model-f32, made
                                      here with PyTorch: codes, and for float8 the float32 `<name>_scale`.
    bfloat16, float16:          w.to(dtype)
    float8_e4m3fn-tensor, -row, float8_e5m2-tensor, -row:
        amax = max |w| over the finite values (of the tensor, or of each row); s = amax / max(dtype) rounded to
        float32, one ulp up if amax / s > max; at least 2^-126; 1 when amax is 0. codes = (w / s).to(dtype)
        (float32 division, PyTorch's non-saturating cast). Scale shape [1] per tensor, [rows, 1] per row.
  compressed-fp8.safetensors          an fp8 checkpoint in the compressed-tensors / vLLM layout, with the values
                                      PyTorch dequantises it to (expected.<name> = w.float() * scale.float()).
    a.weight        F8_E4M3 [4, 8]   code (i * 37 + 5) % 256 (NaN codes 0x7f / 0xff included)
    a.weight_scale  F32 [1]          0.0078125 * 1.5
    a.input_scale   F32 []           0.25                       (an activation scale: copied through)
    b.weight        F8_E4M3 [3, 5]   code (i * 11 + 2) % 126
    b.weight_scale  F32 [3, 1]       [0.5, 0.001, 3.0]          (per output channel)
    c.weight        F8_E5M2 [2, 4]   code (i * 29 + 1) % 123
    c.weight_scale  BF16 []          0.375                      (a 0-D bfloat16 scale)
    norm.weight     BF16 [8]         1 + i / 16
"""
import json
import math
import os

import numpy as np
import torch
from safetensors.torch import save_file, load_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "io", "convert")

SPECIALS = [0.0, -0.0, 1e-30, -1e-30, 2 ** -10, 448.0, 464.0, 500.0,
            -1e6, 57344.0, 61440.0, 1e-45, 3.0e38, -3.0e38, 0.1, -0.1,
            float("inf"), float("-inf"), float("nan"), 1.0, -2.5, 7.0, 1e-7, 6e-5,
            0.015625, 0.0009765625, -448.0, 448.5, 1e-3, -1e-3, 2 ** -17, 65504.0]


def idx(n):
    return np.arange(n, dtype=np.float64)


def model():
    t = {}
    t["model.embed_tokens.weight"] = (np.sin(idx(512) * 0.7) * 0.05 * (1 + idx(512) % 5)).astype(np.float32).reshape(32, 16)
    i = idx(1024)
    t["model.layers.0.self_attn.q_proj.weight"] = (np.cos(i * 0.31) * 0.1 * (1 + (i // 64) % 3)).astype(np.float32).reshape(16, 64)
    i = idx(264)
    t["model.layers.0.mlp.down_proj.weight"] = (np.sin(i * 1.3 + 0.2) * 2.0 ** ((i % 11) - 6)).astype(np.float32).reshape(8, 33)
    t["specials.weight"] = np.array(SPECIALS, dtype=np.float32).reshape(4, 8)
    t["zeros.weight"] = np.zeros((3, 4), dtype=np.float32)
    t["empty.weight"] = np.zeros((0, 4), dtype=np.float32)
    t["model.norm.weight"] = (1 + idx(64) * 1e-3).astype(np.float32)
    return t


def fp8_scale(amax, fmax):
    amax = np.float32(amax)
    if not (amax > 0) or not np.isfinite(amax):
        return np.float32(1)
    s = np.float32(amax / np.float32(fmax))
    if float(amax) / float(s) > fmax:
        s = np.nextafter(s, np.float32(np.inf))
    return max(s, np.float32(2.0 ** -126))


def finite_amax(a):
    f = np.abs(a[np.isfinite(a)])
    return f.max() if f.size else np.float32(0)


def reference(tensors, dtype, scale):
    out = {}
    fmax = torch.finfo(dtype).max
    for name, w in tensors.items():
        if w.ndim != 2:
            continue
        if scale is None:
            out[name] = torch.from_numpy(w).to(dtype)
            continue
        if scale == "tensor":
            s = np.array([fp8_scale(finite_amax(w), fmax)], dtype=np.float32)
            scaled = torch.from_numpy(w) / torch.from_numpy(s)
        else:
            s = np.array([[fp8_scale(finite_amax(row), fmax)] for row in w], dtype=np.float32).reshape(w.shape[0], 1)
            scaled = torch.from_numpy(w) / torch.from_numpy(s)
        assert scaled.dtype == torch.float32
        out[name] = scaled.to(dtype)
        out[name + "_scale"] = torch.from_numpy(s)
    return out


def write(name, tensors, metadata=None):
    path = os.path.join(OUT, name)
    save_file(tensors, path, metadata=metadata)
    back = load_file(path)
    print(f"{name}: {os.path.getsize(path)} bytes, {[(k, str(v.dtype), list(v.shape)) for k, v in back.items()]}")


def main():
    os.makedirs(OUT, exist_ok=True)
    m = model()
    tensors = {k: torch.from_numpy(v) for k, v in m.items()}
    tensors["f64.bias"] = torch.from_numpy(idx(3) + 0.5)
    tensors["steps"] = torch.arange(3, dtype=torch.int64) * 7
    tensors["flags"] = torch.tensor([True, False])
    write("model-f32.safetensors", tensors, {"format": "pt"})

    for label, dtype, scale in [
        ("bfloat16", torch.bfloat16, None), ("float16", torch.float16, None),
        ("float8_e4m3fn-tensor", torch.float8_e4m3fn, "tensor"), ("float8_e4m3fn-row", torch.float8_e4m3fn, "row"),
        ("float8_e5m2-tensor", torch.float8_e5m2, "tensor"), ("float8_e5m2-row", torch.float8_e5m2, "row"),
    ]:
        write(f"reference-{label}.safetensors", reference(m, dtype, scale))

    def codes(n, f, dtype, shape):
        return torch.tensor([f(i) for i in range(n)], dtype=torch.uint8).view(dtype).reshape(shape)

    ct = {
        "a.weight": codes(32, lambda i: (i * 37 + 5) % 256, torch.float8_e4m3fn, (4, 8)),
        "a.weight_scale": torch.tensor([0.0078125 * 1.5], dtype=torch.float32),
        "a.input_scale": torch.tensor(0.25, dtype=torch.float32),
        "b.weight": codes(15, lambda i: (i * 11 + 2) % 126, torch.float8_e4m3fn, (3, 5)),
        "b.weight_scale": torch.tensor([[0.5], [0.001], [3.0]], dtype=torch.float32),
        "c.weight": codes(8, lambda i: (i * 29 + 1) % 123, torch.float8_e5m2, (2, 4)),
        "c.weight_scale": torch.tensor(0.375, dtype=torch.bfloat16),
        "norm.weight": (1 + torch.arange(8, dtype=torch.float32) / 16).to(torch.bfloat16),
    }
    for n in ["a", "b", "c"]:
        ct[f"expected.{n}.weight"] = ct[f"{n}.weight"].float() * ct[f"{n}.weight_scale"].float()
    write("compressed-fp8.safetensors", ct, {"format": "pt"})


if __name__ == "__main__":
    main()
