"""Weight penalties, as Keras defines them: `L1(l1)` adds l1 * sum(|w|) to the loss, `L2(l2)`
adds l2 * sum(w²), `L1L2` both. A layer's `kernel_regularizer=` / `bias_regularizer=` take an
instance, a config dict or "l1", "l2", "l1_l2" (factor 0.01). The penalty is part of the loss
fit and evaluate report, and its gradient joins the weights' gradient."""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace

from fastnn._registry import Configurable, lookup
from fastnn.checks import check_number


def _factor(value: Any, what: str) -> float:
    value = check_number(value, what)
    if value < 0:
        raise ValueError(f"{what} must be at least 0, got {value}")
    return value


class Regularizer(Configurable):
    name = "regularizer"

    def __call__(self, w: Any) -> Any:
        """The penalty, a 0-d array on w's device."""
        raise NotImplementedError

    def gradient(self, w: Any) -> Any:
        raise NotImplementedError


class L1L2(Regularizer):
    """l1 * sum(|w|) + l2 * sum(w²); its gradient l1 * sign(w) + 2 l2 w."""

    name = "l1_l2"

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1, self.l2 = _factor(l1, "l1"), _factor(l2, "l2")

    def __call__(self, w):
        xp = array_namespace(w)
        return self.l1 * xp.sum(xp.abs(w)) + self.l2 * xp.sum(w * w)

    def gradient(self, w):
        return self.l1 * array_namespace(w).sign(w) + (2 * self.l2) * w

    def get_config(self):
        return {"name": self.name, "l1": self.l1, "l2": self.l2}


class L1(L1L2):
    name = "l1"

    def __init__(self, l1: float = 0.01) -> None:
        super().__init__(l1=l1)

    def get_config(self):
        return {"name": self.name, "l1": self.l1}


class L2(L1L2):
    name = "l2"

    def __init__(self, l2: float = 0.01) -> None:
        super().__init__(l2=l2)

    def get_config(self):
        return {"name": self.name, "l2": self.l2}


REGULARIZERS: dict[str, type[Regularizer]] = {cls.name: cls for cls in (L1, L2, L1L2)}


def get(regularizer: str | dict | Regularizer | None) -> Regularizer | None:
    """A Regularizer from a name ("l1", "l2", "l1_l2"), a config dict, an instance, or None."""
    if regularizer is None:
        return None
    if regularizer == "l1_l2":
        return L1L2(0.01, 0.01)
    return lookup("regularizer", regularizer, Regularizer, REGULARIZERS)
