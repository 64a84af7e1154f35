"""The GEMM libraries of the NumPy backend (fastnn.kernels.gemm): each multiplies right in every
layout the step uses, the chooser keeps the faster per shape, forcing works, and a missing or
broken MKL falls back to OpenBLAS and says why."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import fastnn
from fastnn.backend import BackendUnavailableError

gemm = pytest.importorskip("fastnn.kernels.gemm", reason="the kernels need numba")

USABLE, WHY_NOT = gemm.libraries()
needs_mkl = pytest.mark.skipif("mkl" not in USABLE, reason=f"MKL: {WHY_NOT.get('mkl')}")
LIBRARIES = [pytest.param(name, id=name, marks=[needs_mkl] if name == "mkl" else []) for name in ("openblas", "mkl")]


def step_products(rng, n, k, m, dtype):
    """The three products of a dense layer's step, as the kernels pass them: x @ W, x.T @ dz,
    dz @ W.T (transposes are views)."""
    x, W, dz = (rng.standard_normal(s).astype(dtype) for s in ((n, k), (k, m), (n, m)))
    return [(x, W), (x.T, dz), (dz, W.T)]


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,k,m", [(1, 1, 1), (1, 7, 3), (9, 1, 4), (33, 17, 1), (1000, 50, 25)])
def test_every_library_multiplies_like_numpy(library, dtype, n, k, m, rng):
    lib = USABLE[library]
    for a, b in step_products(rng, n, k, m, dtype):
        out = np.full((a.shape[0], b.shape[1]), np.nan, dtype)
        assert lib.matmul(a, b, out) is out
        assert_within_gemm_error(out, a, b)


def assert_within_gemm_error(out, a, b):
    """|out - a @ b| within the textbook bound for a sum of k products: k eps (|a| @ |b|)."""
    exact = a.astype(np.float64) @ b.astype(np.float64)
    bound = a.shape[1] * np.finfo(out.dtype).eps * (np.abs(a).astype(np.float64) @ np.abs(b))
    assert np.all(np.abs(out - exact) <= bound), np.max(np.abs(out - exact) - bound)


@needs_mkl
def test_mkl_hands_layouts_it_does_not_take_to_numpy(rng):
    a = rng.standard_normal((8, 6))[:, ::2]  # neither C- nor F-contiguous
    b = rng.standard_normal((3, 4))
    out = np.empty((8, 4))
    np.testing.assert_allclose(USABLE["mkl"].matmul(a, b, out), a @ b, rtol=1e-12)
    mixed = np.empty((8, 4), np.float32)  # float64 operands into a float32 output
    assert_within_gemm_error(USABLE["mkl"].matmul(a, b, mixed), a, b)


class Slowed:
    """OpenBLAS made 2 ms slower per call: a library the chooser must not keep."""

    name = "slowed"

    def __init__(self):
        self.calls = 0

    def matmul(self, a, b, out):
        self.calls += 1
        time.sleep(0.002)
        return np.matmul(a, b, out=out)


@pytest.fixture
def switching_is_free(monkeypatch):
    """Slowed loses by 2 ms a call: less than a switch between libraries is worth."""
    monkeypatch.setattr(gemm, "SWITCH_SECONDS", 0.0)


def test_the_chooser_keeps_the_faster_library_per_shape_and_every_result_is_right(rng, switching_is_free):
    chooser = gemm.Chooser([Slowed(), gemm.OpenBLAS()])
    products = step_products(rng, 4096, 64, 32, np.float32)
    for _ in range(2 * gemm.TRIALS + 2):
        for a, b in products:
            out = np.empty((a.shape[0], b.shape[1]), np.float32)
            np.testing.assert_allclose(chooser.matmul(a, b, out), a @ b, rtol=1e-5, atol=1e-5)
    choices = chooser.choices()
    assert len(choices) == 3  # x @ W, x.T @ dz and dz @ W.T are three shapes
    assert set(choices.values()) == {"openblas"}
    assert "(4096×64)ᵀ·(4096×32) float32" in choices


def test_the_chooser_decides_after_its_trials_and_then_stops_timing(rng, switching_is_free):
    slowed = Slowed()
    chooser = gemm.Chooser([slowed, gemm.OpenBLAS()])
    a, b = step_products(rng, 4096, 64, 32, np.float64)[0]
    out = np.empty((4096, 32))
    for call in range(2 * gemm.TRIALS):
        assert chooser.choices() == {}, f"decided after {call} calls"
        chooser.matmul(a, b, out)
    assert list(chooser.choices().values()) == ["openblas"]
    assert slowed.calls == gemm.TRIALS  # the first TRIALS calls, in a run
    for _ in range(20):
        chooser.matmul(a, b, out)
    assert slowed.calls == gemm.TRIALS


@pytest.mark.parametrize("best_times,kept", [([1.0, 0.9], 0), ([1.0, 0.7], 1), ([0.5, 1.0], 0), ([1.0, 1.0], 0),
                                             ([0.01, 0.001], 0)])  # 10x faster, but saves less than a switch costs
def test_another_library_is_kept_only_when_it_beats_the_first_by_the_margins(best_times, kept):
    assert gemm.winner(best_times) == kept


def test_small_products_go_to_the_first_library_untimed(rng):
    slowed = Slowed()
    chooser = gemm.Chooser([gemm.OpenBLAS(), slowed])
    a, b = step_products(rng, 32, 8, 4, np.float32)[0]
    for _ in range(10):
        chooser.matmul(a, b, np.empty((32, 4), np.float32))
    assert chooser.choices() == {} and slowed.calls == 0


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_forced_library_does_every_product_of_a_model(library):
    with fastnn.use("numpy", gemm=library) as be:
        assert be.gemm == library
        assert be.ops.matmul == USABLE[library].matmul
        model = fastnn.Sequential([fastnn.layers.Dense(8, "relu"), fastnn.layers.Dense(1, "sigmoid")])
        assert model.backend.ops.matmul == USABLE[library].matmul


@needs_mkl
def test_training_gives_the_same_results_whichever_library_multiplies():
    """Big enough that every product goes through the chooser (>= gemm.SMALL multiply-adds)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4096, 64)).astype(np.float32)
    y = (x[:, :1] * x[:, 1:2] > 0).astype(np.float32)
    results = {}
    for mode in ("openblas", "mkl", "auto"):
        with fastnn.use("numpy", gemm=mode):
            model = fastnn.Sequential([fastnn.layers.Dense(256, "relu"), fastnn.layers.Dense(128, "tanh"),
                                       fastnn.layers.Dense(1, "sigmoid")], seed=3)
            model.compile("adam", "binary_crossentropy", metrics=[])
            history = model.fit(x, y, epochs=4, batch_size=2048, shuffle=False, verbose=0)
        results[mode] = history.history["loss"], model.get_weights()
    assert len(gemm.chooser().choices()) >= 5
    for mode in ("mkl", "auto"):
        np.testing.assert_allclose(results[mode][0], results["openblas"][0], rtol=1e-5)
        for w, w_ref in zip(results[mode][1], results["openblas"][1]):
            np.testing.assert_allclose(w, w_ref, rtol=1e-3, atol=1e-5)


def test_a_bad_gemm_mode_is_refused_before_any_work():
    with pytest.raises(ValueError, match="gemm must be one of"):
        fastnn.use("numpy", gemm="blis")
    with pytest.raises(ValueError, match="numpy backend; array_api_strict multiplies with its own"):
        fastnn.use("array_api_strict", gemm="openblas")
    with pytest.raises(ValueError, match="kernels, which are off"):
        fastnn.use("numpy", gemm="openblas", kernels=False)


@pytest.mark.parametrize("path,why", [
    (None, "not installed"),
    ("/nonexistent/libmkl_rt.so.2", "cannot open shared object file"),
    (__file__, "not a usable MKL"),
    (ctypes.util.find_library("c"), "undefined symbol: cblas_sgemm"),
])
def test_a_missing_or_broken_mkl_is_refused_with_the_reason(path, why):
    mkl, problem = gemm.load_mkl(path)
    assert mkl is None
    assert why in problem


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=120)


def test_a_broken_mkl_falls_back_to_openblas_and_fastnn_info_says_why():
    out = run_python("from fastnn.cli import main; main(['info'])", FASTNN_MKL=__file__)
    assert out.returncode == 0, out.stderr
    assert "gemm: openblas" in out.stdout
    assert f"mkl: unavailable: {__file__} is not a usable MKL" in out.stdout
    forced = run_python("import fastnn; fastnn.use('numpy', gemm='mkl')", FASTNN_MKL=__file__)
    assert forced.returncode != 0
    assert "gemm='mkl' cannot run here" in forced.stderr and "not a usable MKL" in forced.stderr
    bad_env = run_python("import fastnn; fastnn.Sequential([fastnn.layers.Dense(1)])", FASTNN_GEMM="fastest")
    assert "got 'fastest' (from FASTNN_GEMM)" in bad_env.stderr


def test_fastnn_gemm_is_a_default_that_the_pure_path_and_other_backends_ignore():
    code = ("import fastnn; assert fastnn.use('numpy', kernels=False).backend.gemm == 'auto'; "
            "assert fastnn.use('array_api_strict').backend.gemm == 'auto'; "
            "assert fastnn.use('numpy').backend.gemm == 'openblas'")
    out = run_python(code, FASTNN_GEMM="openblas")
    assert out.returncode == 0, out.stderr


@needs_mkl
def test_fastnn_info_names_both_libraries_and_the_chooser():
    out = run_python("from fastnn.cli import main; main(['info'])")
    assert "gemm: auto, per shape the faster of openblas, mkl" in out.stdout


def test_gemm_unavailable_is_a_backend_unavailable_error():
    assert issubclass(gemm.GemmUnavailableError, BackendUnavailableError)
