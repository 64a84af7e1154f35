"""Numba CPU kernels: fused bias + activation (forward), activation derivative + bias gradient
(backward), fused loss heads and in-place optimizer updates. Every kernel has a pure Array-API
twin in fastnn (activations, losses, optimizers): the tests compare them."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastnn.kernels._config import CACHE
from fastnn.kernels.scalar import act, act_grad, bce_logits

jit = njit(cache=CACHE, nogil=True)
jit_parallel = njit(cache=CACHE, nogil=True, parallel=True)


def _bias_act(z, b, y, code, alpha):
    """z += b; y = act(z) (y may be z itself when the derivative needs only y)."""
    n, m = z.shape
    for i in prange(n):
        for j in range(m):
            v = z[i, j] + b[j]
            z[i, j] = v
            y[i, j] = act(v, code, alpha)


def _act_grad_bias(g, y, z, code, alpha, dz, db, chunks):
    """dz = act'(z) * g and db = column sums of dz, in one pass over rows split into `chunks`
    parts (each summing into its own row of partial bias gradients); dz may be g itself."""
    n, m = g.shape
    partial = np.zeros((chunks, m), dtype=db.dtype)
    step = (n + chunks - 1) // chunks
    for c in prange(chunks):
        for i in range(c * step, min(n, (c + 1) * step)):
            for j in range(m):
                v = act_grad(g[i, j], y[i, j], z[i, j], code, alpha)
                dz[i, j] = v
                partial[c, j] += v
    db[:] = 0
    for c in range(chunks):
        for j in range(m):
            db[j] += partial[c, j]


# each compiled twice: serial for small arrays, parallel (prange splits the rows) for large
bias_act, bias_act_parallel = jit(_bias_act), jit_parallel(_bias_act)
act_grad_bias, act_grad_bias_parallel = jit(_act_grad_bias), jit_parallel(_act_grad_bias)


@jit
def sigmoid_bce_logits(z, t, grad):
    """Mean binary cross-entropy on logits z and its gradient (sigmoid(z) - t) / size."""
    n, m = z.shape
    scale = 1 / (n * m)
    total = 0.0
    for i in range(n):
        for j in range(m):
            loss, g = bce_logits(z[i, j], t[i, j])
            total += loss
            grad[i, j] = g * scale
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
        vi = beta_2 * v[i] + (1 - beta_2) * (gi * gi)
        m[i] = mi
        v[i] = vi
        p[i] -= step * (mi / (np.sqrt(vi) / root_bc2 + eps))
