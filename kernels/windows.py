"""Numba CPU kernels for sliding windows over channels-last images: `im2col` writes each
output position's window as one row (padding positions get `fill`), `col2im` adds the rows
back onto the pixels. One pass each over the output, serial like every fastnn CPU kernel.
Their pure twins are `fastnn.ops.ArrayOps.im2col` and `col2im`; the tests compare them."""

from __future__ import annotations

from fastnn.kernels.cpu import jit


@jit
def im2col(x, kh, kw, sh, sw, top, left, oh, ow, fill, out):
    """out[(b, i, j), (di, dj, c)] = x[b, i * sh + di - top, j * sw + dj - left, c], or fill."""
    n, height, width, channels = x.shape
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                row = (b * oh + i) * ow + j
                col = 0
                for di in range(kh):
                    r = i * sh + di - top
                    for dj in range(kw):
                        c = j * sw + dj - left
                        if 0 <= r < height and 0 <= c < width:
                            for ch in range(channels):
                                out[row, col + ch] = x[b, r, c, ch]
                        else:
                            for ch in range(channels):
                                out[row, col + ch] = fill
                        col += channels
    return out


@jit
def col2im(cols, kh, kw, sh, sw, top, left, oh, ow, dx):
    """dx (zeroed by the caller) += each row of cols at the pixels im2col took it from."""
    n, height, width, channels = dx.shape
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                row = (b * oh + i) * ow + j
                col = 0
                for di in range(kh):
                    r = i * sh + di - top
                    for dj in range(kw):
                        c = j * sw + dj - left
                        if 0 <= r < height and 0 <= c < width:
                            for ch in range(channels):
                                dx[b, r, c, ch] += cols[row, col + ch]
                        col += channels
    return dx
