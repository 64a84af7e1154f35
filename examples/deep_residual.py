"""Depth: twenty Dense layers on scikit-learn's digits, as a plain stack and as a residual MLP
(pre-normalized blocks, LayerNormalization -> Dense -> relu -> Dense, added back onto their
input with Add). Same width, activation, optimizer, epochs and seed; the residual network
reaches a training loss the plain stack does not, and generalizes as well as a shallow MLP.

    python examples/deep_residual.py
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fastnn
from fastnn.layers import Activation, Add, Dense, LayerNormalization

DEPTH, WIDTH = 20, 64  # Dense layers in each network, units per hidden layer

x, y = load_digits(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(x / 16.0, y, test_size=0.25, random_state=0, stratify=y)


def plain_stack() -> fastnn.Sequential:
    return fastnn.Sequential([Dense(WIDTH, "relu") for _ in range(DEPTH - 1)] + [Dense(10, "softmax")],
                             input_dim=64, seed=0)


def residual_mlp() -> fastnn.Model:
    pixels = fastnn.Input(shape=(64,))
    h = Dense(WIDTH)(pixels)
    for _ in range((DEPTH - 2) // 2):  # each block holds two Dense layers
        r = Dense(WIDTH, "relu")(LayerNormalization()(h))
        h = Add()([h, Dense(WIDTH)(r)])
    return fastnn.Model(pixels, Dense(10, "softmax")(Activation("relu")(LayerNormalization()(h))), seed=0)


results = {}
for name, make in (("plain stack", plain_stack), ("residual MLP", residual_mlp)):
    model = make()
    model.compile(fastnn.optimizers.Adam(1e-3), "categorical_crossentropy")
    history = model.fit(x_train, y_train, epochs=40, batch_size=64, verbose=0)
    accuracy = model.evaluate(x_test, y_test)["accuracy"]
    results[name] = history.history["loss"][-1], min(history.history["loss"]), accuracy
    print(f"{name:>13}: {DEPTH} Dense layers, final training loss {results[name][0]:.4f} "
          f"(lowest {results[name][1]:.4f}), test accuracy {accuracy:.3f}")

plain, residual = results["plain stack"], results["residual MLP"]
assert residual[1] < plain[1] / 10 and residual[2] > 0.95, results
