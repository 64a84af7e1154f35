"""bfloat16 on the CPU: its accuracy cost, and its speed against PyTorch's autocast.

    python benchmarks/bfloat16.py [--reps 5]

Accuracy: the moons and digits tutorial networks (fastnn.examples) trained in float32 and
with precision="bfloat16" — through MKL's bf16 GEMM where the CPU has bf16 units, else
through the pure rounding path (the same arithmetic, slower). Speed, only where the bf16
kernel runs: one full-batch SGD step of the benchmark networks (fastnn.bench), fastnn float32
and bf16 against PyTorch float32 and `torch.autocast("cpu", torch.bfloat16)`, the same
weights, alternating per repetition, median of the paired ratios.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fastnn
from fastnn import examples
from fastnn.bench import NETWORKS, cpu_name, fastnn_step, make_data, torch_step
from fastnn.kernels import bfloat16

SPEED_CASES = (("digits", 10_000), ("digits", 100_000), ("mnist", 65_536), ("moons", 1_000_000))


def accuracy(kernels: bool) -> list[str]:
    rows = []
    for name, run in (("moons", examples.moons), ("digits", examples.digits)):
        found = {}
        for precision in ("default", "bfloat16"):
            with fastnn.use("numpy", precision=precision, kernels=kernels or precision == "default"):
                result = run()
            found[precision] = result["metrics"]["accuracy"], result["history"].history["loss"][-1]
        (acc32, loss32), (acc16, loss16) = found["default"], found["bfloat16"]
        rows.append(f"| {name} | {acc32:.4f} | {acc16:.4f} | {loss32:.5f} | {loss16:.5f} |")
    return rows


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def speed(reps: int) -> list[str]:
    import torch

    rows = []
    for name, n in SPEED_CASES:
        net = NETWORKS[name]
        x, y, weights = make_data(net, n)
        steps = {"fastnn": fastnn_step("numpy", True)(net, x, y, weights),
                 "fastnn bf16": fastnn_step("numpy", True, precision="bfloat16")(net, x, y, weights),
                 "torch": torch_step("cpu")(net, x, y, weights)}
        torch_f32 = steps["torch"]

        def autocast():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                torch_f32()

        steps["torch bf16"] = autocast
        for fn in steps.values():
            fn()
            fn()
        times = {key: [] for key in steps}
        for _ in range(reps):
            for key, fn in steps.items():
                times[key].append(timed(fn))
        ratio = lambda a, b: float(np.median(np.array(times[a]) / np.array(times[b])))  # noqa: E731
        ms = {key: 1e3 * float(np.median(t)) for key, t in times.items()}
        rows.append(f"| {name} | {n:,} | {ms['fastnn']:.1f} | {ms['torch']:.1f} | {ratio('fastnn', 'torch'):.2f} | "
                    f"{ms['fastnn bf16']:.1f} | {ms['torch bf16']:.1f} | {ratio('fastnn bf16', 'torch bf16'):.2f} |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    why = bfloat16.problem()
    print(f"{time.strftime('%Y-%m-%d')}, {cpu_name()}, bf16 kernel: "
          f"{'MKL cblas_gemm_bf16bf16f32 on ' + ', '.join(sorted(bfloat16.cpu_flags())) if why is None else why}")
    print("\n| network | test accuracy, float32 | bfloat16 | final training loss, float32 | bfloat16 |\n"
          "|---|---:|---:|---:|---:|")
    print("\n".join(accuracy(kernels=why is None)))
    if why is not None:
        print("\nno speed table: the bf16 kernel does not run on this machine")
        return 0
    print("\n| network | rows | fastnn f32 ms | torch f32 ms | ratio | fastnn bf16 ms | torch autocast bf16 ms | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(speed(args.reps)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
