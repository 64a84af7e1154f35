"""The fastest GEMM on this machine, per shape.

NumPy's OpenBLAS is always there; Intel MKL joins when the `mkl` wheel is installed
(`pip install "fastnn[mkl]"`) or FASTNN_MKL names a libmkl_rt. Neither wins every shape
(docs/kernels.md#gemm-choice), so `Chooser` times each library on the first real products of
a shape — the results are used, nothing is computed twice — and keeps OpenBLAS for the rest of
the process unless another library saves more there than a switch between libraries costs.
`fastnn.use("numpy", gemm="openblas" | "mkl")` forces one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import time
from importlib import metadata
from typing import Any, Callable

import numpy as np

from fastnn.backend import BackendUnavailableError
from fastnn.threads import usable_cores

TRIALS = 3  # timed calls per library and shape before choosing; the fastest of them counts
# Another library must beat the first (OpenBLAS) by this factor and save this much per product:
# a product in one library right after one in the other waits for the first's spinning threads
# to yield the cores, a cost its own time does not show (docs/kernels.md#gemm-choice).
SWITCH_MARGIN = 1.25
SWITCH_SECONDS = 0.03
SMALL = 1 << 20  # multiply-adds under which a product goes straight to OpenBLAS: choosing costs more

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112  # CBLAS enums


class GemmUnavailableError(BackendUnavailableError):
    """A GEMM library was forced that cannot run here."""


class OpenBLAS:
    """NumPy's own BLAS (OpenBLAS in the PyPI wheels), through `np.matmul`."""

    name = "openblas"

    @staticmethod
    def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
        return np.matmul(a, b, out=out)


class MKL:
    """Intel MKL's `cblas_?gemm` through ctypes: operands C-contiguous or transposed views of
    C-contiguous arrays (what the step multiplies), anything else through NumPy."""

    name = "mkl"

    def __init__(self, library: ctypes.CDLL, path: str) -> None:
        self.path = path
        self.version = _version(library)
        int_, ptr = ctypes.c_int, ctypes.c_void_p
        self._gemm = {}
        for char, blas, scalar in (("f", "s", ctypes.c_float), ("d", "d", ctypes.c_double)):
            fn = getattr(library, f"cblas_{blas}gemm")
            fn.restype = None
            fn.argtypes = [int_, int_, int_, int_, int_, int_, scalar, ptr, int_, ptr, int_, scalar, ptr, int_]
            self._gemm[char] = fn

    def matmul(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
        ta, lda = _layout(a)
        tb, ldb = _layout(b)
        fn = self._gemm.get(out.dtype.char)
        if ta is None or tb is None or fn is None or not out.flags.c_contiguous or a.dtype != out.dtype \
                or b.dtype != out.dtype or 0 in out.shape or a.shape[1] == 0:
            return np.matmul(a, b, out=out)
        m, k = a.shape
        fn(ROW_MAJOR, ta, tb, m, b.shape[1], k, 1.0, a.ctypes.data, lda, b.ctypes.data, ldb, 0.0,
           out.ctypes.data, max(1, out.shape[1]))
        return out


def _version(library: ctypes.CDLL) -> str:
    """MKL's own version line ("Intel(R) oneAPI Math Kernel Library Version 2026.2..."), or ""."""
    get = getattr(library, "MKL_Get_Version_String", None)
    if get is None:
        return ""
    text = ctypes.create_string_buffer(256)
    get(text, len(text))
    return text.value.decode(errors="replace").strip()


def _layout(a: np.ndarray) -> tuple[int | None, int]:
    """(CBLAS transpose flag, leading dimension) of a row-major operand; None when neither."""
    if a.flags.c_contiguous:
        return NO_TRANS, max(1, a.shape[1])
    if a.flags.f_contiguous:
        return TRANS, max(1, a.shape[0])
    return None, 0


# ---------------------------------------------------------------------------------------------
# Finding and checking MKL


def mkl_path() -> str | None:
    """libmkl_rt: FASTNN_MKL, else the `mkl` wheel's, else one on the library path."""
    if os.environ.get("FASTNN_MKL"):
        return os.environ["FASTNN_MKL"]
    try:
        files = metadata.files("mkl") or []
    except metadata.PackageNotFoundError:
        files = []
    for f in files:
        if f.name.startswith(("libmkl_rt.so", "mkl_rt")) and f.name.endswith(tuple("0123456789") + (".dll",)):
            return str(f.locate().resolve())
    return ctypes.util.find_library("mkl_rt")


def load_mkl(path: str | None) -> tuple[MKL | None, str | None]:
    """(MKL, None) when the library at `path` loads, has cblas_sgemm/dgemm and multiplies right;
    else (None, why not)."""
    if path is None:
        return None, 'not installed (pip install "fastnn[mkl]", or set FASTNN_MKL to a libmkl_rt)'
    # After a call MKL's OpenMP threads spin for KMP_BLOCKTIME (200 ms) and take the cores from
    # the OpenBLAS and Numba work that follows: docs/kernels.md#mkl-amd. Read when it loads.
    os.environ.setdefault("KMP_BLOCKTIME", "0")
    try:
        library = ctypes.CDLL(path)
        mkl = MKL(library, path)
    except (OSError, AttributeError) as err:
        return None, f"{path} is not a usable MKL ({type(err).__name__}: {err})"
    set_threads = getattr(library, "MKL_Set_Num_Threads", None)
    if set_threads is not None:  # as many as OpenBLAS: all cores, or this rank's share of them
        set_threads(usable_cores())
    wrong = _self_check(mkl)
    return (None, f"{path} multiplied wrong in a self-check ({wrong})") if wrong else (mkl, None)


def _self_check(library: Any) -> str | None:
    """None when `library` multiplies every layout the step uses like NumPy does."""
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        x, w, dz = (rng.standard_normal(s).astype(dtype) for s in ((7, 5), (5, 3), (7, 3)))
        for a, b in ((x, w), (x.T, dz), (dz, w.T)):
            out = np.empty((a.shape[0], b.shape[1]), dtype)
            library.matmul(a, b, out)
            if not np.allclose(out, a @ b, rtol=1e-4, atol=1e-5):
                return f"{np.dtype(dtype).name} {a.shape} @ {b.shape}"
    return None


@functools.cache
def libraries() -> tuple[dict[str, Any], dict[str, str]]:
    """({name: library} usable here, {name: why not} for the others), found once per process."""
    mkl, why = load_mkl(mkl_path())
    usable: dict[str, Any] = {"openblas": OpenBLAS()}
    if mkl is not None:
        usable["mkl"] = mkl
    return usable, ({} if why is None else {"mkl": why})


# ---------------------------------------------------------------------------------------------
# Choosing


class Chooser:
    """Per (shapes, layouts, dtype) of a product: each library in turn does TRIALS products of
    that shape, timed, then the fastest does the rest (the first one unless another beats it
    by SWITCH_MARGIN and SWITCH_SECONDS). One per process, shared by every model; `choices()`
    says what it kept."""

    def __init__(self, libraries: list[Any]) -> None:
        self.libraries = libraries
        self._chosen: dict[tuple, Any] = {}
        self._times: dict[tuple, list[list[float]]] = {}

    def matmul(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
        m, k = a.shape
        if m * k * b.shape[1] < SMALL:
            return self.libraries[0].matmul(a, b, out)
        key = (a.shape, b.shape, a.flags.c_contiguous, b.flags.c_contiguous, out.dtype.char)
        chosen = self._chosen.get(key)
        if chosen is not None:
            return chosen.matmul(a, b, out)
        times = self._times.setdefault(key, [[] for _ in self.libraries])
        i = next((j for j, t in enumerate(times) if len(t) < TRIALS), None)  # in turn, each library's calls in a run
        if i is None:  # another thread (fastnn.row_blocks) timed the last trial and is choosing now
            return self.libraries[winner([min(t) for t in times])].matmul(a, b, out)
        start = time.perf_counter()
        self.libraries[i].matmul(a, b, out)
        times[i].append(time.perf_counter() - start)
        if len(times[-1]) == TRIALS:
            self._chosen[key] = self.libraries[winner([min(t) for t in times])]
        return out

    def choices(self) -> dict[str, str]:
        """{"(m×k)·(k×n) layout dtype": library} for every shape decided so far."""
        return {_describe(key): lib.name for key, lib in self._chosen.items()}


def winner(best_times: list[float]) -> int:
    """The library to keep: the fastest, if it beats the first by SWITCH_MARGIN and saves
    SWITCH_SECONDS, else the first."""
    fastest = min(range(len(best_times)), key=best_times.__getitem__)
    saves = best_times[0] - best_times[fastest]
    return fastest if best_times[fastest] * SWITCH_MARGIN < best_times[0] and saves > SWITCH_SECONDS else 0


def _describe(key: tuple) -> str:
    """"(4096×64)ᵀ·(4096×32) float32": each operand as stored, ᵀ where it is multiplied transposed."""
    a, b, a_c, b_c, char = key
    operands = ("({}×{})".format(*s) if c else "({}×{})ᵀ".format(*s[::-1]) for s, c in ((a, a_c), (b, b_c)))
    return "·".join(operands) + f" {np.dtype(char).name}"


@functools.cache
def chooser() -> Chooser:
    """The process's chooser over every usable library (OpenBLAS first)."""
    return Chooser(list(libraries()[0].values()))


def matmul_for(mode: str) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """`matmul(a, b, out)` for a gemm mode: "auto" chooses per shape among the usable libraries;
    a library's name forces it, or raises GemmUnavailableError saying why it cannot run. The
    mode was checked where the backend was made (fastnn.backend)."""
    usable, why_not = libraries()
    if mode == "auto":
        return chooser().matmul if len(usable) > 1 else OpenBLAS.matmul
    if mode not in usable:
        raise GemmUnavailableError(f"gemm={mode!r} cannot run here: {why_not[mode]}")
    return usable[mode].matmul


def describe(a: np.ndarray, b: np.ndarray) -> str:
    """A product's shapes as the chooser reports them, e.g. "(4096×64)ᵀ·(4096×32) float32"."""
    return _describe((a.shape, b.shape, a.flags.c_contiguous, b.flags.c_contiguous, a.dtype.char))
