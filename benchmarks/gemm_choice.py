"""OpenBLAS against MKL, per product and inside the fused step (docs/kernels.md#gemm-choice).

First what a switch between the two libraries costs; then for each network at its largest
benchmark batch: every product of the step at the row-block
shape the fused step multiplies (and at the full batch, what the bound multiplies), best of 5
per library; then the fused step with gemm="openblas", "mkl" and "auto", interleaved, median of
`--rounds`, and what the chooser kept. Needs MKL: pip install "fastnn[mkl]".

    python benchmarks/gemm_choice.py [--networks moons,digits,mnist] [--rounds 7] [--with-torch]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fastnn
from fastnn import bench
from fastnn.kernels import gemm
from fastnn.kernels.cpu_ops import NumbaOps
from fastnn.training import train_step


def products_table(net_name: str, rows: int) -> None:
    net = bench.NETWORKS[net_name]
    x, _, weights = bench.make_data(net, rows)
    libraries = gemm.libraries()[0]
    print(f"\n{net_name}, {rows:,} rows: ms per product, best of 5")
    print("| product | " + " | ".join(libraries) + " | faster |")
    print("|---|" + "---:|" * (len(libraries) + 1))
    for a, b, out in bench.step_products(net, x, weights):
        ms = {name: bench.best_seconds(lambda lib=lib: lib.matmul(a, b, out), reps=5) * 1e3
              for name, lib in libraries.items()}
        print(f"| {gemm.describe(a, b)} | " + " | ".join(f"{v:.2f}" for v in ms.values())
              + f" | {min(ms, key=ms.get)} |")


def switch_table() -> None:
    """What a switch between libraries costs: the same product by each library alone, then by
    the two alternately, ms per call."""
    usable = gemm.libraries()[0]
    openblas, mkl = usable["openblas"], usable["mkl"]
    rng = np.random.default_rng(0)
    print("\nswitching: ms per call, 20 rounds")
    for n, k, m in ((16384, 25, 50), (16384, 512, 512)):
        a, b = rng.random((n, k), dtype=np.float32), rng.random((k, m), dtype=np.float32)
        out = np.empty((n, m), np.float32)

        def per_call(order, rounds=20):
            for library in order:
                library.matmul(a, b, out)
            start = time.perf_counter()
            for _ in range(rounds):
                for library in order:
                    library.matmul(a, b, out)
            return (time.perf_counter() - start) / rounds / len(order) * 1e3

        alone_o, alone_m, mixed = per_call([openblas]), per_call([mkl]), per_call([openblas, mkl])
        print(f"  ({n}×{k})·({k}×{m}): openblas {alone_o:.3f}, mkl {alone_m:.3f}, alternating {mixed:.3f}"
              f" -> {mixed - (alone_o + alone_m) / 2:.3f} ms more per call")


def step_table(net_name: str, rows: int, rounds: int) -> None:
    net = bench.NETWORKS[net_name]
    x, y, weights = bench.make_data(net, rows)
    steps = {}
    for mode in ("openblas", "mkl", "auto"):
        with fastnn.use("numpy", gemm=mode):
            model = bench.fastnn_model(net, weights)
            xb, yb = model.prepare(x, y)
            model.optimizer.build(model.params)
        steps[mode] = (lambda m=model, xb=xb, yb=yb: train_step(m, xb, yb))
        for _ in range(3):  # warm up; "auto" chooses during these steps
            steps[mode]()
    times = {mode: [] for mode in steps}
    for r in range(rounds):
        for mode in (list(steps) if r % 2 == 0 else list(reversed(steps))):
            start = time.perf_counter()
            steps[mode]()
            times[mode].append(time.perf_counter() - start)
    base = np.array(times["openblas"])
    print(f"\n{net_name}, {rows:,} rows, fused step (rows in blocks of {NumbaOps.block_rows:,}), median of {rounds}:")
    for mode, t in times.items():
        ratio = np.median(np.array(t) / base)
        print(f"  gemm={mode:<9} {np.median(t) * 1e3:8.1f} ms   paired ratio to openblas {ratio:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", default="moons,digits,mnist")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--with-torch", action="store_true", help="import PyTorch first (its OpenMP beside MKL's)")
    args = parser.parse_args()
    if args.with_torch:
        import torch

        torch.get_num_threads()
    if "mkl" not in gemm.libraries()[0]:
        raise SystemExit(f"MKL is not usable here: {gemm.libraries()[1]['mkl']}")
    info = bench.machine_info()
    print(f"{info['processor']}, {info['cores']} cores, {info['date']}; float32 peak "
          f"{info['float32_peak_gflops']} GFLOP/s; {gemm.libraries()[0]['mkl'].version}"
          + ("; PyTorch imported" if args.with_torch else ""))
    switch_table()
    for name in args.networks.split(","):
        net = bench.NETWORKS[name]
        for rows in sorted({min(NumbaOps.block_rows, net.max_batch), net.max_batch}):
            products_table(name, rows)
        step_table(name, net.max_batch, args.rounds)
    print("\nchooser kept:", gemm.chooser().choices())


if __name__ == "__main__":
    main()
