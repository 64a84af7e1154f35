"""Sequential end to end, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn.callbacks import Callback
from fastnn.layers import Activation, Dense

from conftest import backend_params, to_np

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_Y = np.array([0, 1, 1, 0])


def small_model(seed=0, **kw):
    return fastnn.Sequential([Dense(8, "tanh", input_dim=2), Dense(1, "sigmoid")], seed=seed, **kw)


def test_xor_is_learned(backend_name, kernels):
    model = small_model().to(fastnn.backend().with_options(kernels=kernels))
    model.compile(fastnn.optimizers.Adam(0.05), "binary_crossentropy")
    history = model.fit(XOR_X, XOR_Y, epochs=300, batch_size=None, verbose=0)
    assert history.history["accuracy"][-1] == 1.0
    assert history.history["loss"][-1] < 0.01 < history.history["loss"][0]
    pred = to_np(model.predict(XOR_X)).ravel()
    np.testing.assert_array_equal(pred > 0.5, XOR_Y.astype(bool))


def test_same_seed_same_initial_weights_on_every_backend(backend_name):
    with fastnn.use("numpy"):
        reference = small_model(seed=42).get_weights()
    weights = small_model(seed=42).get_weights()
    for w, r in zip(weights, reference):
        np.testing.assert_array_equal(w, r)
    assert not np.array_equal(small_model(seed=43).get_weights()[0], reference[0])


@pytest.mark.parametrize("loss,acts,out", [
    ("mse", ["relu", "linear"], 2),
    ("binary_crossentropy", ["swish", "sigmoid"], 1),
    ("categorical_crossentropy", ["gelu", "softmax"], 3),
])
@pytest.mark.parametrize("optimizer", ["sgd", {"name": "sgd", "lr": 0.05, "momentum": 0.9}, "adam"])
def test_every_backend_matches_numpy_after_20_steps(backend_name, kernels, loss, acts, out, optimizer, rng):
    x = rng.standard_normal((64, 5))
    y = rng.integers(0, out, 64) if loss == "categorical_crossentropy" else (
        rng.integers(0, 2, (64, 1)) if out == 1 else rng.standard_normal((64, out)))

    def train():
        model = fastnn.Sequential([Dense(16, acts[0]), Dense(out, acts[1])], seed=7)
        model.compile(optimizer, loss)
        model.fit(x, y, epochs=5, batch_size=16, verbose=0)  # 20 steps, shuffled by the seed
        return model.get_weights(), model.evaluate(x, y)

    with fastnn.use("numpy", kernels=False):
        ref_weights, ref_logs = train()
    with fastnn.use(backend_name, kernels=kernels):
        weights, logs = train()
    for w, r in zip(weights, ref_weights):
        np.testing.assert_allclose(w, r, rtol=1e-4, atol=1e-5)
    assert logs.keys() == ref_logs.keys() == ({"loss"} if loss == "mse" else {"loss", "accuracy"})
    assert logs["loss"] == pytest.approx(ref_logs["loss"], rel=1e-4)


def test_history_validation_and_online_sgd(backend_name):
    model = small_model()
    model.compile("sgd", "mse", metrics=["accuracy", "mae"])
    history = model.fit(XOR_X, XOR_Y, epochs=3, batch_size=1, validation_data=(XOR_X, XOR_Y), verbose=0)
    assert set(history.history) == {"loss", "accuracy", "mae", "val_loss", "val_accuracy", "val_mae"}
    assert history.epoch == [0, 1, 2] and all(len(v) == 3 for v in history.history.values())
    assert model.optimizer.iterations == 12


def test_full_batch_loss_is_exact_mean(backend_name):
    model = small_model()
    model.compile("sgd", "mse", metrics=[])
    before = model.evaluate(XOR_X, XOR_Y)["loss"]
    pred = to_np(model.predict(XOR_X)).ravel()
    assert before == pytest.approx(np.mean((pred - XOR_Y) ** 2), rel=1e-6)
    assert model.fit(XOR_X, XOR_Y, epochs=1, batch_size=None, verbose=0).history["loss"][0] == pytest.approx(before)


def test_integer_labels_and_one_hot_give_the_same_loss(backend_name, rng):
    x, labels = rng.standard_normal((20, 4)), rng.integers(0, 3, 20)
    model = fastnn.Sequential([Dense(3, "softmax", input_dim=4)], seed=1)
    model.compile("sgd", "categorical_crossentropy")
    assert model.evaluate(x, labels) == pytest.approx(model.evaluate(x, np.eye(3)[labels]))


def test_activation_layer_and_float64(backend_name):
    model = fastnn.Sequential([Dense(4, input_dim=2), Activation("relu"), Dense(1), Activation("sigmoid")],
                              seed=0, dtype="float64")
    model.compile("adam", "binary_crossentropy")
    model.fit(XOR_X, XOR_Y, epochs=2, verbose=0)
    assert model.backend.dtype_name == "float64"
    assert to_np(model.predict(XOR_X)).dtype == np.float64


def test_set_weights_accepts_host_and_backend_arrays(backend_name):
    a, b = small_model(seed=1), small_model(seed=2)
    b.set_weights(a.get_weights())
    np.testing.assert_array_equal(to_np(b.predict(XOR_X)), to_np(a.predict(XOR_X)))
    b.set_weights(small_model(seed=3).params)
    with pytest.raises(ValueError, match="expected 4 weight arrays"):
        b.set_weights(a.get_weights()[:2])
    with pytest.raises(ValueError, match=r"shape \(2, 9\), expected \(2, 8\)"):
        b.set_weights([np.zeros((2, 9))] + a.get_weights()[1:])


@pytest.mark.parametrize("target", list(backend_params()))
def test_to_moves_weights_and_optimizer_state(target):
    model = small_model()
    model.compile("adam", "binary_crossentropy")
    model.fit(XOR_X, XOR_Y, epochs=3, verbose=0)
    before = to_np(model.predict(XOR_X))
    model.to(target)
    assert model.backend.name == target and all(model.backend.is_native(p) for p in model.params)
    assert all(model.backend.is_native(v) for s in model.optimizer.state for v in s.values())
    np.testing.assert_allclose(to_np(model.predict(XOR_X)), before, rtol=1e-6)
    model.fit(XOR_X, XOR_Y, epochs=1, verbose=0)


def test_from_architecture_and_summary(backend_name):
    arch = [{"input_dim": 2, "output_dim": 25, "activation": "relu"},
            {"input_dim": 25, "output_dim": 50, "activation": "relu"},
            {"input_dim": 50, "output_dim": 1, "activation": "sigmoid"}]
    model = fastnn.Sequential.from_architecture(arch, seed=0)
    assert [p.shape for p in model.params] == [(2, 25), (25,), (25, 50), (50,), (50, 1), (1,)]
    text = model.summary(print_fn=None)
    assert "total params: 1,426" in text and "Dense(50, activation='relu')" in text
    with pytest.raises(ValueError, match="layer 1 has input_dim 24 but layer 0 outputs 25"):
        fastnn.Sequential.from_architecture([arch[0], {**arch[1], "input_dim": 24}])


def test_callback_can_stop_training(backend_name):
    class StopAfterTwo(Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = epoch == 1

    model = small_model()
    model.compile("sgd", "mse")
    history = model.fit(XOR_X, XOR_Y, epochs=10, callbacks=[StopAfterTwo()], verbose=0)
    assert history.epoch == [0, 1]


def test_progress_bar_shows_loss():
    import io

    model = small_model()
    model.compile("sgd", "mse")
    out = io.StringIO()  # what a terminal would show (fit's verbose=1 draws it there; tests/test_logging.py)
    model.fit(XOR_X, XOR_Y, epochs=2, verbose=0, callbacks=[fastnn.ProgressBar(stream=out)])
    assert "2/2" in out.getvalue() and "loss=" in out.getvalue()


def test_train_on_batch_returns_loss_before_step(backend_name):
    model = small_model()
    model.compile("sgd", "mse", metrics=[])
    before = model.evaluate(XOR_X, XOR_Y)["loss"]
    assert model.train_on_batch(XOR_X, XOR_Y) == pytest.approx(before, rel=1e-6)
    assert model.evaluate(XOR_X, XOR_Y)["loss"] < before


def test_get_weights_returns_copies_that_training_does_not_change(backend_name):
    model = small_model()
    model.compile("sgd", "mse")
    before = model.get_weights()
    snapshot = [w.copy() for w in before]
    model.fit(XOR_X, XOR_Y, epochs=2, verbose=0)
    for w, s in zip(before, snapshot):
        np.testing.assert_array_equal(w, s)
