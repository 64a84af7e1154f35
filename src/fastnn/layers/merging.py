"""Layers that join several tensors into one, for the functional API: `Add` (a residual
connection: `Add()([x, Dense(n)(x)])`) and `Concatenate` (numeric columns beside embedded
categories). Each takes a list of tensors; its backprop returns one gradient per input."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn.backend import Backend
from fastnn.layers.core import Layer, Shape, as_shape


class _Merge(Layer):
    """What both share: a list of inputs, their shapes kept in `input_shapes`."""

    merges = True

    def __init__(self) -> None:
        super().__init__()
        self.input_shapes: list[Shape] | None = None

    def output_shape_for(self, input_shape: Any) -> Shape:
        return self.compute_output_shape([as_shape(s, "input shape") for s in input_shape])

    def build(self, input_shape: Any, rng: np.random.Generator, backend: Backend) -> None:
        self.input_shapes = [as_shape(s, "input shape") for s in input_shape]
        self.output_shape, self.backend = self.compute_output_shape(self.input_shapes), backend
        self.input_shape = self.output_shape  # what summary and input_dim read; the inputs are input_shapes

    def get_config(self) -> dict:
        return {"class": type(self).__name__}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Add(_Merge):
    """The element-wise sum of tensors of one shape; each input's gradient is the output's."""

    def compute_output_shape(self, input_shapes: list[Shape]) -> Shape:
        if any(s != input_shapes[0] for s in input_shapes):
            raise ValueError(f"Add sums tensors of one shape, got samples of shapes {input_shapes}; give the shorter "
                             "branch a Dense layer of the same width")
        return input_shapes[0]

    def forward(self, x, need_dx=True, logits=False, train=False, ops=None):
        total = x[0]
        for other in x[1:]:
            total = total + other
        return total, lambda dy: [dy] * len(x)  # layers never write into their incoming gradient

    def onnx_nodes(self, graph, x):
        total = x[0]
        for other in x[1:]:
            total = graph.node("Add", [total, other])
        return total


class Concatenate(_Merge):
    """Tensors side by side along `axis` of the samples (-1, the last: features or channels);
    axis counts the batch axis as Keras does, so axis=1 is a sample's first axis."""

    def __init__(self, axis: int = -1) -> None:
        super().__init__()
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool) or axis == 0:
            raise ValueError(f"Concatenate axis must be a nonzero int (0 is the batch axis), got {axis!r}")
        self.axis = int(axis)

    def _sample_axis(self, rank: int) -> int:
        axis = self.axis - 1 if self.axis > 0 else rank + self.axis
        if not 0 <= axis < rank:
            raise ValueError(f"Concatenate(axis={self.axis}) does not fit samples of rank {rank}")
        return axis

    def compute_output_shape(self, input_shapes: list[Shape]) -> Shape:
        ranks = {len(s) for s in input_shapes}
        axis = self._sample_axis(min(ranks))
        others = {s[:axis] + s[axis + 1:] for s in input_shapes}
        if len(ranks) > 1 or len(others) > 1:
            raise ValueError(f"Concatenate(axis={self.axis}) joins samples that match except on that axis, got "
                             f"shapes {input_shapes}; Flatten() them first to join flat rows")
        first = input_shapes[0]
        return (*first[:axis], sum(s[axis] for s in input_shapes), *first[axis + 1:])

    def forward(self, x, need_dx=True, logits=False, train=False, ops=None):
        xp, axis = self.backend.xp, 1 + self._sample_axis(len(self.output_shape))
        sizes = [s[axis - 1] for s in self.input_shapes]
        starts = np.cumsum([0, *sizes])

        def backprop(dy):
            index = [slice(None)] * dy.ndim
            parts = []
            for start, stop in zip(starts[:-1], starts[1:]):
                index[axis] = slice(int(start), int(stop))
                parts.append(dy[tuple(index)])
            return parts

        return xp.concat(list(x), axis=axis), backprop

    def onnx_nodes(self, graph, x):
        return graph.node("Concat", list(x), axis=1 + self._sample_axis(len(self.output_shape)))

    def get_config(self) -> dict:
        return {"class": "Concatenate", "axis": self.axis}

    def __repr__(self) -> str:
        return f"Concatenate(axis={self.axis})"
