"""The GPU path's edges, on any machine: a missing CUDA toolchain means the pure CuPy path and
one warning, `matmul_precision` is checked, and `fastnn gpucheck` without a GPU says so and
fails."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import warnings

import array_api_compat.numpy as np_xp
import numpy as np
import pytest

import fastnn
from fastnn import engines, ops
from fastnn.backend import Backend, cupy_problem
from fastnn.kernels import cuda_toolchain
from fastnn.layers import Dense

NO_NVVM = "Numba cannot find NVVM to compile CUDA kernels (made unavailable by this test)"


def fake_cupy() -> Backend:
    """A backend named cupy over NumPy's namespace: CuPy itself cannot allocate without a GPU,
    and the selection of tables and engines only looks at the name and the toolchain."""
    return Backend("cupy", np_xp, "cpu", np_xp.float32)


def test_missing_nvvm_means_the_pure_path_and_one_warning(monkeypatch):
    monkeypatch.setattr(cuda_toolchain, "problem", lambda: NO_NVVM)
    cuda_toolchain.warn_once.cache_clear()
    be = fake_cupy()
    with pytest.warns(RuntimeWarning, match="CUDA kernels are off.*NVVM") as caught:
        table = ops.ops_for(be)
        again = ops.ops_for(be)
    assert len(caught) == 1
    assert type(table) is ops.ArrayOps and type(again) is ops.ArrayOps
    be = dataclasses.replace(be, ops=table)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        available = engines.for_backend(be)
    assert [e.name for e in available] == ["cuda-graph", "cuda-fused", "layers"]
    model = fastnn.Sequential([Dense(8, "relu", input_dim=2), Dense(1, "sigmoid")], seed=0)
    model.compile("sgd", "binary_crossentropy", ["accuracy"])
    engine = engines.select(available, model.spec, 16)
    assert engine.name == "layers"  # the fused engines have no device without the toolchain
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 2)).astype(np.float32)
    y = (x[:, :1] > 0).astype(np.float32)
    xd, yd = model.prepare(x, y)
    model.optimizer.build(model.params)
    losses = [engine.run_epoch(model.spec, model.train_state(), xd, yd, 16)["loss"] for _ in range(20)]
    assert losses[-1] < losses[0]


def test_toolchain_problem_names_its_fix_or_none():
    problem = cuda_toolchain.problem()
    assert problem is None or "fastnn[cuda13]" in problem or "driver" in problem


@pytest.mark.parametrize("name", ["numpy", "array_api_strict"])
def test_matmul_precision_is_a_cupy_option(name):
    with pytest.raises(ValueError, match="matmul_precision='tf32' sets CuPy's float32 products"):
        fastnn.use(name, matmul_precision="tf32")
    with pytest.raises(ValueError, match="matmul_precision must be one of"):
        fastnn.use(name, matmul_precision="fast")
    with fastnn.use(name, matmul_precision="highest") as be:
        assert be.matmul_precision == "highest"


def test_gpucheck_without_a_gpu_says_so_and_fails(tmp_path):
    if cupy_problem() is None:
        pytest.skip("this machine has a GPU: gpucheck runs for real there")
    done = subprocess.run([sys.executable, "-m", "fastnn", "gpucheck", "--out", str(tmp_path / "gc")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "no usable NVIDIA GPU here" in done.stderr
    assert not (tmp_path / "gc").exists()  # nothing written
