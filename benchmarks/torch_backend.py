"""fastnn on the "torch" backend against torch.nn + torch.optim on the same tensors.

Both train the same network with the same loss and optimizer from the same weights, one step
per batch, on the device given (default cpu). Printed: µs per step, median of `--repeats`
timed runs of `--steps` steps each, and the ratio measured side by side in one process.

    python benchmarks/torch_backend.py                  # moons 2-8-1 and digits 64-32-10, CPU
    python benchmarks/torch_backend.py --device cuda
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

import fastnn
from fastnn.bench import Network, torch_model
from fastnn.layers import Dense

NETWORKS = {  # name: (network, batch sizes); max_batch is the harness's and unused here
    "moons 2-8-1": (Network((2, 8, 1), ("tanh", "sigmoid"), "binary_crossentropy", 1024), (64, 1024)),
    "digits 64-32-10": (Network((64, 32, 10), ("relu", "softmax"), "categorical_crossentropy", 1024), (64, 1024)),
    "mnist 784-512-512-10": (Network((784, 512, 512, 10), ("relu", "relu", "softmax"), "categorical_crossentropy",
                                     256), (256,)),
}


def data(net: Network, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal((n, net.widths[0])).astype(np.float32)
    classes = max(net.widths[-1], 2)
    labels = rng.integers(0, classes, n)
    y = labels.reshape(-1, 1).astype(np.float32) if net.widths[-1] == 1 else np.eye(classes, dtype=np.float32)[labels]
    return x, y


def fastnn_step(net: Network, x, y, device):
    with fastnn.use("torch", device=device):
        layers = [Dense(w, a) for w, a in zip(net.widths[1:], net.activations)]
        model = fastnn.Sequential(layers, seed=0)
        model.compile(fastnn.optimizers.Adam(1e-3), net.loss, metrics=[])  # torch.nn computes none either
        xt, yt = model.prepare(x, y)
    model.optimizer.build(model.params)
    weights = [w.copy() for w in model.get_weights()]
    engine, state, spec = model.backend.engines[-1], model.train_state(), model.spec
    return (lambda: engine.step(spec, state, xt, yt)), weights


def torch_step(net: Network, x, y, device, weights):
    """torch.nn + torch.optim.Adam from the same weights (bench.torch_model copies them)."""
    module, loss_fn = torch_model(net, weights)
    module = module.to(device)
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    xt = torch.from_numpy(x).to(device)
    yt = torch.from_numpy(y if net.widths[-1] == 1 else y.argmax(1)).to(device)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(module(xt), yt)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def per_step_us(step, steps: int, device: str) -> float:
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return (time.perf_counter() - start) / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"host: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {args.device}")
    print(f"{'network':<22}{'batch':>7}{'fastnn µs':>12}{'torch.nn µs':>13}{'ratio':>8}")
    rng = np.random.default_rng(0)
    for name, (net, batches) in NETWORKS.items():
        for batch in batches:
            x, y = data(net, batch, rng)
            ours, weights = fastnn_step(net, x, y, args.device)
            theirs = torch_step(net, x, y, args.device, weights)
            times = {"fastnn": [], "torch": []}
            for _ in range(args.repeats):  # alternate, so both see the same machine
                times["fastnn"].append(per_step_us(ours, args.steps, args.device))
                times["torch"].append(per_step_us(theirs, args.steps, args.device))
            a, b = statistics.median(times["fastnn"]), statistics.median(times["torch"])
            print(f"{name:<22}{batch:>7}{a:>12.1f}{b:>13.1f}{a / b:>8.2f}")


if __name__ == "__main__":
    main()
