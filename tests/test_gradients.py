"""Numerical gradient checks (central differences, float64) on every backend (Chainer's
`check_backward`): every activation, every loss, Dense with each activation, whole networks."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import activations, losses
from fastnn.engines import LayerEngine
from fastnn.layers import Dense

from conftest import backend_params, to_np

EPS = 1e-6


def numeric_grad(f, x: np.ndarray) -> np.ndarray:
    """d f / d x by central differences; f takes a host float64 array and returns a float."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        orig = x[i]
        x[i] = orig + EPS
        up = f(x)
        x[i] = orig - EPS
        down = f(x)
        x[i] = orig
        grad[i] = (up - down) / (2 * EPS)
    return grad


@pytest.fixture(params=list(backend_params()))
def be64(request):
    with fastnn.use(request.param, dtype="float64") as be:
        yield be


def away_from_kinks(rng, shape):
    """Random values with |z| >= 0.05, so ReLU-like kinks don't spoil central differences."""
    z = rng.standard_normal(shape) * 2
    return np.where(np.abs(z) < 0.05, 0.5, z)


@pytest.mark.parametrize("name", sorted(activations.ACTIVATIONS))
def test_activation_backward_matches_numeric(be64, name, rng):
    act = activations.get(name)
    z, dy = away_from_kinks(rng, (5, 4)), rng.standard_normal((5, 4))
    dyb = be64.asarray(dy)

    def f(zh):
        return float(be64.xp.sum(dyb * act.forward(be64.asarray(zh))))

    zb = be64.asarray(z)
    analytic = to_np(act.backward(dyb, zb, act.forward(zb)))
    np.testing.assert_allclose(analytic, numeric_grad(f, z.copy()), rtol=1e-6, atol=1e-8)


def loss_cases(rng):
    n, k = 6, 3
    probs = rng.uniform(0.05, 0.95, (n, k))
    onehot = np.eye(k)[rng.integers(0, k, n)]
    soft = rng.dirichlet(np.ones(k), n)
    return [
        ("mse", False, rng.standard_normal((n, k)), rng.standard_normal((n, k))),
        ("binary_crossentropy", False, probs, rng.integers(0, 2, (n, k)).astype(float)),
        ("binary_crossentropy", True, rng.standard_normal((n, k)) * 3, rng.uniform(0, 1, (n, k))),
        ("categorical_crossentropy", False, soft, onehot),
        ("categorical_crossentropy", True, rng.standard_normal((n, k)) * 3, onehot),
        ("poisson", False, rng.uniform(0.2, 3.0, (n, k)), rng.poisson(1.5, (n, k)).astype(float)),
        ("poisson", True, rng.standard_normal((n, k)), rng.poisson(1.5, (n, k)).astype(float)),
    ]


@pytest.mark.parametrize("case", range(7), ids=["mse", "bce", "bce_logits", "cce", "cce_logits", "poisson",
                                                "poisson_logits"])
def test_loss_gradient_matches_numeric(be64, case, rng):
    name, from_logits, y_pred, y_true = loss_cases(rng)[case]
    loss = losses.get({"name": name, "from_logits": from_logits})
    yt = be64.asarray(y_true)

    def f(yp):
        return float(loss(be64.asarray(yp), yt)[0])

    analytic = to_np(loss(be64.asarray(y_pred), yt)[1])
    np.testing.assert_allclose(analytic, numeric_grad(f, y_pred.copy()), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", sorted(activations.ACTIVATIONS))
def test_dense_backward_matches_numeric(be64, name, rng, kernels):
    be = be64.with_options(kernels=kernels)
    layer = Dense(4, activation=name)
    layer.build(3, rng, be)
    W, b = (to_np(p).copy() for p in layer.params)
    # shift the bias so pre-activations stay away from ReLU's kink
    x, dy = rng.standard_normal((7, 3)), rng.standard_normal((7, 4))
    dyb = be.asarray(dy)

    def loss_with(xh, Wh, bh):
        layer.set_params([be.asarray(Wh), be.asarray(bh)])
        y, backprop = layer.forward(be.asarray(xh))
        return float(be.xp.sum(dyb * y)), backprop

    z = x @ W + b
    b = b + np.where(np.abs(z).min(axis=0) < 0.05, 0.3, 0.0)
    _, backprop = loss_with(x, W, b)
    dx = to_np(backprop(dyb))
    dW, db = (to_np(g) for g in layer.grads)
    np.testing.assert_allclose(dx, numeric_grad(lambda v: loss_with(v, W, b)[0], x.copy()), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dW, numeric_grad(lambda v: loss_with(x, v, b)[0], W.copy()), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(db, numeric_grad(lambda v: loss_with(x, W, v)[0], b.copy()), rtol=1e-5, atol=1e-7)


NETWORKS = {
    "tanh-sigmoid-bce": (["tanh", "sigmoid"], "binary_crossentropy", 1),
    "swish-gelu-softmax-cce": (["swish", "gelu", "softmax"], "categorical_crossentropy", 3),
    "leaky-linear-mse": (["leaky_relu", "linear"], "mse", 2),
}


@pytest.mark.parametrize("net", sorted(NETWORKS))
def test_network_gradients_match_numeric(be64, net, rng, kernels):
    acts, loss_name, out = NETWORKS[net]
    widths = [5] * (len(acts) - 1) + [out]
    model = fastnn.Sequential([Dense(w, a) for w, a in zip(widths, acts)], seed=3,
                              dtype="float64")
    model.to(be64.with_options(kernels=kernels))
    model.compile("sgd", loss_name, metrics=[])
    x = rng.standard_normal((8, 4))
    y = np.eye(out)[rng.integers(0, out, 8)] if out > 1 else rng.integers(0, 2, (8, 1)).astype(float)
    xb, yb = model.prepare(x, y)
    weights = model.get_weights()
    engine, spec = LayerEngine(model.backend), model.spec

    def loss_at(i, w):
        model.set_weights([w if j == i else weights[j] for j in range(len(weights))])
        return float(engine.loss_and_metrics(spec, model.train_state(), xb, yb, train=False)[0])

    engine.loss_and_metrics(spec, model.train_state(), xb, yb, train=True)  # gradients into the layers
    analytic = [to_np(g) for g in model.grads]
    for i, w in enumerate(weights):
        numeric = numeric_grad(lambda v: loss_at(i, v), w.astype(np.float64).copy())
        np.testing.assert_allclose(analytic[i], numeric, rtol=1e-5, atol=1e-8, err_msg=f"parameter {i}")
