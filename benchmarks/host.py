"""fastnn against PyTorch on the machine this runs on: the default install, with `[mkl]`, bfloat16
against `torch.autocast`, and the online epoch against a hand-written Numba loop.

    python benchmarks/host.py [--reps 9] [--mkl-margin 1.05] [--cases digits:10000,mnist:65536]

One full-batch SGD step of the benchmark networks (fastnn.bench: same data, same weights, the
first losses checked equal), each configuration timed once per repetition, alternating, PyTorch
in child processes (fastnn.bench_child, eager with glibc's malloc as it is and tuned; the faster
of the two per repetition counts). Ratios are medians of per-repetition ratios.

- "default": `gemm="openblas"` — NumPy's OpenBLAS alone, what `pip install fastnn` multiplies
  with. MKL, when installed, is loaded in this process but never called: its threads start on
  its first call.
- "[mkl]": `gemm="auto"` with the `mkl` wheel installed — per shape the faster library.
- "bf16": `precision="bfloat16"` against `torch.autocast("cpu", dtype=torch.bfloat16)`, only
  where the bf16 kernel runs (a CPU with AMX or AVX512-BF16, and oneDNN or MKL installed).

Exit status 1 when fastnn with MKL is slower than without it on a case by more than
--mkl-margin (paired median) on a step of 1 ms or more: installing `[mkl]` must never cost time.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time

import numpy as np
from numba import njit

import fastnn
from fastnn import bench
from fastnn.kernels import bfloat16, gemm
from fastnn.threads import usable_cores

CASES = (("digits", 10_000), ("digits", 100_000), ("mnist", 65_536), ("moons", 1_000_000))
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
ONLINE_SAMPLES = 200_000
JUDGED_MS = 1.0  # --mkl-margin judges steps at least this long: a sub-millisecond ratio is noise


def host() -> str:
    """CPU model, family/model and the vector flags this table depends on."""
    flags = [f for f in FLAGS if f in bench.cpu_fields().get("flags", "").split()]
    return f"{bench.cpu_name()}, {usable_cores()} cores, flags: {' '.join(flags) or 'none of ' + ' '.join(FLAGS)}"


def fastnn_step(**options) -> callable:
    """A builder of fastnn fused steps under `fastnn.use("numpy", **options)`, built after a
    first model of the same case has made the GEMM chooser's trials (each library's, per shape;
    the chooser is the process's), so that no timed step is a trial."""
    make = bench.fastnn_step("numpy", True, **options)

    def build(net, x, y, weights):
        trial = make(net, x, y, weights)
        for _ in range(2 * gemm.TRIALS):
            trial()
        return make(net, x, y, weights)
    return build


def configurations(mkl: bool, bf16: bool) -> dict[str, tuple[str, callable]]:
    impls = {"default": ("cpu", fastnn_step(gemm="openblas"))}
    if mkl:
        impls["mkl"] = ("cpu", fastnn_step(gemm="auto"))
    impls.update({name: ("cpu", bench.torch_in_child(env)) for name, env in bench.TORCH_CHILDREN.items()})
    if bf16:
        impls["bf16"] = ("cpu", fastnn_step(precision="bfloat16"))
        impls["torch-bf16"] = ("cpu", bench.torch_in_child(bench.TUNED_MALLOC, autocast=True))
    return impls


def paired(times: dict[str, list[float]], a: str, b: str | list[str]) -> float:
    """Median over repetitions of a's time over b's (over the fastest of several b's)."""
    below = np.min([times[k] for k in ([b] if isinstance(b, str) else b)], axis=0)
    return float(np.median(np.array(times[a]) / below))


# ---------------------------------------------------------------------------------------------
# The online epoch against the fastest loop we could write by hand for the tiny 2-3-1 network
# (ReLU, sigmoid, MSE): batch 1, shuffled in Numba, every unit a float32 scalar, the loss summed.
# (A loop over the widths with a NumPy permutation ran 0.6-0.8x as fast as this one.)


@njit(cache=False)
def _hand_written_epoch(x, y, seed, W1, b1, W2, b2, lr):
    np.random.seed(seed)
    one, two, zero = np.float32(1.0), np.float32(2.0), np.float32(0.0)
    total = np.float32(0.0)
    for s in np.random.permutation(x.shape[0]):
        x0, x1 = x[s, 0], x[s, 1]
        h0 = max(b1[0] + x0 * W1[0, 0] + x1 * W1[1, 0], zero)
        h1 = max(b1[1] + x0 * W1[0, 1] + x1 * W1[1, 1], zero)
        h2 = max(b1[2] + x0 * W1[0, 2] + x1 * W1[1, 2], zero)
        out = one / (one + np.exp(-(b2[0] + h0 * W2[0, 0] + h1 * W2[1, 0] + h2 * W2[2, 0])))
        error = out - y[s, 0]
        total += error * error
        dz = two * error * out * (one - out)
        d0 = dz * W2[0, 0] if h0 > zero else zero
        d1 = dz * W2[1, 0] if h1 > zero else zero
        d2 = dz * W2[2, 0] if h2 > zero else zero
        W2[0, 0] -= lr * dz * h0
        W2[1, 0] -= lr * dz * h1
        W2[2, 0] -= lr * dz * h2
        b2[0] -= lr * dz
        for j, d in ((0, d0), (1, d1), (2, d2)):
            W1[0, j] -= lr * d * x0
            W1[1, j] -= lr * d * x1
            b1[j] -= lr * d
    return total / x.shape[0]


def online(reps: int) -> dict[str, float]:
    """Samples/s of one shuffled batch-1 epoch: fastnn's fit and the hand-written loop,
    alternating per repetition, each from the same weights every time."""
    net = bench.NETWORKS["tiny"]
    x, y, weights = bench.make_data(net, ONLINE_SAMPLES)
    with fastnn.use("numpy"):
        model = bench.fastnn_model(net, weights)
    lr = np.float32(bench.LR)

    def fastnn_epoch():
        model.set_weights(weights)
        return model.fit(x, y, batch_size=1, epochs=1, verbose=0).history["loss"][-1]

    seeds = itertools.count(1)  # a new shuffle each epoch

    def hand_written():
        return _hand_written_epoch(x, y, next(seeds), *(w.astype(np.float32) for w in weights), lr)

    losses = fastnn_epoch(), hand_written()  # compiles both
    if abs(losses[0] - losses[1]) > 1e-2 * abs(losses[1]):
        raise SystemExit(f"online epoch: fastnn's loss {losses[0]:.6g}, the hand-written loop's {losses[1]:.6g}")
    times = {"fastnn": [], "hand-written": []}
    for rep in range(reps):
        for name, fn in (("fastnn", fastnn_epoch), ("hand-written", hand_written))[::1 if rep % 2 == 0 else -1]:
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {"fastnn samples/s": ONLINE_SAMPLES / float(np.median(times["fastnn"])),
            "hand-written samples/s": ONLINE_SAMPLES / float(np.median(times["hand-written"])),
            "ratio": float(np.median(np.array(times["hand-written"]) / np.array(times["fastnn"])))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=bench.DEFAULT_REPS)
    parser.add_argument("--mkl-margin", type=float, default=1.05,
                        help="fail when fastnn with MKL takes more than this times fastnn without it")
    parser.add_argument("--cases", help="network:rows,... (default: " +
                        ",".join(f"{n}:{r}" for n, r in CASES) + ")")
    args = parser.parse_args()
    cases = [(n, int(r)) for n, r in (c.split(":") for c in args.cases.split(","))] if args.cases else CASES
    mkl = "mkl" in gemm.libraries()[0]
    why_bf16 = bfloat16.problem()
    print(f"{time.strftime('%Y-%m-%d')}, {host()}")
    print(f"numpy {np.__version__}; MKL: {gemm.libraries()[0]['mkl'].version if mkl else gemm.libraries()[1]['mkl']}; "
          f"bf16 kernel: {bfloat16.describe()}; {args.reps} repetitions\n")
    head = "| network | rows | default ms | PyTorch ms | default / PyTorch |"
    if mkl:
        head += " [mkl] ms | [mkl] / PyTorch | [mkl] / default |"
    if why_bf16 is None:
        head += " bf16 ms | autocast bf16 ms | bf16 / autocast |"
    print(head)
    print("|" + "|".join(["---"] + ["---:"] * (head.count("|") - 2)) + "|")
    slower = []
    torch_keys = list(bench.TORCH_CHILDREN)
    for name, rows in cases:
        # bf16 operands keep about 3 significant digits of the first loss
        case = bench.time_case(name, rows, configurations(mkl, why_bf16 is None), args.reps, reference="default",
                               tolerances={"bf16": 3e-2, "torch-bf16": 3e-2})
        t, ms = case["seconds"], case["ms"]
        line = (f"| {name} | {rows:,} | {ms['default']:.1f} | {min(ms[k] for k in torch_keys):.1f} | "
                f"{paired(t, 'default', torch_keys):.2f} |")
        if mkl:
            over_default = paired(t, "mkl", "default")
            line += f" {ms['mkl']:.1f} | {paired(t, 'mkl', torch_keys):.2f} | {over_default:.2f} |"
            if over_default > args.mkl_margin and ms["default"] >= JUDGED_MS:
                slower.append(f"{name} {rows:,}: {over_default:.2f}x")
        if why_bf16 is None:
            line += f" {ms['bf16']:.1f} | {ms['torch-bf16']:.1f} | {paired(t, 'bf16', 'torch-bf16'):.2f} |"
        print(line, flush=True)
    result = online(args.reps)
    print(f"\nonline epoch, 2-3-1, batch 1, {ONLINE_SAMPLES:,} samples: fastnn fit "
          f"{result['fastnn samples/s'] / 1e6:.1f} M samples/s, hand-written Numba loop "
          f"{result['hand-written samples/s'] / 1e6:.1f} M; fastnn runs {result['ratio']:.2f}x the loop's speed")
    if slower:
        print(f"\nFAIL: with MKL installed fastnn is slower than without it by more than {args.mkl_margin}x on "
              + "; ".join(slower), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
