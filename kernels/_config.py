"""Settings shared by the CPU and GPU kernels: activation codes, caching, threading, sizes."""

from __future__ import annotations

import os
import tempfile

# One integer code per activation, so a single compiled kernel serves them all (the branch on
# a loop-invariant code is hoisted out of the loop: measured as fast as a dedicated kernel).
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
