"""CuPy as the `gpu_step.Device` of the fused GPU engines: cuBLAS GEMMs into given buffers,
Numba CUDA kernels launched on CuPy's current stream with device views made once per buffer
(no per-argument stream sync), and CUDA-graph capture on a non-default stream."""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import numpy as np


class ViewCache:
    """Numba device views of CuPy arrays, made once per array and kept with it: converting an
    array costs a `__cuda_array_interface__` read each launch, and with sync=True a stream sync
    per argument (docs/gpu.md#host-syncs). `convert(array) -> view`."""

    def __init__(self, convert: Callable[[Any], Any]) -> None:
        self.convert = convert
        self.views: dict[int, tuple[Any, Any]] = {}  # id(array) -> (array, view); the array kept alive
        self.made = 0

    def __call__(self, array: Any) -> Any:
        held = self.views.get(id(array))
        if held is None or held[0] is not array:
            held = self.views[id(array)] = (array, self.convert(array))
            self.made += 1
        return held[1]


class CupyDevice:
    """The `Device` of gpu_step on CuPy's current device and stream."""

    def __init__(self, backend: Any) -> None:
        import cupy
        from numba import cuda as numba_cuda

        self.cupy, self.numba_cuda, self.xp = cupy, numba_cuda, backend.xp
        self.device = backend.device
        # the stream order is the ordering guarantee: no sync on each conversion
        self.views = ViewCache(lambda a: numba_cuda.as_cuda_array(a, sync=False))
        self._streams: dict[int, Any] = {}
        # Numba launches in its own current context (device 0) unless told: CuPy's device, then
        index = backend.device.id
        self._context = numba_cuda.gpus[index] if index else contextlib.nullcontext()

    def _stream(self) -> Any:
        ptr = self.cupy.cuda.get_current_stream().ptr
        stream = self._streams.get(ptr)
        if stream is None:
            stream = self._streams[ptr] = self.numba_cuda.external_stream(ptr)
        return stream

    def empty(self, shape: tuple[int, ...], dtype: Any) -> Any:
        with self.device:
            return self.cupy.empty(shape, dtype)

    def matmul(self, a: Any, b: Any, out: Any) -> None:
        self.cupy.matmul(a, b, out=out)

    def launch(self, kernel: Any, grid: Any, block: Any, *args: Any) -> None:
        ndarray = self.cupy.ndarray
        with self._context:
            kernel[grid, block, self._stream()](*(self.views(a) if isinstance(a, ndarray) else a for a in args))

    def fill(self, a: Any, value: float) -> None:
        a.fill(value)

    def copy(self, dst: Any, src: Any) -> None:
        self.cupy.copyto(dst, src)

    def take_rows(self, src: Any, index: Any, out: Any) -> None:
        self.cupy.take(src, index, axis=0, out=out)

    def upload(self, host: np.ndarray, out: Any) -> None:
        out.set(host, stream=self.cupy.cuda.get_current_stream())

    def to_host(self, a: Any) -> np.ndarray:
        return a.get()

    def capture(self, fn: Callable[[], None]) -> Callable[[], None]:
        """fn's launches recorded into a CUDA graph on the current stream (which must not be the
        legacy default stream); returns what replays it."""
        stream = self.cupy.cuda.get_current_stream()
        stream.begin_capture()
        try:
            fn()
        finally:
            graph = stream.end_capture()
        return lambda: graph.launch(stream)

    def side_stream(self) -> Any:
        """A non-blocking stream of this device to capture and replay graphs on."""
        with self.device:
            return self.cupy.cuda.Stream(non_blocking=True)

    @contextlib.contextmanager
    def running_on(self, stream: Any) -> Iterator[None]:
        """Run the block on `stream`, after what is queued on the current stream and before what
        is queued on it later: events between the two, no host wait."""
        current = self.cupy.cuda.get_current_stream()
        stream.wait_event(current.record())
        with stream:
            yield
        current.wait_event(stream.record())
