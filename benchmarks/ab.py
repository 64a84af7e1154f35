"""Time the same training steps on two checkouts of fastnn, alternating, in one run.

    python benchmarks/ab.py BEFORE_DIR AFTER_DIR [--rounds 5]

Each round starts one child process per checkout, in alternating order, and each child times
moons 1M and MNIST 65 536 full-batch steps, the 2-3-1 network's online SGD epoch and its
batch-4 step. A refactor that should not change speed is judged by the paired ratios: the
machines drift up to 2x between hours, never within a round.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r'''
import json, sys, time
import numpy as np
import fastnn
from fastnn.bench import NETWORKS, make_data, fastnn_model

def step_of(model, x, y):
    if hasattr(model, "_train_batch"):  # before the training seam
        xb, yb = model._prepare(x, y)
        model.optimizer.build(model.params)
        return lambda: model._train_batch(xb, yb)[0]
    from fastnn import training
    xb, yb = model.prepare(x, y)
    return lambda: training.train_step(model, xb, yb)[0]

def median_time(fn, reps, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter(); fn(); times.append(time.perf_counter() - start)
    return float(np.median(times))

out = {}
for name, n, reps in (("moons", 1_000_000, 5), ("mnist", 65_536, 3)):
    net = NETWORKS[name]
    x, y, w = make_data(net, n)
    out[f"{name} {n} step ms"] = 1e3 * median_time(step_of(fastnn_model(net, w), x, y), reps)
    del x, y
net = NETWORKS["tiny"]
x, y, w = make_data(net, 200_000)
model = fastnn_model(net, w)
model.fit(x[:100], y[:100], batch_size=1, epochs=1, verbose=0)
epoch = median_time(lambda: model.fit(x, y, batch_size=1, epochs=1, verbose=0), 5)
out["tiny online M samples/s"] = 200_000 / epoch / 1e6
step = step_of(fastnn_model(net, w), x[:4], y[:4])
out["tiny batch-4 step us"] = 1e6 * median_time(lambda: [step() for _ in range(1000)], 7) / 1000
print(json.dumps(out))
'''


def import_root(checkout: Path) -> Path:
    """A folder whose `fastnn` package is the checkout's src/fastnn with kernels/ inside it, as
    the installed package has it (so two checkouts can be imported side by side)."""
    root = Path(tempfile.mkdtemp(prefix="fastnn-ab-"))
    package = root / "fastnn"
    package.mkdir()
    for entry in (checkout / "src" / "fastnn").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry.resolve())
    (package / "kernels").symlink_to((checkout / "kernels").resolve())
    return root


def run_child(root: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    roots = {"before": import_root(args.before), "after": import_root(args.after)}
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for r in range(args.rounds):
        order = ("before", "after") if r % 2 == 0 else ("after", "before")
        for label in order:
            runs[label].append(run_child(roots[label]))
        print(f"round {r + 1}: " + json.dumps({k: runs[k][-1] for k in runs}), flush=True)
    import numpy as np

    print(f"\n{time.strftime('%Y-%m-%d')}, median of {args.rounds} rounds, paired after/before ratios")
    print("| measure | before | after | after / before (median of pairs) |\n|---|---:|---:|---:|")
    for key in runs["before"][0]:
        b = [run[key] for run in runs["before"]]
        a = [run[key] for run in runs["after"]]
        ratio = float(np.median([x / y for x, y in zip(a, b)]))
        print(f"| {key} | {np.median(b):.4g} | {np.median(a):.4g} | {ratio:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
