"""How many threads this process's BLAS and Numba may use: every core it may run on, or its
share of them when several ranks of a data-parallel launch run on one host.

Each library starts as many threads as the process has cores. Two ranks on a 2-core host then
run four BLAS threads on two cores, and their spinning made `mpiexec -n 2 fastnn train moons`
52x slower than one process (docs/distributed.md#threads). `distributed.init()` calls
`share_host`; an OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS the user set wins.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

# OpenBLAS's idle workers spin 2**28 cycles (about 80 ms) after each product before they sleep,
# holding a core the next step's row-block threads need (docs/kernels.md#openblas-spin); 2**20
# cycles is a third of a millisecond. OpenBLAS reads it when numpy loads: fastnn imports this first.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
_SHARE: list[int] = []  # this process's threads when ranks share the host; empty: all its cores
_LOCAL = threading.local()  # one_thread_each(): a thread that computes one of several blocks at once


def cores() -> frozenset[int]:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return frozenset(os.sched_getaffinity(0))
    return frozenset(range(os.cpu_count() or 1))


def usable_cores() -> int:
    """How many threads a library of this process should use."""
    return min([len(cores())] + _SHARE)


def threads_here() -> int:
    """Threads for a library called from this thread: usable_cores(), or 1 inside one_thread_each()."""
    return 1 if getattr(_LOCAL, "single", False) else usable_cores()


@contextlib.contextmanager
def one_thread_each() -> Iterator[None]:
    """This thread is one of several computing at once (fastnn.row_blocks): a library that
    threads per calling thread (OpenMP: oneDNN) runs one thread here."""
    before = getattr(_LOCAL, "single", False)
    _LOCAL.single = True
    try:
        yield
    finally:
        _LOCAL.single = before


def threads_per_rank(own: frozenset[int], local: list[frozenset[int]]) -> int:
    """This rank's threads, given every rank's cores on this host (its own included): a launcher
    that bound each rank to its own cores already split them; otherwise the ranks split them."""
    if all(c == own for c in local):
        return max(1, len(own) // len(local))
    return len(own)


def share_host(local: list[frozenset[int]]) -> int | None:
    """Limit this process's BLAS (OpenBLAS, MKL) and Numba threads to its share of the host's
    cores among `local` (every rank's cores on this host). Returns the threads per rank, or None
    when the user set a thread variable or this rank has the host alone."""
    if any(os.environ.get(name) for name in THREAD_VARIABLES) or len(local) < 2:
        return None
    threads = threads_per_rank(cores(), local)
    _SHARE[:] = [threads]
    import numba
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)  # every BLAS and OpenMP library loaded by now; MKL loaded later reads usable_cores()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    return threads
