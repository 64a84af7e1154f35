"""fastnn on the "jax" backend: the jitted step engine against eager JAX and the NumPy pure path.

Same network, loss, Adam and starting weights; µs per optimizer step, median of `--repeats`
runs of `--steps` steps, the three interleaved in one process.

    python benchmarks/jax_backend.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np

import fastnn
from fastnn.layers import Dense

CASES = [((2, 8, 1), "tanh", 64), ((2, 8, 1), "tanh", 1024), ((64, 32, 10), "relu", 1024),
         ((784, 512, 512, 10), "relu", 256)]
PATHS = {"numpy pure": ("numpy", False), "jax eager": ("jax", False), "jax jit": ("jax", True)}


def stepper(backend: str, kernels: bool, widths, activation, x, y):
    binary = widths[-1] == 1
    with fastnn.use(backend, kernels=kernels):
        layers = [Dense(w, activation) for w in widths[1:-1]]
        model = fastnn.Sequential([*layers, Dense(widths[-1], "sigmoid" if binary else "softmax")], seed=0)
        model.compile(fastnn.optimizers.Adam(1e-3), "binary_crossentropy" if binary else "categorical_crossentropy",
                      metrics=[])
        xt, yt = model.prepare(x, y)
    model.optimizer.build(model.params)
    engine, state, spec = model.backend.engines[0], model.train_state(), model.spec
    return lambda: engine.step(spec, state, xt, yt)[0]


def per_step_us(step, steps: int) -> float:
    float(step())  # a device read: what was queued before the clock starts is done
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    float(loss)
    return (time.perf_counter() - start) / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0]}; µs per step")
    print(f"{'network':<18}{'batch':>6}" + "".join(f"{name:>13}" for name in PATHS))
    rng = np.random.default_rng(0)
    for widths, activation, batch in CASES:
        x = rng.standard_normal((batch, widths[0])).astype(np.float32)
        labels = rng.integers(0, max(widths[-1], 2), batch)
        y = labels.reshape(-1, 1).astype(np.float32) if widths[-1] == 1 else np.eye(widths[-1], dtype=np.float32)[labels]
        steps = {name: stepper(*how, widths, activation, x, y) for name, how in PATHS.items()}
        times = {name: [] for name in PATHS}
        for _ in range(args.repeats):
            for name, step in steps.items():
                times[name].append(per_step_us(step, args.steps))
        cells = "".join(f"{statistics.median(times[name]):>13.1f}" for name in PATHS)
        print(f"{'-'.join(map(str, widths)):<18}{batch:>6}{cells}")


if __name__ == "__main__":
    main()
