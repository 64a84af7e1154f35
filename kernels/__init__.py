"""Compiled kernels for fastnn's hot path, installed as `fastnn.kernels`.

One registry maps a backend to its kernel ops table (NumPy -> Numba CPU kernels, CuPy ->
CUDA kernels); the pure Array-API table in `fastnn.ops` is the fallback and the test oracle.
Kernels compile lazily on first use; `warmup()` compiles them ahead of time.
"""

from __future__ import annotations

from typing import Any


def ops_for(backend: Any) -> Any:
    """The kernel ops table for `backend`, or None where no kernels exist for it."""
    if backend.name == "numpy":
        from fastnn.kernels.cpu_ops import NumbaOps

        return NumbaOps(backend)
    if backend.name == "cupy":
        from fastnn.kernels.cuda_ops import CudaOps

        return CudaOps(backend)
    return None


def warmup(backend: str = "numpy", dtypes: tuple[str, ...] = ("float32", "float64")) -> float:
    """Compile every kernel of `backend` for `dtypes` now, instead of on first use; returns
    the seconds it took (the compiled code is cached on disk where that is writable). The
    small-batch training code (online.py) is generated per network, so it compiles on a
    model's first small-batch fit instead, and is cached on disk too."""
    import time

    import numpy as np

    from fastnn import activations, losses, optimizers
    from fastnn.backend import resolve

    start = time.perf_counter()
    for dtype in dtypes:
        be = resolve(backend, dtype, kernels=True)
        ops = be.ops
        x = be.asarray(np.ones((4, 4)))
        W, b = be.asarray(np.ones((4, 4)) * 0.1), be.asarray(np.zeros(4))
        for name in activations.ACTIVATIONS:
            act = activations.get(name)
            y, z = ops.dense_forward(x, W, b, act)
            ops.dense_backward(y, x, W, y, z, act, True)
        for name, from_logits in (("mse", False), ("binary_crossentropy", True), ("categorical_crossentropy", True)):
            ops.loss(losses.get({"name": name, "from_logits": from_logits}), x, x)
        for opt in (optimizers.SGD(0.1), optimizers.SGD(0.1, momentum=0.9), optimizers.Adam()):
            params = [be.asarray(np.ones(3))]
            opt.build(params)
            opt.apply(params, [be.asarray(np.ones(3))], ops)
    return time.perf_counter() - start
