"""Row blocks of a large batch computed on several threads at once (fastnn.row_blocks): the
same step as the blocks in turn, whichever thread took which block and however many threads."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import fastnn
from fastnn import engines, row_blocks
from fastnn.kernels.cpu_ops import NumbaOps
from fastnn.kernels.epoch_engine import CompiledEpochEngine
from fastnn.layers import BatchNormalization, Dense, Dropout


@pytest.fixture
def block_threads(monkeypatch):
    """Record which threads computed row blocks; `force(n)` sets how many threads are used."""
    names: list[str] = []
    real = engines.LayerEngine.loss_and_metrics

    def recorded(self, spec, state, x, y, train, weights=None):
        if train:
            names.append(threading.current_thread().name)
        return real(self, spec, state, x, y, train, weights)

    monkeypatch.setattr(engines.LayerEngine, "loss_and_metrics", recorded)
    monkeypatch.setattr(NumbaOps, "block_rows", 16)
    monkeypatch.setattr(CompiledEpochEngine, "max_work_per_layer", 0)  # these small fits go layer by layer

    def force(n: int) -> list[str]:
        monkeypatch.setattr(row_blocks, "threads_for", lambda blocks: n)
        return names

    return force


def fit(x, y, loss="categorical_crossentropy", layers=None, weights=None, dtype="float32", backend="numpy", epochs=3):
    with fastnn.use(backend, dtype=dtype):
        model = fastnn.Sequential(layers or [Dense(8, "relu"), Dense(8, "tanh"), Dense(3, "softmax")], seed=0)
        model.compile({"name": "adam", "lr": 0.01}, loss, metrics=["accuracy"])
        history = model.fit(x, y, epochs=epochs, batch_size=None, sample_weight=weights, verbose=0)
        return [fastnn.to_numpy(w) for w in model.get_weights()], history.history


def data(rows=200):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((rows, 6)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)


def test_threads_take_the_blocks_and_the_step_is_the_one_in_turn(block_threads):
    x, y = data()
    names = block_threads(1)
    serial = fit(x, y, dtype="float64")
    assert set(names) == {threading.main_thread().name}
    names.clear()
    block_threads(3)
    threaded = fit(x, y, dtype="float64")
    assert len(names) == 3 * 13 and len(set(names)) > 1 and threading.main_thread().name not in names
    for a, b in zip(serial[0], threaded[0]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)  # BLAS on one thread or two may round apart
    for key in serial[1]:
        np.testing.assert_allclose(serial[1][key], threaded[1][key], rtol=1e-12)


def test_the_result_does_not_depend_on_the_thread_count_or_timing(block_threads):
    """Each block's gradients go to its own slot, summed in block order: bit for bit the same."""
    x, y = data(1000)
    runs = []
    for threads in (2, 4, 2, 7):
        block_threads(threads)
        runs.append(fit(x, y, epochs=5))
    for weights, history in runs[1:]:
        for a, b in zip(runs[0][0], weights):
            np.testing.assert_array_equal(a, b)
        assert history == runs[0][1]


def test_waves_of_blocks_sum_as_one_wave(block_threads, monkeypatch):
    """A batch whose per-block gradients would take too much memory runs in waves: same bits."""
    x, y = data(1000)
    block_threads(2)
    whole = fit(x, y)
    monkeypatch.setattr(row_blocks, "SLOT_BYTES", 1)  # a wave of one block per thread
    waves = fit(x, y)
    for a, b in zip(whole[0], waves[0]):
        np.testing.assert_array_equal(a, b)


def test_sample_weights_weigh_the_same_on_threads(block_threads):
    x, y = data()
    w = np.random.default_rng(2).uniform(0, 2, len(x))
    block_threads(1)
    serial = fit(x, y, weights=w, dtype="float64")
    block_threads(2)
    threaded = fit(x, y, weights=w, dtype="float64")
    for a, b in zip(serial[0], threaded[0]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("layer", [Dropout(0.2, seed=1), BatchNormalization()], ids=["Dropout", "BatchNorm"])
def test_random_or_whole_batch_layers_keep_their_blocks_in_one_thread(block_threads, layer):
    """Dropout's masks would be drawn in an order that depends on timing; BatchNormalization
    needs the whole batch: neither runs blocks on threads."""
    x, y = data()
    names = block_threads(2)
    fit(x, y, layers=[Dense(8, "relu"), layer, Dense(3, "softmax")])
    assert set(names) == {threading.main_thread().name}


def test_a_user_layer_keeps_its_blocks_in_one_thread(block_threads):
    """A layer fastnn does not own may keep state its copies would share."""
    class Scaled(Dense):
        pass

    x, y = data()
    names = block_threads(2)
    fit(x, y, layers=[Scaled(8, "relu"), Dense(3, "softmax")])
    assert set(names) == {threading.main_thread().name}


def test_an_error_in_a_block_reaches_the_caller_after_every_thread_stops(block_threads, monkeypatch):
    x, y = data()
    block_threads(2)
    real = NumbaOps.dense_forward
    calls = []

    def failing(self, x, *args, **kwargs):
        calls.append(threading.current_thread().name)
        if len(calls) == 5:
            raise RuntimeError("block failed")
        return real(self, x, *args, **kwargs)

    monkeypatch.setattr(NumbaOps, "dense_forward", failing)
    with pytest.raises(RuntimeError, match="block failed"):
        fit(x, y, epochs=1)
    seen = len(calls)
    time.sleep(0.05)
    assert len(calls) == seen  # no thread goes on computing blocks once the error is raised


FORKED = """
import multiprocessing, sys, numpy as np, fastnn
from fastnn import row_blocks
from fastnn.kernels.cpu_ops import NumbaOps
from fastnn.kernels.epoch_engine import CompiledEpochEngine
NumbaOps.block_rows, CompiledEpochEngine.max_work_per_layer = 16, 0
row_blocks.threads_for = lambda blocks: 2

PRECISION = sys.argv[1]
if PRECISION == "bfloat16":  # the libraries emulate bf16 on a CPU without the units: same numbers
    from fastnn.kernels import bfloat16
    bfloat16.cpu_flags = lambda: {"avx512_bf16"}
fastnn.use("numpy", precision=PRECISION)

def fit():
    x = np.random.default_rng(5).standard_normal((200, 6)).astype(np.float32)
    model = fastnn.Sequential([fastnn.layers.Dense(8, "relu"), fastnn.layers.Dense(1, "sigmoid")], seed=0)
    model.compile("adam", "binary_crossentropy")
    model.fit(x, (x[:, :1] > 0).astype(np.float32), epochs=3, batch_size=None, verbose=0)
    return model.get_weights()

if __name__ == "__main__":
    fit()  # the GEMM choosers' trials: the fits below multiply in the libraries they chose
    parent = fit()
    with multiprocessing.get_context("fork").Pool(1) as children:
        child = children.apply(fit)
    assert all((a == b).all() for a, b in zip(parent, child))
    print("same")
"""


def bf16_library_or_skip() -> None:
    kernels = pytest.importorskip("fastnn.kernels.bfloat16")
    if not kernels.libraries()[0]:
        pytest.skip(f"no bf16 GEMM library: {kernels.libraries()[1]}")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("precision", ["default", "bfloat16"])
def test_a_forked_child_trains_on_threads_of_its_own(tmp_path, precision):
    """A child forked after the parent trained inherits the pool object but none of its threads
    (nor, in bf16, oneDNN's OpenMP threads)."""
    if precision == "bfloat16":
        bf16_library_or_skip()
    script = tmp_path / "forked.py"
    script.write_text(FORKED)
    done = subprocess.run([sys.executable, "-W", "error", str(script), precision], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "same", done.stderr
