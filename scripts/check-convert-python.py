#!/usr/bin/env python3
"""Checks that files written by `memfit convert-model` load in the Python safetensors library and mean what
docs/convert-model.md says, by dequantising them here independently (PyTorch / numpy) and comparing with
memfit's own `--to float32` output, bit for bit. Not part of CI (which has no Python); run it by hand:

    python3 -m venv --system-site-packages /tmp/stvenv && /tmp/stvenv/bin/pip install safetensors numpy torch
    npm run build && /tmp/stvenv/bin/python scripts/check-convert-python.py

Exits 1 on any mismatch. Inputs: tests/fixtures/io/convert/model-f32.safetensors and a larger random float32
file written here with safetensors.torch (shapes with K % 32 != 0 and odd K included).
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FP4 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6], dtype=np.float64)


def memfit(*args):
    r = subprocess.run(["node", os.path.join(ROOT, "bin", "memfit.js"), *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"memfit {' '.join(args)} failed: {r.stderr}")
    return r.stdout


def fp6_values(codes, ebits, mbits):
    """Exact values of fp6 codes (no inf/NaN; bias 2^(ebits-1) - 1)."""
    bias = 2 ** (ebits - 1) - 1
    sign = np.where(codes & 0x20, -1.0, 1.0)
    e = (codes >> mbits) & ((1 << ebits) - 1)
    m = codes & ((1 << mbits) - 1)
    v = np.where(e == 0, m * 2.0 ** (1 - bias - mbits), (2 ** mbits + m) * 2.0 ** (e.astype(np.float64) - bias - mbits))
    return sign * v


def unpack(raw, dtype, n):
    raw = raw.astype(np.uint32)
    if dtype == "float4_e2m1fn":
        codes = np.stack([raw & 0xF, raw >> 4], axis=1).reshape(-1)[:n]
        return FP4[codes]
    # fp6: four codes in three bytes, 24-bit little-endian groups, code j at bits 6j..6j+5
    pad = (-len(raw)) % 3
    raw = np.concatenate([raw, np.zeros(pad, dtype=np.uint32)])
    g = raw[0::3] | (raw[1::3] << 8) | (raw[2::3] << 16)
    codes = np.stack([(g >> (6 * j)) & 0x3F for j in range(4)], axis=1).reshape(-1)[:n]
    return fp6_values(codes, *(3, 2) if dtype == "float6_e3m2fn" else (2, 3))


def elements(t, dtype, n):
    """Exact float64 values of MX element codes stored in tensor t."""
    if dtype in ("float8_e4m3fn", "float8_e5m2"):
        return t.view(getattr(torch, dtype)).reshape(-1).to(torch.float64).numpy()
    return unpack(t.reshape(-1).numpy(), dtype, n)


def same(a, b):
    a = np.asarray(a, dtype=np.float32).reshape(-1)
    b = np.asarray(b, dtype=np.float32).reshape(-1)
    nan = np.isnan(a)
    return a.shape == b.shape and np.array_equal(nan, np.isnan(b)) and np.array_equal(a[~nan].view(np.uint32), b[~nan].view(np.uint32))


def check(path, back_path):
    ours = load_file(path)  # must load with the reference library
    with safe_open(path, "np") as f:
        meta = f.metadata() or {}
        for k in f.keys():
            if ours[k].dtype not in (torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2):
                f.get_tensor(k)  # numpy loads everything numpy has a dtype for
    conv = json.loads(meta["memfit.conversion"])
    dtypes = json.loads(meta.get("memfit.dtypes", "{}"))
    back = load_file(back_path)
    checked = 0
    for name, e in conv["tensors"].items():
        shape = dtypes.get(name, {}).get("shape", list(ours[name].shape))
        n = int(np.prod(shape)) if shape else 1
        if e["scale"] == "none":
            want = ours[name].float().numpy()
        elif e["scale"] in ("tensor", "row"):
            s = ours[e["scaleTensor"]]
            assert s.dtype == torch.float32 and list(s.shape) == ([1] if e["scale"] == "tensor" else shape[:-1] + [1]), (name, s.shape)
            assert ours[name].dtype == getattr(torch, e["dtype"]), (name, ours[name].dtype)
            want = (ours[name].float() * s).numpy()  # compressed-tensors / vLLM: value = code * weight_scale
        else:
            s = ours[e["scaleTensor"]].numpy().astype(np.int64)
            k = shape[-1] if shape else 1
            bs = e["blockSize"]
            per_row = -(-k // bs)
            assert dtypes[e["scaleTensor"]]["dtype"] == "float8_e8m0fnu" and list(s.shape) == shape[:-1] + [per_row], (name, s.shape)
            v = elements(ours[name], e["dtype"], n).reshape(-1, k)
            block = np.arange(k) // bs
            scale = np.where(s.reshape(-1, per_row) == 255, np.nan, np.ldexp(1.0, s.reshape(-1, per_row) - 127))[:, block]
            want = (v * scale).astype(np.float32)  # exact product in float64, rounded once
        if not same(want, back[name].numpy()):
            sys.exit(f"MISMATCH {path} {name}: Python's dequantisation differs from memfit's --to float32")
        checked += 1
    return checked, len(ours)


def main():
    with tempfile.TemporaryDirectory() as d:
        big = os.path.join(d, "random.safetensors")
        g = torch.Generator().manual_seed(0)
        save_file({
            "a.weight": torch.randn(96, 256, generator=g) * 0.02,
            "b.weight": torch.randn(33, 70, generator=g),
            "c.weight": torch.randn(7, 33, generator=g) * 1e3,
            "c.bias": torch.randn(7, generator=g),
        }, big, metadata={"format": "pt"})
        inputs = [os.path.join(ROOT, "tests", "fixtures", "io", "convert", "model-f32.safetensors"), big]
        targets = [["bf16"], ["f16"], ["e4m3"], ["e4m3", "--scale", "row"], ["e5m2", "--scale", "row"], ["mxfp8_e4m3"],
                   ["mxfp8_e5m2"], ["mxfp6_e3m2"], ["mxfp6_e2m3"], ["mxfp4"], ["mxfp4", "--block-size", "16"]]
        total = 0
        for src in inputs:
            for t in targets:
                out = os.path.join(d, "out.safetensors")
                back = os.path.join(d, "back.safetensors")
                memfit("convert-model", src, out, "--to", *t, "-q")
                memfit("convert-model", out, back, "--to", "float32", "-q")
                checked, count = check(out, back)
                total += checked
                print(f"ok  {os.path.basename(src):24} --to {' '.join(t):22} {count} tensors load, {checked} dequantised identically")
        print(f"all {total} converted tensors load in safetensors {__import__('safetensors').__version__} / torch {torch.__version__} and match")


if __name__ == "__main__":
    main()
