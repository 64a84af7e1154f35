"""Every CUDA kernel of fastnn.kernels.cuda compiled to PTX for compute capability 9.0 (H100,
H200), in float32 and float64, without a GPU: NVVM from the numba-cuda[cu13] wheels type-checks
and compiles what a GPU would run. CI installs them (FASTNN_REQUIRE_PTX=1 makes a missing NVVM a
failure there instead of a skip)."""

from __future__ import annotations

import os

import pytest
from numba import config

pytestmark = pytest.mark.skipif(config.ENABLE_CUDASIM, reason="the simulator compiles nothing to PTX")


def _nvvm_problem():
    try:
        from numba.cuda.cudadrv import nvvm

        nvvm.NVVM()
    except Exception as err:  # no libNVVM here
        return f"no NVVM to compile PTX with ({err}); pip install \"fastnn[cuda13]\""
    return None


class Hopper:
    """What numba-cuda asks of "the current device" when it compiles the device functions a
    kernel calls (`get_current_device().compute_capability`): here there is none, so say 9.0."""

    compute_capability = (9, 0)


@pytest.fixture(scope="module")
def compile_ptx():
    problem = _nvvm_problem()
    if problem:
        if os.environ.get("FASTNN_REQUIRE_PTX") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    from numba import cuda
    from numba.cuda import dispatcher

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dispatcher, "get_current_device", Hopper)
        yield lambda kernel, signature: cuda.compile_ptx(kernel.py_func, signature, cc=(9, 0))[0]


def signatures(dtype_name):
    from numba import types

    from fastnn.kernels import cuda
    from fastnn.spec import Act

    f = getattr(types, dtype_name)
    m, v = types.Array(f, 2, "C"), types.Array(f, 1, "C")
    d, i = types.Array(types.float64, 1, "C"), types.Array(types.int64, 1, "C")
    dense = {kernel: signature for code in Act for kernel, signature in
             zip(cuda.dense_kernels(int(code)), [(m, v, m, f), (m, m, m, f, m, v)])}
    return {
        **dense,
        cuda.sigmoid_bce_logits: (m, m, m, d),
        cuda.softmax_cce_logits: (m, m, m, d),
        cuda.mse_loss: (m, m, m, d),
        cuda.binary_hits: (m, m, types.boolean, d, types.int64),
        cuda.categorical_hits: (m, m, d, types.int64),
        cuda.record_batch: (d, d, types.float64, d, i),
        cuda.sgd_update: (v, v, v, f, f, types.boolean),
        cuda.adam_update: (v, v, v, v, f, f, f, f, f),
        cuda.adam_hyper: (i, d, types.float64, types.float64, types.float64),
        cuda.adam_update_device: (v, v, v, v, f, f, d, f),
    }


def window_signatures(dtype_name):
    from numba import types

    from fastnn.kernels import cuda_windows as w

    f, n = getattr(types, dtype_name), types.int64
    m, images, where = types.Array(f, 2, "C"), types.Array(f, 4, "C"), types.Array(types.int64, 4, "C")
    return {w.im2col: (images, *[n] * 8, f, m), w.col2im: (m, *[n] * 8, images),
            w.max_pool: (images, *[n] * 8, images, where), w.max_pool_backward: (images, where, images)}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ptx_for_the_window_kernels(compile_ptx, dtype):
    from numba.cuda.dispatcher import CUDADispatcher

    from fastnn.kernels import cuda_windows

    kernels = window_signatures(dtype)
    assert {k for k in vars(cuda_windows).values() if isinstance(k, CUDADispatcher)} == set(kernels)
    for kernel, signature in kernels.items():
        ptx = compile_ptx(kernel, signature)
        assert ".target sm_90" in ptx and ".entry" in ptx, kernel.py_func.__name__


def test_ptx_covers_every_kernel():
    from numba.cuda.dispatcher import CUDADispatcher

    from fastnn.kernels import cuda
    from fastnn.spec import Act

    fixed = {k for k in vars(cuda).values() if isinstance(k, CUDADispatcher)}
    checked = set(signatures("float32"))
    assert fixed <= checked and len(checked - fixed) == 2 * len(Act), "a kernel without a PTX check"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ptx_for_compute_capability_9(compile_ptx, dtype):
    for kernel, signature in signatures(dtype).items():
        ptx = compile_ptx(kernel, signature)
        assert ".target sm_90" in ptx, kernel.py_func.__name__
        assert ".entry" in ptx


def test_ptx_float32_dense_kernels_compute_in_float32(compile_ptx):
    """No float64 instruction in a float32 dense kernel (GELU's tanh-approximation constants
    aside), now that each is compiled for its own activation."""
    from numba import types

    from fastnn.kernels import cuda
    from fastnn.spec import Act

    f = types.float32
    m, v = types.Array(f, 2, "C"), types.Array(f, 1, "C")
    found = {}
    for code in Act:
        kernels = cuda.dense_kernels(int(code))
        for kernel, signature in zip(kernels, [(m, v, m, f), (m, m, m, f, m, v)]):
            found[(code.name, kernel.py_func.__name__)] = ".f64" in compile_ptx(kernel, signature)
    assert [key for key, f64 in found.items() if f64 and key[0] != "GELU"] == []
