"""Callbacks, the NaN guard, save/load across backends, plots and the `fastnn` command."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn import cli, examples
from fastnn.layers import Dense

from conftest import backend_params, to_np

X, Y = fastnn.datasets.logic("xor")


def xor_model(seed=0):
    model = fastnn.Sequential([Dense(8, "tanh", input_dim=2), Dense(1, "sigmoid")], seed=seed)
    model.compile({"name": "adam", "lr": 0.05}, "binary_crossentropy")
    return model


def test_early_stopping_restores_best_weights(backend_name):
    model = xor_model()
    stopper = fastnn.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    model.compile(fastnn.optimizers.SGD(50.0), "mse")  # far too large: the loss stops improving
    history = model.fit(X, Y, epochs=200, batch_size=None, validation_data=(X, Y), callbacks=[stopper], verbose=0)
    assert stopper.stopped_epoch is not None and len(history.epoch) < 200
    # val_loss is measured after each epoch's update: the weights it belongs to are the ones kept
    assert model.evaluate(X, Y)["loss"] == pytest.approx(min(history.history["val_loss"]), rel=1e-5)


def test_early_stopping_names_missing_metric():
    model = xor_model()
    with pytest.raises(ValueError, match="EarlyStopping monitors .val_loss. but the logs will have loss, accuracy; pass validation_data"):
        model.fit(X, Y, epochs=2, callbacks=[fastnn.EarlyStopping()], verbose=0)


def test_model_checkpoint_and_lambda_callback(tmp_path, backend_name):
    seen = []
    model = xor_model()
    model.fit(X, Y, epochs=3, verbose=0, validation_data=(X, Y), callbacks=[
        fastnn.ModelCheckpoint(str(tmp_path / "m-{epoch}.npz")),
        fastnn.ModelCheckpoint(str(tmp_path / "best.npz"), monitor="val_accuracy", save_best_only=True),
        fastnn.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append((epoch, logs["val_loss"])),
                              on_batch_end=lambda batch, logs: seen.append(("batch", logs["loss"])))])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.npz", "m-1.npz", "m-2.npz", "m-3.npz"]
    assert [e for e, _ in seen if e != "batch"] == [0, 1, 2]
    assert sum(1 for e, _ in seen if e == "batch") == 3  # one batch of 4 rows per epoch


def test_nan_guard_names_epoch_and_batch(backend_name):
    model = xor_model()

    def poison(batch, logs):  # in epoch 2, after batch 2, a weight becomes NaN
        if len(history_epochs) == 1 and batch == 1:
            weights = model.get_weights()
            weights[0][0, 0] = np.nan
            model.set_weights(weights)

    history_epochs = []
    callbacks = [fastnn.LambdaCallback(on_batch_end=poison,
                                       on_epoch_end=lambda epoch, logs: history_epochs.append(epoch))]
    with pytest.warns(RuntimeWarning, match=r"NaN or Inf at epoch 2, batch 3 of 4"):
        history = model.fit(X, Y, epochs=50, batch_size=1, shuffle=False, verbose=0, callbacks=callbacks)
    assert history.epoch == [0, 1]


@pytest.mark.parametrize("target", list(backend_params()))
def test_save_load_round_trip_across_backends(tmp_path, backend_name, target):
    model = xor_model()
    model.fit(X, Y, epochs=20, verbose=0)
    path = model.save(tmp_path / "xor.npz")
    assert not [p for p in tmp_path.iterdir() if p.name != "xor.npz"]  # no temporary file left
    loaded = fastnn.load(path, backend=target)
    assert loaded.backend.name == target
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)  # bit for bit
    same_backend = fastnn.Sequential.from_config(model.get_config())  # the original, on the target
    same_backend.to(target).set_weights(model.get_weights())
    np.testing.assert_array_equal(to_np(loaded.predict(X)), to_np(same_backend.predict(X)))
    assert loaded.optimizer.iterations == model.optimizer.iterations
    for a, b in zip(loaded.optimizer.state, model.optimizer.state):
        for k in a:
            np.testing.assert_array_equal(to_np(a[k]), to_np(b[k]))
    # training continues identically from the restored optimizer state
    model.fit(X, Y, epochs=3, shuffle=False, verbose=0)
    loaded.fit(X, Y, epochs=3, shuffle=False, verbose=0)
    np.testing.assert_allclose(to_np(loaded.predict(X)), to_np(model.predict(X)), rtol=1e-5)  # fused vs pure


def test_truncated_and_foreign_files_are_refused(tmp_path):
    path = xor_model().save(tmp_path / "m.npz")
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable fastnn model file"):
        fastnn.load(tmp_path / "cut.npz")
    np.savez(tmp_path / "other.npz", a=np.ones(3))
    with pytest.raises(ValueError, match="not a readable fastnn model file"):
        fastnn.load(tmp_path / "other.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="not a readable fastnn model file"):
        fastnn.load(tmp_path / "text.npz")


def test_plots_write_png(tmp_path):
    from fastnn.plots import plot_decision_boundary, plot_history

    model = xor_model()
    history = model.fit(X, Y, epochs=5, verbose=0)
    plot_history(history, path=tmp_path / "h.png")
    plot_decision_boundary(model, X, Y, path=tmp_path / "b.png")
    assert (tmp_path / "h.png").stat().st_size > 5_000 and (tmp_path / "b.png").stat().st_size > 5_000
    with pytest.raises(ValueError, match="needs 2 input features"):
        plot_decision_boundary(model, np.ones((3, 3)), np.ones(3))


@pytest.mark.parametrize("name", sorted(examples.EXAMPLES))
def test_cli_trains_every_network(tmp_path, capsys, name):
    png, saved = tmp_path / f"{name}.png", tmp_path / f"{name}.npz"
    assert cli.main(["train", name, "--epochs", "3", "--verbose", "0", "--plot", str(png), "--save", str(saved)]) == 0
    out = capsys.readouterr().out
    assert f"{name}: trained on numpy" in out and "loss:" in out
    assert png.stat().st_size > 5_000
    assert fastnn.load(saved).count_params() > 0


def test_cli_as_module_info_and_backend_error():
    out = subprocess.run([sys.executable, "-m", "fastnn", "info"], capture_output=True, text=True, check=True).stdout
    assert "backends usable here" in out
    if "cupy" not in fastnn.available_backends():
        proc = subprocess.run([sys.executable, "-m", "fastnn", "train", "xor", "--backend", "cupy"],
                              capture_output=True, text=True)
        assert proc.returncode == 2 and "backend 'cupy' is unavailable" in proc.stderr


def test_progress_bar_per_batch_on_long_epochs():
    import io

    model = xor_model()
    x, y = np.tile(X, (300, 1)), np.tile(Y, 300)
    out = io.StringIO()
    model.fit(x, y, epochs=1, batch_size=1, verbose=0, callbacks=[fastnn.ProgressBar(stream=out)])
    assert "/1200" in out.getvalue() and "batch/s" in out.getvalue()  # the transient per-batch bar


def test_validation_split_holds_out_the_last_rows(backend_name):
    x = np.random.default_rng(0).standard_normal((50, 2))
    y = (x[:, 0] > 0).astype(float)
    split, explicit = xor_model(), xor_model()
    h1 = split.fit(x, y, epochs=3, batch_size=8, validation_split=0.2, verbose=0)
    h2 = explicit.fit(x[:40], y[:40], epochs=3, batch_size=8, validation_data=(x[40:], y[40:]), verbose=0)
    assert h1.history.keys() == h2.history.keys() >= {"val_loss", "val_accuracy"}
    np.testing.assert_allclose(h1.history["val_loss"], h2.history["val_loss"], rtol=1e-6)


@pytest.mark.parametrize("split,message", [(1.0, r"validation_split must be in \(0, 1\)"),
                                           (-0.1, r"validation_split must be in \(0, 1\)"),
                                           (0.9, "leaves an empty training set")])
def test_validation_split_out_of_range(split, message):
    with pytest.raises(ValueError, match=message):
        xor_model().fit(X, Y, validation_split=split, verbose=0)
    with pytest.raises(ValueError, match="validation_data or validation_split, not both"):
        xor_model().fit(X, Y, validation_split=0.5, validation_data=(X, Y), verbose=0)


def test_initial_epoch_resumes_the_count(backend_name):
    model = xor_model()
    seen = []
    history = model.fit(X, Y, epochs=5, initial_epoch=3, verbose=0,
                        callbacks=[fastnn.LambdaCallback(on_epoch_begin=lambda epoch, logs=None: seen.append(epoch))])
    assert seen == [3, 4] and history.epoch == [3, 4]


def test_evaluate_and_predict_show_progress_when_asked(capsys):
    model = xor_model()
    x = np.tile(X, (10, 1))
    model.evaluate(x, np.tile(Y, 10), batch_size=4, verbose=1)
    model.predict(x, batch_size=4, verbose=1)
    err = capsys.readouterr().err
    assert "10/10" in err
    model.evaluate(x, np.tile(Y, 10), batch_size=4)
    assert capsys.readouterr().err == ""
