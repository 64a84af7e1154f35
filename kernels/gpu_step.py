"""One training step of a Dense stack on a GPU, written against a `Device` (`cuda_device.CupyDevice`
on a GPU; a checking device in the tests). Every buffer is allocated when the step is built;
the step then only multiplies into them, launches kernels on them and writes the batch's loss
and metrics into device arrays — nothing is allocated or read back, so a step never waits on
the host and a CUDA graph can capture it whole."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np

from fastnn import activations
from fastnn.kernels import cuda
from fastnn.spec import Act, LossCode, MetricCode, NetworkSpec

LOSS_KERNELS = {LossCode.MSE: cuda.mse_loss, LossCode.BCE_LOGITS: cuda.sigmoid_bce_logits,
                LossCode.CCE_LOGITS: cuda.softmax_cce_logits}
RULES = ("sgd", "momentum", "nesterov", "adam")


class Device(Protocol):
    """What a step needs of a GPU: allocation (only while building), GEMMs and kernels into given
    buffers, device-side copies, one way to the host, and graph capture."""

    xp: Any

    def empty(self, shape: tuple[int, ...], dtype: Any) -> Any: ...
    def matmul(self, a: Any, b: Any, out: Any) -> None: ...
    def launch(self, kernel: Any, grid: Any, block: Any, *args: Any) -> None: ...
    def fill(self, a: Any, value: float) -> None: ...
    def copy(self, dst: Any, src: Any) -> None: ...
    def take_rows(self, src: Any, index: Any, out: Any) -> None: ...
    def upload(self, host: np.ndarray, out: Any) -> None: ...
    def to_host(self, a: Any) -> np.ndarray: ...
    def capture(self, fn: Callable[[], None]) -> Callable[[], None]: ...


def why_not_fused(spec: NetworkSpec) -> str | None:
    """Why the fused GPU step cannot train `spec` (None when it can)."""
    if spec.head is None or spec.optimizer is None:
        return "the model is not compiled"
    if not spec.dense_only or any(layer.params != 2 for layer in spec.layers):
        return "only Dense layers with a bias are fused"
    last = len(spec.layers) - 1
    if any(layer.activation.code is None for i, layer in enumerate(spec.layers) if not (spec.head.fused and i == last)):
        return "an activation without a kernel (softmax not fused into its loss)"
    if spec.head.code is None:
        return f"the loss {spec.head.loss.name} has no kernel in this form (cross-entropy on probabilities)"
    if spec.regularized:
        return "weight penalties"
    if spec.optimizer.rule not in RULES or spec.optimizer.clipped or spec.optimizer.scheduled:
        return f"optimizer {spec.optimizer.rule} (fused: {', '.join(RULES)}, unclipped, without a schedule)"
    if any(metric.code is None for metric in spec.metrics):
        return "a metric without a kernel (fused: accuracy)"
    return None


@dataclass
class Accumulators:
    """An epoch's sums on the device, shared by every step of the epoch (and by their graphs):
    totals = (loss, metrics...) summed times rows, each batch's loss, the batch counter, and
    Adam's step count with its step sizes."""

    totals: Any
    batch_losses: Any
    counter: Any
    steps: Any
    hyper: Any

    @classmethod
    def build(cls, device: Device, values: int, batches: int) -> "Accumulators":
        return cls(device.empty((values,), "float64"), device.empty((batches,), "float64"),
                   device.empty((1,), "int64"), device.empty((1,), "int64"), device.empty((2,), "float64"))

    def start(self, device: Device, iterations: int) -> None:
        """Zero the sums and load the optimizer's step count (once per epoch: no read)."""
        device.fill(self.totals, 0)
        device.fill(self.batch_losses, 0)
        device.fill(self.counter, 0)
        device.upload(np.array([iterations], np.int64), self.steps)


class DenseStep:
    """Forward, loss, metrics, backward and update of `spec` for batches of `rows` rows, on the
    model's own parameter, gradient and optimizer-state arrays (updated in place) and on static
    input buffers `x`, `t` that the caller fills before each `run`."""

    def __init__(self, spec: NetworkSpec, device: Device, params: list, grads: list, slots: list[dict],
                 rows: int, acc: Accumulators) -> None:
        self.spec, self.device, self.rows, self.acc = spec, device, rows, acc
        self.arrays = _identities(params, grads, slots)  # a model whose arrays change needs a new step
        dtype, widths = spec.dtype, spec.widths
        self.scalar = np.dtype(dtype).type
        self.x = device.empty((rows, widths[0]), dtype)
        self.t = device.empty((rows, widths[-1]), dtype)
        self.values = device.empty((1 + len(spec.metrics),), "float64")
        self.layers = []
        last = len(spec.layers) - 1
        inputs = self.x
        for i, layer in enumerate(spec.layers):
            m = widths[i + 1]
            code = Act.LINEAR if spec.head.fused and i == last else layer.activation.code
            z = device.empty((rows, m), dtype)
            needs_z = code != Act.LINEAR and activations.get(layer.activation.name).needs_z
            y = device.empty((rows, m), dtype) if needs_z else z
            self.layers.append(_Layer(W=params[2 * i], b=params[2 * i + 1], dW=grads[2 * i], db=grads[2 * i + 1],
                                      x=inputs, xT=device.xp.matrix_transpose(inputs),
                                      WT=device.xp.matrix_transpose(params[2 * i]), z=z, y=y,
                                      dz=device.empty((rows, m), dtype),
                                      dx=device.empty((rows, widths[i]), dtype) if i else None,
                                      kernels=cuda.dense_kernels(int(code)), alpha=self.scalar(layer.activation.alpha),
                                      flat=cuda.flat_grid(rows * m), columns=cuda.column_grid(rows, m)))
            inputs = y
        self.grad = device.empty((rows, widths[-1]), dtype)
        self.updates = self._updates(spec, params, grads, slots)

    def _updates(self, spec: NetworkSpec, params: list, grads: list, slots: list[dict]) -> list[tuple]:
        """(kernel, grid, block, args) of each parameter's update, flat views made once."""
        opt, s, flat = spec.optimizer, self.scalar, lambda a: self.device.xp.reshape(a, (-1,))
        launches = []
        if opt.rule == "adam":
            launches.append((cuda.adam_hyper, 1, 1, (self.acc.steps, self.acc.hyper, float(opt.lr), float(opt.beta_1),
                                                     float(opt.beta_2))))
        for p, g, slot in zip(params, grads, slots):
            grid = cuda.flat_grid(p.shape[0] * (p.shape[1] if p.ndim == 2 else 1))
            if opt.rule == "adam":
                args = (flat(p), flat(g), flat(slot["m"]), flat(slot["v"]), s(opt.beta_1), s(opt.beta_2),
                        self.acc.hyper, s(opt.epsilon))
                launches.append((cuda.adam_update_device, *grid, args))
            else:  # g stands in for the momentum buffer when there is none: never read, never written
                buf = slot.get("momentum", g)
                launches.append((cuda.sgd_update, *grid, (flat(p), flat(g), flat(buf), s(opt.lr), s(opt.momentum),
                                                          opt.rule == "nesterov")))
        return launches

    def built_on(self, params: list, grads: list, slots: list[dict]) -> bool:
        """True when the model still trains these very arrays (a callback may have replaced them)."""
        now = _identities(params, grads, slots)
        return len(now) == len(self.arrays) and all(a is b for a, b in zip(self.arrays, now))

    def load(self, x: Any, y: Any, index: Any = None) -> None:
        """Fill the static inputs with rows of (x, y): x[index] when an index is given, else x itself."""
        if index is None:
            self.device.copy(self.x, x)
            self.device.copy(self.t, y)
        else:
            self.device.take_rows(x, index, self.x)
            self.device.take_rows(y, index, self.t)

    def run(self) -> None:
        """One step on the static inputs: the parameters updated, the batch's (loss, metrics...)
        in `values` and added into the accumulators. Launches only: capturable."""
        d, spec = self.device, self.spec
        for layer in self.layers:
            d.matmul(layer.x, layer.W, layer.z)
            d.launch(layer.kernels.bias_act, *layer.flat, layer.z, layer.b, layer.y, layer.alpha)
        out = self.layers[-1].y
        d.fill(self.values, 0)
        kernel = LOSS_KERNELS[spec.head.code]
        grid = cuda.row_grid(self.rows) if kernel is cuda.softmax_cce_logits else cuda.flat_grid(out.shape[0] * out.shape[1])
        d.launch(kernel, *grid, out, self.t, self.grad, self.values)
        for slot, metric in enumerate(spec.metrics, start=1):
            if metric.code == MetricCode.BINARY_ACCURACY:
                d.launch(cuda.binary_hits, *cuda.flat_grid(out.shape[0] * out.shape[1]), out, self.t, spec.head.fused,
                         self.values, slot)
            else:
                d.launch(cuda.categorical_hits, *cuda.row_grid(self.rows), out, self.t, self.values, slot)
        d.launch(cuda.record_batch, 1, 1, self.values, self.acc.totals, float(self.rows), self.acc.batch_losses,
                 self.acc.counter)
        g = self.grad
        for layer in reversed(self.layers):
            d.fill(layer.db, 0)
            d.launch(layer.kernels.act_grad_bias, *layer.columns, g, layer.y, layer.z, layer.alpha, layer.dz,
                     layer.db)
            d.matmul(layer.xT, layer.dz, layer.dW)
            if layer.dx is not None:
                d.matmul(layer.dz, layer.WT, layer.dx)
                g = layer.dx
        for kernel, grid, block, args in self.updates:
            d.launch(kernel, grid, block, *args)


def _identities(params: list, grads: list, slots: list[dict]) -> list:
    return [*params, *grads, *(a for slot in slots for a in slot.values())]


@dataclass
class _Layer:
    W: Any
    b: Any
    dW: Any
    db: Any
    x: Any  # this layer's input: the step's x, or the previous layer's output
    xT: Any
    WT: Any
    z: Any
    y: Any  # z itself unless the activation's derivative needs z
    dz: Any
    dx: Any  # the gradient for the previous layer (None for the first)
    kernels: cuda.DenseKernels  # compiled for this layer's activation
    alpha: Any
    flat: tuple
    columns: tuple
