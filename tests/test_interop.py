"""PyTorch tensors and JAX arrays: as backends (same layers, same numbers), across DLPack, and the
clear errors for arrays on the wrong backend or device."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from conftest import backend_params
from fastnn.backend import BackendMismatchError, BackendUnavailableError
from fastnn.layers import Dense

FRAMEWORKS = ("numpy", "array_api_strict", "torch", "jax")


def moons_like(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2))
    return x, (x[:, 0] * x[:, 1] > 0).astype(np.float64)


def seeded_run(epochs=4):
    x, y = moons_like()
    model = fastnn.Sequential([Dense(8, "relu", input_dim=2), Dense(8, "tanh"), Dense(1, "sigmoid")], seed=3)
    model.compile(fastnn.optimizers.Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=epochs, batch_size=16, verbose=0)  # shuffled, from the model's seed
    return history.history["loss"], model.get_weights()


@pytest.mark.parametrize("name", list(backend_params(FRAMEWORKS)))
def test_the_same_seeded_run_gives_the_same_losses_on_every_framework(name):
    with fastnn.use("numpy", kernels=False):
        ref_losses, ref_weights = seeded_run()
    with fastnn.use(name):
        losses, weights = seeded_run()
    np.testing.assert_allclose(losses, ref_losses, rtol=2e-5)
    for w, r in zip(weights, ref_weights):
        np.testing.assert_allclose(w, r, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(backend_params(("torch", "jax"))))
def test_predict_returns_the_backends_arrays(name):
    x, y = moons_like()
    with fastnn.use(name) as be:
        model = fastnn.Sequential([Dense(4, "tanh"), Dense(1, "sigmoid")], seed=0)
        model.compile("sgd", "binary_crossentropy")
        model.fit(be.asarray(x), be.asarray(y), epochs=1, verbose=0)
        out = model.predict(be.asarray(x))
    assert be.is_native(out) and be.on_its_device(out) and tuple(out.shape) == (96, 1)


def trained_model(optimizer):
    x, y = moons_like()
    model = fastnn.Sequential([Dense(5, "tanh", input_dim=2), Dense(1, "sigmoid")], seed=1)
    model.compile(optimizer, "binary_crossentropy")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    return model, x, y


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", {"name": "sgd", "momentum": 0.9}])
def test_moving_a_model_round_the_frameworks_keeps_weights_and_state_exactly(optimizer):
    names = [p.values[0] for p in backend_params(("torch", "jax", "array_api_strict")) if not p.marks]
    with fastnn.use("numpy", dtype="float64", kernels=False):
        model, x, y = trained_model(optimizer)
        weights = model.get_weights()
        state = [{k: fastnn.to_numpy(v).copy() for k, v in s.items()} for s in model.optimizer.state]
        for name in [*names, "numpy"]:
            model.to(name)
            assert all(model.backend.is_native(p) for p in model.params)
            assert all(model.backend.is_native(v) for s in model.optimizer.state for v in s.values())
        for w, r in zip(model.get_weights(), weights):
            np.testing.assert_array_equal(w, r)
        for s, r in zip(model.optimizer.state, state):
            for k in r:
                np.testing.assert_array_equal(fastnn.to_numpy(s[k]), r[k])
        # and training goes on from there as if it had never moved (to the last bits: BLAS sums
        # may group differently for arrays at other addresses)
        moved = model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0).history["loss"]
        stayed, _, _ = trained_model(optimizer)
        assert moved == pytest.approx(stayed.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
                                      .history["loss"], rel=1e-13)
        for w, r in zip(model.get_weights(), stayed.get_weights()):
            np.testing.assert_allclose(w, r, rtol=1e-12, atol=1e-15)


# --- bad input: each a clear error before any work --------------------------------------------


def test_a_torch_tensor_on_another_device_is_refused():
    torch = pytest.importorskip("torch")
    x, y = moons_like()
    with fastnn.use("torch"):
        model = fastnn.Sequential([Dense(4, "tanh"), Dense(1, "sigmoid")], seed=0)
        model.compile("sgd", "binary_crossentropy")
        elsewhere = torch.empty((96, 2), device="meta")  # a device that is not the model's, on any machine
        with pytest.raises(BackendMismatchError, match=r"x is on device 'meta' but the model runs on torch "
                                                       r"device 'cpu'.*model.to\('torch', device='meta'\)"):
            model.fit(elsewhere, y, verbose=0)
        assert not model.built  # refused before anything was built or trained


def test_a_jax_array_under_the_numpy_backend_is_refused():
    jnp = pytest.importorskip("jax.numpy")
    x, y = moons_like()
    with fastnn.use("numpy"):
        model = fastnn.Sequential([Dense(4, "tanh"), Dense(1, "sigmoid")], seed=0)
        model.compile("sgd", "binary_crossentropy")
        with pytest.raises(BackendMismatchError, match=r"x is a jax array but the model runs on the 'numpy' "
                                                       r"backend.*fastnn.asarray\(x\).*model.to\('jax'\)"):
            model.fit(jnp.asarray(x), y, verbose=0)
        assert fastnn.to_numpy(fastnn.asarray(jnp.asarray(x))).tolist() == x.astype(np.float32).tolist()


class FailsToExport:
    """A DLPack producer whose export fails, as a tensor that needs grad or a closed buffer would."""

    def __dlpack__(self, **kwargs):
        raise BufferError("this buffer was released")

    def __dlpack_device__(self):
        return (1, 0)


@pytest.mark.parametrize("name", list(backend_params(FRAMEWORKS)))
def test_a_dlpack_object_that_fails_to_export_is_a_clear_error(name):
    with fastnn.use(name):
        with pytest.raises(TypeError, match=r"cannot bring a FailsToExport to the host through DLPack "
                                             r"\(this buffer was released\)"):
            fastnn.asarray(FailsToExport())
        model = fastnn.Sequential([Dense(1, "sigmoid")], seed=0)
        model.compile("sgd", "binary_crossentropy")
        with pytest.raises(TypeError, match="x must be numeric .* DLPack"):
            model.fit(FailsToExport(), [1.0], verbose=0)


@pytest.mark.parametrize("name,device,message", [
    ("numpy", "cuda", "backend 'numpy' runs on the CPU only, not on 'cuda'"),
    ("array_api_strict", "cuda:0", "backend 'array_api_strict' runs on the CPU only"),
    ("torch", "nowhere", "backend 'torch' cannot compute on device 'nowhere'"),
    ("jax", "tpu:7", "backend 'jax' has no device 'tpu:7'"),
])
def test_a_device_the_backend_cannot_reach_is_a_clear_error(name, device, message):
    if name in ("torch", "jax"):
        pytest.importorskip(name)
    with pytest.raises(BackendUnavailableError, match=message):
        fastnn.use(name, device=device)


def test_a_device_must_be_a_string():
    with pytest.raises(TypeError, match="device must be a string such as 'cpu', 'cuda'"):
        fastnn.use("numpy", device=0)


# --- the jitted JAX step ------------------------------------------------------------------------


def jax_model(*extra_layers, optimizer=None, kernels=True):
    with fastnn.use("jax", dtype="float64", kernels=kernels):
        model = fastnn.Sequential([Dense(6, "relu", input_dim=2, kernel_regularizer="l2"), *extra_layers,
                                   Dense(1, "sigmoid")], seed=2)
        model.compile(optimizer or fastnn.optimizers.Adam(0.01, clipnorm=1.0), "binary_crossentropy",
                      metrics=["accuracy"])
    return model


def test_the_jitted_jax_step_equals_the_eager_one_and_leaves_concrete_arrays():
    pytest.importorskip("jax")
    x, y = moons_like()
    weights = np.linspace(0.5, 1.5, len(x))
    jitted, eager = jax_model(), jax_model(kernels=False)
    assert jitted.backend.engines[0].name == "jax-jit" and eager.backend.engines[0].name == "layers"
    a = jitted.fit(x, y, epochs=3, batch_size=16, sample_weight=weights, verbose=0).history
    b = eager.fit(x, y, epochs=3, batch_size=16, sample_weight=weights, verbose=0).history
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-12)
    for w, r in zip(jitted.get_weights(), eager.get_weights()):
        np.testing.assert_allclose(w, r, rtol=1e-10, atol=1e-12)
    assert jitted.optimizer.iterations == eager.optimizer.iterations == 18
    state = jitted.train_state()
    arrays = [*state.params, *state.grads, *(v for s in state.slots for v in s.values())]
    assert all(type(a).__name__ == "ArrayImpl" for a in arrays)  # no tracer left behind


def test_a_learning_rate_changed_between_epochs_is_traced_anew():
    pytest.importorskip("jax")
    x, y = moons_like()
    halve = fastnn.LambdaCallback(on_epoch_end=lambda epoch, logs: setattr(model.optimizer, "lr", model.optimizer.lr / 2))
    model, eager = jax_model(), jax_model(kernels=False)
    model.fit(x, y, epochs=3, batch_size=32, callbacks=[halve], verbose=0)
    halve_eager = fastnn.LambdaCallback(on_epoch_end=lambda e, logs: setattr(eager.optimizer, "lr", eager.optimizer.lr / 2))
    eager.fit(x, y, epochs=3, batch_size=32, callbacks=[halve_eager], verbose=0)
    for w, r in zip(model.get_weights(), eager.get_weights()):
        np.testing.assert_allclose(w, r, rtol=1e-10, atol=1e-12)


def test_dropout_and_schedules_train_eagerly_on_jax():
    pytest.importorskip("jax")
    from fastnn.engines import select
    from fastnn.layers import Dropout

    dropout = jax_model(Dropout(0.2))
    scheduled = jax_model(optimizer=fastnn.optimizers.SGD(fastnn.schedules.ExponentialDecay(0.1, 10, 0.5)))
    for model in (dropout, scheduled):
        assert select(model.backend.engines, model.spec, 16).name == "layers"
    plain = jax_model()
    assert select(plain.backend.engines, plain.spec, 16).name == "jax-jit"
