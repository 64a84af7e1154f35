"""A GPU stand-in that runs the CuPy engines' own step and epoch code on the CPU and fails
loudly where a GPU would wait on the host.

`CheckingDevice` is a `gpu_step.Device` over array-api-strict arrays: each kernel launch runs
the kernel's pure twin (`fastnn.kernels.cuda_twins`) and is recorded with its arguments; it
counts allocations and host reads, and its `capture` records instead of running, as CUDA graph
capture does, replaying exactly the recorded launches. `make_host_reads_fail()` makes every
array-api-strict array raise on any read by the host (bool, float, int, index, iteration,
NumPy conversion, DLPack), except through the device's one `to_host`."""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import array_api_strict as xp
import numpy as np
from array_api_strict._array_object import Array

from fastnn.kernels.cuda_twins import twin_of

HOST_READS = ("__bool__", "__float__", "__int__", "__index__", "__complex__", "__array__", "__dlpack__",
              "__buffer__", "__iter__")


class HostReadError(AssertionError):
    """An array was read by the host where a GPU step must not wait for the device."""


_allowed = [False]
_counted: list[list[str]] = []  # when not empty: reads are recorded there instead of raising


def make_host_reads_fail(monkeypatch: Any) -> None:
    """From now until the test ends, every host read of an array-api-strict array raises
    HostReadError (pytest's monkeypatch puts the methods back)."""
    for name in HOST_READS:
        original = getattr(Array, name)

        def guarded(self, *args, _original=original, _name=name, **kwargs):
            if _counted:
                _counted[0].append(_name)
            elif not _allowed[0]:
                raise HostReadError(f"host read of a device array ({_name}) inside a GPU step")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Array, name, guarded)


@contextlib.contextmanager
def host_reads_counted() -> Iterator[list[str]]:
    """Inside the block (after make_host_reads_fail), host reads are listed instead of raising."""
    _counted.append([])
    try:
        yield _counted[0]
    finally:
        _counted.clear()


@contextlib.contextmanager
def host_reads_allowed() -> Iterator[None]:
    _allowed[0] = True
    try:
        yield
    finally:
        _allowed[0] = False


class CheckingDevice:
    xp = xp

    def __init__(self) -> None:
        self.allocations = 0
        self.reads = 0
        self.launches: list[tuple[Any, tuple]] = []  # (kernel or op name, arguments), in order
        self.captures = 0
        self.replays = 0
        self._recording: list[Callable[[], None]] | None = None

    def _do(self, name: Any, args: tuple, run: Callable[[], None]) -> None:
        self.launches.append((name, args))
        if self._recording is not None:
            self._recording.append(run)  # captured: recorded, not run
        else:
            run()

    def empty(self, shape, dtype):
        if self._recording is not None:
            raise AssertionError(f"allocation of {shape} inside a captured region")
        self.allocations += 1
        return xp.zeros(shape, dtype=getattr(xp, str(dtype)))

    def matmul(self, a, b, out):
        def run():
            out[...] = a @ b

        self._do("matmul", (a, b, out), run)

    def launch(self, kernel, grid, block, *args):
        twin = twin_of(kernel)
        host = tuple(float(a) if isinstance(a, np.floating) else a for a in args)
        self._do(kernel, args, lambda: twin(*host))

    def fill(self, a, value):
        def run():
            a[...] = value

        self._do("fill", (a,), run)

    def copy(self, dst, src):
        def run():
            dst[...] = src

        self._do("copy", (dst, src), run)

    def take_rows(self, src, index, out):
        def run():
            out[...] = xp.take(src, index, axis=0)

        self._do("take_rows", (src, index, out), run)

    def upload(self, host, out):
        if self._recording is not None:
            raise AssertionError("a host-to-device copy inside a captured region")
        out[...] = xp.asarray(host)

    def to_host(self, a):
        if self._recording is not None:
            raise HostReadError("a read back inside a captured region")
        self.reads += 1
        with host_reads_allowed():
            return np.asarray(a)

    def capture(self, fn):
        self._recording, recorded = [], None
        try:
            fn()
        finally:
            recorded, self._recording = self._recording, None
        self.captures += 1

        def replay():
            self.replays += 1
            for run in recorded:
                run()

        return replay

    def side_stream(self):
        return "side stream"

    @contextlib.contextmanager
    def running_on(self, stream):
        yield


class SimulatorDevice:
    """The real CUDA kernels on NumPy arrays, through Numba's CUDA simulator
    (NUMBA_ENABLE_CUDASIM=1): the fused step's launches as a GPU would make them."""

    def __init__(self) -> None:
        import array_api_compat.numpy as np_xp

        self.xp = np_xp

    def empty(self, shape, dtype):
        return np.zeros(shape, dtype)

    def matmul(self, a, b, out):
        np.matmul(a, b, out=out)

    def launch(self, kernel, grid, block, *args):
        kernel[grid, block](*args)

    def fill(self, a, value):
        a.fill(value)

    def copy(self, dst, src):
        np.copyto(dst, src)

    def take_rows(self, src, index, out):
        np.take(src, index, axis=0, out=out)

    def upload(self, host, out):
        np.copyto(out, host)

    def to_host(self, a):
        return np.array(a)

    def capture(self, fn):
        return fn

    def side_stream(self):
        return None

    @contextlib.contextmanager
    def running_on(self, stream):
        yield
