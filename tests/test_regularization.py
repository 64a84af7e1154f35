"""Dense(use_bias=False), weight penalties (fastnn.regularizers) and Dropout, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import regularizers
from fastnn.engines import LayerEngine
from fastnn.layers import Dense, Dropout

from conftest import to_np
from test_gradients import numeric_grad

RNG = np.random.default_rng(9)
X = RNG.standard_normal((12, 3))
Y = RNG.integers(0, 2, 12).astype(float)


@pytest.fixture
def be64(backend_name):
    with fastnn.use(backend_name, dtype="float64") as be:
        yield be


def test_dense_without_bias(be64, kernels, tmp_path):
    with fastnn.use(be64.name, dtype="float64", kernels=kernels):
        model = fastnn.Sequential([Dense(4, "tanh", input_dim=3, use_bias=False), Dense(1, "sigmoid")], seed=0)
        model.compile("adam", "binary_crossentropy")
        model.fit(X, Y, epochs=3, batch_size=4, verbose=0)
    assert [w.shape for w in model.get_weights()] == [(3, 4), (4, 1), (1,)]
    assert model.count_params() == 12 + 4 + 1
    y = to_np(model.predict(X))
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-(np.tanh(X @ model.get_weights()[0]) @ model.get_weights()[1]
                                                     + model.get_weights()[2]))), rtol=1e-12)
    loaded = fastnn.load(model.save(tmp_path / "m.npz"))
    np.testing.assert_allclose(to_np(loaded.predict(X)), y, rtol=1e-12)


@pytest.mark.parametrize("regularizer", [regularizers.L1(0.05), regularizers.L2(0.05), regularizers.L1L2(0.02, 0.03)],
                         ids=["l1", "l2", "l1_l2"])
def test_penalty_gradients_match_numeric(be64, kernels, regularizer):
    with fastnn.use(be64.name, dtype="float64", kernels=kernels):
        model = fastnn.Sequential([Dense(4, "tanh", input_dim=3, kernel_regularizer=regularizer,
                                         bias_regularizer=regularizer), Dense(1, "sigmoid")], seed=3)
    model.compile("sgd", "binary_crossentropy", metrics=[])
    model.set_weights([w + 0.1 for w in model.get_weights()])  # no weight at 0, where |w| has no derivative
    xb, yb = model.prepare(X, Y)
    engine, weights = LayerEngine(model.backend), model.get_weights()

    def loss_at(i, w):
        model.set_weights([w if j == i else weights[j] for j in range(len(weights))])
        return float(engine.loss_and_metrics(model.spec, model.train_state(), xb, yb, train=False)[0])

    model.set_weights(weights)
    engine.loss_and_metrics(model.spec, model.train_state(), xb, yb, train=True)
    analytic = [to_np(g) for g in model.grads]
    for i, w in enumerate(weights):
        numeric = numeric_grad(lambda v: loss_at(i, v), w.copy())
        np.testing.assert_allclose(analytic[i], numeric, rtol=1e-5, atol=1e-8, err_msg=f"parameter {i}")


def test_l2_is_keras_penalty_and_weight_decay_on_the_step(be64):
    """Reported loss = data loss + l2 * sum(W²); one SGD step = the plain step - lr * 2 l2 W."""
    def model(reg):
        m = fastnn.Sequential([Dense(1, "sigmoid", input_dim=3, kernel_regularizer=reg)], seed=5)
        m.compile({"name": "sgd", "lr": 0.1}, "binary_crossentropy")
        return m

    plain, penalised = model(None), model(regularizers.L2(0.2))
    W = plain.get_weights()[0]
    assert penalised.evaluate(X, Y)["loss"] == pytest.approx(plain.evaluate(X, Y)["loss"] + 0.2 * np.sum(W * W),
                                                            rel=1e-12)
    plain.train_on_batch(X, Y)
    penalised.train_on_batch(X, Y)
    np.testing.assert_allclose(penalised.get_weights()[0], plain.get_weights()[0] - 0.1 * 2 * 0.2 * W, rtol=1e-12)


def test_dropout_keeps_the_mean_and_drops_at_its_rate(backend_name):
    layer = Dropout(0.3, seed=1)
    layer.build(500, np.random.default_rng(0), fastnn.backend())
    x = fastnn.asarray(np.ones((400, 500)))
    y, backprop = layer.forward(x, train=True)
    y = to_np(y)
    dropped = np.mean(y == 0)
    assert abs(dropped - 0.3) < 0.005  # 200 000 draws: 5 standard deviations is 0.005
    assert abs(y.mean() - 1.0) < 0.01  # inverted dropout keeps the expected value
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / 0.7], rtol=1e-6)
    dy = fastnn.asarray(np.arange(400 * 500, dtype=float).reshape(400, 500))
    np.testing.assert_allclose(to_np(backprop(dy)), to_np(dy) * y)  # the gradient passes the same mask
    same, _ = layer.forward(x, train=False)
    assert same is x  # identity at inference


def test_dropout_is_reproducible_on_every_backend_and_trains_layer_by_layer():
    results = []
    for backend in fastnn.available_backends():
        with fastnn.use(backend, dtype="float64"):
            model = fastnn.Sequential([Dense(8, "relu", input_dim=3), Dropout(0.25), Dense(1, "sigmoid")], seed=4)
            model.compile("adam", "binary_crossentropy")
            model.fit(X, Y, epochs=3, batch_size=4, verbose=0)
            results.append(model.get_weights())
            assert not model.backend.engines[0].supports(model.spec, 4) or len(model.backend.engines) == 1
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("make,error,message", [
    (lambda: Dropout(1.0), ValueError, r"Dropout rate must be in \[0, 1\), got 1.0"),
    (lambda: Dropout(-0.1), ValueError, r"Dropout rate must be in \[0, 1\)"),
    (lambda: Dropout("half"), TypeError, "Dropout rate must be a number"),
    (lambda: regularizers.L2(-1), ValueError, "l2 must be at least 0"),
    (lambda: Dense(3, kernel_regularizer="l3"), ValueError, "unknown regularizer 'l3'"),
])
def test_bad_regularization_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_penalised_logistic_regression_follows_its_closed_form_for_20_steps(be64, kernels):
    """SGD on sigmoid + BCE with L1L2 on W and L2 on b, against the textbook update in NumPy."""
    with fastnn.use(be64.name, dtype="float64", kernels=kernels):
        model = fastnn.Sequential([Dense(1, "sigmoid", input_dim=3, kernel_regularizer=regularizers.L1L2(0.01, 0.02),
                                         bias_regularizer=regularizers.L2(0.03), bias_initializer="ones")], seed=6)
    model.compile({"name": "sgd", "lr": 0.1}, "binary_crossentropy")
    W, b = (w.astype(np.float64) for w in model.get_weights())
    y = Y.reshape(-1, 1)
    losses = []
    for _ in range(20):
        p = 1 / (1 + np.exp(-(X @ W + b)))
        losses.append(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
                      + 0.01 * np.abs(W).sum() + 0.02 * (W * W).sum() + 0.03 * (b * b).sum())
        dz = (p - y) / len(X)
        W = W - 0.1 * (X.T @ dz + 0.01 * np.sign(W) + 2 * 0.02 * W)
        b = b - 0.1 * (dz.sum(axis=0) + 2 * 0.03 * b)
    history = model.fit(X, Y, epochs=20, batch_size=None, verbose=0)
    np.testing.assert_allclose(history.history["loss"], losses, rtol=1e-10)
    np.testing.assert_allclose(model.get_weights()[0], W, rtol=1e-10)
    np.testing.assert_allclose(model.get_weights()[1], b, rtol=1e-10)


@pytest.mark.parametrize("target", ["numpy", "array_api_strict"])
def test_a_saved_model_keeps_every_feature(tmp_path, target):
    """Dropout, regularizers, a bias-free layer, AdamW on a schedule with clipping: saved after
    some training, loaded on any backend, it predicts the same and goes on from the same step."""
    schedule = fastnn.schedules.CosineDecay(0.01, 50, warmup_target=0.05, warmup_steps=5)
    model = fastnn.Sequential([Dense(6, "relu", input_dim=3, kernel_regularizer="l2", use_bias=False), Dropout(0.3),
                               Dense(1, "sigmoid", bias_regularizer=regularizers.L1(0.001))], seed=8)
    model.compile(fastnn.optimizers.AdamW(learning_rate=schedule, weight_decay=0.05, clipnorm=1.0),
                  "binary_crossentropy")
    model.fit(X, Y, epochs=3, batch_size=4, verbose=0)
    loaded = fastnn.load(model.save(tmp_path / "m.npz"), backend=target)
    assert loaded.backend.name == target and loaded.get_config() == model.get_config()
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations == 9
    np.testing.assert_allclose(to_np(loaded.predict(X)), to_np(model.predict(X)), rtol=1e-6)
    assert loaded.evaluate(X, Y)["loss"] == pytest.approx(model.evaluate(X, Y)["loss"], rel=1e-6)
