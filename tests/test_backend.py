"""The backend selector: default, plain call, context manager, threads, env var, probing."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastnn
from fastnn.backend import cupy_problem


def test_default_is_numpy_float32():
    be = fastnn.backend()
    assert be.name == "numpy" and be.dtype_name == "float32"
    assert be.xp.__name__ == "array_api_compat.numpy"


def test_context_manager_restores_previous():
    with fastnn.use("array_api_strict", dtype="float64") as be:
        assert fastnn.backend() is be
        assert be.name == "array_api_strict" and be.dtype == be.xp.float64
        with fastnn.use("numpy"):
            assert fastnn.backend().name == "numpy"
        assert fastnn.backend().name == "array_api_strict"
    assert fastnn.backend().name == "numpy"


def test_plain_call_sets_backend_and_does_not_leak_into_threads():
    seen = []
    token = fastnn.use("array_api_strict")
    try:
        assert fastnn.backend().name == "array_api_strict"
        thread = threading.Thread(target=lambda: seen.append(fastnn.backend().name))
        thread.start()
        thread.join()
    finally:
        token.__exit__()
    assert seen == ["numpy"]
    assert fastnn.backend().name == "numpy"


def test_env_var_sets_default():
    code = "import fastnn; b = fastnn.backend(); print(b.name, b.kernels)"
    env = {**os.environ, "FASTNN_BACKEND": "array_api_strict", "FASTNN_KERNELS": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["array_api_strict", "False"]


def test_available_backends_lists_usable_ones():
    names = fastnn.available_backends()
    assert "numpy" in names and "array_api_strict" in names
    assert ("cupy" in names) == (cupy_problem() is None)


def test_auto_picks_cupy_only_when_usable():
    expected = "cupy" if "cupy" in fastnn.available_backends() else "numpy"
    with fastnn.use("auto") as be:
        assert be.name == expected


def test_unknown_backend_and_dtype():
    with pytest.raises(ValueError, match="unknown backend 'tensorflow'; choose one of .*'torch', 'jax'"):
        fastnn.use("tensorflow")
    with pytest.raises(ValueError, match="float32' or 'float64"):
        fastnn.use("numpy", dtype="float16")


def test_cupy_error_says_why_and_how_to_fix(monkeypatch):
    if "cupy" in fastnn.available_backends():
        pytest.skip("a working GPU is present: the unavailable-CuPy message cannot be provoked")
    with pytest.raises(fastnn.BackendUnavailableError, match="backend 'cupy' is unavailable") as info:
        fastnn.use("cupy")
    assert isinstance(info.value, RuntimeError)
    assert "fastnn[cuda12]" in str(info.value) or "GPU" in str(info.value)


def test_cupy_missing_package_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    cupy_problem.cache_clear()
    try:
        problem = cupy_problem()
    finally:
        cupy_problem.cache_clear()
    assert "not installed" in problem and 'pip install "fastnn[cuda12]"' in problem


def test_asarray_and_to_numpy_round_trip(backend_name):
    a = fastnn.asarray([[1, 2], [3, 4]])
    xp = fastnn.backend().xp
    assert fastnn.backend().is_native(a) and xp.isdtype(a.dtype, "signed integer")  # int32 on JAX without x64
    f = fastnn.asarray(np.array([[0.5, 1.5]]))
    assert f.dtype == fastnn.backend().dtype
    back = fastnn.to_numpy(f)
    assert isinstance(back, np.ndarray) and back.dtype == np.float32
    np.testing.assert_array_equal(back, [[0.5, 1.5]])
    with fastnn.use("numpy"):  # a foreign array is converted by the explicit asarray
        assert isinstance(fastnn.asarray(f), np.ndarray)


def test_asarray_refuses_non_numeric():
    with pytest.raises(TypeError, match="numeric"):
        fastnn.asarray(np.array(["a", "b"]))


class DLPackOnly:
    """An array from an unknown library that speaks only DLPack."""

    def __init__(self, array):
        self.array = array

    def __dlpack__(self, **kwargs):
        return self.array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()


def test_any_dlpack_producer_comes_in_and_out(backend_name):
    host = np.arange(6, dtype=np.float64).reshape(3, 2)
    x = fastnn.asarray(DLPackOnly(host))
    assert fastnn.backend().is_native(x) and x.dtype == fastnn.backend().dtype
    np.testing.assert_array_equal(fastnn.to_numpy(x), host)
    np.testing.assert_array_equal(fastnn.to_numpy(DLPackOnly(host)), host)
    assert np.shares_memory(fastnn.to_numpy(DLPackOnly(host)), host)  # no copy on the host
    labels = fastnn.asarray(DLPackOnly(np.array([0, 2, 1])))  # integers keep their dtype
    assert fastnn.to_numpy(labels).tolist() == [0, 2, 1]


def test_a_model_trains_on_dlpack_data(backend_name):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 2))
    y = (x[:, 0] > 0).astype(np.float64)
    model = fastnn.Sequential([fastnn.layers.Dense(4, "tanh"), fastnn.layers.Dense(1, "sigmoid")], seed=0)
    model.compile("adam", "binary_crossentropy")
    reference = model.evaluate(x, y)
    assert model.evaluate(DLPackOnly(x), DLPackOnly(y)) == pytest.approx(reference)
