"""Convolutions, channels last, as Keras defines them: `Conv2D` over (height, width, channels)
and `Conv1D` over (steps, channels), kernels stored (kh, kw, in, out) and (k, in, out).

A convolution is a Dense layer applied to every window: the ops table's `im2col` lays each
window out as a row, the Dense kernels (GEMM fused with bias and activation) do the rest, and
`col2im` sends the rows' gradients back to the pixels they came from.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn import activations, initializers, regularizers
from fastnn.backend import Backend, to_numpy
from fastnn.layers.core import Layer, Shape
from fastnn.layers.windows import Window, check_image_shape, check_padding, pair, window


class Conv2D(Layer):
    """`filters` kernels of `kernel_size` moved by `strides` over (height, width, channels)
    images, with Keras's `padding` ("valid" or "same"); y = activation(conv(x, kernel) + bias)."""

    spatial_rank = 2

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 activation: str | activations.Activation | None = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, input_shape: Any = None) -> None:
        super().__init__(input_shape)
        name = type(self).__name__
        if not isinstance(filters, (int, np.integer)) or isinstance(filters, bool) or filters < 1:
            raise ValueError(f"{name} filters must be a positive integer, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size, self.strides = self._pair(kernel_size, "kernel_size"), self._pair(strides, "strides")
        self.padding = check_padding(padding, name)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer) if use_bias else None
        self.window: Window | None = None

    def _pair(self, value: Any, what: str) -> tuple[int, int]:
        return pair(value, what, type(self).__name__)

    # -- shapes ----------------------------------------------------------------------------

    def _image_shape(self, shape: Shape) -> Shape:
        """The (height, width, channels) the 2-D machinery sees for an input sample."""
        return shape

    def _check_input_shape(self, shape: Shape) -> Shape:
        check_image_shape(shape, type(self).__name__, rank=self.spatial_rank + 1)
        return super()._check_input_shape(shape)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        h, w, _ = self._image_shape(input_shape)
        self.window = window((h, w), self.kernel_size, self.strides, self.padding, repr(self))
        return (*self.window.output_hw, self.filters)

    @property
    def kernel_shape(self) -> Shape:
        return (*self.kernel_size, self._image_shape(self.input_shape)[2], self.filters)

    def build(self, input_shape: Any, rng: np.random.Generator, backend: Backend) -> None:
        super().build(input_shape, rng, backend)
        kernel = backend.asarray(self.kernel_initializer(self.kernel_shape, rng))
        params = [kernel]
        if self.use_bias:
            params.append(backend.asarray(self.bias_initializer((self.filters,), rng)))
        self.set_params(params)

    @property
    def regularized(self) -> bool:
        return self.kernel_regularizer is not None or self.bias_regularizer is not None

    def penalty(self) -> Any:
        total = 0.0
        for reg, p in ((self.kernel_regularizer, self.params[0]), (self.bias_regularizer, self._bias())):
            if reg is not None:
                total = total + reg(p)
        return total

    def _bias(self) -> Any:
        return self.params[1] if self.use_bias else None

    # -- the computation -------------------------------------------------------------------

    def forward(self, x, need_dx=True, logits=False, train=False, ops=None):
        ops, act = ops or self.backend.ops, activations.Linear() if logits else self.activation
        xp, n, win = self.backend.xp, x.shape[0], self.window
        kernel, bias = self.params[0], self._bias()
        buffers = self.buffers if train else None
        images = xp.reshape(x, (n, *self._image_shape(self.input_shape)))
        cols = ops.im2col(images, win, 0.0, buffers)
        matrix = xp.reshape(kernel, (-1, self.filters))
        y, z = ops.dense_forward(cols, matrix, bias, act, buffers)

        def backprop(dy):
            rows = xp.reshape(dy, (n * win.positions, self.filters))
            dcols, dW, db = ops.dense_backward(rows, cols, matrix, y, z, act, need_dx, buffers)
            dW = xp.reshape(dW, tuple(kernel.shape))
            if self.kernel_regularizer is not None:
                dW = dW + self.kernel_regularizer.gradient(kernel)
            if self.bias_regularizer is not None:
                db = db + self.bias_regularizer.gradient(bias)
            self.grads = [dW, db] if self.use_bias else [dW]
            if not need_dx:
                return None
            return xp.reshape(ops.col2im(dcols, n, win, buffers), (n, *self.input_shape))

        return xp.reshape(y, (n, *self.output_shape)), backprop

    # -- exchange --------------------------------------------------------------------------

    def onnx_nodes(self, graph, x):
        rank = self.spatial_rank
        kernel = to_numpy(self.params[0])
        weight = np.transpose(kernel, (rank + 1, rank, *range(rank)))  # ONNX's (out, in, k...)
        top, bottom, left, right = self.window.pads
        pads = [left, right] if rank == 1 else [top, left, bottom, right]
        inputs = [graph.channels_first(x, rank), graph.weight(weight, "kernel")]
        if self.use_bias:
            inputs.append(graph.weight(self.params[1], "bias"))
        z = graph.node("Conv", inputs, kernel_shape=list(self._kernel_arg()), strides=list(self._strides_arg()),
                       pads=pads)
        return self.activation.onnx_nodes(graph, graph.channels_last(z, rank))

    # -- description -----------------------------------------------------------------------

    def get_config(self) -> dict:
        config = {"class": type(self).__name__, "filters": self.filters, "kernel_size": list(self._kernel_arg()),
                  "strides": list(self._strides_arg()), "padding": self.padding,
                  "activation": self.activation.get_config(), "use_bias": self.use_bias,
                  "kernel_initializer": self.kernel_initializer.get_config(),
                  "bias_initializer": self.bias_initializer.get_config(),
                  "input_shape": None if self.input_shape is None else list(self.input_shape)}
        for key in ("kernel_regularizer", "bias_regularizer"):
            if getattr(self, key) is not None:
                config[key] = getattr(self, key).get_config()
        return config

    def _kernel_arg(self) -> tuple[int, ...]:
        return self.kernel_size

    def _strides_arg(self) -> tuple[int, ...]:
        return self.strides

    def __repr__(self) -> str:
        size = "x".join(map(str, self._kernel_arg()))
        return f"{type(self).__name__}({self.filters}, {size}, strides={self._strides_arg()}, padding={self.padding!r})"


class Conv1D(Conv2D):
    """`filters` kernels of `kernel_size` steps moved by `strides` over (steps, channels)
    sequences, Keras's `padding`; the kernel is stored (kernel_size, in, out). It runs as a
    Conv2D over images one row high."""

    spatial_rank = 1

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 activation: str | activations.Activation | None = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, input_shape: Any = None) -> None:
        super().__init__(filters, (1, self._length(kernel_size, "kernel_size")), (1, self._length(strides, "strides")),
                         padding, activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                         bias_regularizer, input_shape)

    @staticmethod
    def _length(value: Any, what: str) -> int:
        if isinstance(value, (tuple, list)) and len(value) == 1:
            value = value[0]
        return pair(value, what, "Conv1D")[0]

    def _image_shape(self, shape):
        return (1, *shape)

    def compute_output_shape(self, input_shape):
        return super().compute_output_shape(input_shape)[1:]

    @property
    def kernel_shape(self) -> Shape:
        return (self.kernel_size[1], self.input_shape[1], self.filters)

    def _kernel_arg(self):
        return (self.kernel_size[1],)

    def _strides_arg(self):
        return (self.strides[1],)
