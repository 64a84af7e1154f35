"""Losses: `loss(y_pred, y_true) -> (value, d value / d y_pred)`, means over the batch as Keras
and PyTorch define them. With `from_logits=True` they take pre-activations; a model whose last
layer is sigmoid (softmax) and whose loss is binary (categorical) cross-entropy uses that fused,
stable form automatically (see `fused_with`)."""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace

from fastnn._registry import lookup
from fastnn.activations import Activation, between, stable_sigmoid
from fastnn.spec import LossCode

EPSILON = 1e-7  # probability clipping for cross-entropy on probabilities, as in Keras


class Loss:
    name = "loss"
    fuses_with: str | None = None  # activation name whose output this loss can take as logits

    def __init__(self, from_logits: bool = False) -> None:
        self.from_logits = bool(from_logits)

    def __call__(self, y_pred: Any, y_true: Any, weights: Any = None) -> tuple[Any, Any]:
        """(mean loss as a 0-d array, its gradient with respect to y_pred). `weights`, a (n, 1)
        column, scales each sample's share: Keras's mean over the batch of weight x sample loss."""
        f, g, size = self.elements(y_pred, y_true)
        if weights is not None:
            f, g = f * weights, g * weights
        return array_namespace(f).sum(f) / size, g / size

    def elements(self, y_pred: Any, y_true: Any) -> tuple[Any, Any, int]:
        """(each element's loss, its derivative, the count the mean divides by)."""
        raise NotImplementedError

    @property
    def code(self) -> LossCode | None:
        """What compiled code calls this loss; None where only the pure path computes it."""
        return None

    def fused_with(self, activation: Activation) -> "Loss | None":
        """This loss on logits, if it can absorb `activation` (sigmoid+BCE, softmax+CCE)."""
        if not self.from_logits and activation.name == self.fuses_with:
            return type(self)(from_logits=True)
        return None

    def prepare_targets(self, y: Any, units: int, xp: Any, dtype: Any) -> Any:
        """Targets as a float (n, units) array; raises ValueError for a shape that cannot match."""
        if y.ndim == 1 and units == 1:
            y = xp.reshape(y, (-1, 1))
        if y.ndim != 2 or y.shape[1] != units:
            raise ValueError(
                f"y has shape {tuple(y.shape)} but the model outputs (n, {units}); "
                f"reshape y to (n, {units})"
            )
        return xp.astype(y, dtype) if y.dtype != dtype else y

    def get_config(self) -> dict:
        return {"name": self.name, "from_logits": self.from_logits}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(from_logits={self.from_logits})"


def _check_probabilities(y: Any, xp: Any, what: str) -> None:
    if not bool(xp.all((y >= 0) & (y <= 1))):
        raise ValueError(f"{what} targets must lie in [0, 1]; got values from "
                         f"{float(xp.min(y))} to {float(xp.max(y))}")


class MeanSquaredError(Loss):
    """mean((y_pred - y_true)²) over every element."""

    name = "mse"
    code = LossCode.MSE

    def elements(self, y_pred, y_true):
        diff = y_pred - y_true
        return diff * diff, 2.0 * diff, diff.shape[0] * diff.shape[1]


class BinaryCrossentropy(Loss):
    """-mean(y log p + (1 - y) log(1 - p)) over every element."""

    name = "binary_crossentropy"
    fuses_with = "sigmoid"

    def prepare_targets(self, y, units, xp, dtype):
        y = super().prepare_targets(y, units, xp, dtype)
        _check_probabilities(y, xp, "binary_crossentropy")
        return y

    @property
    def code(self):
        return LossCode.BCE_LOGITS if self.from_logits else None

    def elements(self, y_pred, y_true):
        xp = array_namespace(y_pred)
        size = y_pred.shape[0] * y_pred.shape[1]
        if self.from_logits:
            z = y_pred  # log(1 + exp(-|z|)) + max(z, 0) - z y: exact and overflow-free
            return xp.maximum(z, 0.0) - z * y_true + xp.log1p(xp.exp(-xp.abs(z))), stable_sigmoid(z) - y_true, size
        p = between(y_pred, EPSILON, 1 - EPSILON)
        return -(y_true * xp.log(p) + (1 - y_true) * xp.log(1 - p)), (p - y_true) / (p * (1 - p)), size


class CategoricalCrossentropy(Loss):
    """-sum(y log p) over classes, mean over the batch. Targets one-hot/probabilities or
    integer class labels (converted to one-hot)."""

    name = "categorical_crossentropy"
    fuses_with = "softmax"

    def prepare_targets(self, y, units, xp, dtype):
        if y.ndim == 1 and xp.isdtype(y.dtype, "integral"):
            if y.shape[0] and not bool(xp.all((y >= 0) & (y < units))):
                raise ValueError(
                    f"integer labels must lie in [0, {units}) for {units} outputs; got labels from "
                    f"{int(xp.min(y))} to {int(xp.max(y))}"
                )
            return xp.astype(y[:, None] == xp.arange(units, dtype=y.dtype, device=y.device)[None, :], dtype)
        if y.ndim == 1:
            raise ValueError(
                f"y has shape {tuple(y.shape)} and dtype {y.dtype}: categorical_crossentropy takes "
                f"integer labels (n,) or one-hot targets (n, {units})"
            )
        y = super().prepare_targets(y, units, xp, dtype)
        _check_probabilities(y, xp, "categorical_crossentropy")
        return y

    @property
    def code(self):
        return LossCode.CCE_LOGITS if self.from_logits else None

    def elements(self, y_pred, y_true):
        xp = array_namespace(y_pred)
        n = y_pred.shape[0]
        if self.from_logits:
            shifted = y_pred - xp.max(y_pred, axis=-1, keepdims=True)
            e = xp.exp(shifted)
            total = xp.sum(e, axis=-1, keepdims=True)
            return -y_true * (shifted - xp.log(total)), e / total - y_true, n
        p = between(y_pred, EPSILON, 1 - EPSILON)
        return -y_true * xp.log(p), -y_true / p, n


class Poisson(Loss):
    """mean(y_pred - y_true log y_pred) over every element, Keras's "poisson" (the Poisson
    negative log-likelihood of rates y_pred, less a term free of y_pred). After an exponential
    output it takes the log-rate z: exp(z) - y z, whose gradient exp(z) - y stays finite."""

    name = "poisson"
    fuses_with = "exponential"

    def prepare_targets(self, y, units, xp, dtype):
        y = super().prepare_targets(y, units, xp, dtype)
        if not bool(xp.all(y >= 0)):
            raise ValueError(f"poisson targets must be counts or rates >= 0; the smallest is {float(xp.min(y))}")
        return y

    def elements(self, y_pred, y_true):
        xp = array_namespace(y_pred)
        size = y_pred.shape[0] * y_pred.shape[1]
        if self.from_logits:
            rate = xp.exp(xp.minimum(y_pred, 80.0))  # e^80 ~ 5e34: finite in float32
            return rate - y_true * y_pred, rate - y_true, size
        p = xp.maximum(y_pred, EPSILON)
        return p - y_true * xp.log(p), 1 - y_true / p, size


LOSSES: dict[str, type[Loss]] = {
    cls.name: cls for cls in (MeanSquaredError, BinaryCrossentropy, CategoricalCrossentropy, Poisson)
}
_ALIASES = {
    "mean_squared_error": "mse",
    "bce": "binary_crossentropy",
    "cce": "categorical_crossentropy",
    "sparse_categorical_crossentropy": "categorical_crossentropy",
}


def get(loss: str | dict | Loss) -> Loss:
    """A Loss from a name ("mse", "binary_crossentropy"...), a config dict or an instance."""
    return lookup("loss", loss, Loss, LOSSES, _ALIASES)
