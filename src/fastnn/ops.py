"""The per-operation hot path of a layer-by-layer step, as one table per backend.

`ArrayOps` is the pure Array-API version: the fallback for anything no kernel covers and the
oracle every kernel is tested against. `fastnn.kernels` registers faster tables (Numba on
CPU, CUDA on GPU) that override these methods where they apply and defer to them elsewhere.
"""

from __future__ import annotations

from typing import Any, Callable

from fastnn import extensions
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
        """(y, z) for y = act(x @ W + b) (b may be None); z is kept only when act's derivative needs it."""
        z = x @ W if b is None else x @ W + b
        return act.forward(z), (z if act.needs_z else None)

    def dense_backward(
        self, dy: Any, x: Any, W: Any, y: Any, z: Any, act: Activation, need_dx: bool, buffers: dict | None = None
    ) -> tuple[Any, Any, Any]:
        """(dx, dW, db) from the gradient dy of y = act(x @ W + b); dx is None unless need_dx."""
        dz = act.backward(dy, z, y)
        dW = self.xp.matrix_transpose(x) @ dz
        db = self.xp.sum(dz, axis=0)
        return (dz @ self.xp.matrix_transpose(W) if need_dx else None), dW, db

    def loss(self, loss: Loss, y_pred: Any, y_true: Any, buffers: dict | None = None,
             weights: Any = None) -> tuple[Any, Any]:
        """(mean loss as a 0-d array, gradient with respect to y_pred); `weights`: a (n, 1)
        column of sample weights, or None."""
        return loss(y_pred, y_true, weights)


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
