"""BatchNormalization, LayerNormalization and Embedding: forward and backward equal to their
torch.nn twins to 1e-10 in float64 on every backend, BatchNormalization's moving statistics
updated as PyTorch's and kept through save/load on another backend, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from conftest import backend_params, to_np
from fastnn.layers import BatchNormalization, Dense, Embedding, Flatten, LayerNormalization

BACKENDS = list(backend_params(("numpy", "array_api_strict", "torch", "jax")))
TOL = dict(rtol=1e-10, atol=1e-10)


def run(name, layer, shape, x, dy, params=None, state=None, train=True):
    with fastnn.use(name, dtype="float64") as be:
        layer.build(shape, np.random.default_rng(0), be)
        if params is not None:
            layer.set_params([be.asarray(p) for p in params])
        if state is not None:
            layer.set_state([be.asarray(s) for s in state])
        y, backprop = layer.forward(be.asarray(x), need_dx=True, train=train)
        dx = backprop(be.asarray(dy))
        return to_np(y), None if dx is None else to_np(dx), [to_np(g) for g in layer.grads], [to_np(s) for s in layer.state]


def torch_run(module, x, dy, channels_last_image=False):
    import torch

    tx = torch.tensor(x, requires_grad=True)
    inp = tx.permute(0, 3, 1, 2) if channels_last_image else tx
    out = module(inp)
    out = out.permute(0, 2, 3, 1) if channels_last_image else out
    (out * torch.tensor(dy)).sum().backward()
    return out.detach().numpy(), tx.grad.numpy(), [p.grad.numpy() for p in module.parameters()]


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(5,), (4, 3, 2)], ids=["1d", "2d-image"])
@pytest.mark.parametrize("name", BACKENDS)
def test_batch_normalization_equals_torch(name, shape, train):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, dy = rng.standard_normal((6, *shape)) * 3 + 1, rng.standard_normal((6, *shape))
    c = shape[-1]
    gamma, beta = rng.standard_normal(c), rng.standard_normal(c)
    mean0, var0 = rng.standard_normal(c), rng.uniform(0.5, 2, c)
    layer = BatchNormalization(momentum=0.9, epsilon=1e-5)
    y, dx, grads, state = run(name, layer, shape, x, dy, [gamma, beta], [mean0, var0], train)
    module = (torch.nn.BatchNorm1d if len(shape) == 1 else torch.nn.BatchNorm2d)(c, momentum=0.1, eps=1e-5).double()
    with torch.no_grad():
        module.weight.copy_(torch.tensor(gamma)), module.bias.copy_(torch.tensor(beta))
        module.running_mean.copy_(torch.tensor(mean0)), module.running_var.copy_(torch.tensor(var0))
    module.train(train)
    y_ref, dx_ref, grads_ref = torch_run(module, x, dy, channels_last_image=len(shape) == 3)
    for got, ref in zip((y, dx, *grads, *state), (y_ref, dx_ref, *grads_ref, module.running_mean.numpy(),
                                                  module.running_var.numpy())):
        np.testing.assert_allclose(got, ref, **TOL)


@pytest.mark.parametrize("name", BACKENDS)
def test_layer_normalization_equals_torch(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x, dy = rng.standard_normal((4, 3, 6)) * 2, rng.standard_normal((4, 3, 6))
    gamma, beta = rng.standard_normal(6), rng.standard_normal(6)
    y, dx, grads, _ = run(name, LayerNormalization(epsilon=1e-5), (3, 6), x, dy, [gamma, beta])
    module = torch.nn.LayerNorm(6, eps=1e-5).double()
    with torch.no_grad():
        module.weight.copy_(torch.tensor(gamma)), module.bias.copy_(torch.tensor(beta))
    y_ref, dx_ref, grads_ref = torch_run(module, x, dy)
    for got, ref in zip((y, dx, *grads), (y_ref, dx_ref, *grads_ref)):
        np.testing.assert_allclose(got, ref, **TOL)


@pytest.mark.parametrize("name", BACKENDS)
def test_embedding_equals_torch_and_repeated_ids_add_up(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    ids = np.array([[1, 4, 1], [0, 4, 4]])
    table, dy = rng.standard_normal((6, 3)), rng.standard_normal((2, 3, 3))
    y, dx, grads, _ = run(name, Embedding(6, 3), (3,), ids.astype(float), dy, [table])
    module = torch.nn.Embedding(6, 3).double()
    with torch.no_grad():
        module.weight.copy_(torch.tensor(table))
    out = module(torch.tensor(ids))
    (out * torch.tensor(dy)).sum().backward()
    assert dx is None
    np.testing.assert_allclose(y, out.detach().numpy(), **TOL)
    np.testing.assert_allclose(grads[0], module.weight.grad.numpy(), **TOL)


def tabular_model(dtype="float64"):
    return fastnn.Sequential([Embedding(10, 4), Flatten(), Dense(8), BatchNormalization(momentum=0.8), Dense(1)],
                             input_shape=(3,), seed=0, dtype=dtype)


@pytest.mark.parametrize("target", [b for b in BACKENDS if b.values[0] != "numpy"])
def test_batch_statistics_survive_save_and_load_on_another_backend(target, tmp_path):
    rng = np.random.default_rng(4)
    x = rng.integers(0, 10, (40, 3)).astype(float)
    y = rng.standard_normal(40)
    with fastnn.use("numpy", dtype="float64"):
        model = tabular_model()
        model.compile("adam", "mse")
        model.fit(x, y, epochs=3, batch_size=8, verbose=0)
        moving = model.layers[3].state
        assert not np.allclose(to_np(moving[0]), 0) and not np.allclose(to_np(moving[1]), 1)
        expected = to_np(model.predict(x))
        names = [w.shape for w in model.get_weights()]
        path = model.save(tmp_path / "bn.npz")
    assert names[3:7] == [(8,)] * 4  # gamma, beta, moving_mean, moving_variance: Keras's order
    loaded = fastnn.load(path, backend=target)
    np.testing.assert_allclose(to_np(loaded.predict(x)), expected, rtol=1e-6, atol=1e-9)


def test_batch_normalization_never_splits_the_batch_into_row_blocks():
    model = tabular_model("float32")
    assert model.spec.whole_batch and not fastnn.Sequential([Dense(2, input_dim=2)]).spec.whole_batch


def test_bad_ids_and_arguments_are_clear_errors():
    model = tabular_model()
    with pytest.raises(ValueError, match=r"Embedding\(10, 4\) got the id 12: ids must be whole numbers in \[0, 10\)"):
        model.predict(np.array([[1.0, 12.0, 3.0]]))
    with pytest.raises(ValueError, match=r"got the id 2.5"):
        model.predict(np.array([[1.0, 2.5, 3.0]]))
    with pytest.raises(ValueError, match="Embedding input_dim must be a positive integer"):
        Embedding(0, 3)
    with pytest.raises(ValueError, match=r"BatchNormalization momentum must be in \[0.0, 1.0\]"):
        BatchNormalization(momentum=1.5)
    with pytest.raises(ValueError, match="LayerNormalization epsilon must be > 0"):
        LayerNormalization(epsilon=0)
