"""Numba is optional at run time: where it cannot be imported, fastnn trains on the pure
Array-API path on every backend and `fastnn info` says why the kernels are off."""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCK_NUMBA = """
import sys

class NoNumba:  # as if numba were not installed
    def find_spec(self, name, path=None, target=None):
        if name == "numba" or name.startswith("numba."):
            raise ModuleNotFoundError("No module named 'numba' (blocked by the test)")

sys.meta_path.insert(0, NoNumba())
"""

TRAIN = BLOCK_NUMBA + """
import numpy as np
import fastnn
from fastnn import extensions

rng = np.random.default_rng(0)
x = rng.standard_normal((200, 2))
y = (x[:, 0] + 2 * x[:, 1] > 0).astype(float)
with fastnn.use(sys.argv[1]):
    model = fastnn.Sequential([fastnn.layers.Dense(16, "tanh"), fastnn.layers.Dense(1, "sigmoid")], seed=0)
    model.compile({"name": "adam", "lr": 0.02}, "binary_crossentropy")
    first = model.evaluate(x, y)["loss"]
    model.fit(x, y, epochs=40, batch_size=16, verbose=0)  # shuffled small batches: the compiled epoch's ground
    model.fit(x, y, epochs=5, batch_size=None, verbose=0)  # and a full batch
    last = model.evaluate(x, y)
print(type(model.backend.ops).__name__, [type(e).__name__ for e in model.backend.engines], first, last["loss"],
      last["accuracy"], "numba" in sys.modules)
print(extensions.problem())
"""


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_trains_on_the_pure_path_when_numba_cannot_be_imported(backend):
    out = subprocess.run([sys.executable, "-c", TRAIN, backend], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    summary, problem = out.stdout.strip().splitlines()
    ops, engines, first, last, accuracy, numba_loaded = summary.split(" ", 1)[0], *summary.rsplit(" ", 4)
    assert ops == "ArrayOps" and "['LayerEngine']" in engines
    assert float(last) < 0.5 * float(first) and float(accuracy) > 0.9  # it learned the boundary
    assert numba_loaded == "False"
    assert "No module named 'numba'" in problem


def test_info_says_why_kernels_are_off():
    code = BLOCK_NUMBA + "import runpy; sys.argv = ['fastnn', 'info']; runpy.run_module('fastnn', run_name='__main__')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "kernels: off: fastnn.kernels could not be imported (ModuleNotFoundError: No module named 'numba'" in out.stdout
