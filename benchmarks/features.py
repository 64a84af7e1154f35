"""What the training features cost on the moons network (2-25-50-50-25-1): Adam, AdamW and
RMSprop, with and without Dropout(0.2) after each hidden layer, and Adam with L2, clipping or
sample weights, at batch 1 (online), batch 32 and one full-batch step on 1 M rows. Plain Adam
runs compiled at small batches; the rest layer by layer.

    python benchmarks/features.py
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

import fastnn
from fastnn.layers import Dense, Dropout
from fastnn.training import train_step


def model(optimizer: Any, dropout: float, regularizer: Any = None) -> fastnn.Sequential:
    layers = []
    for units in (25, 50, 50, 25):
        layers += [Dense(units, "relu", kernel_regularizer=regularizer)] + ([Dropout(dropout)] if dropout else [])
    net = fastnn.Sequential([*layers, Dense(1, "sigmoid")], seed=0)
    net.compile(optimizer, "binary_crossentropy")
    return net


def samples_per_second(case: dict, x, y, batch_size: int) -> float:
    net = model(case["optimizer"], case["dropout"], case.get("regularizer"))
    weights = {"sample_weight": np.ones(x.shape[0])} if case.get("weighted") else {}
    net.fit(x[:256], y[:256], batch_size=batch_size, epochs=1, verbose=0)  # compile and warm up
    if net.backend.engines[0].supports(net.spec, batch_size):
        net.backend.engines[0].wait()
    start = time.perf_counter()
    net.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, **weights)
    return x.shape[0] / (time.perf_counter() - start)


def full_batch_ms(case: dict, x, y, reps: int = 3) -> float:
    net = model(case["optimizer"], case["dropout"], case.get("regularizer"))
    xb, yb = net.prepare(x, y)
    weights = net.backend.asarray(np.ones((x.shape[0], 1))) if case.get("weighted") else None
    net.optimizer.build(net.params)
    step = lambda: net.backend.engines[-1].step(net.spec, net.train_state(), xb, yb, weights)  # noqa: E731
    step() if weights is not None else train_step(net, xb, yb)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        step() if weights is not None else train_step(net, xb, yb)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


CASES = [
    {"label": "adam", "optimizer": "adam", "dropout": 0.0},
    {"label": "adam, dropout 0.2", "optimizer": "adam", "dropout": 0.2},
    {"label": "adamw", "optimizer": "adamw", "dropout": 0.0},
    {"label": "adamw, dropout 0.2", "optimizer": "adamw", "dropout": 0.2},
    {"label": "rmsprop", "optimizer": "rmsprop", "dropout": 0.0},
    {"label": "rmsprop, dropout 0.2", "optimizer": "rmsprop", "dropout": 0.2},
    {"label": "adam, L2 0.01 on every kernel", "optimizer": "adam", "dropout": 0.0, "regularizer": "l2"},
    {"label": "adam, clipnorm 1", "optimizer": {"name": "adam", "clipnorm": 1.0}, "dropout": 0.0},
    {"label": "adam, sample weights", "optimizer": "adam", "dropout": 0.0, "weighted": True},
]


def main() -> int:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1_000_000, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.float32)
    print("| configuration | batch 1, samples/s | batch 32, samples/s | 1 M rows, ms a step |")
    print("|---|---:|---:|---:|")
    for case in CASES:
        online = samples_per_second(case, x[:5_000], y[:5_000], 1)
        small = samples_per_second(case, x[:50_000], y[:50_000], 32)
        full = full_batch_ms(case, x, y)
        print(f"| {case['label']} | {online:,.0f} | {small:,.0f} | {full:,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
