"""The CuPy backend's fused engines. `CudaEngine` runs each batch as one `gpu_step.DenseStep`
(static buffers, kernels and GEMMs only) and reads the host once per epoch: the epoch's sums
(per batch only when a callback asks). `CudaGraphEngine` captures each step into a CUDA graph
on its own stream and replays it: for small batches, where launches cost more than the math."""

from __future__ import annotations

import contextlib
import math
import os
from typing import Any

import numpy as np

from fastnn.engines import Engine, OnBatch, TrainState
from fastnn.kernels import cuda_toolchain
from fastnn.kernels.gpu_step import Accumulators, DenseStep, Device, why_not_fused
from fastnn.spec import NetworkSpec

# Batches up to this many rows replay a CUDA graph (FASTNN_CUDA_GRAPH_ROWS overrides; 0: never).
# Not yet measured on a GPU: `fastnn gpucheck` times both engines at 1 000 rows and full batch.
GRAPH_ROWS = int(os.environ.get("FASTNN_CUDA_GRAPH_ROWS", "16384"))


class CudaEngine(Engine):
    name = "cuda-fused"
    weighted = False  # sample weights train on the layer-by-layer engine

    def __init__(self, backend: Any, device: Device | None = None) -> None:
        super().__init__(backend)
        if device is None and cuda_toolchain.problem() is None:
            from fastnn.kernels.cuda_device import CupyDevice

            device = CupyDevice(backend)
        self.device = device
        self._spec: NetworkSpec | None = None
        self._steps: dict[tuple[int, int], DenseStep] = {}
        self._accumulators: dict[int, Accumulators] = {}
        self._orders: dict[int, Any] = {}  # the device array each epoch's row order is copied into, by n

    def supports(self, spec: NetworkSpec, batch_size: int) -> bool:
        return self.device is not None and why_not_fused(spec) is None

    def status(self, spec: NetworkSpec, batch_size: int) -> str:
        return self.name

    # -- the pieces: accumulators per epoch length, a step per batch shape -------------------

    def accumulators(self, spec: NetworkSpec, batches: int) -> Accumulators:
        acc = self._accumulators.get(batches)
        if acc is None:
            acc = self._accumulators[batches] = Accumulators.build(self.device, 1 + len(spec.metrics), batches)
        return acc

    def step_for(self, spec: NetworkSpec, state: TrainState, rows: int, acc: Accumulators) -> DenseStep:
        """The step for batches of `rows` rows, built once per spec, shape and model arrays."""
        if spec is not self._spec:
            self._spec, self._steps = spec, {}
            self.forget()
        params, grads = state.params, state.grads
        key = (rows, id(acc))
        step = self._steps.get(key)
        if step is not None and not step.built_on(params, grads, state.slots):  # new arrays (set_weights, to): start over
            self._steps, step = {}, None
            self.forget()
        if step is None:
            step = self._steps[key] = DenseStep(spec, self.device, params, grads, state.slots, rows, acc)
        return step

    def forget(self) -> None:
        """Drop what depends on the steps (the graph engine's graphs)."""

    def execute(self, step: DenseStep) -> None:
        """Run one loaded step (the graph engine replays it instead)."""
        step.run()

    # -- the Engine interface ---------------------------------------------------------------

    def step(self, spec, state, x, y, weights=None):
        acc = self.accumulators(spec, 1)
        with self.stream():
            acc.start(self.device, state.iterations)
            step = self.step_for(spec, state, x.shape[0], acc)
            step.load(x, y)
            self.execute(step)
        state.iterations += 1
        return step.values[0], {m.name: step.values[k] for k, m in enumerate(spec.metrics, start=1)}

    def run_epoch(self, spec: NetworkSpec, state: TrainState, x: Any, y: Any, batch_size: int,
                  order: Any = None, on_batch: OnBatch | None = None, weights: Any = None) -> dict[str, float]:
        n = x.shape[0]
        batches = math.ceil(n / batch_size)
        acc = self.accumulators(spec, batches)
        with self.stream():
            acc.start(self.device, state.iterations)
            index = self.upload_order(order, n)
            for b, start in enumerate(range(0, n, batch_size)):
                stop = min(start + batch_size, n)
                step = self.step_for(spec, state, stop - start, acc)
                if index is None:
                    step.load(x[start:stop, ...], y[start:stop, ...])
                else:
                    step.load(x, y, index[start:stop])
                self.execute(step)
                if on_batch is not None:  # a callback wants each loss: a host read per batch
                    on_batch(b, step.values[0])
            state.iterations += batches
            totals = self.device.to_host(acc.totals)  # the epoch's one read
            logs = {"loss": float(totals[0]) / n,
                    **{m.name: float(totals[k]) / n for k, m in enumerate(spec.metrics, start=1)}}
            if not math.isfinite(logs["loss"]):
                losses = self.device.to_host(acc.batch_losses)  # only when training went wrong
                logs["nonfinite_batch"] = next(i for i, v in enumerate(losses) if not math.isfinite(v))
        return logs

    def upload_order(self, order: Any, n: int) -> Any:
        """The epoch's row order on the device (one host-to-device copy), or None."""
        if order is None:
            return None
        index = self._orders.get(n)
        if index is None:
            self._orders = {n: self.device.empty((n,), "int64")}
            index = self._orders[n]
        self.device.upload(np.asarray(order, np.int64), index)
        return index

    def stream(self) -> Any:
        """Where an epoch runs: CuPy's current stream (the graph engine: its own)."""
        return contextlib.nullcontext()


class CudaGraphEngine(CudaEngine):
    """CudaEngine whose steps replay CUDA graphs: each batch shape runs once plainly (kernels
    compile, cuBLAS picks its algorithms), is captured on the engine's stream at its second
    batch, and replays from then on; the loop copies each batch into the graph's static inputs."""

    name = "cuda-graph"

    def __init__(self, backend: Any, device: Device | None = None, max_rows: int | None = None) -> None:
        super().__init__(backend, device)
        self.max_rows = GRAPH_ROWS if max_rows is None else max_rows
        self._graphs: dict[DenseStep, Any] = {}
        self._warm: set[DenseStep] = set()
        self._stream: Any = None

    def supports(self, spec: NetworkSpec, batch_size: int) -> bool:
        return batch_size <= self.max_rows and super().supports(spec, batch_size)

    def forget(self) -> None:
        self._graphs, self._warm = {}, set()

    def execute(self, step: DenseStep) -> None:
        graph = self._graphs.get(step)
        if graph is None:
            if step not in self._warm:
                self._warm.add(step)
                step.run()
                return
            graph = self._graphs[step] = self.device.capture(step.run)
        graph()

    def stream(self) -> Any:
        """The engine's own stream (capture is impossible on the legacy default one), ordered
        after the work already queued on the current stream."""
        if self._stream is None:
            self._stream = self.device.side_stream()
        return self.device.running_on(self._stream)
