"""Pooling over images (height, width, channels), as Keras defines it: `MaxPooling2D`,
`AveragePooling2D` (with padding="same", the mean over the window's real pixels only) and
`GlobalAveragePooling2D`. The windows come from the ops table's `im2col`, their gradients go
back through `col2im`."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn.layers.core import Layer, Shape
from fastnn.layers.windows import Window, check_image_shape, check_padding, pair, window


class _Pooling2D(Layer):
    """What both window poolings share: the arguments, the window, the shapes."""

    def __init__(self, pool_size: Any = (2, 2), strides: Any = None, padding: str = "valid",
                 input_shape: Any = None) -> None:
        super().__init__(input_shape)
        name = type(self).__name__
        self.pool_size = pair(pool_size, "pool_size", name)
        self.strides = self.pool_size if strides is None else pair(strides, "strides", name)
        self.padding = check_padding(padding, name)
        self.window: Window | None = None

    def _check_input_shape(self, shape: Shape) -> Shape:
        check_image_shape(shape, type(self).__name__)
        return super()._check_input_shape(shape)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        h, w, c = input_shape
        self.window = window((h, w), self.pool_size, self.strides, self.padding, repr(self))
        return (*self.window.output_hw, c)

    onnx_op = ""  # MaxPool or AveragePool

    def onnx_nodes(self, graph, x):
        top, bottom, left, right = self.window.pads
        attributes = {"count_include_pad": 0} if self.onnx_op == "AveragePool" else {}
        y = graph.node(self.onnx_op, [graph.channels_first(x, 2)], kernel_shape=list(self.pool_size),
                       strides=list(self.strides), pads=[top, left, bottom, right], **attributes)
        return graph.channels_last(y, 2)

    def get_config(self) -> dict:
        return {"class": type(self).__name__, "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding, "input_shape": None if self.input_shape is None else list(self.input_shape)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.pool_size}, strides={self.strides}, padding={self.padding!r})"


class MaxPooling2D(_Pooling2D):
    """The largest value of each window, per channel; its gradient goes to that value (the
    first of equal ones, as PyTorch)."""

    onnx_op = "MaxPool"

    def forward(self, x, need_dx=True, logits=False, train=False, ops=None):
        ops = ops or self.backend.ops
        buffers = self.buffers if train else None
        y, memo = ops.max_pool(x, self.window, buffers)
        return y, lambda dy: ops.max_pool_backward(dy, memo, self.window, buffers) if need_dx else None


class AveragePooling2D(_Pooling2D):
    """The mean of each window, per channel (with padding="same": of its real pixels)."""

    onnx_op = "AveragePool"

    def _windows(self, x: Any, ops: Any, train: bool) -> Any:
        """(n * positions, window size, channels): every window of x."""
        k = self.pool_size[0] * self.pool_size[1]
        cols = ops.im2col(x, self.window, 0.0, self.buffers if train else None)
        return self.backend.xp.reshape(cols, (cols.shape[0], k, self.input_shape[2]))

    def _back(self, dwindows: Any, n: int, ops: Any, train: bool) -> Any:
        xp = self.backend.xp
        return ops.col2im(xp.reshape(dwindows, (dwindows.shape[0], -1)), n, self.window, self.buffers if train else None)

    def build(self, input_shape: Any, rng: np.random.Generator, backend: Any) -> None:
        super().build(input_shape, rng, backend)
        self.set_params([])

    def set_params(self, params: list[Any]) -> None:
        """Also (re)makes the count of real pixels per window position on the layer's backend:
        model.to calls this after moving the layer (outside any traced step)."""
        super().set_params(params)
        if self.window is not None and self.backend is not None:
            self.counts = self.backend.asarray(_real_pixels(self.window).reshape(1, -1, 1))

    def forward(self, x, need_dx=True, logits=False, train=False, ops=None):
        ops, xp, n = ops or self.backend.ops, self.backend.xp, x.shape[0]
        positions, c, counts = self.window.positions, self.output_shape[2], self.counts
        sums = xp.sum(self._windows(x, ops, train), axis=1)
        y = xp.reshape(sums, (n, positions, c)) / counts

        def backprop(dy):
            if not need_dx:
                return None
            share = xp.reshape(xp.reshape(dy, (n, positions, c)) / counts, (n * positions, 1, c))
            k = self.pool_size[0] * self.pool_size[1]
            return self._back(xp.broadcast_to(share, (n * positions, k, c)), n, ops, train)

        return xp.reshape(y, (n, *self.output_shape)), backprop


def _real_pixels(win: Window) -> np.ndarray:
    """How many pixels of each window position lie inside the image (not in the padding)."""
    counts = []
    for size, stride, pad_before, extent, out in zip(win.size, win.strides, win.pads[0::2], win.input_hw,
                                                      win.output_hw):
        starts = np.arange(out) * stride - pad_before
        counts.append(np.minimum(starts + size, extent) - np.maximum(starts, 0))
    return np.outer(*counts).astype(np.float64).ravel()


class GlobalAveragePooling2D(Layer):
    """The mean over height and width: (h, w, c) -> (c,)."""

    def _check_input_shape(self, shape: Shape) -> Shape:
        check_image_shape(shape, "GlobalAveragePooling2D")
        return super()._check_input_shape(shape)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (input_shape[2],)

    def forward(self, x, need_dx=True, logits=False, train=False, ops=None):
        xp = self.backend.xp
        h, w, _ = self.input_shape

        def backprop(dy):
            return xp.broadcast_to(xp.reshape(dy / (h * w), (dy.shape[0], 1, 1, dy.shape[1])), tuple(x.shape))

        return xp.mean(x, axis=(1, 2)), backprop

    def onnx_nodes(self, graph, x):
        return graph.node("ReduceMean", [x], axes=[1, 2], keepdims=0)

    def get_config(self) -> dict:
        return {"class": "GlobalAveragePooling2D", "input_shape": None if self.input_shape is None
                else list(self.input_shape)}

    def __repr__(self) -> str:
        return "GlobalAveragePooling2D()"
