#!/usr/bin/env python3
"""Writes tests/fixtures/pow_norm_edges.json: what PyTorch (float32, CPU) gives for pow and
layer_norm / RMSNorm at their edges: zeros, infinities, NaN, negative bases, integer and
half-integer exponents, rows holding inf, NaN, values whose squares overflow, and all-equal rows.

Every float is stored as its float32 bit pattern (JSON has no NaN or inf). `...Exact` marks the
pow results and gradients that are the exact value (the float64 power or gradient, or a non-finite
value or zero): those are compared bit for bit (any NaN for NaN), the rest within a few ulps. Needs PyTorch:
    /usr/bin/python3 scripts/make-pow-norm-fixture.py
"""
import json
import numpy as np
import torch
import torch.nn.functional as F

INF, NAN = float('inf'), float('nan')
BASES = [0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, 1.5, -1.5, 10.0, -10.0, 1e-3, 0.9, 7.0, 1e30, -1e30, INF, -INF, NAN]
EXPONENTS = [0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 0.5, -0.5, 1.5, -1.5, 2.5, 0.25, 5.0, -5.0, 10.0, 24.0, 127.0, 1e10, INF, -INF, NAN]


def bits(t):
    return [int(v) for v in t.detach().contiguous().to(torch.float32).numpy().view(np.uint32).ravel()]


def exact(base, exp, got):
    g = np.float32(got)
    if not np.isfinite(g) or g == 0:
        return True
    with np.errstate(all='ignore'):
        want = np.float64(base) ** np.float64(exp)
    return bool(np.isfinite(want) and np.float64(g) == want)


def same(want, got):
    g = np.float32(got)
    if np.isnan(g):
        return bool(np.isnan(want))
    return bool(np.float64(g) == want)


def grad_base64(base, exp):
    """d/dbase of base^exp in float64 (0 where exp = 0, as PyTorch)."""
    if exp == 0:
        return 0.0
    with np.errstate(all='ignore'):
        return np.float64(exp) * np.float64(base) ** (np.float64(exp) - 1)


def grad_exp64(base, exp):
    """d/dexp of base^exp in float64 (0 where base = 0 and exp >= 0, as PyTorch)."""
    if base == 0 and exp >= 0:
        return 0.0
    with np.errstate(all='ignore'):
        return np.float64(base) ** np.float64(exp) * np.log(np.float64(base))


def pow_cases():
    x = torch.tensor(BASES, dtype=torch.float32)
    out = {'bases': bits(x), 'exponents': bits(torch.tensor(EXPONENTS, dtype=torch.float32))}
    # tensor ** tensor: every base against every exponent, one element each (std::pow on every lane
    # as on the vectorised body: the rows below are the cross product, laid out as [exponent, base]).
    xb = x.repeat(len(EXPONENTS))
    eb = torch.tensor(EXPONENTS, dtype=torch.float32).repeat_interleave(len(BASES))
    xv = xb.clone().requires_grad_(True)
    ev = eb.clone().requires_grad_(True)
    y = torch.pow(xv, ev)
    y.backward(torch.ones_like(y))
    out['tensor'] = bits(y)
    out['tensorExact'] = [exact(b, e, g) for b, e, g in zip(xb.tolist(), eb.tolist(), y.tolist())]
    out['tensorGradBase'] = bits(xv.grad)
    out['tensorGradBaseExact'] = [same(grad_base64(b, e), g) for b, e, g in zip(xb.tolist(), eb.tolist(), xv.grad.tolist())]
    out['tensorGradExponent'] = bits(ev.grad)
    out['tensorGradExponentExact'] = [same(grad_exp64(b, e), g) for b, e, g in zip(xb.tolist(), eb.tolist(), ev.grad.tolist())]
    # tensor ** number: torch.pow(x, e) for each exponent (its 2, 3, -2, 0.5, -0.5, -1 fast paths included).
    rows, ex, gb, gbx = [], [], [], []
    for e in EXPONENTS:
        xs = x.clone().requires_grad_(True)
        ys = torch.pow(xs, e)
        ys.backward(torch.ones_like(ys))
        rows += bits(ys)
        ex += [exact(b, e, g) for b, g in zip(BASES, ys.tolist())]
        gb += bits(xs.grad)
        gbx += [same(grad_base64(b, e), g) for b, g in zip(BASES, xs.grad.tolist())]
    out['scalar'] = rows
    out['scalarExact'] = ex
    out['scalarGradBase'] = gb
    out['scalarGradBaseExact'] = gbx
    return out


LN_ROWS = [
    [1.0, 2.0, INF, 3.0],
    [1.0, 2.0, -INF, 3.0],
    [INF, INF, INF, INF],
    [INF, -INF, 1.0, 2.0],
    [1.0, NAN, 2.0, 3.0],
    [3e38, -3e38, 3e38, -3e38],      # the sum of magnitudes overflows: NaN
    [3e38, 3e38, 3e38, 3e38],        # all equal, but the mean's square overflows: NaN
    [2e19, 2e19, 2e19, 2e19],        # |mean| >= 2^64: NaN
    [3e38, 1.0, 2.0, 3.0],
    [1e20, -1e20, 0.0, 1.0],         # only the variance overflows: rstd 0, the output is the bias
    [1.8e19, -1.8e19, 1.8e19, -1.8e19],
    [1e19, 1e19, 1e19, 1e19],        # all equal below 2^64: finite
    [2.0, 2.0, 2.0, 2.0],
    [0.1, 0.1, 0.1, 0.1],
    [-3.0, -3.0, -3.0, -3.0],
    [0.0, -0.0, 0.0, -0.0],
    [1.0, 2.0, 3.0, 4.0],
    [-1.5, 1e-3, 7.0, 0.25],
    [1e-30, -1e-30, 2e-30, 0.0],
]


def norm_cases():
    x = torch.tensor(LN_ROWS, dtype=torch.float32)
    cols = x.shape[1]
    w = torch.tensor([1.0, 2.0, -3.0, 0.5], dtype=torch.float32)
    b = torch.tensor([0.5, -0.25, 0.0, 1.0], dtype=torch.float32)
    dy = torch.tensor([1.0, -1.0, 2.0, 0.5], dtype=torch.float32).repeat(x.shape[0], 1)
    eps = 1e-5
    out = {'rows': x.shape[0], 'cols': cols, 'eps': eps, 'x': bits(x), 'weight': bits(w), 'bias': bits(b), 'dy': bits(dy)}
    # layer_norm: each row on its own (dweight and dbias per row) so that one NaN row does not hide the rest.
    ln = {'out': [], 'dx': [], 'dweight': [], 'dbias': []}
    rms = {'out': [], 'dx': [], 'dweight': []}
    for r in range(x.shape[0]):
        xr = x[r:r + 1].clone().requires_grad_(True)
        wr = w.clone().requires_grad_(True)
        br = b.clone().requires_grad_(True)
        y = F.layer_norm(xr, (cols,), wr, br, eps)
        y.backward(dy[r:r + 1])
        ln['out'] += bits(y); ln['dx'] += bits(xr.grad); ln['dweight'] += bits(wr.grad); ln['dbias'] += bits(br.grad)
        # RMSNorm as transformers' LlamaRMSNorm in float32 (PyTorch 1.13 has no F.rms_norm).
        xr = x[r:r + 1].clone().requires_grad_(True)
        wr = w.clone().requires_grad_(True)
        y = xr * torch.rsqrt(xr.pow(2).mean(-1, keepdim=True) + eps) * wr
        y.backward(dy[r:r + 1])
        rms['out'] += bits(y); rms['dx'] += bits(xr.grad); rms['dweight'] += bits(wr.grad)
    out['layerNorm'] = ln
    out['rmsNorm'] = rms
    return out


fixture = {
    'about': 'PyTorch %s, float32 on CPU: pow (tensor ** tensor, tensor ** number, their gradients) and layer_norm / RMSNorm '
             '(forward and backward, one row at a time) at their edges; floats as float32 bit patterns' % torch.__version__,
    'pow': pow_cases(),
    'norm': norm_cases(),
}
with open('tests/fixtures/pow_norm_edges.json', 'w') as f:
    json.dump(fixture, f, separators=(',', ':'))
    f.write('\n')
print(len(fixture['pow']['tensor']), 'pow pairs,', fixture['norm']['rows'], 'norm rows')
