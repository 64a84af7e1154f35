"""No overflow warnings and no infinities at extreme logits (warnings are errors in pytest)."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import activations, losses
from fastnn.layers import Dense

from conftest import backend_params, to_np

EXTREME = np.array([[-1e4, -50.0, 0.0, 50.0, 1e4], [1e4, 1e4, -1e4, 3.0, -1e4]])


@pytest.fixture(params=[(b, d) for b in ["numpy", "array_api_strict", "cupy"] for d in ["float32", "float64"]],
                ids=lambda p: f"{p[0]}-{p[1]}")
def be_any(request):
    name, dtype = request.param
    param = next(p for p in backend_params([name]))
    if param.marks:
        pytest.skip(param.marks[0].kwargs["reason"])
    with fastnn.use(name, dtype=dtype) as be:
        yield be


@pytest.mark.parametrize("name", sorted(activations.ACTIVATIONS))
def test_activations_finite_at_extremes(be_any, name):
    act = activations.get(name)
    z = be_any.asarray(EXTREME)
    y = act.forward(z)
    dz = act.backward(be_any.xp.ones_like(z), z, y)
    assert np.all(np.isfinite(to_np(y))) and np.all(np.isfinite(to_np(dz)))


def test_sigmoid_values_at_extremes(be_any):
    y = to_np(activations.get("sigmoid").forward(be_any.asarray(EXTREME)))
    assert y[0, 0] == 0.0 and y[0, 4] == 1.0 and y[0, 2] == 0.5


@pytest.mark.parametrize("name", ["binary_crossentropy", "categorical_crossentropy", "mse"])
@pytest.mark.parametrize("from_logits", [False, True])
def test_losses_finite_at_extremes(be_any, name, from_logits):
    loss = losses.get({"name": name, "from_logits": from_logits})
    y_true = be_any.asarray(np.eye(5)[[4, 0]])
    y_pred = be_any.asarray(EXTREME)
    if not from_logits and name != "mse":  # probabilities that are exactly 0 and 1
        y_pred = activations.get("sigmoid" if name == "binary_crossentropy" else "softmax").forward(y_pred)
    value, grad = loss(y_pred, y_true)
    assert np.isfinite(float(value)) and np.all(np.isfinite(to_np(grad)))


def test_confident_wrong_prediction_gives_large_finite_loss(be_any):
    model = fastnn.Sequential([Dense(1, "sigmoid", input_dim=1, kernel_initializer="ones")], seed=0)
    model.compile("sgd", "binary_crossentropy")
    logs = model.evaluate(np.array([[1e4], [-1e4]]), np.array([0, 1]))
    assert logs["loss"] == pytest.approx(1e4, rel=1e-3)  # exact via logits, not clipped to 16.1
    model.fit(np.array([[1e4], [-1e4]]), np.array([0, 1]), epochs=2, verbose=0)
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


def test_the_pure_path_never_calls_clip(monkeypatch):
    """array-api-compat's clip on CuPy indexes with a boolean mask, which waits for the GPU:
    activations and losses limit values with minimum/maximum instead (same results, NaN kept)."""
    import array_api_compat.numpy as compat_numpy

    monkeypatch.setattr(compat_numpy, "clip", lambda *args, **kwargs: pytest.fail("clip was called"))
    z = compat_numpy.asarray(np.array([[-1e4, -1.0, np.nan], [0.0, 2.0, 1e4]]))
    for name in fastnn.activations.ACTIVATIONS:
        act = fastnn.activations.get(name)
        y = act.forward(z)
        act.backward(z, z, y)
    relu = fastnn.activations.get("relu").forward(z)
    np.testing.assert_array_equal(np.asarray(relu), [[0.0, 0.0, np.nan], [0.0, 2.0, 1e4]])
    p = compat_numpy.asarray(np.array([[0.0, 0.5, 1.0]]))
    t = compat_numpy.asarray(np.array([[0.0, 1.0, 1.0]]))
    for loss in ("binary_crossentropy", "categorical_crossentropy"):
        for from_logits in (False, True):
            value, _ = fastnn.losses.get({"name": loss, "from_logits": from_logits})(p, t)
            assert np.isfinite(float(value))
