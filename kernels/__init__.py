"""Compiled kernels for fastnn's hot path, installed as `fastnn.kernels`.

Importing it registers, per backend, the kernel ops tables (NumPy -> Numba CPU kernels, CuPy ->
CUDA kernels), the compiled-epoch engine and the compiled shuffle; `fastnn.extensions` imports
it when numba is there. Kernels compile lazily on first use; `warmup()` compiles them ahead.
"""

from __future__ import annotations

from typing import Any

import numba  # noqa: F401  (fail here, at registration, when numba is missing or broken)

from fastnn import engines, ops, training


def _numba_ops(backend: Any) -> Any:
    from fastnn.kernels.cpu_ops import NumbaOps

    return NumbaOps(backend)


def _cuda_ops(backend: Any) -> Any:
    from fastnn.kernels import cuda_toolchain

    problem = cuda_toolchain.problem()
    if problem is not None:
        cuda_toolchain.warn_once(problem)
        return ops.ArrayOps(backend)
    from fastnn.kernels.cuda_ops import CudaOps

    return CudaOps(backend)


def _cuda_engine(backend: Any) -> Any:
    from fastnn.kernels.cuda_engine import CudaEngine

    return CudaEngine(backend)


def _cuda_graph_engine(backend: Any) -> Any:
    from fastnn.kernels.cuda_engine import CudaGraphEngine

    return CudaGraphEngine(backend)


def _compiled_epochs(backend: Any) -> Any:
    from fastnn.kernels.epoch_engine import CompiledEpochEngine

    return CompiledEpochEngine(backend)


def _permutation(rng: Any, n: int, buffers: Any) -> Any:
    from fastnn.kernels.cpu import permutation

    return permutation(rng, n, buffers)


ops.register("numpy", _numba_ops)
ops.register("cupy", _cuda_ops)
engines.register("numpy", _compiled_epochs)
engines.register("cupy", _cuda_engine)
engines.register("cupy", _cuda_graph_engine)  # tried first: small batches replay graphs
training.register_permutation(_permutation)


def warmup(backend: str = "numpy", dtypes: tuple[str, ...] = ("float32", "float64"), model: Any = None,
           batch_sizes: tuple[int, ...] = (1, 32)) -> float:
    """Compile every kernel of `backend` for `dtypes` now, instead of on first use, and, given a
    compiled `model`, its compiled epochs at `batch_sizes`; returns the seconds it took. The
    machine code is cached on disk where that is writable, so later processes load it."""
    import time

    start = time.perf_counter()
    for dtype in dtypes:
        _warm_ops(backend, dtype)
    if model is not None:
        engine = model.backend.engines[0]
        for batch_size in batch_sizes:
            if hasattr(engine, "compile_now") and engine.supports(model.spec, batch_size):
                engine.compile_now(model.spec, batch_size)
    return time.perf_counter() - start


def _warm_ops(backend: str, dtype: str) -> None:
    import numpy as np

    from fastnn import activations, losses, optimizers
    from fastnn.backend import resolve

    be = resolve(backend, dtype, kernels=True)
    table = be.ops
    x = be.asarray(np.ones((4, 4)))
    W, b = be.asarray(np.ones((4, 4)) * 0.1), be.asarray(np.zeros(4))
    for name in activations.ACTIVATIONS:
        act = activations.get(name)
        y, z = table.dense_forward(x, W, b, act)
        table.dense_backward(y, x, W, y, z, act, True)
    for name, from_logits in (("mse", False), ("binary_crossentropy", True), ("categorical_crossentropy", True)):
        table.loss(losses.get({"name": name, "from_logits": from_logits}), x, x)
    for opt in (optimizers.SGD(0.1), optimizers.SGD(0.1, momentum=0.9), optimizers.Adam()):
        params = [be.asarray(np.ones(3))]
        opt.build(params)
        opt.apply(params, [be.asarray(np.ones(3))], table)
