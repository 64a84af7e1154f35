"""The hot-path operations a training step needs, as one table per backend.

`ArrayOps` is the pure Array-API version: the fallback for anything no kernel covers and the
oracle every kernel is tested against. `fastnn.kernels` supplies faster tables (Numba on CPU,
CUDA on GPU) that override these methods where they apply and defer to them elsewhere.
"""

from __future__ import annotations

from typing import Any

from fastnn.activations import Activation
from fastnn.losses import Loss


class ArrayOps:
    """Pure Array-API implementations. `buffers` lets a kernel table keep per-layer scratch
    arrays between steps; the pure path ignores it."""

    name = "array_api"
    block_rows: int | None = None  # split larger training batches into row blocks (see Sequential)

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.xp = backend.xp

    def dense_forward(self, x: Any, W: Any, b: Any, act: Activation, buffers: dict | None = None) -> tuple[Any, Any]:
        """(y, z) for y = act(x @ W + b); z is kept only when act's derivative needs it."""
        z = x @ W + b
        return act.forward(z), (z if act.needs_z else None)

    def dense_backward(
        self, dy: Any, x: Any, W: Any, y: Any, z: Any, act: Activation, need_dx: bool, buffers: dict | None = None
    ) -> tuple[Any, Any, Any]:
        """(dx, dW, db) from the gradient dy of y = act(x @ W + b); dx is None unless need_dx."""
        dz = act.backward(dy, z, y)
        dW = self.xp.matrix_transpose(x) @ dz
        db = self.xp.sum(dz, axis=0)
        return (dz @ self.xp.matrix_transpose(W) if need_dx else None), dW, db

    def train_epoch(self, model: Any, x: Any, y: Any, batch_size: int, order: Any) -> dict | None:
        """Train a whole epoch in compiled code and return its logs, or None: the generic path."""
        return None

    def train_step(self, model: Any, x: Any, y: Any) -> tuple[Any, dict] | None:
        """One optimizer step on a batch in compiled code: (loss, metric values), or None."""
        return None

    def loss(self, loss: Loss, y_pred: Any, y_true: Any, buffers: dict | None = None) -> tuple[Any, Any]:
        """(mean loss as a 0-d array, gradient with respect to y_pred)."""
        return loss(y_pred, y_true)


def ops_for(backend: Any) -> ArrayOps:
    """The fastest ops table for `backend`: a kernel table when kernels are on and one exists."""
    if backend.kernels:
        try:
            from fastnn.kernels import ops_for as kernel_ops_for
        except ImportError:  # numba missing or broken: the pure path still works
            return ArrayOps(backend)
        table = kernel_ops_for(backend)
        if table is not None:
            return table
    return ArrayOps(backend)
