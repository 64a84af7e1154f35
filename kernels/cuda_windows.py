"""Numba CUDA kernels for sliding windows over channels-last images, the GPU twins of
`windows.py` (the GEMMs stay in cuBLAS): one thread per output element, grid-stride. col2im
gathers (each input pixel sums the window entries that came from it: no atomics); the max-pool
backward scatters with atomic adds, since windows may overlap. They also run under the CUDA
simulator on NumPy arrays, which is how CI tests them."""

from __future__ import annotations

from numba import cuda

from fastnn.kernels.scalar import like


@cuda.jit
def im2col(x, kh, kw, sh, sw, top, left, oh, ow, fill, out):
    rows, cols = out.shape
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for k in range(start, rows * cols, stride):
        row, col = k // cols, k % cols
        b, p = row // (oh * ow), row % (oh * ow)
        di, rest = col // (kw * channels), col % (kw * channels)
        r, c = (p // ow) * sh + di - top, (p % ow) * sw + rest // channels - left
        if 0 <= r < height and 0 <= c < width:
            out[row, col] = x[b, r, c, rest % channels]
        else:
            out[row, col] = fill


@cuda.jit
def col2im(cols, kh, kw, sh, sw, top, left, oh, ow, dx):
    n, height, width, channels = dx.shape
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for k in range(start, n * height * width * channels, stride):
        ch, t = k % channels, k // channels
        c, t = t % width, t // width
        r, b = t % height, t // height
        total = like(dx[0, 0, 0, 0], 0.0)
        for di in range(kh):
            ii = r + top - di
            if ii < 0 or ii % sh != 0 or ii // sh >= oh:
                continue
            for dj in range(kw):
                jj = c + left - dj
                if jj < 0 or jj % sw != 0 or jj // sw >= ow:
                    continue
                total += cols[(b * oh + ii // sh) * ow + jj // sw, (di * kw + dj) * channels + ch]
        dx[b, r, c, ch] = total


@cuda.jit
def max_pool(x, kh, kw, sh, sw, top, left, oh, ow, y, first):
    n, height, width, channels = x.shape
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for k in range(start, n * oh * ow * channels, stride):
        ch, t = k % channels, k // channels
        j, t = t % ow, t // ow
        i, b = t % oh, t // oh
        best = like(y[0, 0, 0, 0], -1.0)
        where = -1
        for di in range(kh):
            r = i * sh + di - top
            if r < 0 or r >= height:
                continue
            for dj in range(kw):
                c = j * sw + dj - left
                if c < 0 or c >= width:
                    continue
                v = x[b, r, c, ch]
                if where < 0 or v > best:
                    best, where = v, r * width + c
        y[b, i, j, ch] = best
        first[b, i, j, ch] = where


@cuda.jit
def max_pool_backward(dy, first, dx):
    n, oh, ow, channels = dy.shape
    width = dx.shape[2]
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for k in range(start, n * oh * ow * channels, stride):
        ch, t = k % channels, k // channels
        j, t = t % ow, t // ow
        i, b = t % oh, t // oh
        where = first[b, i, j, ch]
        cuda.atomic.add(dx, (b, where // width, where % width, ch), dy[b, i, j, ch])
