"""Layers that only change a sample's shape: `Flatten` and `Reshape` (row-major, channels last,
as NumPy and Keras lay the values out)."""

from __future__ import annotations

import math
from typing import Any

from fastnn.layers.core import Layer, Shape


class Flatten(Layer):
    """(h, w, c) or any sample shape -> (h * w * c,), in row-major order."""

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (math.prod(input_shape),)

    def forward(self, x, need_dx=True, logits=False, train=False, ops=None):
        xp, n = self.backend.xp, x.shape[0]
        return xp.reshape(x, (n, self.output_shape[0])), lambda dy: xp.reshape(dy, (n, *self.input_shape))

    def onnx_nodes(self, graph, x):
        return graph.node("Flatten", [x], axis=1)

    def get_config(self) -> dict:
        return {"class": "Flatten", "input_shape": None if self.input_shape is None else list(self.input_shape)}

    def __repr__(self) -> str:
        return "Flatten()"


class Reshape(Layer):
    """Samples reshaped to `target_shape` (one entry may be -1: whatever the rest leaves)."""

    def __init__(self, target_shape: Any, input_shape: Any = None) -> None:
        super().__init__(input_shape)
        dims = tuple(target_shape) if isinstance(target_shape, (tuple, list)) else (target_shape,)
        if not dims or not all(isinstance(d, int) and not isinstance(d, bool) and (d > 0 or d == -1) for d in dims) \
                or dims.count(-1) > 1:
            raise ValueError(f"Reshape target_shape must be positive ints with at most one -1, got {target_shape!r}")
        self.target_shape = dims

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        size, known = math.prod(input_shape), math.prod(d for d in self.target_shape if d != -1)
        shape = tuple(size // known if d == -1 else d for d in self.target_shape)
        if math.prod(shape) != size:
            raise ValueError(f"{self!r} cannot take samples of shape {input_shape} ({size} values) to "
                             f"{self.target_shape}")
        return shape

    def forward(self, x, need_dx=True, logits=False, train=False, ops=None):
        xp, n = self.backend.xp, x.shape[0]
        return xp.reshape(x, (n, *self.output_shape)), lambda dy: xp.reshape(dy, (n, *self.input_shape))

    def onnx_nodes(self, graph, x):
        return graph.node("Reshape", [x, graph.integers([0, *self.output_shape], "shape")])  # 0: keep the batch

    def get_config(self) -> dict:
        return {"class": "Reshape", "target_shape": list(self.target_shape),
                "input_shape": None if self.input_shape is None else list(self.input_shape)}

    def __repr__(self) -> str:
        return f"Reshape({self.target_shape})"
