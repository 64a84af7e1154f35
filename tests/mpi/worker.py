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


def model(optimizer: str, hidden: int = 8, seed: int | None = 1):
    net = fastnn.Sequential([Dense(hidden, "tanh", input_dim=3, kernel_regularizer="l2"), Dense(1, "sigmoid")],
                            seed=seed)
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


def one_case(out: Path) -> None:
    """The equivalence scenario's Adam, batch 64, shuffled case, on the backend given."""
    result = train("adam", 64, True)
    if fastnn.distributed.is_root():
        (out / "one_case.json").write_text(json.dumps(result))


def train_on_batch(out: Path) -> None:
    """Unseeded models (different weights on each rank), each rank stepping on its half."""
    x, y = data()
    lo, hi = fastnn.distributed.active().share(len(x))
    net = model("adam", seed=None)
    initial = [w.tolist() for w in net.get_weights()]
    losses = [net.train_on_batch(x[lo:hi], y[lo:hi]) for _ in range(3)]
    weights = [w.tolist() for w in net.get_weights()]
    same = fastnn.distributed.active().gather(weights)
    if fastnn.distributed.is_root():
        result = {"initial": initial, "losses": losses, "weights": weights, "same_on_every_rank": same[0] == same[-1]}
        (out / "train_on_batch.json").write_text(json.dumps(result))


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


def nccl_on_numpy(out: Path) -> None:
    fastnn.distributed.init(allreduce="nccl")
    x, y = data()
    model("adam").fit(x, y, epochs=1, verbose=0)


def nccl_sum(out: Path) -> None:
    """CuPy arrays summed by NCCL: rank r holds (r + 1) * arange."""
    comm = fastnn.distributed.init(allreduce="nccl")
    backend = fastnn.backend()  # cupy, float64
    a = backend.xp.arange(10, dtype=backend.dtype) * (comm.rank + 1)
    summed = comm.sum([a, a[:3]], backend, scale=2.0)
    if fastnn.distributed.is_root():
        result = {"reducer": comm.reducer(backend).name, "sums": [fastnn.to_numpy(s).tolist() for s in summed]}
        (out / "nccl_sum.json").write_text(json.dumps(result))


def info(out: Path) -> None:
    """What the job's all-reduce is, for NumPy arrays, and what `fastnn info` says of MPI."""
    from fastnn import allreduce

    comm = fastnn.distributed.active()
    if fastnn.distributed.is_root():
        result = {"reducer": comm.reducer(fastnn.backend()).name, "describe": allreduce.describe(),
                  "local_rank": comm.local_rank, "libraries": allreduce._loaded_mpi_libraries()}
        (out / "info.json").write_text(json.dumps(result))
    else:
        comm.reducer(fastnn.backend())


def threads(out: Path) -> None:
    """How many threads this rank's BLAS libraries and Numba run, after init()."""
    import numba
    from threadpoolctl import threadpool_info

    result = {"blas": [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"],
              "numba": numba.get_num_threads(), "numba_max": numba.config.NUMBA_NUM_THREADS,
              "usable_cores": fastnn.threads.usable_cores()}
    (out / f"threads_{fastnn.distributed.rank()}.json").write_text(json.dumps(result))


def graph(out: Path) -> None:
    """A two-input fastnn.Model with BatchNormalization, data-parallel: every rank writes its own
    weights, moving statistics and losses."""
    from fastnn.layers import Add, BatchNormalization, Concatenate, Embedding, Flatten

    x, y = data()
    ids = (x[:, 2] > 0).astype(np.int64) + 2 * (x[:, 0] > 0)
    num, cat = fastnn.Input(shape=(3,)), fastnn.Input(shape=(), dtype="int64")
    h = BatchNormalization(momentum=0.8)(Concatenate()([Dense(8, "tanh")(num), Flatten()(Embedding(4, 2)(cat))]))
    net = fastnn.Model([num, cat], Dense(1, "sigmoid")(Add()([h, Dense(10, "tanh")(h)])), seed=1)
    net.compile(fastnn.optimizers.Adam(0.01), "binary_crossentropy")
    history = net.fit([x, ids], y, epochs=5, batch_size=64, verbose=0)
    result = {"loss": history.history["loss"], "weights": [w.tolist() for w in net.get_weights()]}
    (out / f"graph_{fastnn.distributed.rank()}.json").write_text(json.dumps(result))


def different_models(out: Path) -> None:
    x, y = data()
    net = model("adam", hidden=8 + fastnn.distributed.rank())
    net.fit(x, y, epochs=1, verbose=0)


if __name__ == "__main__":
    scenario, folder, backend = sys.argv[1], Path(sys.argv[2]), (sys.argv[3:] or ["numpy"])[0]
    fastnn.distributed.init()  # first: it gives each rank its GPU, which fastnn.use("cupy") then takes
    with fastnn.use(backend, dtype="float64"):
        globals()[scenario](folder)
