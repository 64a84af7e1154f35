"""Bad input gets an exception that names the problem and says what to do."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn.layers import Dense

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
Y = np.array([0, 1, 1, 0])


@pytest.fixture
def model(backend_name):
    m = fastnn.Sequential([Dense(3, "relu", input_dim=2), Dense(1, "sigmoid")], seed=0)
    m.compile("sgd", "binary_crossentropy")
    return m


def test_feature_count_mismatch(model):
    with pytest.raises(ValueError, match="x has 3 features but the model's first layer expects 2"):
        model.fit(np.zeros((4, 3)), Y, verbose=0)


def test_x_must_be_2d(model):
    with pytest.raises(ValueError, match=r"x must be 2-D .*x.reshape\(-1, 1\)"):
        model.predict(np.zeros(4))


def test_y_shape_mismatch(model):
    with pytest.raises(ValueError, match=r"y has shape \(4, 2\) but the model outputs \(n, 1\)"):
        model.fit(X, np.zeros((4, 2)), verbose=0)
    with pytest.raises(ValueError, match="x has 4 samples but y has shape"):
        model.fit(X, np.zeros(3), verbose=0)


@pytest.mark.parametrize("where", ["x", "y"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf_are_refused(model, where, bad):
    x, y = X.copy(), Y.astype(float)
    (x if where == "x" else y)[1, ...] = bad
    with pytest.raises(ValueError, match=f"{where} contains .* NaN or Inf"):
        model.fit(x, y, verbose=0)


def test_labels_out_of_range(backend_name):
    m = fastnn.Sequential([Dense(3, "softmax", input_dim=2)], seed=0)
    m.compile("sgd", "categorical_crossentropy")
    with pytest.raises(ValueError, match=r"integer labels must lie in \[0, 3\).*from 0 to 3"):
        m.fit(X, np.array([0, 1, 2, 3]), verbose=0)
    with pytest.raises(ValueError, match="integer labels .* or one-hot targets"):
        m.fit(X, np.array([0.0, 1.0, 2.0, 1.0]), verbose=0)


def test_bce_targets_out_of_range(model):
    with pytest.raises(ValueError, match=r"binary_crossentropy targets must lie in \[0, 1\]"):
        model.fit(X, np.array([0, 1, 2, 0]), verbose=0)


def test_empty_arrays(model):
    with pytest.raises(ValueError, match="x is empty"):
        model.fit(np.zeros((0, 2)), np.zeros(0), verbose=0)


def test_array_from_another_backend_is_refused(backend_name):
    other = "numpy" if backend_name != "numpy" else "array_api_strict"
    with fastnn.use(other):
        foreign = fastnn.asarray(X)
    m = fastnn.Sequential([Dense(1, "sigmoid", input_dim=2)], seed=0)
    m.compile("sgd", "mse")
    if other == "numpy":  # host NumPy data is always accepted and moved to the backend
        assert m.evaluate(foreign, Y)["loss"] > 0
        return
    with pytest.raises(fastnn.BackendMismatchError, match=r"x is a array_api_strict array .* fastnn.to_numpy"):
        m.fit(foreign, Y, verbose=0)


def test_integer_and_bool_inputs_are_converted(model):
    model.fit(X.astype(np.int32), Y.astype(bool), verbose=0)
    assert fastnn.to_numpy(model.predict(X.astype(np.int64))).dtype == np.float32


def test_non_numeric_input(model):
    with pytest.raises(TypeError, match="x must be numeric"):
        model.fit(np.array([["a", "b"]] * 4), Y, verbose=0)


def test_unknown_names_list_valid_ones():
    with pytest.raises(ValueError, match="unknown activation 'rellu'; valid names: .*relu"):
        Dense(3, "rellu")
    with pytest.raises(ValueError, match="unknown loss 'hinge'; valid names: .*binary_crossentropy"):
        fastnn.losses.get("hinge")
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        fastnn.Sequential([Dense(1, input_dim=2)]).compile("rmsprop", "mse")
    with pytest.raises(ValueError, match="unknown initializer 'xavier'"):
        Dense(3, kernel_initializer="xavier")
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        m = fastnn.Sequential([Dense(1, input_dim=2)])
        m.compile("sgd", "mse", metrics=["f1"])
        m.evaluate(X, Y)


def test_bad_layer_and_fit_arguments():
    with pytest.raises(ValueError, match="units must be a positive integer"):
        Dense(0)
    m = fastnn.Sequential([Dense(1, input_dim=2)])
    with pytest.raises(RuntimeError, match="call model.compile"):
        m.fit(X, Y)
    m.compile("sgd", "mse")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        m.fit(X, Y, batch_size=0, verbose=0)
    with pytest.raises(TypeError, match="expected a fastnn layer"):
        m.add("dense")
