"""Runnable example networks: each is a function returning (model, data, report) in a few lines.

`fastnn train NAME` runs one from the command line.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

import fastnn
from fastnn.layers import Dense


def xor(epochs: int | None = None, batch_size: int | None = None, verbose: int = 0) -> dict[str, Any]:
    """2-8-1 network, tanh then sigmoid, Adam, learns XOR."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    y = np.array([0, 1, 1, 0])
    model = fastnn.Sequential([Dense(8, "tanh", input_dim=2), Dense(1, "sigmoid")], seed=0)
    model.compile(fastnn.optimizers.Adam(0.05), "binary_crossentropy")
    history = model.fit(x, y, epochs=epochs or 300, batch_size=batch_size, verbose=verbose)
    return {"model": model, "history": history, "metrics": model.evaluate(x, y),
            "predictions": fastnn.to_numpy(model.predict(x)).astype(float).ravel().round(3).tolist()}


EXAMPLES: dict[str, Callable[..., dict[str, Any]]] = {"xor": xor}
