"""What the training features cost on the moons network (2-25-50-50-25-1): Adam, AdamW and
RMSprop, with and without Dropout(0.2) after each hidden layer, at batch 1 (online), batch 32
and one full-batch step on 1 M rows. Adam without dropout runs compiled; the rest layer by layer.

    python benchmarks/features.py
"""

from __future__ import annotations

import time

import numpy as np

import fastnn
from fastnn.layers import Dense, Dropout
from fastnn.training import train_step


def model(optimizer: str, dropout: float) -> fastnn.Sequential:
    layers = []
    for units in (25, 50, 50, 25):
        layers += [Dense(units, "relu")] + ([Dropout(dropout)] if dropout else [])
    net = fastnn.Sequential([*layers, Dense(1, "sigmoid")], seed=0)
    net.compile(optimizer, "binary_crossentropy")
    return net


def samples_per_second(optimizer: str, dropout: float, x, y, batch_size: int) -> float:
    net = model(optimizer, dropout)
    net.fit(x[:256], y[:256], batch_size=batch_size, epochs=1, verbose=0)  # compile and warm up
    if net.backend.engines[0].supports(net.spec, batch_size):
        net.backend.engines[0].wait()
    start = time.perf_counter()
    net.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    return x.shape[0] / (time.perf_counter() - start)


def full_batch_ms(optimizer: str, dropout: float, x, y, reps: int = 3) -> float:
    net = model(optimizer, dropout)
    xb, yb = net.prepare(x, y)
    net.optimizer.build(net.params)
    train_step(net, xb, yb)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        train_step(net, xb, yb)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main() -> int:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1_000_000, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.float32)
    print("| optimizer | dropout | batch 1, samples/s | batch 32, samples/s | 1 M rows, ms a step |")
    print("|---|---:|---:|---:|---:|")
    for optimizer in ("adam", "adamw", "rmsprop"):
        for dropout in (0.0, 0.2):
            online = samples_per_second(optimizer, dropout, x[:5_000], y[:5_000], 1)
            small = samples_per_second(optimizer, dropout, x[:50_000], y[:50_000], 32)
            full = full_batch_ms(optimizer, dropout, x, y)
            print(f"| {optimizer} | {dropout} | {online:,.0f} | {small:,.0f} | {full:,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
