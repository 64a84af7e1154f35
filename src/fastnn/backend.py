"""The one module that knows backends exist.

It resolves a name ("numpy", "cupy", "array_api_strict", "torch", "jax", "auto") and a device
to a `Backend` — the Array-API namespace, device, float dtype and kernel table that layers use —
and converts arrays between backends. Everything else in fastnn is written against `backend.xp`
and never imports NumPy, CuPy, PyTorch or JAX for computation.
"""

from __future__ import annotations

import contextvars
import functools
import os
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

BACKEND_NAMES = ("numpy", "cupy", "array_api_strict", "torch", "jax")
GEMM_MODES = ("auto", "openblas", "mkl")  # the NumPy backend's matrix products: fastnn.kernels.gemm
MATMUL_PRECISIONS = ("highest", "tf32")  # CuPy's float32 products: exact float32, or TF32 tensor cores
PRECISIONS = ("default", "bfloat16")  # a layer's products: in the model's dtype, or bf16 operands (numpy, float32)
_CUPY_HINT = 'install CuPy for your CUDA version: pip install "fastnn[cuda12]" or "fastnn[cuda13]"'


class BackendUnavailableError(RuntimeError):
    """A backend was requested that cannot run on this machine (package missing, no device...)."""


class BackendMismatchError(TypeError):
    """An array belongs to a different backend than the one in use."""


@dataclass(frozen=True)
class Backend:
    """An active backend: its name, Array-API namespace, device, default float dtype and kernels."""

    name: str
    xp: ModuleType
    device: Any
    dtype: Any
    kernels: bool = True
    device_name: str | None = None  # the device as asked for ("cuda:1", "mps"...); None: the default
    gemm: str = "auto"  # which BLAS multiplies on numpy: per shape the fastest, or one forced
    matmul_precision: str = "highest"  # "tf32": CuPy's float32 GEMMs on TF32 tensor cores (docs/gpu.md#tf32)
    precision: str = "default"  # "bfloat16": products of bf16 operands, float32 sums (docs/guide/performance.md)
    ops: Any = field(default=None, compare=False, repr=False)  # the per-operation table (fastnn.ops)
    engines: tuple = field(default=(), compare=False, repr=False)  # what trains on it (fastnn.engines)

    @property
    def dtype_name(self) -> str:
        return "float64" if self.dtype == self.xp.float64 else "float32"

    def asarray(self, x: Any, dtype: Any = None, copy: bool = False) -> Any:
        """`x` (host data or an array of this backend) as an array of this backend; with `copy`,
        one of its own (writable, sharing memory with nothing: what parameters must be)."""
        x = _to_backend(self, x, dtype)
        return self.xp.asarray(x, copy=True) if copy else x

    def is_native(self, x: Any) -> bool:
        """True when `x` is already an array of this backend."""
        return owner_of(x) == self.name

    def with_options(self, dtype: Any = None, kernels: bool | None = None) -> "Backend":
        """The same backend with another float dtype and/or kernel setting."""
        kernels = self.kernels if kernels is None else kernels
        return _make(self.name, dtype or self.dtype_name, kernels, self.device_name, self.gemm if kernels else "auto",
                     self.matmul_precision, self.precision)

    def on_its_device(self, x: Any) -> bool:
        """True when array `x` (of this backend) lives on this backend's device."""
        return array_api_compat.device(x) == self.device


# ---------------------------------------------------------------------------------------------
# Namespaces and probing


def import_namespace(name: str, device: str | None = None, dtype: str = "float32") -> tuple[ModuleType, Any]:
    """(Array-API namespace, device) for a backend name and device ("cpu", "cuda", "cuda:1",
    "mps"...; None: the backend's default); raises BackendUnavailableError."""
    if name == "cupy":
        _probe_cupy()
        import array_api_compat.cupy as xp
        import cupy

        return xp, cupy.cuda.Device(_device_index(device))
    if name == "torch":
        return _torch_namespace(device)
    if name == "jax":
        return _jax_namespace(device, dtype)
    if device not in (None, "cpu"):
        raise BackendUnavailableError(f"backend {name!r} runs on the CPU only, not on {device!r}")
    if name == "numpy":
        import array_api_compat.numpy as xp

        return xp, "cpu"
    if name == "array_api_strict":
        try:
            import array_api_strict as xp
        except ImportError as err:
            raise BackendUnavailableError(
                "array_api_strict is not installed: pip install array-api-strict"
            ) from err
        return xp, xp.Device("CPU_DEVICE")
    raise ValueError(f"unknown backend {name!r}; choose one of {BACKEND_NAMES + ('auto',)}")


def _device_index(device: str | None) -> int | None:
    """CuPy's device number from None, "cuda" or "cuda:N"."""
    if device in (None, "cuda", "gpu"):
        return None
    head, _, index = str(device).partition(":")
    if head not in ("cuda", "gpu") or not index.isdigit():
        raise BackendUnavailableError(f"backend 'cupy' takes device 'cuda' or 'cuda:N', not {device!r}")
    return int(index)


def _torch_namespace(device: str | None) -> tuple[ModuleType, Any]:
    try:
        import array_api_compat.torch as xp
        import torch
    except ImportError as err:
        raise BackendUnavailableError('PyTorch is not installed: pip install "fastnn[torch]"') from err
    try:
        where = torch.device(device or "cpu")
        (torch.ones(2, 2, device=where) @ torch.ones(2, 2, device=where)).sum().item()
    except (RuntimeError, AssertionError, ValueError) as err:  # a bad name, or no such device here
        raise BackendUnavailableError(f"backend 'torch' cannot compute on device {device!r}: {err}") from err
    return xp, where


def _jax_namespace(device: str | None, dtype: str) -> tuple[ModuleType, Any]:
    try:
        import jax
        import jax.numpy as xp
    except ImportError as err:
        raise BackendUnavailableError('JAX is not installed: pip install "fastnn[jax]"') from err
    if dtype == "float64":  # JAX computes in 32 bits unless x64 is switched on, process-wide
        jax.config.update("jax_enable_x64", True)
    platform, _, index = (device or jax.default_backend()).partition(":")
    try:
        where = jax.devices("gpu" if platform == "cuda" else platform)[int(index or 0)]
    except (RuntimeError, IndexError, ValueError) as err:
        raise BackendUnavailableError(f"backend 'jax' has no device {device!r}: {err}") from err
    return xp, where


@functools.cache
def cupy_problem() -> str | None:
    """Why CuPy cannot run here (None when it can). Probed for real once: CuPy imports fine
    without a GPU and only fails at the first allocation."""
    try:
        import cupy
    except ImportError:
        return f"CuPy is not installed; {_CUPY_HINT}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDARuntimeError: no driver, or driver too old
        return f"CuPy cannot reach a CUDA driver ({err}); install an NVIDIA driver or {_CUPY_HINT}"
    if count == 0:
        return "CuPy is installed but no CUDA GPU is visible (check CUDA_VISIBLE_DEVICES)"
    try:
        a = cupy.arange(4, dtype=cupy.float32).reshape(2, 2)
        float((cupy.exp(a) + 1).sum())
        (a @ a).get()
    except Exception as err:
        return f"CuPy found a GPU but could not compute on it ({type(err).__name__}: {err}); {_CUPY_HINT}"
    return None


def _probe_cupy() -> None:
    problem = cupy_problem()
    if problem:
        raise BackendUnavailableError(f"backend 'cupy' is unavailable: {problem}")


def available_backends() -> list[str]:
    """Names of the backends usable on this machine, in order of preference for speed."""
    names = []
    for name in ("cupy", "numpy", "array_api_strict", "torch", "jax"):
        try:
            import_namespace(name)
        except BackendUnavailableError:
            continue
        names.append(name)
    return names


def _float_dtype(xp: ModuleType, dtype: Any) -> Any:
    name = getattr(dtype, "__name__", None) or str(dtype)
    name = name.rsplit(".", 1)[-1]
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return getattr(xp, name)


@functools.cache
def _make(name: str, dtype: str, kernels: bool, device: str | None = None, gemm: str | None = None,
          matmul_precision: str = "highest", precision: str = "default") -> Backend:
    if name == "auto":
        name = "cupy" if cupy_problem() is None else "numpy"
    if gemm is None:  # one Backend (and one ops table) per resolved setting
        return _make(name, dtype, kernels, device, _gemm_mode(name, None) if kernels else "auto", matmul_precision,
                     precision)
    _gemm_mode(name, gemm)
    _check_matmul_precision(name, matmul_precision)
    _check_precision(name, dtype, kernels, precision)
    xp, where = import_namespace(name, device, dtype)
    backend = Backend(name, xp, where, _float_dtype(xp, dtype), kernels, device, gemm, matmul_precision, precision)
    from fastnn import engines, ops  # late: both build on the layers, which import this module

    object.__setattr__(backend, "ops", ops.ops_for(backend))
    object.__setattr__(backend, "engines", engines.for_backend(backend))
    return backend


# ---------------------------------------------------------------------------------------------
# Selecting the active backend

_ENV_DEFAULT = os.environ.get("FASTNN_BACKEND", "numpy")
_ENV_KERNELS = os.environ.get("FASTNN_KERNELS", "1").strip().lower() not in ("0", "false", "no", "off")
_ENV_GEMM = os.environ.get("FASTNN_GEMM", "auto").strip().lower()
_active: contextvars.ContextVar[Backend | None] = contextvars.ContextVar("fastnn_backend", default=None)


def resolve(name: str | Backend | None = None, dtype: Any = None, kernels: bool | None = None,
            device: str | None = None, gemm: str | None = None, matmul_precision: str | None = None,
            precision: str | None = None) -> Backend:
    """The Backend for a name (None: the active one), with optional dtype/kernel/device/gemm/
    matmul-precision/precision overrides."""
    if isinstance(name, Backend) or name is None:
        current = name or backend()
        if device is None and gemm is None and matmul_precision is None and precision is None:
            return current.with_options(dtype, kernels)
        name, dtype, device = current.name, dtype or current.dtype_name, device or current.device_name
        kernels, gemm = current.kernels if kernels is None else kernels, gemm or current.gemm
        matmul_precision = matmul_precision or current.matmul_precision
        precision = precision or current.precision
    if not isinstance(name, str) or name.strip().lower() not in BACKEND_NAMES + ("auto",):
        raise ValueError(f"unknown backend {name!r}; choose one of {BACKEND_NAMES + ('auto',)}")
    if device is not None and not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'cpu', 'cuda', 'cuda:1' or 'mps', got {device!r}")
    dtype_name = "float32" if dtype is None else _float_dtype(np, dtype).__name__
    return _make(name.strip().lower(), dtype_name, _ENV_KERNELS if kernels is None else bool(kernels), device, gemm,
                 matmul_precision or "highest", precision or "default")


def _check_precision(name: str, dtype: str, kernels: bool, precision: str) -> None:
    """Refuse a precision this backend, dtype or machine cannot run, saying what can."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "default":
        return
    if name != "numpy":
        raise ValueError(f"precision={precision!r} is the numpy backend's (CPU bf16 GEMMs); on {name}, use its own "
                         "mixed precision (torch.autocast, or fastnn.use('cupy', matmul_precision='tf32'))")
    if dtype != "float32":
        raise ValueError(f"precision={precision!r} rounds float32 operands; the model's dtype is {dtype}: use "
                         "dtype='float32'")
    if kernels:
        from fastnn import extensions

        why = extensions.problem() if not extensions.load() else extensions.bfloat16_problem()
        if why is not None:
            raise BackendUnavailableError(f"precision='bfloat16' cannot run fast here: {why}. "
                                          "fastnn.use('numpy', precision='bfloat16', kernels=False) runs the same "
                                          "arithmetic by rounding to bfloat16 in pure Array-API code (slow: for "
                                          "checking accuracy)")


def _check_matmul_precision(name: str, precision: str) -> None:
    if precision not in MATMUL_PRECISIONS:
        raise ValueError(f"matmul_precision must be one of {MATMUL_PRECISIONS}, got {precision!r}")
    if precision != "highest" and name != "cupy":
        raise ValueError(f"matmul_precision={precision!r} sets CuPy's float32 products; backend {name!r} has no "
                         "such option (use fastnn.use('cupy', matmul_precision='tf32') on an NVIDIA GPU)")


def apply_matmul_precision(be: Backend) -> None:
    """Set CuPy's float32 GEMM compute type (process-wide in CuPy) to what `be` asks for."""
    if be.name != "cupy":
        return
    import cupy
    from cupy._core import _routines_linalg as linalg  # CuPy's one switch for it, beside CUPY_TF32

    wanted = linalg.COMPUTE_TYPE_TF32 if be.matmul_precision == "tf32" else linalg.COMPUTE_TYPE_DEFAULT
    with be.device:
        linalg.set_compute_type(cupy.float32, wanted)


def _gemm_mode(name: str, gemm: str | None) -> str:
    """The gemm mode asked for (None: FASTNN_GEMM on numpy with kernels, else "auto"), checked."""
    if gemm is None:
        gemm = _ENV_GEMM if name == "numpy" else "auto"
        where = " (from FASTNN_GEMM)"
    else:
        where = ""
    if gemm not in GEMM_MODES:
        raise ValueError(f"gemm must be one of {GEMM_MODES}, got {gemm!r}{where}")
    if gemm != "auto" and name != "numpy":
        raise ValueError(f"gemm={gemm!r} chooses the BLAS of the numpy backend; {name} multiplies with its own")
    return gemm


def backend() -> Backend:
    """The active backend (set by `use`, else by FASTNN_BACKEND, else NumPy)."""
    active = _active.get()
    return active if active is not None else resolve(_ENV_DEFAULT)


class use:
    """Select the backend: `fastnn.use("cupy")`, `fastnn.use("torch", device="cuda")`, or
    `with fastnn.use("array_api_strict"): ...`. On numpy, `gemm="openblas"` or `"mkl"` forces
    the BLAS of every matrix product (default "auto", or FASTNN_GEMM: the faster per shape). On
    cupy, `matmul_precision="tf32"` runs float32 products on TF32 tensor cores (off by default:
    10 mantissa bits in the products; docs/gpu.md#tf32). On numpy, `precision="bfloat16"`
    multiplies every layer's products from bfloat16 operands with float32 sums (oneDNN's or
    MKL's bf16 GEMM on AMX or AVX512-BF16 CPUs; weights, gradients and optimizer state stay float32).

    The choice lives in a ContextVar, so it never leaks into other threads; as a context
    manager it restores the previous backend on exit.
    """

    def __init__(self, name: str = "numpy", dtype: Any = None, kernels: bool | None = None,
                 device: str | None = None, gemm: str | None = None, matmul_precision: str | None = None,
                 precision: str | None = None) -> None:
        self.backend = resolve(name, dtype, kernels, device, gemm, matmul_precision, precision)
        apply_matmul_precision(self.backend)
        self._token = _active.set(self.backend)

    def __enter__(self) -> Backend:
        return self.backend

    def __exit__(self, *exc: object) -> None:
        _active.reset(self._token)
        apply_matmul_precision(backend())

    def __repr__(self) -> str:
        return (f"use({self.backend.name!r}, dtype={self.backend.dtype_name!r}, kernels={self.backend.kernels}, "
                f"device={str(self.backend.device)!r}, gemm={self.backend.gemm!r}, "
                f"matmul_precision={self.backend.matmul_precision!r}, precision={self.backend.precision!r})")


# ---------------------------------------------------------------------------------------------
# Moving arrays between backends


def owner_of(x: Any) -> str | None:
    """The backend name owning array `x`, or None for host data that is not an array."""
    if isinstance(x, np.ndarray):
        return "numpy"
    if array_api_compat.is_jax_array(x):
        return "jax"
    module = type(x).__module__.split(".", 1)[0]
    return module if module in ("cupy", "array_api_strict", "torch") else None


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy array on the host holding `x`: any backend's array, any DLPack producer on the
    host (without a copy), lists and scalars."""
    owner = owner_of(x)
    if owner == "numpy":
        return x
    if owner == "cupy":
        return x.get()
    if owner == "torch":
        return x.detach().cpu().numpy()
    if owner == "jax":
        return np.asarray(x)
    if hasattr(x, "__dlpack__"):
        try:
            return np.from_dlpack(x)
        except (BufferError, RuntimeError, TypeError, ValueError) as err:
            raise TypeError(f"cannot bring a {type(x).__name__} to the host through DLPack ({err}); "
                            "convert it to a NumPy array first") from err
    return np.asarray(x)


def _from_dlpack(be: Backend, x: Any) -> Any:
    """`x` as an array of `be` through DLPack, without a copy where the devices match; None
    where it cannot (another device, an unsupported dtype), for the host route to try."""
    try:
        return be.xp.from_dlpack(x)
    except (AttributeError, BufferError, RuntimeError, TypeError, ValueError):
        return None


def _to_backend(be: Backend, x: Any, dtype: Any) -> Any:
    if not be.is_native(x) and hasattr(x, "__dlpack__"):
        shared = _from_dlpack(be, x)  # zero-copy where the devices match; else the host route below
        x = x if shared is None else shared
    if not be.is_native(x):
        x = to_numpy(x)
    if getattr(x.dtype, "kind", "f") not in "biuf":  # strict's dtypes have no kind: always numeric
        raise TypeError(f"expected numeric data, got an array of dtype {x.dtype}")
    if not be.is_native(x):
        x = be.xp.asarray(np.ascontiguousarray(x), device=be.device)
    elif not be.on_its_device(x):
        x = be.xp.asarray(x, device=be.device)
    if dtype is None:
        dtype = be.dtype if be.xp.isdtype(x.dtype, "real floating") else None
    elif isinstance(dtype, str):
        dtype = getattr(be.xp, dtype)
    return x if dtype is None or x.dtype == dtype else be.xp.astype(x, dtype)


def asarray(x: Any, dtype: Any = None) -> Any:
    """`x` (lists, NumPy, CuPy, strict, PyTorch or JAX arrays, any DLPack producer) as an array
    of the active backend, on its device.

    Floating data takes the backend's float dtype unless `dtype` says otherwise; integer and
    boolean data keep their dtype.
    """
    return backend().asarray(x, dtype)


def host_rng(seed: int | np.random.SeedSequence | None) -> np.random.Generator:
    """A NumPy Generator on the host: every random draw happens there, so a seed gives the same
    numbers on every backend (array-api-strict has no RNG at all)."""
    return np.random.default_rng(seed)
