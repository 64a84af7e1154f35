"""Bad input gets an exception that names the problem and says what to do."""

from __future__ import annotations

import os
import stat

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
    with pytest.raises(ValueError, match="unknown optimizer 'nadam'"):
        fastnn.Sequential([Dense(1, input_dim=2)]).compile("nadam", "mse")
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
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        m.fit(X, Y, batch_size=0, verbose=0)
    with pytest.raises(TypeError, match="expected a fastnn layer"):
        m.add("dense")


# One test per row of the newcomer's table (issue #15): each bad input is refused by fastnn,
# before any work, with what was wrong and what to do.


def test_fit_without_targets(model):
    with pytest.raises(ValueError, match="fit needs targets: got None"):
        model.fit(X, None, verbose=0)
    with pytest.raises(ValueError, match="fit needs targets: got None"):
        model.fit(X, None, batch_size=None, verbose=0)
    with pytest.raises(ValueError, match="evaluate needs targets"):
        model.evaluate(X, None)
    with pytest.raises(ValueError, match="validation_data needs targets"):
        model.fit(X, Y, validation_data=(X, None), verbose=0)


def test_zero_features(backend_name):
    m = fastnn.Sequential([Dense(3, "relu"), Dense(1, "sigmoid")], seed=0)  # built from the data
    m.compile("sgd", "binary_crossentropy")
    with pytest.raises(ValueError, match="0 features"):
        m.fit(np.zeros((4, 0)), Y, verbose=0)
    assert not m.built


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "pure"])
def test_softmax_over_one_unit(backend_name, kernels):
    with fastnn.use(backend_name, kernels=kernels):
        m = fastnn.Sequential([Dense(3, "relu", input_dim=2), Dense(1, "softmax")], seed=0)
    m.compile("sgd", "categorical_crossentropy")
    with pytest.raises(ValueError, match=r"softmax over 1 unit, which always outputs 1.*Dense\(1, 'sigmoid'\)"):
        m.fit(X, Y.reshape(-1, 1), verbose=0)


@pytest.mark.parametrize("argument,value,error,message", [
    ("batch_size", 2.5, TypeError, "batch_size must be an integer, got 2.5"),
    ("batch_size", "32", TypeError, "batch_size must be an integer, got '32'"),
    ("batch_size", True, TypeError, "batch_size must be an integer, got True"),
    ("batch_size", -1, ValueError, "batch_size must be at least 1, got -1"),
    ("epochs", True, TypeError, "epochs must be an integer, got True"),
    ("epochs", 1.5, TypeError, "epochs must be an integer, got 1.5"),
    ("epochs", -1, ValueError, "epochs must be at least 0, got -1"),
])
def test_fit_counts_are_checked(model, argument, value, error, message):
    with pytest.raises(error, match=message):
        model.fit(X, Y, verbose=0, **{argument: value})


@pytest.mark.parametrize("value,error,message", [
    (-1, ValueError, "batch_size must be at least 1, got -1"),
    (0, ValueError, "batch_size must be at least 1, got 0"),
    (2.5, TypeError, "batch_size must be an integer, got 2.5"),
])
def test_predict_and_evaluate_batch_sizes_are_checked(model, value, error, message):
    with pytest.raises(error, match=message):
        model.predict(X, batch_size=value)
    with pytest.raises(error, match=message):
        model.evaluate(X, Y, batch_size=value)


def test_integral_numpy_counts_are_accepted(model):
    history = model.fit(X, Y, epochs=np.int64(2), batch_size=np.int32(4), verbose=0)
    assert len(history.epoch) == 2


def test_batched_evaluate_and_predict_equal_one_batch(model):
    x = np.random.default_rng(0).standard_normal((300, 2))
    y = (x[:, 0] > 0).astype(float)
    whole, batched = model.evaluate(x, y, batch_size=300), model.evaluate(x, y, batch_size=7)
    assert batched == pytest.approx(whole, rel=1e-5)
    np.testing.assert_allclose(fastnn.to_numpy(model.predict(x, batch_size=7)),
                               fastnn.to_numpy(model.predict(x)), rtol=1e-6)


def test_load_a_npy_file(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(ValueError, match=r"x.npy holds a single NumPy array \(.npy\), not a fastnn model"):
        fastnn.load(path)


@pytest.mark.parametrize("drop", ["model", "weight_1", "optimizer_0_m"])
def test_load_an_incomplete_model_file(tmp_path, drop):
    import json

    with fastnn.use("numpy", kernels=False):  # any optimizer state will do: no compile needed
        m = fastnn.Sequential([Dense(3, "relu", input_dim=2), Dense(1, "sigmoid")], seed=0)
    m.compile("adam", "binary_crossentropy")
    m.fit(X, Y, verbose=0)
    path = m.save(tmp_path / "m.npz")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    if drop == "model":
        config = json.loads(str(arrays["config"]))
        del config["model"]
        arrays["config"] = np.array(json.dumps(config))
    else:
        del arrays[drop]
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=f"m.npz is an incomplete fastnn model file: .*{drop}"):
        fastnn.load(path)


def test_save_into_a_missing_or_read_only_folder(tmp_path):
    m = fastnn.Sequential([Dense(1, "sigmoid", input_dim=2)], seed=0)
    m.compile("sgd", "binary_crossentropy")
    missing = tmp_path / "nowhere" / "m.npz"
    with pytest.raises(FileNotFoundError, match=f"cannot save to {missing}: the folder .*nowhere does not exist"):
        m.save(missing)
    with pytest.raises(FileNotFoundError, match="cannot save to .*nowhere"):
        m.fit(X, Y, verbose=0, callbacks=[fastnn.ModelCheckpoint(str(missing))])
    assert m.optimizer.iterations == 0  # refused before any training
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        with pytest.raises(PermissionError, match=f"cannot save to {locked / 'm.npz'}: the folder .* is not writable"):
            m.save(locked / "m.npz")
    finally:
        locked.chmod(0o700)


def test_saved_files_are_readable_by_others(tmp_path):
    m = fastnn.Sequential([Dense(1, "sigmoid", input_dim=2)], seed=0)
    m.compile("sgd", "binary_crossentropy")
    old = os.umask(0o022)
    try:
        path = m.save(tmp_path / "m.npz")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


@pytest.mark.parametrize("optimizer,message", [
    (lambda: fastnn.optimizers.SGD("0.1"), "SGD lr must be a number, got '0.1'"),
    (lambda: fastnn.optimizers.SGD(0.1, momentum="0.9"), "SGD momentum must be a number"),
    (lambda: fastnn.optimizers.Adam(beta_1=None), "Adam beta_1 must be a number, got None"),
])
def test_optimizer_hyperparameters_must_be_numbers(optimizer, message):
    with pytest.raises(TypeError, match=message):
        optimizer()


@pytest.mark.parametrize("optimizer,message", [
    (lambda: fastnn.optimizers.SGD(0), r"SGD lr must be in \(0, inf\), got 0.0"),
    (lambda: fastnn.optimizers.SGD(0.1, momentum=1.0), r"SGD momentum must be in \[0, 1\), got 1.0"),
    (lambda: fastnn.optimizers.Adam(beta_2=-0.1), r"Adam beta_2 must be in \[0, 1\)"),
])
def test_optimizer_hyperparameters_in_range(optimizer, message):
    with pytest.raises(ValueError, match=message):
        optimizer()


def test_a_plain_function_as_callback(model):
    with pytest.raises(TypeError, match=r"callbacks must be fastnn.Callback instances.*LambdaCallback"):
        model.fit(X, Y, verbose=0, callbacks=[lambda epoch, logs: None])


def test_model_checkpoint_names_a_missing_log(tmp_path, model):
    checkpoint = fastnn.ModelCheckpoint(str(tmp_path / "m-{val_acc:.2f}.npz"))
    with pytest.raises(ValueError, match=r"ModelCheckpoint names in its filepath 'val_acc' but the logs will have "
                                         r"loss, accuracy, val_loss, val_accuracy"):
        model.fit(X, Y, verbose=0, validation_data=(X, Y), callbacks=[checkpoint])
    assert model.optimizer.iterations == 0


def test_metrics_given_as_a_string(model):
    with pytest.raises(TypeError, match=r"metrics must be a list of names.*\['accuracy'\]"):
        model.compile("sgd", "binary_crossentropy", metrics="accuracy")


def test_default_metrics_follow_the_loss():
    m = fastnn.Sequential([Dense(1, input_dim=2)], seed=0)
    m.compile("sgd", "mse")
    assert list(m.evaluate(X, Y)) == ["loss"]
    m.compile("sgd", "binary_crossentropy")
    assert list(m.evaluate(X, Y)) == ["loss", "accuracy"]
