"""How one flat buffer of a backend's arrays is summed over the ranks, once per step:

- `HostMPI`: MPI on host memory. NumPy buffers are reduced in place, without a copy; the
  arrays of other backends cross to the host and back once each, whole.
- `DeviceMPI`: CuPy buffers handed as they are to an MPI built CUDA-aware
  (MPIX_Query_cuda_support, which MPICH and Open MPI both export).
- `NCCL`: CuPy buffers summed by NCCL on the current CUDA stream: the host does not wait.

`reducer_for` picks one per backend: NCCL for CuPy where CuPy has it and no two ranks share a
GPU (NCCL refuses that), then a CUDA-aware MPI, then the host.
"""

from __future__ import annotations

import ctypes
import re
from typing import Any, Callable

import numpy as np

from fastnn.backend import BackendUnavailableError, to_numpy

ALLREDUCE_MODES = ("auto", "nccl", "mpi")

Reducer = Callable[[Any], Any]  # a flat 1-d array of the backend -> the sums over the ranks


def check_mode(mode: str) -> str:
    """`mode` if it names an all-reduce path, else a ValueError saying which do."""
    if mode not in ALLREDUCE_MODES:
        raise ValueError(f"allreduce must be one of {ALLREDUCE_MODES}, got {mode!r}: 'auto' picks NCCL for "
                         "CuPy arrays where it can, 'nccl' insists on it, 'mpi' always uses MPI")
    return mode


class HostMPI:
    """MPI's Allreduce on host memory."""

    name = "mpi (host memory)"

    def __init__(self, comm: Any, backend: Any) -> None:
        from mpi4py import MPI

        self.comm, self.backend, self.sum = comm, backend, MPI.SUM
        self.in_place = MPI.IN_PLACE

    def __call__(self, flat: Any) -> Any:
        host = to_numpy(flat)  # NumPy: the same array; a device: one copy, whole
        if not (host.flags.writeable and host.flags.c_contiguous):  # JAX's host views are read-only
            host = np.array(host)
        self.comm.Allreduce(self.in_place, host, op=self.sum)
        return self.backend.asarray(host)


class DeviceMPI:
    """MPI's Allreduce on the GPU's memory, for an MPI built CUDA-aware."""

    name = "mpi (CUDA-aware, device memory)"

    def __init__(self, comm: Any, backend: Any) -> None:
        from mpi4py import MPI

        self.comm, self.sum, self.in_place = comm, MPI.SUM, MPI.IN_PLACE

    def __call__(self, flat: Any) -> Any:
        import cupy

        cupy.cuda.get_current_stream().synchronize()  # MPI reads the buffer outside CuPy's stream
        self.comm.Allreduce(self.in_place, flat, op=self.sum)
        return flat


class NCCL:
    """NCCL's all-reduce on the current CUDA stream (one communicator per process and GPU)."""

    name = "nccl"

    def __init__(self, comm: Any, backend: Any) -> None:
        from cupy.cuda import nccl

        unique_id = comm.bcast(nccl.get_unique_id() if comm.Get_rank() == 0 else None, root=0)
        with backend.device:
            self.nccl = nccl.NcclCommunicator(comm.Get_size(), unique_id, comm.Get_rank())
        self.types = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64}
        self.sum = nccl.NCCL_SUM

    def __call__(self, flat: Any) -> Any:
        import cupy

        stream = cupy.cuda.get_current_stream().ptr
        self.nccl.allReduce(flat.data.ptr, flat.data.ptr, flat.size, self.types[flat.dtype.name], self.sum, stream)
        return flat


def reducer_for(comm: Any, backend: Any, mode: str) -> Reducer:
    """The all-reduce path for the arrays of `backend` (see the module's docstring)."""
    if backend.name != "cupy":
        if mode == "nccl":
            raise BackendUnavailableError(f"allreduce='nccl' needs the cupy backend, not {backend.name!r}")
        return HostMPI(comm, backend)
    problem = nccl_problem(comm, backend)
    if mode == "nccl" and problem:
        raise BackendUnavailableError(f"allreduce='nccl' is unavailable: {problem}")
    if problem is None and mode != "mpi":
        return NCCL(comm, backend)
    return DeviceMPI(comm, backend) if cuda_aware_mpi() else HostMPI(comm, backend)


def nccl_problem(comm: Any, backend: Any) -> str | None:
    """Why NCCL cannot sum this job's CuPy arrays, or None. Collective: every rank must call it."""
    import cupy

    from mpi4py import MPI

    with backend.device:
        where = (MPI.Get_processor_name(), cupy.cuda.Device().pci_bus_id)
    places = comm.allgather(where)
    if len(set(places)) < len(places):
        return f"two ranks share a GPU ({places}): start one rank per GPU"
    try:
        from cupy.cuda import nccl
    except ImportError as err:
        return f"CuPy has no NCCL ({err}): pip install nvidia-nccl-cu12"
    return None if nccl.available else "CuPy was built without NCCL"


def cuda_aware_mpi() -> bool:
    """Whether the MPI under mpi4py can read CUDA device memory (MPIX_Query_cuda_support)."""
    for path in _loaded_mpi_libraries():
        query = getattr(ctypes.CDLL(path), "MPIX_Query_cuda_support", None)
        if query is not None:
            query.restype = ctypes.c_int
            return bool(query())
    return False


def _loaded_mpi_libraries() -> list[str]:
    """The MPI shared libraries this process has loaded (mpi4py loads one)."""
    from mpi4py import MPI  # noqa: F401  loads the MPI library

    try:
        with open("/proc/self/maps") as maps:  # Linux: where every GPU cluster's MPI runs
            return sorted(set(re.findall(r"(/\S*/libmpi[\w.]*\.so[\w.]*)", maps.read())))
    except OSError:
        return []


def describe() -> str:
    """One line for `fastnn info`: the MPI under mpi4py, whether it is CUDA-aware, and NCCL."""
    try:
        from mpi4py import MPI
    except ImportError:
        return 'unavailable: mpi4py is not installed (pip install "fastnn[mpi]")'
    library = " ".join(MPI.Get_library_version().splitlines()[0].split())
    aware = "CUDA-aware" if cuda_aware_mpi() else "not CUDA-aware: CuPy arrays cross the host"
    try:
        from cupy.cuda import nccl

        has_nccl = "available" if nccl.available else "CuPy was built without it"
    except ImportError as err:
        has_nccl = f"unavailable ({err})"
    return f"{library} ({aware}); NCCL for CuPy arrays: {has_nccl}"
