"""bfloat16 products on the CPU for `fastnn.use("numpy", precision="bfloat16")`: each operand
rounded to bfloat16 in one Numba pass (ties to even, as fastnn.bfloat16's pure twin), then
MKL's `cblas_gemm_bf16bf16f32` multiplies them with float32 accumulation, on AMX or
AVX512-BF16 units. It runs only where the CPU has those units (`problem()` says why not): MKL
emulates bf16 on other CPUs, which gives the same numbers, slower than float32.
"""

from __future__ import annotations

import ctypes
import functools
import threading

import numpy as np
from numba import njit

from fastnn.kernels import gemm
from fastnn.kernels.cache import CACHE

CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo's names for the bf16 units


@njit(cache=CACHE, nogil=True)
def _to_bfloat16(bits, out):  # pragma: no cover - compiled
    """float32 bit patterns -> bfloat16 bit patterns, rounded to nearest even; NaN stays NaN."""
    for i in range(bits.size):
        u = bits[i]
        if (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000):
            out[i] = np.uint16((u >> np.uint32(16)) | np.uint32(0x40))  # quiet NaN, sign kept
        else:
            out[i] = np.uint16((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16))


def to_bfloat16(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """A C-contiguous float32 array's values as bfloat16 bit patterns (uint16, same shape)."""
    out = np.empty(a.shape, np.uint16) if out is None else out
    _to_bfloat16(a.reshape(-1).view(np.uint32), out.reshape(-1))
    return out


def from_bfloat16(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns as the float32 values they stand for."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def cpu_flags() -> set[str]:
    """The bf16 flags of this CPU (Linux's /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split()) & set(CPU_FLAGS)
    except OSError:
        pass
    return set()


class Bf16Gemm:
    """`matmul(a, b, out)`: float32 a @ b through bfloat16 operands and MKL's bf16 GEMM. A
    transposed view of a C-contiguous array is rounded as stored and passed transposed."""

    def __init__(self, library: ctypes.CDLL) -> None:
        fn = library.cblas_gemm_bf16bf16f32
        int_, ptr = ctypes.c_int, ctypes.c_void_p
        fn.restype = None
        fn.argtypes = [int_, int_, int_, int_, int_, int_, ctypes.c_float, ptr, int_, ptr, int_, ctypes.c_float, ptr, int_]
        self._gemm = fn
        self._scratch: dict[tuple, np.ndarray] = {}  # per thread, slot and shape

    def _operand(self, a: np.ndarray, slot: str) -> tuple[np.ndarray, int, int]:
        """(bf16 bits, CBLAS transpose flag, leading dimension) of an operand."""
        stored, flag = (a, gemm.NO_TRANS) if a.flags.c_contiguous else (a.T, gemm.TRANS)
        if not stored.flags.c_contiguous or stored.dtype != np.float32:
            stored, flag = np.ascontiguousarray(a, np.float32), gemm.NO_TRANS
        key = (threading.get_ident(), slot, stored.shape)  # threads computing row blocks at once each keep their own
        bits = self._scratch.get(key)
        if bits is None:
            bits = self._scratch[key] = np.empty(stored.shape, np.uint16)
        return to_bfloat16(stored, bits), flag, max(1, stored.shape[1])

    def matmul(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
        if out.dtype != np.float32 or not out.flags.c_contiguous:
            raise TypeError(f"bfloat16 products write float32 C-contiguous outputs, got {out.dtype}")
        (m, k), n = a.shape, b.shape[1]
        if 0 in (m, n, k):
            out[...] = 0
            return out
        bits_a, ta, lda = self._operand(a, "a")
        bits_b, tb, ldb = self._operand(b, "b")
        self._gemm(gemm.ROW_MAJOR, ta, tb, m, n, k, 1.0, bits_a.ctypes.data, lda, bits_b.ctypes.data, ldb, 0.0,
                   out.ctypes.data, max(1, n))
        return out


@functools.cache
def library() -> tuple[Bf16Gemm | None, str | None]:
    """(the bf16 GEMM, None) where MKL has one, else (None, why not); ignores the CPU's units."""
    gemm.libraries()  # loads MKL as the GEMM chooser does (its thread settings) where it is installed
    path = gemm.mkl_path()
    if path is None:
        return None, 'MKL is not installed (pip install "fastnn[mkl]")'
    try:
        return Bf16Gemm(ctypes.CDLL(path)), None
    except (OSError, AttributeError) as err:
        return None, f"{path} has no cblas_gemm_bf16bf16f32 ({type(err).__name__}: {err})"


def problem() -> str | None:
    """None when bf16 products run here on bf16 units through MKL; else what is missing."""
    flags = cpu_flags()
    if not flags:
        return "this CPU has no bfloat16 units (neither AMX nor AVX512-BF16 in /proc/cpuinfo)"
    return library()[1]
