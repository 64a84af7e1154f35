"""The CuPy engines' own step and epoch code (kernels/gpu_step.py, kernels/cuda_engine.py),
proven on the CPU: run on a `CheckingDevice` (tests/gpu_doubles.py) over array-api-strict
arrays that raise on any host read, each kernel replaced by its pure twin. `pytest -k
"no_sync or cuda_graph or ptx"` selects the GPU-path proofs."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn.engines import LayerEngine
from fastnn.kernels.cuda_engine import CudaEngine, CudaGraphEngine
from fastnn.kernels.cuda_device import ViewCache
from fastnn.layers import Dense
from gpu_doubles import CheckingDevice, HostReadError, host_reads_counted, make_host_reads_fail

NETWORKS = {  # (widths and activations, loss, optimizer, metrics)
    "moons": ([(25, "relu"), (50, "relu"), (25, "tanh"), (1, "sigmoid")], "binary_crossentropy",
              lambda: fastnn.optimizers.SGD(0.05), ["accuracy"]),
    "digits": ([(16, "gelu"), (10, "softmax")], "categorical_crossentropy",
               lambda: fastnn.optimizers.Adam(0.01), ["accuracy"]),
    "regression": ([(8, "swish"), (8, "leaky_relu"), (2, "linear")], "mse",
                   lambda: fastnn.optimizers.SGD(0.01, momentum=0.9, nesterov=True), []),
}
TOL = {"float32": dict(rtol=1e-4, atol=1e-5), "float64": dict(rtol=1e-11, atol=1e-12)}


def make_model(name, dtype, inputs=3):
    layers, loss, optimizer, metrics = NETWORKS[name]
    with fastnn.use("array_api_strict", dtype=dtype):
        model = fastnn.Sequential([Dense(units, act) for units, act in layers], seed=0)
        model.compile(optimizer(), loss, metrics)
        model.build(inputs)
    return model


def make_data(name, rows=37, inputs=3):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((rows, inputs))
    units = NETWORKS[name][0][-1][0]
    if name == "digits":
        y = rng.integers(0, units, rows)
    elif name == "moons":
        y = (x[:, :1] > 0).astype(float)
    else:
        y = rng.standard_normal((rows, units))
    return x, y


def trained_on(model, engine, x, y, epochs, batch_size, shuffle=True):
    """(each epoch's logs, the final weights) of `epochs` epochs through `engine`."""
    xd, yd = model.prepare(x, y)
    model.optimizer.build(model.params)
    rng = np.random.default_rng(3)
    logs = []
    for _ in range(epochs):
        order = rng.permutation(x.shape[0]) if shuffle else None
        logs.append(engine.run_epoch(model.spec, model.train_state(), xd, yd, batch_size, order))
    with fastnn.use("numpy"):
        weights = model.get_weights()
    return logs, weights


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_no_sync_fused_epoch_equals_layer_engine(name, dtype, monkeypatch):
    """The fused engine trains as the layer-by-layer engine does (losses, metrics, weights),
    reading the host exactly once per epoch, on buffers allocated in its first steps only."""
    x, y = make_data(name)
    reference = make_model(name, dtype)
    want_logs, want_weights = trained_on(reference, LayerEngine(reference.backend), x, y, 3, 8)
    model = make_model(name, dtype)
    device = CheckingDevice()
    engine = CudaEngine(model.backend, device=device)
    assert engine.supports(model.spec, 8)
    xd, yd = model.prepare(x, y)  # fit's data checks read the host, once per fit: before the guard
    model.optimizer.build(model.params)
    make_host_reads_fail(monkeypatch)
    rng = np.random.default_rng(3)
    logs, reads, allocations = [], [], []
    for _ in range(3):
        before = device.reads
        logs.append(engine.run_epoch(model.spec, model.train_state(), xd, yd, 8, rng.permutation(x.shape[0])))
        reads.append(device.reads - before)
        allocations.append(device.allocations)
    monkeypatch.undo()
    assert reads == [1, 1, 1]
    assert allocations[1] == allocations[2] == allocations[0], "buffers are allocated once, in the first epoch"
    for got, want in zip(logs, want_logs):
        assert got.keys() == want.keys()
        for key in want:
            np.testing.assert_allclose(got[key], want[key], **TOL[dtype], err_msg=key)
    with fastnn.use("numpy"):
        weights = model.get_weights()
    for got, want in zip(weights, want_weights):
        np.testing.assert_allclose(got, want, **TOL[dtype])


def test_no_sync_step_reads_nothing_and_launches_on_the_same_buffers(monkeypatch):
    """Steps after the first allocate nothing, read nothing, and hand every kernel the very
    arrays of the first step (so a device view made once per array serves every launch)."""
    model = make_model("moons", "float32")
    x, y = make_data("moons", rows=16)
    xd, yd = model.prepare(x, y)
    model.optimizer.build(model.params)
    device = CheckingDevice()
    engine = CudaEngine(model.backend, device=device)
    make_host_reads_fail(monkeypatch)
    per_step = []
    for _ in range(3):
        start, allocated = len(device.launches), device.allocations
        loss, metrics = engine.step(model.spec, model.train_state(), xd, yd)
        per_step.append([(kernel, [id(a) for a in args if hasattr(a, "shape")])
                         for kernel, args in device.launches[start:]])
        if len(per_step) > 1:
            assert device.allocations == allocated
    with pytest.raises(HostReadError):
        float(loss)  # the returned loss is a device scalar: reading it is the caller's sync
    monkeypatch.undo()
    assert device.reads == 0
    # the step's own launches (after copying the batch into its static inputs) are identical
    assert per_step[1] == per_step[2] and per_step[0] == per_step[1]
    kernels = {kernel for kernel, _ in per_step[0] if not isinstance(kernel, str)}
    assert len(kernels) >= 5  # bias_act, loss, accuracy, record, act_grad_bias, update


def test_no_sync_view_cache_converts_each_array_once():
    made = []
    cache = ViewCache(lambda a: made.append(a) or ("view", id(a)))
    arrays = [np.zeros(3), np.zeros(4)]
    for _ in range(5):
        for a in arrays:
            assert cache(a) == ("view", id(a))
    assert cache.made == 2 and len(made) == 2
    cache(np.zeros(3))  # a new array: a new view
    assert cache.made == 3


def test_no_sync_nonfinite_loss_names_the_batch(monkeypatch):
    model = make_model("regression", "float64")
    x, y = make_data("regression", rows=24)
    y[13] = np.inf  # in the second batch of 8
    xd, yd = model.backend.asarray(x), model.backend.asarray(y)  # fit would refuse it: straight in
    model.optimizer.build(model.params)
    device = CheckingDevice()
    engine = CudaEngine(model.backend, device=device)
    make_host_reads_fail(monkeypatch)
    with np.errstate(all="ignore"):  # the Inf spreads through the weights, as it would on a GPU
        logs = engine.run_epoch(model.spec, model.train_state(), xd, yd, 8)
    assert logs["nonfinite_batch"] == 1
    assert device.reads == 2  # the epoch's sums, then (only because they are not finite) the batch losses


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_cuda_graph_engine_replays_what_the_fused_engine_computes(name, monkeypatch):
    """Graphs captured at each shape's second batch, replayed from then on: the same numbers
    as the plain fused engine, nothing allocated or read inside a capture (the device raises),
    the batch copied into the graph's static inputs outside it."""
    x, y = make_data(name)
    plain = make_model(name, "float64")
    want_logs, want_weights = trained_on(plain, CudaEngine(plain.backend, device=CheckingDevice()), x, y, 3, 8)
    model = make_model(name, "float64")
    device = CheckingDevice()
    engine = CudaGraphEngine(model.backend, device=device, max_rows=8)
    assert engine.supports(model.spec, 8) and not engine.supports(model.spec, 9)
    logs, weights = trained_on(model, engine, x, y, 3, 8)
    assert device.captures == 2  # the full batch of 8 rows and the last of 5
    # 15 batches: each shape's first runs plainly, its second is captured and then replayed
    assert device.replays == 15 - 2
    for got, want in zip(logs, want_logs):
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-13, err_msg=key)
    for got, want in zip(weights, want_weights):
        np.testing.assert_allclose(got, want, rtol=1e-13)


def test_cuda_graph_capture_refuses_allocation_and_reads():
    device = CheckingDevice()
    with pytest.raises(AssertionError, match="allocation"):
        device.capture(lambda: device.empty((2,), "float32"))
    a = device.empty((2,), "float64")
    with pytest.raises(HostReadError):
        device.capture(lambda: device.to_host(a))


def test_cuda_graph_rebuilt_when_the_model_gets_new_arrays():
    """set_weights hands the layers new arrays: the steps (and graphs) built on the old ones go."""
    x, y = make_data("moons")
    model = make_model("moons", "float64")
    device = CheckingDevice()
    engine = CudaGraphEngine(model.backend, device=device, max_rows=8)
    trained_on(model, engine, x, y, 2, 8)
    captured = device.captures
    with fastnn.use("numpy"):
        weights = model.get_weights()
    model.set_weights(weights)
    trained_on(model, engine, x, y, 2, 8)
    assert device.captures == 2 * captured


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_no_sync_pure_path_step_and_one_read_per_epoch(name, monkeypatch):
    """The layer-by-layer engine (the pure CuPy path, for what the fused one does not cover)
    reads nothing in a step and the host once per epoch, with clipping and a penalty too."""
    layers, loss, _, metrics = NETWORKS[name]
    with fastnn.use("array_api_strict"):
        model = fastnn.Sequential([Dense(units, act, kernel_regularizer="l2") for units, act in layers], seed=0)
        model.compile(fastnn.optimizers.Adam(0.01, clipnorm=1.0), loss, metrics)
        model.build(3)
    x, y = make_data(name)
    xd, yd = model.prepare(x, y)
    model.optimizer.build(model.params)
    engine = LayerEngine(model.backend)
    make_host_reads_fail(monkeypatch)
    engine.step(model.spec, model.train_state(), xd, yd)  # raises on any host read
    with host_reads_counted() as reads:
        engine.run_epoch(model.spec, model.train_state(), xd, yd, 8, np.random.default_rng(0).permutation(37))
    monkeypatch.undo()
    assert reads == ["__dlpack__"]  # the epoch's loss and metrics, together
