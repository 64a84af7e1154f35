"""The training loop behind `Sequential.fit`, `train_on_batch` and `evaluate`: shuffling,
epochs, callbacks and the NaN guard. It picks an engine from the model's spec and the batch
size and hands it the model's `TrainState`; the engine does the arithmetic."""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from fastnn import engines, extensions
from fastnn.callbacks import Callback, History

INFERENCE_BATCH = 65_536  # rows evaluate, predict and validation take at a time: memory stays a fit batch's

# A compiled Fisher-Yates (registered by fastnn.kernels): (rng, n, buffers) -> order.
_PERMUTATION: list[Callable[[np.random.Generator, int, Any], np.ndarray]] = []


def register_permutation(permutation: Callable[[np.random.Generator, int, Any], np.ndarray]) -> None:
    _PERMUTATION[:] = [permutation]


class Shuffler:
    """A fresh random order of range(n) for each epoch, drawn on the host from `rng` into
    arrays reused every epoch (fresh ones page-fault again; see docs/kernels.md#shuffling)."""

    def __init__(self, rng: np.random.Generator, n: int) -> None:
        extensions.load()  # registers the compiled permutation where numba is there
        self.rng, self.n = rng, n
        self.buffers = (np.empty(n), np.empty(n, np.int64))

    def __call__(self) -> np.ndarray:
        if _PERMUTATION:
            return _PERMUTATION[0](self.rng, self.n, self.buffers)
        return self.rng.permutation(self.n)


class CallbackList:
    """Every callback of one fit, called in order; `on_batch` is None unless one of them wants
    each batch's loss (which costs a host sync per batch and the compiled epoch)."""

    def __init__(self, callbacks: Sequence[Callback], model: Any, params: dict[str, Any]) -> None:
        self.callbacks, self.params = list(callbacks), params
        for callback in self.callbacks:
            callback.model, callback.params = model, params
        self.batch_callbacks = [c for c in self.callbacks if c.wants_batches()]

    def on_train_begin(self) -> None:
        for callback in self.callbacks:
            callback.on_train_begin()

    def on_epoch_begin(self, epoch: int) -> None:
        for callback in self.callbacks:
            callback.on_epoch_begin(epoch)

    def on_batch(self, index: int, loss: Any) -> None:
        logs = {"loss": float(loss)}
        for callback in self.batch_callbacks:
            callback.on_batch_end(index, logs)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, logs)

    def on_train_end(self) -> None:
        for callback in self.callbacks:
            callback.on_train_end()


def fit(model: Any, x: Any, y: Any, epochs: range, batch_size: int, shuffle: bool, validation: tuple | None,
        callbacks: Sequence[Callback], nan_guard: bool, rng: np.random.Generator, weights: Any = None,
        engine: engines.Engine | None = None) -> History:
    """Train `model` on prepared arrays (and sample weights, a (n, 1) column or None) for the
    epoch indices in `epochs`, with `engine` (default: the first that covers each epoch); see
    Sequential.fit."""
    history = History()
    logs = ["loss", *(metric.name for metric in model.spec.metrics)]
    logs += [f"val_{name}" for name in logs] if validation is not None else []
    params = {"epochs": epochs.stop, "initial_epoch": epochs.start, "steps": math.ceil(x.shape[0] / batch_size),
              "metrics": logs}
    hooks = CallbackList([history, *callbacks], model, params)
    order = Shuffler(rng, x.shape[0]) if shuffle and batch_size < x.shape[0] else (lambda: None)
    model.stop_training = False
    hooks.on_train_begin()
    for epoch in epochs:
        hooks.on_epoch_begin(epoch)
        on_batch = hooks.on_batch if hooks.batch_callbacks else None
        logs, params["status"] = train_epoch(model, x, y, batch_size, order(), on_batch, weights, engine)
        bad_batch = logs.pop("nonfinite_batch", None)
        if validation is not None and bad_batch is None:
            logs.update({f"val_{k}": v for k, v in evaluate(model, *validation, INFERENCE_BATCH, engine=engine).items()})
        hooks.on_epoch_end(epoch, logs)
        if bad_batch is not None and nan_guard:
            _warn_nonfinite(epoch, bad_batch, hooks.params["steps"])
            model.stop_training = True
        if model.stop_training:
            break
    hooks.on_train_end()
    return history


def _warn_nonfinite(epoch: int, batch: int, batches: int) -> None:
    warnings.warn(f"training stopped: the loss became NaN or Inf at epoch {epoch + 1}, batch {batch + 1} of "
                  f"{batches}; try a smaller learning rate or check the data (fit(..., nan_guard=False) trains "
                  f"on regardless)", RuntimeWarning, stacklevel=4)


def train_epoch(model: Any, x: Any, y: Any, batch_size: int, order: Any = None,
                on_batch: engines.OnBatch | None = None, weights: Any = None,
                engine: engines.Engine | None = None) -> tuple[dict[str, float], str]:
    """One epoch over x[order] through `engine`, or else the first engine that covers the model
    at this batch size (and its sample weights, given as a (n, 1) column): (its logs, the
    engine's status after it)."""
    spec, state = model.spec, model.train_state()
    engine = engine or engines.select(model.backend.engines, spec, batch_size, weighted=weights is not None)
    return engine.run_epoch(spec, state, x, y, batch_size, order, on_batch, weights), engine.status(spec, batch_size)


def train_step(model: Any, x: Any, y: Any, engine: engines.Engine | None = None) -> tuple[Any, dict[str, Any]]:
    """One optimizer step on prepared (x, y) with `engine` (default: the first that covers
    it): (loss before the step, metric values)."""
    spec, state = model.spec, model.train_state()
    return (engine or engines.select(model.backend.engines, spec, x.shape[0])).step(spec, state, x, y)


def evaluate(model: Any, x: Any, y: Any, batch_size: int, verbose: bool = False,
             engine: engines.Engine | None = None) -> dict[str, float]:
    """Mean loss and metrics over prepared (x, y), without training (`engine`, by default the
    layer-by-layer one); `verbose` shows a progress bar over the batches."""
    with tqdm(total=math.ceil(x.shape[0] / batch_size), unit="batch", disable=not verbose) as bar:
        return (engine or model.backend.engines[-1]).evaluate(model.spec, model.train_state(), x, y, batch_size,
                                                   on_batch=(lambda i, loss: bar.update()) if verbose else None)
