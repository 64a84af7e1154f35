"""`Embedding(input_dim, output_dim)`: integer ids in [0, input_dim) to rows of a trained
(input_dim, output_dim) table, as Keras's and PyTorch's nn.Embedding."""

from __future__ import annotations

from typing import Any

import numpy as np
from array_api_compat import device as device_of

from fastnn import initializers
from fastnn.backend import Backend
from fastnn.layers.core import Layer, Shape


class Embedding(Layer):
    """Samples of ids (any shape, e.g. (steps,) or (1,)) -> the same shape plus output_dim.
    The model's data check hands ids over as floats of its dtype (exact up to 2**24 in float32);
    an id that is not a whole number in [0, input_dim) is an error naming it. The gradient adds
    each row's share to the rows of the table it used (repeated ids add up)."""

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer: Any = None,
                 input_shape: Any = None) -> None:
        super().__init__(input_shape)
        for what, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Embedding {what} must be a positive integer, got {value!r}")
        self.vocabulary, self.units = int(input_dim), int(output_dim)
        self.embeddings_initializer = initializers.get(embeddings_initializer or "uniform")  # Keras's: U(-0.05, 0.05)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*input_shape, self.units)

    def build(self, input_shape: Any, rng: np.random.Generator, backend: Backend) -> None:
        super().build(input_shape, rng, backend)
        self.set_params([backend.asarray(self.embeddings_initializer((self.vocabulary, self.units), rng))])

    def _ids(self, x: Any) -> Any:
        xp = self.backend.xp
        flat = xp.reshape(x, (-1,))
        bad = xp.logical_not((flat >= 0) & (flat < self.vocabulary) & (flat == xp.floor(flat)))
        if bool(xp.any(bad)):
            first = float(flat[xp.argmax(xp.astype(bad, xp.int32))])
            raise ValueError(f"Embedding({self.vocabulary}, {self.units}) got the id {first:g}: ids must be whole "
                             f"numbers in [0, {self.vocabulary}); map unknown categories to an id of their own")
        return xp.astype(flat, xp.int32)  # int32: every backend has it (JAX without x64 has no int64)

    def forward(self, x, need_dx=True, logits=False, train=False, ops=None):
        xp, table = self.backend.xp, self.params[0]
        ids = self._ids(x)
        y = xp.reshape(xp.take(table, ids, axis=0), (x.shape[0], *self.output_shape))

        def backprop(dy):
            rows = xp.reshape(dy, (-1, self.units))
            vocabulary = xp.arange(self.vocabulary, dtype=ids.dtype, device=device_of(ids))
            one_hot = xp.astype(ids[:, None] == vocabulary[None, :], rows.dtype)  # repeated ids add up
            self.grads = [xp.matrix_transpose(one_hot) @ rows]
            return None  # ids have no gradient

        return y, backprop

    def onnx_nodes(self, graph, x):
        from onnx import TensorProto

        ids = graph.node("Cast", [x], to=TensorProto.INT64)  # the model's input is float, as fit sees it
        return graph.node("Gather", [graph.weight(self.params[0], "embeddings"), ids], axis=0)

    def get_config(self) -> dict:
        return {"class": "Embedding", "input_dim": self.vocabulary, "output_dim": self.units,
                "embeddings_initializer": self.embeddings_initializer.get_config(),
                "input_shape": None if self.input_shape is None else list(self.input_shape)}

    def __repr__(self) -> str:
        return f"Embedding({self.vocabulary}, {self.units})"
