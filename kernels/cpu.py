"""Numba CPU kernels: fused bias + activation (forward), activation derivative + bias gradient
(backward), fused loss heads and in-place optimizer updates. Every kernel has a pure Array-API
twin in fastnn (activations, losses, optimizers): the tests compare them."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastnn.kernels._config import CACHE

jit = njit(fastmath=False, cache=CACHE, nogil=True)
jit_parallel = njit(fastmath=False, cache=CACHE, nogil=True, parallel=True)
GELU_C = np.sqrt(2 / np.pi)


@njit(inline="always", cache=CACHE)
def _sigmoid(v):
    e = np.exp(-abs(v))
    return 1 / (1 + e) if v >= 0 else e / (1 + e)


@njit(inline="always", cache=CACHE)
def _act(v, code, alpha):
    """activation(v) for an activation code (see _config.ACT_CODES)."""
    if code == 0:
        return v
    if code == 1:
        return v if v > 0 else v - v  # v - v: a zero of v's dtype (a literal 0 would promote float32 to float64)
    if code == 2:
        return v if v > 0 else v * alpha
    if code == 3:
        return _sigmoid(v)
    if code == 4:
        return np.tanh(v)
    if code == 5:
        return v * _sigmoid(v)
    c = min(max(v, -10), 10)
    return 0.5 * v * (1 + np.tanh(GELU_C * (c + 0.044715 * c * c * c)))


@njit(inline="always", cache=CACHE)
def _act_grad(g, y, z, code, alpha):
    """d loss / d z from g = d loss / d y, with y = activation(z)."""
    if code == 0:
        return g
    if code == 1:
        return g if y > 0 else g - g
    if code == 2:
        return g if y > 0 else g * alpha
    if code == 3:
        return g * y * (1 - y)
    if code == 4:
        return g * (1 - y * y)
    if code == 5:
        s = _sigmoid(z)
        return g * s * (1 + z * (1 - s))
    c = min(max(z, -10), 10)
    t = np.tanh(GELU_C * (c + 0.044715 * c * c * c))
    return g * (0.5 * (1 + t) + 0.5 * z * (1 - t * t) * GELU_C * (1 + 3 * 0.044715 * c * c))


def _bias_act(z, b, y, code, alpha):
    """z += b; y = act(z) (y may be z itself when the derivative needs only y)."""
    n, m = z.shape
    for i in range(n):
        for j in range(m):
            v = z[i, j] + b[j]
            z[i, j] = v
            y[i, j] = _act(v, code, alpha)


def _bias_act_rows(z, b, y, code, alpha):
    n, m = z.shape
    for i in prange(n):
        for j in range(m):
            v = z[i, j] + b[j]
            z[i, j] = v
            y[i, j] = _act(v, code, alpha)


bias_act = jit(_bias_act)
bias_act_parallel = jit_parallel(_bias_act_rows)


@jit
def act_grad_bias(g, y, z, code, alpha, dz, db):
    """dz = act'(z) * g and db = column sums of dz, in one pass (dz may be g itself)."""
    n, m = g.shape
    db[:] = 0
    for i in range(n):
        for j in range(m):
            v = _act_grad(g[i, j], y[i, j], z[i, j], code, alpha)
            dz[i, j] = v
            db[j] += v


@jit_parallel
def act_grad_bias_parallel(g, y, z, code, alpha, dz, db, chunks):
    """act_grad_bias with rows split into `chunks` parts, each summing into its own row of
    partial bias gradients, added up at the end."""
    n, m = g.shape
    partial = np.zeros((chunks, m), dtype=db.dtype)
    step = (n + chunks - 1) // chunks
    for c in prange(chunks):
        for i in range(c * step, min(n, (c + 1) * step)):
            for j in range(m):
                v = _act_grad(g[i, j], y[i, j], z[i, j], code, alpha)
                dz[i, j] = v
                partial[c, j] += v
    db[:] = 0
    for c in range(chunks):
        for j in range(m):
            db[j] += partial[c, j]


@jit
def sigmoid_bce_logits(z, t, grad):
    """Mean binary cross-entropy on logits z and its gradient (sigmoid(z) - t) / size."""
    n, m = z.shape
    scale = 1 / (n * m)
    total = 0.0
    for i in range(n):
        for j in range(m):
            v, target = z[i, j], t[i, j]
            e = np.exp(-abs(v))
            total += max(v, 0) - v * target + np.log1p(e)
            s = 1 / (1 + e) if v >= 0 else e / (1 + e)
            grad[i, j] = (s - target) * scale
    return total * scale


@jit
def softmax_cce_logits(z, t, grad):
    """Mean categorical cross-entropy on logits z (rows) and its gradient (softmax - t) / n."""
    n, m = z.shape
    scale = 1 / n
    total = 0.0
    for i in range(n):
        top = z[i, 0]
        for j in range(1, m):
            top = max(top, z[i, j])
        s = 0.0
        for j in range(m):
            e = np.exp(z[i, j] - top)
            grad[i, j] = e
            s += e
        log_s = np.log(s)
        for j in range(m):
            total -= t[i, j] * (z[i, j] - top - log_s)
            grad[i, j] = (grad[i, j] / s - t[i, j]) * scale
    return total * scale


@jit
def mse(p, t, grad):
    """Mean squared error and its gradient 2 (p - t) / size."""
    n, m = p.shape
    scale = 1 / (n * m)
    total = 0.0
    for i in range(n):
        for j in range(m):
            d = p[i, j] - t[i, j]
            total += d * d
            grad[i, j] = 2 * d * scale
    return total * scale


@jit
def sgd_update(p, g, buf, lr, momentum, nesterov):
    """torch.optim.SGD (dampening 0) on flat arrays, in place; buf unused when momentum == 0."""
    for i in range(p.size):
        if momentum == 0:
            p[i] -= lr * g[i]
        else:
            b = momentum * buf[i] + g[i]
            buf[i] = b
            p[i] -= lr * (g[i] + momentum * b if nesterov else b)


@jit
def adam_update(p, g, m, v, beta_1, beta_2, step, root_bc2, eps):
    """torch.optim.Adam on flat arrays, in place (step = lr / bias_correction1)."""
    for i in range(p.size):
        gi = g[i]
        mi = beta_1 * m[i] + (1 - beta_1) * gi
        vi = beta_2 * v[i] + (1 - beta_2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= step * (mi / (np.sqrt(vi) / root_bc2 + eps))
