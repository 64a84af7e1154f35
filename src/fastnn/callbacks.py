"""Training callbacks: hooks the model calls around epochs and batches, Keras-style."""

from __future__ import annotations

import string
import sys
import time
from typing import Any, TextIO

from tqdm.auto import tqdm

from fastnn.checks import check_writable


class Callback:
    """Override any hook. `self.model` and `self.params` ({"epochs", "steps": batches per
    epoch, "metrics": the keys each epoch's logs will have}) are set before training starts;
    setting `self.model.stop_training = True` ends training after the current epoch."""

    model: Any = None
    params: dict[str, Any] = {}

    def wants_batches(self) -> bool:
        """Whether fit must call on_batch_end (a host sync per batch, and the compiled epoch
        runs step by step): by default, when the callback overrides it."""
        return type(self).on_batch_end is not Callback.on_batch_end or "on_batch_end" in vars(self)

    def on_train_begin(self, logs: dict | None = None) -> None: ...
    def on_train_end(self, logs: dict | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_batch_end(self, batch: int, logs: dict | None = None) -> None: ...


class History(Callback):
    """Per-epoch logs: `history.history["loss"]`, `["accuracy"]`, `["val_loss"]`...; `fit` returns it."""

    def __init__(self) -> None:
        self.epoch: list[int] = []
        self.history: dict[str, list[float]] = {}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self) -> str:
        last = {k: round(v[-1], 6) for k, v in self.history.items()}
        return f"History(epochs={len(self.epoch)}, last={last})"


class LambdaCallback(Callback):
    """Callbacks from plain functions: `LambdaCallback(on_epoch_end=lambda epoch, logs: ...)`
    (the moons tutorial draws its decision boundary this way every 50 epochs)."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_batch_end=None, on_train_begin=None,
                 on_train_end=None) -> None:
        for name, fn in locals().items():
            if name != "self" and fn is not None:
                setattr(self, name, fn)


class ProgressBar(Callback):
    """A tqdm bar over epochs showing the last logs, and one over batches for epochs of at
    least `min_batches` batches (fit adds one unless verbose=0)."""

    def __init__(self, min_batches: int = 1000, stream: TextIO | None = None) -> None:
        self.min_batches, self.stream = min_batches, stream
        self.epochs = self.batches = None

    def wants_batches(self) -> bool:
        return self.params.get("steps", 0) >= self.min_batches

    def on_train_begin(self, logs=None):
        start = self.params.get("initial_epoch", 0)
        self.epochs = tqdm(initial=start, total=self.params["epochs"], unit="epoch", leave=True,
                           file=self.stream or sys.stdout)

    def on_epoch_begin(self, epoch, logs=None):
        if self.wants_batches():
            self.batches = tqdm(total=self.params["steps"], unit="batch", leave=False, file=self.stream or sys.stdout)

    def on_batch_end(self, batch, logs=None):
        self.batches.update()

    def on_epoch_end(self, epoch, logs=None):
        if self.batches is not None:
            self.batches.close()
            self.batches = None
        self.epochs.set_description(self.params.get("status") or None, refresh=False)
        self.epochs.set_postfix({k: f"{v:.4g}" for k, v in (logs or {}).items()}, refresh=False)
        self.epochs.update()

    def on_train_end(self, logs=None):
        self.epochs.close()


class EpochLog(Callback):
    """One plain line per epoch, as Keras's verbose=2 prints: `epoch 3/100 - 12.1 ms - loss:
    0.1234 - accuracy: 0.95`; with `every_seconds`, at most one line per that many seconds (and
    the last epoch's), which is what fit prints where its output is not a terminal (a log file
    gets lines, not a bar's carriage-return redraws)."""

    def __init__(self, every_seconds: float = 0.0, stream: TextIO | None = None) -> None:
        self.every_seconds, self.stream = every_seconds, stream
        self.started = self.last = 0.0

    def on_train_begin(self, logs=None):
        self.started = self.last = time.perf_counter()
        self.last -= self.every_seconds  # the first epoch always prints

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now, total = time.perf_counter(), self.params.get("epochs", epoch + 1)
        if now - self.last < self.every_seconds and epoch + 1 < total and not self.model.stop_training:
            return
        self.last = now
        values = "".join(f" - {k}: {v:.4g}" for k, v in (logs or {}).items())
        status = f" [{self.params['status']}]" if self.params.get("status") else ""
        print(f"epoch {epoch + 1}/{total} - {(now - self.epoch_start) * 1e3:.1f} ms{values}{status}",
              file=self.stream or sys.stdout, flush=True)


def progress(verbose: int, stream: TextIO | None = None) -> list[Callback]:
    """What fit shows for `verbose`: nothing (0), a bar (1) where the output is a terminal and
    otherwise a line per second, one line per epoch (2)."""
    out = stream or sys.stdout
    if not verbose:
        return []
    if verbose >= 2:
        return [EpochLog(0.0, stream)]
    return [ProgressBar(stream=stream)] if out.isatty() else [EpochLog(1.0, stream)]


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs; optionally
    put back the best weights seen."""

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False) -> None:
        self.monitor, self.patience, self.min_delta = monitor, patience, abs(min_delta)
        self.sign = -1.0 if mode == "min" or (mode == "auto" and "acc" not in monitor) else 1.0
        self.restore_best_weights = restore_best_weights
        self.stopped_epoch: int | None = None

    def on_train_begin(self, logs=None):
        _check_logged(self, self.monitor, "monitors")
        self.best, self.wait, self.best_weights = None, 0, None

    def on_epoch_end(self, epoch, logs=None):
        if not logs or self.monitor not in logs:
            raise KeyError(f"EarlyStopping monitors {self.monitor!r} but the logs have {sorted(logs or {})}; "
                           "pass validation_data to fit for val_* metrics")
        score = self.sign * logs[self.monitor]
        if self.best is None or score > self.best + self.min_delta:
            self.best, self.wait = score, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.best_weights is not None:
                self.model.set_weights(self.best_weights)


class LearningRateScheduler(Callback):
    """Sets the optimizer's learning rate at each epoch's start to `schedule(epoch, lr)`."""

    def __init__(self, schedule: Any, verbose: int = 0) -> None:
        if not callable(schedule):
            raise TypeError(f"schedule must be a function (epoch, lr) -> lr, got {schedule!r}")
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = self.schedule(epoch, self.model.optimizer.lr)
        self.model.optimizer.lr = lr  # checked there: a number > 0
        if self.verbose:
            print(f"epoch {epoch + 1}: learning rate {lr:.6g}")


class ReduceLROnPlateau(Callback):
    """Keras's ReduceLROnPlateau: when `monitor` has not improved by `min_delta` for `patience`
    epochs, multiply the learning rate by `factor` (not below `min_lr`), then wait `cooldown`
    epochs before counting again."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, mode: str = "auto",
                 min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0, verbose: int = 0) -> None:
        if not 0 < factor < 1:
            raise ValueError(f"ReduceLROnPlateau factor must be in (0, 1), got {factor}")
        self.monitor, self.factor, self.patience, self.min_delta = monitor, factor, patience, abs(min_delta)
        self.sign = -1.0 if mode == "min" or (mode == "auto" and "acc" not in monitor) else 1.0
        self.cooldown, self.min_lr, self.verbose = cooldown, min_lr, verbose

    def on_train_begin(self, logs=None):
        _check_logged(self, self.monitor, "monitors")
        self.best, self.wait, self.cooldown_left = None, 0, 0

    def on_epoch_end(self, epoch, logs=None):
        score = self.sign * (logs or {})[self.monitor]
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.wait = 0
        if self.best is None or score > self.best + self.min_delta:
            self.best, self.wait = score, 0
        elif self.cooldown_left == 0:
            self.wait += 1
            if self.wait >= self.patience and self.model.optimizer.lr > self.min_lr:
                self.model.optimizer.lr = max(self.model.optimizer.lr * self.factor, self.min_lr)
                if self.verbose:
                    print(f"epoch {epoch + 1}: the learning rate is now {self.model.optimizer.lr:.6g}")
                self.cooldown_left, self.wait = self.cooldown, 0


class ModelCheckpoint(Callback):
    """Save the model after each epoch (or only when `monitor` improves) to `filepath`, which
    may contain `{epoch}` and any log key, e.g. "model-{epoch:03d}-{val_loss:.3f}.npz"."""

    def __init__(self, filepath: str, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto") -> None:
        self.filepath, self.monitor, self.save_best_only = str(filepath), monitor, save_best_only
        self.sign = -1.0 if mode == "min" or (mode == "auto" and "acc" not in monitor) else 1.0
        self.best: float | None = None

    def on_train_begin(self, logs=None):
        fields = {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(self.filepath) if name}
        for field in sorted(fields - {"epoch"}):
            _check_logged(self, field, "names in its filepath")
        if self.save_best_only:
            _check_logged(self, self.monitor, "monitors")
        check_writable(self.filepath.format(epoch=1, **{k: 0.0 for k in fields - {"epoch"}}))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            if self.monitor not in logs:
                raise KeyError(f"ModelCheckpoint monitors {self.monitor!r} but the logs have {sorted(logs)}")
            score = self.sign * logs[self.monitor]
            if self.best is not None and score <= self.best:
                return
            self.best = score
        self.model.save(self.filepath.format(epoch=epoch + 1, **logs))


def _check_logged(callback: Callback, key: str, role: str) -> None:
    """Before training: refuse a log key the epochs will not have (with the keys they will)."""
    logged = callback.params.get("metrics")
    if logged is not None and key not in logged:
        hint = "; pass validation_data to fit for val_* keys" if key.startswith("val_") else ""
        raise ValueError(f"{type(callback).__name__} {role} {key!r} but the logs will have {', '.join(logged)}{hint}")
