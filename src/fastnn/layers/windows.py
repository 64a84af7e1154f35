"""Sliding windows over images (n, height, width, channels): the geometry a convolution or a
pooling layer computes once at build, and the checks of its arguments. Padding follows Keras:
"valid" uses whole windows only; "same" gives ceil(size / stride) outputs per axis, padding
(total // 2) before and the rest after — TensorFlow's rule, which PyTorch's padding="same"
also follows at stride 1."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

PADDINGS = ("valid", "same")


@dataclass(frozen=True)
class Window:
    """A window of `size` (rows, cols) moved by `strides` over an input of `input_hw`, with
    `pads` (top, bottom, left, right) of padding; `output_hw` positions per axis."""

    size: tuple[int, int]
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]
    input_hw: tuple[int, int]
    output_hw: tuple[int, int]

    @property
    def padded_hw(self) -> tuple[int, int]:
        top, bottom, left, right = self.pads
        return self.input_hw[0] + top + bottom, self.input_hw[1] + left + right

    @property
    def positions(self) -> int:
        return self.output_hw[0] * self.output_hw[1]

    @property
    def padded(self) -> bool:
        return any(self.pads)


def pair(value: Any, what: str, layer: str) -> tuple[int, int]:
    """(a, b) from an int or a pair of positive ints, else a clear error naming the layer."""
    values = (value, value) if isinstance(value, (int, np.integer)) else tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(values) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in values):
        raise ValueError(f"{layer} {what} must be a positive int or a pair of them, got {value!r}")
    return int(values[0]), int(values[1])


def check_padding(padding: Any, layer: str) -> str:
    if padding not in PADDINGS:
        raise ValueError(f"{layer} padding must be 'valid' or 'same', got {padding!r}")
    return padding


def window(input_hw: tuple[int, int], size: tuple[int, int], strides: tuple[int, int], padding: str,
           layer: str) -> Window:
    """The Window of `size` and `strides` with Keras's `padding` over `input_hw`; a kernel
    larger than the (padded) input is an error naming the layer."""
    outputs, pads = [], []
    for axis, (n, k, s) in enumerate(zip(input_hw, size, strides)):
        if padding == "same":
            out = math.ceil(n / s)
            total = max((out - 1) * s + k - n, 0)
            pads += [total // 2, total - total // 2]
        else:
            if k > n:
                raise ValueError(f"{layer}: the window {size[0]}x{size[1]} is larger than the input "
                                 f"{input_hw[0]}x{input_hw[1]} (padding='valid'); use a smaller kernel_size or "
                                 "pool_size, or padding='same'")
            out = (n - k) // s + 1
            pads += [0, 0]
        outputs.append(out)
    return Window(size, strides, (pads[0], pads[1], pads[2], pads[3]), tuple(input_hw), (outputs[0], outputs[1]))


def check_image_shape(shape: tuple[int, ...], layer: str, rank: int = 3) -> None:
    """Samples of `rank` axes, channels last; else an error that says what the layer takes."""
    if len(shape) != rank:
        what = "(height, width, channels)" if rank == 3 else "(steps, channels)"
        raise ValueError(f"{layer} takes samples of shape {what}, channels last, but receives samples of shape "
                         f"{shape}; give the model input_shape={what} (or Reshape first)")
