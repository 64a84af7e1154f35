"""Run by tests/test_distributed.py under `mpiexec -n N python tests/mpi/worker.py SCENARIO OUT`:
each scenario trains the way a user's script would, and rank 0 writes what the test checks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import fastnn
from fastnn.layers import Dense

CASES = [(opt, batch, shuffle) for opt in ("momentum", "adam") for batch in (None, 64) for shuffle in (True, False)]


def data(n=300):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 3))
    return x, (x[:, 0] * x[:, 1] > 0).astype(np.float64)


def model(optimizer: str, hidden: int = 8):
    net = fastnn.Sequential([Dense(hidden, "tanh", input_dim=3, kernel_regularizer="l2"), Dense(1, "sigmoid")],
                            seed=1)
    opts = {"momentum": lambda: fastnn.optimizers.SGD(0.1, momentum=0.9), "sgd": lambda: fastnn.optimizers.SGD(0.1),
            "adam": lambda: fastnn.optimizers.Adam(0.01)}
    opt = opts[optimizer]()
    net.compile(opt, "binary_crossentropy", metrics=["accuracy"])
    return net


def train(optimizer: str, batch_size, shuffle: bool, **fit):
    x, y = data()
    net = model(optimizer)
    history = net.fit(x, y, epochs=3, batch_size=batch_size, shuffle=shuffle, verbose=0, validation_split=0.2, **fit)
    return {"history": history.history, "weights": [w.tolist() for w in net.get_weights()]}


def equivalence(out: Path) -> None:
    results = {f"{o}-{b}-{s}": train(o, b, s) for o, b, s in CASES}
    if fastnn.distributed.is_root():
        (out / "equivalence.json").write_text(json.dumps(results))


def sharded(out: Path) -> None:
    x, y = data()
    lo, hi = fastnn.distributed.active().share(len(x))
    net = model("adam")
    history = net.fit(x[lo:hi], y[lo:hi], epochs=3, batch_size=None, shuffle=False, verbose=0, distributed="sharded")
    logs = net.evaluate(x[lo:hi], y[lo:hi], distributed="sharded")
    if fastnn.distributed.is_root():
        result = {"history": history.history, "weights": [w.tolist() for w in net.get_weights()], "evaluate": logs}
        (out / "sharded.json").write_text(json.dumps(result))


def averaging(out: Path) -> None:
    x, y = data(256)
    result = {}
    for every in (1, 4):
        net = model("sgd")
        history = net.fit(x, y, epochs=2, batch_size=16, shuffle=every > 1, verbose=0, sync_every=every)
        weights = [w.tolist() for w in net.get_weights()]
        same = fastnn.distributed.active().gather(weights)
        result[every] = {"history": history.history, "weights": weights, "same_on_every_rank": same[0] == same[-1]}
    if fastnn.distributed.is_root():
        (out / "averaging.json").write_text(json.dumps(result))


def side_effects(out: Path) -> None:
    x, y = data()
    net = model("adam")
    checkpoint = fastnn.ModelCheckpoint(str(out / "epoch{epoch}.npz"), monitor="loss")
    net.fit(x, y, epochs=2, batch_size=64, verbose=1, callbacks=[checkpoint])
    net.save(out / "final.npz")


def bad_input_on_one_rank(out: Path) -> None:
    x, y = data()
    if fastnn.distributed.rank() == 1:
        y = y.copy()
        y[5] = np.nan
    model("adam").fit(x, y, epochs=2, verbose=0)


def raises_outside_fit(out: Path) -> None:
    if fastnn.distributed.rank() == 1:
        raise RuntimeError("this rank's data file is missing")
    x, y = data()
    model("adam").fit(x, y, epochs=2, verbose=0)


def different_models(out: Path) -> None:
    x, y = data()
    net = model("adam", hidden=8 + fastnn.distributed.rank())
    net.fit(x, y, epochs=1, verbose=0)


if __name__ == "__main__":
    scenario, folder = sys.argv[1], Path(sys.argv[2])
    with fastnn.use("numpy", dtype="float64"):
        fastnn.distributed.init()
        globals()[scenario](folder)
