"""Learning-rate schedules (Keras's closed forms), the callbacks that change the learning rate,
and their place in training and saved models."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastnn
from fastnn import optimizers, schedules
from fastnn.layers import Dense

import torch_references
from conftest import to_np


@pytest.mark.parametrize("schedule,closed_form", [
    (schedules.ExponentialDecay(0.1, 4, 0.5), lambda t: 0.1 * 0.5 ** (t / 4)),
    (schedules.ExponentialDecay(0.1, 4, 0.5, staircase=True), lambda t: 0.1 * 0.5 ** (t // 4)),
    (schedules.PiecewiseConstantDecay([3, 7], [0.3, 0.2, 0.1]), lambda t: 0.3 if t <= 3 else 0.2 if t <= 7 else 0.1),
    (schedules.CosineDecay(0.1, 10, alpha=0.1),
     lambda t: 0.1 * (0.9 * 0.5 * (1 + math.cos(math.pi * min(t, 10) / 10)) + 0.1)),
    (schedules.CosineDecay(0.01, 10, warmup_target=0.1, warmup_steps=5),
     lambda t: 0.01 + 0.09 * t / 5 if t < 5 else 0.1 * 0.5 * (1 + math.cos(math.pi * min(t - 5, 10) / 10))),
], ids=["exponential", "staircase", "piecewise", "cosine", "cosine-warmup"])
def test_schedules_follow_their_closed_forms_through_20_sgd_steps(be64, schedule, closed_form, kernels):
    be = be64.with_options(kernels=kernels)
    params, grads = torch_references.data()
    opt = optimizers.SGD(learning_rate=schedule)
    ps = [be.asarray(p.copy()) for p in params]
    opt.build(ps)
    expected = [p.copy() for p in params]
    for t, step in enumerate(grads):
        ps = opt.apply(ps, [be.asarray(g) for g in step], be.ops)
        for p, g in zip(expected, step):
            p -= closed_form(t) * g
    for p, e in zip(ps, expected):
        np.testing.assert_allclose(to_np(p), e, rtol=1e-10, atol=1e-12)
    assert opt.lr == pytest.approx(closed_form(len(grads) - 1))


@pytest.fixture
def be64(backend_name):
    with fastnn.use(backend_name, dtype="float64") as be:
        yield be


@pytest.mark.parametrize("make,error,message", [
    (lambda: schedules.ExponentialDecay(0.1, 0, 0.5), ValueError, "decay_steps must be at least 1"),
    (lambda: schedules.ExponentialDecay(-0.1, 10, 0.5), ValueError, "initial_learning_rate must be positive"),
    (lambda: schedules.PiecewiseConstantDecay([3, 1], [0.3, 0.2, 0.1]), ValueError, "boundaries must increase"),
    (lambda: schedules.PiecewiseConstantDecay([3], [0.3]), ValueError, "one value more than boundaries"),
    (lambda: schedules.CosineDecay(0.1, 10, alpha=2), ValueError, r"alpha must be in \[0, 1\]"),
    (lambda: fastnn.ReduceLROnPlateau(factor=1.5), ValueError, r"factor must be in \(0, 1\)"),
    (lambda: fastnn.LearningRateScheduler(0.1), TypeError, "schedule must be a function"),
])
def test_bad_schedule_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


def model_and_data(optimizer):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 3)), rng.integers(0, 2, 40)
    model = fastnn.Sequential([Dense(5, "tanh"), Dense(1, "sigmoid")], seed=1)
    model.compile(optimizer, "binary_crossentropy")
    return model, x, y


def test_a_scheduled_fit_equals_the_pure_path_and_saves_its_schedule(tmp_path):
    weights = []
    for kernels in (True, False):
        with fastnn.use("numpy", dtype="float64", kernels=kernels):
            model, x, y = model_and_data(optimizers.Adam(learning_rate=schedules.ExponentialDecay(0.05, 5, 0.5)))
            model.fit(x, y, epochs=3, batch_size=4, verbose=0)
            weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert model.optimizer.lr == pytest.approx(0.05 * 0.5 ** (29 / 5))
    loaded = fastnn.load(model.save(tmp_path / "m.npz"))
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == 30  # the schedule's step travels with the file


def test_learning_rate_scheduler_sets_the_rate_each_epoch(backend_name):
    model, x, y = model_and_data({"name": "sgd", "lr": 0.1})
    rates = []
    schedule = fastnn.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))
    model.fit(x, y, epochs=3, verbose=0,
              callbacks=[schedule, fastnn.LambdaCallback(on_epoch_end=lambda e, logs: rates.append(model.optimizer.lr))])
    assert rates == pytest.approx([0.1, 0.05, 0.1 / 3])


def test_reduce_lr_on_plateau_follows_keras(backend_name):
    """A loss that stops improving: after `patience` flat epochs the rate drops by `factor`, then
    `cooldown` epochs pass before counting again, and it never goes below min_lr."""
    model, x, y = model_and_data({"name": "sgd", "lr": 0.1})
    plateau = fastnn.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, cooldown=1, min_lr=0.03)
    plateau.model, plateau.params = model, {"metrics": ["loss"]}
    plateau.on_train_begin()
    rates = []
    for epoch, loss in enumerate([1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]):
        plateau.on_epoch_end(epoch, {"loss": loss})
        rates.append(model.optimizer.lr)
    assert rates == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.03, 0.03, 0.03, 0.03])  # Keras's sequence
