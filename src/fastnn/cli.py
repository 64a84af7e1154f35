"""The `fastnn` command (also `python -m fastnn`): train the example networks, show the setup."""

from __future__ import annotations

import argparse
import builtins
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import fastnn
from fastnn.backend import BACKEND_NAMES
from fastnn.examples import EXAMPLES

PLOT_FORMATS = (".png", ".pdf", ".svg")


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse unusable --save and --plot targets before training, not after."""
    from fastnn.checks import check_writable

    if args.save:
        check_writable(args.save)
    if args.plot:
        check_writable(args.plot)
        suffix = Path(args.plot).suffix.lower()
        if suffix not in PLOT_FORMATS:
            raise ValueError(f"--plot {args.plot}: cannot write {suffix or 'a file without extension'}; "
                             f"use one of {', '.join(PLOT_FORMATS)}")
        from fastnn.plots import pyplot

        pyplot()  # matplotlib missing: say so now


def _train(args: argparse.Namespace) -> int:
    _check_outputs(args)
    if fastnn.distributed.launched():  # mpiexec -n N fastnn train NAME: data-parallel, rank 0 reports
        fastnn.distributed.init()
    print = builtins.print if fastnn.distributed.is_root() else (lambda *args, **kwargs: None)
    with fastnn.use(args.backend):
        start = time.perf_counter()
        result = EXAMPLES[args.name](epochs=args.epochs, batch_size=args.batch_size, verbose=args.verbose)
        seconds = time.perf_counter() - start
    model = result["model"]
    ranks = f" x {fastnn.distributed.size()} ranks" if fastnn.distributed.size() > 1 else ""
    print(f"{args.name}: trained on {model.backend.name}{ranks} in {seconds:.2f} s")
    for key, value in result["metrics"].items():
        print(f"  {key}: {value:.4f}")
    for key, value in result.items():
        if key not in ("model", "history", "metrics", "data"):
            print(f"  {key}: {_short(value)}")
    if args.save:
        print(f"  saved to {model.save(args.save)}")
    if args.plot and fastnn.distributed.is_root():
        _plot(result, args.plot)
        print(f"  plot written to {args.plot}")
    return 0


def _short(value: Any) -> str:
    """A long list of numbers as its first, last and count; anything else as it is."""
    if isinstance(value, list) and len(value) > 6:
        return f"{value[0]:.4g} ... {value[-1]:.4g} ({len(value)} values; --plot draws them)"
    return str(value)


def _plot(result: dict, path: str) -> None:
    from fastnn.plots import (plot_curve, plot_decision_boundary, plot_filters, plot_history, plot_misclassified,
                              pyplot)

    plt = pyplot()
    x, y = result["data"]
    if x.ndim == 4:  # images: the curves, the first filters, the digits it gets wrong
        fig, axes = plt.subplots(1, 3, figsize=(14, 4))
        plot_history(result["history"], ax=axes[0])
        plot_filters(result["model"], ax=axes[1])
        plot_misclassified(result["model"], x, y, ax=axes[2])
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return
    two_d = x.shape[1] == 2
    fig, axes = plt.subplots(1, 2 if two_d else 1, figsize=(10 if two_d else 5, 4), squeeze=False)
    if "summed_error_every_100_iterations" in result:  # what the neuron tutorial plots
        plot_curve(result["summed_error_every_100_iterations"], ax=axes[0][0], every=100, xlabel="iteration",
                   title="summed squared error over the 8 points")
    else:
        plot_history(result["history"], ax=axes[0][0])
    if two_d:
        plot_decision_boundary(result["model"], x, y, ax=axes[0][1])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _info(args: argparse.Namespace) -> int:
    print(f"fastnn {fastnn.__version__} on Python {platform.python_version()} ({platform.machine()})")
    for package in ("numpy", "array-api-compat", "numba", "array-api-strict", "cupy-cuda12x", "cupy-cuda13x",
                    "numba-cuda", "torch", "jax", "scikit-learn", "mpi4py", "mpich"):
        try:
            print(f"  {package:<18}{metadata.version(package)}")
        except metadata.PackageNotFoundError:
            pass
    from fastnn import extensions

    problem = extensions.problem()
    kernels = "on (Numba: compiled epochs and fused kernels for numpy and cupy)" if problem is None else f"off: {problem}"
    print(f"kernels: {kernels}")
    if problem is None:
        _print_gemm()
        _print_bfloat16()
        from fastnn.kernels import cuda_toolchain

        cuda = cuda_toolchain.problem()
        print(f"cuda kernels: {'on (fused engine, CUDA graphs for small batches)' if cuda is None else f'off: {cuda}'}")
    from fastnn import allreduce

    print(f"distributed: {allreduce.describe()}")
    from fastnn import optional

    print("optional parts:")
    for line in optional.report():
        print(line)
    usable = fastnn.available_backends()
    print(f"backends usable here: {', '.join(usable)} (active: {fastnn.backend().name})")
    if "cupy" not in usable:
        from fastnn.backend import cupy_problem

        print(f"  cupy: {cupy_problem()}")
    else:
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        print(f"  cupy device: {props['name'].decode()}")
    return 0


def _print_gemm() -> None:
    """Which BLAS multiplies on numpy, and why MKL does not where it does not."""
    from fastnn.backend import resolve
    from fastnn.kernels import gemm

    usable, why_not = gemm.libraries()
    try:
        mode = resolve("numpy").gemm  # resolve, not use: info must not change the active backend
    except (ValueError, gemm.GemmUnavailableError) as err:
        mode = f"FASTNN_GEMM refused: {err}"
    if mode == "auto":
        mode = f"auto, per shape the faster of {', '.join(usable)}" if len(usable) > 1 else "openblas"
    print(f"gemm: {mode} (force one: fastnn.use('numpy', gemm=...) or FASTNN_GEMM)")
    if "mkl" in usable:
        print(f"  mkl: {usable['mkl'].version} ({usable['mkl'].path})")
    for name, why in why_not.items():
        print(f"  {name}: unavailable: {why}")


def _print_bfloat16() -> None:
    """Which library multiplies precision="bfloat16" products, or why none runs here."""
    from fastnn.kernels import bfloat16

    print(f"bfloat16: {bfloat16.describe()} (precision='bfloat16', kernels=False rounds in pure code anywhere)")
    why_not = bfloat16.libraries()[1]
    for name, why in why_not.items():
        print(f"  {name}: unavailable: {why}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not the usage block
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _count(minimum: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def _gpucheck(args: argparse.Namespace) -> int:
    from fastnn import gpucheck

    return gpucheck.main(args.out, run_tests=not args.no_tests)


def _export(args: argparse.Namespace) -> int:
    model = fastnn.load(args.source)
    target = Path(args.target)
    written = model.export_onnx(target) if target.suffix == ".onnx" else model.save(target)
    print(f"{args.source} -> {written}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fastnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = sub.add_parser("train", help="train an example network and print its metrics")
    train.add_argument("name", choices=sorted(EXAMPLES))
    train.add_argument("--backend", default="numpy", choices=[*BACKEND_NAMES, "auto"])
    train.add_argument("--epochs", type=_count(0), default=None, help="override the example's epochs")
    train.add_argument("--batch-size", type=_count(1), default=None, help="default: the example's")
    train.add_argument("--verbose", type=_count(0), default=1, help="0 hides the progress bar; 2 prints a line per epoch")
    train.add_argument("--plot", metavar="FILE",
                       help="write training curves (and the decision boundary) as PNG, PDF or SVG")
    train.add_argument("--save", metavar="FILE", help="save the trained model (.npz; load with fastnn.load)")
    train.set_defaults(run=_train)
    info = sub.add_parser("info", help="backends usable here, devices and versions")
    info.set_defaults(run=_info)
    check = sub.add_parser("gpucheck", help="the GPU path's acceptance run: tests, numpy vs cupy, host syncs, "
                           "step timings vs PyTorch and cuBLAS (needs an NVIDIA GPU)")
    check.add_argument("--out", required=True, metavar="DIR", help="where gpucheck.json and gpucheck.md go")
    check.add_argument("--no-tests", action="store_true", help="skip the suite's GPU tests (a quicker rerun)")
    check.set_defaults(run=_gpucheck)
    export = sub.add_parser("export", help="convert a saved model: to ONNX (.onnx), .safetensors or .npz")
    export.add_argument("source", help="a model file from model.save (.npz or .safetensors)")
    export.add_argument("target", help="model.onnx (ONNX: docs/deploy.md), .safetensors or .npz")
    export.set_defaults(run=_export)
    bench = sub.add_parser("bench", help="time training steps: fastnn vs PyTorch vs the GEMM-only bound",
                           add_help=False)
    bench.set_defaults(run=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # its own options: see `fastnn bench --help`
        from fastnn.bench import main as bench_main

        return bench_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (fastnn.BackendUnavailableError, ImportError, OSError, ValueError, TypeError) as err:
        print(f"fastnn: error: {err}", file=sys.stderr)  # the user's to fix: one line, no traceback
        return 2
