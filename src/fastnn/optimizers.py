"""Optimizers with PyTorch's update rules, applied in place to the model's parameter arrays.

Each keeps one dict of state arrays per parameter (`self.state`), so a model can move the
state between backends and save it with the weights.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from array_api_compat import array_namespace

from fastnn._registry import lookup
from fastnn.checks import check_number
from fastnn.spec import OptimizerSpec


class Hyperparameter:
    """A float attribute, checked on every assignment (type and range), whose every assignment
    bumps the optimizer's `revision`, so that a model knows to rebuild its spec when a learning
    rate changes between steps. `low`/`high` bound it; `low_open` excludes `low` itself."""

    def __init__(self, low: float = 0.0, high: float = math.inf, low_open: bool = False) -> None:
        self.low, self.high, self.low_open = low, high, low_open

    def __set_name__(self, owner: type, name: str) -> None:
        self.name, self.key = name, f"_{name}"

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        return self if obj is None else obj.__dict__[self.key]

    def __set__(self, obj: Any, value: float) -> None:
        value = check_number(value, f"{type(obj).__name__} {self.name}")
        too_low = value <= self.low if self.low_open else value < self.low
        if too_low or not value < self.high:
            interval = f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g})"
            raise ValueError(f"{type(obj).__name__} {self.name} must be in {interval}, got {value}")
        obj.__dict__[self.key] = value
        obj.revision = obj.__dict__.get("revision", 0) + 1


class Optimizer:
    name = "optimizer"
    slot_names: tuple[str, ...] = ()
    lr = Hyperparameter(low_open=True)

    def __init__(self, lr: float) -> None:
        self.lr = lr
        self.iterations = 0
        self.state: list[dict[str, Any]] = []

    def build(self, params: list[Any]) -> None:
        """Create zeroed state for `params` (called by the model; idempotent for the same shapes)."""
        if len(self.state) == len(params) and all(
            s[k].shape == p.shape for s, p in zip(self.state, params) for k in s
        ):
            return
        self.state = [
            {k: array_namespace(p).zeros_like(p) for k in self.slot_names} for p in params
        ]
        self.iterations = 0

    def apply(self, params: list[Any], grads: list[Any], ops: Any = None) -> None:
        """One update step of every parameter, in place. `ops` may supply a fused kernel."""
        self.iterations += 1
        update = getattr(ops, f"{self.name}_update", None) if ops is not None else None
        for p, g, s in zip(params, grads, self.state):
            if update is None or not update(self, p, g, s):
                self.update(p, g, s)

    def update(self, p: Any, g: Any, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def spec(self) -> OptimizerSpec:
        """The update rule and hyper-parameters, as engines read them."""
        raise NotImplementedError

    def map_state(self, fn: Callable[[Any], Any]) -> None:
        """Replace every state array by fn(array) (moving it to another backend, say)."""
        self.state = [{k: fn(v) for k, v in s.items()} for s in self.state]

    def get_config(self) -> dict:
        return {"name": self.name, "lr": self.lr}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """p -= lr * g; with momentum: buf = momentum * buf + g, p -= lr * buf (or, Nesterov,
    p -= lr * (g + momentum * buf)) — torch.optim.SGD with dampening 0."""

    name = "sgd"
    momentum = Hyperparameter(high=1.0)

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(lr)
        self.momentum, self.nesterov = momentum, bool(nesterov)
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs a momentum > 0")
        self.slot_names = ("momentum",) if momentum else ()

    def update(self, p, g, state):
        if not self.momentum:
            p -= self.lr * g
            return
        buf = state["momentum"]
        buf *= self.momentum
        buf += g
        p -= self.lr * (g + self.momentum * buf if self.nesterov else buf)

    def spec(self) -> OptimizerSpec:
        rule = "sgd" if self.momentum == 0 else "nesterov" if self.nesterov else "momentum"
        return OptimizerSpec(rule, self.lr, momentum=self.momentum, slots=self.slot_names)

    def get_config(self) -> dict:
        return {"name": self.name, "lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam exactly as torch.optim.Adam (bias-corrected, eps added after the square root)."""

    name = "adam"
    slot_names = ("m", "v")
    beta_1, beta_2, epsilon = Hyperparameter(high=1.0), Hyperparameter(high=1.0), Hyperparameter()

    def __init__(self, lr: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8) -> None:
        super().__init__(lr)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def step_sizes(self) -> tuple[float, float]:
        """(lr / bias_correction1, sqrt(bias_correction2)) for the current iteration."""
        t = self.iterations
        return self.lr / (1 - self.beta_1**t), (1 - self.beta_2**t) ** 0.5

    def update(self, p, g, state):
        xp = array_namespace(p)
        m, v = state["m"], state["v"]
        m *= self.beta_1
        m += (1 - self.beta_1) * g
        v *= self.beta_2
        v += (1 - self.beta_2) * (g * g)
        step, root_bc2 = self.step_sizes()
        p -= step * (m / (xp.sqrt(v) / root_bc2 + self.epsilon))

    def spec(self) -> OptimizerSpec:
        return OptimizerSpec("adam", self.lr, beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                             slots=self.slot_names)

    def get_config(self) -> dict:
        return {"name": self.name, "lr": self.lr, "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


OPTIMIZERS: dict[str, type[Optimizer]] = {SGD.name: SGD, Adam.name: Adam}


def get(optimizer: str | dict | Optimizer) -> Optimizer:
    """An Optimizer from a name ("sgd", "adam"), a config dict or an instance."""
    return lookup("optimizer", optimizer, Optimizer, OPTIMIZERS)
