"""Learning-rate schedules, as Keras defines them: a function of the optimizer's step count,
usable wherever a learning rate is (`SGD(learning_rate=ExponentialDecay(0.1, 100, 0.5))`).
Also reachable as `fastnn.optimizers.schedules`."""

from __future__ import annotations

import math
from typing import Any, Sequence

from fastnn._registry import Configurable, lookup
from fastnn.checks import check_count, check_number


class LearningRateSchedule(Configurable):
    """Base class: `schedule(step) -> learning rate` for step = 0, 1, 2... (the updates made so far)."""

    name = "schedule"

    def __call__(self, step: int) -> float:
        raise NotImplementedError


def _positive(value: Any, what: str) -> float:
    value = check_number(value, what)
    if not value > 0:
        raise ValueError(f"{what} must be positive, got {value}")
    return value


class ExponentialDecay(LearningRateSchedule):
    """initial_learning_rate * decay_rate ** (step / decay_steps), the exponent floored when
    `staircase`."""

    name = "exponential_decay"

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float,
                 staircase: bool = False) -> None:
        self.initial_learning_rate = _positive(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = check_count(decay_steps, "decay_steps")
        self.decay_rate = _positive(decay_rate, "decay_rate")
        self.staircase = bool(staircase)

    def __call__(self, step):
        exponent = step / self.decay_steps
        return self.initial_learning_rate * self.decay_rate ** (math.floor(exponent) if self.staircase else exponent)

    def get_config(self):
        return {"name": self.name, "initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate, "staircase": self.staircase}


class PiecewiseConstantDecay(LearningRateSchedule):
    """values[0] while step <= boundaries[0], values[1] while step <= boundaries[1], ...,
    values[-1] after the last boundary."""

    name = "piecewise_constant_decay"

    def __init__(self, boundaries: Sequence[int], values: Sequence[float]) -> None:
        self.boundaries = [check_count(b, "each boundary", minimum=0) for b in boundaries]
        self.values = [_positive(v, "each value") for v in values]
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(f"PiecewiseConstantDecay needs one value more than boundaries, got "
                             f"{len(self.boundaries)} boundaries and {len(self.values)} values")
        if self.boundaries != sorted(self.boundaries):
            raise ValueError(f"boundaries must increase, got {self.boundaries}")

    def __call__(self, step):
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]

    def get_config(self):
        return {"name": self.name, "boundaries": self.boundaries, "values": self.values}


class CosineDecay(LearningRateSchedule):
    """Keras's CosineDecay: a linear warm-up from initial_learning_rate to warmup_target over
    warmup_steps (when warmup_target is given), then a cosine from there down to alpha times it
    over decay_steps."""

    name = "cosine_decay"

    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0,
                 warmup_target: float | None = None, warmup_steps: int = 0) -> None:
        self.initial_learning_rate = _positive(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = check_count(decay_steps, "decay_steps")
        self.alpha = check_number(alpha, "alpha")
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        self.warmup_target = None if warmup_target is None else _positive(warmup_target, "warmup_target")
        self.warmup_steps = check_count(warmup_steps, "warmup_steps", minimum=0)

    def __call__(self, step):
        top = self.initial_learning_rate if self.warmup_target is None else self.warmup_target
        if step < self.warmup_steps:
            return self.initial_learning_rate + (top - self.initial_learning_rate) * step / self.warmup_steps
        done = min(step - self.warmup_steps, self.decay_steps) / self.decay_steps
        return top * ((1 - self.alpha) * 0.5 * (1 + math.cos(math.pi * done)) + self.alpha)

    def get_config(self):
        return {"name": self.name, "initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


SCHEDULES: dict[str, type[LearningRateSchedule]] = {
    cls.name: cls for cls in (ExponentialDecay, PiecewiseConstantDecay, CosineDecay)
}


def get(schedule: str | dict | LearningRateSchedule) -> LearningRateSchedule:
    """A schedule from an instance or its config dict."""
    return lookup("learning-rate schedule", schedule, LearningRateSchedule, SCHEDULES)
