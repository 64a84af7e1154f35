"""Numba CUDA kernels against their pure Array-API twins, through the real dispatch table
(`CudaOps`). On a GPU they run on CuPy arrays; on CI, through the CUDA simulator on NumPy
arrays (`NUMBA_ENABLE_CUDASIM=1 pytest -m cudasim`, set before numba is imported). The
simulator runs each thread in Python, so shapes stay tiny."""

from __future__ import annotations

import os

import numpy as np
import pytest

import fastnn
from fastnn import activations, losses, optimizers
from fastnn.backend import resolve
from fastnn.ops import ArrayOps

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
ON_GPU = "cupy" in fastnn.available_backends() and not SIMULATOR

pytestmark = [
    pytest.mark.cudasim,
    pytest.mark.skipif(not (SIMULATOR or ON_GPU),
                       reason="needs a CUDA GPU, or the simulator: NUMBA_ENABLE_CUDASIM=1 pytest -m cudasim"),
    # tiny test grids: real CUDA warns that they under-use the GPU, which is the point here
    pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPerformanceWarning"),
]

SHAPES = [(1, 1, 1), (5, 4, 3)]  # (rows, in, out)
TOL = {"float32": dict(rtol=2e-5, atol=2e-6), "float64": dict(rtol=1e-12, atol=1e-13)}


@pytest.fixture(params=["float32", "float64"])
def tables(request):
    from fastnn.kernels.cuda_ops import CudaOps

    # resolve, not use(): a use() outside `with` would leave every later test of the process on CuPy
    be = resolve("cupy" if ON_GPU else "numpy", request.param, kernels=False)
    return be, CudaOps(be), ArrayOps(be), request.param


def arrays(be, rng, *shapes, scale=2.0):
    return [be.asarray(rng.standard_normal(s) * scale) for s in shapes]


@pytest.mark.parametrize("shape", SHAPES, ids=["1x1", "5x3"])
@pytest.mark.parametrize("name", sorted(set(activations.ACTIVATIONS) - {"softmax"}))
def test_dense_kernels_match_pure_twin(tables, shape, name):
    be, fused, pure, dtype = tables
    n, k, m = shape
    rng = np.random.default_rng(0)
    act = activations.get(name)
    x, W, b, dy = arrays(be, rng, (n, k), (k, m), (m,), (n, m))
    y, z = fused.dense_forward(x, W, b, act)
    y_ref, z_ref = pure.dense_forward(x, W, b, act)
    np.testing.assert_allclose(fastnn.to_numpy(y), fastnn.to_numpy(y_ref), **TOL[dtype])
    got = fused.dense_backward(dy, x, W, y, z, act, True)
    ref = pure.dense_backward(dy, x, W, y_ref, z_ref, act, True)
    for g, r, label in zip(got, ref, ("dx", "dW", "db")):
        g, r = fastnn.to_numpy(g), fastnn.to_numpy(r)
        scale = max(1.0, float(np.abs(r).max()))  # sums: compare relative to their largest term
        np.testing.assert_allclose(g / scale, r / scale, err_msg=label, **TOL[dtype])


@pytest.mark.parametrize("name", ["binary_crossentropy", "categorical_crossentropy"])
def test_loss_kernels_match_pure_twin(tables, name):
    be, fused, pure, dtype = tables
    rng = np.random.default_rng(1)
    loss = losses.get({"name": name, "from_logits": True})
    (logits,) = arrays(be, rng, (4, 3), scale=30.0)
    targets = be.asarray(np.eye(3)[[0, 2, 1, 2]])
    value, grad = fused.loss(loss, logits, targets)
    ref_value, ref_grad = pure.loss(loss, logits, targets)
    assert float(value) == pytest.approx(float(ref_value), rel=10 * TOL[dtype]["rtol"])
    np.testing.assert_allclose(fastnn.to_numpy(grad), fastnn.to_numpy(ref_grad), **TOL[dtype])


@pytest.mark.parametrize("config", [{"name": "sgd", "lr": 0.1}, {"name": "sgd", "lr": 0.1, "momentum": 0.9},
                                    {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
                                    {"name": "adam", "lr": 0.01}], ids=["sgd", "momentum", "nesterov", "adam"])
def test_optimizer_kernels_match_pure_twin(tables, config):
    be, fused, pure, dtype = tables
    rng = np.random.default_rng(2)
    start = arrays(be, rng, (3, 2), (2,))
    grads = arrays(be, rng, (3, 2), (2,))
    results = []
    for table in (fused, pure):
        opt, params = optimizers.get(config), [be.xp.asarray(p, copy=True) for p in start]
        opt.build(params)
        for _ in range(3):
            opt.apply(params, grads, table)
        results.append([fastnn.to_numpy(p) for p in params])
    for got, ref in zip(*results):
        np.testing.assert_allclose(got, ref, **TOL[dtype])


def test_an_infinite_gradient_stays_in_its_column(tables):
    """The bias gradient's per-thread sum starts from a zero of the data's type, not from
    g[0, 0] - g[0, 0] (NaN when g[0, 0] is infinite, which poisoned every column)."""
    be, fused, pure, dtype = tables
    rng = np.random.default_rng(3)
    x, W, b = arrays(be, rng, (5, 4), (4, 3), (3,))
    act = activations.get("linear")
    y, z = fused.dense_forward(x, W, b, act)
    dy = rng.standard_normal((5, 3))
    dy[0, 0] = np.inf
    with np.errstate(invalid="ignore"):  # dW = x.T @ dz meets inf - inf: NaN there is right
        _, _, db = fused.dense_backward(be.asarray(dy), x, W, y, z, act, need_dx=False)
    db = fastnn.to_numpy(db)
    assert db[0] == np.inf and np.all(np.isfinite(db[1:]))
    assert fastnn.backend().name == "numpy"  # the fixture left the active backend alone


@pytest.mark.skipif(not SIMULATOR, reason="the simulator's NumPy arrays stand in for the GPU's")
@pytest.mark.parametrize("name", ["moons", "digits", "regression"])
def test_fused_step_kernels_equal_their_twins(name):
    """The fused engine's step with the real kernels (simulated) and with their pure twins (on
    array-api-strict): the same epochs, losses and weights."""
    from gpu_doubles import CheckingDevice, SimulatorDevice
    from test_gpu_engine import make_data, make_model, trained_on

    from fastnn.kernels.cuda_engine import CudaEngine

    x, y = make_data(name, rows=12)
    twin = make_model(name, "float64")
    want_logs, want_weights = trained_on(twin, CudaEngine(twin.backend, device=CheckingDevice()), x, y, 2, 8)
    model = make_model(name, "float64").to("numpy")
    logs, weights = trained_on(model, CudaEngine(model.backend, device=SimulatorDevice()), x, y, 2, 8)
    for got, want in zip(logs, want_logs):
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-11, err_msg=key)
    for got, want in zip(weights, want_weights):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


WINDOW_CASES = [((5, 4), (3, 2), (1, 1), "same", 2), ((6, 6), (2, 2), (2, 2), "valid", 1), ((5, 5), (3, 3), (2, 2), "same", 3)]


@pytest.mark.parametrize("case", WINDOW_CASES, ids=["3x2-s1-same", "2x2-s2-valid", "3x3-s2-same"])
def test_window_kernels_match_pure_twins(tables, case):
    from fastnn.layers.windows import window

    be, fused, pure, dtype = tables
    hw, size, strides, padding, channels = case
    win = window(hw, size, strides, padding, "test")
    rng = np.random.default_rng(11)
    (x,) = arrays(be, rng, (2, *hw, channels))
    for fill in (0.0, -np.inf):
        np.testing.assert_array_equal(fastnn.to_numpy(fused.im2col(x, win, fill)), fastnn.to_numpy(pure.im2col(x, win, fill)))
    (cols,) = arrays(be, rng, (2 * win.positions, size[0] * size[1] * channels))
    np.testing.assert_allclose(fastnn.to_numpy(fused.col2im(cols, 2, win)), fastnn.to_numpy(pure.col2im(cols, 2, win)),
                               **TOL[dtype])
    (y, memo), (y_ref, memo_ref) = fused.max_pool(x, win), pure.max_pool(x, win)
    np.testing.assert_array_equal(fastnn.to_numpy(y), fastnn.to_numpy(y_ref))
    (dy,) = arrays(be, rng, tuple(y_ref.shape))
    np.testing.assert_allclose(fastnn.to_numpy(fused.max_pool_backward(dy, memo, win)),
                               fastnn.to_numpy(pure.max_pool_backward(dy, memo_ref, win)), **TOL[dtype])
