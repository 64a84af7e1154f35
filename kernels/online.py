"""A whole training epoch in one compiled function, generated for one network, for small batches.

At batch sizes of 1-64 a step's arithmetic takes nanoseconds to microseconds while Python's
dispatch of a step takes tens of microseconds. Here sample order, forward, backward, optimizer
update and loss/accuracy accumulation all run compiled, in straight-line code generated for
the exact network: layer widths, activations, loss head, optimizer and batch size are
constants, so the compiler unrolls and vectorises the tiny loops (a generic version looping
over a tuple of layers ran 16x slower on the 2-3-1 network). `epoch_source(plan)` shows the
code; as with `dataclasses`, generating it is the price of having no per-layer dispatch.

It covers Dense stacks with the kernels' activations, the fused sigmoid+BCE and softmax+CCE
heads or MSE, and SGD (momentum, Nesterov) or Adam; `plan_for` returns None otherwise and the
model falls back to its generic path. Same arithmetic as the generic path (each layer's input
gradient from the weights before their update), in another summation order; under plain SGD
at batch 1, layer 0's update lands one sample late, its effect added to the next sample's layer-0
output instead (algebraically the same; see `_forward_deferred`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass

import numpy as np
from numba import njit

from fastnn.kernels._config import ACT_CODES, BCE_LOGITS, CACHE, CACHE_DIR, CCE_LOGITS, LOSS_HEADS, sources_digest
from fastnn.kernels.stack import MAX_BYTES

NO_METRIC, BINARY_ACCURACY, CATEGORICAL_ACCURACY = 0, 1, 2
LOGITS = -1  # the last layer's "activation" when the loss head takes its logits


@dataclass(frozen=True)
class EpochPlan:
    """Everything the generated code is specialised on."""

    widths: tuple[int, ...]  # input width, then each layer's units
    codes: tuple[int, ...]  # activation code per layer (ACT_CODES), LOGITS for a fused head
    head: int  # MSE, BCE_LOGITS or CCE_LOGITS
    metric: int  # NO_METRIC, BINARY_ACCURACY or CATEGORICAL_ACCURACY
    optimizer: str  # "sgd", "momentum", "nesterov" or "adam"
    batch: int


# One line per optimizer: how parameter element p moves given its gradient g (slots m, v).
UPDATES = {
    "sgd": "{p} -= lr * {g}",
    "momentum": "{p}, {m} = sgd_step({p}, {g}, {m}, lr, momentum, False)",
    "nesterov": "{p}, {m} = sgd_step({p}, {g}, {m}, lr, momentum, True)",
    "adam": "{p}, {m}, {v} = adam_step({p}, {g}, {m}, {v}, beta_1, beta_2, step, root_bc2, eps)",
}
# The scalars the generated code reads from its `hyper` array, in order, then each layer's
# activation alpha: one array argument rather than a scalar each (numba's dispatch takes ~0.2 µs
# an argument, a tenth of a small step).
HYPER_NAMES = ("lr", "momentum", "beta_1", "beta_2", "eps")
# The optimizer state each parameter brings, in the generated signature's order (M then V).
SLOT_NAMES = {"sgd": (), "momentum": ("momentum",), "nesterov": ("momentum",), "adam": ("m", "v")}


def _bound(width: int, runtime: str) -> str:
    """A loop bound over `width` elements: the literal for widths up to 8 (fully unrolled: 12 vs
    77 ns for a 25x1 layer's forward), else the run-time expression. Literal bounds of 10-50 let
    LLVM unroll and vectorise across the wrong loop: 64x25 forward 1 109 vs 287 ns, update 1 302
    vs 324; the 50x50 input-gradient dots 1 314 vs 351 (measured on 2 cores, float32)."""
    return str(width) if width <= 8 else runtime


def _weight_bounds(l: int, k_in: int, m: int) -> tuple[str, str]:
    """Loop bounds over the rows and columns of W{l} (k_in x m), as `_bound` writes them."""
    return _bound(k_in, f"W{l}.shape[0]"), _bound(m, f"W{l}.shape[1]")


def _forward(l: int, k_in: int, m: int, code: int, minus: str = "") -> list[str]:
    """Layer l: Z{l+1} = A{l} @ W{l} + b{l}, A{l+1} = act(Z{l+1}), row by row; `minus`, an
    expression in j, is subtracted from each output last."""
    out = ACT_CODES["linear"] if code == LOGITS else code  # a fused head's logits pass through
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
    that chain. 2-3-1 online in order, paired medians on a Zen 3: 47.9 -> 42.0 and 50.0 -> 43.2 ns
    a sample, together with the ReLU and sigmoid-gradient forms in scalar.py that keep constants
    off the chain (either change alone: 0-2 ns)."""
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
    if plan.head == CCE_LOGITS:
        return ["for r in range(nb):",
                f"    batch_loss += softmax_cce_row(Z{L}, T, D{L}, r, like(T[0, 0], 1 / nb)) / nb"]
    value = f"Z{L}[r, j]" if plan.head == BCE_LOGITS else f"A{L}[r, j]"
    grad = "g * scale" if plan.head == BCE_LOGITS else (
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
    if plan.metric == NO_METRIC:
        return []
    if plan.metric == BINARY_ACCURACY:  # a logit > 0 is a sigmoid > 0.5
        hit = f"(Z{L}[r, j] > 0)" if plan.head == BCE_LOGITS else f"(A{L}[r, j] > 0.5)"
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
    """At batch 1, the steps never store their weight gradients (one store less per weight:
    moons online 7.11 -> 6.40 and 6.81 -> 6.29 µs a sample, paired medians on a Zen 3); the
    last sample's are filled in after the epoch from the scratch arrays, which still hold its
    activations and gradients."""
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


def _layer_arrays(plan: EpochPlan) -> list[tuple[str, int, int | None]]:
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
    Only for tiny networks (every width up to 8): the compiler then keeps every parameter in a
    register (2-3-1 online: 76 -> 64 ns a sample); for moons' 25-50 wide layers the copies'
    constant shapes made it unroll the wrong loops (8.7 -> 12.0 us a sample)."""
    values = sum(rows * (cols or 1) for _, rows, cols in _layer_arrays(plan))
    return max(plan.widths) <= 8 and scratch_bytes + 8 * values <= MAX_BYTES


# Bytes of input and target rows gathered ahead of the steps that use them (see gather_rows).
GATHER_BYTES = 4096


def gather_rows(plan: EpochPlan) -> int:
    """How many samples the epoch copies from x[order] and y[order] at a time, a whole number of
    batches. The copies are independent loads whose cache misses overlap; a step's own load of
    a shuffled row waited at the head of its dependency chain (2-3-1 online over 1M shuffled
    rows: 195 -> 87-101 ns a sample; 56-70 in order, where the copy costs nothing measurable).
    1, 4 and 16 KiB blocks measured alike."""
    row_bytes = plan.batch * (plan.widths[0] + plan.widths[-1]) * 8
    return plan.batch * max(1, GATHER_BYTES // row_bytes)


def epoch_source(plan: EpochPlan) -> str:
    """Python source of `train_epoch` for `plan` (compiled by numba in `epoch_function`)."""
    L, widths = len(plan.codes), plan.widths
    batch = "1" if plan.batch == 1 else f"min({plan.batch}, n - start)"
    body = ["n = x.shape[0]",
            "if order is None:  # in order (numba compiles this branch away when order is an array)",
            "    order = np.arange(n)"]
    body += [f"{name} = hyper[{i}]" for i, name in enumerate(HYPER_NAMES)]
    body += [f"alpha{l} = hyper[{len(HYPER_NAMES) + l}]" for l in range(L)]
    # The batch's activations, pre-activations, gradients and targets, then the gathered rows:
    # on the stack (see kernels/stack.py) where they fit, counting 8 bytes a value (float64 at
    # most); the step's arrays first, so that gathered rows never push them onto the heap.
    gathered = gather_rows(plan)
    step_scratch = [(f"{name}{l}", plan.batch, widths[l]) for l in range(L + 1) for name in ("AZD" if l else "A")]
    step_scratch += [("T", plan.batch, widths[-1])]
    deferred = _defers_first_update(plan)
    step_scratch += [("XP", 1, widths[0])] if deferred else []
    gather_scratch = [("XG", gathered, widths[0]), ("YG", gathered, widths[-1])]
    scratch_bytes = 0
    for group in (step_scratch, gather_scratch):
        group_bytes = sum(rows * cols for _, rows, cols in group) * 8
        on_stack = scratch_bytes + group_bytes <= MAX_BYTES
        scratch_bytes += group_bytes if on_stack else 0
        make = "stack_empty({}, {}, x)" if on_stack else "np.empty(({}, {}), x.dtype)"
        body += [f"{name} = " + make.format(rows, cols) for name, rows, cols in group]
    arrays = _layer_arrays(plan)
    params = [name for name, _, _ in arrays]
    copy_back = []
    if _params_on_stack(plan, scratch_bytes):
        params = [f"{name}_arg" for name in params]
        for name, rows, cols in arrays:
            body += [f"{name} = stack_empty({rows}, {cols}, x)" if cols else f"{name} = stack_empty(1, {rows}, x)[0]",
                     f"{name}[...] = {name}_arg"]
            copy_back += [f"{name}_arg[...] = {name}"]
    args = ", ".join(["x", "y", "order", *params, "hyper", "t"])
    body += ["loss_total = 0.0", "metric_total = 0.0", "bad_batch = -1"]
    if deferred:  # nothing pending before the first sample
        body += ["XP[...] = 0", "D1[...] = 0"]
    gather = ["in_block = min(n - block, XG.shape[0])",
              "for q in range(in_block):",
              "    i = order[block + q]",
              f"    for k in range({_bound(widths[0], 'x.shape[1]')}):",
              "        XG[q, k] = x[i, k]",
              f"    for j in range({_bound(widths[-1], 'y.shape[1]')}):",
              "        YG[q, j] = y[i, j]"]
    step = [f"nb = {batch}",
            "for r in range(nb):",
            f"    for k in range({_bound(widths[0], 'x.shape[1]')}):",
            "        A0[r, k] = XG[start - block + r, k]",
            f"    for j in range({_bound(widths[-1], 'y.shape[1]')}):",
            "        T[r, j] = YG[start - block + r, j]"]
    for l in range(L):
        forward = _forward_deferred if deferred and l == 0 else functools.partial(_forward, l)
        step += forward(widths[l], widths[l + 1], plan.codes[l])
    step += ["batch_loss = 0.0", *_head(plan),
             "loss_total += batch_loss * nb",
             "if bad_batch < 0 and not math.isfinite(batch_loss):",
             f"    bad_batch = start // {plan.batch}",
             *_metric(plan),
             "t += 1"]
    if plan.optimizer == "adam":
        step += ["step = lr / (1 - beta_1 ** t)", "root_bc2 = math.sqrt(1 - beta_2 ** t)"]
    for l in range(L - 1, 0 if deferred else -1, -1):
        step += _backward(l, widths[l], widths[l + 1], plan.codes[l - 1] if l > 0 else None, plan.optimizer, plan.batch)
    lines = [f"def train_epoch({args}):",
             f'    """One epoch of {plan}; returns (mean loss, mean metric, iterations, first bad batch or -1)."""',
             *("    " + s for s in body),
             f"    for block in range(0, n, {gathered}):",
             *("        " + s for s in gather),
             f"        for start in range(block, block + in_block, {plan.batch}):",
             *("            " + s for s in step),
             *("    " + s for s in (_pending_update(*_weight_bounds(0, widths[0], widths[1])) if deferred else [])),
             *("    " + s for s in _last_weight_gradients(plan)),
             *("    " + s for s in copy_back),
             "    return loss_total / n, metric_total / n, t, bad_batch"]
    return "\n".join(lines) + "\n"


# fastmath: reductions may reorder (vectorised dots); error_model="numpy": x / 0 gives inf as in
# NumPy, with no ZeroDivisionError check at each division. In the generated file's header, so
# that changing them changes its name and numba's disk cache cannot serve stale machine code.
JIT_OPTIONS = {"fastmath": {"contract", "reassoc"}, "error_model": "numpy"}

_HEADER = f"""# Generated by fastnn.kernels.online.epoch_source: do not edit.
# numba.njit(fastmath={sorted(JIT_OPTIONS["fastmath"])}, error_model={JIT_OPTIONS["error_model"]!r})
import math
import numpy as np
from fastnn.kernels.scalar import act, act_grad, adam_step, like, loss_element, sgd_step, softmax_cce_row
from fastnn.kernels.stack import stack_empty
"""


@functools.cache
def epoch_function(plan: EpochPlan):
    """The compiled `train_epoch` for `plan`. Where numba may cache, the source is written to a
    file in the cache dir and imported from there, so the machine code is reused across runs."""
    source = _HEADER + epoch_source(plan)
    if CACHE:
        digest = hashlib.sha256((sources_digest() + source).encode()).hexdigest()[:20]
        path = os.path.join(CACHE_DIR, f"fastnn_online_{digest}.py")
        if not os.path.exists(path):
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                f.write(source)
            os.replace(tmp, path)
        spec = importlib.util.spec_from_file_location(f"fastnn_online_{digest}", path)
        module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # numba's cache imports it
        spec.loader.exec_module(module)
        function = module.train_epoch
    else:
        namespace: dict = {}
        exec(compile(source, f"<fastnn online {plan}>", "exec"), namespace)
        function = namespace["train_epoch"]
    return njit(cache=CACHE, nogil=True, **JIT_OPTIONS)(function)


def plan_for(model, batch_size: int) -> EpochPlan | None:
    """The plan for training `model` at `batch_size`, or None when it uses anything the
    generated code does not cover (the caller then takes the generic path)."""
    from fastnn import metrics
    from fastnn.layers import Dense

    loss, fused = model._head
    head = LOSS_HEADS.get((loss.name, loss.from_logits))
    opt = model.optimizer
    metric_codes = {metrics.binary_accuracy: BINARY_ACCURACY, metrics.categorical_accuracy: CATEGORICAL_ACCURACY}
    resolved = model._metrics  # [(name, function)], as the generic path reports them
    if (head is None or not all(type(layer) is Dense for layer in model.layers) or opt.name not in ("sgd", "adam")
            or len(resolved) > 1 or any(fn not in metric_codes for _, fn in resolved)):
        return None
    names = [layer.activation.name for layer in model.layers]
    if any(name not in ACT_CODES for name in names[:-1]) or (not fused and names[-1] not in ACT_CODES):
        return None
    codes = tuple(ACT_CODES[name] for name in names[:-1]) + (LOGITS if fused else ACT_CODES[names[-1]],)
    kind = opt.name if opt.name == "adam" else ("sgd" if opt.momentum == 0 else "nesterov" if opt.nesterov else "momentum")
    return EpochPlan(widths=(model.input_dim, *(layer.units for layer in model.layers)), codes=codes, head=head,
                     metric=metric_codes[resolved[0][1]] if resolved else NO_METRIC, optimizer=kind, batch=batch_size)


def _compiled(model, batch_size: int, dtype: np.dtype, max_work: int) -> tuple | None:
    """(compiled train_epoch, plan, activation alphas) for `model` at `batch_size`, or None when
    there is no plan or batch x parameters exceeds `max_work`; kept on the model until it is
    recompiled, so that a single step pays no planning."""
    key = (batch_size, dtype, max_work)
    cache = model._compiled_epochs
    if key not in cache:
        plan = plan_for(model, batch_size) if batch_size * model.count_params() <= max_work else None
        cache[key] = None
        if plan is not None:
            alphas = tuple(float(getattr(layer.activation, "alpha", 0.0)) for layer in model.layers)
            cache[key] = (epoch_function(plan), plan, alphas)
    return cache[key]


@functools.lru_cache(maxsize=64)
def _hyper(dtype: np.dtype, *values: float) -> np.ndarray:
    """The `hyper` argument: HYPER_NAMES' values then the alphas, in the data type (cached:
    building it was a tenth of a small step; a learning-rate schedule changes it now and then)."""
    hyper = np.array(values, dtype)
    hyper.flags.writeable = False
    return hyper


def _arrays(model, plan: EpochPlan, dtype: np.dtype) -> list[np.ndarray]:
    """The model's per-layer arrays in the order of `_layer_arrays(plan)`; gradients are made
    (zeros) where the layer has none of this data type yet."""
    state, slots = model.optimizer.state, SLOT_NAMES[plan.optimizer]
    arrays: list[np.ndarray] = []
    for i, layer in enumerate(model.layers):
        grads = layer.grads
        if len(grads) != 2 or grads[0].dtype != dtype:
            grads = layer.grads = [np.zeros_like(p) for p in layer.params]
        arrays += layer.params
        arrays += grads
        for name in slots:
            arrays += (state[2 * i][name], state[2 * i + 1][name])
    return arrays


def train(model, x: np.ndarray, y: np.ndarray, batch_size: int, order: np.ndarray | None,
          max_work: int) -> tuple | None:
    """Train `model` on x[order] (in order when None) through the generated `train_epoch`:
    (mean loss, mean metric, index of the first non-finite batch or -1), or None where `plan_for`
    finds no plan. Leaves the last batch's gradients in the layers, as the generic path does."""
    compiled = _compiled(model, batch_size, x.dtype, max_work)
    if compiled is None:
        return None
    function, plan, alphas = compiled
    opt = model.optimizer
    if plan.optimizer == "adam":
        hyper = _hyper(x.dtype, opt.lr, 0.0, opt.beta_1, opt.beta_2, opt.epsilon, *alphas)
    else:
        hyper = _hyper(x.dtype, opt.lr, opt.momentum, 0.0, 0.0, 1.0, *alphas)
    loss, metric, opt.iterations, bad = function(x, y, order, *_arrays(model, plan, x.dtype), hyper, opt.iterations)
    return loss, metric, bad


def run_epoch(model, x: np.ndarray, y: np.ndarray, batch_size: int, order: np.ndarray | None,
              max_work: int) -> dict | None:
    """One epoch through `train`, as the model's logs; None where there is no plan."""
    result = train(model, x, y, batch_size, order, max_work)
    if result is None:
        return None
    loss, metric, bad = result
    logs = {"loss": float(loss)}
    if model._metrics:
        logs[model._metrics[0][0]] = float(metric)
    if bad >= 0:
        logs["nonfinite_batch"] = int(bad)
    return logs
