"""Input validation with messages that say what is wrong and what to do."""

from __future__ import annotations

import numbers
from typing import Any

from fastnn.backend import Backend, BackendMismatchError, owner_of


def as_backend_array(data: Any, be: Backend, what: str) -> Any:
    """`data` as an array of `be`: host data (lists, NumPy) is moved there, arrays of another
    device backend are refused, non-numeric data is refused."""
    owner = owner_of(data)
    if owner not in (None, "numpy", be.name):
        raise BackendMismatchError(
            f"{what} is a {owner} array but the model runs on the {be.name!r} backend; convert it "
            f"with fastnn.to_numpy({what}) or move the model with model.to({owner!r})"
        )
    try:
        return be.asarray(data, dtype=None)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{what} must be numeric (float, int or bool) data: {err}") from err


def check_features(x: Any, be: Backend, input_dim: int | None) -> Any:
    """x as a finite float (n, features) array of `be`."""
    x = as_backend_array(x, be, "x")
    xp = be.xp
    if x.ndim != 2:
        hint = "; use x.reshape(-1, 1) for a single feature" if x.ndim == 1 else ""
        raise ValueError(f"x must be 2-D (n_samples, n_features), got shape {tuple(x.shape)}{hint}")
    if x.shape[0] == 0:
        raise ValueError("x is empty (0 samples)")
    if x.shape[1] == 0:
        raise ValueError(f"x has shape {tuple(x.shape)}: 0 features; each sample needs at least one")
    if input_dim is not None and x.shape[1] != input_dim:
        raise ValueError(f"x has {x.shape[1]} features but the model's first layer expects {input_dim}")
    if x.dtype != be.dtype:
        x = xp.astype(x, be.dtype)
    check_finite(x, xp, "x")
    return x


def check_finite(a: Any, xp: Any, what: str) -> None:
    bad = xp.logical_not(xp.isfinite(a))
    if bool(xp.any(bad)):
        raise ValueError(f"{what} contains {int(xp.sum(xp.astype(bad, xp.int64)))} NaN or Inf "
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
