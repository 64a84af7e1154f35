"""The compiled-epoch engine (kernels/compiled_epoch.py, epoch_engine.py) equals the
layer-by-layer engine, and anything it does not cover trains layer by layer, silently and
correctly."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn.kernels import compiled_epoch as online
from fastnn.kernels.epoch_engine import CompiledEpochEngine
from fastnn.layers import Activation, Dense
from fastnn.spec import Act, LossCode, MetricCode

BCE_LOGITS, CCE_LOGITS = LossCode.BCE_LOGITS, LossCode.CCE_LOGITS

RNG = np.random.default_rng(5)
X = RNG.standard_normal((50, 3))


def train(monkeypatch, compiled, layers, loss, optimizer, y, batch_size=4, metrics=("accuracy",), callbacks=()):
    monkeypatch.setattr(CompiledEpochEngine, "max_work_per_layer", 10**9 if compiled else 0)
    with fastnn.use("numpy", dtype="float64"):
        model = fastnn.Sequential(layers(), seed=1)
        model.compile(optimizer, loss, metrics=list(metrics))
        history = model.fit(X, y, epochs=3, batch_size=batch_size, verbose=0, callbacks=list(callbacks))
    return model, history


def record_compiled_calls(monkeypatch) -> list:
    """The logs of every compiled epoch or step run from now on."""
    calls = []
    for method in ("run_epoch", "step"):
        original = getattr(CompiledEpochEngine, method)
        monkeypatch.setattr(CompiledEpochEngine, method,
                            lambda self, *a, original=original: calls.append(original(self, *a)) or calls[-1])
    return calls


def assert_same(monkeypatch, *args, **kwargs):
    with monkeypatch.context() as patch:
        calls = record_compiled_calls(patch)
        compiled, h1 = train(patch, True, *args, **kwargs)
    generic, h2 = train(monkeypatch, False, *args, **kwargs)
    for a, b in zip(compiled.get_weights() + compiled.grads, generic.get_weights() + generic.grads):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert h1.history.keys() == h2.history.keys()
    for key in h1.history:
        np.testing.assert_allclose(h1.history[key], h2.history[key], rtol=1e-9, atol=1e-12)
    assert compiled.optimizer.iterations == generic.optimizer.iterations
    return calls


OPTIMIZERS = [{"name": "sgd", "lr": 0.05}, {"name": "sgd", "lr": 0.05, "momentum": 0.9},
              {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True}, {"name": "adam", "lr": 0.01}]
OPTIMIZER_IDS = ["sgd", "momentum", "nesterov", "adam"]


def matrix(cases, ids, quick):
    """pytest params for `cases`; those whose id is not in `quick` are marked slow. Each case
    compiles its own epoch (2-8 s with an empty cache), so the README's test command runs a
    representative few and `pytest -m slow` (in .ci/run) the whole matrix."""
    return [pytest.param(*(c if isinstance(c, tuple) else (c,)), id=i, marks=() if i in quick else pytest.mark.slow)
            for c, i in zip(cases, ids)]


ACTIVATIONS = ["linear", "relu", "leaky_relu", "sigmoid", "tanh", "swish", "gelu"]


@pytest.mark.parametrize("activation,optimizer", matrix(
    [(a, o) for a in ACTIVATIONS for o in OPTIMIZERS], [f"{a}-{i}" for a in ACTIVATIONS for i in OPTIMIZER_IDS],
    quick={"relu-momentum", "gelu-adam"}))
def test_compiled_epoch_equals_generic_for_every_activation_and_optimizer(monkeypatch, activation, optimizer):
    calls = assert_same(monkeypatch, lambda: [Dense(6, activation), Dense(1, "sigmoid")],
                        "binary_crossentropy", optimizer, RNG.integers(0, 2, 50))
    assert calls and all(c is not None for c in calls)  # the compiled path really ran


LOSSES = [("mse", 2, "linear"), ("mse", 1, "sigmoid"), ("binary_crossentropy", 1, "sigmoid"),
          ("categorical_crossentropy", 3, "softmax")]


@pytest.mark.parametrize("loss,out,last,batch_size", matrix(
    [(*case, b) for case in LOSSES for b in (1, 7, 64)], [f"{case[0]}-{case[2]}-{b}" for case in LOSSES for b in (1, 7, 64)],
    quick={"categorical_crossentropy-softmax-7", "binary_crossentropy-sigmoid-1"}))
def test_compiled_epoch_equals_generic_for_every_loss(monkeypatch, loss, out, last, batch_size):
    y = RNG.integers(0, out, 50) if loss == "categorical_crossentropy" else (
        RNG.integers(0, 2, 50) if out == 1 else RNG.standard_normal((50, out)))
    calls = assert_same(monkeypatch, lambda: [Dense(5, "tanh"), Dense(4, "relu"), Dense(out, last)],
                        loss, "adam", y, batch_size=batch_size)
    assert calls and all(c is not None for c in calls)


@pytest.mark.parametrize("max_bytes", matrix([0, 1680], ["heap", "step-on-stack"], quick={"heap"}))
def test_scratch_arrays_on_the_heap_give_the_same_result(monkeypatch, max_bytes):
    """The generated code keeps its scratch arrays on the stack up to stack.MAX_BYTES and on
    the heap beyond: all on the heap, or (1 680 bytes) the step's on the stack and the gathered
    rows on the heap, equal the generic path."""
    monkeypatch.setattr(online, "MAX_BYTES", max_bytes)
    online.epoch_function.cache_clear()  # plans compiled with stack scratch must not be reused
    try:
        calls = assert_same(monkeypatch, lambda: [Dense(5, "tanh"), Dense(3, "softmax")],
                            "categorical_crossentropy", "adam", RNG.integers(0, 3, 50), batch_size=7)
        assert calls and all(c is not None for c in calls)
        plan = online.EpochPlan((3, 5, 3), (Act.TANH, online.LOGITS), CCE_LOGITS,
                                MetricCode.CATEGORICAL_ACCURACY, "adam", 7)
        source = online.epoch_source(plan)
        assert ("A1 = stack_empty(7, 5, x)" if max_bytes else "A1 = np.empty((7, 5), x.dtype)") in source
        assert "XG = np.empty((84, 3), x.dtype)" in source  # the heap variant ran
    finally:
        online.epoch_function.cache_clear()


@pytest.mark.parametrize("batch_size", matrix([1, 7], ["1", "7"], quick={"7"}))
def test_rows_gathered_in_blocks_give_the_same_result(monkeypatch, batch_size):
    """The epoch copies shuffled rows a block of batches at a time: with blocks of two batches
    (three samples for batch 1), 50 samples cross block boundaries and end on a part block
    (and, at batch 7, a part batch); the NaN guard still names the epoch's batch."""
    monkeypatch.setattr(online, "GATHER_BYTES", batch_size * 6 * 8 * (3 if batch_size == 1 else 2))
    online.epoch_function.cache_clear()
    try:
        plan = online.EpochPlan((3, 5, 3), (Act.TANH, online.LOGITS), CCE_LOGITS,
                                MetricCode.CATEGORICAL_ACCURACY, "adam", batch_size)
        assert online.gather_rows(plan) == (3 if batch_size == 1 else 14)
        calls = assert_same(monkeypatch, lambda: [Dense(5, "tanh"), Dense(3, "softmax")],
                            "categorical_crossentropy", "adam", RNG.integers(0, 3, 50), batch_size=batch_size)
        assert calls and all(c is not None for c in calls)
        monkeypatch.setattr(CompiledEpochEngine, "max_work_per_layer", 10**9)
        model = fastnn.Sequential([Dense(5, "tanh", input_dim=3), Dense(3)], seed=0, dtype="float64")
        model.compile("adam", "mse")
        y = np.zeros((50, 3))
        y[-1, 0] = 1e200  # the last sample, in the last block's last batch: its squared error is inf
        batches = -(-50 // batch_size)
        with pytest.warns(RuntimeWarning, match=rf"NaN or Inf at epoch 1, batch {batches} of {batches}"):
            model.fit(X, y, epochs=1, batch_size=batch_size, shuffle=False, verbose=0)
    finally:
        online.epoch_function.cache_clear()


@pytest.mark.parametrize("optimizer", matrix(OPTIMIZERS[1:], OPTIMIZER_IDS[1:], quick={"adam"}))
def test_parameters_stay_in_the_arguments_for_wider_layers(monkeypatch, optimizer):
    """Networks no wider than 8 train on stack copies of their parameters (the tests above);
    a wider layer trains on the model's arrays in place, and equals the generic path too
    (tanh: with ReLU, momentum 0.9 at lr 0.05 killed every hidden unit, leaving zero gradients
    that a missing gradient would have matched)."""
    calls = assert_same(monkeypatch, lambda: [Dense(12, "tanh"), Dense(1, "sigmoid")],
                        "binary_crossentropy", optimizer, RNG.integers(0, 2, 50), batch_size=1)
    assert calls and all(c is not None for c in calls)
    tiny, wide = ((3, width, 1) for width in (8, 12))
    source = lambda widths: online.epoch_source(  # noqa: E731
        online.EpochPlan(widths, (Act.RELU, online.LOGITS), BCE_LOGITS, MetricCode.BINARY_ACCURACY, "adam", 1))
    assert "W0[...] = W0_arg" in source(tiny) and "_arg" not in source(wide)


DEFERRED_NETWORKS = {
    "neuron": lambda: [Dense(1, "sigmoid")],  # one layer: its pending update meets the head's gradient
    "gender": lambda: [Dense(2, "sigmoid"), Dense(1, "sigmoid")],
    "wide-first": lambda: [Dense(12, "relu"), Dense(4, "tanh"), Dense(1, "sigmoid")],  # a first layer wider than 8
}


@pytest.mark.parametrize("layers,loss", matrix(
    [(net, loss) for net in DEFERRED_NETWORKS.values() for loss in ("mse", "binary_crossentropy")],
    [f"{name}-{loss}" for name in DEFERRED_NETWORKS for loss in ("mse", "binary_crossentropy")],
    quick={"wide-first-mse"}))
def test_deferred_first_layer_update_equals_generic(monkeypatch, layers, loss):
    """Online plain SGD applies layer 0's update one sample late, adding its effect to the next
    output instead (see online._forward_deferred); weights, gradients, losses and the NaN guard
    equal the generic path."""
    calls = assert_same(monkeypatch, layers, loss, {"name": "sgd", "lr": 0.3}, RNG.integers(0, 2, 50), batch_size=1)
    assert calls and all(c is not None for c in calls)
    plan = lambda optimizer, batch: online.EpochPlan((3, 2, 1), (Act.SIGMOID, online.LOGITS), BCE_LOGITS,  # noqa: E731
                                                     MetricCode.BINARY_ACCURACY, optimizer, batch)
    assert "XP" in online.epoch_source(plan("sgd", 1))
    assert "XP" not in online.epoch_source(plan("momentum", 1)) + online.epoch_source(plan("sgd", 2))
    monkeypatch.setattr(CompiledEpochEngine, "max_work_per_layer", 10**9)
    model = fastnn.Sequential(layers(), seed=0, dtype="float64")
    model.compile({"name": "sgd", "lr": 0.3}, loss)
    model.build(3)
    weights = model.get_weights()
    weights[0][0, 0] = np.nan  # layer 0's weights reach the first sample's loss, update pending or not
    model.set_weights(weights)
    with pytest.warns(RuntimeWarning, match=r"NaN or Inf at epoch 1, batch 1 of 50"):
        model.fit(X, RNG.integers(0, 2, 50), epochs=1, batch_size=1, verbose=0)


@pytest.mark.parametrize("case", ["activation-layer", "mae-metric", "bce-on-probabilities"])
def test_unsupported_models_train_layer_by_layer(monkeypatch, case):
    y = RNG.integers(0, 2, 50)
    layers = lambda: [Dense(4, "relu"), Dense(1, "sigmoid")]  # noqa: E731
    kwargs = {}
    if case == "activation-layer":
        layers = lambda: [Dense(4), Activation("relu"), Dense(1, "sigmoid")]  # noqa: E731
    elif case == "mae-metric":
        kwargs["metrics"] = ("mae",)
    else:  # a tanh head: BCE can't be fused onto logits
        layers = lambda: [Dense(4, "relu"), Dense(1, "tanh")]  # noqa: E731
    calls = assert_same(monkeypatch, layers, "binary_crossentropy", "sgd", y, **kwargs)
    assert calls == []


def test_a_batch_callback_runs_compiled_steps(monkeypatch):
    """A callback that wants every batch's loss gets it from compiled single steps."""
    seen = []
    hook = fastnn.LambdaCallback(on_batch_end=lambda batch, logs: seen.append(logs["loss"]))
    calls = assert_same(monkeypatch, lambda: [Dense(4, "relu"), Dense(1, "sigmoid")], "binary_crossentropy", "sgd",
                        RNG.integers(0, 2, 50), callbacks=(hook,))
    assert len(calls) == 3 + 3 * 13 and len(seen) == 2 * 3 * 13  # 3 epochs of 13 compiled steps; two fits


def test_compiled_epoch_nan_guard_names_the_batch(monkeypatch):
    monkeypatch.setattr(CompiledEpochEngine, "max_work_per_layer", 10**9)
    model = fastnn.Sequential([Dense(3, "relu", input_dim=3), Dense(1, "sigmoid")], seed=0)
    model.compile("sgd", "binary_crossentropy")
    weights = model.get_weights()
    weights[0][0, 0] = np.nan
    model.set_weights(weights)
    with pytest.warns(RuntimeWarning, match=r"NaN or Inf at epoch 1, batch 1 of 13"):
        model.fit(X, RNG.integers(0, 2, 50), epochs=2, batch_size=4, verbose=0)


def test_large_work_takes_the_generic_path(monkeypatch):
    """Above batch x parameters = CompiledEpochEngine.max_work_per_layer x layers, BLAS per step is faster."""
    ran = record_compiled_calls(monkeypatch)
    model = fastnn.Sequential([Dense(1000, "relu", input_dim=3), Dense(1, "sigmoid")], seed=0)
    assert model.count_params() == 5001
    model.compile("sgd", "binary_crossentropy")
    y = RNG.integers(0, 2, 50)
    model.fit(X, y, epochs=1, batch_size=8, verbose=0)  # 8 x 5 001 = 40 008 <= 2 x 80 000: compiled
    model.fit(X, y, epochs=1, batch_size=50, verbose=0)  # 250 050 > 160 000: generic
    assert len(ran) == 1


@pytest.mark.parametrize("optimizer", matrix(OPTIMIZERS, OPTIMIZER_IDS, quick=set()))
def test_compiled_single_steps_equal_the_layer_by_layer_path(monkeypatch, optimizer):
    """train_on_batch (and fit with a per-batch hook) run small batches as one compiled step;
    batch sizes share compiled code per power-of-two capacity (3 runs in the code for 4)."""
    sizes = (1, 4, 3, 2, 4)
    labels = [RNG.integers(0, 3, size) for size in sizes]
    models = []
    for compiled in (True, False):
        monkeypatch.setattr(CompiledEpochEngine, "max_work_per_layer", 10**9 if compiled else 0)
        with fastnn.use("numpy", dtype="float64"):
            model = fastnn.Sequential([Dense(5, "tanh"), Dense(3, "softmax")], seed=2)
            model.compile(optimizer, "categorical_crossentropy", metrics=["accuracy"])
            losses = [model.train_on_batch(X[i:i + size], y) for i, (size, y) in enumerate(zip(sizes, labels))]
        models.append((model, losses))
    (compiled, compiled_losses), (generic, generic_losses) = models
    np.testing.assert_allclose(compiled_losses, generic_losses, rtol=1e-9)
    for a, b in zip(compiled.get_weights() + compiled.grads, generic.get_weights() + generic.grads):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert compiled.backend.engines[0].compiled_batch_sizes(compiled.spec) == [1, 2, 4]


def test_first_compile_runs_in_the_background(monkeypatch):
    """A network whose epoch is not on disk trains its first epochs layer by layer on the pure
    path while a thread compiles it, says so to the progress bar, then switches; the result
    equals the layer-by-layer path's. kernels.warmup(model=...) compiles the rest ahead."""
    monkeypatch.setattr(CompiledEpochEngine, "background", True)
    monkeypatch.setattr(CompiledEpochEngine, "max_work_per_layer", 10**9)
    monkeypatch.setattr("fastnn.kernels.epoch_engine.compiled_before", lambda plan, ordered: False)
    statuses = []
    hook = fastnn.LambdaCallback(on_epoch_end=lambda epoch, logs: statuses.append(hook.params["status"]))
    with fastnn.use("numpy", dtype="float64"):
        model = fastnn.Sequential([Dense(7, "tanh"), Dense(1, "sigmoid")], seed=3)
        model.compile("adam", "binary_crossentropy")
        engine = model.backend.engines[0]
        y = RNG.integers(0, 2, 50)
        model.fit(X, y, epochs=2, batch_size=5, verbose=0, callbacks=[hook])
        assert "compiling" in statuses[0]  # the first epoch did not wait for the compiler
        engine.wait()
        assert engine.ready(model.spec, 5, True)
        fastnn.kernels.warmup(dtypes=(), model=model, batch_sizes=(5,))  # compiles the in-order epoch too
        assert engine.ready(model.spec, 5, False) and engine.status(model.spec, 5) == ""
        model.fit(X, y, epochs=2, batch_size=5, verbose=0, callbacks=[hook])
        assert statuses[-1] == ""
        reference = fastnn.Sequential([Dense(7, "tanh"), Dense(1, "sigmoid")], seed=3).to(
            fastnn.backend().with_options(kernels=False))
        reference.compile("adam", "binary_crossentropy")
        reference.fit(X, y, epochs=2, batch_size=5, verbose=0)
        reference.fit(X, y, epochs=2, batch_size=5, verbose=0)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)



def test_the_epoch_cache_key_covers_the_kernel_modules_the_source_imports_and_no_other():
    """A changed helper (scalar.py) must name a new cached epoch; a change to a kernel file the
    epochs never import (gemm.py) must not make every user's first fit compile again."""
    import hashlib
    from pathlib import Path

    from fastnn.kernels import cache

    folder = Path(cache.__file__).parent
    source = "import math\nfrom fastnn.kernels.scalar import (act,\n    like)\nfrom fastnn.kernels.stack import stack_empty\n"
    expected = hashlib.sha256((folder / "scalar.py").read_bytes() + (folder / "stack.py").read_bytes()).hexdigest()
    assert cache.sources_digest(source) == expected
    assert cache.sources_digest("from fastnn.kernels.scalar import act\n") == \
        hashlib.sha256((folder / "scalar.py").read_bytes()).hexdigest()
