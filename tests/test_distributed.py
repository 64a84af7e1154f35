"""Data-parallel training under `mpiexec -n 2` (and -n 1): the same numbers as one process,
rank 0's side effects only, and every rank ending with a clear error when one fails."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fastnn

pytest.importorskip("mpi4py", reason='fastnn.distributed needs mpi4py: pip install "fastnn[mpi]"')
MPIEXEC = shutil.which("mpiexec") or str(Path(sys.executable).parent / "mpiexec")
if not Path(MPIEXEC).exists():
    pytest.skip("no mpiexec on PATH", allow_module_level=True)
sys.path.insert(0, str(Path(__file__).parent / "mpi"))
import worker  # noqa: E402

WORKER = Path(__file__).parent / "mpi" / "worker.py"
THREAD_VARIABLES = fastnn.threads.THREAD_VARIABLES


def launch(scenario: str, out: Path, ranks: int = 2, timeout: float = 120,
           backend: str = "numpy", threads: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`threads`: the thread variables the ranks see (default one BLAS thread each)."""
    env = {key: value for key, value in os.environ.items() if key not in THREAD_VARIABLES}
    env.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"} if threads is None else threads)
    env["PYTHONWARNINGS"] = "error"
    return subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, str(WORKER), scenario, str(out), backend],
                          capture_output=True, text=True, timeout=timeout, env=env)


def single_process(optimizer, batch_size, shuffle):
    with fastnn.use("numpy", dtype="float64"):
        return worker.train(optimizer, batch_size, shuffle)


@pytest.mark.parametrize("ranks", [2, 1])
def test_data_parallel_fit_equals_one_process(tmp_path, ranks):
    run = launch("equivalence", tmp_path, ranks)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((tmp_path / "equivalence.json").read_text())
    for case in worker.CASES:
        got, expected = results["-".join(map(str, case))], single_process(*case)
        for key, values in expected["history"].items():  # loss, accuracy, val_loss, val_accuracy per epoch
            np.testing.assert_allclose(got["history"][key], values, rtol=1e-10, err_msg=f"{case} {key}")
        for w, e in zip(got["weights"], expected["weights"]):
            np.testing.assert_allclose(w, e, rtol=1e-10, atol=1e-12, err_msg=str(case))


@pytest.mark.parametrize("backend", ["array_api_strict", "torch", "jax", "cupy"])
def test_data_parallel_fit_equals_one_process_on_other_backends(tmp_path, backend):
    """The gradients are packed and summed as arrays of the model's backend, whichever it is."""
    if backend not in fastnn.available_backends():
        pytest.skip(f"{backend} is not installed")
    run = launch("one_case", tmp_path, backend=backend, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads((tmp_path / "one_case.json").read_text())
    with fastnn.use(backend, dtype="float64"):
        expected = worker.train("adam", 64, True)
    for key, values in expected["history"].items():
        np.testing.assert_allclose(got["history"][key], values, rtol=1e-10, err_msg=key)
    for w, e in zip(got["weights"], expected["weights"]):
        np.testing.assert_allclose(w, e, rtol=1e-10, atol=1e-12)


def test_train_on_batch_starts_every_rank_from_rank_0s_weights(tmp_path):
    """Unseeded models differ between ranks; the first data-parallel step takes rank 0's, so
    three steps on the two halves are three one-process steps on the whole batch."""
    run = launch("train_on_batch", tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads((tmp_path / "train_on_batch.json").read_text())
    assert got["same_on_every_rank"]
    with fastnn.use("numpy", dtype="float64"):
        x, y = worker.data()
        net = worker.model("adam")
        net.set_weights(got["initial"])
        losses = [net.train_on_batch(x, y) for _ in range(3)]
    np.testing.assert_allclose(got["losses"], losses, rtol=1e-10)
    for w, e in zip(got["weights"], net.get_weights()):
        np.testing.assert_allclose(w, e, rtol=1e-10, atol=1e-12)


def test_sharded_full_batch_equals_one_process_full_batch(tmp_path):
    run = launch("sharded", tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads((tmp_path / "sharded.json").read_text())
    with fastnn.use("numpy", dtype="float64"):
        x, y = worker.data()
        net = worker.model("adam")
        history = net.fit(x, y, epochs=3, batch_size=None, shuffle=False, verbose=0).history
        logs = net.evaluate(x, y)
    np.testing.assert_allclose(got["history"]["loss"], history["loss"], rtol=1e-10)
    for w, e in zip(got["weights"], net.get_weights()):
        np.testing.assert_allclose(w, e, rtol=1e-10, atol=1e-12)
    assert got["evaluate"] == pytest.approx(logs, rel=1e-10)


def test_model_averaging_every_step_is_sgd_on_both_halves_and_keeps_ranks_equal(tmp_path):
    """SGD from the same weights, one step on each half, then the mean: one step on both halves
    together. So sync_every=1 with batch 16 per rank is one process's batch 32 made of rank 0's
    and rank 1's batches side by side."""
    run = launch("averaging", tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads((tmp_path / "averaging.json").read_text())
    with fastnn.use("numpy", dtype="float64"):
        x, y = worker.data(256)
        order = np.concatenate([np.r_[t * 16:(t + 1) * 16, 128 + t * 16:128 + (t + 1) * 16] for t in range(8)])
        net = worker.model("sgd")
        net.fit(x[order], y[order], epochs=2, batch_size=32, shuffle=False, verbose=0)
    for w, e in zip(got["1"]["weights"], net.get_weights()):
        np.testing.assert_allclose(w, e, rtol=1e-10, atol=1e-12)
    assert got["1"]["same_on_every_rank"] and got["4"]["same_on_every_rank"]
    assert got["4"]["history"]["loss"][1] < got["4"]["history"]["loss"][0]


def test_a_graph_with_batch_normalization_trains_data_parallel_and_its_ranks_stay_equal(tmp_path):
    """Each rank normalizes with its own rows' statistics (as PyTorch's DDP without SyncBatchNorm);
    the moving statistics are averaged in the gradients' all-reduce, so every rank keeps the
    same model."""
    run = launch("graph", tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"graph_{r}.json").read_text()) for r in (0, 1)]
    for a, b in zip(ranks[0]["weights"], ranks[1]["weights"]):  # moving mean and variance included
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert ranks[0]["loss"] == ranks[1]["loss"] and ranks[0]["loss"][-1] < ranks[0]["loss"][0]


def test_only_rank_0_writes_files_and_shows_progress(tmp_path):
    run = launch("side_effects", tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch1.npz", "epoch2.npz", "final.npz"]
    # off a terminal fit prints plain lines: the last epoch's once, by rank 0, not once per rank
    assert run.stdout.count("epoch 2/2 - ") == 1
    assert fastnn.load(tmp_path / "final.npz").optimizer.iterations == 2 * 5  # 300 rows in batches of 64


@pytest.mark.parametrize("scenario,message", [
    ("bad_input_on_one_rank", r"rank 1 of 2 failed in fit: ValueError: y contains 1 NaN or Inf value"),
    ("different_models", r"ranks disagree on the model: rank 0 has .*\"units\": 8.* rank 1 has .*\"units\": 9"),
    ("raises_outside_fit", r"rank 1 of 2 failed \(RuntimeError: this rank's data file is missing\); aborting"),
    ("nccl_on_numpy", r"rank 0 of 2 failed in choosing the all-reduce: BackendUnavailableError: allreduce='nccl' "
                      r"needs the cupy backend, not 'numpy'"),
])
def test_a_failing_rank_ends_every_rank_within_seconds_with_a_clear_error(tmp_path, scenario, message):
    start = time.perf_counter()
    run = launch(scenario, tmp_path, timeout=60)
    assert run.returncode != 0
    assert time.perf_counter() - start < 30
    assert re.search(message, run.stderr), run.stderr[-3000:]


@pytest.mark.parametrize("ranks", [2, 1])
def test_ranks_sharing_a_host_split_its_cores_among_their_libraries(tmp_path, ranks):
    """Left to themselves, every rank's OpenBLAS and Numba take every core: two ranks on two
    cores ran the Quickstart 52x slower than one process. init() gives each its share."""
    run = launch("threads", tmp_path, ranks, threads={})
    assert run.returncode == 0, run.stderr[-3000:]
    cores = len(fastnn.threads.cores())
    for rank in range(ranks):
        got = json.loads((tmp_path / f"threads_{rank}.json").read_text())
        share = max(1, cores // ranks)
        assert got["numba"] == min(share, got["numba_max"]) and got["usable_cores"] == share
        assert got["blas"] and all(n == share for n in got["blas"]), got


def test_thread_variables_the_user_set_win(tmp_path):
    run = launch("threads", tmp_path, 2, threads={"OPENBLAS_NUM_THREADS": "2"})
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads((tmp_path / "threads_0.json").read_text())
    assert got["blas"] == [2] * len(got["blas"]) and got["usable_cores"] == len(fastnn.threads.cores())


def test_numpy_arrays_are_summed_through_mpi_on_the_host_and_info_names_the_mpi(tmp_path):
    run = launch("info", tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads((tmp_path / "info.json").read_text())
    assert got["reducer"] == "mpi (host memory)" and got["local_rank"] == 0
    assert got["libraries"] and all(Path(lib).exists() for lib in got["libraries"])  # where CUDA-awareness is asked

    assert re.match(r"(MPICH|Open MPI|Intel).*\((CUDA-aware|not CUDA-aware: CuPy arrays cross the host)\); "
                    r"NCCL for CuPy arrays: ", got["describe"]), got["describe"]


@pytest.mark.skipif("cupy" not in fastnn.available_backends(), reason="needs a CUDA GPU and CuPy")
def test_nccl_sums_cupy_arrays_on_the_gpu(tmp_path):
    """One rank per GPU (NCCL refuses two on one GPU): a single rank on a one-GPU machine."""
    import cupy

    ranks = min(2, cupy.cuda.runtime.getDeviceCount())
    run = launch("nccl_sum", tmp_path, ranks=ranks, backend="cupy")
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads((tmp_path / "nccl_sum.json").read_text())
    assert got["reducer"] == "nccl"
    total = 2.0 * ranks * (ranks + 1) / 2  # scale 2, ranks holding 1x, 2x, ...
    np.testing.assert_allclose(got["sums"][0], total * np.arange(10))
    np.testing.assert_allclose(got["sums"][1], total * np.arange(3))


def test_an_unknown_allreduce_is_refused_before_mpi_starts():
    with pytest.raises(ValueError, match=r"allreduce must be one of \('auto', 'nccl', 'mpi'\), got 'gloo'"):
        fastnn.distributed.init(allreduce="gloo")


def test_the_cli_trains_on_two_ranks_and_reports_once(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    run = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-m", "fastnn", "train", "logic_and", "--epochs", "200",
                          "--save", str(tmp_path / "and.npz")], capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("logic_and: trained on numpy x 2 ranks") == 1
    assert run.stdout.count("saved to") == 1 and (tmp_path / "and.npz").exists()
