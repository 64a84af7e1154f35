"""The scalar math of every kernel, written once: activations and their derivatives, the loss
heads, the optimizer updates. `register_jitable` compiles them for whichever target calls
them — the CPU kernels, the generated epochs and the CUDA kernels. Their pure Array-API twins
(fastnn.activations, losses, optimizers) are the test oracle.
"""

from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.extending import overload, register_jitable

from fastnn.spec import Act, LossCode

GELU_C = math.sqrt(2 / math.pi)


def like(v, c):
    """The constant c in v's float type. Numba types `1 + v` as float64 for a float32 v (NumPy
    would keep float32), so float32 math written with literals ran in float64, with a convert
    at each end (docs/kernels.md#like)."""
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


def is_float32(v):
    """Whether v is a float32 (a compile-time constant in compiled code)."""
    return isinstance(v, np.float32)


@overload(is_float32, strict=False)
def _is_float32(v):
    answer = v == types.float32
    return lambda v: answer


# tanh(x) = x P(x^2) / Q(x^2) on [-TANH_CLAMP, TANH_CLAMP], Eigen's float32 approximation (and
# XLA's): multiply-adds and one division, which LLVM vectorises, where numba's tanh and exp are
# scalar library calls (no SVML). At most 3.3e-7 (5.5 ulp) from tanh in float64, as the tests
# check (docs/kernels.md#float32-tanh).
TANH_P = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
          1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)
TANH_Q = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)
TANH_CLAMP = 7.90531110763549805
TANH_ONE = 9.0  # from here tanh rounds to 1 in float32


@register_jitable
def tanh_float32(v):
    """tanh(v) for a float32 v by the rational approximation; NaN stays NaN, |v| >= 9 gives +-1."""
    x = like(v, TANH_CLAMP) if v > TANH_CLAMP else (like(v, -TANH_CLAMP) if v < -TANH_CLAMP else v)
    y = x * x
    y2, P, Q = y * y, TANH_P, TANH_Q
    # Estrin's scheme: the longest chain is 3 multiply-adds after y2, where Horner's has 6 (the
    # online SGD chain waits on it)
    p = ((like(v, P[0]) * y2 + (like(v, P[1]) * y + like(v, P[2]))) * (y2 * y2)
         + ((like(v, P[3]) * y + like(v, P[4])) * y2 + (like(v, P[5]) * y + like(v, P[6]))))
    q = (like(v, Q[0]) * y + like(v, Q[1])) * y2 + (like(v, Q[2]) * y + like(v, Q[3]))
    t = x * p / q
    one = like(v, 1)
    return t if not abs(v) >= TANH_ONE else (one if v > 0 else -one)


@register_jitable
def tanh(v):
    """tanh(v): the vectorisable rational form in float32, the library's in float64."""
    if is_float32(v):
        return tanh_float32(v)
    return math.tanh(v)


@register_jitable
def sigmoid(v):
    """1 / (1 + exp(-v)) without overflow: in float32 as 0.5 tanh(v / 2) + 0.5 (the rational
    tanh), in float64 with exp only ever seeing -|v|."""
    half, one = like(v, 0.5), like(v, 1)
    if is_float32(v):
        return half * tanh_float32(half * v) + half
    e = math.exp(-abs(v))
    return (one if v >= 0 else e) / (one + e)  # one division, not one per branch: vectorises


@register_jitable
def act(v, code, alpha):
    """activation(v) for an activation code (fastnn.spec.Act)."""
    if code == Act.LINEAR:
        return v
    if code == Act.RELU:
        return v if not v <= 0 else like(v, 0)  # as clip(v, min=0): NaN stays NaN, -inf gives 0
    if code == Act.LEAKY_RELU:
        return v if v > 0 else v * alpha
    if code == Act.SIGMOID:
        return sigmoid(v)
    if code == Act.TANH:
        return tanh(v)
    if code == Act.SWISH:
        return v * sigmoid(v)
    c = clip10(v)  # Act.GELU
    return 0.5 * v * (1 + tanh(GELU_C * (c + 0.044715 * c * c * c)))


@register_jitable
def act_grad(g, y, z, code, alpha):
    """d loss / d z from g = d loss / d y, where y = activation(z)."""
    if code == Act.LINEAR:
        return g
    if code == Act.RELU:
        return g if y > 0 else like(g, 0)  # a constant, not g - g: one step less on the online chain
    if code == Act.LEAKY_RELU:
        return g if y > 0 else g * alpha
    one = like(y, 1)
    if code == Act.SIGMOID:
        return g * (y * (one - y))  # y (1 - y) off the chain through g
    if code == Act.TANH:
        return g * (one - y * y)
    if code == Act.SWISH:
        s = sigmoid(z)
        return g * s * (one + z * (one - s))
    c = clip10(z)  # Act.GELU
    t = tanh(GELU_C * (c + 0.044715 * c * c * c))
    return g * (0.5 * (1 + t) + 0.5 * z * (1 - t * t) * GELU_C * (1 + 3 * 0.044715 * c * c))


@register_jitable
def bce_from_exp(v, target, e, log1p_e):
    """(loss, d loss / d v) of binary cross-entropy on one logit v, given e = exp(-|v|) and
    log1p(e): max(v, 0) - v t + log(1 + exp(-|v|)) and sigmoid(v) - t, exact and overflow-free."""
    one = like(v, 1)
    s = (one if v >= 0 else e) / (one + e)  # one division, not one per branch: vectorises
    return (v if v > 0 else v - v) - v * target + log1p_e, s - target


@register_jitable
def bce_logits(v, target):
    """(loss, d loss / d v) of binary cross-entropy on one logit."""
    e = math.exp(-abs(v))
    return bce_from_exp(v, target, e, math.log1p(e))


@register_jitable
def loss_element(v, target, code):
    """(loss, d loss / d v) for one element: squared error on a prediction v (LossCode.MSE) or
    binary cross-entropy on a logit v (LossCode.BCE_LOGITS)."""
    if code == LossCode.BCE_LOGITS:
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
def descend(p, g, lr):
    """Plain SGD on one element."""
    return p - lr * g


@register_jitable
def sgd_step(p, g, b, lr, momentum, nesterov):
    """(new parameter, new momentum buffer) for one element: torch.optim.SGD with dampening 0.
    Scalars in and out, so that it inlines into every loop that calls it."""
    if momentum == 0:
        return descend(p, g, lr), b
    b = momentum * b + g
    return p - lr * (g + momentum * b if nesterov else b), b


@register_jitable
def adam_step_sizes(lr, beta_1, beta_2, t):
    """(lr / bias_correction1, sqrt(bias_correction2)) after t steps, for adam_step."""
    return lr / (1 - beta_1**t), math.sqrt(1 - beta_2**t)


@register_jitable
def adam_step(p, g, m, v, beta_1, beta_2, step, root_bc2, eps):
    """(new parameter, m, v) for one element: torch.optim.Adam (step = lr / bias_correction1)."""
    one = like(g, 1)
    m = beta_1 * m + (one - beta_1) * g
    v = beta_2 * v + (one - beta_2) * (g * g)
    return p - step * (m / (math.sqrt(v) / root_bc2 + eps)), m, v
