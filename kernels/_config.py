"""Settings shared by the kernels: activation codes and whether numba may cache to disk."""

from __future__ import annotations

import os
import tempfile

# One integer code per activation: the scalar math in scalar.py switches on it, and the CPU
# dense kernels are compiled once per code (see cpu.dense_kernels).
ACT_CODES = {"linear": 0, "relu": 1, "leaky_relu": 2, "sigmoid": 3, "tanh": 4, "swish": 5, "gelu": 6}


def _cache_writable() -> bool:
    """numba's cache=True raises at import when its cache dir is read-only: probe it first."""
    target = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(os.path.dirname(__file__), "__pycache__")
    try:
        os.makedirs(target, exist_ok=True)
        with tempfile.TemporaryFile(dir=target):
            return True
    except OSError:
        return False


CACHE = _cache_writable()
