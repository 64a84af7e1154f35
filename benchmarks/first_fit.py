"""Seconds from `fit` to the end of its first epoch, and to the end of a short training, with
numba's disk cache empty (cold) and filled (warm), each in a fresh process.

    python benchmarks/first_fit.py

Cases: the moons tutorial network (2-25-50-50-25-1, Adam) at batch 32 on the tutorial's 900
training rows, and the 2-3-1 network at batch 1 on 10 000 rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

CHILD = r'''
import json, sys, time
import numpy as np
import fastnn
from fastnn.layers import Dense

case, epochs = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
if case == "moons":
    x = rng.standard_normal((900, 2)); y = (x[:, 0] * x[:, 1] > 0).astype(float)
    layers, optimizer, batch = [Dense(25, "relu"), Dense(50, "relu"), Dense(50, "relu"), Dense(25, "relu"),
                                Dense(1, "sigmoid")], "adam", 32
else:
    x = rng.standard_normal((10_000, 2)); y = (x[:, 0] > 0).astype(float)
    layers, optimizer, batch = [Dense(3, "relu"), Dense(1, "sigmoid")], {"name": "sgd", "lr": 0.1}, 1
start = time.perf_counter()
model = fastnn.Sequential(layers, seed=0)
model.compile(optimizer, "binary_crossentropy")
ends = []
model.fit(x, y, epochs=epochs, batch_size=batch, verbose=0,
          callbacks=[fastnn.LambdaCallback(on_epoch_end=lambda e, logs: ends.append(time.perf_counter() - start))])
print(json.dumps({"first_epoch_s": ends[0], "all_s": ends[-1], "epochs": epochs}))
'''


def run(case: str, epochs: int, cache: str) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
    done = subprocess.run([sys.executable, "-c", CHILD, case, str(epochs)], env=env, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    print("| case | cache | first epoch ends, s | all epochs end, s |\n|---|---|---:|---:|")
    for case, epochs in (("moons", 50), ("tiny", 5)):
        with tempfile.TemporaryDirectory() as cache:
            for label in ("cold", "warm", "warm"):
                r = run(case, epochs, cache)
                print(f"| {case}, {epochs} epochs | {label} | {r['first_epoch_s']:.2f} | {r['all_s']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
