"""Numba CPU kernels: fused bias + activation (forward), activation derivative + bias gradient
(backward), fused loss heads and in-place optimizer updates. Every kernel has a pure Array-API
twin in fastnn (activations, losses, optimizers): the tests compare them.

Kernels are specialised per activation, write the forward pass in place and the backward
pass to its own array, and run serially, so numba's threading layer never starts
(docs/kernels.md#per-activation, #in-place, #serial).
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import numpy as np
from numba import njit

from fastnn.kernels.cache import CACHE
from fastnn.kernels.scalar import (act, act_grad, adam_step, bce_from_exp, descend, like, loss_element, sgd_step,
                                   softmax_cce_row)

jit = njit(cache=CACHE, nogil=True, error_model="numpy", fastmath={"contract"})  # x / 0 gives inf, as in NumPy; no check to branch on


class DenseKernels(NamedTuple):
    bias_act_inplace: Callable  # (z, b, alpha): z = act(z + b)
    bias_act_keep: Callable  # (z, b, y, alpha): z += b, y = act(z)
    act_grad_bias: Callable  # (g, saved, alpha, dz, db): dz = act'(.) * g, db = column sums of dz


# The dense kernels walk a C-contiguous (rows, width) array as flat spans of GROUP_ROWS rows,
# against the bias repeated GROUP_ROWS times: a span's length is a multiple of 32, so LLVM's
# vector loop covers all of it (docs/kernels.md#flat-spans).
GROUP_ROWS = 32


@jit
def tile_rows(b, rows):
    """b repeated `rows` times, flat: the bias of `rows` consecutive rows of a flat array."""
    m = b.shape[0]
    out = np.empty(rows * m, b.dtype)
    for e in range(rows * m):
        out[e] = b[e % m]
    return out


@jit
def fold_rows(acc, m, db):
    """db = sum of the GROUP_ROWS width-m rows of the flat span acc."""
    for j in range(m):
        total = acc[j]
        for r in range(1, acc.shape[0] // m):
            total += acc[r * m + j]
        db[j] = total


@functools.cache
def dense_kernels(code: int) -> DenseKernels:
    """The dense kernels compiled for one activation code (fastnn.spec.Act; a compile-time
    constant of each). Each loops over whole spans, then over the last rows % GROUP_ROWS rows
    (one loop for both did not vectorise; docs/kernels.md#flat-spans)."""
    return DenseKernels(_bias_act_inplace(code), _bias_act_keep(code), _act_grad_bias(code))


def _bias_act_inplace(code: int) -> Callable:
    @jit
    def bias_act_inplace(z, b, alpha):
        bias, zf = tile_rows(b, GROUP_ROWS), z.reshape(-1)
        span, groups = bias.shape[0], z.shape[0] // GROUP_ROWS
        for c in range(groups):
            base = c * span
            for e in range(span):
                zf[base + e] = act(zf[base + e] + bias[e], code, alpha)
        done = groups * span
        for e in range(zf.shape[0] - done):
            zf[done + e] = act(zf[done + e] + bias[e], code, alpha)

    return bias_act_inplace


def _bias_act_keep(code: int) -> Callable:
    @jit
    def bias_act_keep(z, b, y, alpha):
        bias, zf, yf = tile_rows(b, GROUP_ROWS), z.reshape(-1), y.reshape(-1)
        span, groups = bias.shape[0], z.shape[0] // GROUP_ROWS
        for c in range(groups):
            base = c * span
            for e in range(span):
                v = zf[base + e] + bias[e]
                zf[base + e] = v
                yf[base + e] = act(v, code, alpha)
        done = groups * span
        for e in range(zf.shape[0] - done):
            v = zf[done + e] + bias[e]
            zf[done + e] = v
            yf[done + e] = act(v, code, alpha)

    return bias_act_keep


def _act_grad_bias(code: int) -> Callable:
    """`saved` is y for activations whose derivative needs y, z for those that need z."""

    @jit
    def act_grad_bias(g, saved, alpha, dz, db):
        gf, sf, dzf = g.reshape(-1), saved.reshape(-1), dz.reshape(-1)
        span, groups = GROUP_ROWS * g.shape[1], g.shape[0] // GROUP_ROWS
        acc = np.zeros(span, dtype=db.dtype)  # column sums per row of a span, folded at the end
        for c in range(groups):
            base = c * span
            for e in range(span):
                v = act_grad(gf[base + e], sf[base + e], sf[base + e], code, alpha)
                dzf[base + e] = v
                acc[e] += v
        done = groups * span
        for e in range(gf.shape[0] - done):
            v = act_grad(gf[done + e], sf[done + e], sf[done + e], code, alpha)
            dzf[done + e] = v
            acc[e] += v
        fold_rows(acc, g.shape[1], db)

    return act_grad_bias


@jit
def elementwise_loss(z, t, grad, code):
    """Mean of loss_element over every element (MSE on predictions or BCE on logits, by code)
    and its gradient, in one pass."""
    n, m = z.shape
    scale = 1 / (n * m)
    total = 0.0
    for i in range(n):
        for j in range(m):
            loss, g = loss_element(z[i, j], t[i, j], code)
            total += loss
            grad[i, j] = g * scale
    return total * scale


@jit  # no fastmath: reassociation could fold (1 + e) - 1 into e
def bce_logits_from_exp(z, t, e, log_u, grad):
    """Mean binary cross-entropy on logits z and its gradient (sigmoid(z) - t) / size, given
    e = exp(-|z|) and log_u = log(1 + e) from NumPy's SIMD ufuncs (numba has no SVML; NumPy's
    log1p is scalar). log1p(e) = log(u) * e / (u - 1) with u = 1 + e is accurate to a few ulps
    (Goldberg 1991). All arrays flat and no call in the loop, so it vectorises
    (docs/kernels.md#bce-head)."""
    scale, one = like(z[0], 1 / z.size), like(z[0], 1)
    total = 0.0
    for i in range(z.size):
        v, ev = z[i], e[i]
        u = one + ev
        log1p_e = ev if u == one else log_u[i] * (ev / (u - one))
        loss, g = bce_from_exp(v, t[i], ev, log1p_e)
        total += loss
        grad[i] = g * scale
    return total / z.size


@jit
def softmax_cce_logits(z, t, grad):
    """Mean categorical cross-entropy on logits z (rows) and its gradient (softmax - t) / n."""
    n = z.shape[0]
    total = 0.0
    for i in range(n):
        total += softmax_cce_row(z, t, grad, i, 1 / n)
    return total / n


@jit
def outer_product(g, w, out):
    """out = outer(g, w): a one-row weight gradient or a one-unit layer's input gradient, where
    BLAS is slow at k = 1 (docs/kernels.md#outer-products)."""
    for i in range(g.shape[0]):
        gi = g[i]
        for j in range(w.shape[0]):
            out[i, j] = gi * w[j]


@jit
def sgd_update(p, g, buf, lr, momentum, nesterov):
    """torch.optim.SGD (dampening 0) on flat arrays, in place; buf unused when momentum == 0
    (then it may be g itself: its own loop never writes it, and vectorises;
    docs/kernels.md#sgd-update)."""
    if momentum == 0:
        for i in range(p.size):
            p[i] = descend(p[i], g[i], lr)
        return
    for i in range(p.size):
        p[i], buf[i] = sgd_step(p[i], g[i], buf[i], lr, momentum, nesterov)


@jit
def adam_update(p, g, m, v, beta_1, beta_2, step, root_bc2, eps):
    """torch.optim.Adam on flat arrays, in place (step = lr / bias_correction1)."""
    for i in range(p.size):
        p[i], m[i], v[i] = adam_step(p[i], g[i], m[i], v[i], beta_1, beta_2, step, root_bc2, eps)


@jit
def fisher_yates(u, order):
    """order = a permutation of range(len(u)) from uniform draws u in [0, 1): Fisher-Yates,
    swapping position i with floor(u[i] * (i + 1)) (bias below 2**-53 * len(u): float64 draws)."""
    n = u.shape[0]
    for i in range(n):
        order[i] = i
    for i in range(n - 1, 0, -1):
        j = min(int(u[i] * (i + 1)), i)
        swap = order[i]
        order[i] = order[j]
        order[j] = swap
    return order


def shuffle_buffers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(draws, order) for `permutation` to reuse epoch after epoch."""
    return np.empty(n), np.empty(n, np.int64)


def permutation(rng: np.random.Generator, n: int, buffers: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """A random order of range(n) from `rng`, about twice as fast as rng.permutation, into
    `buffers` (from shuffle_buffers) when given (docs/kernels.md#shuffling)."""
    draws, order = buffers if buffers is not None else shuffle_buffers(n)
    rng.random(out=draws)
    return fisher_yates(draws, order)
