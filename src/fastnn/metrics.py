"""Metrics: `metric(y_pred, y_true) -> mean over the batch` as a 0-d array (no host sync)."""

from __future__ import annotations

from typing import Any, Callable

from array_api_compat import array_namespace

Metric = Callable[[Any, Any], Any]


def binary_accuracy(y_pred: Any, y_true: Any) -> Any:
    """Share of elements where (y_pred > 0.5) equals (y_true > 0.5)."""
    xp = array_namespace(y_pred)
    return xp.mean(xp.astype((y_pred > 0.5) == (y_true > 0.5), y_pred.dtype))


def categorical_accuracy(y_pred: Any, y_true: Any) -> Any:
    """Share of rows whose largest prediction is the largest target (the true class)."""
    xp = array_namespace(y_pred)
    hits = xp.argmax(y_pred, axis=-1) == xp.argmax(y_true, axis=-1)
    return xp.mean(xp.astype(hits, y_pred.dtype))


def mae(y_pred: Any, y_true: Any) -> Any:
    xp = array_namespace(y_pred)
    return xp.mean(xp.abs(y_pred - y_true))


def mse(y_pred: Any, y_true: Any) -> Any:
    xp = array_namespace(y_pred)
    d = y_pred - y_true
    return xp.mean(d * d)


METRICS: dict[str, Metric] = {
    "binary_accuracy": binary_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "mae": mae,
    "mse": mse,
}

def get(name: str, units: int) -> tuple[str, Metric]:
    """(name, function); "accuracy" means binary accuracy for one output, else categorical."""
    if callable(name):
        return getattr(name, "__name__", "metric"), name
    key = name.strip().lower()
    if key in ("accuracy", "acc"):
        return "accuracy", binary_accuracy if units == 1 else categorical_accuracy
    if key not in METRICS:
        raise ValueError(f"unknown metric {name!r}; valid names: accuracy, {', '.join(sorted(METRICS))}")
    return key, METRICS[key]
