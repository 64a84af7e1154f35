"""The compiled-epoch engine: small-batch epochs and single steps of a Dense network on NumPy,
each one call into the `train_epoch` that compiled_epoch.py generates for the network.

It reads the `NetworkSpec` and the `TrainState`'s arrays only. Where the spec holds anything
the generated code does not cover, or a batch is large enough that BLAS per step wins,
`supports` says no and the layer-by-layer engine trains instead.
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

import numpy as np

from fastnn.engines import Engine, LayerEngine, TrainState
from fastnn.kernels.compiled_epoch import (LOGITS, EpochPlan, compiled_before, epoch_function, layer_arrays,
                                           mark_compiled)
from fastnn.ops import ArrayOps
from fastnn.spec import MetricCode, NetworkSpec


class Compiled(NamedTuple):
    function: Any  # the numba-compiled train_epoch
    plan: EpochPlan
    hyper: np.ndarray  # its `hyper` argument: the optimizer's scalars, then the activation alphas


def plan_for(spec: NetworkSpec, batch_size: int) -> EpochPlan | None:
    """The plan for training `spec` at `batch_size`, or None where the generated code does not
    cover the network (layers, activations, loss head, optimizer or metrics)."""
    head, optimizer, acts = spec.head, spec.optimizer, [layer.activation for layer in spec.layers]
    if (not spec.dense_only or spec.regularized or any(layer.params != 2 for layer in spec.layers)
            or head is None or head.code is None or optimizer is None
            or optimizer.rule not in ("sgd", "momentum", "nesterov", "adam") or optimizer.clipped or optimizer.scheduled
            or len(spec.metrics) > 1
            or any(m.code is None for m in spec.metrics)
            or any(a.code is None for a in acts[:-1]) or (not head.fused and acts[-1].code is None)):
        return None
    codes = tuple(int(a.code) for a in acts[:-1]) + (LOGITS if head.fused else int(acts[-1].code),)
    metric = spec.metrics[0].code if spec.metrics else MetricCode.NONE
    return EpochPlan(widths=spec.widths, codes=codes, head=int(head.code), metric=int(metric),
                     optimizer=optimizer.rule, batch=batch_size)


def hyper_values(spec: NetworkSpec) -> tuple[float, ...]:
    """compiled_epoch.HYPER_NAMES' values for the spec's optimizer, then each layer's alpha."""
    opt = spec.optimizer
    eps = opt.epsilon if opt.rule == "adam" else 1.0  # SGD never reads it
    return (opt.lr, opt.momentum, opt.beta_1, opt.beta_2, eps, *(layer.activation.alpha for layer in spec.layers))


class CompiledEpochEngine(Engine):
    """Registered by fastnn.kernels for the NumPy backend."""

    name = "compiled-epoch"
    weighted = False  # no sample weights in the generated code: engines.select passes such fits on
    # Compiled while batch rows x parameters stays under this times the number of layers; see
    # docs/kernels.md#compiled-epoch-threshold.
    max_work_per_layer = 80_000
    # A network's first compile (seconds) runs on a thread while its first epochs train layer
    # by layer on the pure path; machine code on disk loads at once (docs/kernels.md#first-fit).
    background = True

    def __init__(self, backend: Any) -> None:
        super().__init__(backend)
        self.dtype = np.dtype(backend.dtype_name)
        self._epochs: dict[tuple[NetworkSpec, int], Compiled | None] = {}
        self._supported: dict[tuple[NetworkSpec, int], bool] = {}
        self._ready: set[tuple[EpochPlan, bool]] = set()  # (plan, ordered) whose machine code is loaded
        self._jobs: dict[tuple[EpochPlan, bool], threading.Thread] = {}
        self.while_compiling = LayerEngine(backend, ArrayOps(backend))  # numba-free: no compiler lock to wait on

    def supports(self, spec: NetworkSpec, batch_size: int) -> bool:
        key = (spec, batch_size)
        if key not in self._supported:  # asked before every step: answered once
            self._forget_when_full(self._supported)
            work = batch_size * spec.parameter_count <= self.max_work_per_layer * len(spec.layers)
            self._supported[key] = work and plan_for(spec, batch_size) is not None
        return self._supported[key]

    @staticmethod
    def _forget_when_full(cache: dict) -> None:
        if len(cache) >= 256:  # specs of models long gone: start afresh
            cache.clear()

    def compiled(self, spec: NetworkSpec, batch_size: int) -> Compiled | None:
        """The compiled epoch for `spec` at `batch_size` (compiled on first use, then kept, so
        that a single step pays no planning); None where there is no plan."""
        key = (spec, batch_size)
        if key not in self._epochs:
            self._forget_when_full(self._epochs)
            plan = plan_for(spec, batch_size)
            hyper = np.array(hyper_values(spec), self.dtype) if plan else None
            self._epochs[key] = Compiled(epoch_function(plan), plan, hyper) if plan else None
        return self._epochs[key]

    def ready(self, spec: NetworkSpec, batch_size: int, ordered: bool) -> bool:
        """Whether the compiled epoch can run now. Where its machine code is neither loaded nor
        on disk, this starts compiling it on a thread and says no (with `background` off, it
        compiles it now)."""
        compiled = self.compiled(spec, batch_size)
        kind = (compiled.plan, ordered)
        if kind in self._ready:
            return True
        if not self.background or compiled_before(*kind):
            self._compile(compiled, kind)
            return True
        if kind not in self._jobs:
            # not a daemon: a short script waits at exit for the compile, which then lands on disk
            self._jobs[kind] = threading.Thread(target=self._compile, args=(compiled, kind), daemon=False,
                                                name=f"fastnn compiles {compiled.plan}")
            self._jobs[kind].start()
        return False

    def _compile(self, compiled: Compiled, kind: tuple[EpochPlan, bool]) -> None:
        """Compile (or load) the epoch by calling it on zero rows of the argument types it will get."""
        plan, ordered = kind
        x, y = np.zeros((0, plan.widths[0]), self.dtype), np.zeros((0, plan.widths[-1]), self.dtype)
        arrays = [np.zeros((rows, cols) if cols else rows, self.dtype) for _, rows, cols in layer_arrays(plan)]
        compiled.function(x, y, np.zeros(0, np.int64) if ordered else None, *arrays, compiled.hyper, 0)
        mark_compiled(*kind)
        self._ready.add(kind)

    def compile_now(self, spec: NetworkSpec, batch_size: int) -> bool:
        """Compile (or load) the epochs for `spec` at `batch_size`, shuffled and in order, now;
        whether the network has a compiled epoch at all."""
        compiled = self.compiled(spec, batch_size)
        if compiled is None:
            return False
        for ordered in (True, False):
            if (compiled.plan, ordered) not in self._ready:
                self._compile(compiled, (compiled.plan, ordered))
        return True

    def wait(self) -> None:
        """Block until every compile started in the background has finished."""
        for job in list(self._jobs.values()):
            job.join()

    def status(self, spec: NetworkSpec, batch_size: int) -> str:
        compiled = self.compiled(spec, batch_size) if self.supports(spec, batch_size) else None
        jobs = [] if compiled is None else [self._jobs.get((compiled.plan, ordered)) for ordered in (True, False)]
        compiling = any(job is not None and job.is_alive() for job in jobs)
        return "compiling this network's epoch (once)" if compiling else ""

    def compiled_batch_sizes(self, spec: NetworkSpec) -> list[int]:
        """The batch sizes an epoch was compiled for, for `spec`."""
        return sorted(batch for (key, batch), compiled in self._epochs.items() if key is spec and compiled)

    def _train(self, spec: NetworkSpec, state: TrainState, x: Any, y: Any, batch_size: int,
               order: Any) -> tuple[float, float, int]:
        """(mean loss, mean metric, first non-finite batch or -1) of one compiled epoch."""
        function, plan, hyper = self.compiled(spec, batch_size)
        x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)
        arrays = state.by_layer(spec.optimizer.slots)  # the order of compiled_epoch.layer_arrays
        loss, metric, state.iterations, bad = function(x, y, order, *arrays, hyper, state.iterations)
        return loss, metric, bad

    def run_epoch(self, spec, state, x, y, batch_size, order=None, on_batch=None, weights=None):
        if weights is not None or not self.ready(spec, batch_size, order is not None):
            return self.while_compiling.run_epoch(spec, state, x, y, batch_size, order, on_batch, weights)
        if on_batch is not None:  # batch by batch, each a compiled step
            return super().run_epoch(spec, state, x, y, batch_size, order, on_batch)
        loss, metric, bad = self._train(spec, state, x, y, batch_size, order)
        logs = {"loss": float(loss)}
        if spec.metrics:
            logs[spec.metrics[0].name] = float(metric)
        if bad >= 0:
            logs["nonfinite_batch"] = int(bad)
        return logs

    def step(self, spec, state, x, y, weights=None):
        """One step through the epoch compiled for the next power of two rows, so that short
        last batches and varying train_on_batch sizes share compiled code."""
        capacity = 1 << (x.shape[0] - 1).bit_length()
        if weights is not None or not self.ready(spec, capacity, False):
            return self.while_compiling.step(spec, state, x, y, weights)
        loss, metric, _ = self._train(spec, state, x, y, capacity, None)
        return loss, ({spec.metrics[0].name: metric} if spec.metrics else {})
