"""Peak memory (max RSS) of fit, evaluate and predict on 10 M rows of the moons network, each in
a fresh process. evaluate and predict run in batches of `INFERENCE_BATCH` rows by default, so
they should need no more than a fit at batch 65 536 on the same data.

    python benchmarks/memory.py [--rows 10000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r'''
import json, resource, sys
import numpy as np
import fastnn
from fastnn.layers import Dense

job, rows = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
x = rng.standard_normal((rows, 2), dtype=np.float32)
y = (x[:, 0] * x[:, 1] > 0).astype(np.float32)
model = fastnn.Sequential([Dense(25, "relu", input_dim=2), Dense(50, "relu"), Dense(50, "relu"), Dense(25, "relu"),
                           Dense(1, "sigmoid")], seed=0)
model.compile("sgd", "binary_crossentropy")
data_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if job == "fit":
    model.fit(x, y, epochs=1, batch_size=65_536, verbose=0)
elif job == "evaluate":
    model.evaluate(x, y)
else:
    model.predict(x)
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"data_mib": data_kib / 1024, "peak_mib": peak_kib / 1024}))
'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    rows = parser.parse_args().rows
    print(f"| job ({rows:,} rows x 2 features, float32) | peak RSS, MiB | of which data and setup, MiB |\n|---|---:|---:|")
    for job in ("fit", "evaluate", "predict"):
        done = subprocess.run([sys.executable, "-c", CHILD, job, str(rows)], capture_output=True, text=True, check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        label = "fit, batch 65 536, one epoch" if job == "fit" else f"{job}, default batches"
        print(f"| {label} | {r['peak_mib']:.0f} | {r['data_mib']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
