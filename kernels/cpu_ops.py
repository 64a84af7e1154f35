"""The NumPy backend's ops table: BLAS GEMMs into preallocated buffers plus the Numba kernels
of `cpu.py`. Anything they don't cover (softmax inside a layer, non-contiguous or non-float
arrays, probabilities instead of logits) falls back to the pure Array-API table."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn.kernels import cpu, gemm, windows
from fastnn.kernels.buffers import scratch
from fastnn.kernels.scalar import adam_step_sizes
from fastnn.ops import ArrayOps
from fastnn.spec import LossCode


def _native(*arrays: Any) -> bool:
    """True when every array is a C-contiguous float32/float64 NumPy array of one dtype."""
    first = arrays[0]
    if type(first) is not np.ndarray or first.dtype.char not in "fd":
        return False
    dtype = first.dtype
    for a in arrays:  # a plain loop: all() over a generator was a tenth of a small step
        if type(a) is not np.ndarray or a.dtype != dtype or not a.flags.c_contiguous:
            return False
    return True


class Float32Products:
    """A Dense layer's products in the model's dtype through `matmul(a, b, out)` (BLAS)."""

    def __init__(self, matmul: Any) -> None:
        self.matmul = matmul

    def dense_forward(self, x: np.ndarray, W: np.ndarray, z: np.ndarray, buffers: dict | None) -> np.ndarray:
        return self.matmul(x, W, z)

    def dense_backward(self, x: np.ndarray, W: np.ndarray, dz: np.ndarray, dW: np.ndarray, dx: np.ndarray | None,
                       buffers: dict | None) -> None:
        """dW = x.T @ dz and, unless dx is None, dx = dz @ W.T."""
        if x.shape[0] == 1:  # BLAS is slow at k = 1; see docs/kernels.md#outer-products
            cpu.outer_product(x.reshape(-1), dz.reshape(-1), dW)
        else:
            self.matmul(x.T, dz, dW)
        if dx is None:
            return
        if W.shape[1] == 1:  # an outer product again: docs/kernels.md#outer-products
            cpu.outer_product(dz.reshape(-1), W.reshape(-1), dx)
        else:
            self.matmul(dz, W.T, dx)


class NumbaOps(ArrayOps):
    name = "numba"
    block_rows = 8192  # a block's activations stay in cache; see docs/kernels.md#row-blocks
    threaded_blocks = True  # BLAS, ctypes and the nogil Numba kernels all release the GIL

    def __init__(self, backend: Any) -> None:
        super().__init__(backend)
        if self.bfloat16:  # checked where the backend was made: a bf16 GEMM runs here
            from fastnn.kernels import bfloat16

            self.products = bfloat16.library()[0]
        else:
            self.products = Float32Products(gemm.matmul_for(backend.gemm))  # OpenBLAS or MKL, per shape
        self.matmul = self.products.matmul  # matmul(a, b, out)

    def dense_forward(self, x, W, b, act, buffers=None):
        code = act.code
        if code is None or not _native(x, W, b):
            return super().dense_forward(x, W, b, act, buffers)
        shape = (x.shape[0], W.shape[1])
        z = self.products.dense_forward(x, W, scratch(buffers, "z", shape, W.dtype), buffers)
        y = scratch(buffers, "y", shape, W.dtype) if act.needs_z else z
        alpha = W.dtype.type(act.alpha)
        if act.needs_z:
            cpu.dense_kernels(code).bias_act_keep(z, b, y, alpha)
        else:
            cpu.dense_kernels(code).bias_act_inplace(z, b, alpha)
        return y, (z if act.needs_z else None)

    def dense_backward(self, dy, x, W, y, z, act, need_dx, buffers=None):
        code = act.code
        if code is None or not _native(dy, x, W, y):
            return super().dense_backward(dy, x, W, y, z, act, need_dx, buffers)
        dtype = W.dtype
        dz = scratch(buffers, "dz", dy.shape, dtype)
        db = scratch(buffers, "db", (W.shape[1],), dtype)
        saved = z if act.needs_z else y
        cpu.dense_kernels(code).act_grad_bias(dy, saved, dtype.type(act.alpha), dz, db)
        dW = scratch(buffers, "dW", W.shape, dtype)
        dx = scratch(buffers, "dx", x.shape, dtype) if need_dx else None
        self.products.dense_backward(x, W, dz, dW, dx, buffers)
        return dx, dW, db

    def loss(self, loss, y_pred, y_true, buffers=None, weights=None):
        code = loss.code
        if code is None or weights is not None or not _native(y_pred, y_true):
            return super().loss(loss, y_pred, y_true, buffers, weights)
        grad = scratch(buffers, "loss_grad", y_pred.shape, y_pred.dtype)
        if code == LossCode.CCE_LOGITS:
            return cpu.softmax_cce_logits(y_pred, y_true, grad), grad
        if code == LossCode.BCE_LOGITS:  # exp and log in NumPy's SIMD ufuncs (numba has no SVML), the rest fused
            e = scratch(buffers, "exp", y_pred.shape, y_pred.dtype)
            np.abs(y_pred, out=e)
            np.negative(e, out=e)
            np.exp(e, out=e)  # exp(-|z|) in (0, 1]: never overflows
            log_u = scratch(buffers, "log_u", y_pred.shape, y_pred.dtype)
            np.add(e, 1, out=log_u)
            np.log(log_u, out=log_u)
            flat = (a.reshape(-1) for a in (y_pred, y_true, e, log_u, grad))
            return cpu.bce_logits_from_exp(*flat), grad
        return cpu.elementwise_loss(y_pred, y_true, grad, code), grad

    def im2col(self, x, window, fill=0.0, buffers=None):
        if not _native(x):
            return super().im2col(x, window, fill, buffers)
        (kh, kw), (sh, sw), (oh, ow) = window.size, window.strides, window.output_hw
        out = scratch(buffers, "im2col", (x.shape[0] * oh * ow, kh * kw * x.shape[3]), x.dtype)
        top, _, left, _ = window.pads
        n, h, w, c = x.shape
        return windows.im2col(x.reshape(n * h, w * c), h, kh, kw, sh, sw, top, left, oh, ow, x.dtype.type(fill), out)

    def col2im(self, cols, n, window, buffers=None):
        if not _native(cols):
            return super().col2im(cols, n, window, buffers)
        (kh, kw), (sh, sw), (oh, ow) = window.size, window.strides, window.output_hw
        dx = scratch(buffers, "col2im", (n, *window.input_hw, cols.shape[1] // (kh * kw)), cols.dtype)
        dx.fill(0)
        top, _, left, _ = window.pads
        h, w, c = dx.shape[1:]
        windows.col2im(cols, h, kh, kw, sh, sw, top, left, oh, ow, dx.reshape(n * h, w * c))
        return dx

    def max_pool(self, x, window, buffers=None):
        if not _native(x):
            return super().max_pool(x, window, buffers)
        (kh, kw), (sh, sw), (oh, ow) = window.size, window.strides, window.output_hw
        shape = (x.shape[0], oh, ow, x.shape[3])
        y, first = scratch(buffers, "pool_y", shape, x.dtype), scratch(buffers, "pool_first", shape, np.int64)
        top, _, left, _ = window.pads
        windows.max_pool(x, kh, kw, sh, sw, top, left, oh, ow, y, first)
        return y, first

    def max_pool_backward(self, dy, memo, window, buffers=None):
        if not _native(dy) or type(memo) is not np.ndarray or memo.ndim != 4:  # else the pure path's memo
            return super().max_pool_backward(dy, memo, window, buffers)
        dx = scratch(buffers, "pool_dx", (dy.shape[0], *window.input_hw, dy.shape[3]), dy.dtype)
        dx.fill(0)
        return windows.max_pool_backward(dy, memo, dx)

    def sgd_update(self, opt, p, g, state) -> bool:
        if not _native(p, g):
            return False
        t = p.dtype.type
        buf = state.get("momentum", g)  # g stands in when momentum is 0: read never, written never
        cpu.sgd_update(p.reshape(-1), g.reshape(-1), buf.reshape(-1), t(opt.lr), t(opt.momentum), opt.nesterov)
        return True

    def adam_update(self, opt, p, g, state) -> bool:
        if not _native(p, g):
            return False
        t = p.dtype.type
        step, root_bc2 = adam_step_sizes(opt.lr, opt.beta_1, opt.beta_2, opt.iterations)
        cpu.adam_update(p.reshape(-1), g.reshape(-1), state["m"].reshape(-1), state["v"].reshape(-1),
                        t(opt.beta_1), t(opt.beta_2), t(step), t(root_bc2), t(opt.epsilon))
        return True
