"""oneDNN's matmul primitive through its C API (ctypes): bfloat16 operands, float32 output.

The `onednn-cpu-gomp` wheel (`pip install "fastnn[onednn]"`) ships libdnnl built on GNU OpenMP.
oneDNN picks its kernel by the CPU's instruction sets, not its vendor: on an AMD CPU with
AVX512-BF16 it runs bf16 dot products, where MKL's bf16 GEMM falls back to emulation
(docs/kernels.md#bf16-gemm). FASTNN_ONEDNN names another libdnnl.
"""

from __future__ import annotations

import ctypes
import os
import threading
from importlib import metadata
from typing import Any

import numpy as np

from fastnn.threads import threads_here

PACKAGE = "onednn-cpu-gomp"
CPU_ENGINE, IN_ORDER_STREAM = 1, 1
BF16, F32 = 2, 3  # dnnl_data_type_t
ARG_SRC, ARG_DST, ARG_WEIGHTS = 1, 17, 33
MAX_NDIMS = 12

_void_p, _dims = ctypes.c_void_p, ctypes.c_int64 * MAX_NDIMS


class OneDnnError(RuntimeError):
    """A oneDNN call returned a status other than success."""


def _call(dnnl: ctypes.CDLL, name: str, *args: Any) -> None:
    """Call a oneDNN C function; a status other than success raises OneDnnError."""
    status = getattr(dnnl, name)(*args)
    if status != 0:
        raise OneDnnError(f"oneDNN {name} returned status {status}")


class _Arg(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_int), ("memory", _void_p)]


def library_path() -> str | None:
    """libdnnl from FASTNN_ONEDNN or the onednn-cpu-gomp wheel; None when neither is there."""
    if os.environ.get("FASTNN_ONEDNN"):
        return os.environ["FASTNN_ONEDNN"]
    try:
        files = metadata.files(PACKAGE) or []
    except metadata.PackageNotFoundError:
        return None
    found = [f for f in files if f.name.startswith("libdnnl.so.") and f.name.count(".") == 2]
    return str(found[0].locate().resolve()) if found else None


class _Product:
    """One thread's primitive for one (shape, strides) of a product, with its memory objects:
    a memory object's data handle is per call, so threads must not share them."""

    def __init__(self, dnnl: ctypes.CDLL, engine: _void_p, a: tuple, b: tuple, out: tuple) -> None:
        self._dnnl = dnnl
        descs = [self._desc(shape, strides, kind) for shape, strides, kind in (a, b, out)]
        pd, self.primitive = _void_p(), _void_p()
        _call(self._dnnl, "dnnl_matmul_primitive_desc_create", ctypes.byref(pd), engine, descs[0], descs[1], None,
                   descs[2], None)
        _call(self._dnnl, "dnnl_primitive_create", ctypes.byref(self.primitive), pd)
        _call(self._dnnl, "dnnl_primitive_desc_destroy", pd)
        self.memories = []
        for desc in descs:
            memory = _void_p()
            _call(self._dnnl, "dnnl_memory_create", ctypes.byref(memory), desc, engine, None)
            _call(self._dnnl, "dnnl_memory_desc_destroy", desc)
            self.memories.append(memory)
        self.args = (_Arg * 3)(*(_Arg(arg, m) for arg, m in zip((ARG_SRC, ARG_WEIGHTS, ARG_DST), self.memories)))

    def _desc(self, shape: tuple, strides: tuple, kind: int) -> _void_p:
        desc = _void_p()
        _call(self._dnnl, "dnnl_memory_desc_create_with_strides", ctypes.byref(desc), 2, _dims(*shape), kind,
                   _dims(*strides))
        return desc

    def run(self, stream: _void_p, pointers: tuple[int, int, int]) -> None:
        for memory, pointer in zip(self.memories, pointers):
            _call(self._dnnl, "dnnl_memory_set_data_handle", memory, _void_p(pointer))
        _call(self._dnnl, "dnnl_primitive_execute", self.primitive, stream, 3, self.args)
        _call(self._dnnl, "dnnl_stream_wait", stream)


class OneDNN:
    """`matmul(a_bits, b_bits, out)`: out = a @ b from bfloat16 bit patterns (uint16 arrays,
    any 2-D strides), float32 sums written to a C-contiguous float32 `out`."""

    name = "onednn"

    def __init__(self, path: str) -> None:
        self.path = path
        self._dnnl = ctypes.CDLL(path)
        self.version = self._version()
        self._engine = _void_p()
        _call(self._dnnl, "dnnl_engine_create", ctypes.byref(self._engine), CPU_ENGINE, 0)
        self._local = threading.local()  # per thread: its stream and its primitives
        self._omp_set_num_threads = ctypes.CDLL("libgomp.so.1").omp_set_num_threads  # libdnnl's OpenMP runtime

    def _version(self) -> str:
        class Version(ctypes.Structure):
            _fields_ = [("major", ctypes.c_int), ("minor", ctypes.c_int), ("patch", ctypes.c_int),
                        ("hash", ctypes.c_char_p), ("cpu_runtime", ctypes.c_uint), ("gpu_runtime", ctypes.c_uint)]

        self._dnnl.dnnl_version.restype = ctypes.POINTER(Version)
        v = self._dnnl.dnnl_version().contents
        return f"oneDNN {v.major}.{v.minor}.{v.patch}"

    def matmul(self, a_bits: np.ndarray, b_bits: np.ndarray, out: np.ndarray) -> np.ndarray:
        local = self._local
        if not hasattr(local, "stream"):
            local.stream, local.products, local.threads = _void_p(), {}, None
            _call(self._dnnl, "dnnl_stream_create", ctypes.byref(local.stream), self._engine, IN_ORDER_STREAM)
        threads = threads_here()  # all cores (or this rank's share); one inside a row-block thread
        if threads != local.threads:
            self._omp_set_num_threads(threads)  # OpenMP's thread count belongs to the calling thread
            local.threads = threads
        layout = tuple((x.shape, tuple(s // x.itemsize for s in x.strides)) for x in (a_bits, b_bits, out))
        product = local.products.get(layout)
        if product is None:
            (sa, ta), (sb, tb), (so, to) = layout
            product = local.products[layout] = _Product(self._dnnl, self._engine, (sa, ta, BF16), (sb, tb, BF16),
                                                         (so, to, F32))
        product.run(local.stream, (a_bits.ctypes.data, b_bits.ctypes.data, out.ctypes.data))
        return out
