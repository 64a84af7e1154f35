"""Scratch arrays kept in a layer's `buffers` dict between steps: fresh large arrays every step
page-fault, so the fused kernels write into the same memory each time."""

from __future__ import annotations

from typing import Any

import numpy as np


def scratch(buffers: dict | None, key: str, shape: tuple, dtype: Any) -> np.ndarray:
    """A scratch array kept in `buffers` between steps (a fresh one when buffers is None).
    Keyed by shape too, so an epoch's short last batch doesn't evict the full-size buffers."""
    if buffers is None:
        return np.empty(shape, dtype)
    buf = buffers.get((key, shape))
    if buf is None or buf.dtype != dtype:
        buf = buffers[(key, shape)] = np.empty(shape, dtype)
    return buf
