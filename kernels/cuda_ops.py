"""The CuPy backend's ops table: cuBLAS GEMMs (through the Array API) plus the Numba CUDA
kernels of `cuda.py`, launched on CuPy's current stream. Written against `xp`, so the CUDA
simulator can drive the same code with NumPy arrays in CI."""

from __future__ import annotations

from typing import Any

from numba import cuda as numba_cuda

from fastnn.kernels import cuda, cuda_windows
from fastnn.kernels.scalar import adam_step_sizes
from fastnn.ops import ArrayOps

LOSS_KERNELS = {
    ("binary_crossentropy", True): cuda.sigmoid_bce_logits,
    ("categorical_crossentropy", True): cuda.softmax_cce_logits,
}


class CudaOps(ArrayOps):
    name = "numba-cuda"

    def __init__(self, backend: Any) -> None:
        super().__init__(backend)
        self.float_dtypes = (self.xp.float32, self.xp.float64)

    def _launch(self, kernel: Any, grid: Any, block: Any, *args: Any) -> None:
        """Launch on CuPy's current stream, so kernels order correctly with CuPy's work."""
        if self.backend.name == "cupy":
            import cupy

            stream = numba_cuda.external_stream(cupy.cuda.get_current_stream().ptr)
            # sync=False: one stream orders the work; Numba's default syncs it per argument
            args = [numba_cuda.as_cuda_array(a, sync=False) if isinstance(a, cupy.ndarray) else a for a in args]
            kernel[grid, block, stream](*args)
        else:  # the simulator (NumPy arrays): no streams there
            kernel[grid, block](*args)

    def _supported(self, *arrays: Any) -> bool:
        if any(a is None for a in arrays):  # a Dense layer without bias: the pure path
            return False
        dtype = arrays[0].dtype
        return dtype in self.float_dtypes and all(
            a.dtype == dtype and a.flags.c_contiguous for a in arrays
        )

    def dense_forward(self, x, W, b, act, buffers=None):
        code = act.code
        if code is None or not self._supported(x, W, b):
            return super().dense_forward(x, W, b, act, buffers)
        z = x @ W
        y = self.xp.empty_like(z) if act.needs_z else z
        alpha = W.dtype.type(act.alpha)
        self._launch(cuda.dense_kernels(code).bias_act, *cuda.flat_grid(z.size), z, b, y, alpha)
        return y, (z if act.needs_z else None)

    def dense_backward(self, dy, x, W, y, z, act, need_dx, buffers=None):
        code = act.code
        if code is None or not self._supported(dy, x, W, y):
            return super().dense_backward(dy, x, W, y, z, act, need_dx, buffers)
        dz = self.xp.empty_like(dy)
        db = self.xp.zeros((W.shape[1],), dtype=W.dtype, device=self.backend.device)
        alpha = W.dtype.type(act.alpha)
        grid, block = cuda.column_grid(*dy.shape)
        self._launch(cuda.dense_kernels(code).act_grad_bias, grid, block, dy, y, y if z is None else z, alpha, dz, db)
        dx = dz @ self.xp.matrix_transpose(W) if need_dx else None
        return dx, self.xp.matrix_transpose(x) @ dz, db

    def loss(self, loss, y_pred, y_true, buffers=None, weights=None):
        kernel = LOSS_KERNELS.get((loss.name, loss.from_logits))
        if kernel is None or weights is not None or not self._supported(y_pred, y_true):
            return super().loss(loss, y_pred, y_true, buffers, weights)
        grad = self.xp.empty_like(y_pred)
        total = self.xp.zeros((1,), dtype=self.xp.float64, device=self.backend.device)
        rows_kernel = kernel is cuda.softmax_cce_logits
        grid = cuda.flat_grid(y_pred.shape[0] if rows_kernel else y_pred.size)
        self._launch(kernel, *grid, y_pred, y_true, grad, total)
        return total[0], grad

    def im2col(self, x, window, fill=0.0, buffers=None):
        if not self._supported(x):
            return super().im2col(x, window, fill, buffers)
        (kh, kw), (sh, sw), (oh, ow) = window.size, window.strides, window.output_hw
        out = self.xp.empty((x.shape[0] * oh * ow, kh * kw * x.shape[3]), dtype=x.dtype, device=self.backend.device)
        top, _, left, _ = window.pads
        self._launch(cuda_windows.im2col, *cuda.flat_grid(out.size), x, kh, kw, sh, sw, top, left, oh, ow,
                     x.dtype.type(fill), out)
        return out

    def col2im(self, cols, n, window, buffers=None):
        if not self._supported(cols):
            return super().col2im(cols, n, window, buffers)
        (kh, kw), (sh, sw), (oh, ow) = window.size, window.strides, window.output_hw
        dx = self.xp.empty((n, *window.input_hw, cols.shape[1] // (kh * kw)), dtype=cols.dtype,
                           device=self.backend.device)
        top, _, left, _ = window.pads
        self._launch(cuda_windows.col2im, *cuda.flat_grid(dx.size), cols, kh, kw, sh, sw, top, left, oh, ow, dx)
        return dx

    def max_pool(self, x, window, buffers=None):
        if not self._supported(x):
            return super().max_pool(x, window, buffers)
        (kh, kw), (sh, sw), (oh, ow) = window.size, window.strides, window.output_hw
        shape = (x.shape[0], oh, ow, x.shape[3])
        y = self.xp.empty(shape, dtype=x.dtype, device=self.backend.device)
        first = self.xp.empty(shape, dtype=self.xp.int64, device=self.backend.device)
        top, _, left, _ = window.pads
        self._launch(cuda_windows.max_pool, *cuda.flat_grid(y.size), x, kh, kw, sh, sw, top, left, oh, ow, y, first)
        return y, first

    def max_pool_backward(self, dy, memo, window, buffers=None):
        if not self._supported(dy) or memo.ndim != 4:  # else the pure path's memo
            return super().max_pool_backward(dy, memo, window, buffers)
        dx = self.xp.zeros((dy.shape[0], *window.input_hw, dy.shape[3]), dtype=dy.dtype, device=self.backend.device)
        self._launch(cuda_windows.max_pool_backward, *cuda.flat_grid(dy.size), dy, memo, dx)
        return dx

    def sgd_update(self, opt, p, g, state) -> bool:
        if not self._supported(p, g):
            return False
        t = p.dtype.type
        buf = state.get("momentum", g)  # g stands in when momentum is 0: read never, written never
        flat = [self.xp.reshape(a, (-1,)) for a in (p, g, buf)]
        self._launch(cuda.sgd_update, *cuda.flat_grid(p.size), *flat, t(opt.lr), t(opt.momentum), opt.nesterov)
        return True

    def adam_update(self, opt, p, g, state) -> bool:
        if not self._supported(p, g):
            return False
        t = p.dtype.type
        step, root_bc2 = adam_step_sizes(opt.lr, opt.beta_1, opt.beta_2, opt.iterations)
        flat = [self.xp.reshape(a, (-1,)) for a in (p, g, state["m"], state["v"])]
        self._launch(cuda.adam_update, *cuda.flat_grid(p.size), *flat,
                     t(opt.beta_1), t(opt.beta_2), t(step), t(root_bc2), t(opt.epsilon))
        return True
