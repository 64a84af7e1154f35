"""Layers. A layer's `forward(x)` returns its output and a `backprop(dy) -> dx` closure that
also stores the parameter gradients (thinc's pattern): the derivative sits beside the forward.

Weights are batch-first: `Dense` computes `act(x @ W + b)` with W of shape (in, out).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from fastnn import activations, initializers
from fastnn.backend import Backend

Backprop = Callable[[Any], Any]


class Layer:
    """Base class: `build` creates parameters, `forward` runs the layer."""

    activation: activations.Activation = activations.Linear()

    def __init__(self) -> None:
        self.params: list[Any] = []
        self.grads: list[Any] = []
        self.input_dim: int | None = None
        self.output_dim: int | None = None
        self.backend: Backend | None = None
        self.buffers: dict = {}  # scratch arrays a kernel table may keep between steps

    def build(self, input_dim: int, rng: np.random.Generator, backend: Backend) -> None:
        self.input_dim, self.output_dim, self.backend = input_dim, input_dim, backend

    def forward(self, x: Any, need_dx: bool = True, logits: bool = False, train: bool = False,
                ops: Any = None) -> tuple[Any, Backprop]:
        """Output for `x` and the closure mapping d loss/d output to d loss/d x. With
        `logits=True` the activation is skipped (the loss applies it, fused). With `train=True`
        the output may live in a scratch buffer that the next training step overwrites. `ops`:
        the table to compute with (default: the backend's)."""
        raise NotImplementedError

    def set_params(self, params: list[Any]) -> None:
        self.params = list(params)
        self.buffers.clear()

    def get_config(self) -> dict:
        raise NotImplementedError


class Dense(Layer):
    """Fully connected layer: y = activation(x @ W + b)."""

    def __init__(
        self,
        units: int,
        activation: str | activations.Activation | None = None,
        kernel_initializer: str | dict | initializers.Initializer = "glorot_uniform",
        bias_initializer: str | dict | initializers.Initializer = "zeros",
        input_dim: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units < 1:
            raise ValueError(f"Dense units must be a positive integer, got {units!r}")
        if input_dim is not None and (not isinstance(input_dim, (int, np.integer)) or input_dim < 1):
            raise ValueError(f"Dense input_dim must be a positive integer, got {input_dim!r}")
        self.units = int(units)
        self.activation = activations.get(activation)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.input_dim = None if input_dim is None else int(input_dim)

    @property
    def W(self) -> Any:
        return self.params[0]

    @property
    def b(self) -> Any:
        return self.params[1]

    def build(self, input_dim: int, rng: np.random.Generator, backend: Backend) -> None:
        if self.input_dim is not None and self.input_dim != input_dim:
            raise ValueError(f"Dense({self.units}) was declared with input_dim={self.input_dim} "
                             f"but receives {input_dim} features")
        self.input_dim, self.output_dim, self.backend = input_dim, self.units, backend
        W = self.kernel_initializer((input_dim, self.units), rng)
        b = self.bias_initializer((self.units,), rng)
        self.set_params([backend.asarray(W), backend.asarray(b)])

    def forward(self, x, need_dx=True, logits=False, train=False, ops=None):
        ops, act = ops or self.backend.ops, activations.Linear() if logits else self.activation
        W, b = self.params
        buffers = self.buffers if train else None
        y, z = ops.dense_forward(x, W, b, act, buffers)

        def backprop(dy):
            dx, dW, db = ops.dense_backward(dy, x, W, y, z, act, need_dx, buffers)
            self.grads = [dW, db]
            return dx

        return y, backprop

    def get_config(self) -> dict:
        return {
            "class": "Dense",
            "units": self.units,
            "activation": self.activation.get_config(),
            "kernel_initializer": self.kernel_initializer.get_config(),
            "bias_initializer": self.bias_initializer.get_config(),
            "input_dim": self.input_dim,
        }

    def __repr__(self) -> str:
        return f"Dense({self.units}, activation={self.activation.name!r})"


class Activation(Layer):
    """An activation as a layer of its own: `Activation("softmax")`."""

    def __init__(self, activation: str | activations.Activation) -> None:
        super().__init__()
        self.activation = activations.get(activation)

    def forward(self, x, need_dx=True, logits=False, train=False, ops=None):
        if logits:
            return x, lambda dy: dy
        act = self.activation
        y = act.forward(x)
        return y, lambda dy: act.backward(dy, x, y)

    def get_config(self) -> dict:
        return {"class": "Activation", "activation": self.activation.get_config()}

    def __repr__(self) -> str:
        return f"Activation({self.activation.name!r})"


LAYERS: dict[str, type[Layer]] = {"Dense": Dense, "Activation": Activation}


def from_config(config: dict) -> Layer:
    """A layer from `get_config()` output."""
    config = dict(config)
    cls = LAYERS.get(config.pop("class", None))
    if cls is None:
        raise ValueError(f"unknown layer config {config!r}; known classes: {', '.join(LAYERS)}")
    return cls(**config)
