"""Serving a fastnn model elsewhere: ONNX files checked by onnx.checker and run by ONNX Runtime
against model.predict, weights to and from PyTorch, .safetensors files, and the clear errors."""

from __future__ import annotations

import os

import numpy as np
import pytest

import fastnn
from conftest import backend_params
from fastnn.activations import ACTIVATIONS, Activation as ActivationFunction
from fastnn.examples import EXAMPLES
from fastnn.layers import (Activation, AveragePooling2D, Conv1D, Conv2D, Dense, Dropout, Flatten,
                           GlobalAveragePooling2D, Layer, MaxPooling2D, Reshape)

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

BACKENDS = list(backend_params(("numpy", "array_api_strict", "torch", "jax", "cupy")))
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}
BATCHES = (1, 7, 1000)


def session(path):
    options = ort.SessionOptions()
    options.log_severity_level = 3  # no warnings on stderr
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def assert_runtime_matches_predict(model, path, n_features, dtype):
    """n_features: an int (flat rows) or a sample shape."""
    checked = onnx.load(str(path))
    onnx.checker.check_model(checked, full_check=True)
    batch_axis = checked.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_axis.dim_param == "batch"  # dynamic: any batch size runs
    runtime = session(path)
    rng = np.random.default_rng(7)
    for rows in BATCHES:
        shape = (n_features,) if isinstance(n_features, int) else tuple(n_features)
        x = (3 * rng.standard_normal((rows, *shape))).astype(dtype)
        (served,) = runtime.run(["output"], {"input": x})
        np.testing.assert_allclose(served, fastnn.to_numpy(model.predict(x)), rtol=TOLERANCE[dtype],
                                   atol=TOLERANCE[dtype])


def trained(layers, dtype, n_features=3, seed=0):
    model = fastnn.Sequential(layers, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((64, n_features))
    y = (x[:, :1] > 0).astype(float)
    model.compile(fastnn.optimizers.Adam(0.01), "mse")
    model.fit(x, np.repeat(y, model.layers[-1].output_dim if model.built else 1, axis=1), epochs=2,
              batch_size=16, verbose=0)
    return model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("name", BACKENDS)
def test_every_layer_and_activation_runs_in_onnx_runtime_as_predict(name, activation, dtype, tmp_path):
    inner = "tanh" if activation == "exponential" else activation  # exp of exp of exp overflows float32
    with fastnn.use(name, dtype=dtype):
        model = trained([Dense(6, activation, input_dim=3), Dropout(0.25), Dense(5, inner, use_bias=False),
                         Activation(activation), Dense(2)], dtype)
        path = model.export_onnx(tmp_path / "m.onnx")
        assert_runtime_matches_predict(model, path, 3, dtype)


IMAGE_NETWORKS = {
    "conv-pool": lambda: [Conv2D(4, 3, activation="relu"), MaxPooling2D(2, padding="same"),
                          Conv2D(3, (2, 3), strides=2, padding="same", activation="tanh", use_bias=False),
                          AveragePooling2D(2, strides=1, padding="same"), Flatten(), Dense(5, "softmax")],
    "global-average": lambda: [Conv2D(6, 3, padding="same", activation="swish"), GlobalAveragePooling2D(), Dense(2)],
    "reshape-conv1d": lambda: [Reshape((9, 14)), Conv1D(4, 3, strides=2, padding="same", activation="gelu"), Flatten(),
                               Dense(3)],
}


@pytest.mark.parametrize("name", BACKENDS)
def test_normalization_and_embedding_layers_run_in_onnx_runtime_as_predict(name, tmp_path):
    from fastnn.layers import BatchNormalization, Embedding, LayerNormalization

    with fastnn.use(name):
        model = fastnn.Sequential([Embedding(7, 3), Flatten(), Dense(6), BatchNormalization(momentum=0.5),
                                   LayerNormalization(), Dense(2)], input_shape=(4,), seed=0)
        model.compile(fastnn.optimizers.Adam(0.01), "mse")
        rng = np.random.default_rng(0)
        ids = rng.integers(0, 7, (32, 4)).astype(np.float32)
        model.fit(ids, rng.standard_normal((32, 2)), epochs=3, batch_size=8, verbose=0)
        path = model.export_onnx(tmp_path / "tabular.onnx")
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    runtime = session(path)
    for rows in BATCHES:
        x = rng.integers(0, 7, (rows, 4)).astype(np.float32)
        (served,) = runtime.run(["output"], {"input": x})
        np.testing.assert_allclose(served, fastnn.to_numpy(model.predict(x)), rtol=1e-5, atol=1e-5)


# ONNX Runtime's CPU provider has no float64 Conv: float64 files are only checked by onnx.checker
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("network", sorted(IMAGE_NETWORKS))
@pytest.mark.parametrize("name", BACKENDS)
def test_convolution_and_pooling_layers_run_in_onnx_runtime_as_predict(name, network, dtype, tmp_path):
    with fastnn.use(name, dtype=dtype):
        model = fastnn.Sequential(IMAGE_NETWORKS[network](), input_shape=(9, 7, 2), seed=0, dtype=dtype)
        model.compile(fastnn.optimizers.Adam(0.01), "mse")
        rng = np.random.default_rng(0)
        model.fit(rng.standard_normal((16, 9, 7, 2)), rng.standard_normal((16, model.output_dim)), epochs=2,
                  batch_size=8, verbose=0)
        path = model.export_onnx(tmp_path / "cnn.onnx")
        if dtype == "float64":
            onnx.checker.check_model(onnx.load(str(path)), full_check=True)
            return
        assert_runtime_matches_predict(model, path, (9, 7, 2), dtype)


@pytest.mark.parametrize("example", sorted(EXAMPLES))
@pytest.mark.parametrize("name", BACKENDS)
def test_the_tutorial_networks_run_in_onnx_runtime_as_predict(name, example, tmp_path):
    with fastnn.use(name):
        model = EXAMPLES[example](epochs=3)["model"]
        path = model.export_onnx(tmp_path / f"{example}.onnx")
        assert_runtime_matches_predict(model, path, model.input_shape, "float32")


def test_the_export_command_converts_a_saved_model(tmp_path, capsys):
    from fastnn.cli import main

    model = trained([Dense(4, "relu", input_dim=3), Dense(1, "sigmoid")], "float32")
    model.save(tmp_path / "m.npz")
    assert main(["export", str(tmp_path / "m.npz"), str(tmp_path / "m.onnx")]) == 0
    assert_runtime_matches_predict(model, tmp_path / "m.onnx", 3, "float32")
    assert main(["export", str(tmp_path / "m.npz"), str(tmp_path / "m.safetensors")]) == 0
    np.testing.assert_array_equal(fastnn.load(tmp_path / "m.safetensors").get_weights()[0], model.get_weights()[0])
    assert main(["export", str(tmp_path / "missing.npz"), str(tmp_path / "x.onnx")]) == 2
    assert "missing.npz" in capsys.readouterr().err


# -- bad input: clear errors, nothing left at the target -------------------------------------

class Doubling(Layer):  # a layer of the user's, with no ONNX or PyTorch translation
    def forward(self, x, need_dx=True, logits=False, train=False, ops=None):
        return 2 * x, lambda dy: 2 * dy

    def get_config(self):
        return {"class": "Doubling"}

    def __repr__(self):
        return "Doubling()"


class Cube(ActivationFunction):
    name = "cube"

    def forward(self, z):
        return z * z * z


def leftovers(folder):
    return sorted(os.listdir(folder))


def test_an_unsupported_layer_or_activation_is_named_and_nothing_is_written(tmp_path):
    model = fastnn.Sequential([Dense(3, input_dim=2), Doubling()], seed=0)
    with pytest.raises(fastnn.UnsupportedLayerError, match="Doubling\\(\\) has no ONNX export"):
        model.export_onnx(tmp_path / "m.onnx")
    with pytest.raises(fastnn.UnsupportedLayerError, match="Doubling\\(\\) has no PyTorch equivalent"):
        model.to_torch()
    cubed = fastnn.Sequential([Dense(3, Cube(), input_dim=2)], seed=0)
    with pytest.raises(fastnn.UnsupportedLayerError, match="activation Cube\\(\\) has no ONNX export"):
        cubed.export_onnx(tmp_path / "c.onnx")
    assert leftovers(tmp_path) == []


def test_an_unbuilt_model_is_refused(tmp_path):
    model = fastnn.Sequential([Dense(3, "relu"), Dense(1)])
    with pytest.raises(RuntimeError, match="not built: it has no weights yet"):
        model.export_onnx(tmp_path / "m.onnx")
    with pytest.raises(RuntimeError, match="not built"):
        model.to_torch()
    assert leftovers(tmp_path) == []


def test_an_uncompiled_built_model_exports(tmp_path):
    """predict needs no loss or optimizer, so neither does export (from_torch's models are uncompiled)."""
    model = fastnn.Sequential([Dense(3, "tanh", input_dim=2)], seed=0)
    assert_runtime_matches_predict(model, model.export_onnx(tmp_path / "m.onnx"), 2, "float32")


@pytest.mark.parametrize("filename", ["m.onnx", "m.npz", "m.safetensors"])
def test_a_missing_folder_is_named_for_every_format(filename, tmp_path):
    model = trained([Dense(2, input_dim=3)], "float32")
    target = tmp_path / "nowhere" / filename
    write = model.export_onnx if filename.endswith(".onnx") else model.save
    with pytest.raises(FileNotFoundError, match=f"cannot save to {target}: the folder .*nowhere does not exist"):
        write(target)
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
@pytest.mark.parametrize("filename", ["m.onnx", "m.npz", "m.safetensors"])
def test_a_folder_that_cannot_be_written_is_one_fastnn_error_naming_the_path(filename):
    model = trained([Dense(2, input_dim=3)], "float32")
    target = f"/proc/self/{filename}"
    write = model.export_onnx if filename.endswith(".onnx") else model.save
    with pytest.raises(OSError, match=f"cannot save to {target}") as caught:
        write(target)
    assert ".tmp" not in str(caught.value)
    assert not os.path.exists(target)


def test_a_failing_write_leaves_nothing_behind(tmp_path, monkeypatch):
    model = trained([Dense(2, input_dim=3)], "float32")
    monkeypatch.setattr(os, "replace", lambda *args: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    for filename in ("m.onnx", "m.npz", "m.safetensors"):
        write = model.export_onnx if filename.endswith(".onnx") else model.save
        with pytest.raises(fastnn.SaveError, match=f"cannot save to {tmp_path / filename}: No space left on device"):
            write(tmp_path / filename)
    assert leftovers(tmp_path) == []
