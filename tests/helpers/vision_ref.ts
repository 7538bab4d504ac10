// Independent float64 references of the vision ops (NCHW), written from their definitions:
// convolution as a plain sum over the window, batch norm from the mean and biased variance, max
// pooling over explicitly enumerated window positions, adaptive pooling from PyTorch's window rule.

export interface ConvGeom { stride: [number, number]; padding: [number, number]; dilation: [number, number]; groups: number }

export const convOut = (size: number, k: number, s: number, p: number, d: number): number => Math.floor((size + 2 * p - d * (k - 1) - 1) / s) + 1;

/** y [N, O, OH, OW] = conv2d(x [N, C, H, W], w [O, C/g, kh, kw]) + bias. */
export function refConv2d(x: ArrayLike<number>, xs: number[], w: ArrayLike<number>, ws: number[], g: ConvGeom, bias?: ArrayLike<number>): { y: Float64Array; shape: number[] } {
  const [n, c, h, wd] = xs, [o, cg, kh, kw] = ws;
  const oh = convOut(h, kh, g.stride[0], g.padding[0], g.dilation[0]), ow = convOut(wd, kw, g.stride[1], g.padding[1], g.dilation[1]);
  const og = o / g.groups;
  const y = new Float64Array(n * o * oh * ow);
  for (let b = 0; b < n; b++) for (let oc = 0; oc < o; oc++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
    let s = bias ? bias[oc] : 0;
    const c0 = Math.floor(oc / og) * cg;
    for (let ci = 0; ci < cg; ci++) for (let a = 0; a < kh; a++) for (let bb = 0; bb < kw; bb++) {
      const iy = i * g.stride[0] - g.padding[0] + a * g.dilation[0], ix = j * g.stride[1] - g.padding[1] + bb * g.dilation[1];
      if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
      s += x[((b * c + c0 + ci) * h + iy) * wd + ix] * w[((oc * cg + ci) * kh + a) * kw + bb];
    }
    y[((b * o + oc) * oh + i) * ow + j] = s;
  }
  return { y, shape: [n, o, oh, ow] };
}

/** dx and dw of sum(y * dy) for refConv2d (the adjoint, written as scatters). */
export function refConv2dBackward(x: ArrayLike<number>, xs: number[], w: ArrayLike<number>, ws: number[], g: ConvGeom, dy: ArrayLike<number>): { dx: Float64Array; dw: Float64Array } {
  const [n, c, h, wd] = xs, [o, cg, kh, kw] = ws;
  const oh = convOut(h, kh, g.stride[0], g.padding[0], g.dilation[0]), ow = convOut(wd, kw, g.stride[1], g.padding[1], g.dilation[1]);
  const og = o / g.groups;
  const dx = new Float64Array(x.length), dw = new Float64Array(w.length);
  for (let b = 0; b < n; b++) for (let oc = 0; oc < o; oc++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
    const gy = dy[((b * o + oc) * oh + i) * ow + j];
    const c0 = Math.floor(oc / og) * cg;
    for (let ci = 0; ci < cg; ci++) for (let a = 0; a < kh; a++) for (let bb = 0; bb < kw; bb++) {
      const iy = i * g.stride[0] - g.padding[0] + a * g.dilation[0], ix = j * g.stride[1] - g.padding[1] + bb * g.dilation[1];
      if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
      const xi = ((b * c + c0 + ci) * h + iy) * wd + ix, wi = ((oc * cg + ci) * kh + a) * kw + bb;
      dx[xi] += gy * w[wi];
      dw[wi] += gy * x[xi];
    }
  }
  return { dx, dw };
}

/** Batch norm over x [N, C, S]: training (batch statistics) or eval (given mean / var), with its backward for dy. */
export function refBatchNorm(
  x: ArrayLike<number>, n: number, c: number, s: number, w: ArrayLike<number>, b: ArrayLike<number>, eps: number, dy: ArrayLike<number>,
  running: { mean: ArrayLike<number>; var: ArrayLike<number> } | null,
): { y: Float64Array; mean: Float64Array; var: Float64Array; dx: Float64Array; dw: Float64Array; db: Float64Array } {
  const mean = new Float64Array(c), vr = new Float64Array(c), y = new Float64Array(x.length), dx = new Float64Array(x.length), dw = new Float64Array(c), db = new Float64Array(c);
  const m = n * s;
  const at = (bi: number, ci: number, k: number) => (bi * c + ci) * s + k;
  for (let ci = 0; ci < c; ci++) {
    let mu = 0, v = 0;
    for (let bi = 0; bi < n; bi++) for (let k = 0; k < s; k++) mu += x[at(bi, ci, k)];
    mu /= m;
    for (let bi = 0; bi < n; bi++) for (let k = 0; k < s; k++) v += (x[at(bi, ci, k)] - mu) ** 2;
    v /= m;
    mean[ci] = mu;
    vr[ci] = v;
    const useMu = running ? running.mean[ci] : mu, useVar = running ? running.var[ci] : v;
    const rs = 1 / Math.sqrt(useVar + eps);
    let sg = 0, sgx = 0;
    for (let bi = 0; bi < n; bi++) for (let k = 0; k < s; k++) {
      const i = at(bi, ci, k), xh = (x[i] - useMu) * rs;
      y[i] = xh * w[ci] + b[ci];
      sg += dy[i];
      sgx += dy[i] * xh;
    }
    db[ci] = sg;
    dw[ci] = sgx;
    for (let bi = 0; bi < n; bi++) for (let k = 0; k < s; k++) {
      const i = at(bi, ci, k), xh = (x[i] - useMu) * rs;
      dx[i] = running ? w[ci] * rs * dy[i] : w[ci] * rs * (dy[i] - sg / m - xh * sgx / m);
    }
  }
  return { y, mean, var: vr, dx, dw, db };
}

export interface PoolGeom { kernel: [number, number]; stride: [number, number]; padding: [number, number]; dilation: [number, number] }

/** Max pooling of planes [P, H, W] into [P, OH, OW] (sizes given): values, flat indices (first max; NaN wins), and dx for dy. */
export function refMaxPool(x: ArrayLike<number>, p: number, h: number, w: number, oh: number, ow: number, g: PoolGeom, dy: ArrayLike<number>): { y: Float64Array; idx: Int32Array; dx: Float64Array } {
  const y = new Float64Array(p * oh * ow), idx = new Int32Array(p * oh * ow), dx = new Float64Array(p * h * w);
  for (let q = 0; q < p; q++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
    let best = -Infinity, bi = -1;
    for (let a = 0; a < g.kernel[0]; a++) for (let b = 0; b < g.kernel[1]; b++) {
      const iy = i * g.stride[0] - g.padding[0] + a * g.dilation[0], ix = j * g.stride[1] - g.padding[1] + b * g.dilation[1];
      if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
      const v = x[(q * h + iy) * w + ix];
      if (bi < 0 || v > best || Number.isNaN(v)) { best = v; bi = iy * w + ix; }
    }
    const o = (q * oh + i) * ow + j;
    y[o] = best;
    idx[o] = bi;
    if (bi >= 0) dx[q * h * w + bi] += dy[o];
  }
  return { y, idx, dx };
}

/** Adaptive average pooling of planes [P, H, W] to [P, OH, OW] and its backward. */
export function refAdaptiveAvg(x: ArrayLike<number>, p: number, h: number, w: number, oh: number, ow: number, dy: ArrayLike<number>): { y: Float64Array; dx: Float64Array } {
  const y = new Float64Array(p * oh * ow), dx = new Float64Array(p * h * w);
  for (let q = 0; q < p; q++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
    const y0 = Math.floor((i * h) / oh), y1 = Math.ceil(((i + 1) * h) / oh), x0 = Math.floor((j * w) / ow), x1 = Math.ceil(((j + 1) * w) / ow);
    const cnt = (y1 - y0) * (x1 - x0);
    let s = 0;
    for (let a = y0; a < y1; a++) for (let b = x0; b < x1; b++) s += x[(q * h + a) * w + b];
    const o = (q * oh + i) * ow + j;
    y[o] = s / cnt;
    for (let a = y0; a < y1; a++) for (let b = x0; b < x1; b++) dx[(q * h + a) * w + b] += dy[o] / cnt;
  }
  return { y, dx };
}
