"""The fastest GEMM on this machine, per shape.

NumPy's OpenBLAS is always there; Intel MKL joins when the `mkl` wheel is installed
(`pip install "fastnn[mkl]"`) or FASTNN_MKL names a libmkl_rt. Neither wins every shape
(docs/kernels.md#gemm-choice), so `Chooser` times each library on the first real products of
a shape — the results are used, nothing is computed twice — and keeps OpenBLAS for the rest of
the process unless another library saves more there than a switch between libraries costs.
`fastnn.use("numpy", gemm="openblas" | "mkl")` forces one.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import functools
import itertools
import os
import threading
import time
from importlib import metadata
from typing import Any, Callable

import numpy as np

from fastnn.backend import BackendUnavailableError
from fastnn.threads import usable_cores, user_set_threads

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


class ThreadKnob:
    """A library's thread count, read and set through its own C functions (a few hundred ns)."""

    def __init__(self, get: Callable[[], int], set_: Callable[[int], Any]) -> None:
        self.get, self.set = get, set_


class OpenBLAS:
    """NumPy's own BLAS (OpenBLAS in the PyPI wheels), through `np.matmul`."""

    name = "openblas"

    def __init__(self) -> None:
        self.threads = _openblas_knob()

    @staticmethod
    def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
        return np.matmul(a, b, out=out)


@functools.cache
def _openblas_knob() -> ThreadKnob | None:
    """NumPy's OpenBLAS's thread count (found by threadpoolctl), or None where it has none."""
    from threadpoolctl import ThreadpoolController

    found = ThreadpoolController().select(internal_api="openblas").lib_controllers
    for lib in sorted(found, key=lambda lib: "numpy" not in lib.filepath):  # NumPy's first: SciPy may bring its own
        dll = ctypes.CDLL(lib.filepath)
        for prefix, suffix in itertools.product(("", "scipy_"), ("", "64_")):
            get = getattr(dll, f"{prefix}openblas_get_num_threads{suffix}", None)
            set_ = getattr(dll, f"{prefix}openblas_set_num_threads{suffix}", None)
            if get is not None and set_ is not None:
                set_.argtypes = [ctypes.c_int]
                return ThreadKnob(get, set_)
    return None


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
        get, set_ = getattr(library, "MKL_Get_Max_Threads", None), getattr(library, "MKL_Set_Num_Threads", None)
        self.threads = None if get is None or set_ is None else ThreadKnob(get, set_)

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
    by SWITCH_MARGIN and SWITCH_SECONDS), with as many threads as measure best (`Threads`).
    One per set of libraries, shared by every model; `choices()` and `threads()` say what it
    kept."""

    def __init__(self, libraries: list[Any]) -> None:
        self.libraries = libraries
        self._chosen: dict[tuple, Threads] = {}
        self._times: dict[tuple, list[list[float]]] = {}

    def matmul(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
        m, k = a.shape
        if m * k * b.shape[1] < SMALL:
            return self.libraries[0].matmul(a, b, out)
        key = (a.shape, b.shape, a.flags.c_contiguous, b.flags.c_contiguous, out.dtype.char)
        chosen = self._chosen.get(key)
        if chosen is not None:
            return chosen.matmul(a, b, out)
        if len(self.libraries) == 1:
            self._chosen[key] = Threads(self.libraries[0])
            return self._chosen[key].matmul(a, b, out)
        times = self._times.setdefault(key, [[] for _ in self.libraries])
        i = next(j for j, t in enumerate(times) if len(t) < TRIALS)  # in turn, each library's calls in a run
        start = time.perf_counter()
        self.libraries[i].matmul(a, b, out)
        times[i].append(time.perf_counter() - start)
        if len(times[-1]) == TRIALS:
            kept = winner([min(t) for t in times])
            self._chosen[key] = Threads(self.libraries[kept], times[kept])
        return out

    def choices(self) -> dict[str, str]:
        """{"(m×k)·(k×n) layout dtype": library} for every shape decided so far."""
        return {_describe(key): chosen.library.name for key, chosen in self._chosen.items()}

    def threads(self) -> dict[str, int]:
        """{"(m×k)·(k×n) layout dtype": threads} its library runs each shape with now."""
        return {_describe(key): chosen.count for key, chosen in self._chosen.items()}


THREAD_MARGIN = 1.1  # all threads must beat one by this: one leaves a core free, and waits on no busy one
RETRIAL = 100  # products of a shape between two trials of its thread counts
SLOWED = 1.5  # ... or sooner, once its recent best is this much slower than when it was chosen


_ONE_THREAD = threading.Lock()  # held while a product runs with its library set to one thread


class Threads:
    """One product shape on one library: all the threads the library may use, or one,
    whichever measured faster in the latest trials (one on a near tie). A product split over
    both cores of a 2-core host waits for the slower half, so with the other core busy it runs
    slower than on one thread (docs/kernels.md#threads); the trials repeat every RETRIAL
    products, or when the kept count slows down, so the choice follows a core that becomes
    busy or free. A product on one thread gives the library back its count after it. Where the
    user set a thread variable (fastnn.threads.THREAD_VARIABLES) the library keeps that count:
    one count per shape is also one rounding, the same bits in every run."""

    def __init__(self, library: Any, all_threads_times: list[float] = ()) -> None:
        self.library, self.knob = library, getattr(library, "threads", None)
        self.fixed = self.knob is None or user_set_threads() or self.knob.get() < 2  # a user's count is kept
        self.recent = {"all": collections.deque(all_threads_times, maxlen=TRIALS),
                       "one": collections.deque(maxlen=TRIALS)}
        self.chosen, self.best, self.calls = "all", 0.0, 0
        self.pending = [n for n in self.recent for _ in range(TRIALS - len(self.recent[n]))]

    @property
    def count(self) -> int:
        """The threads this shape runs on now."""
        return 1 if self.fixed or self.chosen == "one" else self.knob.get()

    def matmul(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
        if self.fixed:
            return self.library.matmul(a, b, out)
        threads = self.pending.pop() if self.pending else self.chosen
        start = time.perf_counter()
        if threads == "one" and _ONE_THREAD.acquire(blocking=False):  # the count is the library's, not a thread's
            count = self.knob.get()  # read each time: fastnn.distributed.init() or the user may change it
            self.knob.set(1)
            try:
                self.library.matmul(a, b, out)
            finally:
                self.knob.set(count)
                _ONE_THREAD.release()
        else:
            threads = "all"
            self.library.matmul(a, b, out)
        self.recent[threads].append(time.perf_counter() - start)
        if self.pending:
            return out
        if self.best == 0.0:  # a trial round just ended
            self._choose()
        else:
            self.calls += 1
            if self.calls >= RETRIAL or min(self.recent[self.chosen], default=0.0) > SLOWED * self.best:
                self.pending = [n for n in self.recent if n != self.chosen for _ in range(TRIALS)]
                self.best = 0.0
        return out

    def _choose(self) -> None:
        best = {n: min(t, default=float("inf")) for n, t in self.recent.items()}
        self.chosen = "all" if best["all"] * THREAD_MARGIN < best["one"] else "one"
        self.best, self.calls = best[self.chosen], 0


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
def chooser(names: tuple[str, ...] | None = None) -> Chooser:
    """The process's chooser over the named libraries, by default every usable one (OpenBLAS
    first)."""
    usable = libraries()[0]
    return Chooser([usable[name] for name in names or usable])


def matmul_for(mode: str) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """`matmul(a, b, out)` for a gemm mode: "auto" chooses per shape among the usable libraries;
    a library's name forces it, or raises GemmUnavailableError saying why it cannot run. The
    mode was checked where the backend was made (fastnn.backend)."""
    usable, why_not = libraries()
    if mode == "auto":
        return chooser().matmul
    if mode not in usable:
        raise GemmUnavailableError(f"gemm={mode!r} cannot run here: {why_not[mode]}")
    return chooser((mode,)).matmul


def describe(a: np.ndarray, b: np.ndarray) -> str:
    """A product's shapes as the chooser reports them, e.g. "(4096×64)ᵀ·(4096×32) float32"."""
    return _describe((a.shape, b.shape, a.flags.c_contiguous, b.flags.c_contiguous, a.dtype.char))
