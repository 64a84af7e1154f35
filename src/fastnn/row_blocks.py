"""A large batch's row blocks computed on several threads at once, each with one BLAS thread.

A product split over two BLAS threads waits for its slower half: on a host where another
process keeps one core busy, the whole step runs at that core's pace, and the serial Numba
kernels between the products get one thread only (docs/kernels.md#busy-core). Here each
thread takes the next row block of the batch — forward, loss and backward through its own
copy of the layers (the same parameters, its own scratch arrays) — so a busy core slows the
step only by its share, and the elementwise kernels run on every core too.

Each block's gradients, weighted by its size, land in that block's own slot and are summed in
block order afterwards: the same sums as one thread doing the blocks in turn, whichever thread
computed which block, so a step's result does not depend on timing.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from fastnn.threads import one_thread_each, usable_cores

SLOT_BYTES = 64 << 20  # at most this much per-block gradient memory: bigger batches go in waves


def pool(threads: int) -> ThreadPoolExecutor:
    """The process's worker threads for row blocks (one pool per thread count)."""
    return _pool(threads, os.getpid())


@functools.cache
def _pool(threads: int, pid: int) -> ThreadPoolExecutor:
    # keyed by process: a child forked from a process that trained inherits the pool but not its threads
    return ThreadPoolExecutor(threads, thread_name_prefix="fastnn-rows")


@functools.cache
def _blas_controller() -> Any:
    """threadpoolctl's handle on every BLAS loaded (after fastnn.kernels.gemm loaded MKL, if any)."""
    from threadpoolctl import ThreadpoolController

    from fastnn.kernels import gemm

    gemm.libraries()
    return ThreadpoolController().select(user_api="blas")


def threads_for(n_blocks: int) -> int:
    """How many threads compute `n_blocks` row blocks: every usable core, at most one per block."""
    return max(1, min(usable_cores(), n_blocks))


class BlockWorker:
    """One thread's view of the model: its own copies of the layers and its own loss scratch,
    kept between steps so their buffers are reused (fresh large arrays page-fault)."""

    def __init__(self) -> None:
        self.buffers: list[dict] = []  # per layer
        self.scratch: dict = {}

    def state(self, state: Any) -> Any:
        """A TrainState over copies of state's layers that share their parameters."""
        from fastnn.engines import TrainState

        while len(self.buffers) < len(state.layers):
            self.buffers.append({})
        layers = [layer.replica(buffers) for layer, buffers in zip(state.layers, self.buffers)]
        return TrainState(layers, state.optimizer, self.scratch)


def blocked_gradients(engine: Any, spec: Any, state: Any, x: Any, y: Any, rows: int, weights: Any = None,
                      threads: int = 2) -> tuple[Any, dict]:
    """(loss, metrics) of a batch in row blocks computed by `threads` threads; each layer's
    gradients are left summed over the blocks, each weighted by its size, in block order."""
    n = x.shape[0]
    starts = list(range(0, n, rows))
    workers = state.scratch.setdefault("row_block_workers", [])
    while len(workers) < threads:
        workers.append(BlockWorker())
    views = [worker.state(state) for worker in workers[:threads]]
    grad_bytes = sum(g.nbytes for g in state.params)
    wave = max(threads, SLOT_BYTES // max(1, grad_bytes))
    summed: list[Any] | None = None
    totals: dict[str, Any] = {}

    def block(view: Any, start: int) -> tuple[list[Any], Any, dict]:
        stop = min(start + rows, n)
        weight = (stop - start) / n
        part = None if weights is None else weights[start:stop, ...]
        value, values = engine.loss_and_metrics(spec, view, x[start:stop, ...], y[start:stop, ...], True, part)
        return [weight * g for g in view.grads], value * weight, {k: v * weight for k, v in values.items()}

    def work(view: Any, queue: Any, results: dict) -> None:
        with one_thread_each():  # OpenMP's thread count is per calling thread: the BLAS limit below misses it
            for i, start in queue:  # next() on a shared iterator: each block goes to exactly one thread
                results[i] = block(view, start)

    with _blas_controller().limit(limits=1):
        for first in range(0, len(starts), wave):
            queue = iter(list(enumerate(starts))[first:first + wave])
            results: dict[int, tuple] = {}
            futures = [pool(threads).submit(work, view, queue, results) for view in views]
            wait(futures)  # every thread stops before an error in one of them is raised
            for future in futures:
                future.result()
            for i in sorted(results):
                grads, value, values = results[i]
                if summed is None:
                    summed = grads
                else:
                    for k, g in enumerate(grads):
                        summed[k] += g
                for key, v in {"loss": value, **values}.items():
                    totals[key] = totals[key] + v if key in totals else v
    state.grads = summed
    return totals.pop("loss"), totals
