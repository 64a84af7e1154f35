"""What `fastnn info` says of each optional part: available (and its version), or why not and
the command that installs it."""

from __future__ import annotations

import importlib.util
from importlib import metadata
from typing import Callable


def _version(*packages: str) -> str | None:
    for package in packages:
        try:
            return f"{package} {metadata.version(package)}"
        except metadata.PackageNotFoundError:
            continue
    return None


def _backend(name: str) -> Callable[[], str | None]:
    def why_not() -> str | None:
        from fastnn.backend import BackendUnavailableError, import_namespace

        try:
            import_namespace(name)
        except BackendUnavailableError as err:
            return str(err)
        return None
    return why_not


def _module(name: str) -> Callable[[], str | None]:
    return lambda: None if importlib.util.find_spec(name) else f"{name} is not installed"


def _cuda_kernels() -> str | None:
    from fastnn import extensions

    if extensions.problem() is not None:
        return extensions.problem()
    from fastnn.kernels import cuda_toolchain

    return cuda_toolchain.problem()


def _mpi() -> str | None:
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed"
    return None


def _kernel_part(module: str, name: str) -> Callable[[], str | None]:
    """Why library `name` that fastnn.kernels.<module> loads is not usable here."""
    def why_not() -> str | None:
        from fastnn import extensions

        if extensions.problem() is not None:
            return f"fastnn's kernels are off ({extensions.problem()})"
        return importlib.import_module(f"fastnn.kernels.{module}").libraries()[1].get(name)

    return why_not


def _bfloat16() -> str | None:
    """Why precision="bfloat16" cannot run on bf16 units here (it always runs with kernels=False)."""
    from fastnn import extensions

    if extensions.problem() is not None:
        return f"fastnn's kernels are off ({extensions.problem()}); precision='bfloat16', kernels=False rounds in pure code"
    return extensions.bfloat16_problem()


# (name, packages whose version is shown, why it is not usable, how to install it)
PARTS: list[tuple[str, tuple[str, ...], Callable[[], str | None], str]] = [
    ("cupy", ("cupy-cuda13x", "cupy-cuda12x"), _backend("cupy"), 'pip install "fastnn[cuda13]" (or [cuda12])'),
    ("numba-cuda", ("numba-cuda",), _cuda_kernels, 'pip install "fastnn[cuda13]" (or [cuda12])'),
    ("torch", ("torch",), _backend("torch"), 'pip install "fastnn[torch]"'),
    ("jax", ("jax",), _backend("jax"), 'pip install "fastnn[jax]"'),
    ("mpi4py", ("mpi4py",), _mpi, 'pip install "fastnn[mpi]"'),
    ("mkl", ("mkl",), _kernel_part("gemm", "mkl"), 'pip install "fastnn[mkl]"'),
    ("onednn", ("onednn-cpu-gomp",), _kernel_part("bfloat16", "onednn"), 'pip install "fastnn[onednn]"'),
    ("scikit-learn", ("scikit-learn",), _module("sklearn"), 'pip install "fastnn[sklearn]"'),
    ("onnx", ("onnx", "onnxruntime"), _module("onnx"), 'pip install "fastnn[onnx]"'),
    ("matplotlib", ("matplotlib",), _module("matplotlib"), 'pip install "fastnn[plot]"'),
    ("bfloat16", (), _bfloat16, ""),
]


def report() -> list[str]:
    """One line per optional part: 'name: available (version)' or 'name: unavailable: why; install: ...'."""
    lines = []
    for name, packages, why_not, install in PARTS:
        problem = why_not()
        if problem is None:
            version = _version(*packages)
            lines.append(f"  {name}: available" + (f" ({version})" if version else ""))
        else:
            hint = f"; install: {install}" if install and "pip install" not in problem else ""
            lines.append(f"  {name}: unavailable: {problem}{hint}")
    return lines
