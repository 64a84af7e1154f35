"""Data-parallel scaling on one machine: one optimizer step of moons (1 M rows) and MNIST
(65 536 rows), float32, SGD, timed as

  1 process, 2 BLAS threads  |  mpiexec -n 1, 1 thread  |  mpiexec -n 2, 1 thread per rank

with the all-reduce's share of the step (packing, the all-reduce, waiting for the slower rank).

    python benchmarks/distributed.py            # runs the three configurations, prints a table
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

NETWORKS = {"moons 2-25-50-50-25-1": ((2, 25, 50, 50, 25, 1), 1_000_000),
            "mnist 784-512-512-10": ((784, 512, 512, 10), 65_536)}


def measure(steps: int = 5) -> dict:
    """In one rank: ms per step of each network (median), and the all-reduce's ms per step."""
    import fastnn
    from fastnn import engines
    from fastnn.layers import Dense

    comm = fastnn.distributed.init() if fastnn.distributed.launched() else None
    rng, results = np.random.default_rng(0), {}
    for name, (widths, rows) in NETWORKS.items():
        x = rng.standard_normal((rows, widths[0]), dtype=np.float32)
        labels = rng.integers(0, max(widths[-1], 2), rows)
        y = labels.astype(np.float32) if widths[-1] == 1 else labels
        model = fastnn.Sequential([*(Dense(w, "relu") for w in widths[1:-1]),
                                   Dense(widths[-1], "sigmoid" if widths[-1] == 1 else "softmax")], seed=0)
        model.compile(fastnn.optimizers.SGD(0.01), "binary_crossentropy" if widths[-1] == 1 else "categorical_crossentropy")
        xt, yt = model.prepare(x, y)
        model.optimizer.build(model.params)
        spec, state = model.spec, model.train_state()
        engine = fastnn.distributed.engine_for(model.backend, False) or engines.select(model.backend.engines, spec, rows)
        engine.step(spec, state, xt, yt)  # warm-up: kernels, buffers
        times, reduce_start = [], comm.seconds if comm else 0.0
        for _ in range(steps):
            start = time.perf_counter()
            engine.step(spec, state, xt, yt)
            times.append((time.perf_counter() - start) * 1e3)
        reduce_ms = ((comm.seconds - reduce_start) / steps * 1e3) if comm else 0.0
        results[name] = {"step_ms": statistics.median(times), "allreduce_ms": reduce_ms, "engine": engine.name}
    results["online"] = online_sgd(comm)
    return results


def online_sgd(comm, rows: int = 200_000) -> dict:
    """Online SGD (batch 1) on 2-8-1 moons: samples per second over one epoch (after a first,
    compiling epoch) and the loss after it, per sync_every (averaging needs several ranks)."""
    import fastnn
    import fastnn.kernels
    from fastnn.layers import Dense

    x, y = fastnn.datasets.make_moons(rows, noise=0.2, seed=0)
    out = {}
    for every in ((100, 1000, 10_000) if comm else (None,)):
        model = fastnn.Sequential([Dense(8, "tanh", input_dim=2), Dense(1, "sigmoid")], seed=0)
        model.compile(fastnn.optimizers.SGD(0.01), "binary_crossentropy")
        fastnn.kernels.warmup(model=model, batch_sizes=(1,))  # the compiled epoch, before the clock
        start = time.perf_counter()
        history = model.fit(x, y, epochs=1, batch_size=1, verbose=0, sync_every=every)
        seconds = time.perf_counter() - start
        out[str(every)] = {"samples_per_s": rows / seconds, "loss": history.history["loss"][0]}
    return out


def run(command: list[str], threads: int) -> dict:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "NUMBA_NUM_THREADS": str(threads)}
    out = subprocess.run([*command, sys.executable, __file__, "--measure"], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    configs = {"1 process, 2 threads": ([], 2), "mpiexec -n 1": ([mpiexec, "-n", "1"], 1),
               "mpiexec -n 2": ([mpiexec, "-n", "2"], 1)}
    results = {label: run(command, threads) for label, (command, threads) in configs.items()}
    print(f"host: {platform.machine()}, {os.cpu_count()} CPUs; ms per step (median of 5), float32 SGD")
    print(f"{'network':<24}" + "".join(f"{label:>24}" for label in configs) + f"{'all-reduce, -n 2':>20}")
    for name in NETWORKS:
        cells = "".join(f"{results[label][name]['step_ms']:>24.1f}" for label in configs)
        share = results["mpiexec -n 2"][name]
        print(f"{name:<24}{cells}{share['allreduce_ms']:>12.1f} ms ({share['allreduce_ms'] / share['step_ms']:.0%})")
    print("online SGD, 2-8-1 moons, batch 1, 200 000 rows: M samples/s (loss after the epoch)")
    for label in configs:
        for every, r in results[label]["online"].items():
            how = "" if every == "None" else f", sync_every={every}"
            print(f"  {label}{how}: {r['samples_per_s'] / 1e6:.2f} ({r['loss']:.4f})")


if __name__ == "__main__":
    if "--measure" in sys.argv:
        result = measure()
        import fastnn

        if fastnn.distributed.is_root():
            print(json.dumps(result))
    else:
        main()
