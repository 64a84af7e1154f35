"""One generator of backends feeds every parametrized test (scikit-learn's pattern)."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn.backend import BackendUnavailableError, import_namespace

ALL_BACKENDS = ("numpy", "array_api_strict", "torch", "jax", "cupy")


def backend_params(names=ALL_BACKENDS, slow=()):
    """pytest params for each backend; unusable ones skip with the reason the probe gave, and
    those in `slow` run only under `pytest -m slow`."""
    for name in names:
        marks = [pytest.mark.slow] if name in slow else []
        try:
            import_namespace(name)
        except BackendUnavailableError as err:
            marks.append(pytest.mark.skip(reason=str(err)))
        yield pytest.param(name, id=name, marks=marks)


@pytest.fixture(params=list(backend_params()))
def backend_name(request):
    """The name of a usable backend, made active (with float32) for the test."""
    with fastnn.use(request.param):
        yield request.param


@pytest.fixture(params=[True, False], ids=["kernels", "pure"])
def kernels(request):
    """Run a test on the fused-kernel path and on the pure Array-API path."""
    return request.param


def to_np(x):
    return fastnn.to_numpy(x)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def compile_in_the_foreground(monkeypatch):
    """Tests that compare the compiled epoch with the layer-by-layer path need it compiled
    when they run, cold cache or not; test_compiled_epoch tests the background compile itself."""
    try:
        from fastnn.kernels.epoch_engine import CompiledEpochEngine
    except ImportError:
        return
    monkeypatch.setattr(CompiledEpochEngine, "background", False)
