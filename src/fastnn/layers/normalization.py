"""Normalization over the last axis (features, or an image's channels), as Keras defines it:
`BatchNormalization` (statistics of the batch while training, moving averages at inference)
and `LayerNormalization` (each sample's own statistics). Each backward sits beside its forward."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn.backend import Backend, to_numpy
from fastnn.checks import check_number
from fastnn.layers.core import Layer


def _check(value: Any, what: str, layer: str, low: float, high: float | None = None) -> float:
    value = check_number(value, f"{layer} {what}")
    if value < low or (high is not None and value > high):
        span = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{layer} {what} must be {span}, got {value}")
    return value


class _Normalization(Layer):
    """What both normalizations share: epsilon, the optional gamma (`scale`) and beta
    (`center`) over the last axis, and their parameters."""

    def __init__(self, epsilon: float, center: bool, scale: bool, input_shape: Any) -> None:
        super().__init__(input_shape)
        name = type(self).__name__
        self.epsilon = _check(epsilon, "epsilon", name, 0.0)
        if self.epsilon == 0:
            raise ValueError(f"{name} epsilon must be > 0, got 0")
        self.center, self.scale = bool(center), bool(scale)

    def build(self, input_shape: Any, rng: np.random.Generator, backend: Backend) -> None:
        super().build(input_shape, rng, backend)
        features = self.input_shape[-1]
        self.set_params([backend.asarray(np.ones(features))] * self.scale + [backend.asarray(np.zeros(features))] * self.center)

    def _gamma_beta(self) -> tuple[Any, Any]:
        gamma = self.params[0] if self.scale else None
        beta = self.params[-1] if self.center else None
        return gamma, beta


class BatchNormalization(_Normalization):
    """y = gamma * (x - mean) / sqrt(var + epsilon) + beta over the last axis, with the mean and
    variance of the batch (and of every position, for images) while training and the moving
    averages at inference. After each training step the moving averages follow PyTorch's rule:
    moving = momentum * moving + (1 - momentum) * batch statistic, the variance unbiased
    (Keras's `momentum`: 0.99 is PyTorch's momentum=0.01). `get_weights` lists gamma, beta,
    moving_mean, moving_variance."""

    needs_whole_batch = True  # its statistics are the batch's: never split into row blocks

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, center: bool = True, scale: bool = True,
                 input_shape: Any = None) -> None:
        self.momentum = _check(momentum, "momentum", "BatchNormalization", 0.0, 1.0)
        super().__init__(epsilon, center, scale, input_shape)

    def build(self, input_shape: Any, rng: np.random.Generator, backend: Backend) -> None:
        super().build(input_shape, rng, backend)
        features = self.input_shape[-1]
        self.set_state([backend.asarray(np.zeros(features)), backend.asarray(np.ones(features))])

    def forward(self, x, need_dx=True, logits=False, train=False, ops=None):
        xp = self.backend.xp
        features = self.input_shape[-1]
        rows = xp.reshape(x, (-1, features))
        gamma, beta = self._gamma_beta()
        if not train:
            moving_mean, moving_var = self.state
            inv = 1.0 / xp.sqrt(moving_var + self.epsilon)
            y = (rows - moving_mean) * (inv if gamma is None else gamma * inv)
            y = y if beta is None else y + beta
            return xp.reshape(y, tuple(x.shape)), lambda dy: self._frozen_backward(dy, rows, inv, gamma)
        m = rows.shape[0]
        mean = xp.mean(rows, axis=0)
        centered = rows - mean
        var = xp.mean(centered * centered, axis=0)
        inv = 1.0 / xp.sqrt(var + self.epsilon)
        normalized = centered * inv
        y = normalized if gamma is None else normalized * gamma
        y = y if beta is None else y + beta
        moving_mean, moving_var = self.state
        unbiased = var * (m / max(m - 1, 1))
        self.set_state([self.momentum * moving_mean + (1 - self.momentum) * mean,
                        self.momentum * moving_var + (1 - self.momentum) * unbiased])

        def backprop(dy):
            d = xp.reshape(dy, (-1, features))
            grads = []
            if self.scale:
                grads.append(xp.sum(d * normalized, axis=0))
            if self.center:
                grads.append(xp.sum(d, axis=0))
            self.grads = grads
            if not need_dx:
                return None
            dn = d if gamma is None else d * gamma
            dx = inv * (dn - xp.mean(dn, axis=0) - normalized * xp.mean(dn * normalized, axis=0))
            return xp.reshape(dx, tuple(x.shape))

        return xp.reshape(y, tuple(x.shape)), backprop

    def _frozen_backward(self, dy, rows, inv, gamma):
        """The gradient at inference statistics (a model trained with its statistics frozen)."""
        xp = self.backend.xp
        d = xp.reshape(dy, (-1, self.input_shape[-1]))
        grads = []
        if self.scale:
            grads.append(xp.sum(d * (rows - self.state[0]) * inv, axis=0))
        if self.center:
            grads.append(xp.sum(d, axis=0))
        self.grads = grads
        return xp.reshape(d * (inv if gamma is None else gamma * inv), tuple(dy.shape))

    def onnx_nodes(self, graph, x):
        """Inference: x * scale + shift per feature, from the moving statistics."""
        moving_mean, moving_var = (to_numpy(s) for s in self.state)
        gamma, beta = (None if p is None else to_numpy(p) for p in self._gamma_beta())
        scale = (1.0 if gamma is None else gamma) / np.sqrt(moving_var + self.epsilon)
        shift = (0.0 if beta is None else beta) - moving_mean * scale
        return graph.node("Add", [graph.node("Mul", [x, graph.weight(scale, "bn_scale")]), graph.weight(shift, "bn_shift")])

    def get_config(self) -> dict:
        return {"class": "BatchNormalization", "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "input_shape": None if self.input_shape is None else list(self.input_shape)}

    def __repr__(self) -> str:
        return f"BatchNormalization(momentum={self.momentum}, epsilon={self.epsilon})"


class LayerNormalization(_Normalization):
    """y = gamma * (x - mean) / sqrt(var + epsilon) + beta with each sample's mean and variance
    over its last axis (PyTorch's nn.LayerNorm over the last dimension). `get_weights` lists
    gamma, beta."""

    def __init__(self, epsilon: float = 1e-3, center: bool = True, scale: bool = True, input_shape: Any = None) -> None:
        super().__init__(epsilon, center, scale, input_shape)

    def forward(self, x, need_dx=True, logits=False, train=False, ops=None):
        xp = self.backend.xp
        mean = xp.mean(x, axis=-1, keepdims=True)
        centered = x - mean
        inv = 1.0 / xp.sqrt(xp.mean(centered * centered, axis=-1, keepdims=True) + self.epsilon)
        normalized = centered * inv
        gamma, beta = self._gamma_beta()
        y = normalized if gamma is None else normalized * gamma
        y = y if beta is None else y + beta

        def backprop(dy):
            sums = tuple(range(dy.ndim - 1))
            grads = []
            if self.scale:
                grads.append(xp.sum(dy * normalized, axis=sums))
            if self.center:
                grads.append(xp.sum(dy, axis=sums))
            self.grads = grads
            if not need_dx:
                return None
            dn = dy if gamma is None else dy * gamma
            return inv * (dn - xp.mean(dn, axis=-1, keepdims=True)
                          - normalized * xp.mean(dn * normalized, axis=-1, keepdims=True))

        return y, backprop

    def onnx_nodes(self, graph, x):
        features = self.input_shape[-1]
        gamma = self.params[0] if self.scale else np.ones(features)
        beta = self.params[-1] if self.center else np.zeros(features)
        return graph.node("LayerNormalization", [x, graph.weight(gamma, "ln_gamma"), graph.weight(beta, "ln_beta")],
                          axis=-1, epsilon=self.epsilon)

    def get_config(self) -> dict:
        return {"class": "LayerNormalization", "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "input_shape": None if self.input_shape is None else list(self.input_shape)}

    def __repr__(self) -> str:
        return f"LayerNormalization(epsilon={self.epsilon})"
