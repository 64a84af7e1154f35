"""Activation functions, each with its derivative right beside it.

`forward(z)` maps pre-activations to outputs; `backward(dy, z, y)` turns the gradient with
respect to the output `y` into the gradient with respect to `z`. All are pure Array API and
numerically stable for any finite input (no overflow in `exp`). These are also the test oracle
for the fused kernels in `fastnn.kernels`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from array_api_compat import array_namespace

from fastnn._registry import lookup
from fastnn.spec import Act


class UnsupportedLayerError(TypeError):
    """A layer or activation that an exporter (ONNX, PyTorch, safetensors) cannot translate."""


class Activation:
    """Base class. `needs_z` says whether `backward` needs the pre-activation (else `y` suffices)."""

    name = "activation"
    code: Act | None = None  # what compiled code calls it (None: only the pure path computes it)
    needs_z = False
    alpha = 0.0  # the slope below zero; LeakyReLU's own
    identity = False  # Linear's: no node in ONNX, no module in PyTorch

    def forward(self, z: Any) -> Any:
        raise NotImplementedError

    def backward(self, dy: Any, z: Any, y: Any) -> Any:
        raise NotImplementedError

    def __call__(self, z: Any) -> Any:
        return self.forward(z)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def get_config(self) -> dict:
        return {"name": self.name}

    def onnx_nodes(self, graph: Any, z: str) -> str:
        """Add this activation's ONNX nodes on tensor `z` to `graph` (fastnn.onnx_export.OnnxGraph);
        returns the output tensor's name."""
        raise UnsupportedLayerError(f"the activation {self!r} has no ONNX export; give its class an onnx_nodes method")

    def torch_module(self) -> Any:
        """The torch.nn module computing this activation (None for linear)."""
        raise UnsupportedLayerError(f"the activation {self!r} has no PyTorch equivalent in fastnn.to_torch")


class Linear(Activation):
    name = "linear"
    code = Act.LINEAR
    identity = True

    def forward(self, z):
        return z

    def backward(self, dy, z, y):
        return dy

    def onnx_nodes(self, graph, z):
        return z

    def torch_module(self):
        return None


def between(z: Any, low: float, high: float) -> Any:
    """z limited to [low, high], NaN kept: minimum and maximum, not clip, whose array-api-compat
    form on CuPy indexes with a boolean mask and so waits for the GPU to count it."""
    xp = array_namespace(z)
    return xp.minimum(xp.maximum(z, low), high)


def stable_sigmoid(z: Any) -> Any:
    """1 / (1 + exp(-z)) without overflow: exp is only ever taken of -|z|."""
    xp = array_namespace(z)
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1 / (1 + e), e / (1 + e))


class Sigmoid(Activation):
    name = "sigmoid"
    code = Act.SIGMOID

    def forward(self, z):
        return stable_sigmoid(z)

    def backward(self, dy, z, y):
        return dy * y * (1 - y)

    def onnx_nodes(self, graph, z):
        return graph.node("Sigmoid", [z])

    def torch_module(self):
        import torch

        return torch.nn.Sigmoid()


class Tanh(Activation):
    name = "tanh"
    code = Act.TANH

    def forward(self, z):
        return array_namespace(z).tanh(z)

    def backward(self, dy, z, y):
        return dy * (1 - y * y)

    def onnx_nodes(self, graph, z):
        return graph.node("Tanh", [z])

    def torch_module(self):
        import torch

        return torch.nn.Tanh()


class ReLU(Activation):
    name = "relu"
    code = Act.RELU

    def forward(self, z):
        return array_namespace(z).maximum(z, 0.0)  # keeps NaN; clip would sync a GPU (see between())

    def backward(self, dy, z, y):
        return array_namespace(dy).where(y > 0, dy, 0.0)

    def onnx_nodes(self, graph, z):
        return graph.node("Relu", [z])

    def torch_module(self):
        import torch

        return torch.nn.ReLU()


class LeakyReLU(Activation):
    """max(z, alpha * z); alpha defaults to PyTorch's 0.01."""

    name = "leaky_relu"
    code = Act.LEAKY_RELU

    def __init__(self, alpha: float = 0.01) -> None:
        if not 0 <= alpha < 1:
            raise ValueError(f"leaky_relu alpha must be in [0, 1), got {alpha}")
        self.alpha = float(alpha)

    def forward(self, z):
        return array_namespace(z).where(z > 0, z, self.alpha * z)

    def backward(self, dy, z, y):
        return array_namespace(dy).where(y > 0, dy, self.alpha * dy)

    def __repr__(self) -> str:
        return f"LeakyReLU(alpha={self.alpha})"

    def get_config(self) -> dict:
        return {"name": self.name, "alpha": self.alpha}

    def onnx_nodes(self, graph, z):
        # max(z, alpha z) for alpha < 1: ONNX Runtime's LeakyRelu has no float64 kernel
        return graph.node("Max", [z, graph.node("Mul", [z, graph.constant(self.alpha, "alpha")])])

    def torch_module(self):
        import torch

        return torch.nn.LeakyReLU(self.alpha)


class Softmax(Activation):
    """Softmax over the last axis, shifted by the row maximum so exp never overflows."""

    name = "softmax"

    def forward(self, z):
        xp = array_namespace(z)
        e = xp.exp(z - xp.max(z, axis=-1, keepdims=True))
        return e / xp.sum(e, axis=-1, keepdims=True)

    def backward(self, dy, z, y):
        xp = array_namespace(dy)
        return y * (dy - xp.sum(dy * y, axis=-1, keepdims=True))

    def onnx_nodes(self, graph, z):
        return graph.node("Softmax", [z], axis=-1)

    def torch_module(self):
        import torch

        return torch.nn.Softmax(dim=-1)


class Swish(Activation):
    """z * sigmoid(z), also known as SiLU."""

    name = "swish"
    code = Act.SWISH
    needs_z = True

    def forward(self, z):
        return z * stable_sigmoid(z)

    def backward(self, dy, z, y):
        s = stable_sigmoid(z)
        return dy * s * (1 + z * (1 - s))

    def onnx_nodes(self, graph, z):
        return graph.node("Mul", [z, graph.node("Sigmoid", [z])])

    def torch_module(self):
        import torch

        return torch.nn.SiLU()


_GELU_C = math.sqrt(2 / math.pi)


class GELU(Activation):
    """GELU, tanh approximation (the Array API has no erf); PyTorch's approximate="tanh".

    The tanh argument uses z clipped to ±10 (where tanh is already ±1 in float64), so the
    cubic term cannot overflow for huge inputs.
    """

    name = "gelu"
    code = Act.GELU
    needs_z = True

    def _tanh(self, z):
        xp = array_namespace(z)
        zc = between(z, -10.0, 10.0)
        return zc, xp.tanh(_GELU_C * (zc + 0.044715 * zc * zc * zc))

    def forward(self, z):
        _, t = self._tanh(z)
        return 0.5 * z * (1 + t)

    def backward(self, dy, z, y):
        zc, t = self._tanh(z)
        return dy * (0.5 * (1 + t) + 0.5 * z * (1 - t * t) * _GELU_C * (1 + 3 * 0.044715 * zc * zc))

    def onnx_nodes(self, graph, z):
        # the same formula as forward, clip included (ONNX's Gelu needs opset 20)
        c, node = graph.constant, graph.node
        zc = node("Clip", [z, c(-10.0, "minus_ten"), c(10.0, "ten")])
        cubic = node("Mul", [node("Mul", [node("Mul", [zc, zc]), zc]), c(0.044715, "gelu_k")])
        t = node("Tanh", [node("Mul", [node("Add", [zc, cubic]), c(_GELU_C, "gelu_c")])])
        return node("Mul", [node("Mul", [z, c(0.5, "half")]), node("Add", [t, c(1.0, "one")])])

    def torch_module(self):
        import torch

        return torch.nn.GELU(approximate="tanh")


class Exponential(Activation):
    """exp(z), Keras's "exponential": the output of a Poisson regression (the rate). z is
    clipped 8 below log(largest float) first, so the output and its gradient stay finite."""

    name = "exponential"
    needs_z = True

    @staticmethod
    def _largest(dtype: Any, xp: Any) -> float:
        return math.log(float(xp.finfo(dtype).max)) - 8.0  # headroom: the gradient dy * y stays finite too

    def forward(self, z):
        xp = array_namespace(z)
        return xp.exp(xp.minimum(z, self._largest(z.dtype, xp)))

    def backward(self, dy, z, y):
        xp = array_namespace(z)
        return dy * (y * xp.astype(z < self._largest(z.dtype, xp), y.dtype))  # flat past the clip

    def onnx_nodes(self, graph, z):
        largest = graph.constant(self._largest(graph.dtype, np), "exp_largest")
        return graph.node("Exp", [graph.node("Min", [z, largest])])


ACTIVATIONS: dict[str, type[Activation]] = {
    cls.name: cls for cls in (Linear, Sigmoid, Tanh, ReLU, LeakyReLU, Softmax, Swish, GELU, Exponential)
}
_ALIASES = {"silu": "swish", "identity": "linear"}


def get(activation: str | dict | Activation | None) -> Activation:
    """An Activation from a name ("relu", "silu"...), a config dict, an instance, or None (linear)."""
    return lookup("activation", "linear" if activation is None else activation, Activation, ACTIVATIONS, _ALIASES)
