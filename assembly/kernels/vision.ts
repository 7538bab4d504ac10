// float32 kernels of the vision family on the wasm backend (NCHW): im2col / col2im (conv2d runs
// as im2col + the matmul kernel, see src/backend/wasm/vision.ts), batch-norm statistics, apply
// and backward, max pooling with int32 indices, and adaptive average pooling. The reference for
// shaders/vision.wgsl. Pointers are byte offsets into memory; sums run in float32, in order.

/**
 * One sample: cols [C * kh * kw, OH * OW] (row (c, i, j), column (oh, ow)) from x [C, H, W];
 * positions outside x (padding) give 0.
 */
export function im2colF32(
  x: usize, cols: usize, c: i32, h: i32, w: i32, kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32, oh: i32, ow: i32,
): void {
  const l = oh * ow;
  for (let ci = 0; ci < c; ci++) {
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const row = cols + (<usize>(((ci * kh + i) * kw + j) * l) << 2);
        for (let y = 0; y < oh; y++) {
          const iy = y * sh - ph + i * dh;
          const dst = row + (<usize>(y * ow) << 2);
          if (iy < 0 || iy >= h) {
            memory.fill(dst, 0, <usize>ow << 2);
            continue;
          }
          const src = x + (<usize>((ci * h + iy) * w) << 2);
          for (let xo = 0; xo < ow; xo++) {
            const ix = xo * sw - pw + j * dw;
            store<f32>(dst + (<usize>xo << 2), ix < 0 || ix >= w ? 0 : load<f32>(src + (<usize>ix << 2)));
          }
        }
      }
    }
  }
}

/** The adjoint of im2col: dx [C, H, W] += cols scattered back (dx is accumulated into). */
export function col2imF32(
  cols: usize, dx: usize, c: i32, h: i32, w: i32, kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32, oh: i32, ow: i32,
): void {
  const l = oh * ow;
  for (let ci = 0; ci < c; ci++) {
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const row = cols + (<usize>(((ci * kh + i) * kw + j) * l) << 2);
        for (let y = 0; y < oh; y++) {
          const iy = y * sh - ph + i * dh;
          if (iy < 0 || iy >= h) continue;
          const src = row + (<usize>(y * ow) << 2);
          const dst = dx + (<usize>((ci * h + iy) * w) << 2);
          for (let xo = 0; xo < ow; xo++) {
            const ix = xo * sw - pw + j * dw;
            if (ix < 0 || ix >= w) continue;
            const p = dst + (<usize>ix << 2);
            store<f32>(p, load<f32>(p) + load<f32>(src + (<usize>xo << 2)));
          }
        }
      }
    }
  }
}

/** dst[i] += src[i], i < n. */
export function addIntoF32(dst: usize, src: usize, n: usize): void {
  let i: usize = 0;
  for (; i + 4 <= n; i += 4) v128.store(dst + (i << 2), f32x4.add(v128.load(dst + (i << 2)), v128.load(src + (i << 2))));
  for (; i < n; i++) store<f32>(dst + (i << 2), load<f32>(dst + (i << 2)) + load<f32>(src + (i << 2)));
}

/**
 * Per channel of x [N, C, S]: mean[c] = sum / (N S), variance[c] = sum((x - mean)^2) / (N S)
 * (biased; two passes, samples in order, each sample's S values summed in order).
 */
export function batchNormStatsF32(x: usize, mean: usize, variance: usize, n: i32, c: i32, s: i32): void {
  const count = <f32>(n * s);
  for (let ci = 0; ci < c; ci++) {
    let sum: f32 = 0;
    for (let b = 0; b < n; b++) {
      const p = x + (<usize>((b * c + ci) * s) << 2);
      for (let k = 0; k < s; k++) sum += load<f32>(p + (<usize>k << 2));
    }
    const mu = sum / count;
    let sq: f32 = 0;
    for (let b = 0; b < n; b++) {
      const p = x + (<usize>((b * c + ci) * s) << 2);
      for (let k = 0; k < s; k++) {
        const d = load<f32>(p + (<usize>k << 2)) - mu;
        sq += d * d;
      }
    }
    store<f32>(mean + (<usize>ci << 2), mu);
    store<f32>(variance + (<usize>ci << 2), sq / count);
  }
}

/** out = (x - mean[c]) * rstd[c] * w[c] + b[c] over x [N, C, S]. */
export function batchNormF32(x: usize, mean: usize, rstd: usize, w: usize, b: usize, out: usize, n: i32, c: i32, s: i32): void {
  for (let bi = 0; bi < n; bi++) {
    for (let ci = 0; ci < c; ci++) {
      const o = <usize>((bi * c + ci) * s) << 2;
      const mu = load<f32>(mean + (<usize>ci << 2)), rs = load<f32>(rstd + (<usize>ci << 2));
      const sc = rs * load<f32>(w + (<usize>ci << 2)), bb = load<f32>(b + (<usize>ci << 2));
      for (let k = 0; k < s; k++) store<f32>(out + o + (<usize>k << 2), (load<f32>(x + o + (<usize>k << 2)) - mu) * sc + bb);
    }
  }
}

/**
 * xhat = (x - mean) rstd. Per channel: db += sum dy, dw += sum dy xhat; training: dx = w rstd
 * (dy - sum(dy) / M - xhat sum(dy xhat) / M) with M = N S; eval: dx = w rstd dy.
 */
export function batchNormBackwardF32(
  dy: usize, x: usize, mean: usize, rstd: usize, w: usize, dx: usize, dw: usize, db: usize, n: i32, c: i32, s: i32, training: i32,
): void {
  const count = <f32>(n * s);
  for (let ci = 0; ci < c; ci++) {
    const mu = load<f32>(mean + (<usize>ci << 2)), rs = load<f32>(rstd + (<usize>ci << 2));
    let sg: f32 = 0, sgx: f32 = 0;
    for (let bi = 0; bi < n; bi++) {
      const o = <usize>((bi * c + ci) * s) << 2;
      for (let k = 0; k < s; k++) {
        const g = load<f32>(dy + o + (<usize>k << 2));
        sg += g;
        sgx += g * ((load<f32>(x + o + (<usize>k << 2)) - mu) * rs);
      }
    }
    store<f32>(db + (<usize>ci << 2), load<f32>(db + (<usize>ci << 2)) + sg);
    store<f32>(dw + (<usize>ci << 2), load<f32>(dw + (<usize>ci << 2)) + sgx);
    const k0: f32 = load<f32>(w + (<usize>ci << 2)) * rs;
    const mg: f32 = training ? sg / count : 0, mgx: f32 = training ? sgx / count : 0;
    for (let bi = 0; bi < n; bi++) {
      const o = <usize>((bi * c + ci) * s) << 2;
      for (let k = 0; k < s; k++) {
        const g = load<f32>(dy + o + (<usize>k << 2));
        const xh = (load<f32>(x + o + (<usize>k << 2)) - mu) * rs;
        store<f32>(dx + o + (<usize>k << 2), k0 * (g - mg - xh * mgx));
      }
    }
  }
}

/**
 * Max pooling over planes x [P, H, W] -> out [P, OH, OW], idx (int32) = h * W + w of the first
 * maximum in window order; a NaN wins (the last NaN of the window, as PyTorch). Windows are clipped to x (padding
 * counts as -inf); a window with no element of x gives -inf and index -1.
 */
export function maxPool2dF32(
  x: usize, out: usize, idx: usize, planes: i32, h: i32, w: i32, kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32, oh: i32, ow: i32,
): void {
  for (let p = 0; p < planes; p++) {
    const xp = x + (<usize>(p * h * w) << 2);
    for (let y = 0; y < oh; y++) {
      for (let xo = 0; xo < ow; xo++) {
        let m: f32 = -Infinity;
        let mi: i32 = -1;
        for (let i = 0; i < kh; i++) {
          const iy = y * sh - ph + i * dh;
          if (iy < 0 || iy >= h) continue;
          for (let j = 0; j < kw; j++) {
            const ix = xo * sw - pw + j * dw;
            if (ix < 0 || ix >= w) continue;
            const v = load<f32>(xp + (<usize>(iy * w + ix) << 2));
            if (mi < 0 || v > m || v != v) { m = v; mi = iy * w + ix; }
          }
        }
        const o = <usize>((p * oh + y) * ow + xo) << 2;
        store<f32>(out + o, m);
        store<i32>(idx + o, mi);
      }
    }
  }
}

/** dx [P, H * W] = 0, then dx[p, idx[p, o]] += dy[p, o] in order of o. */
export function maxPool2dBackwardF32(dy: usize, idx: usize, dx: usize, planes: i32, hw: i32, ohw: i32): void {
  memory.fill(dx, 0, <usize>(planes * hw) << 2);
  for (let p = 0; p < planes; p++) {
    for (let o = 0; o < ohw; o++) {
      const k = p * ohw + o;
      const i = load<i32>(idx + (<usize>k << 2));
      if (i < 0) continue;
      const q = dx + (<usize>(p * hw + i) << 2);
      store<f32>(q, load<f32>(q) + load<f32>(dy + (<usize>k << 2)));
    }
  }
}

@inline function winStart(i: i32, inSize: i32, outSize: i32): i32 { return <i32>((<i64>i * <i64>inSize) / <i64>outSize); }
@inline function winEnd(i: i32, inSize: i32, outSize: i32): i32 { return <i32>(((<i64>(i + 1) * <i64>inSize) + <i64>outSize - 1) / <i64>outSize); }

/** Adaptive average pooling, planes x [P, H, W] -> out [P, OH, OW] (PyTorch's windows). */
export function adaptiveAvgPool2dF32(x: usize, out: usize, planes: i32, h: i32, w: i32, oh: i32, ow: i32): void {
  for (let p = 0; p < planes; p++) {
    const xp = x + (<usize>(p * h * w) << 2);
    for (let y = 0; y < oh; y++) {
      const y0 = winStart(y, h, oh), y1 = winEnd(y, h, oh);
      for (let xo = 0; xo < ow; xo++) {
        const x0 = winStart(xo, w, ow), x1 = winEnd(xo, w, ow);
        let s: f32 = 0;
        for (let iy = y0; iy < y1; iy++) for (let ix = x0; ix < x1; ix++) s += load<f32>(xp + (<usize>(iy * w + ix) << 2));
        store<f32>(out + (<usize>((p * oh + y) * ow + xo) << 2), s / <f32>((y1 - y0) * (x1 - x0)));
      }
    }
  }
}

/** dx [P, H, W] = sum over the windows holding each element of dy / window size (windows in order). */
export function adaptiveAvgPool2dBackwardF32(dy: usize, dx: usize, planes: i32, h: i32, w: i32, oh: i32, ow: i32): void {
  for (let p = 0; p < planes; p++) {
    for (let iy = 0; iy < h; iy++) {
      for (let ix = 0; ix < w; ix++) {
        let s: f32 = 0;
        for (let y = 0; y < oh; y++) {
          const y0 = winStart(y, h, oh), y1 = winEnd(y, h, oh);
          if (iy < y0 || iy >= y1) continue;
          for (let xo = 0; xo < ow; xo++) {
            const x0 = winStart(xo, w, ow), x1 = winEnd(xo, w, ow);
            if (ix < x0 || ix >= x1) continue;
            s += load<f32>(dy + (<usize>((p * oh + y) * ow + xo) << 2)) / <f32>((y1 - y0) * (x1 - x0));
          }
        }
        store<f32>(dx + (<usize>((p * h + iy) * w + ix) << 2), s);
      }
    }
  }
}
