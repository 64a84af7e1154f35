"""Weight initializers. They draw on the host with a NumPy Generator, so the same seed gives
the same initial weights on every backend; the caller moves the result to its backend."""

from __future__ import annotations

import math

import numpy as np

from fastnn._registry import lookup


class Initializer:
    """`init(shape, rng)` -> float64 NumPy array; shape is (fan_in, fan_out), (fan_out,), or a
    convolution kernel's (..., in, out), whose fans are Keras's: in (out) x the window's size."""

    name = "initializer"

    def __call__(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": self.name, **vars(self)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) > 2:  # a kernel (kh, kw, in, out): every output sees the window of every input
        window = math.prod(shape[:-2])
        return shape[-2] * window, shape[-1] * window
    return (shape[0], shape[1]) if len(shape) == 2 else (shape[0], shape[0])


class Zeros(Initializer):
    name = "zeros"

    def __call__(self, shape, rng):
        return np.zeros(shape)


class Ones(Initializer):
    name = "ones"

    def __call__(self, shape, rng):
        return np.ones(shape)


class Uniform(Initializer):
    """U(-limit, limit): Keras's RandomUniform, its default for Embedding tables (limit 0.05)."""

    name = "uniform"

    def __init__(self, limit: float = 0.05) -> None:
        self.limit = float(limit)

    def __call__(self, shape, rng):
        return rng.uniform(-self.limit, self.limit, shape)


class Normal(Initializer):
    """N(mean, std²). `Normal(std=0.1)` is the tutorials' `randn * 0.1`."""

    name = "normal"

    def __init__(self, std: float = 1.0, mean: float = 0.0) -> None:
        self.std, self.mean = float(std), float(mean)

    def __call__(self, shape, rng):
        return self.mean + self.std * rng.standard_normal(shape)


class StandardNormal(Normal):
    """N(0, 1): the tutorials' plain `randn`."""

    name = "standard_normal"

    def __init__(self) -> None:
        super().__init__(1.0, 0.0)

    def get_config(self) -> dict:
        return {"name": self.name}


class GlorotUniform(Initializer):
    """U(±sqrt(6 / (fan_in + fan_out))), Keras's default for Dense kernels."""

    name = "glorot_uniform"

    def __call__(self, shape, rng):
        fan_in, fan_out = _fans(shape)
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape)


class GlorotNormal(Initializer):
    """N(0, 2 / (fan_in + fan_out)) (not truncated)."""

    name = "glorot_normal"

    def __call__(self, shape, rng):
        fan_in, fan_out = _fans(shape)
        return math.sqrt(2.0 / (fan_in + fan_out)) * rng.standard_normal(shape)


class HeUniform(Initializer):
    """U(±sqrt(6 / fan_in)), for ReLU layers."""

    name = "he_uniform"

    def __call__(self, shape, rng):
        limit = math.sqrt(6.0 / _fans(shape)[0])
        return rng.uniform(-limit, limit, shape)


class HeNormal(Initializer):
    """N(0, 2 / fan_in) (not truncated), for ReLU layers."""

    name = "he_normal"

    def __call__(self, shape, rng):
        return math.sqrt(2.0 / _fans(shape)[0]) * rng.standard_normal(shape)


INITIALIZERS: dict[str, type[Initializer]] = {
    cls.name: cls
    for cls in (Zeros, Ones, Uniform, Normal, StandardNormal, GlorotUniform, GlorotNormal, HeUniform, HeNormal)
}
_ALIASES = {"randn": "standard_normal", "random_normal": "normal", "random_uniform": "uniform"}


def normal(std: float = 1.0, mean: float = 0.0) -> Normal:
    """Shortcut for `Normal(std, mean)`: `normal(0.1)` draws like `randn * 0.1`."""
    return Normal(std, mean)


def get(init: str | dict | Initializer) -> Initializer:
    """An Initializer from a name, a config dict ({"name": "normal", "std": 0.1}) or an instance."""
    return lookup("initializer", init, Initializer, INITIALIZERS, _ALIASES)
