"""Plots with matplotlib (`pip install "fastnn[plot]"`): training curves from a History, the
decision boundary of any classifier with two input features, and for image models the first
convolution's filters and the images a classifier gets wrong."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn.backend import to_numpy


def pyplot():
    try:
        import matplotlib

        if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg") and not _has_display():
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError('plots need matplotlib: pip install "fastnn[plot]"') from err
    return plt


def _has_display() -> bool:
    import os

    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def plot_history(history: Any, ax: Any = None, path: str | None = None) -> Any:
    """Loss and metric curves per epoch (validation dashed); saved to `path` when given."""
    plt = pyplot()
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.5))
    for key, values in history.history.items():
        ax.plot(history.epoch, values, linestyle="--" if key.startswith("val_") else "-", label=key)
    ax.set(xlabel="epoch", title="training history")
    ax.grid(alpha=0.3)
    ax.legend()
    return _finish(plt, fig or ax.figure, path)


def plot_curve(values: Any, ax: Any = None, path: str | None = None, title: str = "", xlabel: str = "",
               every: int = 1) -> Any:
    """One curve, `values[i]` at x = (i + 1) * every (the neuron tutorial's summed error)."""
    plt = pyplot()
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([(i + 1) * every for i in range(len(values))], values)
    ax.set(xlabel=xlabel, title=title)
    ax.grid(alpha=0.3)
    return _finish(plt, fig or ax.figure, path)


def plot_decision_boundary(model: Any, x: Any, y: Any, ax: Any = None, path: str | None = None,
                           resolution: int = 200) -> Any:
    """The model's predicted class over the plane of its two input features, with the data."""
    plt = pyplot()
    x, y = to_numpy(x), to_numpy(y).reshape(len(x), -1)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"a decision boundary needs 2 input features, x has shape {x.shape}")
    labels = y.argmax(axis=1) if y.shape[1] > 1 else y[:, 0] > 0.5
    pad = 0.1 * (x.max(axis=0) - x.min(axis=0)) + 1e-9
    (x0, x1), (y0, y1) = zip(x.min(axis=0) - pad, x.max(axis=0) + pad)
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    p = to_numpy(model.predict(grid))
    zone = (p.argmax(axis=1) if p.shape[1] > 1 else p[:, 0] > 0.5).reshape(gx.shape)
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.contourf(gx, gy, zone, alpha=0.3, cmap="coolwarm")
    few = len(x) <= 50  # a 4-point truth table needs markers one can see
    ax.scatter(x[:, 0], x[:, 1], c=labels, cmap="coolwarm", s=120 if few else 12, edgecolors="k",
               linewidths=1 if few else 0.3)
    ax.set(title="decision boundary", xlim=(x0, x1), ylim=(y0, y1))
    return _finish(plt, fig or ax.figure, path)


def plot_filters(model: Any, ax: Any = None, path: str | None = None) -> Any:
    """The kernels of the model's first Conv2D, one tile per filter (first input channel)."""
    plt = pyplot()
    conv = next((layer for layer in model.layers if type(layer).__name__ == "Conv2D"), None)
    if conv is None:
        raise ValueError("plot_filters needs a model with a Conv2D layer")
    kernel = to_numpy(conv.params[0])[:, :, 0, :]  # (kh, kw, filters)
    kh, kw, filters = kernel.shape
    cols = int(np.ceil(np.sqrt(filters)))
    rows = int(np.ceil(filters / cols))
    board = np.full((rows * (kh + 1) - 1, cols * (kw + 1) - 1), np.nan)
    for f in range(filters):
        r, c = divmod(f, cols)
        board[r * (kh + 1):r * (kh + 1) + kh, c * (kw + 1):c * (kw + 1) + kw] = kernel[:, :, f]
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(board, cmap="RdBu_r")
    ax.set(title=f"first convolution: {filters} filters {kh}x{kw}", xticks=[], yticks=[])
    return _finish(plt, fig or ax.figure, path)


def plot_misclassified(model: Any, x: Any, y: Any, ax: Any = None, path: str | None = None, most: int = 16) -> Any:
    """Up to `most` images the model classifies wrongly, titled "true -> predicted"."""
    plt = pyplot()
    x, y = to_numpy(x), to_numpy(y)
    truth = y.argmax(axis=1) if y.ndim == 2 else y
    predicted = to_numpy(model.predict(x)).argmax(axis=1)
    wrong = np.flatnonzero(predicted != truth)[:most]
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(4, 4))
    h, w = x.shape[1], x.shape[2]
    cols = max(1, int(np.ceil(np.sqrt(len(wrong)))))
    board = np.full((cols * (h + 1), cols * (w + 1)), np.nan)
    for k, i in enumerate(wrong):
        r, c = divmod(k, cols)
        board[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = x[i, :, :, 0]
        ax.text(c * (w + 1), r * (h + 1) + 1, f"{truth[i]}>{predicted[i]}", color="red", fontsize=7)
    ax.imshow(board, cmap="gray_r")
    ax.set(title=f"misclassified: {len(np.flatnonzero(predicted != truth))} of {len(x)}", xticks=[], yticks=[])
    return _finish(plt, fig or ax.figure, path)


def _finish(plt: Any, fig: Any, path: str | None) -> Any:
    if path:
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    return fig
