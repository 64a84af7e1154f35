"""A whole training epoch in one Numba function, for small batches on the CPU.

At batch sizes of 1-64, a step's arithmetic takes nanoseconds to microseconds while Python's
dispatch of a step takes ~100 µs; here sample order, forward, backward, optimizer update and
loss/accuracy accumulation all run compiled. It covers Dense stacks with the kernels'
activations, the fused sigmoid+BCE and softmax+CCE heads or MSE, and SGD (momentum, Nesterov)
or Adam; `NumbaOps.train_epoch` checks that and returns None otherwise, and the model falls
back to its generic path. Same arithmetic as the generic path, in another summation order.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fastnn.kernels._config import ACT_CODES, BCE_LOGITS, CACHE, CCE_LOGITS, LOSS_HEADS, MSE
from fastnn.kernels.scalar import act, act_grad, adam_step, loss_element, sgd_step, sigmoid, softmax_cce_row

SGD, ADAM = 0, 1
NO_METRIC, BINARY_ACCURACY, CATEGORICAL_ACCURACY = 0, 1, 2


@njit(cache=CACHE, nogil=True, inline="always")
def forward_row(a, W, b, z, y, code, alpha):
    """z = a @ W + b and y = act(z) for one sample."""
    k_in, m = W.shape
    z[:] = b
    for k in range(k_in):
        w, ak = W[k], a[k]
        for j in range(m):
            z[j] += ak * w[j]
    for j in range(m):
        y[j] = act(z[j], code, alpha)


@njit(cache=CACHE, nogil=True, inline="always")
def grad_row(a, d, dW, db):
    """dW += outer(a, d); db += d for one sample."""
    for k in range(a.shape[0]):
        row, ak = dW[k], a[k]
        for j in range(d.shape[0]):
            row[j] += ak * d[j]
    for j in range(d.shape[0]):
        db[j] += d[j]


@njit(cache=CACHE, nogil=True, fastmath=True, inline="always")
def delta_row(d, W, d_prev, y_prev, z_prev, code, alpha):
    """d_prev = (W @ d) * act'(previous layer) for one sample (fastmath: the dot may reorder)."""
    for k in range(W.shape[0]):
        w = W[k]
        s = d[0] * 0
        for j in range(d.shape[0]):
            s += d[j] * w[j]
        d_prev[k] = act_grad(s, y_prev[k], z_prev[k], code, alpha)


@njit(cache=CACHE, nogil=True)
def train_epoch(x, y, order, batch_size, Ws, bs, dWs, dbs, A, Z, D, T, codes, alphas, loss_code, metric_code,
                opt_code, lr, momentum, nesterov, beta_1, beta_2, eps, t, SW, SB, VW, VB):
    """One epoch over x[order] in batches; parameters and optimizer state updated in place.
    A[l] (batch, width) holds layer l's input (A[0] the batch), Z[l] its pre-activation, D[l]
    the gradient w.r.t. Z[l], T the batch's targets. SW/SB (VW/VB) hold momentum or Adam's m
    (v). Returns (size-weighted mean loss, mean metric, optimizer iterations after the epoch,
    index of the first batch whose loss was NaN/Inf or -1)."""
    n = x.shape[0]
    L = len(Ws)
    out = Ws[L - 1].shape[1]
    loss_total = 0.0
    metric_total = 0.0
    bad_batch = -1
    for start in range(0, n, batch_size):
        nb = min(batch_size, n - start)
        A0 = A[0]
        for r in range(nb):
            A0[r, :] = x[order[start + r]]
            T[r, :] = y[order[start + r]]
        # forward, row by row over 1-D views (contiguous inner loops vectorise)
        for l in range(L):
            W, b, Ain, Zl, Aout = Ws[l], bs[l], A[l], Z[l], A[l + 1]
            code, alpha = codes[l], alphas[l]
            for r in range(nb):
                forward_row(Ain[r], W, b, Zl[r], Aout[r], code, alpha)
        # loss head: D[L-1] = d loss / d Z[L-1]
        Zo, Po, Do = Z[L - 1], A[L], D[L - 1]
        batch_loss = 0.0
        if loss_code == CCE_LOGITS:
            for r in range(nb):
                batch_loss += softmax_cce_row(Zo, T, Do, r, 1 / nb) / nb
        else:
            scale = 1 / (nb * out)
            for r in range(nb):
                for j in range(out):  # BCE takes the logit; MSE the prediction, then act'
                    value, g = loss_element(Zo[r, j] if loss_code == BCE_LOGITS else Po[r, j], T[r, j], loss_code)
                    batch_loss += value * scale
                    Do[r, j] = g * scale if loss_code == BCE_LOGITS else act_grad(
                        g * scale, Po[r, j], Zo[r, j], codes[L - 1], alphas[L - 1])
        loss_total += batch_loss * nb / n
        if bad_batch < 0 and not math.isfinite(batch_loss):
            bad_batch = start // batch_size
        # accuracy on this batch (before the update, as the generic path reports it)
        if metric_code != NO_METRIC:
            hits = 0.0
            for r in range(nb):
                if metric_code == BINARY_ACCURACY:
                    for j in range(out):
                        p = Po[r, j] if loss_code == MSE else sigmoid(Zo[r, j])
                        hits += ((p > 0.5) == (T[r, j] > 0.5)) / out
                else:
                    best_p, best_t = 0, 0
                    for j in range(1, out):
                        if Zo[r, j] > Zo[r, best_p]:
                            best_p = j
                        if T[r, j] > T[r, best_t]:
                            best_t = j
                    hits += best_p == best_t
            metric_total += hits / n
        # backward: parameter gradients, then D[l-1] = (D[l] @ W.T) * act'(layer l-1)
        for l in range(L - 1, -1, -1):
            W, dW, db, Dl, Ain = Ws[l], dWs[l], dbs[l], D[l], A[l]
            dW[:, :] = 0
            db[:] = 0
            for r in range(nb):
                grad_row(Ain[r], Dl[r], dW, db)
                if l > 0:
                    delta_row(Dl[r], W, D[l - 1][r], A[l][r], Z[l - 1][r], codes[l - 1], alphas[l - 1])
        # update
        t += 1
        step = lr / (1 - beta_1 ** t)
        root_bc2 = math.sqrt(1 - beta_2 ** t)
        for l in range(L):
            for p, g, s1, s2 in ((Ws[l].reshape(-1), dWs[l].reshape(-1), SW[l].reshape(-1), VW[l].reshape(-1)),
                                 (bs[l], dbs[l], SB[l], VB[l])):
                if opt_code == SGD:
                    for i in range(p.size):
                        p[i], s1[i] = sgd_step(p[i], g[i], s1[i], lr, momentum, nesterov)
                else:
                    for i in range(p.size):
                        p[i], s1[i], s2[i] = adam_step(p[i], g[i], s1[i], s2[i], beta_1, beta_2, step, root_bc2, eps)
    return loss_total, metric_total, t, bad_batch


def run_epoch(model, x: np.ndarray, y: np.ndarray, batch_size: int, order: np.ndarray | None) -> dict | None:
    """Train `model` for one epoch through `train_epoch`, or return None when the model uses
    anything it does not cover (the caller then takes the generic path)."""
    from fastnn import metrics
    from fastnn.layers import Dense

    loss, fused = model._head
    head = LOSS_HEADS.get((loss.name, loss.from_logits))
    layers, opt = model.layers, model.optimizer
    metric_codes = {metrics.binary_accuracy: BINARY_ACCURACY, metrics.categorical_accuracy: CATEGORICAL_ACCURACY}
    resolved = model._metrics  # [(name, function)], as the generic path reports them
    if (head is None or not all(type(layer) is Dense for layer in layers) or opt.name not in ("sgd", "adam")
            or len(resolved) > 1 or any(fn not in metric_codes for _, fn in resolved)):
        return None
    acts = [layer.activation for layer in layers]
    if fused:
        acts[-1] = None  # the head takes logits
    if any(a is not None and a.name not in ACT_CODES for a in acts):
        return None
    dtype = x.dtype
    t = dtype.type
    codes = np.array([ACT_CODES[a.name] if a is not None else 0 for a in acts], np.int64)
    alphas = np.array([getattr(a, "alpha", 0.0) for a in acts], dtype)
    widths = [model.input_dim] + [layer.units for layer in layers]
    out = widths[-1]
    metric = metric_codes[resolved[0][1]] if resolved else NO_METRIC
    key = ("online", batch_size, dtype.str)
    if key not in model._loss_buffers:
        model._loss_buffers[key] = (
            tuple(np.zeros((batch_size, w), dtype) for w in widths),  # A
            tuple(np.zeros((batch_size, w), dtype) for w in widths[1:]),  # Z
            tuple(np.zeros((batch_size, w), dtype) for w in widths[1:]),  # D
            np.zeros((batch_size, out), dtype),  # T
            tuple(np.zeros_like(layer.W) for layer in layers),  # dW
            tuple(np.zeros_like(layer.b) for layer in layers),  # db
        )
    A, Z, D, T, dWs, dbs = model._loss_buffers[key]
    first, second = {"sgd": ("momentum", "momentum"), "adam": ("m", "v")}[opt.name]

    def slot(name, start, grads):
        """Optimizer state `name` of every W (start 0) or b (start 1); where the optimizer keeps
        none (SGD without momentum) the gradient stands in, never read."""
        return tuple(state.get(name, g) for state, g in zip(opt.state[start::2], grads))

    SW, SB, VW, VB = slot(first, 0, dWs), slot(first, 1, dbs), slot(second, 0, dWs), slot(second, 1, dbs)
    params = model.params
    order = np.arange(x.shape[0]) if order is None else order
    hyper = ((t(opt.lr), t(opt.momentum), opt.nesterov, t(0.0), t(0.0), t(1.0)) if opt.name == "sgd" else
             (t(opt.lr), t(0.0), False, t(opt.beta_1), t(opt.beta_2), t(opt.epsilon)))
    loss_value, metric_value, iterations, bad = train_epoch(
        x, y, order, batch_size, tuple(params[0::2]),
        tuple(params[1::2]), dWs, dbs, A, Z, D, T, codes, alphas, head, metric, 0 if opt.name == "sgd" else 1,
        *hyper, opt.iterations, SW, SB, VW, VB)
    opt.iterations = iterations
    for layer, dW, db in zip(layers, dWs, dbs):
        layer.grads = [dW, db]
    logs = {"loss": float(loss_value)}
    if resolved:
        logs[resolved[0][0]] = float(metric_value)
    if bad >= 0:
        logs["nonfinite_batch"] = int(bad)
    return logs
