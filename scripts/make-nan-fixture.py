#!/usr/bin/env python3
"""Writes tests/fixtures/ml_dtypes_nan.json: what ml_dtypes makes of every float32 NaN.

For each format, every one of the 2 x (2^23 - 1) float32 NaN bit patterns is converted with
ml_dtypes (astype from float32) and the codes are stored run-length encoded over the input bits
(runs of equal codes: [first input bits, count, code]). float16 is left out: it keeps payload bits
(the golden encode data covers it). Needs numpy and ml_dtypes:
    python3 -m venv /tmp/v && /tmp/v/bin/pip install numpy ml_dtypes && /tmp/v/bin/python scripts/make-nan-fixture.py
"""
import json
import numpy as np
import ml_dtypes

FORMATS = ['bfloat16', 'float8_e4m3fn', 'float8_e5m2', 'float8_e8m0fnu', 'float6_e3m2fn', 'float6_e2m3fn', 'float4_e2m1fn']

pos = np.arange(0x7f800001, 0x80000000, dtype=np.uint32)
bits = np.concatenate([pos, pos | np.uint32(0x80000000)])
x = bits.view(np.float32)
out = {'about': 'ml_dtypes %s, numpy %s: codes of every float32 NaN, run-length encoded as [first input bits, count, code] over ascending input bits (positive NaNs, then negative)' % (ml_dtypes.__version__, np.__version__), 'formats': {}}
for name in FORMATS:
    codes = x.astype(getattr(ml_dtypes, name) if name != 'bfloat16' else ml_dtypes.bfloat16)
    c = codes.view(np.uint16 if codes.dtype.itemsize == 2 else np.uint8).astype(np.int64)
    runs = []
    start = 0
    for i in range(1, len(c) + 1):
        if i == len(c) or c[i] != c[start] or bits[i] != bits[i - 1] + 1:
            runs.append([int(bits[start]), i - start, int(c[start])])
            start = i
    assert len(runs) < 64, (name, len(runs))
    out['formats'][name] = runs
with open('tests/fixtures/ml_dtypes_nan.json', 'w') as f:
    json.dump(out, f, indent=1)
    f.write('\n')
print({k: len(v) for k, v in out['formats'].items()})
