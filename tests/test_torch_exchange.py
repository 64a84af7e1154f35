"""Weights in and out of PyTorch (fastnn.from_torch, model.to_torch) and .safetensors files:
the same numbers both ways, readable by the safetensors package itself."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from conftest import backend_params
from fastnn.layers import Activation, Dense, Dropout

torch = pytest.importorskip("torch")
safetensors_numpy = pytest.importorskip("safetensors.numpy")
nn = torch.nn

BACKENDS = list(backend_params(("numpy", "array_api_strict", "torch", "jax", "cupy")))


def torch_network(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 6), nn.LeakyReLU(0.2), nn.Dropout(0.0),
                         nn.Linear(6, 5), nn.GELU(approximate="tanh"), nn.Linear(5, 4, bias=False), nn.SiLU(),
                         nn.Linear(4, 4), nn.ReLU(), nn.Identity(), nn.Linear(4, 2), nn.Sigmoid()).double()


def data(rows=16, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, 3)), rng.random((rows, 2))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("name", BACKENDS)
def test_from_torch_then_one_step_then_to_torch_equals_the_step_in_pytorch(name, optimizer):
    x, y = data()
    reference = torch_network()
    with fastnn.use(name, dtype="float64"):
        model = fastnn.from_torch(reference)
        assert model.backend.dtype_name == "float64"
        assert len(model.layers) == 8  # each Linear + activation became one Dense
        np.testing.assert_allclose(fastnn.to_numpy(model.predict(x)), reference(torch.from_numpy(x)).detach().numpy(),
                                   rtol=1e-12, atol=1e-12)
        fast = fastnn.optimizers.SGD(0.1) if optimizer == "sgd" else fastnn.optimizers.Adam(0.01)
        model.compile(fast, "mse")
        model.train_on_batch(x, y)
        stepped = model.to_torch()
    slow = (torch.optim.SGD(reference.parameters(), lr=0.1) if optimizer == "sgd"
            else torch.optim.Adam(reference.parameters(), lr=0.01))
    slow.zero_grad()
    nn.functional.mse_loss(reference(torch.from_numpy(x)), torch.from_numpy(y)).backward()
    slow.step()
    ours, theirs = stepped.state_dict(), reference.state_dict()
    assert list(ours) == list(theirs)
    for key in theirs:
        assert ours[key].dtype == torch.float64
        np.testing.assert_allclose(ours[key].numpy(), theirs[key].numpy(), rtol=1e-10, atol=1e-10, err_msg=key)


@pytest.mark.parametrize("name", BACKENDS)
def test_to_torch_computes_what_predict_computes(name):
    x, _ = data(rows=9)
    with fastnn.use(name):
        model = fastnn.Sequential([Dense(7, "relu", input_dim=3), Dropout(0.5), Dense(5, "swish", use_bias=False),
                                   Activation("softmax"), Dense(2, "gelu")], seed=0)
        module = model.to_torch().eval()
        expected = fastnn.to_numpy(model.predict(x))
    assert next(module.parameters()).dtype == torch.float32
    np.testing.assert_allclose(module(torch.from_numpy(x).float()).detach().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_from_torch_names_what_it_cannot_take():
    with pytest.raises(fastnn.UnsupportedLayerError, match="module 1 .*Conv1d.* has no fastnn equivalent"):
        fastnn.from_torch(nn.Sequential(nn.Linear(2, 3), nn.Conv1d(1, 1, 1)))
    with pytest.raises(fastnn.UnsupportedLayerError, match="tanh approximation"):
        fastnn.from_torch(nn.Sequential(nn.Linear(2, 3), nn.GELU()))
    with pytest.raises(fastnn.UnsupportedLayerError, match="last axis"):
        fastnn.from_torch(nn.Sequential(nn.Linear(2, 3), nn.Softmax(dim=0)))
    with pytest.raises(TypeError, match="float32 or float64"):
        fastnn.from_torch(nn.Sequential(nn.Linear(2, 3)).half())
    with pytest.raises(TypeError, match="takes a torch.nn.Module"):
        fastnn.from_torch([nn.Linear(2, 3)])


# -- .safetensors -------------------------------------------------------------------------

@pytest.mark.parametrize("name", BACKENDS)
def test_a_safetensors_file_round_trips_and_the_safetensors_reader_reads_it(name, tmp_path):
    x, y = data()
    with fastnn.use(name):
        model = fastnn.Sequential([Dense(6, "tanh", input_dim=3), Dense(2, "sigmoid")], seed=0)
        model.compile(fastnn.optimizers.Adam(0.01), "binary_crossentropy")
        model.fit(x, (y > 0.5).astype(float), epochs=2, batch_size=8, verbose=0)
        model.save(tmp_path / "m.safetensors")
        model.save(tmp_path / "m.npz")
        loaded = fastnn.load(tmp_path / "m.safetensors")
        np.testing.assert_array_equal(fastnn.to_numpy(loaded.predict(x)), fastnn.to_numpy(model.predict(x)))
        # the same optimizer state: a further step equals one from the .npz file
        from_npz = fastnn.load(tmp_path / "m.npz")
        loaded.train_on_batch(x, (y > 0.5).astype(float))
        from_npz.train_on_batch(x, (y > 0.5).astype(float))
        for a, b in zip(loaded.get_weights(), from_npz.get_weights()):
            np.testing.assert_array_equal(a, b)
    tensors = safetensors_numpy.load_file(str(tmp_path / "m.safetensors"))
    np.testing.assert_array_equal(tensors["0.weight"], model.get_weights()[0].T)  # PyTorch's (out, in)
    np.testing.assert_array_equal(tensors["2.bias"], model.get_weights()[3])  # Dense(tanh) is Linear + Tanh
    module = model.to_torch()
    module.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items() if not k.startswith("fastnn.")})


def test_a_torch_state_dict_saved_by_safetensors_loads_into_fastnn(tmp_path):
    from safetensors.torch import save_file

    trained_in_torch = torch_network(seed=5)
    save_file(trained_in_torch.state_dict(), str(tmp_path / "torch.safetensors"))
    model = fastnn.from_torch(torch_network(seed=6))  # the same architecture, other weights
    model.load_weights(tmp_path / "torch.safetensors")
    x, _ = data()
    np.testing.assert_allclose(fastnn.to_numpy(model.predict(x)),
                               trained_in_torch(torch.from_numpy(x)).detach().numpy(), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="no fastnn architecture .*model.load_weights"):
        fastnn.load(tmp_path / "torch.safetensors")
    smaller = fastnn.Sequential([Dense(8, "tanh", input_dim=3), Dense(2)], seed=0)
    with pytest.raises(ValueError, match="torch.safetensors does not fit this model's weights: missing none, "
                                         "unexpected \\['12.bias'"):
        smaller.load_weights(tmp_path / "torch.safetensors")


def test_a_damaged_safetensors_file_is_named(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ValueError, match="bad.safetensors is not a readable .safetensors file"):
        fastnn.load(tmp_path / "bad.safetensors")
    with pytest.raises(FileNotFoundError):
        fastnn.load(tmp_path / "absent.safetensors")
