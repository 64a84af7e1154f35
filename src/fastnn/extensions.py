"""Optional compiled extensions. `load()` imports `fastnn.kernels`, which registers its ops
tables, engines and shuffle; when numba is missing or broken, fastnn runs on the pure
Array-API path everywhere and `problem()` says why (`fastnn info` prints it)."""

from __future__ import annotations

import functools


@functools.cache
def problem() -> str | None:
    """Why the kernels are off on this machine, or None when they loaded."""
    try:
        import fastnn.kernels  # noqa: F401  (registers its tables and engines)
    except Exception as err:  # ImportError, or numba failing to initialise llvmlite
        return f"fastnn.kernels could not be imported ({type(err).__name__}: {err}); pip install numba"
    return None


def load() -> bool:
    """Import the kernels once; whether they are usable."""
    return problem() is None


def bfloat16_problem() -> str | None:
    """Why bfloat16 products cannot run on bf16 units here (fastnn.kernels.bfloat16), or None."""
    from fastnn.kernels import bfloat16

    return bfloat16.problem()
