"""Input validation with messages that say what is wrong and what to do."""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Any

import array_api_compat

from fastnn.backend import Backend, BackendMismatchError, owner_of


def as_backend_array(data: Any, be: Backend, what: str) -> Any:
    """`data` as an array of `be`: host data (lists, NumPy) is moved there; arrays of another
    backend, or of this one on another device, and non-numeric data are refused."""
    owner = owner_of(data)
    if owner not in (None, "numpy", be.name):
        raise BackendMismatchError(
            f"{what} is a {owner} array but the model runs on the {be.name!r} backend; convert it "
            f"with fastnn.asarray({what}) or fastnn.to_numpy({what}), or move the model with model.to({owner!r})"
        )
    if owner == be.name and owner != "numpy" and not be.on_its_device(data):
        where = array_api_compat.device(data)
        raise BackendMismatchError(
            f"{what} is on device {str(where)!r} but the model runs on {be.name} device {str(be.device)!r}; "
            f"move the data there, or the model with model.to({be.name!r}, device={str(where)!r})"
        )
    try:
        return be.asarray(data, dtype=None)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{what} must be numeric (float, int or bool) data: {err}") from err


def check_features(x: Any, be: Backend, input_shape: Any, what: str = "x") -> Any:
    """x as a finite float array of `be`: (n, features) rows, or (n, *input_shape) samples of a
    model whose input is n-dimensional (images: (n, height, width, channels))."""
    x = as_backend_array(x, be, what)
    xp = be.xp
    shape = (input_shape,) if isinstance(input_shape, int) else None if input_shape is None else tuple(input_shape)
    flat = shape is None or len(shape) == 1
    if x.ndim < 2 or (flat and shape is not None and x.ndim != 2):
        hint = f"; use {what}.reshape(-1, 1) for a single feature" if x.ndim == 1 else ""
        raise ValueError(f"{what} must be 2-D (n_samples, n_features), got shape {tuple(x.shape)}{hint}")
    if x.shape[0] == 0:
        raise ValueError(f"{what} is empty (0 samples)")
    if any(d == 0 for d in x.shape[1:]):
        raise ValueError(f"{what} has shape {tuple(x.shape)}: 0 features; each sample needs at least one")
    if shape is not None and flat and x.shape[1] != shape[0]:
        raise ValueError(f"{what} has {x.shape[1]} features but the model's first layer expects {shape[0]}")
    if shape is not None and not flat and tuple(x.shape[1:]) != shape:
        wanted = ", ".join(map(str, shape))
        raise ValueError(f"{what} must have shape (n, {wanted}) for this model, got {tuple(x.shape)}"
                         + (f"; reshape it with {what}.reshape(-1, {wanted})" if math.prod(x.shape[1:]) == math.prod(shape)
                            else "; channels go last (n, height, width, channels)"))
    if x.dtype != be.dtype:
        x = xp.astype(x, be.dtype)
    check_finite(x, xp, what)
    return x


def check_finite(a: Any, xp: Any, what: str) -> None:
    bad = xp.logical_not(xp.isfinite(a))
    if bool(xp.any(bad)):
        raise ValueError(f"{what} contains {int(xp.count_nonzero(bad))} NaN or Inf "
                         f"value(s); remove or impute them before training")


def check_targets(y: Any, be: Backend, n: int, units: int, loss: Any) -> Any:
    """y as a finite float (n, units) array of `be`, shaped and range-checked by the loss."""
    y = as_backend_array(y, be, "y")
    if y.ndim == 0 or y.shape[0] != n:
        raise ValueError(f"x has {n} samples but y has shape {tuple(y.shape)}; they must match")
    if be.xp.isdtype(y.dtype, "real floating"):
        check_finite(y, be.xp, "y")
    return loss.prepare_targets(y, units, be.xp, be.dtype)


def check_count(value: Any, what: str, minimum: int = 1) -> int:
    """`value` as an int of at least `minimum`; refuses bools, fractions and strings (which
    int() would silently turn into another number)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be an integer, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{what} must be at least {minimum}, got {value}")
    return int(value)


def check_number(value: Any, what: str) -> float:
    """`value` as a float; refuses strings and bools with a message naming `what`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a number, got {value!r} ({type(value).__name__})")
    return float(value)


def check_sample_weights(sample_weight: Any, class_weight: Any, y: Any, be: Backend) -> Any:
    """The (n, 1) column of per-sample loss weights for prepared targets y, from `sample_weight`
    (n values) and/or `class_weight` ({class index: weight}; a sample's class is its largest
    target, or target > 0.5 for one output); None when neither is given."""
    if sample_weight is None and class_weight is None:
        return None
    xp, n = be.xp, y.shape[0]
    weights = xp.ones((n,), dtype=be.dtype, device=be.device)
    if sample_weight is not None:
        weights = as_backend_array(sample_weight, be, "sample_weight")
        if weights.ndim != 1 or weights.shape[0] != n:
            raise ValueError(f"sample_weight has shape {tuple(weights.shape)}; it needs one weight per sample: ({n},)")
        weights = xp.astype(weights, be.dtype)
        check_finite(weights, xp, "sample_weight")
    if class_weight is not None:
        weights = weights * _class_weights(class_weight, y, be)
    return xp.reshape(weights, (n, 1))


def _class_weights(class_weight: Any, y: Any, be: Backend) -> Any:
    xp, units = be.xp, y.shape[1]
    classes = 2 if units == 1 else units
    if not isinstance(class_weight, dict):
        raise TypeError(f"class_weight must be a dict {{class index: weight}}, got {type(class_weight).__name__}")
    unknown = [k for k in class_weight if isinstance(k, bool) or not isinstance(k, numbers.Integral)
               or not 0 <= k < classes]
    if unknown:
        raise ValueError(f"class_weight has keys {unknown} that are not class indices 0 to {classes - 1}")
    table = xp.asarray([check_number(class_weight.get(c, 1.0), f"class_weight[{c}]") for c in range(classes)],
                       dtype=be.dtype, device=be.device)
    labels = xp.astype(y[:, 0] > 0.5, xp.int64) if units == 1 else xp.argmax(y, axis=1)
    return xp.take(table, labels, axis=0)


def check_writable(path: str | os.PathLike) -> None:
    """Raise a clear OSError, naming `path`, when a model cannot be saved there."""
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot save to {path}: the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot save to {path}: the folder {folder} is not writable")
    if path.is_dir():
        raise IsADirectoryError(f"cannot save to {path}: it is a folder; give a file name such as {path / 'model.npz'}")
