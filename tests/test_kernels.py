"""Every compiled CPU kernel against its pure Array-API twin: shapes 1×1, one row, 37×19, one unit and large,
float32 and float64, every activation, loss head and optimizer."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import activations, losses, optimizers
from fastnn.kernels import cpu
from fastnn import activations as _acts
from fastnn.kernels.cpu_ops import NumbaOps
from fastnn.ops import ArrayOps

SHAPES = [(1, 1, 1), (1, 19, 23), (37, 19, 23), (300, 25, 1), (20_000, 40, 32)]  # (rows, in, out)
TOL = {"float32": dict(rtol=2e-5, atol=2e-6), "float64": dict(rtol=1e-12, atol=1e-13)}


def tables(dtype):
    be = fastnn.backend().with_options(dtype=dtype, kernels=True)
    return be, NumbaOps(be), ArrayOps(be)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=["1x1", "one-row", "37x19", "one-unit", "large"])
@pytest.mark.parametrize("name", sorted(set(activations.ACTIVATIONS) - {"softmax"}))
def test_dense_kernels_match_pure_twin(dtype, shape, name):
    rng = np.random.default_rng(0)
    n, k, m = shape
    be, fused, pure = tables(dtype)
    act = activations.get(name)
    x, W, b = (np.asarray(rng.standard_normal(s) * 2, dtype) for s in ((n, k), (k, m), (m,)))
    dy = np.asarray(rng.standard_normal((n, m)), dtype)
    buffers = {}
    y, z = fused.dense_forward(x, W, b, act, buffers)
    y_ref, z_ref = pure.dense_forward(x, W, b, act)
    # a sum of k products is only as exact as the magnitudes summed: MKL and OpenBLAS order them
    # differently, so where terms cancel the tolerance follows |x| @ |W| + |b|, not |y|
    magnitude = np.abs(x).astype(np.float64) @ np.abs(W).astype(np.float64) + np.abs(b)
    slack = 8 * np.finfo(dtype).eps * magnitude
    np.testing.assert_array_less(np.abs(y - y_ref), TOL[dtype]["rtol"] * np.abs(y_ref) + slack + TOL[dtype]["atol"])
    dy_before = dy.copy()
    grads = fused.dense_backward(dy, x, W, y, z, act, True, buffers)
    refs = pure.dense_backward(dy, x, W, y_ref, z_ref, act, True)
    np.testing.assert_array_equal(dy, dy_before)  # the kernel does not overwrite its input
    for got, ref, label in zip(grads, refs, ("dx", "dW", "db")):
        scale = max(1.0, float(np.abs(ref).max()))
        np.testing.assert_allclose(got / scale, ref / scale, err_msg=label, **TOL[dtype])


@pytest.mark.parametrize("name", ["relu", "leaky_relu"])
def test_relu_kernels_treat_nan_and_inf_as_the_pure_twin(name):
    """NaN stays NaN forward (the NaN guard must see it), -inf gives 0 (ReLU); the backward pass
    passes dy where y > 0 and scales it elsewhere, NaN and inf included."""
    act = activations.get(name)
    kernels = cpu.dense_kernels(_acts.get(name).code)
    alpha = getattr(act, "alpha", 0.0)
    z = np.array([[np.nan, -np.inf, np.inf, -1.0, 0.0, 2.0]] * 33)  # a span of 32 rows and one more
    y = z.copy()
    kernels.bias_act_inplace(y, np.zeros(6), alpha)
    np.testing.assert_array_equal(y, act.forward(z))
    dy = np.array([[np.nan, np.inf, 1.0, np.inf, np.nan, 3.0]] * 33)
    dz, db = np.empty_like(dy), np.empty(6)
    kernels.act_grad_bias(dy, y, alpha, dz, db)
    np.testing.assert_array_equal(dz, act.backward(dy, z, y))


def test_softmax_layer_and_foreign_layouts_fall_back_to_pure():
    be, fused, pure = tables("float32")
    x = np.ones((4, 3), np.float32)
    W, b = np.ones((3, 2), np.float32), np.zeros(2, np.float32)
    softmax = activations.get("softmax")
    np.testing.assert_allclose(fused.dense_forward(x, W, b, softmax)[0], pure.dense_forward(x, W, b, softmax)[0])
    x_f = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(4, 3))  # not C-contiguous
    np.testing.assert_allclose(fused.dense_forward(x_f, W, b, activations.get("relu"))[0],
                               pure.dense_forward(x_f, W, b, activations.get("relu"))[0])


LOSS_CASES = [("mse", False), ("mse", True), ("binary_crossentropy", True), ("categorical_crossentropy", True),
              ("binary_crossentropy", False)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1, 1), (37, 19), (4096, 10)], ids=["1x1", "37x19", "large"])
@pytest.mark.parametrize("case", LOSS_CASES, ids=lambda c: f"{c[0]}{'-logits' if c[1] else ''}")
def test_loss_kernels_match_pure_twin(dtype, shape, case):
    rng = np.random.default_rng(1)
    be, fused, pure = tables(dtype)
    loss = losses.get({"name": case[0], "from_logits": case[1]})
    y_pred = np.asarray(rng.standard_normal(shape) * 30, dtype)  # includes saturated logits
    if case == ("binary_crossentropy", False):
        y_pred = np.asarray(rng.uniform(0.01, 0.99, shape), dtype)
    y_true = np.asarray(np.eye(shape[1])[rng.integers(0, shape[1], shape[0])], dtype)
    value, grad = fused.loss(loss, y_pred, y_true, {})
    ref_value, ref_grad = pure.loss(loss, y_pred, y_true)
    assert float(value) == pytest.approx(float(ref_value), rel=10 * TOL[dtype]["rtol"])
    np.testing.assert_allclose(grad, ref_grad, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"] / shape[0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("config", [{"name": "sgd", "lr": 0.1}, {"name": "sgd", "lr": 0.1, "momentum": 0.9},
                                    {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
                                    {"name": "adam", "lr": 0.01}], ids=["sgd", "momentum", "nesterov", "adam"])
def test_optimizer_kernels_match_pure_twin(dtype, config):
    rng = np.random.default_rng(2)
    be, fused, pure = tables(dtype)
    start = [np.asarray(rng.standard_normal(s), dtype) for s in ((37, 19), (19,))]
    results = []
    for table in (fused, pure):
        opt, params = optimizers.get(config), [p.copy() for p in start]
        opt.build(params)
        for step in range(5):
            opt.apply(params, [np.asarray(rng_g, dtype) for rng_g in
                               (np.sin(step + start[0]), np.cos(step + start[1]))], table)
        results.append(params)
    for got, ref in zip(*results):
        np.testing.assert_allclose(got, ref, **TOL[dtype])


def test_training_step_reuses_buffers():
    """A steady-state step allocates no new large arrays: the same buffers come back."""
    with fastnn.use("numpy", kernels=True):
        model = fastnn.Sequential([fastnn.layers.Dense(16, "relu", input_dim=4),
                                   fastnn.layers.Dense(1, "sigmoid")], seed=0)
        model.compile("sgd", "binary_crossentropy", metrics=[])
        # 4 096 rows x 97 parameters is above the compiled-epoch limit: the per-layer kernel path
        x, y = np.random.default_rng(0).standard_normal((4096, 4)), np.zeros(4096)
        model.fit(x, y, epochs=1, batch_size=None, verbose=0)
        ids = {k: id(v) for layer in model.layers for k, v in layer.buffers.items()}
        model.fit(x, y, epochs=2, batch_size=None, verbose=0)
        assert ids and ids == {k: id(v) for layer in model.layers for k, v in layer.buffers.items()}


def test_kernels_can_be_switched_off():
    with fastnn.use("numpy", kernels=False) as be:
        assert type(be.ops) is ArrayOps
    with fastnn.use("numpy") as be:
        assert type(be.ops) is NumbaOps


@pytest.mark.parametrize("loss,out", [("binary_crossentropy", 1), ("categorical_crossentropy", 3), ("mse", 2)])
def test_row_blocked_step_equals_one_full_batch_step(monkeypatch, loss, out):
    """A batch split into row blocks (gradients summed by block size) takes the same step."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((100, 4))
    y = rng.integers(0, out, 100) if loss == "categorical_crossentropy" else rng.integers(0, 2, (100, out))
    results = []
    for block_rows in (None, 16):  # 100 rows -> 6 blocks of 16 and one of 4
        monkeypatch.setattr(NumbaOps, "block_rows", block_rows)
        with fastnn.use("numpy", dtype="float64"):
            model = fastnn.Sequential([fastnn.layers.Dense(8, "relu"), fastnn.layers.Dense(out, None)], seed=0)
            model.layers[-1].activation = activations.get("sigmoid" if out == 1 else "softmax" if out == 3 else "linear")
            model.compile({"name": "adam", "lr": 0.01}, loss)
            history = model.fit(x, y, epochs=3, batch_size=None, verbose=0)
            results.append((model.get_weights(), history.history))
    (w_full, h_full), (w_blocked, h_blocked) = results
    for a, b in zip(w_full, w_blocked):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    for key in h_full:
        np.testing.assert_allclose(h_full[key], h_blocked[key], rtol=1e-10)


@pytest.mark.slow  # compiles every kernel with no cache in a child process
def test_unwritable_cache_dir_disables_caching_instead_of_failing():
    """numba's cache=True raises at import on a read-only cache dir; the kernels probe first.
    (/proc is unwritable even for root, so it stands in for a read-only install.)"""
    import os
    import subprocess
    import sys

    code = ("import numpy as np, fastnn; from fastnn.kernels import cache; "
            "m = fastnn.Sequential([fastnn.layers.Dense(2, 'relu', input_dim=2)], seed=0); "
            "m.compile('sgd', 'mse'); m.fit(np.ones((4, 2)), np.ones((4, 2)), verbose=0); "
            "print(cache.CACHE, type(m.backend.ops).__name__)")
    env = {**os.environ, "NUMBA_CACHE_DIR": "/proc/fastnn-numba-cache"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "NumbaOps"]


def test_compiled_shuffle_is_a_reproducible_uniform_permutation():
    """fit's shuffle (a compiled Fisher-Yates): every row once, the same order from the same
    seed, and each row equally likely at each position (its twin, rng.permutation, draws
    differently, so the properties are compared, not the orders)."""
    from fastnn.kernels.cpu import permutation, shuffle_buffers

    order = permutation(np.random.default_rng(3), 10_000)
    np.testing.assert_array_equal(np.sort(order), np.arange(10_000))
    np.testing.assert_array_equal(order, permutation(np.random.default_rng(3), 10_000))
    fresh, reused = np.random.default_rng(6), np.random.default_rng(6)
    buffers = shuffle_buffers(10_000)  # fit's epochs reuse one pair of arrays: the same orders
    for _ in range(2):
        np.testing.assert_array_equal(permutation(reused, 10_000, buffers), permutation(fresh, 10_000))
    assert not np.array_equal(order, permutation(np.random.default_rng(4), 10_000))
    rng, counts = np.random.default_rng(5), np.zeros((5, 5))
    for _ in range(20_000):
        counts[np.arange(5), permutation(rng, 5)] += 1
    np.testing.assert_allclose(counts / 20_000, 0.2, atol=0.015)  # ~5 standard deviations


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tanh_and_sigmoid_scalars_are_accurate(dtype):
    """The float32 rational tanh (and the sigmoid built on it) stay within 4e-7 of float64 math,
    saturate to exactly +-1 (0 and 1), and keep NaN; float64 uses the library functions."""
    from numba import njit

    from fastnn.kernels import scalar

    @njit
    def apply(z, tanh_out, sigmoid_out):
        for i in range(z.shape[0]):
            tanh_out[i] = scalar.tanh(z[i])
            sigmoid_out[i] = scalar.sigmoid(z[i])

    z = np.concatenate([np.linspace(-40, 40, 400_001), np.geomspace(1e-30, 1, 1000), [np.inf, -np.inf, np.nan]])
    z = z.astype(dtype)
    t, s = np.empty_like(z), np.empty_like(z)
    apply(z, t, s)
    exact = z[:-3].astype(np.float64)
    tol = 4e-7 if dtype == "float32" else 1e-15
    np.testing.assert_allclose(t[:-3], np.tanh(exact), rtol=0, atol=tol)
    np.testing.assert_allclose(s[:-3], 0.5 * np.tanh(exact / 2) + 0.5, rtol=0, atol=tol)
    np.testing.assert_array_equal(t[-3:-1], [1, -1])
    np.testing.assert_array_equal(s[-3:-1], [1, 0])
    assert np.isnan(t[-1]) and np.isnan(s[-1])
    assert np.all(np.abs(t[:-1]) <= 1) and np.all((s[:-1] >= 0) & (s[:-1] <= 1))
