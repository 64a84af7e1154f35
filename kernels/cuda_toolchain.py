"""Whether Numba's CUDA target can compile and launch here, and why not: NVVM (from the
numba-cuda[cu12|cu13] wheels or a CUDA toolkit) and a driver new enough. Without it a CuPy
model trains on the pure CuPy path, after one warning."""

from __future__ import annotations

import functools
import warnings

FIX = 'pip install "fastnn[cuda13]" (or "fastnn[cuda12]"): numba-cuda with NVVM and NVRTC'


@functools.cache
def problem() -> str | None:
    """Why fastnn's CUDA kernels cannot run here (None when they can). The simulator
    (NUMBA_ENABLE_CUDASIM=1) needs neither NVVM nor a driver."""
    try:
        import numba
        from numba import cuda
    except ImportError as err:
        return f"Numba's CUDA target is missing ({err}); {FIX}"
    if numba.config.ENABLE_CUDASIM:
        return None
    try:
        from numba.cuda.cudadrv import nvvm

        nvvm.NVVM()
    except Exception as err:  # NvvmSupportError and the loader's OSError: no libNVVM found
        return f"Numba cannot find NVVM to compile CUDA kernels ({type(err).__name__}: {err}); {FIX}"
    try:
        if not cuda.is_available():
            return "Numba sees no usable CUDA driver or GPU (cuda.is_available() is False); check the NVIDIA driver"
    except Exception as err:  # a driver too old for the toolkit raises here
        return f"Numba cannot use the CUDA driver ({type(err).__name__}: {err}); update the NVIDIA driver or {FIX}"
    return None


@functools.cache  # once per process and reason
def warn_once(problem_text: str) -> None:
    """One RuntimeWarning that CuPy trains without fastnn's kernels, and why."""
    warnings.warn(f"fastnn's CUDA kernels are off, CuPy trains on the pure path: {problem_text}",
                  RuntimeWarning, stacklevel=4)
