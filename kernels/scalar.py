"""Scalar activation math shared by the CPU (numba.njit) and GPU (numba.cuda) kernels.

`register_jitable` compiles these for whichever target calls them, so the formulas exist once.
They mirror `fastnn.activations`, which is their test oracle.
"""

from __future__ import annotations

import math

from numba.extending import overload, register_jitable

GELU_C = math.sqrt(2 / math.pi)


def like(v, c):
    """The constant c in v's float type. Numba types `1 + v` as float64 for a float32 v (NumPy
    would keep float32), so float32 math written with literals ran in float64, with a convert
    at each end: 4 ns of the 48 ns an online SGD step of the 2-3-1 network took."""
    return type(v)(c)


@overload(like, strict=False)
def _like(v, c):
    kind = v  # the numba type of v, called as a cast in compiled code

    def impl(v, c):
        return kind(c)

    return impl

# (No builtin min/max below: inside register_jitable they fail to compile for CUDA.)


@register_jitable
def clip10(v):
    """v clipped to [-10, 10]: where GELU's tanh is already ±1, so the cube cannot overflow."""
    return 10.0 if v > 10 else (-10.0 if v < -10 else v)


@register_jitable
def sigmoid(v):
    """1 / (1 + exp(-v)) without overflow: exp only ever sees -|v|."""
    e = math.exp(-abs(v))
    one = like(v, 1)
    return (one if v >= 0 else e) / (one + e)  # one division, not one per branch: vectorises


@register_jitable
def act(v, code, alpha):
    """activation(v) for an activation code (see _config.ACT_CODES)."""
    if code == 0:
        return v
    if code == 1:
        return v if not v <= 0 else like(v, 0)  # as clip(v, min=0): NaN stays NaN, -inf gives 0
    if code == 2:
        return v if v > 0 else v * alpha
    if code == 3:
        return sigmoid(v)
    if code == 4:
        return math.tanh(v)
    if code == 5:
        return v * sigmoid(v)
    c = clip10(v)
    return 0.5 * v * (1 + math.tanh(GELU_C * (c + 0.044715 * c * c * c)))


@register_jitable
def act_grad(g, y, z, code, alpha):
    """d loss / d z from g = d loss / d y, where y = activation(z)."""
    if code == 0:
        return g
    if code == 1:
        return g if y > 0 else like(g, 0)  # a constant, not g - g: one step less on the online chain
    if code == 2:
        return g if y > 0 else g * alpha
    one = like(y, 1)
    if code == 3:
        return g * (y * (one - y))  # y (1 - y) off the chain through g
    if code == 4:
        return g * (one - y * y)
    if code == 5:
        s = sigmoid(z)
        return g * s * (one + z * (one - s))
    c = clip10(z)
    t = math.tanh(GELU_C * (c + 0.044715 * c * c * c))
    return g * (0.5 * (1 + t) + 0.5 * z * (1 - t * t) * GELU_C * (1 + 3 * 0.044715 * c * c))


@register_jitable
def bce_logits(v, target):
    """(loss, d loss / d v) of binary cross-entropy on one logit: exact and overflow-free."""
    e = math.exp(-abs(v))
    one = like(v, 1)
    s = (one if v >= 0 else e) / (one + e)
    return (v if v > 0 else v - v) - v * target + math.log1p(e), s - target


@register_jitable
def loss_element(v, target, code):
    """(loss, d loss / d v) for one element: squared error on a prediction v (code 0, MSE) or
    binary cross-entropy on a logit v (code 1, BCE_LOGITS in _config)."""
    if code == 1:
        return bce_logits(v, target)
    diff = v - target
    return diff * diff, diff + diff


@register_jitable
def softmax_cce_row(z, t, grad, i, scale):
    """Row i of softmax + categorical cross-entropy on logits: grad[i] = (softmax(z[i]) - t[i])
    * scale; returns the row's loss (shifted by the row maximum: exp never overflows)."""
    m = z.shape[1]
    top = z[i, 0]
    for j in range(1, m):
        if z[i, j] > top:
            top = z[i, j]
    s = 0.0
    for j in range(m):
        e = math.exp(z[i, j] - top)
        grad[i, j] = e
        s += e
    log_s = math.log(s)
    loss = 0.0
    for j in range(m):
        loss -= t[i, j] * (z[i, j] - top - log_s)
        grad[i, j] = (grad[i, j] / s - t[i, j]) * scale
    return loss


@register_jitable
def sgd_step(p, g, b, lr, momentum, nesterov):
    """(new parameter, new momentum buffer) for one element: torch.optim.SGD with dampening 0.
    Scalars in and out, so it inlines (a version taking whole arrays cost 14 ns an element)."""
    if momentum == 0:
        return p - lr * g, b
    b = momentum * b + g
    return p - lr * (g + momentum * b if nesterov else b), b


@register_jitable
def adam_step(p, g, m, v, beta_1, beta_2, step, root_bc2, eps):
    """(new parameter, m, v) for one element: torch.optim.Adam (step = lr / bias_correction1)."""
    one = like(g, 1)
    m = beta_1 * m + (one - beta_1) * g
    v = beta_2 * v + (one - beta_2) * (g * g)
    return p - step * (m / (math.sqrt(v) / root_bc2 + eps)), m, v
