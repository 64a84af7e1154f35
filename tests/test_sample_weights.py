"""sample_weight and class_weight in fit: the loss is the mean over the batch of weight x sample
loss (Keras's "sum over batch size"), on every backend and path."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn.layers import Dense

from conftest import to_np

RNG = np.random.default_rng(11)
X = RNG.standard_normal((24, 3))
Y = RNG.integers(0, 2, 24).astype(float)
W = RNG.random(24) * 2


@pytest.mark.parametrize("loss,out", [("mse", 2), ("binary_crossentropy", 1), ("categorical_crossentropy", 3)])
@pytest.mark.parametrize("from_logits", [False, True])
def test_weighted_loss_is_the_mean_of_weighted_sample_losses(backend_name, loss, out, from_logits):
    y_pred = RNG.standard_normal((6, out)) if from_logits or loss == "mse" else RNG.dirichlet(np.ones(out), 6)
    y_true = np.eye(out)[RNG.integers(0, out, 6)]
    w = RNG.random((6, 1))
    fn = fastnn.losses.get({"name": loss, "from_logits": from_logits})
    per_sample = [float(fn(fastnn.asarray(y_pred[i:i + 1]), fastnn.asarray(y_true[i:i + 1]))[0]) for i in range(6)]
    value, grad = fn(fastnn.asarray(y_pred), fastnn.asarray(y_true), fastnn.asarray(w))
    assert float(value) == pytest.approx(np.sum(w[:, 0] * per_sample) / 6, rel=1e-5)
    _, plain_grad = fn(fastnn.asarray(y_pred), fastnn.asarray(y_true))
    np.testing.assert_allclose(to_np(grad), to_np(plain_grad) * w, rtol=1e-5)


def train(kernels, batch_size=4, lr=0.1, **weights):
    with fastnn.use(fastnn.backend().name, dtype="float64", kernels=kernels):  # the test's backend
        model = fastnn.Sequential([Dense(5, "tanh", input_dim=3), Dense(1, "sigmoid")], seed=2)
        model.compile({"name": "sgd", "lr": lr}, "binary_crossentropy")
        history = model.fit(X, Y, epochs=2, batch_size=batch_size, verbose=0, **weights)
    return model.get_weights(), history.history["loss"]


def test_weights_of_one_change_nothing_and_paths_agree(backend_name):
    reference = train(False)
    for kernels in (True, False):
        for got, expected in zip(train(kernels, sample_weight=np.ones(24))[0], reference[0]):
            np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    for a, b in zip(train(True, sample_weight=W)[0], train(False, sample_weight=W)[0]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_a_weight_of_two_is_a_learning_rate_twice_as_large(backend_name):
    doubled, plain = train(True, batch_size=None, sample_weight=np.full(24, 2.0)), train(True, batch_size=None, lr=0.2)
    for a, b in zip(doubled[0], plain[0]):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert doubled[1][0] == pytest.approx(2 * train(True, batch_size=None)[1][0], rel=1e-12)  # the first loss


def test_class_weight_equals_the_sample_weights_it_implies(backend_name):
    by_class = train(True, class_weight={0: 0.5, 1: 3.0})
    by_sample = train(True, sample_weight=np.where(Y > 0.5, 3.0, 0.5))
    for a, b in zip(by_class[0], by_sample[0]):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    with fastnn.use(backend_name):
        model = fastnn.Sequential([Dense(3, "softmax", input_dim=3)], seed=0)
        model.compile("sgd", "categorical_crossentropy")
        labels = RNG.integers(0, 3, 24)
        history = model.fit(X, labels, epochs=1, verbose=0, class_weight={2: 0.0})
        assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("kwargs,error,message", [
    ({"sample_weight": np.ones(5)}, ValueError, r"sample_weight has shape \(5,\); it needs one weight per sample: \(24,\)"),
    ({"sample_weight": np.ones((24, 1))}, ValueError, "sample_weight has shape"),
    ({"sample_weight": np.r_[np.nan, np.ones(23)]}, ValueError, "sample_weight contains 1 NaN or Inf"),
    ({"class_weight": {2: 1.0}}, ValueError, r"class_weight has keys \[2\] that are not class indices 0 to 1"),
    ({"class_weight": {"cat": 1.0}}, ValueError, "class_weight has keys"),
    ({"class_weight": [1.0, 2.0]}, TypeError, "class_weight must be a dict"),
])
def test_bad_weights_are_refused_before_training(backend_name, kwargs, error, message):
    model = fastnn.Sequential([Dense(1, "sigmoid", input_dim=3)], seed=0)
    model.compile("sgd", "binary_crossentropy")
    with pytest.raises(error, match=message):
        model.fit(X, Y, verbose=0, **kwargs)
    assert model.optimizer.iterations == 0
