"""precision="bfloat16": the pure rounding equals a bit-level conversion on every backend, the
Numba conversion and each bf16 GEMM (oneDNN, MKL) equal the pure twin, a bf16 fit stays within 2 % of the
float32 fit for 50 steps on digits, weights stay float32, and clear errors where it cannot run."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from conftest import backend_params, to_np

import fastnn
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


def bf16_libraries():
    """Each bf16 GEMM library, skipped where it does not load (e.g. not installed)."""
    usable, why_not = kernels.libraries()
    for name in ("onednn", "mkl"):
        yield pytest.param(name, id=name, marks=pytest.mark.skipif(name not in usable, reason=str(why_not.get(name))))


@pytest.mark.parametrize("library", list(bf16_libraries()))
@pytest.mark.parametrize("layout", ["a@b", "a.T@b", "a@b.T", "a.T@b.T"])
def test_each_bf16_gemm_equals_the_rounded_product(library, layout):
    """The libraries emulate bf16 where the CPU has no units: the numbers are the same either way."""
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((70, 50)).astype(np.float32), rng.standard_normal((50, 30)).astype(np.float32)
    a = np.ascontiguousarray(a.T).T if ".T@" in layout else a
    b = np.ascontiguousarray(b.T).T if layout.endswith("b.T") else b
    out = np.empty((70, 30), np.float32)
    kernels.RoundedProducts(kernels.libraries()[0][library]).matmul(a, b, out)
    exact = round_to_bfloat16(a, np).astype(np.float64) @ round_to_bfloat16(b, np).astype(np.float64)
    np.testing.assert_allclose(out, exact, rtol=1e-5, atol=1e-5)  # float32 sums of exact products
    assert np.abs(out - a.astype(np.float64) @ b).max() > 1e-3  # and it did round: not a float32 GEMM


@pytest.mark.parametrize("library", list(bf16_libraries()))
def test_a_bf16_gemm_on_several_threads_at_once_gives_each_its_own_product(library):
    """Row-block threads multiply at once: each thread's scratch, streams and primitives are its own."""
    from concurrent.futures import ThreadPoolExecutor

    products = kernels.RoundedProducts(kernels.libraries()[0][library])
    rng = np.random.default_rng(3)
    pairs = [(rng.standard_normal((300, 40)).astype(np.float32), rng.standard_normal((40, 20)).astype(np.float32))
             for _ in range(8)]

    def multiply(pair):
        out = np.empty((300, 20), np.float32)
        with fastnn.threads.one_thread_each():
            for _ in range(5):
                products.matmul(*pair, out)
        return out

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(multiply, pairs))
    for (a, b), out in zip(pairs, results):
        exact = round_to_bfloat16(a, np).astype(np.float64) @ round_to_bfloat16(b, np).astype(np.float64)
        np.testing.assert_allclose(out, exact, rtol=1e-5, atol=1e-5)


def bf16_paths():
    yield pytest.param(False, id="pure-rounding")
    why = kernels.problem()
    yield pytest.param(True, id="bf16-gemm", marks=pytest.mark.skipif(why is not None, reason=str(why)))


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


@pytest.mark.parametrize("library", list(bf16_libraries()))
def test_the_fused_kernels_with_each_bf16_gemm_train_as_the_pure_rounding_path(monkeypatch, request, library):
    """The kernel path end to end, on any CPU the libraries emulate bf16 on (the unit check is
    what stands aside here: the numbers are the same with or without the units)."""
    monkeypatch.setattr(kernels, "cpu_flags", lambda: {"avx512_bf16"})
    monkeypatch.setattr(kernels, "library", lambda: (kernels.RoundedProducts(kernels.libraries()[0][library]), None))
    make = importlib.import_module("fastnn.backend")._make
    make.cache_clear()  # a backend made before holds the chooser, not this library
    request.addfinalizer(importlib.import_module("fastnn.backend")._make.cache_clear)  # forget the backend made past the check
    fused, _ = digits_losses("bfloat16", True, steps=20)
    pure, _ = digits_losses("bfloat16", False, steps=20)
    np.testing.assert_allclose(fused, pure, rtol=1e-4)


@pytest.mark.parametrize("library", list(bf16_libraries()))
def test_row_blocks_on_threads_multiply_in_bf16_as_the_blocks_in_turn(monkeypatch, request, library):
    """A large batch's row blocks run on several threads at once, each multiplying through the
    bf16 library with its own scratch and (oneDNN) one OpenMP thread: the same fit as one thread."""
    from fastnn.kernels.cpu_ops import NumbaOps
    from fastnn.kernels.epoch_engine import CompiledEpochEngine

    from fastnn import row_blocks

    monkeypatch.setattr(kernels, "cpu_flags", lambda: {"avx512_bf16"})
    monkeypatch.setattr(kernels, "library", lambda: (kernels.RoundedProducts(kernels.libraries()[0][library]), None))
    make = importlib.import_module("fastnn.backend")._make
    make.cache_clear()
    request.addfinalizer(make.cache_clear)
    monkeypatch.setattr(NumbaOps, "block_rows", 64)
    monkeypatch.setattr(CompiledEpochEngine, "max_work_per_layer", 0)  # layer by layer, through the row blocks
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1000, 20)).astype(np.float32)
    y = (x[:, :3].sum(axis=1) > 0).astype(np.int64) + (x[:, 3] > 1)
    fits = []
    for threads in (1, 3):
        monkeypatch.setattr(row_blocks, "threads_for", lambda blocks, n=threads: n)
        with fastnn.use("numpy", precision="bfloat16"):
            model = fastnn.Sequential([Dense(32, "relu"), Dense(3, "softmax")], seed=0)
            model.compile({"name": "adam", "lr": 0.01}, "sparse_categorical_crossentropy")
            history = model.fit(x, y, epochs=4, batch_size=None, verbose=0)
        fits.append((model.get_weights(), history.history["loss"]))
    np.testing.assert_allclose(fits[0][1], fits[1][1], rtol=1e-5)
    for a, b in zip(fits[0][0], fits[1][0]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("library", list(bf16_libraries()))
def test_a_dense_backward_reuses_the_forwards_bits_only_for_the_arrays_they_round(library):
    """The forward's rounded x and W stand in for them in the backward; another input (a layer
    called on other data in between) is rounded anew."""
    products = kernels.RoundedProducts(kernels.libraries()[0][library])
    rng = np.random.default_rng(5)
    x, other, W = (rng.standard_normal(s).astype(np.float32) for s in ((64, 20), (64, 20), (20, 30)))
    dz = rng.standard_normal((64, 30)).astype(np.float32)
    r = lambda a: round_to_bfloat16(a, np).astype(np.float64)
    buffers: dict = {}
    z = np.empty((64, 30), np.float32)
    for inputs in (x, other):
        products.dense_forward(x, W, z, buffers)
        np.testing.assert_allclose(z, r(x) @ r(W), rtol=1e-5, atol=1e-5)
        dW, dx = np.empty((20, 30), np.float32), np.empty((64, 20), np.float32)
        products.dense_backward(inputs, W, dz, dW, dx, buffers)
        np.testing.assert_allclose(dW, r(inputs).T @ r(dz), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(dx, r(dz) @ r(W).T, rtol=1e-5, atol=1e-5)


def test_a_onednn_that_cannot_load_says_why(monkeypatch, tmp_path):
    """FASTNN_ONEDNN naming something that is not libdnnl: the bf16 libraries report it, no crash."""
    fake = tmp_path / "libdnnl.so.3"
    fake.write_bytes(b"not a shared library")
    monkeypatch.setenv("FASTNN_ONEDNN", str(fake))
    found, why = kernels._load_onednn()
    assert found is None and str(fake) in why and "is not a usable oneDNN" in why
