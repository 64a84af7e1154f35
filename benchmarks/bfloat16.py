"""bfloat16 on the CPU: its accuracy cost.

    python benchmarks/bfloat16.py

The moons and digits tutorial networks (fastnn.examples) trained in float32 and with
precision="bfloat16": through oneDNN's or MKL's bf16 GEMM where the CPU has bf16 units, else
through the pure rounding path (the same arithmetic, slower). The speed against
`torch.autocast` is benchmarks/host.py's: PyTorch in child processes, since its OpenMP threads
beside fastnn's in one process doubled its MNIST step (2 030 ms against 1 196 in a child).
"""

from __future__ import annotations

import argparse
import time

import fastnn
from fastnn import examples
from fastnn.bench import cpu_name
from fastnn.kernels import bfloat16


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args()
    print(f"{time.strftime('%Y-%m-%d')}, {cpu_name()}, bf16 kernel: {bfloat16.describe()}")
    print("\n| network | test accuracy, float32 | bfloat16 | final training loss, float32 | bfloat16 |\n"
          "|---|---:|---:|---:|---:|")
    print("\n".join(accuracy(kernels=bfloat16.problem() is None)))
    print("\nspeed against torch.autocast: python benchmarks/host.py")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
