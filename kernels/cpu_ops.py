"""The NumPy backend's ops table: BLAS GEMMs into preallocated buffers plus the Numba kernels
of `cpu.py`. Anything they don't cover (softmax inside a layer, non-contiguous or non-float
arrays, probabilities instead of logits) falls back to the pure Array-API table."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn.kernels import cpu, online
from fastnn.kernels._config import ACT_CODES, BCE_LOGITS, CCE_LOGITS, LOSS_HEADS
from fastnn.ops import ArrayOps


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


def _buffer(buffers: dict | None, key: str, shape: tuple, dtype: Any) -> np.ndarray:
    """A scratch array kept in `buffers` between steps (a fresh one when buffers is None).
    Keyed by shape too, so an epoch's short last batch doesn't evict the full-size buffers."""
    if buffers is None:
        return np.empty(shape, dtype)
    buf = buffers.get((key, shape))
    if buf is None or buf.dtype != dtype:
        buf = buffers[(key, shape)] = np.empty(shape, dtype)
    return buf


class NumbaOps(ArrayOps):
    name = "numba"
    # Full-batch steps run in blocks of this many rows so activations stay in cache: 8192-16384
    # were fastest for the narrow moons layers (459-460 ms vs 540 unblocked at 1M rows) and
    # neutral for 784-512-512-10 (1 196-1 227 ms for blocks of 1 024 to 65 536 rows). With the
    # flat-span kernels, moons at 1M rows, fused/bound paired medians on a Zen 3 host: 2 048 rows
    # 1.42x, 4 096 1.27x, 16 384 1.14x (Python's per-block calls outweigh the L2 hits).
    block_rows = 16384
    # Epochs and steps run compiled (kernels/online.py) while batch rows x parameters stays
    # under this times the number of layers: above it BLAS per step wins, and the generic path
    # pays its per-layer overhead once per batch. Measured (samples/s, compiled vs generic):
    # moons (5 226 parameters, 5 layers) 285k vs 146k at batch 32, 286k vs 208k at 48, 271k vs
    # 251-352k at 64; digits 64-25-10 (1 885, 2 layers) 559k vs 426k at 64, 621k vs 736k at 128;
    # 32-256-256-10 (76 810, 3 layers) 32.5k vs 14.3k at batch 4, 34.8k vs 41.8k at 16.
    online_max_work_per_layer = 80_000

    def dense_forward(self, x, W, b, act, buffers=None):
        code = ACT_CODES.get(act.name)
        if code is None or not _native(x, W, b):
            return super().dense_forward(x, W, b, act, buffers)
        shape = (x.shape[0], W.shape[1])
        z = np.matmul(x, W, out=_buffer(buffers, "z", shape, W.dtype))
        y = _buffer(buffers, "y", shape, W.dtype) if act.needs_z else z
        alpha = W.dtype.type(getattr(act, "alpha", 0))
        if act.needs_z:
            cpu.dense_kernels(code).bias_act_keep(z, b, y, alpha)
        else:
            cpu.dense_kernels(code).bias_act_inplace(z, b, alpha)
        return y, (z if act.needs_z else None)

    def dense_backward(self, dy, x, W, y, z, act, need_dx, buffers=None):
        code = ACT_CODES.get(act.name)
        if code is None or not _native(dy, x, W, y):
            return super().dense_backward(dy, x, W, y, z, act, need_dx, buffers)
        dtype = W.dtype
        dz = _buffer(buffers, "dz", dy.shape, dtype)
        db = _buffer(buffers, "db", (W.shape[1],), dtype)
        saved = z if act.needs_z else y
        cpu.dense_kernels(code).act_grad_bias(dy, saved, dtype.type(getattr(act, "alpha", 0)), dz, db)
        dW = _buffer(buffers, "dW", W.shape, dtype)
        if x.shape[0] == 1:  # one row: an outer product (784x512: 45 µs here, a k=1 GEMM 821 µs)
            cpu.outer_product(x.reshape(-1), dz.reshape(-1), dW)
        else:
            np.matmul(x.T, dz, out=dW)
        dx = None
        if need_dx:
            dx = _buffer(buffers, "dx", x.shape, dtype)
            if W.shape[1] == 1:  # an outer product (BLAS: 37 ms at 1M x 25; this kernel ~6)
                cpu.outer_product(dz.reshape(-1), W.reshape(-1), dx)
            else:
                np.matmul(dz, W.T, out=dx)
        return dx, dW, db

    def loss(self, loss, y_pred, y_true, buffers=None):
        head = LOSS_HEADS.get((loss.name, loss.from_logits))
        if head is None or not _native(y_pred, y_true):
            return super().loss(loss, y_pred, y_true, buffers)
        grad = _buffer(buffers, "loss_grad", y_pred.shape, y_pred.dtype)
        if head == CCE_LOGITS:
            return cpu.softmax_cce_logits(y_pred, y_true, grad), grad
        if head == BCE_LOGITS:  # exp and log in NumPy's SIMD ufuncs (numba has no SVML), the rest fused
            e = _buffer(buffers, "exp", y_pred.shape, y_pred.dtype)
            np.abs(y_pred, out=e)
            np.negative(e, out=e)
            np.exp(e, out=e)  # exp(-|z|) in (0, 1]: never overflows
            log_u = _buffer(buffers, "log_u", y_pred.shape, y_pred.dtype)
            np.add(e, 1, out=log_u)
            np.log(log_u, out=log_u)
            flat = (a.reshape(-1) for a in (y_pred, y_true, e, log_u, grad))
            return cpu.bce_logits_from_exp(*flat), grad
        return cpu.elementwise_loss(y_pred, y_true, grad, head), grad

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
        step, root_bc2 = opt.step_sizes()
        cpu.adam_update(p.reshape(-1), g.reshape(-1), state["m"].reshape(-1), state["v"].reshape(-1),
                        t(opt.beta_1), t(opt.beta_2), t(step), t(root_bc2), t(opt.epsilon))
        return True

    def train_epoch(self, model, x, y, batch_size, order):
        """A whole epoch compiled (small batches only); None where the generic path must run."""
        if not _native(x, y, model.layers[0].W):
            return None
        return online.run_epoch(model, x, y, batch_size, order, self._max_work(model))

    def _max_work(self, model) -> int:
        return self.online_max_work_per_layer * len(model.layers)

    def train_step(self, model, x, y):
        """One small-batch step through the same compiled code: 2-3-1 at batch 4 takes 8-11 µs
        through the model (12-19 µs on a Zen 3 host with AVX2 only) where the per-layer BLAS
        path took 80 µs. Compiled for batch capacities of powers of two, so an epoch's short
        last batch or varying train_on_batch sizes reuse the code."""
        if not _native(x, y, model.layers[0].W):
            return None
        result = online.train(model, x, y, 1 << (x.shape[0] - 1).bit_length(), None, self._max_work(model))
        if result is None:
            return None
        loss, metric, _ = result
        return loss, ({model._metrics[0][0]: metric} if model._metrics else {})
