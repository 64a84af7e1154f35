"""precision="bfloat16": the pure rounding equals a bit-level conversion on every backend, the
Numba conversion and MKL's bf16 GEMM equal the pure twin, a bf16 fit stays within 2 % of the
float32 fit for 50 steps on digits, weights stay float32, and clear errors where it cannot run."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from conftest import backend_params, to_np
import importlib
from fastnn.backend import BackendUnavailableError, import_namespace
from fastnn.bfloat16 import round_to_bfloat16
from fastnn.layers import Conv2D, Dense, Flatten

kernels = pytest.importorskip("fastnn.kernels.bfloat16", reason="needs numba")
BACKENDS = list(backend_params(("numpy", "array_api_strict", "torch")))


def bit_rounding(a: np.ndarray) -> np.ndarray:
    """The reference: float32 bits rounded to the upper 16, ties to even (NaN kept apart)."""
    u = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = (((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32)
    return np.where(np.isnan(a), a, rounded)


def awkward_values() -> np.ndarray:
    rng = np.random.default_rng(0)
    values = [rng.standard_normal(2000) * 10.0 ** rng.integers(-30, 30, 2000),
              rng.standard_normal(200) * 1e-39,  # float32 subnormals
              np.array([0.0, -0.0, np.inf, -np.inf, 3.3e38, -3.39e38, 3.4e38, 1.0, 2.0 ** -126, 2.0 ** -133])]
    ties = np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, 2 - 2 ** -9, 2 - 2 ** -24])  # ties to even
    values += [ties, -ties, np.nextafter(np.float32(2.0 ** np.arange(-20, 20)), np.float32(0))]
    return np.concatenate(values).astype(np.float32)


@pytest.mark.parametrize("name", BACKENDS)
def test_the_pure_rounding_equals_a_bit_level_conversion(name):
    xp, _ = import_namespace(name, None, "float32")
    x = awkward_values()
    got = to_np(round_to_bfloat16(xp.asarray(x), xp))
    np.testing.assert_array_equal(got, bit_rounding(x))
    nan = to_np(round_to_bfloat16(xp.asarray(np.array([np.nan], np.float32)), xp))
    assert np.isnan(nan).all()


def test_the_numba_conversion_equals_the_pure_twin():
    x = awkward_values()
    bits = kernels.to_bfloat16(x)
    np.testing.assert_array_equal(kernels.from_bfloat16(bits), round_to_bfloat16(x, np))
    assert np.isnan(kernels.from_bfloat16(kernels.to_bfloat16(np.array([np.nan, -np.nan], np.float32)))).all()


@pytest.mark.skipif(kernels.library()[0] is None, reason=f"no MKL bf16 GEMM: {kernels.library()[1]}")
@pytest.mark.parametrize("layout", ["a@b", "a.T@b", "a@b.T"])
def test_mkls_bf16_gemm_equals_the_rounded_product(layout):
    """MKL emulates bf16 where the CPU has no units: the numbers are the same either way."""
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((70, 50)).astype(np.float32), rng.standard_normal((50, 30)).astype(np.float32)
    a = np.ascontiguousarray(a.T).T if layout == "a.T@b" else a
    b = np.ascontiguousarray(b.T).T if layout == "a@b.T" else b
    out = np.empty((70, 30), np.float32)
    kernels.library()[0].matmul(a, b, out)
    exact = round_to_bfloat16(a, np).astype(np.float64) @ round_to_bfloat16(b, np).astype(np.float64)
    np.testing.assert_allclose(out, exact, rtol=1e-5, atol=1e-5)  # float32 sums of exact products
    assert np.abs(out - a.astype(np.float64) @ b).max() > 1e-3  # and it did round: not a float32 GEMM


def bf16_paths():
    yield pytest.param(False, id="pure-rounding")
    why = kernels.problem()
    yield pytest.param(True, id="mkl-bf16", marks=pytest.mark.skipif(why is not None, reason=str(why)))


def digits_losses(precision, kernels_on, steps=50):
    x, y = fastnn.datasets.digits()[:2]
    x = x[:640]
    y = y[:640]
    with fastnn.use("numpy", precision=precision, kernels=kernels_on):
        model = fastnn.Sequential([Dense(64, "relu", input_dim=64), Dense(10, "softmax")], seed=0)
        model.compile(fastnn.optimizers.Adam(3e-3), "categorical_crossentropy")
        losses = [model.train_on_batch(x[i % 10 * 64:(i % 10 + 1) * 64], y[i % 10 * 64:(i % 10 + 1) * 64])
                  for i in range(steps)]
    return np.array(losses), model


@pytest.mark.parametrize("kernels_on", list(bf16_paths()))
def test_a_bfloat16_fit_stays_within_2_percent_of_float32_for_50_steps_on_digits(kernels_on):
    reference, _ = digits_losses("default", kernels_on)
    losses, model = digits_losses("bfloat16", kernels_on)
    np.testing.assert_allclose(losses, reference, rtol=0.02)
    assert not np.array_equal(losses, reference)  # the products were rounded
    assert losses[-1] < 0.5 * losses[0]
    assert all(p.dtype == np.float32 for p in model.params)  # float32 master weights
    assert all(s.dtype == np.float32 for slots in model.optimizer.state for s in slots.values())


def test_convolutions_multiply_in_bfloat16_too():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 6, 6, 2))
    outputs = []
    for precision in ("default", "bfloat16"):
        with fastnn.use("numpy", precision=precision, kernels=False):
            model = fastnn.Sequential([Conv2D(3, 3), Flatten(), Dense(2)], input_shape=(6, 6, 2), seed=0)
            outputs.append(to_np(model.predict(x)))
    difference = np.abs(outputs[0] - outputs[1]).max()
    assert 1e-5 < difference < 5e-2


def test_bfloat16_where_it_cannot_run_is_a_clear_error():
    with pytest.raises(ValueError, match="precision must be one of"):
        fastnn.use("numpy", precision="float16")
    with pytest.raises(ValueError, match="the model's dtype is float64"):
        fastnn.use("numpy", dtype="float64", precision="bfloat16", kernels=False)
    with pytest.raises(ValueError, match="is the numpy backend's"):
        fastnn.use("array_api_strict", precision="bfloat16")
    why = kernels.problem()
    if why is None:
        pytest.skip("this machine runs bf16 GEMMs: no error to see")
    with pytest.raises(BackendUnavailableError, match=r"cannot run fast here: .*kernels=False\) runs the same"):
        fastnn.use("numpy", precision="bfloat16")


@pytest.mark.skipif(kernels.library()[0] is None, reason=f"no MKL bf16 GEMM: {kernels.library()[1]}")
def test_the_fused_kernels_with_mkls_bf16_gemm_train_as_the_pure_rounding_path(monkeypatch, request):
    """The kernel path end to end, on any CPU MKL emulates bf16 on (the unit check is what
    stands aside here: the numbers are the same with or without the units)."""
    monkeypatch.setattr(kernels, "cpu_flags", lambda: {"avx512_bf16"})
    request.addfinalizer(importlib.import_module("fastnn.backend")._make.cache_clear)  # forget the backend made past the check
    fused, _ = digits_losses("bfloat16", True, steps=20)
    pure, _ = digits_losses("bfloat16", False, steps=20)
    np.testing.assert_allclose(fused, pure, rtol=1e-4)
