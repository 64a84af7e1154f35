"""bfloat16 products on the CPU for `fastnn.use("numpy", precision="bfloat16")`: each operand
rounded to bfloat16 in one Numba pass (ties to even, as fastnn.bfloat16's pure twin), then a
library's bf16 GEMM multiplies them with float32 sums: oneDNN's matmul (`fastnn[onednn]`) or
MKL's `cblas_gemm_bf16bf16f32` (`fastnn[mkl]`), the faster per shape where both are installed.
It runs only where the CPU has AMX or AVX512-BF16 units (`problem()` says why not): elsewhere
the libraries emulate bf16, which gives the same numbers, slower than float32.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from typing import Any

import numpy as np
from fastnn.kernels import gemm, onednn
from fastnn.kernels.buffers import scratch
from fastnn.kernels.cache import CACHE
from numba import njit

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


class RoundedProducts:
    """float32 products through bfloat16 operands: `round(a)` gives a's bf16 bits, `multiply`
    multiplies bits with float32 sums in `library` (a bf16 GEMM, or a chooser among them), and
    `matmul(a, b, out)` does both. A transposed view of a C-contiguous array is rounded as
    stored and multiplied transposed."""

    def __init__(self, library: Any) -> None:
        self.library = library
        self._scratch: dict[int, dict] = {}  # per thread: the operands' bits of `matmul`

    def round(self, a: np.ndarray, bits: np.ndarray | None = None) -> np.ndarray:
        """a's values as bfloat16 bits, in `bits` (shaped as a is stored) or a fresh array."""
        transposed = self._transposed(a)
        stored = a.T if transposed else np.ascontiguousarray(a, np.float32)
        bits = to_bfloat16(stored, bits)
        return bits.T if transposed else bits

    @staticmethod
    def _transposed(a: np.ndarray) -> bool:
        return a.dtype == np.float32 and not a.flags.c_contiguous and a.T.flags.c_contiguous

    def stored_shape(self, a: np.ndarray) -> tuple[int, ...]:
        """The shape of `round(a)`'s bits as stored."""
        return a.T.shape if self._transposed(a) else a.shape

    def multiply(self, a_bits: np.ndarray, b_bits: np.ndarray, out: np.ndarray) -> np.ndarray:
        if out.dtype != np.float32 or not out.flags.c_contiguous:
            raise TypeError(f"bfloat16 products write float32 C-contiguous outputs, got {out.dtype}")
        if 0 in (a_bits.shape[0], a_bits.shape[1], b_bits.shape[1]):
            out[...] = 0
            return out
        return self.library.matmul(a_bits, b_bits, out)

    def dense_forward(self, x: np.ndarray, W: np.ndarray, z: np.ndarray, buffers: dict | None) -> np.ndarray:
        """z = x @ W; x's and W's bits stay in a layer's `buffers` for its backward."""
        return self.multiply(self._keep(x, buffers, "x"), self._keep(W, buffers, "W"), z)

    def dense_backward(self, x: np.ndarray, W: np.ndarray, dz: np.ndarray, dW: np.ndarray, dx: np.ndarray | None,
                       buffers: dict | None) -> None:
        """dW = x.T @ dz and, unless dx is None, dx = dz @ W.T: dz rounded once for both, x and W
        not again when the forward's bits in `buffers` still stand for them (nothing writes to a
        layer's input or weights between its forward and backward)."""
        dz_bits = self._keep(dz, buffers, "dz")
        self.multiply(self._kept(x, buffers, "x").T, dz_bits, dW)
        if dx is not None:
            self.multiply(dz_bits, self._kept(W, buffers, "W").T, dx)

    def _keep(self, a: np.ndarray, buffers: dict | None, name: str) -> np.ndarray:
        """a rounded into buffers' bits for `name`, which remember which array they round."""
        bits = scratch(buffers, name + " bits", self.stored_shape(a), np.uint16)
        if buffers is not None:
            buffers[name + " rounds"] = (_identity(a), bits)
        return self.round(a, bits)

    def _kept(self, a: np.ndarray, buffers: dict | None, name: str) -> np.ndarray:
        """The bits `_keep` left for `name` if they round this very array, else a rounded anew."""
        kept = None if buffers is None else buffers.get(name + " rounds")
        if kept is None or kept[0] != _identity(a):
            return self._keep(a, buffers, name)
        return kept[1].T if self._transposed(a) else kept[1]

    def matmul(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
        """out = a @ b of float32 arrays, each operand rounded to bfloat16 first."""
        own = self._scratch.setdefault(threading.get_ident(), {})  # row-block threads each keep their own
        return self.multiply(self._keep(a, own, "a"), self._keep(b, own, "b"), out)


def _identity(a: np.ndarray) -> tuple:
    """Which memory an array views, and how."""
    return a.ctypes.data, a.shape, a.strides


class MklBf16:
    """MKL's `cblas_gemm_bf16bf16f32` on bfloat16 bits, C-contiguous or transposed views."""

    name = "mkl"

    def __init__(self, library: ctypes.CDLL) -> None:
        fn = library.cblas_gemm_bf16bf16f32
        int_, ptr = ctypes.c_int, ctypes.c_void_p
        fn.restype = None
        fn.argtypes = [int_, int_, int_, int_, int_, int_, ctypes.c_float, ptr, int_, ptr, int_, ctypes.c_float, ptr, int_]
        self._gemm = fn

    @staticmethod
    def _layout(bits: np.ndarray) -> tuple[int, int]:
        """(CBLAS transpose flag, leading dimension) of a C-contiguous array or its transpose."""
        if bits.flags.c_contiguous:
            return gemm.NO_TRANS, max(1, bits.shape[1])
        return gemm.TRANS, max(1, bits.shape[0])

    def matmul(self, a_bits: np.ndarray, b_bits: np.ndarray, out: np.ndarray) -> np.ndarray:
        """out = a @ b from bfloat16 bits, float32 sums."""
        (m, k), n = a_bits.shape, b_bits.shape[1]
        (ta, lda), (tb, ldb) = self._layout(a_bits), self._layout(b_bits)
        self._gemm(gemm.ROW_MAJOR, ta, tb, m, n, k, 1.0, a_bits.ctypes.data, lda, b_bits.ctypes.data, ldb, 0.0,
                   out.ctypes.data, max(1, n))
        return out


def _load_mkl() -> tuple[MklBf16 | None, str | None]:
    gemm.libraries()  # loads MKL as the GEMM chooser does (its thread settings) where it is installed
    path = gemm.mkl_path()
    if path is None:
        return None, 'MKL is not installed (pip install "fastnn[mkl]")'
    try:
        return MklBf16(ctypes.CDLL(path)), None
    except (OSError, AttributeError) as err:
        return None, f"{path} has no cblas_gemm_bf16bf16f32 ({type(err).__name__}: {err})"


def _load_onednn() -> tuple[onednn.OneDNN | None, str | None]:
    path = onednn.library_path()
    if path is None:
        return None, 'oneDNN is not installed (pip install "fastnn[onednn]")'
    try:
        return onednn.OneDNN(path), None
    except (OSError, AttributeError, onednn.OneDnnError) as err:
        hint = "; it needs GNU OpenMP: install libgomp1 (GCC's runtime)" if "libgomp" in str(err) else ""
        return None, f"{path} is not a usable oneDNN ({type(err).__name__}: {err}){hint}"


@functools.cache
def libraries() -> tuple[dict[str, Any], dict[str, str]]:
    """({name: bf16 GEMM on bits} that load here, {name: why not} for the others); ignores the CPU's units."""
    usable, why_not = {}, {}
    for name, load in (("onednn", _load_onednn), ("mkl", _load_mkl)):
        found, why = load()
        if found is None:
            why_not[name] = why
        else:
            usable[name] = found
    return usable, why_not


@functools.cache
def library() -> tuple[RoundedProducts | None, str | None]:
    """(bf16 products, None) where a library has a bf16 GEMM, else (None, why not): with both oneDNN and
    MKL, a chooser times each on a shape's first products and keeps the faster (the two differ
    by 2-8x with the CPU's vendor: docs/kernels.md#bf16-gemm)."""
    usable, why_not = libraries()
    if not usable:
        return None, "; ".join(why_not.values())
    found = list(usable.values())
    return RoundedProducts(found[0] if len(found) == 1 else gemm.Chooser(found)), None


def problem() -> str | None:
    """None when bf16 products run here on bf16 units through oneDNN or MKL; else what is missing."""
    flags = cpu_flags()
    if not flags:
        return "this CPU has no bfloat16 units (neither AMX nor AVX512-BF16 in /proc/cpuinfo)"
    return library()[1]


def describe() -> str:
    """Which library multiplies bf16 products here and on which units, or why none does."""
    why = problem()
    if why is not None:
        return f"off: {why}"
    names = list(libraries()[0])
    which = f"per shape the faster of {', '.join(names)}" if len(names) > 1 else names[0]
    return f"{which} on {', '.join(sorted(cpu_flags()))} units"
