"""Engines train a network from its `NetworkSpec` and the arrays of a `TrainState`.

One small interface: `supports(spec, batch_size)`, `step` (one optimizer step on a batch) and
`run_epoch` (a pass over the data). `LayerEngine` runs any network layer by layer through the
backend's ops table; faster engines (fastnn.kernels' compiled epoch, later CUDA graphs or
data-parallel training) register per backend and are tried first. The model never changes
when an engine is added.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from array_api_compat import array_namespace

from fastnn import row_blocks
from fastnn.spec import NetworkSpec

OnBatch = Callable[[int, Any], None]  # (batch index, batch loss as a 0-d array)


class TrainState:
    """What an engine trains, handed over by the model: a live view of its own arrays, never
    copies, read afresh at each access (a callback may replace the weights between batches).
    Compiled engines read and write the arrays and `iterations` only; `layers` and `optimizer`
    are there for engines that run layer by layer."""

    def __init__(self, layers: list[Any], optimizer: Any, scratch: dict) -> None:
        self.layers, self.optimizer = layers, optimizer
        self.scratch = scratch  # buffers an engine may keep between steps

    @property
    def params(self) -> list[Any]:
        """[W0, b0, W1, b1, ...] in layer order."""
        return [p for layer in self.layers for p in layer.params]

    @params.setter
    def params(self, new: list[Any]) -> None:
        """Hand back updated parameters; only layers with a new array (JAX's) are touched."""
        for layer in self.layers:
            mine, new = new[:len(layer.params)], new[len(layer.params):]
            if any(a is not b for a, b in zip(mine, layer.params)):
                layer.set_params(mine)

    @property
    def grads(self) -> list[Any]:
        """The last batch's gradients, in the order of `params` (engines write them)."""
        return [g for layer in self.layers for g in layer.grads]

    @grads.setter
    def grads(self, new: list[Any]) -> None:
        """Hand the layers gradients (an engine that sums or reduces them), in `params` order."""
        for layer in self.layers:
            layer.grads, new = list(new[:len(layer.params)]), new[len(layer.params):]

    @property
    def kept(self) -> list[Any]:
        """The layers' kept state (BatchNormalization's moving statistics), in layer order."""
        return [s for layer in self.layers for s in layer.state]

    @kept.setter
    def kept(self, new: list[Any]) -> None:
        for layer in self.layers:
            if layer.state:
                mine, new = new[:len(layer.state)], new[len(layer.state):]
                layer.set_state(mine)

    @property
    def slots(self) -> list[dict[str, Any]]:
        """The optimizer's state arrays, one dict per parameter."""
        return self.optimizer.state

    def by_layer(self, slot_names: tuple[str, ...] = ()) -> list[Any]:
        """One flat list, layer after layer: its parameters, their gradients, then each named
        optimizer slot of those parameters (the order compiled epochs take them in)."""
        arrays, slots, first = [], self.optimizer.state, 0
        for layer in self.layers:
            params = layer.params
            arrays += params
            arrays += layer.grads
            for name in slot_names:
                arrays += [slots[first + k][name] for k in range(len(params))]
            first += len(params)
        return arrays

    @property
    def iterations(self) -> int:
        """Optimizer steps taken so far; engines advance it."""
        return self.optimizer.iterations

    @iterations.setter
    def iterations(self, value: int) -> None:
        self.optimizer.iterations = int(value)


class Engine:
    """Base class: a batch-by-batch `run_epoch` over `step`. `weighted`: whether it takes
    per-sample weights (a (n, 1) column scaling each sample's share of the loss)."""

    name = "engine"
    weighted = True

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def supports(self, spec: NetworkSpec, batch_size: int) -> bool:
        raise NotImplementedError

    def status(self, spec: NetworkSpec, batch_size: int) -> str:
        """What a progress bar may say about this engine now ("" when nothing)."""
        return ""

    def step(self, spec: NetworkSpec, state: TrainState, x: Any, y: Any,
             weights: Any = None) -> tuple[Any, dict[str, Any]]:
        """One optimizer step on (x, y): (loss before the step, metric values), device scalars."""
        raise NotImplementedError

    def run_epoch(self, spec: NetworkSpec, state: TrainState, x: Any, y: Any, batch_size: int,
                  order: Any = None, on_batch: OnBatch | None = None, weights: Any = None) -> dict[str, float]:
        """One pass over x[order] (in order when None): the size-weighted mean loss and metrics,
        and "nonfinite_batch" where the loss became NaN or Inf. Batch losses stay on the device
        unless `on_batch` wants them."""
        arrays = self.in_order(order, x, y, weights)
        return over_batches(lambda *batch: self.step(spec, state, *batch), arrays, batch_size, on_batch)

    def in_order(self, order: Any, *arrays: Any) -> tuple:
        """The arrays (None ones left out) with their rows in `order` (as they are when None)."""
        arrays = tuple(a for a in arrays if a is not None)
        if order is None:
            return arrays
        index = self.backend.xp.asarray(order, device=self.backend.device)
        return tuple(self.backend.xp.take(a, index, axis=0) for a in arrays)


def over_batches(fn: Callable[..., tuple[Any, dict]], arrays: tuple, batch_size: int,
                 on_batch: OnBatch | None = None) -> dict[str, float]:
    """fn(*rows of each array) -> (loss, metrics) over consecutive batches, as epoch logs."""
    n = arrays[0].shape[0]
    totals: dict[str, Any] = {}
    batch_losses = []
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        value, values = fn(*(a[start:stop, ...] for a in arrays))
        accumulate(totals, value, values, (stop - start) / n)
        batch_losses.append(value)
        if on_batch is not None:
            on_batch(len(batch_losses) - 1, value)
    logs = host_values(totals)
    if not math.isfinite(logs["loss"]):
        logs["nonfinite_batch"] = next(i for i, v in enumerate(batch_losses) if not math.isfinite(float(v)))
    return logs


def host_values(values: dict[str, Any]) -> dict[str, float]:
    """Device scalars as floats, brought to the host in one copy (one sync, not one per value)."""
    from fastnn.backend import to_numpy

    arrays = list(values.values())
    if not all(hasattr(v, "shape") for v in arrays):
        return {key: float(v) for key, v in values.items()}
    xp = array_namespace(*arrays)
    host = to_numpy(xp.stack([xp.astype(v, arrays[0].dtype) for v in arrays]))
    return {key: float(v) for key, v in zip(values, host)}


def accumulate(totals: dict[str, Any], loss: Any, values: dict[str, Any], weight: float) -> None:
    """totals[key] += weight * value for the loss and each metric (device scalars: no sync)."""
    for key, v in {"loss": loss, **values}.items():
        totals[key] = totals.get(key, 0.0) + v * weight


class LayerEngine(Engine):
    """Any network, any backend: each layer's forward and backprop through the ops table, then
    the optimizer. A batch larger than the table's `block_rows` runs in row blocks whose
    activations stay in cache, their gradients summed (weighted by block size) into the batch's:
    the same step with less memory traffic (see docs/kernels.md#row-blocks). Where the table's
    kernels release the GIL, threads compute the blocks at once (fastnn.row_blocks)."""

    name = "layers"

    def __init__(self, backend: Any, ops: Any = None) -> None:
        super().__init__(backend)
        self.ops = backend.ops if ops is None else ops

    def supports(self, spec: NetworkSpec, batch_size: int) -> bool:
        return True

    def forward(self, spec: NetworkSpec, layers: list[Any], x: Any, train: bool) -> tuple[Any, Callable[[Any], None]]:
        """The output layer's output (its logits where the loss head is fused) and the backward
        pass that leaves each layer's gradients in it (fastnn.graph.Graph.forward)."""
        return spec.graph.forward(layers, x, self.backend.xp, train=train, logits=spec.head.fused, ops=self.ops)

    def loss_and_metrics(self, spec: NetworkSpec, state: TrainState, x: Any, y: Any, train: bool,
                         weights: Any = None) -> tuple[Any, dict]:
        """Forward, loss and metrics on a batch; when training, also backward (gradients into
        the layers) but no update."""
        out, backward = self.forward(spec, state.layers, x, train)
        value, grad = self.ops.loss(spec.head.loss, out, y, state.scratch if train else None, weights)
        if spec.regularized:  # Keras reports the loss with the weight penalties
            value = value + sum(layer.penalty() for layer in state.layers)
        if train:
            backward(grad)
        if not spec.metrics:
            return value, {}
        y_pred = state.layers[-1].activation.forward(out) if spec.head.fused else out
        return value, {m.name: m.function(y_pred, y) for m in spec.metrics}

    def gradients(self, spec: NetworkSpec, state: TrainState, x: Any, y: Any, weights: Any = None) -> tuple[Any, dict]:
        """(loss, metrics) of a batch, its gradients left in the layers; no update."""
        rows, n = self.ops.block_rows, x.shape[0]
        if rows is None or n <= 2 * rows or spec.whole_batch:
            return self.loss_and_metrics(spec, state, x, y, True, weights)
        threads = row_blocks.threads_for(-(-n // rows)) if self.ops.threaded_blocks and spec.rows_in_parallel else 1
        if threads > 1:
            return row_blocks.blocked_gradients(self, spec, state, x, y, rows, weights, threads)
        return self._blocked_gradients(spec, state, x, y, rows, weights)

    def step(self, spec, state, x, y, weights=None):
        value, values = self.gradients(spec, state, x, y, weights)
        state.params = state.optimizer.apply(state.params, state.grads, self.ops)
        return value, values

    def _blocked_gradients(self, spec, state, x, y, rows, weights=None):
        """(loss, metrics) of a batch in row blocks; each layer's gradients are left summed over
        the blocks, each block weighted by its size."""
        n, totals, summed = x.shape[0], {}, None
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            weight = (stop - start) / n
            block = None if weights is None else weights[start:stop, ...]
            value, values = self.loss_and_metrics(spec, state, x[start:stop, ...], y[start:stop, ...], True, block)
            if summed is None:
                summed = [weight * g for g in state.grads]
            else:
                for k, g in enumerate(state.grads):
                    summed[k] += weight * g  # in place where arrays allow it
            accumulate(totals, value, values, weight)
        state.grads = summed
        return totals.pop("loss"), totals

    def evaluate(self, spec: NetworkSpec, state: TrainState, x: Any, y: Any, batch_size: int,
                 on_batch: OnBatch | None = None) -> dict[str, float]:
        """Mean loss and metrics over (x, y) in batches, without training."""
        logs = over_batches(lambda xb, yb: self.loss_and_metrics(spec, state, xb, yb, train=False), (x, y), batch_size,
                            on_batch)
        logs.pop("nonfinite_batch", None)
        return logs


# Engine factories per backend name, registered by fastnn.kernels (and later by others).
_FACTORIES: dict[str, list[Callable[[Any], Engine]]] = {}


def register(backend_name: str, factory: Callable[[Any], Engine]) -> None:
    """Offer `factory(backend) -> Engine` for a backend; registered engines are tried before
    the layer-by-layer one, the latest registered first."""
    _FACTORIES.setdefault(backend_name, []).insert(0, factory)


def for_backend(backend: Any) -> tuple[Engine, ...]:
    """The engines for `backend`, fastest first; the last is always a LayerEngine."""
    # Registered engines compute in the model's dtype; a reduced precision trains through the ops table.
    fast = backend.kernels and backend.precision == "default"
    registered = [make(backend) for make in _FACTORIES.get(backend.name, [])] if fast else []
    return (*registered, LayerEngine(backend))


def select(engines: tuple[Engine, ...], spec: NetworkSpec, batch_size: int, weighted: bool = False) -> Engine:
    """The first engine that covers `spec` at `batch_size`, and sample weights when `weighted`
    (the last covers everything)."""
    for engine in engines:
        if (engine.weighted or not weighted) and engine.supports(spec, batch_size):
            return engine
    raise LookupError(f"no engine covers {spec} at batch size {batch_size}")
