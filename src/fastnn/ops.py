"""The per-operation hot path of a layer-by-layer step, as one table per backend.

`ArrayOps` is the pure Array-API version: the fallback for anything no kernel covers and the
oracle every kernel is tested against. `fastnn.kernels` registers faster tables (Numba on
CPU, CUDA on GPU) that override these methods where they apply and defer to them elsewhere.
"""

from __future__ import annotations

from typing import Any, Callable

import array_api_extra as xpx
from array_api_compat import device as device_of

from fastnn import extensions
from fastnn.activations import Activation
from fastnn.bfloat16 import round_to_bfloat16
from fastnn.layers.windows import Window
from fastnn.losses import Loss


class ArrayOps:
    """Pure Array-API implementations. `buffers` lets a kernel table keep per-layer scratch
    arrays between steps; the pure path ignores it."""

    name = "array_api"
    block_rows: int | None = None  # split larger training batches into row blocks (see Sequential)
    threaded_blocks = False  # its kernels release the GIL: threads may compute row blocks at once

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.xp = backend.xp
        self.bfloat16 = backend.precision == "bfloat16"

    def product(self, a: Any, b: Any) -> Any:
        """a @ b, from bfloat16-rounded operands under precision="bfloat16" (float32 holds
        each product of two bfloat16 numbers exactly, so only the order of the sums may differ
        from a bf16 GEMM's)."""
        if self.bfloat16:
            return round_to_bfloat16(a, self.xp) @ round_to_bfloat16(b, self.xp)
        return a @ b

    def dense_forward(self, x: Any, W: Any, b: Any, act: Activation, buffers: dict | None = None) -> tuple[Any, Any]:
        """(y, z) for y = act(x @ W + b) (b may be None); z is kept only when act's derivative needs it."""
        z = self.product(x, W) if b is None else self.product(x, W) + b
        return act.forward(z), (z if act.needs_z else None)

    def dense_backward(
        self, dy: Any, x: Any, W: Any, y: Any, z: Any, act: Activation, need_dx: bool, buffers: dict | None = None
    ) -> tuple[Any, Any, Any]:
        """(dx, dW, db) from the gradient dy of y = act(x @ W + b); dx is None unless need_dx."""
        dz = act.backward(dy, z, y)
        dW = self.product(self.xp.matrix_transpose(x), dz)
        db = self.xp.sum(dz, axis=0)
        return (self.product(dz, self.xp.matrix_transpose(W)) if need_dx else None), dW, db

    def loss(self, loss: Loss, y_pred: Any, y_true: Any, buffers: dict | None = None,
             weights: Any = None) -> tuple[Any, Any]:
        """(mean loss as a 0-d array, gradient with respect to y_pred); `weights`: a (n, 1)
        column of sample weights, or None."""
        return loss(y_pred, y_true, weights)

    def im2col(self, x: Any, window: Window, fill: float = 0.0, buffers: dict | None = None) -> Any:
        """Every window of `x` (n, H, W, C) as a row: (n * positions, kh * kw * C), in (row,
        column, channel) order — a kernel (kh, kw, C, F) reshaped to (kh * kw * C, F) multiplies
        it. Padding positions hold `fill`."""
        xp, (kh, kw), (sh, sw), (oh, ow) = self.xp, window.size, window.strides, window.output_hw
        if window.padded:
            top, bottom, left, right = window.pads
            x = xpx.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill)
        n, c = x.shape[0], x.shape[3]
        patches = [x[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :] for i in range(kh) for j in range(kw)]
        return xp.reshape(xp.stack(patches, axis=3), (n * oh * ow, kh * kw * c))

    def max_pool(self, x: Any, window: Window, buffers: dict | None = None) -> tuple[Any, Any]:
        """(y, memo): the largest value of each window of x (n, H, W, C), padding excluded, as
        (n, OH, OW, C); `memo` is what max_pool_backward needs (here: each window's argmax)."""
        xp, k = self.xp, window.size[0] * window.size[1]
        c = x.shape[3]
        windows = xp.reshape(self.im2col(x, window, -float("inf")), (-1, k, c))
        y = xp.reshape(xp.max(windows, axis=1), (x.shape[0], *window.output_hw, c))
        return y, xp.argmax(windows, axis=1)

    def max_pool_backward(self, dy: Any, memo: Any, window: Window, buffers: dict | None = None) -> Any:
        """dx: each dy sent to its window's largest input (the first of equal ones, as PyTorch)."""
        xp, k, c = self.xp, window.size[0] * window.size[1], dy.shape[3]
        slots = xp.arange(k, dtype=memo.dtype, device=device_of(memo))
        winner = xp.astype(slots[None, :, None] == memo[:, None, :], dy.dtype)
        dwindows = winner * xp.reshape(dy, (-1, 1, c))
        return self.col2im(xp.reshape(dwindows, (dwindows.shape[0], k * c)), dy.shape[0], window)

    def col2im(self, cols: Any, n: int, window: Window, buffers: dict | None = None) -> Any:
        """im2col's adjoint: each row's values added back where they were taken from; (n, H, W, C)."""
        xp, (kh, kw), (sh, sw), (oh, ow) = self.xp, window.size, window.strides, window.output_hw
        c = cols.shape[1] // (kh * kw)
        parts = xp.reshape(cols, (n, oh, ow, kh * kw, c))
        dx = xp.zeros((n, *window.padded_hw, c), dtype=cols.dtype, device=device_of(cols))
        for i in range(kh):
            for j in range(kw):
                at = (slice(None), slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw), slice(None))
                dx = xpx.at(dx)[at].add(parts[:, :, :, i * kw + j, :])
        if not window.padded:
            return dx
        top, _, left, _ = window.pads
        return dx[:, top:top + window.input_hw[0], left:left + window.input_hw[1], :]


# Table factories per backend name, registered by fastnn.kernels.
_TABLES: dict[str, Callable[[Any], ArrayOps]] = {}


def register(backend_name: str, factory: Callable[[Any], ArrayOps]) -> None:
    """Offer `factory(backend)` as the ops table of a backend (when its kernels are on)."""
    _TABLES[backend_name] = factory


def ops_for(backend: Any) -> ArrayOps:
    """The fastest ops table for `backend`: a registered kernel table when kernels are on."""
    if backend.kernels and extensions.load() and backend.name in _TABLES:
        return _TABLES[backend.name](backend)
    if backend.gemm != "auto":
        why = "FASTNN_KERNELS=0 or kernels=False" if not backend.kernels else extensions.problem()
        raise ValueError(f"gemm={backend.gemm!r} picks the BLAS of fastnn's kernels, which are off here ({why})")
    return ArrayOps(backend)
