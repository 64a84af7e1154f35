"""`python -m fastnn gpucheck --out DIR`: the GPU path's acceptance run, for the first machine
with an NVIDIA GPU it meets. It records the environment, runs the suite's CuPy and CUDA tests,
trains one seeded network on numpy and on cupy and compares them, proves the fused step free of
host syncs (it captures in CUDA's global capture mode, where a sync is an error), and times one
training step five ways; it writes gpucheck.json and gpucheck.md into DIR. Without a GPU it
stops at once with the reason and exit status 2."""

from __future__ import annotations

import contextlib
import json
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np

import fastnn
from fastnn.backend import cupy_problem

# (case, network, rows in the step)
CASES = (("moons 1M", "moons", 1_000_000), ("mnist 65536", "mnist", 65_536), ("moons batch 1000", "moons", 1000))
TEST_SECONDS = 300  # the suite's GPU tests; the whole command stays under 8 minutes
REPEATS = 5  # timed repetitions of each step, their median reported
TARGET_SECONDS = 0.05  # each repetition runs the step this long at least


def main(out: str | Path, run_tests: bool = True) -> int:
    problem = cupy_problem()
    if problem is not None:
        print(f"fastnn gpucheck: no usable NVIDIA GPU here, so nothing to check: {problem}. Run it on a "
              f"machine with an NVIDIA GPU and CuPy (pip install \"fastnn[cuda13]\").", file=sys.stderr)
        return 2
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report: dict[str, Any] = {"environment": environment()}
    _save(out, report)
    report["tests"] = run_suite() if run_tests else {"skipped": "--no-tests"}
    _save(out, report)
    report["numpy_vs_cupy"] = compare_with_numpy()
    report["host_syncs"] = count_syncs()
    _save(out, report)
    report["timings"] = [time_case(*case) for case in CASES]
    report["seconds"] = time.perf_counter() - started
    report["passed"] = bool(report["numpy_vs_cupy"]["passed"] and report["host_syncs"]["passed"]
                            and report["tests"].get("returncode", 0) == 0)
    _save(out, report)
    print((out / "gpucheck.md").read_text())
    return 0 if report["passed"] else 1


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    import cupy

    from fastnn.kernels import cuda_toolchain

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    return {"gpu": props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
            "compute_capability": f"{props['major']}.{props['minor']}",
            "driver": cupy.cuda.runtime.driverGetVersion(), "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
            "cupy": cupy.__version__, "numba": _version("numba"), "numba-cuda": _version("numba-cuda"),
            "torch": _version("torch"), "fastnn": _version("fastnn"), "python": platform.python_version(),
            "cuda_kernels": cuda_toolchain.problem() or "usable"}


def run_suite() -> dict[str, Any]:
    """The suite's CuPy and CUDA tests, in a child process (their own warnings filter)."""
    tests = Path(fastnn.__file__).resolve().parents[2] / "tests"
    if not tests.is_dir():
        return {"returncode": None, "summary": f"no tests folder at {tests} (run from a clone)"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests), "-k",
               "cupy or cuda or gpu", "-W", "ignore::numba.core.errors.NumbaPerformanceWarning"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TEST_SECONDS)
    except subprocess.TimeoutExpired as err:
        return {"returncode": None, "summary": f"stopped after {TEST_SECONDS} s", "tail": str(err.stdout)[-3000:]}
    lines = done.stdout.strip().splitlines()
    return {"returncode": done.returncode, "summary": lines[-1] if lines else done.stderr[-500:],
            "tail": done.stdout[-3000:]}


def _seeded_fit(backend: str, kernels: bool = True) -> tuple[list[float], list[np.ndarray], str]:
    from fastnn.layers import Dense

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4096, 2))
    y = (x[:, :1] * x[:, 1:] > 0).astype(float)
    with fastnn.use(backend, kernels=kernels):
        model = fastnn.Sequential([Dense(25, "relu"), Dense(50, "relu"), Dense(25, "relu"), Dense(1, "sigmoid")],
                                  seed=0)
        model.compile(fastnn.optimizers.Adam(0.01), "binary_crossentropy", ["accuracy"])
        history = model.fit(x, y, epochs=5, batch_size=256, verbose=0)
        engine = next(e.name for e in model.backend.engines if e.supports(model.spec, 256))
    return history.history["loss"], model.get_weights(), engine


def compare_with_numpy() -> dict[str, Any]:
    """The same seeded fit on numpy and on cupy (its default engine, and its pure path)."""
    want_loss, want_weights, _ = _seeded_fit("numpy")
    result: dict[str, Any] = {"numpy_losses": want_loss, "passed": True}
    for label, kernels in (("cupy", True), ("cupy_pure", False)):
        loss, weights, engine = _seeded_fit("cupy", kernels)
        loss_gap = max(abs(a - b) / max(abs(b), 1e-6) for a, b in zip(loss, want_loss))
        weight_gap = max(float(np.max(np.abs(a - b))) / max(1.0, float(np.max(np.abs(b))))
                         for a, b in zip(weights, want_weights))
        ok = loss_gap < 1e-3 and weight_gap < 1e-3  # float32 through different reduction orders
        result[label] = {"engine": engine, "losses": loss, "max_relative_loss_gap": loss_gap,
                         "max_weight_gap": weight_gap, "passed": ok}
        result["passed"] = result["passed"] and ok
    return result


def _fused_step(network: str, rows: int, graph: bool = False) -> tuple[Callable[[], None], Any, Any]:
    """(one fused step on `rows` rows of `network`, its engine, the stream to run it on: None
    for the current one); with `graph`, a replay of the step captured into a CUDA graph."""
    from fastnn import bench
    from fastnn.kernels.cuda_engine import CudaEngine

    net = bench.NETWORKS[network]
    x, y, weights = bench.make_data(net, rows)
    with fastnn.use("cupy"):
        model = bench.fastnn_model(net, weights)
        xd, yd = model.prepare(x, y)
        model.optimizer.build(model.params)
    engine = CudaEngine(model.backend)
    acc = engine.accumulators(model.spec, 1)
    acc.start(engine.device, 0)
    step = engine.step_for(model.spec, model.train_state(), rows, acc)
    step.load(xd, yd)
    if not graph:
        return step.run, engine, None
    step.run()  # compile and warm before capturing
    stream = engine.device.side_stream()
    with engine.device.running_on(stream):
        replay = engine.device.capture(step.run)
    return replay, engine, stream


def count_syncs() -> dict[str, Any]:
    """Host syncs of the fused step (0 when it captures in global mode, where any sync raises),
    and host reads of a 10-batch epoch through the engine (counted at its device's to_host)."""
    import cupy

    from fastnn import bench
    from fastnn.kernels.cuda_engine import CudaEngine

    result: dict[str, Any] = {}
    run, engine, _ = _fused_step("moons", 1000)
    run()
    stream = engine.device.side_stream()
    try:
        with engine.device.running_on(stream):
            stream.begin_capture(mode=getattr(cupy.cuda.runtime, "streamCaptureModeGlobal", 0))
            try:
                run()
            finally:
                stream.end_capture()
        result["step_syncs"] = 0
        result["step_proof"] = "the fused step captured in CUDA's global capture mode (a host sync there is an error)"
    except Exception as err:
        result["step_syncs"] = None
        result["step_proof"] = f"capture failed: {type(err).__name__}: {err}"
    net = bench.NETWORKS["moons"]
    x, y, weights = bench.make_data(net, 10_000)
    with fastnn.use("cupy"):
        model = bench.fastnn_model(net, weights)
        xd, yd = model.prepare(x, y)
        model.optimizer.build(model.params)
    epoch_engine = CudaEngine(model.backend)
    device, reads = epoch_engine.device, []
    to_host = device.to_host
    device.to_host = lambda a: reads.append(1) or to_host(a)
    order = np.random.default_rng(0).permutation(10_000)
    for _ in range(2):
        reads.clear()
        epoch_engine.run_epoch(model.spec, model.train_state(), xd, yd, 1000, order)
    result["reads_per_epoch_of_10_batches"] = len(reads)
    result["passed"] = result["step_syncs"] == 0 and len(reads) == 1
    return result


def _time(step: Callable[[], Any], sync: Callable[[], None], events: Callable[[], tuple]) -> float:
    """Median seconds of one step: REPEATS repetitions timed by device events, each running
    the step enough times to last TARGET_SECONDS."""
    for _ in range(3):
        step()
    sync()
    start, end = events()
    start.record()
    step()
    end.record()
    end.synchronize()
    once = max(start.elapsed(end), 1e-6)
    count = max(1, int(TARGET_SECONDS / once))
    times = []
    for _ in range(REPEATS):
        start, end = events()
        start.record()
        for _ in range(count):
            step()
        end.record()
        end.synchronize()
        times.append(start.elapsed(end) / count)
    return statistics.median(times)


class _CupyEvent:
    def __init__(self) -> None:
        import cupy

        self.cupy, self.event = cupy, cupy.cuda.Event()

    def record(self) -> None:
        self.event.record(self.cupy.cuda.get_current_stream())

    def synchronize(self) -> None:
        self.event.synchronize()

    def elapsed(self, end: "_CupyEvent") -> float:
        return self.cupy.cuda.get_elapsed_time(self.event, end.event) / 1000


class _TorchEvent:
    def __init__(self) -> None:
        import torch

        self.event = torch.cuda.Event(enable_timing=True)

    def record(self) -> None:
        self.event.record()

    def synchronize(self) -> None:
        self.event.synchronize()

    def elapsed(self, end: "_TorchEvent") -> float:
        return self.event.elapsed_time(end.event) / 1000


def _cupy_timer(step: Callable[[], Any]) -> float:
    import cupy

    return _time(step, cupy.cuda.Device().synchronize, lambda: (_CupyEvent(), _CupyEvent()))


def _gemm_bound(network: str, rows: int) -> Callable[[], None]:
    """The step's GEMMs alone, into buffers (forward, weight gradients, input gradients)."""
    import cupy

    from fastnn import bench

    widths = bench.NETWORKS[network].widths
    acts = [cupy.ones((rows, w), cupy.float32) for w in widths]
    Ws = [cupy.full((k, m), 0.01, cupy.float32) for k, m in zip(widths, widths[1:])]
    dWs = [cupy.empty_like(W) for W in Ws]
    grads = [cupy.empty_like(a) for a in acts]

    def step():
        for i, W in enumerate(Ws):
            cupy.matmul(acts[i], W, out=acts[i + 1])
        for i in reversed(range(len(Ws))):
            cupy.matmul(acts[i].T, grads[i + 1], out=dWs[i])
            if i:
                cupy.matmul(grads[i + 1], Ws[i].T, out=grads[i])
    return step


def time_case(label: str, network: str, rows: int) -> dict[str, Any]:
    """One training step of `network` on `rows` rows, five ways, in seconds."""
    from fastnn import bench

    net = bench.NETWORKS[network]
    result: dict[str, Any] = {"case": label, "network": "-".join(map(str, net.widths)), "rows": rows}
    fused, _, _ = _fused_step(network, rows)
    result["fused"] = _cupy_timer(fused)
    try:
        graph, _, stream = _fused_step(network, rows, graph=True)
        with stream or contextlib.nullcontext():  # its events on the graph's stream
            result["graph"] = _cupy_timer(graph)
    except Exception as err:  # say why, keep the other numbers
        result["graph_error"] = f"{type(err).__name__}: {err}"
    x, y, weights = bench.make_data(net, rows)
    with fastnn.use("cupy", kernels=False):
        model = bench.fastnn_model(net, weights)
        xd, yd = model.prepare(x, y)
        model.optimizer.build(model.params)
    pure = model.backend.engines[-1]
    result["pure"] = _cupy_timer(lambda: pure.step(model.spec, model.train_state(), xd, yd))
    result["bound"] = _cupy_timer(_gemm_bound(network, rows))
    try:
        import torch

        step = bench.torch_step("cuda")(net, x, y, weights)
        result["torch"] = _time(step, torch.cuda.synchronize, lambda: (_TorchEvent(), _TorchEvent()))
    except Exception as err:
        result["torch_error"] = f"{type(err).__name__}: {err}"
    result["fused_over_bound"] = result["fused"] / result["bound"]
    if "torch" in result:
        result["torch_over_fused"] = result["torch"] / result["fused"]
    return result


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds * 1e6:.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.3f} ms"


def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    lines = [f"# fastnn gpucheck: {env['gpu']} (compute capability {env['compute_capability']})", "",
             f"driver {env['driver']}, CUDA runtime {env['cuda_runtime']}, CuPy {env['cupy']}, numba {env['numba']}, "
             f"numba-cuda {env['numba-cuda']}, PyTorch {env['torch']}; CUDA kernels: {env['cuda_kernels']}", ""]
    if "tests" in report:
        lines += [f"- tests (`-k \"cupy or cuda or gpu\"`): {report['tests'].get('summary', report['tests'])}"]
    if "numpy_vs_cupy" in report:
        check = report["numpy_vs_cupy"]
        for label in ("cupy", "cupy_pure"):
            r = check[label]
            lines.append(f"- numpy vs {label} ({r['engine']}), 5 seeded epochs: loss gap {r['max_relative_loss_gap']:.2e}, "
                         f"weight gap {r['max_weight_gap']:.2e}: {'ok' if r['passed'] else 'FAILED'}")
    if "host_syncs" in report:
        s = report["host_syncs"]
        lines.append(f"- host syncs per fused step: {s['step_syncs']} ({s['step_proof']}); host reads per "
                     f"10-batch epoch: {s['reads_per_epoch_of_10_batches']}")
    if "timings" in report:
        lines += ["", "| case | rows | fused | CUDA graph | pure | PyTorch eager | cuBLAS-only bound | fused / bound "
                  "| PyTorch / fused |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for t in report["timings"]:
            lines.append(f"| {t['case']} ({t['network']}) | {t['rows']:,} | {_ms(t['fused'])} | {_ms(t.get('graph'))} | "
                         f"{_ms(t['pure'])} | {_ms(t.get('torch'))} | {_ms(t['bound'])} | {t['fused_over_bound']:.2f} | "
                         f"{t.get('torch_over_fused', float('nan')):.2f} |")
        errors = [f"{t['case']}: {k} {v}" for t in report["timings"] for k, v in t.items() if k.endswith("_error")]
        lines += ["", *(f"- {e}" for e in errors)]
    if "passed" in report:
        lines += ["", f"passed: {report['passed']} ({report['seconds']:.0f} s)"]
    return "\n".join(lines) + "\n"


def _save(out: Path, report: dict[str, Any]) -> None:
    """Write both files after each part, so a run cut short still leaves what it measured."""
    (out / "gpucheck.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "gpucheck.md").write_text(markdown(report))
