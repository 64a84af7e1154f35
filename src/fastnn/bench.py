"""Benchmark harness behind `fastnn bench`: one training step (forward + backward + SGD update)
of the tutorial networks at growing batch sizes, for every implementation that can run here —
fastnn (each usable backend, fused kernels and pure Array API), PyTorch eager (CPU, and CUDA
with a GPU), tutorial-style NumPy, and the bound: only the GEMMs the step needs.

Method (benchmarks/README.md#method): every implementation starts from the same weights and
must compute the same first loss (a fast wrong number is worse than none); warm-up steps, then
repetitions interleaved across implementations so drift hits all alike; medians, with ratios
to the bound and to PyTorch from the same run. PyTorch (CPU) runs in child processes, since
its OpenMP threads and OpenBLAS's fight for the cores inside one process: one per case and
malloc, kept up for the case and asked for each repetition in turn with the others
(fastnn.bench_child), so both ratios are paired repetition by repetition.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np

import fastnn
from fastnn.backend import cupy_problem
from fastnn.bench_child import SETTLE_AFTER, SETTLE_BEFORE, RemoteStep
from fastnn.kernels import gemm
from fastnn.layers import Dense
from fastnn.threads import usable_cores
from fastnn.training import train_step


@dataclass(frozen=True)
class Network:
    widths: tuple[int, ...]
    activations: tuple[str, ...]
    loss: str
    max_batch: int  # memory cap on this 24 GiB machine, reported with the results


NETWORKS = {
    "moons": Network((2, 25, 50, 50, 25, 1), ("relu",) * 4 + ("sigmoid",), "binary_crossentropy", 1_000_000),
    "digits": Network((400, 25, 10), ("sigmoid", "sigmoid"), "binary_crossentropy", 500_000),
    "mnist": Network((784, 512, 512, 10), ("relu", "relu", "softmax"), "categorical_crossentropy", 65_536),
    "tiny": Network((2, 3, 1), ("relu", "sigmoid"), "mse", 1_000_000),
}
LR = 0.01
STRICT_MAX_BATCH = 100_000  # array-api-strict proves portability; timing it at 1M rows adds minutes
MIN_REP_SECONDS = 0.002  # shorter steps repeat within one repetition (see time_case)
DEFAULT_REPS = 9  # fewer left the fused / bound ratio noisy between runs (benchmarks/README.md#method)


def make_data(net: Network, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Synthetic inputs, targets (one-hot or 0/1 columns) and initial weights, float32."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, net.widths[0])).astype(np.float32)
    out = net.widths[-1]
    if net.loss == "categorical_crossentropy":
        y = np.eye(out, dtype=np.float32)[rng.integers(0, out, n)]
    else:
        y = (rng.random((n, out)) > 0.5).astype(np.float32)
    weights = []
    for fan_in, fan_out in zip(net.widths[:-1], net.widths[1:]):
        weights += [(rng.standard_normal((fan_in, fan_out)) * np.sqrt(2 / (fan_in + fan_out))).astype(np.float32),
                    np.zeros(fan_out, np.float32)]
    return x, y, weights


# ---------------------------------------------------------------------------------------------
# Implementations: each builds a `step() -> loss or None` from (net, x, y, weights)


def fastnn_model(net: Network, weights: list[np.ndarray]) -> fastnn.Sequential:
    """The network in fastnn on the active backend, from the given weights, compiled for SGD."""
    model = fastnn.Sequential([Dense(w, a) for w, a in zip(net.widths[1:], net.activations)], seed=0)
    model.compile(fastnn.optimizers.SGD(LR), net.loss, metrics=[])
    model.build(net.widths[0])
    model.set_weights(weights)
    return model


def fastnn_step(backend: str, kernels: bool, **options: Any) -> Callable:
    """A builder of fastnn steps under `fastnn.use(backend, kernels=kernels, **options)`."""
    def build(net, x, y, weights):
        with fastnn.use(backend, kernels=kernels, **options):
            model = fastnn_model(net, weights)
            xb, yb = model.prepare(x, y)
            model.optimizer.build(model.params)
        if kernels and backend == "numpy":  # a cold cache compiles on a thread, the pure path stepping meanwhile
            compile_before_timing(model, x.shape[0])
        return lambda: train_step(model, xb, yb)[0]  # train_on_batch without checking the data again
    return build


def compile_before_timing(model: fastnn.Sequential, batch_size: int) -> None:
    """Compile (or load) the model's compiled epoch at this batch size before it is timed."""
    from fastnn.kernels import warmup

    warmup("numpy", dtypes=(), model=model, batch_sizes=(batch_size,))


def numpy_tutorial_step(net, x, y, weights):
    """How the tutorials write it: fresh arrays for everything, activations by name."""
    Ws = [w.copy() for w in weights[0::2]]
    bs = [b.copy() for b in weights[1::2]]

    def act(z, name):
        if name == "relu":
            return np.maximum(z, 0)
        if name == "sigmoid":
            return 1 / (1 + np.exp(-z))
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def step():
        with np.errstate(over="ignore", divide="ignore"):
            a, cache = x, []
            for W, b, name in zip(Ws, bs, net.activations):
                z = a @ W + b
                cache.append((a, z))
                a = act(z, name)
            n = x.shape[0]
            if net.loss == "mse":
                loss = np.mean((a - y) ** 2)
                da = 2 * (a - y) / a.size
                dz = da * a * (1 - a)
            else:  # sigmoid + BCE and softmax + CCE share the gradient (p - y) / size
                p = np.clip(a, 1e-7, 1 - 1e-7)
                if net.loss == "binary_crossentropy":
                    loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
                    dz = (a - y) / a.size
                else:
                    loss = -np.sum(y * np.log(p)) / n
                    dz = (a - y) / n
            for i in reversed(range(len(Ws))):
                a_prev, z = cache[i]
                dW, db = a_prev.T @ dz, dz.sum(axis=0)
                if i:
                    da = dz @ Ws[i].T
                    z_prev = cache[i - 1][1]
                    dz = da * (z_prev > 0) if net.activations[i - 1] == "relu" else da * act(z_prev, "sigmoid") * (1 - act(z_prev, "sigmoid"))
                Ws[i] -= LR * dW
                bs[i] -= LR * db
        return float(loss)
    return step


def step_products(net: Network, x: np.ndarray, weights: list[np.ndarray]) -> list[tuple]:
    """(a, b, out) for every GEMM of a step, in order: forward x@W, backward x.T@dz and dz@W.T
    but the first layer's dx, into preallocated outputs."""
    Ws = weights[0::2]
    n = x.shape[0]
    zs = [np.empty((n, W.shape[1]), np.float32) for W in Ws]
    products, inputs, a = [], [], x
    for W, z in zip(Ws, zs):
        products.append((a, W, z))
        inputs.append(a)
        a = z
    d = zs[-1]
    for i in reversed(range(len(Ws))):
        products.append((inputs[i].T, d, np.empty_like(Ws[i])))
        if i:
            products.append((d, Ws[i].T, np.empty((n, Ws[i].shape[0]), np.float32)))
            d = products[-1][2]
    return products


def step_flops(net: Network, n: int) -> int:
    """Floating-point operations of the step's GEMMs (2 per multiply-add)."""
    sizes = [i * o for i, o in zip(net.widths[:-1], net.widths[1:])]
    return 2 * n * (2 * sum(sizes) + sum(sizes[1:]))


def gemm_bound_step(net, x, y, weights):
    """Only the GEMMs a step needs, the fastest way this machine's libraries do them: all by
    OpenBLAS, all by MKL (where installed), or each by the library fastest at its shape alone,
    whichever chain runs fastest (switching library costs time a product alone does not show).
    No implementation can do less of this work here."""
    products = step_products(net, x, weights)
    usable = gemm.libraries()[0]
    plans = {name: [library] * len(products) for name, library in usable.items()}
    if len(usable) > 1:
        plans["per product"] = [min(usable.values(), key=lambda lib: best_seconds(lambda: lib.matmul(a, b, out)))
                                for a, b, out in products]

    def run(plan):
        for (a, b, out), library in zip(products, plan):
            library.matmul(a, b, out)

    best = min(plans.values(), key=lambda plan: best_seconds(lambda: run(plan)))
    step = lambda: run(best)  # noqa: E731  (returns None: the bound computes no loss)
    step.libraries = {gemm.describe(a, b): library.name for (a, b, _), library in zip(products, best)}
    return step


def best_seconds(fn: Callable, reps: int = 3) -> float:
    """The fastest of `reps` timed calls of `fn`, after one untimed."""
    fn()  # warm: first touches, thread start-up (MKL starts its threads on its first call)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def torch_model(net: Network, weights: list[np.ndarray]):
    """The same network in PyTorch (Linear stores W transposed), with its fused loss."""
    import torch

    modules = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid,
               "softmax": lambda: torch.nn.Softmax(dim=1)}
    layers = []
    for i, (W, b, name) in enumerate(zip(weights[0::2], weights[1::2], net.activations)):
        linear = torch.nn.Linear(*W.shape)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W.T.copy()))
            linear.bias.copy_(torch.from_numpy(b))
        layers.append(linear)
        last = i == len(net.activations) - 1
        if not last or net.loss == "mse":  # a sigmoid/softmax head is inside BCEWithLogits / CrossEntropy
            layers.append(modules[name]())
    loss_fn = {"binary_crossentropy": torch.nn.BCEWithLogitsLoss(), "mse": torch.nn.MSELoss(),
               "categorical_crossentropy": torch.nn.CrossEntropyLoss()}[net.loss]
    return torch.nn.Sequential(*layers), loss_fn


def torch_step(device: str) -> Callable:
    def build(net, x, y, weights):
        import torch

        model, loss_fn = torch_model(net, weights)
        model = model.to(device)
        xt = torch.from_numpy(x).to(device)
        yt = torch.from_numpy(y.argmax(axis=1) if net.loss == "categorical_crossentropy" else y).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=LR)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xt), yt)
            loss.backward()
            opt.step()
            return loss.detach()
        return step
    return build


TUNED_MALLOC = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}
# PyTorch with glibc's malloc as it is, and tuned: glibc otherwise keeps returning freed memory to
# the OS, and PyTorch's large-batch time is then mostly page faults on fresh allocations.
TORCH_CHILDREN = {"torch-eager": {}, "torch-eager-tuned-malloc": TUNED_MALLOC}


def torch_in_child(env: dict[str, str], autocast: bool = False) -> Callable:
    """A builder of PyTorch eager (CPU) steps that run in a child process (fastnn.bench_child),
    in float32 or under bfloat16 autocast."""
    def build(net, x, y, weights):
        name = next(key for key, value in NETWORKS.items() if value == net)
        return RemoteStep(name, x.shape[0], env, autocast)  # the child makes the same x, y and weights from the seed
    return build


def cupy_gemm_bound_step(net, x, y, weights):
    import cupy

    Ws = [cupy.asarray(w) for w in weights[0::2]]
    xg = cupy.asarray(x)

    def step():
        a, inputs = xg, []
        for W in Ws:
            inputs.append(a)
            a = a @ W
        d = a
        for i in reversed(range(len(Ws))):
            inputs[i].T @ d
            if i:
                d = d @ Ws[i].T
        return None
    return step


def implementations(include_torch: bool = True) -> dict[str, tuple[str, Callable]]:
    """name -> (device, builder) for everything usable here."""
    impls: dict[str, tuple[str, Callable]] = {"gemm-bound": ("cpu", gemm_bound_step)}
    impls["fastnn-numpy-fused"] = ("cpu", fastnn_step("numpy", True))
    if include_torch:  # beside fused, each in a child process per case (fastnn.bench_child)
        impls.update({label: ("cpu", torch_in_child(env)) for label, env in TORCH_CHILDREN.items()})
    impls["fastnn-numpy-pure"] = ("cpu", fastnn_step("numpy", False))
    impls["numpy-tutorial"] = ("cpu", numpy_tutorial_step)
    impls["fastnn-strict-pure"] = ("cpu", fastnn_step("array_api_strict", False))
    if cupy_problem() is None:
        impls["cupy-gemm-bound"] = ("gpu", cupy_gemm_bound_step)
        impls["fastnn-cupy-fused"] = ("gpu", fastnn_step("cupy", True))
        impls["fastnn-cupy-pure"] = ("gpu", fastnn_step("cupy", False))
        if include_torch and _torch_cuda():
            impls["torch-eager-cuda"] = ("gpu", torch_step("cuda"))
    return impls


def _torch_version() -> str | None:
    """PyTorch's version where installed, without importing it: in this process its OpenMP
    threads would spin beside OpenBLAS's and MKL's (docs/kernels.md#gemm-choice)."""
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


def _torch_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _sync(device: str) -> None:
    if device == "gpu":
        import cupy

        cupy.cuda.Device().synchronize()
        if _torch_version() and _torch_cuda():
            import torch

            torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------------
# Running


def time_case(net_name: str, n: int, impls: dict, reps: int, warmup: int = 3, reference: str | None = None,
              tolerances: dict[str, float] | None = None) -> dict[str, Any]:
    """Median step time (ms) of each implementation on one (network, batch) case, and the
    paired ratios of the fused step to the bound and to the faster PyTorch. Every first loss is
    checked against `reference`'s before any timing (`_check_losses`)."""
    net = NETWORKS[net_name]
    x, y, weights = make_data(net, n)
    steps: dict[str, tuple[str, Callable]] = {}
    try:
        losses = {}
        for name, (device, build) in impls.items():
            if "strict" in name and n > STRICT_MAX_BATCH:
                continue
            steps[name] = (device, build(net, x, y, weights))
            loss = steps[name][1]()
            _sync(device)
            if loss is not None:
                losses[name] = float(loss)
        _check_losses(net_name, n, losses, reference, tolerances)
        for _ in range(warmup - 1):
            for device, step in steps.values():
                step()
                _sync(device)
        times = _repetitions(steps, reps)
    finally:
        for _, step in steps.values():
            if isinstance(step, RemoteStep):
                step.close()
    case = {"network": net_name, "batch": n, "first_loss": losses, "gflop": step_flops(net, n) / 1e9,
            "ms": {name: float(np.median(t)) * 1e3 for name, t in times.items()}, "seconds": times}
    if "gemm-bound" in steps:
        case["bound_gemm"] = steps["gemm-bound"][1].libraries  # which library the bound kept per product
    torch_threads = [step.torch_threads for _, step in steps.values() if isinstance(step, RemoteStep)]
    if torch_threads:
        case["torch_threads"] = torch_threads[0]
    fused = np.array(times.get("fastnn-numpy-fused", []))
    if fused.size and "gemm-bound" in times:  # paired: drift hits both alike
        case["fused_over_bound"] = float(np.median(fused / np.array(times["gemm-bound"])))
    torch_times = [times[k] for k in TORCH_CHILDREN if k in times]
    if fused.size and torch_times:  # per repetition, the faster PyTorch measured beside it
        case["fused_over_torch"] = float(np.median(fused / np.min(torch_times, axis=0)))
    return case


def _repetitions(steps: dict[str, tuple[str, Callable]], reps: int) -> dict[str, list[float]]:
    """Seconds per step of each implementation, one list entry per repetition."""
    # A step under MIN_REP_SECONDS is timed as a run of back-to-back calls: one call alone, right after
    # another implementation has evicted its code and data from cache, measured the eviction.
    calls = {name: _calls_per_rep(step, device) for name, (device, step) in steps.items()}
    times: dict[str, list[float]] = {name: [] for name in steps}
    rested = False  # this process's threads slept through a PyTorch repetition
    for rep in range(reps):
        # Forward order, then reversed: fused and bound stay adjacent (their ratio is paired)
        # and each goes first in half the repetitions, so neither always follows the big
        # allocations of the pure and tutorial steps.
        for name in list(steps) if rep % 2 == 0 else list(reversed(steps)):
            device, step = steps[name]
            if isinstance(step, RemoteStep):  # timed in its own process, with this one's threads at rest
                time.sleep(SETTLE_BEFORE)
                times[name].append(step.timed(calls[name]))
                time.sleep(SETTLE_AFTER)
                rested = True
                continue
            if rested:  # untimed, as the child does: wakes the BLAS threads a training loop keeps awake
                step()
                rested = False
            _sync(device)
            start = time.perf_counter()
            for _ in range(calls[name]):
                step()
            _sync(device)
            times[name].append((time.perf_counter() - start) / calls[name])
    return times


def _calls_per_rep(step: Callable, device: str) -> int:
    """How many back-to-back calls of `step` take MIN_REP_SECONDS (doubling, as timeit does)."""
    calls = 1
    while calls < 1024:
        _sync(device)
        start = time.perf_counter()
        for _ in range(calls):
            step()
        _sync(device)
        if time.perf_counter() - start >= MIN_REP_SECONDS:
            break
        calls *= 2
    return calls


def _check_losses(net_name: str, n: int, losses: dict[str, float], reference: str | None = None,
                  tolerances: dict[str, float] | None = None) -> None:
    """Every implementation's first loss must match the reference's (by default the pure
    Array-API path's or, without it, the tutorial NumPy's) to 1e-3 relative, or to its own
    entry in `tolerances`: a fast wrong number is worse than none."""
    reference = reference or ("fastnn-numpy-pure" if "fastnn-numpy-pure" in losses else "numpy-tutorial")
    expected = losses.get(reference)
    for name, loss in losses.items():
        tolerance = (tolerances or {}).get(name, 1e-3)
        if expected is not None and abs(loss - expected) > tolerance * max(1.0, abs(expected)):
            said = {"fastnn-numpy-pure": "the pure Array-API path", "numpy-tutorial": "the tutorial NumPy"}
            raise RuntimeError(f"{net_name} n={n}: {name} computed loss {loss:.6g} but {said.get(reference, reference)} "
                               f"{expected:.6g} from the same weights; refusing to time it")


def online_throughput(net_name: str, samples: int, epochs: int = 5) -> dict[str, float]:
    """Samples/s of online SGD (batch size 1): fastnn's fit (shuffled epochs; the median of
    `epochs` one-epoch fits) and a PyTorch loop."""
    net = NETWORKS[net_name]
    x, y, weights = make_data(net, samples)
    result = {}
    with fastnn.use("numpy"):
        model = fastnn_model(net, weights)
        model.fit(x[:100], y[:100], batch_size=1, epochs=1, verbose=0)  # warm-up
        seconds = []
        for _ in range(epochs):
            start = time.perf_counter()
            model.fit(x, y, batch_size=1, epochs=1, verbose=0)
            seconds.append(time.perf_counter() - start)
        result["fastnn-numpy"] = samples / float(np.median(seconds))
    if _torch_version():
        import torch

        count = min(samples, 20_000)
        model_t, loss_fn = torch_model(net, weights)
        opt = torch.optim.SGD(model_t.parameters(), lr=LR)
        xt = torch.from_numpy(x[:count])
        yt = torch.from_numpy(y[:count].argmax(axis=1) if net.loss == "categorical_crossentropy" else y[:count])
        start = time.perf_counter()
        for i in range(count):
            opt.zero_grad(set_to_none=True)
            loss_fn(model_t(xt[i:i + 1]), yt[i:i + 1]).backward()
            opt.step()
        result["torch-eager"] = count / (time.perf_counter() - start)
    return result


def machine_info() -> dict[str, Any]:
    info = {"machine": platform.machine(), "processor": cpu_name(), "cores": os.cpu_count(),
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}
    for package in ("numpy", "numba", "torch", "cupy-cuda12x", "cupy-cuda13x"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    info["threads"] = {k: os.environ.get(k, "default") for k in
                       ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")}
    if cupy_problem() is None:
        import cupy

        info["gpu"] = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"].decode()
    info["sgemm_gflops"] = sgemm_gflops()
    info["float32_peak_gflops"] = float32_peak_gflops()
    info["core_ghz"] = core_ghz()
    info["gemm"] = list(gemm.libraries()[0])
    return info


def core_ghz(steps: int = 20_000_000) -> float:
    """The core's clock now, from a chain of dependent fused multiply-adds (4 cycles each on
    Zen 3, Zen 4 and recent Intel cores): online SGD on tiny networks is one such chain, so it
    follows the clock (2.0 and 2.9 GHz on the same Zen 3 host type in two sessions), not the
    GEMM speed."""
    from numba import njit

    @njit(fastmath={"contract"})
    def chain(n, s):
        for _ in range(n):
            s = s * 0.999999 + 1e-6
        return s

    chain(10, 1.0)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        chain(steps, 1.0)
        best = min(best, time.perf_counter() - start)
    return round(4 * steps / best / 1e9, 2)


def float32_peak_gflops(steps: int = 100_000_000) -> float:
    """The cores' float32 peak now: 64 independent multiply-add chains per thread (enough to
    fill every FMA pipe's vectors and latency), one thread per core this process may use."""
    import threading

    from numba import njit

    @njit(fastmath=True, nogil=True)
    def chains(n, seed):
        acc = np.empty(64, np.float32)
        for j in range(64):
            acc[j] = seed + j
        for _ in range(n):
            for j in range(64):  # a constant trip count: unrolled, kept in vector registers
                acc[j] = acc[j] * np.float32(0.999999) + np.float32(1e-6)
        return acc.sum()

    chains(10, np.float32(1))
    threads = usable_cores()
    best = float("inf")
    for _ in range(5):  # the best: a busy neighbour only ever slows it
        workers = [threading.Thread(target=chains, args=(steps, np.float32(1))) for _ in range(threads)]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        best = min(best, time.perf_counter() - start)
    return round(2 * 64 * steps * threads / best / 1e9, 1)


def sgemm_gflops(size: int = 2000) -> float:
    """float32 GEMM speed now (best of 3): how fast this shared machine is during the run."""
    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return round(2 * size**3 / best / 1e9, 1)


def cpu_fields() -> dict[str, str]:
    """The first CPU's entry of Linux's /proc/cpuinfo ("model name", "cpu family", "flags", ...);
    empty elsewhere."""
    try:
        first_cpu = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in first_cpu.splitlines())}


def cpu_name() -> str:
    """The CPU's name, family/model and widest vector unit: VMs of one type land on different
    hosts, whose figures differ by up to 2x."""
    fields = cpu_fields()
    if not fields:
        return platform.processor() or "unknown"
    flags = fields.get("flags", "").split()
    simd = next((name for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"))
                 if flag in flags), "no AVX")
    return (f"{fields.get('model name', platform.processor() or 'unknown')} "
            f"(family {fields.get('cpu family', '?')} model {fields.get('model', '?')}, {simd})")


def batches_for(net: Network, quick: bool, min_batch: int = 1) -> list[int]:
    sizes = [1, 4, 100, 4096] if quick else [1, 4, 10, 100, 1_000, 10_000, 100_000, 1_000_000]
    capped = [n for n in sizes if min_batch <= n <= net.max_batch]
    if not quick and net.max_batch not in capped:
        capped.append(net.max_batch)
    return capped


def run(networks: list[str], quick: bool, reps: int, out_dir: Path, torch: bool = True,
        min_batch: int = 1) -> dict[str, Any]:
    impls = implementations(include_torch=torch and _torch_version() is not None)
    results: dict[str, Any] = {"machine": machine_info(), "reps": reps, "implementations": list(impls),
                               "caps": {n: NETWORKS[n].max_batch for n in networks}, "cases": [], "online": {}}
    for name in networks:
        for n in batches_for(NETWORKS[name], quick, min_batch):
            case = time_case(name, n, impls, reps)
            if "torch_threads" in case:
                results["machine"]["torch_threads"] = case.pop("torch_threads")
            results["cases"].append(case)
            print(_case_line(case), flush=True)
    for name in ("tiny", "moons"):
        if name in networks and min_batch == 1:
            results["online"][name] = online_throughput(name, 2_000 if quick else 200_000)
            print(f"online SGD {name}: " + ", ".join(f"{k} {v:,.0f} samples/s" for k, v in results["online"][name].items()))
    results["fused_gemm"] = gemm.chooser().choices()  # which library the fused steps kept per product
    write_outputs(results, out_dir)
    return results


def _case_line(case: dict) -> str:
    ms = case["ms"]
    parts = [f"{k} {v:.3g} ms" for k, v in ms.items()]
    return f"{case['network']:>6} n={case['batch']:>9,}: " + ", ".join(parts)


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [f"Machine: {m['processor']}, {m['cores']} cores{', ' + m['gpu'] if 'gpu' in m else ''}; "
             f"numpy {m.get('numpy')}, numba {m.get('numba')}, torch {m.get('torch', 'not installed')}; "
             f"{m['date']}; at the start of the run: float32 peak {m.get('float32_peak_gflops', '?')} GFLOP/s "
             f"(multiply-add chains on every core), OpenBLAS GEMM {m.get('sgemm_gflops', '?')} GFLOP/s, "
             f"core clock {m.get('core_ghz', '?')} GHz; GEMM libraries: {', '.join(m.get('gemm', ['openblas']))}; "
             f"median of {results['reps']} interleaved repetitions (PyTorch CPU in child processes, each of its "
             "repetitions timed beside fastnn's), "
             "float32, one SGD step. gemm-bound: only the step's GEMMs, each by the fastest library at "
             "its shape; fused / bound: median over repetitions of the two times measured back to back; "
             "fused / best torch: median over repetitions of fused against the faster of PyTorch's two mallocs beside it; % of peak: the step's GEMM flops per fused step time against the float32 peak.", ""]
    impls = results["implementations"]
    lines.append("| network | batch | " + " | ".join(impls) + " | fused / bound | fused / best torch | % of peak |")
    lines.append("|---|---:|" + "---:|" * len(impls) + "---:|---:|---:|")
    for c in results["cases"]:
        ms = c["ms"]
        cells = [f"{ms[i]:.4g}" if i in ms else "–" for i in impls]
        fused = ms.get("fastnn-numpy-fused")
        ratio = c.get("fused_over_bound", fused / ms["gemm-bound"] if fused and ms.get("gemm-bound") else None)
        ratio_bound = f"{ratio:.2f}×" if ratio else "–"
        torch_ms = [ms[k] for k in TORCH_CHILDREN if k in ms]
        ratio = c.get("fused_over_torch", fused / min(torch_ms) if fused and torch_ms else None)
        ratio_torch = f"{ratio:.2f}×" if ratio else "–"
        peak = m.get("float32_peak_gflops")
        of_peak = f"{100 * c['gflop'] / (fused / 1e3) / peak:.0f} %" if fused and peak and "gflop" in c else "–"
        lines.append(f"| {c['network']} | {c['batch']:,} | " + " | ".join(cells)
                     + f" | {ratio_bound} | {ratio_torch} | {of_peak} |")
    lines.append("")
    lines.append("Times in ms per step. Caps (memory): " + ", ".join(f"{k} ≤ {v:,} rows" for k, v in results["caps"].items()) + ".")
    for name, rates in results["online"].items():
        lines.append(f"Online SGD (batch 1), {name}: " + ", ".join(f"{k} {v:,.0f} samples/s" for k, v in rates.items()) + ".")
        step = next((c["ms"] for c in results["cases"] if c["network"] == name and c["batch"] == 4), {})
        if step:
            lines.append(f"Batch-4 step, {name}: " + ", ".join(
                f"{k} {step[k] * 1000:.1f} µs" for k in ("fastnn-numpy-fused", "torch-eager") if k in step) + ".")
    return "\n".join(lines) + "\n"


def write_outputs(results: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(results, indent=1))
    (out_dir / "bench.md").write_text(markdown(results))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (pip install 'fastnn[plot]')")
        return
    networks = list(dict.fromkeys(c["network"] for c in results["cases"]))
    fig, axes = plt.subplots(1, len(networks), figsize=(4.5 * len(networks), 4), squeeze=False)
    for ax, name in zip(axes[0], networks):
        cases = [c for c in results["cases"] if c["network"] == name]
        for impl in dict.fromkeys(k for c in cases for k in c["ms"]):
            pts = [(c["batch"], c["ms"][impl]) for c in cases if impl in c["ms"]]
            ax.plot(*zip(*pts), marker="o", label=impl)
        ax.set(xscale="log", yscale="log", title=name, xlabel="batch size", ylabel="ms per training step")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "bench.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fastnn bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small batches only: checks the harness in < 1 min")
    parser.add_argument("--networks", default=",".join(NETWORKS),
                        help=f"comma-separated, from {', '.join(NETWORKS)}, lenet (a CNN: fastnn.bench_cnn)")
    parser.add_argument("--reps", type=int, default=None, help=f"timed repetitions (default {DEFAULT_REPS})")
    parser.add_argument("--out", default="results", help="folder for bench.json, bench.md, bench.png")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    parser.add_argument("--min-batch", type=int, default=1, help="time only batches of at least this many rows "
                        "(and no online SGD): e.g. 10000 for the large-batch table alone")
    args = parser.parse_args(argv)
    reps = args.reps or DEFAULT_REPS
    names = [n.strip() for n in args.networks.split(",") if n.strip()]
    unknown = set(names) - set(NETWORKS) - {"lenet"}
    if unknown:
        parser.error(f"unknown network(s) {sorted(unknown)}; choose from {', '.join(NETWORKS)}, lenet")
    if not args.no_torch and not _torch_version():
        print("PyTorch is not installed: skipping the PyTorch columns (pip install torch to compare)")
    if "lenet" in names:
        from fastnn import bench_cnn

        table = bench_cnn.markdown(bench_cnn.run(reps, torch=not args.no_torch and bool(_torch_version()),
                                                 quick=args.quick))
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "lenet.md").write_text(table + "\n")
        print(table)
        names.remove("lenet")
        if not names:
            return 0
    results = run(names, args.quick, reps, Path(args.out), torch=not args.no_torch, min_batch=args.min_batch)
    print(f"\nwrote {args.out}/bench.json, bench.md" + (", bench.png" if (Path(args.out) / "bench.png").exists() else ""))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
