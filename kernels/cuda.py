"""Numba CUDA kernels: the GPU twins of `cpu.py` (GEMMs stay in cuBLAS). They take any array
with `__cuda_array_interface__` (CuPy) and also run under the CUDA simulator
(NUMBA_ENABLE_CUDASIM=1) on NumPy arrays, which is how CI tests them."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numba
from numba import cuda

from fastnn.kernels.scalar import act, act_grad, adam_step, adam_step_sizes, bce_logits, like, sgd_step, sigmoid, softmax_cce_row

# Small layers launch small grids on purpose; numba's low-occupancy warning would reach users
# (and fail every test, warnings being errors) for the sizes where launch latency rules anyway.
numba.config.CUDA_LOW_OCCUPANCY_WARNINGS = 0

THREADS = 256  # threads per block for the flat kernels
BLOCK_2D = (32, 8)  # (columns, row lanes) for the column-reducing kernel


class DenseKernels(NamedTuple):
    bias_act: Any  # (z, b, y, alpha): z += b; y = act(z), one thread per element (grid-stride)
    act_grad_bias: Any  # (g, y, z, alpha, dz, db): dz = act'(z) * g; db += column sums of dz


@functools.cache
def dense_kernels(code: int) -> DenseKernels:
    """The two dense kernels compiled for one activation code (fastnn.spec.Act), a compile-time
    constant of each: a run-time code kept every activation's float64 constants in float32
    kernels (seen in their PTX)."""
    return DenseKernels(_bias_act(code), _act_grad_bias(code))


def _bias_act(code: int) -> Any:
    @cuda.jit
    def bias_act(z, b, y, alpha):
        n, m = z.shape
        start, stride = cuda.grid(1), cuda.gridsize(1)
        for k in range(start, n * m, stride):
            i, j = k // m, k % m
            v = z[i, j] + b[j]
            z[i, j] = v
            y[i, j] = act(v, code, alpha)

    return bias_act


def _act_grad_bias(code: int) -> Any:
    @cuda.jit
    def act_grad_bias(g, y, z, alpha, dz, db):
        """Thread (tx, ty) of a 32×8 block owns column j and every 8th row of its block's row
        range, sums locally, then adds its sum to db[j] with one atomic (db zeroed by the caller)."""
        n, m = g.shape
        j = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        if j >= m:
            return
        rows_per_block = (n + cuda.gridDim.y - 1) // cuda.gridDim.y
        first = cuda.blockIdx.y * rows_per_block
        last = first + rows_per_block if first + rows_per_block < n else n
        local = like(g[0, 0], 0)  # not g[0, 0] - g[0, 0]: NaN when that element is infinite
        for i in range(first + cuda.threadIdx.y, last, cuda.blockDim.y):
            dz[i, j] = act_grad(g[i, j], y[i, j], z[i, j], code, alpha)
            local += dz[i, j]  # read back: sums in dz's dtype whatever act_grad computed in
        cuda.atomic.add(db, j, local)

    return act_grad_bias


@cuda.jit
def sigmoid_bce_logits(z, t, grad, total):
    """grad = (sigmoid(z) - t) / size; total[0] (float64) += the mean loss, one atomic a thread."""
    n, m = z.shape
    scale = 1 / (n * m)
    local = 0.0
    for k in range(cuda.grid(1), n * m, cuda.gridsize(1)):
        i, j = k // m, k % m
        loss, d = bce_logits(z[i, j], t[i, j])
        grad[i, j] = d * scale
        local += loss
    cuda.atomic.add(total, 0, local * scale)


@cuda.jit
def softmax_cce_logits(z, t, grad, total):
    """One thread per row: grad = (softmax(z) - t) / n; total[0] += the row's loss / n."""
    n = z.shape[0]
    i = cuda.grid(1)
    if i < n:
        cuda.atomic.add(total, 0, softmax_cce_row(z, t, grad, i, 1 / n) / n)


@cuda.jit
def sgd_update(p, g, buf, lr, momentum, nesterov):
    """torch.optim.SGD on flat arrays, in place (buf unused when momentum == 0)."""
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        p[i], buf[i] = sgd_step(p[i], g[i], buf[i], lr, momentum, nesterov)


@cuda.jit
def adam_update(p, g, m, v, beta_1, beta_2, step, root_bc2, eps):
    """torch.optim.Adam on flat arrays, in place (step = lr / bias_correction1)."""
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        p[i], m[i], v[i] = adam_step(p[i], g[i], m[i], v[i], beta_1, beta_2, step, root_bc2, eps)


@cuda.jit
def mse_loss(z, t, grad, total):
    """grad = 2 (z - t) / size; total[0] (float64) += the mean squared error."""
    n, m = z.shape
    scale = 1 / (n * m)
    local = 0.0
    for k in range(cuda.grid(1), n * m, cuda.gridsize(1)):
        i, j = k // m, k % m
        d = z[i, j] - t[i, j]
        grad[i, j] = (d + d) * scale
        local += d * d
    cuda.atomic.add(total, 0, local * scale)


@cuda.jit
def binary_hits(out, t, logits, values, slot):
    """values[slot] (float64) += the share of elements where the prediction (sigmoid(out) when
    `logits`, else out) > 0.5 equals t > 0.5: binary accuracy on the device."""
    n, m = out.shape
    local = 0.0
    for k in range(cuda.grid(1), n * m, cuda.gridsize(1)):
        i, j = k // m, k % m
        p = sigmoid(out[i, j]) if logits else out[i, j]
        local += 1.0 if (p > 0.5) == (t[i, j] > 0.5) else 0.0
    cuda.atomic.add(values, slot, local / (n * m))


@cuda.jit
def categorical_hits(out, t, values, slot):
    """values[slot] += the share of rows whose largest output is the largest target (first of
    ties, as argmax), one thread a row. Softmax keeps the order, so logits give the same."""
    n, m = out.shape
    i = cuda.grid(1)
    if i < n:
        best_out, best_t = 0, 0
        for j in range(1, m):
            if out[i, j] > out[i, best_out]:
                best_out = j
            if t[i, j] > t[i, best_t]:
                best_t = j
        if best_out == best_t:
            cuda.atomic.add(values, slot, 1.0 / n)


@cuda.jit
def record_batch(values, totals, rows, batch_losses, counter):
    """One thread: totals[k] += rows * values[k] (the epoch's sums, on the device);
    batch_losses[counter[0]] = values[0]; counter[0] += 1 (a graph replays it unchanged)."""
    if cuda.grid(1) == 0:
        for k in range(values.size):
            totals[k] += rows * values[k]
        if counter[0] < batch_losses.size:  # a lone step (train_on_batch) may run past an epoch's count
            batch_losses[counter[0]] = values[0]
        counter[0] += 1


@cuda.jit
def adam_hyper(steps, hyper, lr, beta_1, beta_2):
    """One thread: steps[0] += 1; hyper = (lr / bias_correction1, sqrt(bias_correction2)) for
    that step — on the device, so a captured graph advances Adam's step count by itself."""
    if cuda.grid(1) == 0:
        steps[0] += 1
        hyper[0], hyper[1] = adam_step_sizes(lr, beta_1, beta_2, steps[0])


@cuda.jit
def adam_update_device(p, g, m, v, beta_1, beta_2, hyper, eps):
    """adam_update with the step sizes read from `hyper` (written by adam_hyper)."""
    step, root_bc2 = like(p[0], hyper[0]), like(p[0], hyper[1])  # in p's dtype, as adam_update's arguments
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        p[i], m[i], v[i] = adam_step(p[i], g[i], m[i], v[i], beta_1, beta_2, step, root_bc2, eps)


def flat_grid(size: int, max_blocks: int = 4096) -> tuple[int, int]:
    """(blocks, threads) for a grid-stride kernel over `size` elements."""
    return max(1, min(max_blocks, (size + THREADS - 1) // THREADS)), THREADS


def row_grid(n: int) -> tuple[int, int]:
    """(blocks, threads) for a kernel with one thread per row."""
    return max(1, (n + THREADS - 1) // THREADS), THREADS


def column_grid(n: int, m: int, max_row_blocks: int = 1024) -> tuple[tuple[int, int], tuple[int, int]]:
    """(grid, block) for act_grad_bias: columns across x, row ranges across y."""
    cols = (m + BLOCK_2D[0] - 1) // BLOCK_2D[0]
    rows = max(1, min(max_row_blocks, (n + 255) // 256))
    return (cols, rows), BLOCK_2D
