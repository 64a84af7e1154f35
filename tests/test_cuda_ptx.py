"""Type-check every Numba CUDA kernel without a GPU by compiling it to PTX for sm_90 (Hopper).
The simulator runs kernels as Python and checks no types; this catches what it misses (it
found builtin min/max failing inside register_jitable device functions). Needs NVVM:
pip install "nvidia-nvvm==13.*" "nvidia-cuda-nvrtc==13.*" (~700 MB, so optional on CI)."""

from __future__ import annotations

import os
import types

import pytest

pytestmark = pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") == "1",
                                reason="PTX compilation is unavailable inside the CUDA simulator")


def _nvvm_problem() -> str | None:
    try:
        from numba.cuda.cudadrv import nvvm

        nvvm.NVVM()
    except Exception as err:  # NvvmSupportError and friends
        return f"NVVM not found ({type(err).__name__}); pip install 'nvidia-nvvm==13.*' 'nvidia-cuda-nvrtc==13.*'"
    return None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cuda_kernels_compile_to_ptx(dtype, monkeypatch):
    problem = _nvvm_problem()
    if problem:
        pytest.skip(problem)
    import numba.cuda.dispatcher
    from numba import cuda
    from numba import types as nt

    from fastnn.kernels import cuda as kernels

    # device functions ask the (absent) GPU for its compute capability: answer Hopper's
    monkeypatch.setattr(numba.cuda.dispatcher, "get_current_device",
                        lambda: types.SimpleNamespace(compute_capability=(9, 0)))
    dt = getattr(nt, dtype)
    A2, A1 = dt[:, ::1], dt[::1]
    signatures = {
        "bias_act": (A2, A1, A2, nt.int64, dt),
        "act_grad_bias": (A2, A2, A2, nt.int64, dt, A2, A1),
        "sigmoid_bce_logits": (A2, A2, A2, nt.float64[::1]),
        "softmax_cce_logits": (A2, A2, A2, nt.float64[::1]),
        "sgd_update": (A1, A1, A1, dt, dt, nt.boolean),
        "adam_update": (A1, A1, A1, A1, dt, dt, dt, dt, dt),
    }
    for name, signature in signatures.items():
        ptx, _ = cuda.compile_ptx(getattr(kernels, name).py_func, signature, cc=(9, 0))
        assert ".visible .entry" in ptx, name
