"""Numba CPU kernels for sliding windows over channels-last images: `im2col` writes each
output position's window as one row (padding positions get `fill`), `col2im` adds the rows
back onto the pixels. One pass each over the output, serial like every fastnn CPU kernel.
Their pure twins are `fastnn.ops.ArrayOps.im2col` and `col2im`; the tests compare them."""

from __future__ import annotations

import numpy as np

from fastnn.kernels.cpu import jit


@jit
def im2col(x, height, kh, kw, sh, sw, top, left, oh, ow, fill, out):
    """out[(b, i, j), (di, dj, c)] = image b's pixel (i * sh + di - top, j * sw + dj - left),
    channel c, or fill. x is the images as (n * height, width * channels) rows: one window
    row is then kw * channels consecutive values, copied as one span."""
    n = x.shape[0] // height
    channels = out.shape[1] // (kh * kw)
    width = x.shape[1] // channels
    span = kw * channels
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                dst = out[(b * oh + i) * ow + j]
                c0 = j * sw - left
                inside = c0 >= 0 and c0 + kw <= width
                for di in range(kh):
                    r = i * sh + di - top
                    base = di * span
                    if r < 0 or r >= height:
                        for e in range(span):
                            dst[base + e] = fill
                    elif inside:
                        src = x[b * height + r]
                        first = c0 * channels
                        for e in range(span):
                            dst[base + e] = src[first + e]
                    else:
                        src = x[b * height + r]
                        for dj in range(kw):
                            c = c0 + dj
                            for ch in range(channels):
                                dst[base + dj * channels + ch] = src[c * channels + ch] if 0 <= c < width else fill
    return out


@jit
def col2im(cols, height, kh, kw, sh, sw, top, left, oh, ow, dx):
    """dx (zeroed by the caller; (n * height, width * channels) rows) += each row of cols at
    the pixels im2col took it from."""
    n = dx.shape[0] // height
    channels = cols.shape[1] // (kh * kw)
    width = dx.shape[1] // channels
    span = kw * channels
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                src = cols[(b * oh + i) * ow + j]
                c0 = j * sw - left
                inside = c0 >= 0 and c0 + kw <= width
                for di in range(kh):
                    r = i * sh + di - top
                    if r < 0 or r >= height:
                        continue
                    dst = dx[b * height + r]
                    base = di * span
                    if inside:
                        first = c0 * channels
                        for e in range(span):
                            dst[first + e] += src[base + e]
                    else:
                        for dj in range(kw):
                            c = c0 + dj
                            if 0 <= c < width:
                                for ch in range(channels):
                                    dst[c * channels + ch] += src[base + dj * channels + ch]
    return dx


@jit
def max_pool(x, kh, kw, sh, sw, top, left, oh, ow, y, first):
    """y[b, i, j, c] = the largest x in the window (padding never wins); first[b, i, j, c] =
    where it is (row * width + col), the first of equal ones, as PyTorch picks. The channel
    loop is innermost: it walks memory in order."""
    n, height, width, channels = x.shape
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                best, where = y[b, i, j], first[b, i, j]
                for ch in range(channels):
                    best[ch] = -np.inf
                    where[ch] = -1
                for di in range(kh):
                    r = i * sh + di - top
                    if r < 0 or r >= height:
                        continue
                    for dj in range(kw):
                        c = j * sw + dj - left
                        if c < 0 or c >= width:
                            continue
                        pixel, offset = x[b, r, c], r * width + c
                        for ch in range(channels):
                            if pixel[ch] > best[ch] or where[ch] < 0:
                                best[ch] = pixel[ch]
                                where[ch] = offset
    return y


@jit
def max_pool_backward(dy, first, dx):
    """dx (zeroed by the caller) gets each dy at the input position that won its window."""
    n, oh, ow, channels = dy.shape
    width = dx.shape[2]
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for ch in range(channels):
                    where = first[b, i, j, ch]
                    dx[b, where // width, where % width, ch] += dy[b, i, j, ch]
    return dx
