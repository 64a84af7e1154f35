"""The source of a whole small-batch training epoch, generated for one network (an `EpochPlan`).

Sample order, forward, backward, update and loss/accuracy run in straight-line code where
widths, activations, loss head, optimizer and batch size are constants, so the compiler
unrolls and vectorises the tiny loops (docs/kernels.md#compiled-epoch). `epoch_source(plan)`
shows the code; `epoch_function(plan)` compiles it. Same arithmetic as the layer-by-layer
engine in another summation order; under plain SGD at batch 1, layer 0's update lands one
sample late, its effect added to the next output instead (see `_forward_deferred`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass

from numba import njit

from fastnn.kernels.cache import CACHE, CACHE_DIR, sources_digest
from fastnn.kernels.stack import MAX_BYTES
from fastnn.spec import Act, LossCode, MetricCode

LOGITS = -1  # the last layer's "activation" when the loss head takes its logits


@dataclass(frozen=True)
class EpochPlan:
    """Everything the generated code is specialised on."""

    widths: tuple[int, ...]  # input width, then each layer's units
    codes: tuple[int, ...]  # activation code per layer (fastnn.spec.Act), LOGITS for a fused head
    head: LossCode
    metric: MetricCode
    optimizer: str  # "sgd", "momentum", "nesterov" or "adam"
    batch: int


# One line per optimizer: how parameter element p moves given its gradient g (slots m, v).
UPDATES = {
    "sgd": "{p} = descend({p}, {g}, lr)",
    "momentum": "{p}, {m} = sgd_step({p}, {g}, {m}, lr, momentum, False)",
    "nesterov": "{p}, {m} = sgd_step({p}, {g}, {m}, lr, momentum, True)",
    "adam": "{p}, {m}, {v} = adam_step({p}, {g}, {m}, {v}, beta_1, beta_2, step, root_bc2, eps)",
}
# The scalars the generated code reads from its `hyper` array, in order, then each layer's
# activation alpha: one array, since numba's dispatch costs per argument (docs/kernels.md#hyper-array).
HYPER_NAMES = ("lr", "momentum", "beta_1", "beta_2", "eps")
# The optimizer state each parameter brings, in the generated signature's order (M then V).
SLOT_NAMES = {"sgd": (), "momentum": ("momentum",), "nesterov": ("momentum",), "adam": ("m", "v")}


def _bound(width: int, runtime: str) -> str:
    """A loop bound over `width` elements: the literal for widths up to 8 (fully unrolled), else
    the run-time expression, since wider literal bounds vectorise the wrong loop
    (docs/kernels.md#loop-bounds)."""
    return str(width) if width <= 8 else runtime


def _weight_bounds(l: int, k_in: int, m: int) -> tuple[str, str]:
    """Loop bounds over the rows and columns of W{l} (k_in x m), as `_bound` writes them."""
    return _bound(k_in, f"W{l}.shape[0]"), _bound(m, f"W{l}.shape[1]")


def _forward(l: int, k_in: int, m: int, code: int, minus: str = "") -> list[str]:
    """Layer l: Z{l+1} = A{l} @ W{l} + b{l}, A{l+1} = act(Z{l+1}), row by row; `minus`, an
    expression in j, is subtracted from each output last."""
    out = int(Act.LINEAR) if code == LOGITS else int(code)  # a fused head's logits pass through
    if m <= 8 and k_in <= 8:  # tiny: each output's dot in a register, fully unrolled
        return [
            f"# layer {l}",
            "for r in range(nb):",
            f"    for j in range({m}):",
            f"        z = b{l}[j]",
            f"        for k in range({k_in}):",
            f"            z += A{l}[r, k] * W{l}[k, j]",
            *([f"        z -= {minus}"] if minus else []),
            f"        Z{l + 1}[r, j] = z",
            f"        A{l + 1}[r, j] = act(z, {out}, alpha{l})",
        ]
    k_in, m = _weight_bounds(l, k_in, m)
    return [
        f"# layer {l}",
        "for r in range(nb):",
        f"    for j in range({m}):",
        f"        Z{l + 1}[r, j] = b{l}[j]",
        f"    for k in range({k_in}):",
        f"        a = A{l}[r, k]",
        f"        for j in range({m}):",
        f"            Z{l + 1}[r, j] += a * W{l}[k, j]",
        f"    for j in range({m}):",
        *([f"        Z{l + 1}[r, j] -= {minus}"] if minus else []),
        f"        A{l + 1}[r, j] = act(Z{l + 1}[r, j], {out}, alpha{l})",
    ]


def _defers_first_update(plan: EpochPlan) -> bool:
    """Whether layer 0's SGD update waits for the next sample (see `_forward_deferred`)."""
    return plan.batch == 1 and plan.optimizer == "sgd"


def _forward_deferred(k_in: int, m: int, code: int) -> list[str]:
    """Layer 0 at batch 1 under plain SGD, with the last sample's update still pending: x' @ (W -
    lr x D) + (b - lr D) = x' @ W + b - lr (x' . x + 1) D. The dot with the old weights does not
    wait for the update, so the chain from one sample's gradient D to the next sample's layer-0
    output is one multiply-add, not a multiply, an update and a dot. The update runs after, off
    that chain (docs/kernels.md#deferred-update)."""
    k_bound, m_bound = _weight_bounds(0, k_in, m)
    return ["# the pending update's share of layer 0's output, from the last sample's input XP and gradient D1",
            "c = like(lr, 1)",
            f"for k in range({k_bound}):",
            "    c += A0[0, k] * XP[0, k]",
            "c *= lr",
            *_forward(0, k_in, m, code, minus="c * D1[0, j]"),
            *_pending_update(k_bound, m_bound),
            f"for k in range({k_bound}):",
            "    XP[0, k] = A0[0, k]"]


def _pending_update(k_in: str, m: str) -> list[str]:
    """Layer 0's deferred SGD update from the last sample's input XP and gradient D1."""
    return [f"for k in range({k_in}):",
            "    a = lr * XP[0, k]",
            f"    for j in range({m}):",
            "        W0[k, j] -= a * D1[0, j]",
            f"for j in range({m}):",
            "    b0[j] -= lr * D1[0, j]"]


def _head(plan: EpochPlan) -> list[str]:
    """D{L} = d loss / d Z{L} for the batch, and the batch's mean loss."""
    L, out = len(plan.codes), plan.widths[-1]
    if plan.head == LossCode.CCE_LOGITS:
        return ["for r in range(nb):",
                f"    batch_loss += softmax_cce_row(Z{L}, T, D{L}, r, like(T[0, 0], 1 / nb)) / nb"]
    value = f"Z{L}[r, j]" if plan.head == LossCode.BCE_LOGITS else f"A{L}[r, j]"
    grad = "g * scale" if plan.head == LossCode.BCE_LOGITS else (
        f"act_grad(g * scale, A{L}[r, j], Z{L}[r, j], {plan.codes[-1]}, alpha{L - 1})")
    return [f"scale = like(T[0, 0], 1 / (nb * {out}))  # in the data type: a float64 one would promote",
            "for r in range(nb):",
            f"    for j in range({_bound(out, 'T.shape[1]')}):",
            f"        value, g = loss_element({value}, T[r, j], {plan.head})",
            "        batch_loss += value * scale",
            f"        D{L}[r, j] = {grad}"]


def _metric(plan: EpochPlan) -> list[str]:
    """Accuracy on the batch before the update, as the generic path reports it."""
    L, out = len(plan.codes), plan.widths[-1]
    if plan.metric == MetricCode.NONE:
        return []
    if plan.metric == MetricCode.BINARY_ACCURACY:  # a logit > 0 is a sigmoid > 0.5
        hit = f"(Z{L}[r, j] > 0)" if plan.head == LossCode.BCE_LOGITS else f"(A{L}[r, j] > 0.5)"
        return ["hits = 0.0",
                "for r in range(nb):",
                f"    for j in range({_bound(out, 'T.shape[1]')}):",
                f"        hits += ({hit} == (T[r, j] > 0.5)) / {out}",
                "metric_total += hits"]
    return ["hits = 0.0",
            "for r in range(nb):",
            "    best_p, best_t = 0, 0",
            f"    for j in range(1, {_bound(out, 'T.shape[1]')}):",
            f"        if Z{L}[r, j] > Z{L}[r, best_p]:",
            "            best_p = j",
            "        if T[r, j] > T[r, best_t]:",
            "            best_t = j",
            "    hits += best_p == best_t",
            "metric_total += hits"]


def _backward(l: int, k_in: int, m: int, prev_code: int | None, optimizer: str, batch: int) -> list[str]:
    """Layer l, one pass over each row k of W{l}: first D{l}[:, k] from the row before its
    update (the input gradient), then dW{l}[k] and the row's update; then db{l}."""
    update = UPDATES[optimizer].format(p=f"W{l}[k, j]", g="g", m=f"MW{l}[k, j]", v=f"VW{l}[k, j]")
    k_in, m = _weight_bounds(l, k_in, m)
    lines = [f"# layer {l} backward", f"for k in range({k_in}):"]
    if prev_code is not None:
        lines += [
            "    for r in range(nb):",
            f"        s = D{l + 1}[r, 0] * W{l}[k, 0]",
            f"        for j in range(1, {m}):",
            f"            s += D{l + 1}[r, j] * W{l}[k, j]",
            f"        D{l}[r, k] = act_grad(s, A{l}[r, k], Z{l}[r, k], {prev_code}, alpha{l - 1})",
        ]
    if batch == 1:  # the gradient stays in a register (dW{l} is filled once, after the epoch)
        lines += [f"    a = A{l}[0, k]",
                  f"    for j in range({m}):",
                  f"        g = a * D{l + 1}[0, j]",
                  f"        {update}"]
    else:
        lines += [f"    a = A{l}[0, k]",
                  f"    for j in range({m}):",
                  f"        dW{l}[k, j] = a * D{l + 1}[0, j]",
                  "    for r in range(1, nb):",
                  f"        a = A{l}[r, k]",
                  f"        for j in range({m}):",
                  f"            dW{l}[k, j] += a * D{l + 1}[r, j]",
                  f"    for j in range({m}):",
                  f"        g = dW{l}[k, j]",
                  f"        {update}"]
    lines += [f"for j in range({m}):",
              f"    g = D{l + 1}[0, j]",
              "    for r in range(1, nb):",
              f"        g += D{l + 1}[r, j]",
              f"    db{l}[j] = g",
              "    " + UPDATES[optimizer].format(p=f"b{l}[j]", g="g", m=f"Mb{l}[j]", v=f"Vb{l}[j]")]
    return lines


def _last_weight_gradients(plan: EpochPlan) -> list[str]:
    """At batch 1, the steps never store their weight gradients (one store less per weight;
    docs/kernels.md#last-gradients); the last sample's are filled in after the epoch from the
    scratch arrays, which still hold its activations and gradients."""
    if plan.batch != 1:
        return []
    lines = ["if n > 0:  # the last sample's weight gradients, as the generic path leaves them"]
    for l in range(len(plan.codes)):
        k_in, m = _weight_bounds(l, plan.widths[l], plan.widths[l + 1])
        lines += [f"    for k in range({k_in}):",
                  f"        for j in range({m}):",
                  f"            dW{l}[k, j] = A{l}[0, k] * D{l + 1}[0, j]"]
    if _defers_first_update(plan):  # layer 0's backward pass is its pending update only
        lines += [f"    for j in range({_bound(plan.widths[1], 'b0.shape[0]')}):",
                  "        db0[j] = D1[0, j]"]
    return lines


def layer_arrays(plan: EpochPlan) -> list[tuple[str, int, int | None]]:
    """(name, rows, columns or None for a vector) of every per-layer array the generated code
    takes: weights, biases, their gradients and the optimizer's slots, in signature order."""
    slots = len(SLOT_NAMES[plan.optimizer])
    arrays = []
    for l in range(len(plan.codes)):
        k, m = plan.widths[l], plan.widths[l + 1]
        for prefix in ("", "d", "M", "V")[:2 + slots]:
            arrays += [(f"{prefix}W{l}", k, m), (f"{prefix}b{l}", m, None)]
    return arrays


def _params_on_stack(plan: EpochPlan, scratch_bytes: int) -> bool:
    """Whether the per-layer arrays are copied to the stack for the epoch and back at its end.
    Only for tiny networks (every width up to 8), whose parameters then stay in registers;
    wider layers' copies unrolled the wrong loops (docs/kernels.md#stack)."""
    values = sum(rows * (cols or 1) for _, rows, cols in layer_arrays(plan))
    return max(plan.widths) <= 8 and scratch_bytes + 8 * values <= MAX_BYTES


# Bytes of input and target rows gathered ahead of the steps that use them (see gather_rows).
GATHER_BYTES = 4096


def gather_rows(plan: EpochPlan) -> int:
    """How many samples the epoch copies from x[order] and y[order] at a time, a whole number of
    batches. The copies are independent loads whose cache misses overlap, where a step's own
    load of a shuffled row waited at the head of its dependency chain (docs/kernels.md#gather)."""
    row_bytes = plan.batch * (plan.widths[0] + plan.widths[-1]) * 8
    return plan.batch * max(1, GATHER_BYTES // row_bytes)


def _prologue(plan: EpochPlan) -> list[str]:
    """The hyper-parameters and activation alphas, read from the `hyper` argument."""
    lines = ["n = x.shape[0]",
             "if order is None:  # in order (numba compiles this branch away when order is an array)",
             "    order = np.arange(n)"]
    lines += [f"{name} = hyper[{i}]" for i, name in enumerate(HYPER_NAMES)]
    return lines + [f"alpha{l} = hyper[{len(HYPER_NAMES) + l}]" for l in range(len(plan.codes))]


def _scratch(plan: EpochPlan) -> tuple[list[str], int]:
    """(lines allocating the batch's activations, pre-activations, gradients and targets, then
    the gathered rows; bytes of them on the stack). On the stack (kernels/stack.py) where they
    fit, counting 8 bytes a value; the step's arrays first, so gathered rows never push them
    onto the heap."""
    L, widths = len(plan.codes), plan.widths
    step = [(f"{name}{l}", plan.batch, widths[l]) for l in range(L + 1) for name in ("AZD" if l else "A")]
    step += [("T", plan.batch, widths[-1])] + ([("XP", 1, widths[0])] if _defers_first_update(plan) else [])
    gathered = [("XG", gather_rows(plan), widths[0]), ("YG", gather_rows(plan), widths[-1])]
    lines, stack_bytes = [], 0
    for group in (step, gathered):
        group_bytes = sum(rows * cols for _, rows, cols in group) * 8
        on_stack = stack_bytes + group_bytes <= MAX_BYTES
        stack_bytes += group_bytes if on_stack else 0
        make = "stack_empty({}, {}, x)" if on_stack else "np.empty(({}, {}), x.dtype)"
        lines += [f"{name} = " + make.format(rows, cols) for name, rows, cols in group]
    return lines, stack_bytes


def _parameters(plan: EpochPlan, stack_bytes: int) -> tuple[list[str], list[str], list[str]]:
    """(argument names, lines copying them to the stack, lines copying them back): copies only
    where `_params_on_stack` says so."""
    arrays = layer_arrays(plan)
    if not _params_on_stack(plan, stack_bytes):
        return [name for name, _, _ in arrays], [], []
    copy_in, copy_back = [], []
    for name, rows, cols in arrays:
        copy_in += [f"{name} = stack_empty({rows}, {cols}, x)" if cols else f"{name} = stack_empty(1, {rows}, x)[0]",
                    f"{name}[...] = {name}_arg"]
        copy_back += [f"{name}_arg[...] = {name}"]
    return [f"{name}_arg" for name, _, _ in arrays], copy_in, copy_back


def _gather(plan: EpochPlan) -> list[str]:
    """Copy the next block's rows of x[order] and y[order] into XG and YG."""
    return ["in_block = min(n - block, XG.shape[0])",
            "for q in range(in_block):",
            "    i = order[block + q]",
            f"    for k in range({_bound(plan.widths[0], 'x.shape[1]')}):",
            "        XG[q, k] = x[i, k]",
            f"    for j in range({_bound(plan.widths[-1], 'y.shape[1]')}):",
            "        YG[q, j] = y[i, j]"]


def _step(plan: EpochPlan) -> list[str]:
    """One optimizer step on the batch at `start`: forward, loss head, metric, backward + update."""
    L, widths, deferred = len(plan.codes), plan.widths, _defers_first_update(plan)
    lines = [f"nb = {'1' if plan.batch == 1 else f'min({plan.batch}, n - start)'}",
             "for r in range(nb):",
             f"    for k in range({_bound(widths[0], 'x.shape[1]')}):",
             "        A0[r, k] = XG[start - block + r, k]",
             f"    for j in range({_bound(widths[-1], 'y.shape[1]')}):",
             "        T[r, j] = YG[start - block + r, j]"]
    for l in range(L):
        forward = _forward_deferred if deferred and l == 0 else functools.partial(_forward, l)
        lines += forward(widths[l], widths[l + 1], plan.codes[l])
    lines += ["batch_loss = 0.0", *_head(plan),
              "loss_total += batch_loss * nb",
              "if bad_batch < 0 and not math.isfinite(batch_loss):",
              f"    bad_batch = start // {plan.batch}",
              *_metric(plan),
              "t += 1"]
    if plan.optimizer == "adam":
        lines += ["step, root_bc2 = adam_step_sizes(lr, beta_1, beta_2, t)"]
    for l in range(L - 1, 0 if deferred else -1, -1):
        previous = plan.codes[l - 1] if l > 0 else None
        lines += _backward(l, widths[l], widths[l + 1], previous, plan.optimizer, plan.batch)
    return lines


def epoch_source(plan: EpochPlan) -> str:
    """Python source of `train_epoch` for `plan` (compiled by numba in `epoch_function`)."""
    scratch, stack_bytes = _scratch(plan)
    params, copy_in, copy_back = _parameters(plan, stack_bytes)
    deferred = _defers_first_update(plan)
    body = [*_prologue(plan), *scratch, *copy_in, "loss_total = 0.0", "metric_total = 0.0", "bad_batch = -1",
            *(["XP[...] = 0", "D1[...] = 0"] if deferred else [])]  # nothing pending before the first sample
    epilogue = [*(_pending_update(*_weight_bounds(0, plan.widths[0], plan.widths[1])) if deferred else []),
                *_last_weight_gradients(plan), *copy_back]
    lines = [f"def train_epoch({', '.join(['x', 'y', 'order', *params, 'hyper', 't'])}):",
             f'    """One epoch of {plan}; returns (mean loss, mean metric, iterations, first bad batch or -1)."""',
             *("    " + s for s in body),
             f"    for block in range(0, n, {gather_rows(plan)}):",
             *("        " + s for s in _gather(plan)),
             f"        for start in range(block, block + in_block, {plan.batch}):",
             *("            " + s for s in _step(plan)),
             *("    " + s for s in epilogue),
             "    return loss_total / n, metric_total / n, t, bad_batch"]
    return "\n".join(lines) + "\n"


# fastmath: reductions may reorder (vectorised dots); error_model="numpy": x / 0 gives inf as in
# NumPy, with no ZeroDivisionError check at each division. In the generated file's header, so
# that changing them changes its name and numba's disk cache cannot serve stale machine code.
JIT_OPTIONS = {"fastmath": {"contract", "reassoc"}, "error_model": "numpy"}

_HEADER = f"""# Generated by fastnn.kernels.compiled_epoch.epoch_source: do not edit.
# numba.njit(fastmath={sorted(JIT_OPTIONS["fastmath"])}, error_model={JIT_OPTIONS["error_model"]!r})
import math
import numpy as np
from fastnn.kernels.scalar import (act, act_grad, adam_step, adam_step_sizes, descend, like, loss_element, sgd_step,
                                   softmax_cce_row)
from fastnn.kernels.stack import stack_empty
"""


@functools.cache
def _source_file(plan: EpochPlan) -> str | None:
    """Where the epoch's source lives in the cache dir (None where numba may not cache): named
    by a digest of it and of the kernel modules it imports, so a changed helper never runs
    stale code."""
    if not CACHE:
        return None
    source = _HEADER + epoch_source(plan)
    digest = hashlib.sha256((sources_digest(_HEADER) + source).encode()).hexdigest()[:20]
    path = os.path.join(CACHE_DIR, f"fastnn_online_{digest}.py")
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(source)
        os.replace(tmp, path)
    return path


@functools.cache
def epoch_function(plan: EpochPlan):
    """The numba dispatcher of `train_epoch` for `plan` (it compiles on its first call). Where
    numba may cache, the source is imported from its file in the cache dir, so the machine code
    is reused across runs."""
    path = _source_file(plan)
    if path is None:
        namespace: dict = {}
        exec(compile(_HEADER + epoch_source(plan), f"<fastnn online {plan}>", "exec"), namespace)
        function = namespace["train_epoch"]
    else:
        name = os.path.basename(path)[:-3]
        spec = importlib.util.spec_from_file_location(name, path)
        module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # numba's cache imports it
        spec.loader.exec_module(module)
        function = module.train_epoch
    return njit(cache=CACHE, nogil=True, **JIT_OPTIONS)(function)


def compiled_before(plan: EpochPlan, ordered: bool) -> bool:
    """Whether the disk cache holds this epoch's machine code for calls with (ordered) or
    without a sample order, so that it loads in a fraction of a second instead of compiling."""
    path = _source_file(plan)
    return path is not None and os.path.exists(f"{path[:-3]}.{'ordered' if ordered else 'in-order'}.done")


def mark_compiled(plan: EpochPlan, ordered: bool) -> None:
    path = _source_file(plan)
    if path is not None:
        with open(f"{path[:-3]}.{'ordered' if ordered else 'in-order'}.done", "w"):
            pass
