"""Optimizers with PyTorch's update rules.

Each keeps one dict of state arrays per parameter (`self.state`), so a model can move the
state between backends and save it with the weights. Updates are written with augmented
assignments (`p -= ...`, `state["m"] *= ...`) and return the parameter: in place on NumPy, CuPy
and PyTorch, a new array on JAX, whose arrays are immutable — one code for both.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from array_api_compat import array_namespace

from fastnn import schedules
from fastnn._registry import Configurable, lookup
from fastnn.activations import between
from fastnn.checks import check_number
from fastnn.spec import OptimizerSpec


class Hyperparameter:
    """A float attribute, checked on every assignment (type and range), whose every change
    bumps the optimizer's `revision`, so that a model knows to rebuild its spec when a learning
    rate changes between steps (setting the value it has changes nothing: a new spec would make
    the jitted JAX step compile again). `low`/`high` bound it; `low_open` excludes `low` itself."""

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
        self.store(obj, value)

    def store(self, obj: Any, value: float) -> None:
        """Set without the range check (a schedule may reach 0), still bumping the revision."""
        if obj.__dict__.get(self.key) == float(value):
            return
        obj.__dict__[self.key] = float(value)
        obj.revision = obj.__dict__.get("revision", 0) + 1


class Clipping:
    """Keras's gradient clipping, one mode at most: `clipnorm` (each gradient to that L2 norm),
    `global_clipnorm` (all of them together, as torch.nn.utils.clip_grad_norm_) or `clipvalue`
    (each element to [-clipvalue, clipvalue]). Device arithmetic only: no host sync."""

    def __init__(self, clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None) -> None:
        given = {k: v for k, v in (("clipnorm", clipnorm), ("clipvalue", clipvalue),
                                   ("global_clipnorm", global_clipnorm)) if v is not None}
        if len(given) > 1:
            raise ValueError(f"set at most one of clipnorm, clipvalue and global_clipnorm, got {sorted(given)}")
        for key, value in given.items():
            if not check_number(value, key) > 0:
                raise ValueError(f"{key} must be positive, got {value}")
        self.mode, self.limit = next(iter(given.items()), (None, None))

    def __bool__(self) -> bool:
        return self.mode is not None

    def __call__(self, grads: list[Any]) -> list[Any]:
        if self.mode is None or not grads:
            return grads
        xp = array_namespace(grads[0])
        if self.mode == "clipvalue":
            return [between(g, -self.limit, self.limit) for g in grads]
        if self.mode == "clipnorm":
            return [g * (self.limit / xp.maximum(xp.sqrt(xp.sum(g * g)), self.limit)) for g in grads]
        total = xp.sqrt(sum(xp.sum(g * g) for g in grads))
        return [g * xp.minimum(self.limit / (total + 1e-6), 1.0) for g in grads]

    def config(self) -> dict:
        return {} if self.mode is None else {self.mode: self.limit}


class Optimizer(Configurable):
    """Base class. Every optimizer takes `learning_rate=` as well as `lr` (the first wins when
    given) and one of `clipnorm`, `clipvalue`, `global_clipnorm`."""

    name = "optimizer"
    slot_names: tuple[str, ...] = ()
    lr = Hyperparameter(low_open=True)

    def __init__(self, lr: Any, learning_rate: Any = None, clipnorm: float | None = None,
                 clipvalue: float | None = None, global_clipnorm: float | None = None) -> None:
        rate = lr if learning_rate is None else learning_rate
        is_schedule = isinstance(rate, (schedules.LearningRateSchedule, dict))
        self.schedule = schedules.get(rate) if is_schedule else None  # lr follows it, step by step
        self.lr = self.schedule(0) if is_schedule else rate
        self.clipping = Clipping(clipnorm, clipvalue, global_clipnorm)
        self.iterations = 0
        self.state: list[dict[str, Any]] = []

    def initial_slot(self, name: str, p: Any) -> Any:
        """A fresh state array for parameter `p` (zeros unless an optimizer says otherwise)."""
        return array_namespace(p).zeros_like(p)

    def build(self, params: list[Any]) -> None:
        """Create fresh state for `params` (called by the model; idempotent for the same shapes)."""
        if len(self.state) == len(params) and all(
            s[k].shape == p.shape for s, p in zip(self.state, params) for k in s
        ):
            return
        self.state = [{k: self.initial_slot(k, p) for k in self.slot_names} for p in params]
        self.iterations = 0

    def apply(self, params: list[Any], grads: list[Any], ops: Any = None) -> list[Any]:
        """One update step of every parameter; returns the updated parameters (the same arrays
        where the backend updates in place). `ops` may supply a fused kernel."""
        if self.schedule is not None:  # the rate for the step about to be made, as Keras; it may reach 0
            Optimizer.lr.store(self, self.schedule(self.iterations))
        self.iterations += 1
        grads = self.clipping(grads)
        update = getattr(ops, f"{self.name}_update", None) if ops is not None else None
        return [p if update is not None and update(self, p, g, s) else self.update(p, g, s)
                for p, g, s in zip(params, grads, self.state)]

    def update(self, p: Any, g: Any, state: dict[str, Any]) -> Any:
        """p after one step from gradient g, updating `state`'s arrays."""
        raise NotImplementedError

    def hyperparameters(self) -> dict:
        """The constructor's arguments beyond lr and clipping, as get_config writes them."""
        return {}

    def spec(self) -> OptimizerSpec:
        """The update rule and hyper-parameters, as engines read them."""
        return OptimizerSpec(self.name, self.lr, slots=self.slot_names, **self.spec_flags())

    def spec_flags(self) -> dict:
        """What compiled code must know beyond the rule: clipping, a learning-rate schedule."""
        return {"clipped": bool(self.clipping), "scheduled": self.schedule is not None}

    def map_state(self, fn: Callable[[Any], Any]) -> None:
        """Replace every state array by fn(array) (moving it to another backend, say)."""
        self.state = [{k: fn(v) for k, v in s.items()} for s in self.state]

    def get_config(self) -> dict:
        lr = self.lr if self.schedule is None else self.schedule.get_config()
        return {"name": self.name, "lr": lr, **self.hyperparameters(), **self.clipping.config()}


class SGD(Optimizer):
    """p -= lr * g; with momentum: buf = momentum * buf + g, p -= lr * buf (or, Nesterov,
    p -= lr * (g + momentum * buf)) — torch.optim.SGD with dampening 0."""

    name = "sgd"
    momentum = Hyperparameter(high=1.0)

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False, **options: Any) -> None:
        super().__init__(lr, **options)
        self.momentum, self.nesterov = momentum, bool(nesterov)
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs a momentum > 0")
        self.slot_names = ("momentum",) if momentum else ()

    def update(self, p, g, state):
        if not self.momentum:
            p -= self.lr * g
            return p
        state["momentum"] *= self.momentum
        state["momentum"] += g
        buf = state["momentum"]
        p -= self.lr * (g + self.momentum * buf if self.nesterov else buf)
        return p

    def spec(self) -> OptimizerSpec:
        rule = "sgd" if self.momentum == 0 else "nesterov" if self.nesterov else "momentum"
        return OptimizerSpec(rule, self.lr, momentum=self.momentum, slots=self.slot_names, **self.spec_flags())

    def hyperparameters(self) -> dict:
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam exactly as torch.optim.Adam (bias-corrected, eps added after the square root)."""

    name = "adam"
    slot_names = ("m", "v")
    beta_1, beta_2, epsilon = Hyperparameter(high=1.0), Hyperparameter(high=1.0), Hyperparameter()

    def __init__(self, lr: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8,
                 **options: Any) -> None:
        super().__init__(lr, **options)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def step_sizes(self) -> tuple[float, float]:
        """(lr / bias_correction1, sqrt(bias_correction2)) for the current iteration."""
        t = self.iterations
        return self.lr / (1 - self.beta_1**t), (1 - self.beta_2**t) ** 0.5

    def update(self, p, g, state):
        xp = array_namespace(p)
        state["m"] *= self.beta_1
        state["m"] += (1 - self.beta_1) * g
        state["v"] *= self.beta_2
        state["v"] += (1 - self.beta_2) * (g * g)
        step, root_bc2 = self.step_sizes()
        denominator = xp.sqrt(state["v"])  # then in place where the arrays allow: fewer temporaries
        denominator /= root_bc2
        denominator += self.epsilon
        p -= step * (state["m"] / denominator)
        return p

    def spec(self) -> OptimizerSpec:
        return OptimizerSpec(self.name, self.lr, beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                             slots=self.slot_names, **self.spec_flags())

    def hyperparameters(self) -> dict:
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class AdamW(Adam):
    """Adam with decoupled weight decay, as torch.optim.AdamW: p *= 1 - lr * weight_decay, then
    the Adam step."""

    name = "adamw"
    weight_decay = Hyperparameter()

    def __init__(self, lr: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8,
                 weight_decay: float = 0.01, **options: Any) -> None:
        super().__init__(lr, beta_1, beta_2, epsilon, **options)
        self.weight_decay = weight_decay

    def update(self, p, g, state):
        p *= 1 - self.lr * self.weight_decay
        return super().update(p, g, state)

    def hyperparameters(self) -> dict:
        return {**super().hyperparameters(), "weight_decay": self.weight_decay}


class RMSprop(Optimizer):
    """torch.optim.RMSprop under Keras's names (rho is torch's alpha): a running mean of g²
    (centered: minus the square of g's running mean), eps added after the square root, and
    optional momentum on the scaled step."""

    name = "rmsprop"
    rho, momentum, epsilon = Hyperparameter(high=1.0), Hyperparameter(high=1.0), Hyperparameter()

    def __init__(self, lr: float = 0.001, rho: float = 0.9, momentum: float = 0.0, epsilon: float = 1e-7,
                 centered: bool = False, **options: Any) -> None:
        super().__init__(lr, **options)
        self.rho, self.momentum, self.epsilon, self.centered = rho, momentum, epsilon, bool(centered)
        self.slot_names = ("square_avg", *(("grad_avg",) if centered else ()), *(("momentum",) if momentum else ()))

    def update(self, p, g, state):
        xp = array_namespace(p)
        state["square_avg"] *= self.rho
        state["square_avg"] += (1 - self.rho) * (g * g)
        square_avg = state["square_avg"]
        if self.centered:
            state["grad_avg"] *= self.rho
            state["grad_avg"] += (1 - self.rho) * g
            avg = xp.sqrt(square_avg - state["grad_avg"] * state["grad_avg"]) + self.epsilon
        else:
            avg = xp.sqrt(square_avg) + self.epsilon
        if not self.momentum:
            p -= self.lr * (g / avg)
            return p
        state["momentum"] *= self.momentum
        state["momentum"] += g / avg
        p -= self.lr * state["momentum"]
        return p

    def hyperparameters(self) -> dict:
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon, "centered": self.centered}


class Adagrad(Optimizer):
    """torch.optim.Adagrad (lr_decay 0) under Keras's names: a running sum of g², starting at
    `initial_accumulator_value`; eps added after the square root."""

    name = "adagrad"
    slot_names = ("sum",)
    initial_accumulator_value, epsilon = Hyperparameter(), Hyperparameter()

    def __init__(self, lr: float = 0.001, initial_accumulator_value: float = 0.1, epsilon: float = 1e-7,
                 **options: Any) -> None:
        super().__init__(lr, **options)
        self.initial_accumulator_value, self.epsilon = initial_accumulator_value, epsilon

    def initial_slot(self, name, p):
        xp = array_namespace(p)
        return xp.full_like(p, self.initial_accumulator_value)

    def update(self, p, g, state):
        xp = array_namespace(p)
        state["sum"] += g * g
        p -= self.lr * (g / (xp.sqrt(state["sum"]) + self.epsilon))
        return p

    def hyperparameters(self) -> dict:
        return {"initial_accumulator_value": self.initial_accumulator_value, "epsilon": self.epsilon}


OPTIMIZERS: dict[str, type[Optimizer]] = {cls.name: cls for cls in (SGD, Adam, AdamW, RMSprop, Adagrad)}


def get(optimizer: str | dict | Optimizer) -> Optimizer:
    """An Optimizer from a name ("sgd", "adam", "adamw", "rmsprop", "adagrad"), a config dict or an instance."""
    return lookup("optimizer", optimizer, Optimizer, OPTIMIZERS)
