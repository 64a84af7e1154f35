"""The pure Array-API twin of each CUDA kernel of `cuda.py`: the same arguments (no launch
grid), the same outputs written in place. They are the oracle the kernels are tested against,
and what a test device runs in their place to drive the GPU engine's own code on the CPU."""

from __future__ import annotations

import functools
from typing import Any, Callable

from array_api_compat import array_namespace

from fastnn import activations
from fastnn.activations import stable_sigmoid
from fastnn.kernels import cuda
from fastnn.losses import BinaryCrossentropy, CategoricalCrossentropy, MeanSquaredError
from fastnn.spec import Act


def activation(code: int, alpha: float) -> activations.Activation:
    """The Activation object a kernel's (code, alpha) stands for."""
    if code == Act.LEAKY_RELU:
        return activations.LeakyReLU(float(alpha))
    return next(cls() for cls in activations.ACTIVATIONS.values() if cls.code == code)


def bias_act(z, b, y, alpha, code):
    z[...] = z + b
    y[...] = activation(code, alpha).forward(z)


def act_grad_bias(g, y, z, alpha, dz, db, code):
    xp = array_namespace(g)
    dz[...] = activation(code, alpha).backward(g, z, y)
    db[...] = db + xp.sum(dz, axis=0)


def _loss(loss: Any) -> Callable:
    def twin(z, t, grad, total):
        value, gradient = loss(z, t)
        grad[...] = gradient
        total[0] = total[0] + array_namespace(z).astype(value, total.dtype)

    return twin


def binary_hits(out, t, logits, values, slot):
    xp = array_namespace(out)
    p = stable_sigmoid(out) if logits else out
    share = xp.mean(xp.astype((p > 0.5) == (t > 0.5), values.dtype))
    values[slot] = values[slot] + share


def categorical_hits(out, t, values, slot):
    xp = array_namespace(out)
    share = xp.mean(xp.astype(xp.argmax(out, axis=-1) == xp.argmax(t, axis=-1), values.dtype))
    values[slot] = values[slot] + share


def record_batch(values, totals, rows, batch_losses, counter):
    xp = array_namespace(values)
    totals[...] = totals + rows * values
    # a one-hot write, not batch_losses[counter[0]]: indexing by a device value reads it on the host
    hit = xp.arange(batch_losses.shape[0], dtype=counter.dtype, device=batch_losses.device) == counter[0]
    batch_losses[...] = xp.where(hit, values[0], batch_losses)
    counter[...] = counter + 1


def sgd_update(p, g, buf, lr, momentum, nesterov):
    if momentum == 0:
        p[...] = p - lr * g
        return
    buf[...] = momentum * buf + g
    p[...] = p - lr * (g + momentum * buf if nesterov else buf)


def _adam(p, g, m, v, beta_1, beta_2, step, root_bc2, eps):
    xp = array_namespace(p)
    m[...] = beta_1 * m + (1 - beta_1) * g
    v[...] = beta_2 * v + (1 - beta_2) * (g * g)
    p[...] = p - step * (m / (xp.sqrt(v) / root_bc2 + eps))


def adam_update(p, g, m, v, beta_1, beta_2, step, root_bc2, eps):
    _adam(p, g, m, v, beta_1, beta_2, step, root_bc2, eps)


def adam_hyper(steps, hyper, lr, beta_1, beta_2):
    xp = array_namespace(steps)
    steps[...] = steps + 1
    t = xp.astype(steps[0], hyper.dtype)
    hyper[0] = lr / (1 - beta_1 ** t)
    hyper[1] = xp.sqrt(1 - beta_2 ** t)


def adam_update_device(p, g, m, v, beta_1, beta_2, hyper, eps):
    xp = array_namespace(p)
    _adam(p, g, m, v, beta_1, beta_2, xp.astype(hyper[0], p.dtype), xp.astype(hyper[1], p.dtype), eps)


TWINS: dict[Any, Callable] = {
    cuda.mse_loss: _loss(MeanSquaredError()),
    cuda.sigmoid_bce_logits: _loss(BinaryCrossentropy(from_logits=True)),
    cuda.softmax_cce_logits: _loss(CategoricalCrossentropy(from_logits=True)),
    cuda.binary_hits: binary_hits,
    cuda.categorical_hits: categorical_hits,
    cuda.record_batch: record_batch,
    cuda.sgd_update: sgd_update,
    cuda.adam_update: adam_update,
    cuda.adam_hyper: adam_hyper,
    cuda.adam_update_device: adam_update_device,
}


def twin_of(kernel: Any) -> Callable:
    """The pure twin of a kernel of cuda.py, for the fixed kernels and the per-activation ones."""
    if kernel in TWINS:
        return TWINS[kernel]
    for code in Act:
        kernels = cuda.dense_kernels(int(code))
        if kernel is kernels.bias_act:
            return functools.partial(bias_act, code=int(code))
        if kernel is kernels.act_grad_bias:
            return functools.partial(act_grad_bias, code=int(code))
    raise KeyError(f"{kernel} has no pure twin")
