"""Data-parallel training across processes, on MPI (mpi4py), Horovod-simple:

    import fastnn
    fastnn.distributed.init()            # under `mpiexec -n 4 python train.py`
    model.fit(x, y, batch_size=4096)     # every rank makes the same call with the same arrays

After `init()` in a launch of several ranks, `fit` trains data-parallel: `batch_size` is the
global batch, each rank computes the gradients of its share of every batch, one all-reduce of
one flat buffer per step sums them (weighted by rows), and every rank applies the same update.
Weights, optimizer state and the shuffling generator start as rank 0's. Progress bars and files
are rank 0's; `evaluate` and validation are sharded and reduced. `fit(..., distributed="sharded")`
takes data already split per rank; `fit(..., sync_every=k)` averages the model every k local
steps instead (online SGD). Without `init()`, or with one rank, nothing changes.

A rank that fails while checking its arguments makes every rank raise the same error, naming
it; an exception no one catches on any rank aborts the whole run (MPI_Abort), never a hang.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
import traceback
import weakref
from typing import Any, Iterator

import numpy as np

from fastnn.allreduce import Reducer, check_mode, reducer_for
from fastnn import threads
from fastnn.backend import to_numpy
from fastnn.engines import Engine, LayerEngine, NetworkSpec, TrainState, accumulate, select

_HINT = 'install MPI support with pip install "fastnn[mpi]" (mpi4py and the MPICH wheel)'


class DistributedError(RuntimeError):
    """Ranks disagree (versions, architectures, shapes), or one of them failed."""


class Communicator:
    """The collectives fastnn needs, over an mpi4py communicator; arrays are summed through the
    all-reduce path their backend's buffers need (fastnn.allreduce)."""

    def __init__(self, comm: Any, allreduce: str = "auto") -> None:
        from mpi4py import MPI

        self.comm, self.MPI, self.mode = comm, MPI, check_mode(allreduce)
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.local = comm.Split_type(MPI.COMM_TYPE_SHARED)  # the ranks on this rank's host
        self.local_rank = self.local.Get_rank()  # its number on its host
        self.reducers: dict[tuple, Reducer] = {}  # per backend and device, made on first use
        self.seconds = 0.0  # time spent summing arrays (packing, the all-reduce, waiting for the slowest rank)

    def local_cores(self) -> list[frozenset[int]]:
        """The cores each rank on this host may run on."""
        return self.local.allgather(threads.cores())

    def share(self, n: int) -> tuple[int, int]:
        """The rows [lo, hi) of a batch of n that this rank computes: consecutive, sizes within one."""
        return n * self.rank // self.size, n * (self.rank + 1) // self.size

    def sum(self, arrays: list[Any], backend: Any, scale: float = 1.0) -> list[Any]:
        """The element-wise sums over the ranks of `arrays` (of `backend`, one dtype), each times
        `scale` first, in one all-reduce of one flat buffer on their device."""
        start, xp = time.perf_counter(), backend.xp
        flat = xp.concat([xp.reshape(a, (-1,)) for a in arrays])
        if scale != 1:
            flat *= scale  # in place where arrays allow it
        flat = self.reducer(backend)(flat)
        sizes = [math.prod(a.shape) for a in arrays]
        ends = np.cumsum(sizes)
        summed = [xp.reshape(flat[end - size:end], a.shape) for a, size, end in zip(arrays, sizes, ends)]
        self.seconds += time.perf_counter() - start
        return summed

    def mean(self, arrays: list[Any], backend: Any, weight: float) -> list[Any]:
        """The mean over the ranks of each of `arrays`, each rank's weighted by `weight` (the rows
        it computed them on), in one all-reduce."""
        xp = backend.xp
        *summed, total = self.sum([*arrays, xp.ones(1, dtype=arrays[0].dtype, device=backend.device)], backend,
                                  scale=weight)
        share = 1.0 / total[0]
        return [a * share for a in summed]

    def total(self, value: float) -> float:
        """The sum over the ranks of a number."""
        return self.comm.allreduce(value, op=self.MPI.SUM)

    def largest(self, value: float) -> float:
        """The largest over the ranks of a number."""
        return self.comm.allreduce(value, op=self.MPI.MAX)

    def reducer(self, backend: Any) -> Reducer:
        """The all-reduce path for `backend`'s arrays, chosen once (collectively: every rank asks
        at the same step)."""
        key = (backend.name, str(backend.device))
        if key not in self.reducers:
            self.reducers[key] = reducer_for(self.comm, backend, self.mode)
        return self.reducers[key]

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value` (any picklable object), on every rank."""
        return self.comm.bcast(value, root=0)

    def gather(self, value: Any) -> list[Any]:
        """Every rank's `value`, in rank order, on every rank."""
        return self.comm.allgather(value)

    def agree(self, what: str, value: Any) -> None:
        """Raise the same DistributedError on every rank unless all ranks hold the same `value`."""
        values = self.gather(json.dumps(value, sort_keys=True, default=str))
        differ = [r for r, v in enumerate(values) if v != values[0]]
        if differ:
            raise DistributedError(f"ranks disagree on {what}: rank 0 has {values[0]}, rank {differ[0]} has "
                                   f"{values[differ[0]]}; every rank must make the same call with the same model")

    @contextlib.contextmanager
    def together(self, where: str) -> Iterator[None]:
        """Run a block that may fail on some ranks only (checking arguments): if it fails on any
        rank, every rank raises an error naming the first that failed, so none waits forever."""
        error: BaseException | None = None
        try:
            yield
        except Exception as err:  # noqa: BLE001  shared with the other ranks, then raised again
            error = err
        failures = self.gather(None if error is None else f"{type(error).__name__}: {error}")
        failed = [r for r, f in enumerate(failures) if f is not None]
        if failed:
            message = f"rank {failed[0]} of {self.size} failed in {where}: {failures[failed[0]]}"
            raise DistributedError(message) from error

    def abort(self) -> None:
        """End every rank of the run now."""
        self.comm.Abort(1)


_ACTIVE: list[Communicator] = []


def init(comm: Any = None, allreduce: str = "auto") -> Communicator:
    """Join the ranks of this launch (MPI.COMM_WORLD, or `comm`): checks that every rank runs
    the same fastnn, makes an uncaught exception on any rank end the whole run, and gives each
    rank of a host its own GPU (local rank modulo the GPUs) as CuPy's current device, which
    `fastnn.use("cupy")` then takes. `allreduce`: how CuPy arrays are summed ("auto": NCCL
    where no two ranks share a GPU, else MPI; "nccl"; "mpi"); NumPy's always go through MPI."""
    check_mode(allreduce)
    try:
        from mpi4py import MPI
    except ImportError as err:
        raise ImportError(f"fastnn.distributed needs mpi4py: {_HINT}") from err
    import fastnn

    communicator = Communicator(comm if comm is not None else MPI.COMM_WORLD, allreduce)
    communicator.agree("the fastnn version", fastnn.__version__)
    _ACTIVE[:] = [communicator]
    if communicator.size > 1:
        sys.excepthook = _abort_on_uncaught
        _pin_gpu(communicator.local_rank)
        threads.share_host(communicator.local_cores())
    return communicator


def _pin_gpu(local_rank: int) -> None:
    """Make GPU (local_rank mod count) CuPy's current device, where CuPy sees a GPU."""
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception:  # noqa: BLE001  no CuPy, or no CUDA driver (CuPy's own error type): no GPU to pin
        return
    if count:
        cupy.cuda.Device(local_rank % count).use()


def _abort_on_uncaught(kind: type, error: BaseException, trace: Any) -> None:
    """One rank's uncaught exception ends every rank: the others may be waiting in a collective."""
    comm = _ACTIVE[0]
    if isinstance(error, DistributedError):  # every rank raised it: it names the rank that failed
        message = f"fastnn.distributed: {error}; aborting every rank"
    else:
        message = f"fastnn.distributed: rank {comm.rank} of {comm.size} failed ({kind.__name__}: {error}); aborting every rank"
    print(message, file=sys.stderr, flush=True)  # first: the abort may cut what follows short
    traceback.print_exception(kind, error, trace)
    sys.stderr.flush()
    time.sleep(0.2)  # let mpiexec forward the lines before MPI_Abort tears the ranks down
    comm.abort()


def launched() -> bool:
    """Whether this process is one of several started by mpiexec (MPICH's or Open MPI's)."""
    sizes = (os.environ.get(key, "1") for key in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE"))
    return any(size.isdigit() and int(size) > 1 for size in sizes)


def together(where: str) -> contextlib.AbstractContextManager:
    """`Communicator.together` when several ranks train, else a block run as it is."""
    comm = active()
    return comm.together(where) if comm else contextlib.nullcontext()


def active() -> Communicator | None:
    """The communicator when `init()` joined two or more ranks, else None (train alone)."""
    return _ACTIVE[0] if _ACTIVE and _ACTIVE[0].size > 1 else None


def rank() -> int:
    """This process's rank (0 without init)."""
    return _ACTIVE[0].rank if _ACTIVE else 0


def size() -> int:
    """The number of ranks (1 without init)."""
    return _ACTIVE[0].size if _ACTIVE else 1


def is_root() -> bool:
    """Whether this rank writes files and shows progress (rank 0, or the only process)."""
    return rank() == 0


class DataParallelEngine(LayerEngine):
    """Each rank computes the layer engine's gradients on its rows of each batch; one all-reduce
    sums gradients, loss and metrics, each times its rows, with the row count; every rank then
    divides by the total and applies the same update. `sharded`: each rank's x is its own
    part of the data (the global batch is split over the parts), else every rank has all of it."""

    name = "data-parallel"

    def __init__(self, backend: Any, comm: Communicator, sharded: bool = False) -> None:
        super().__init__(backend)
        self.comm, self.sharded = comm, sharded

    def step(self, spec, state, x, y, weights=None):
        if not self.sharded:
            lo, hi = self.comm.share(x.shape[0])
            x, y, weights = x[lo:hi, ...], y[lo:hi, ...], None if weights is None else weights[lo:hi, ...]
        value, values = self.gradients(spec, state, x, y, weights) if x.shape[0] else self._nothing(spec, state)
        grads, kept = state.grads, state.kept  # kept: moving statistics, averaged in the same all-reduce
        *merged, scalars = self.comm.mean([*grads, *kept, self._scalars(value, values)], self.backend, x.shape[0])
        state.grads = merged[:len(grads)]
        if kept:
            state.kept = merged[len(grads):]
        state.params = state.optimizer.apply(state.params, state.grads, self.ops)
        return scalars[0], {key: scalars[i + 1] for i, key in enumerate(values)}

    def _nothing(self, spec: NetworkSpec, state: TrainState) -> tuple[float, dict]:
        """A rank with no rows in this batch adds zeros (and still takes part)."""
        state.grads = [self.backend.xp.zeros_like(p) for p in state.params]
        return 0.0, {m.name: 0.0 for m in spec.metrics}

    def _scalars(self, value: Any, values: dict) -> Any:
        """The loss and the metrics in one 1-d array of the backend (device scalars stay there)."""
        xp, dtype = self.backend.xp, self.backend.dtype
        return xp.stack([xp.asarray(v, dtype=dtype, device=self.backend.device) for v in (value, *values.values())])

    def run_epoch(self, spec, state, x, y, batch_size, order=None, on_batch=None, weights=None):
        if not self.sharded:
            return super().run_epoch(spec, state, x, y, batch_size, order, on_batch, weights)
        n, total = x.shape[0], total_rows(x.shape[0])
        steps = -(-total // batch_size)  # every rank takes the same number of steps
        arrays = self.in_order(order, x, y, weights)
        totals: dict[str, Any] = {}
        for i in range(steps):
            lo, hi = n * i // steps, n * (i + 1) // steps
            value, values = self.step(spec, state, *(a[lo:hi, ...] for a in arrays))
            accumulate(totals, value, values, 1 / steps)
            if on_batch is not None:
                on_batch(i, value)
        return {key: float(v) for key, v in totals.items()}

    def evaluate(self, spec, state, x, y, batch_size, on_batch=None):
        lo, hi = (0, x.shape[0]) if self.sharded else self.comm.share(x.shape[0])
        logs = super().evaluate(spec, state, x[lo:hi, ...], y[lo:hi, ...], batch_size, on_batch) if hi > lo else {}
        keys = ["loss", *(m.name for m in spec.metrics)]
        (means,) = self.comm.mean([self._scalars(logs.get("loss", 0.0), {k: logs.get(k, 0.0) for k in keys[1:]})],
                                  self.backend, hi - lo)
        return {key: float(means[i]) for i, key in enumerate(keys)}


class ModelAveragingEngine(Engine):
    """Periodic model averaging, for small batches where a step costs less than an all-reduce
    (online SGD: ~30 ns a step against ~15 µs): each rank trains alone on its rows with the
    fastest local engine (the compiled epoch), and every `every` steps the ranks average their
    weights and optimizer state in one all-reduce. Not the same numbers as one process: a
    different algorithm, measured in docs/distributed.md."""

    name = "model-averaging"

    def __init__(self, backend: Any, comm: Communicator, sharded: bool, every: int) -> None:
        super().__init__(backend)
        self.comm, self.sharded, self.every = comm, sharded, every

    def supports(self, spec: NetworkSpec, batch_size: int) -> bool:
        return True

    def run_epoch(self, spec, state, x, y, batch_size, order=None, on_batch=None, weights=None):
        arrays = self.in_order(order, x, y, weights)
        if not self.sharded:
            lo, hi = self.comm.share(x.shape[0])
            arrays = tuple(a[lo:hi, ...] for a in arrays)
        chunk = self.every * batch_size
        rounds = -(-self.comm.largest(arrays[0].shape[0]) // chunk)
        local = select(self.backend.engines, spec, batch_size, weighted=weights is not None)
        totals: dict[str, Any] = {}
        for r in range(rounds):
            part = tuple(a[r * chunk:(r + 1) * chunk, ...] for a in arrays)
            rows = part[0].shape[0]
            logs = local.run_epoch(spec, state, *part[:2], batch_size, None, None, *part[2:]) if rows else {}
            for key, value in self._average(spec, state, logs, rows).items():
                totals[key] = totals.get(key, 0.0) + value / rounds
        return totals

    def _average(self, spec: NetworkSpec, state: TrainState, logs: dict, rows: int) -> dict[str, float]:
        """Every rank's weights and optimizer state replaced by their mean; the round's logs
        averaged over the rows it trained on."""
        keys = ["loss", *(m.name for m in spec.metrics)]
        slots = [(i, name) for i, s in enumerate(state.slots) for name in s]
        xp, dtype, device = self.backend.xp, self.backend.dtype, self.backend.device
        logs = xp.stack([xp.asarray(logs.get(k, 0.0), dtype=dtype, device=device) for k in keys] +
                        [xp.asarray(1.0, dtype=dtype, device=device)])
        kept = state.kept  # moving statistics
        *summed, scalars = self.comm.sum([*state.params, *kept, *(state.slots[i][name] for i, name in slots),
                                          logs * rows], self.backend)
        mean = [a / self.comm.size for a in summed]  # new arrays: none shares the flat buffer
        for layer in state.layers:
            layer.set_params(mean[:len(layer.params)])
            mean = mean[len(layer.params):]
        if kept:
            state.kept, mean = mean[:len(kept)], mean[len(kept):]
        for (i, name), value in zip(slots, mean):
            state.slots[i][name] = value
        state.iterations = self.comm.broadcast(state.iterations)
        return {key: float(scalars[i]) / max(float(scalars[-1]), 1.0) for i, key in enumerate(keys)}


def total_rows(rows: int) -> int:
    """The rows of every rank together (`rows` without init)."""
    comm = active()
    return rows if comm is None else int(comm.total(rows))


def engine_for(backend: Any, sharded: bool, sync_every: int | None = None) -> Engine | None:
    """The data-parallel engine when init() joined several ranks (model averaging every
    `sync_every` steps when given, else an all-reduce each step), else None."""
    comm = active()
    if comm is None:
        return None
    if sync_every is not None:
        return ModelAveragingEngine(backend, comm, sharded, sync_every)
    return DataParallelEngine(backend, comm, sharded)


def start_together(model: Any, rng: np.random.Generator, rows: int, sharded: bool, settings: dict) -> None:
    """Before the first step: every rank must have the same model, settings and (unless
    sharded) data shape; then all take rank 0's weights, optimizer state and the state of the
    shuffling generator `rng`, so every rank draws the same orders."""
    comm = active()
    comm.agree("the model", model.get_config())
    comm.agree("the compile settings", [model.optimizer.get_config(), model.loss.get_config(), model.metric_names])
    comm.agree("the fit arguments", {**settings, "rows": None if sharded else rows})
    weights, slots, rng_state = comm.broadcast((model.get_weights(), [{k: to_numpy(v) for k, v in s.items()}
                                                                      for s in model.optimizer.state],
                                                rng.bit_generator.state))
    model.set_weights(weights)
    model.optimizer.state = [{k: model.backend.asarray(v, copy=True) for k, v in s.items()} for s in slots]
    rng.bit_generator.state = rng_state
    with comm.together("choosing the all-reduce"):  # NCCL asked for where it cannot run, say
        comm.reducer(model.backend)
    _STARTED.add(model)


_STARTED: weakref.WeakSet = weakref.WeakSet()  # models whose ranks have taken rank 0's state


def start_once(model: Any, rng: np.random.Generator) -> None:
    """Before a model's first data-parallel `train_on_batch`: `start_together`, unless a `fit`
    already did (each rank passes its own rows, so no data shape is compared)."""
    if model not in _STARTED:
        start_together(model, rng, 0, True, {"call": "train_on_batch"})
