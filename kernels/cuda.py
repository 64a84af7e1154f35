"""Numba CUDA kernels: the GPU twins of `cpu.py` (GEMMs stay in cuBLAS). They take any array
with `__cuda_array_interface__` (CuPy) and also run under the CUDA simulator
(NUMBA_ENABLE_CUDASIM=1) on NumPy arrays, which is how CI tests them."""

from __future__ import annotations

from numba import cuda

from fastnn.kernels.scalar import act, act_grad, adam_step, bce_logits, like, sgd_step, softmax_cce_row

THREADS = 256  # threads per block for the flat kernels
BLOCK_2D = (32, 8)  # (columns, row lanes) for the column-reducing kernel


@cuda.jit
def bias_act(z, b, y, code, alpha):
    """z += b; y = act(z), one thread per element (grid-stride)."""
    n, m = z.shape
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for k in range(start, n * m, stride):
        i, j = k // m, k % m
        v = z[i, j] + b[j]
        z[i, j] = v
        y[i, j] = act(v, code, alpha)


@cuda.jit
def act_grad_bias(g, y, z, code, alpha, dz, db):
    """dz = act'(z) * g; db += column sums of dz (db zeroed by the caller). Thread (tx, ty)
    of a 32×8 block owns column j and every 8th row of its block's row range, sums locally,
    then adds its sum to db[j] with one atomic."""
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


def flat_grid(size: int, max_blocks: int = 4096) -> tuple[int, int]:
    """(blocks, threads) for a grid-stride kernel over `size` elements."""
    return max(1, min(max_blocks, (size + THREADS - 1) // THREADS)), THREADS


def column_grid(n: int, m: int, max_row_blocks: int = 1024) -> tuple[tuple[int, int], tuple[int, int]]:
    """(grid, block) for act_grad_bias: columns across x, row ranges across y."""
    cols = (m + BLOCK_2D[0] - 1) // BLOCK_2D[0]
    rows = max(1, min(max_row_blocks, (n + 255) // 256))
    return (cols, rows), BLOCK_2D
