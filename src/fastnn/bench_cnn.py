"""`fastnn bench --networks lenet`: one SGD training step of a LeNet-5-shaped CNN (28x28x1 ->
conv 6@5x5 -> max pool 2 -> conv 16@5x5 -> max pool 2 -> 120 -> 84 -> 10, ReLU, softmax
cross-entropy, float32) from the same weights and data: fastnn fused (Numba im2col/col2im, the
fused Dense kernels, BLAS), fastnn pure Array API, and PyTorch eager on the CPU
(`torch.nn.functional.conv2d`, oneDNN). Repetitions alternate between the three in one
process, and the fused / PyTorch ratio is the median of the per-repetition ratios."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

import fastnn
from fastnn.layers import Conv2D, Dense, Flatten, MaxPooling2D
from fastnn.training import train_step

LR = 0.01
BATCHES = (256, 4096)


def lenet() -> list[Any]:
    return [Conv2D(6, 5, activation="relu"), MaxPooling2D(2), Conv2D(16, 5, activation="relu"), MaxPooling2D(2),
            Flatten(), Dense(120, "relu"), Dense(84, "relu"), Dense(10, "softmax")]


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Images (n, 28, 28, 1), one-hot targets and the initial weights, float32."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 28, 28, 1)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
    model = fastnn.Sequential(lenet(), input_shape=(28, 28, 1), seed=seed)
    return x, y, model.get_weights()


def fastnn_step(x: np.ndarray, y: np.ndarray, weights: list[np.ndarray], kernels: bool) -> Callable[[], float]:
    with fastnn.use("numpy", kernels=kernels):
        model = fastnn.Sequential(lenet(), input_shape=(28, 28, 1), seed=0)
        model.compile(fastnn.optimizers.SGD(LR), "categorical_crossentropy", metrics=[])
        model.set_weights(weights)
        xb, yb = model.prepare(x, y)
        model.optimizer.build(model.params)
    return lambda: float(train_step(model, xb, yb)[0])


def torch_step(x: np.ndarray, y: np.ndarray, weights: list[np.ndarray]) -> Callable[[], float]:
    """The same network in PyTorch, NCHW as it prefers; flattened channels-last as fastnn is."""
    import torch
    import torch.nn.functional as F

    params = [torch.tensor(w.transpose(3, 2, 0, 1).copy() if w.ndim == 4 else w.T.copy() if w.ndim == 2 else w,
                           requires_grad=True) for w in weights]
    k1, b1, k2, b2, W1, c1, W2, c2, W3, c3 = params
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    labels = torch.from_numpy(y.argmax(axis=1))
    optimizer = torch.optim.SGD(params, lr=LR)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        h = F.max_pool2d(F.relu(F.conv2d(xt, k1, b1)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, k2, b2)), 2)
        h = h.permute(0, 2, 3, 1).flatten(1)
        h = F.relu(F.linear(F.relu(F.linear(h, W1, c1)), W2, c2))
        loss = F.cross_entropy(F.linear(h, W3, c3), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def time_batch(n: int, reps: int, torch: bool = True) -> dict[str, Any]:
    """Median ms per step of each implementation at batch n, and the paired fused / torch ratio."""
    x, y, weights = make_data(n)
    steps = {"fastnn-fused": fastnn_step(x, y, weights, True), "fastnn-pure": fastnn_step(x, y, weights, False)}
    if torch:
        steps["torch-eager"] = torch_step(x, y, weights)
    first = {name: step() for name, step in steps.items()}  # also warms up: compiles, first touches
    reference = first["fastnn-pure"]
    for name, loss in first.items():
        if abs(loss - reference) > 1e-3 * max(1.0, abs(reference)):
            raise RuntimeError(f"lenet n={n}: {name} computed loss {loss:.6g}, the pure path {reference:.6g}; "
                               "refusing to time it")
    for step in steps.values():
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for rep in range(reps):
        for name in list(steps) if rep % 2 == 0 else list(reversed(steps)):
            start = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - start)
    case = {"network": "lenet", "batch": n, "first_loss": first,
            "ms": {name: float(np.median(t)) * 1e3 for name, t in times.items()}}
    if torch:
        case["fused_over_torch"] = float(np.median(np.array(times["fastnn-fused"]) / np.array(times["torch-eager"])))
    return case


def markdown(cases: list[dict[str, Any]]) -> str:
    names = list(cases[0]["ms"])
    lines = ["| LeNet-5 step | batch | " + " | ".join(f"{n} ms" for n in names) + " | fused / torch |",
             "|---|---:|" + "---:|" * len(names) + "---:|"]
    for case in cases:
        ratio = f"{case['fused_over_torch']:.2f}x" if "fused_over_torch" in case else "-"
        lines.append(f"| lenet | {case['batch']} | " + " | ".join(f"{case['ms'][n]:.1f}" for n in names)
                     + f" | {ratio} |")
    return "\n".join(lines)


def run(reps: int, torch: bool, quick: bool = False) -> list[dict[str, Any]]:
    return [time_batch(n, reps, torch) for n in ((64,) if quick else BATCHES)]
