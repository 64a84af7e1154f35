"""What TF32 costs in accuracy, measured on the CPU by emulation: the same seeded training in
float32, once exactly and once with every matrix product's inputs rounded to TF32 (10 mantissa
bits, round to nearest even, as cuBLAS does on tensor cores; products and sums stay float32).
Prints a Markdown table for docs/gpu.md#tf32. Run: python benchmarks/tf32_accuracy.py"""

from __future__ import annotations

import numpy as np

import fastnn
from fastnn import datasets
from fastnn.engines import LayerEngine
from fastnn.layers import Dense
from fastnn.ops import ArrayOps


def tf32(a: np.ndarray) -> np.ndarray:
    """float32 `a` rounded to TF32's 10-bit mantissa (to nearest, ties to even)."""
    bits = np.ascontiguousarray(a, np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x0FFF) + ((bits >> np.uint32(13)) & np.uint32(1))) & np.uint32(0xFFFFE000)
    return rounded.view(np.float32)


class TF32Ops(ArrayOps):
    """The pure ops with TF32-rounded operands in each product of a Dense layer."""

    def dense_forward(self, x, W, b, act, buffers=None):
        z = tf32(x) @ tf32(W) + b
        return act.forward(z), (z if act.needs_z else None)

    def dense_backward(self, dy, x, W, y, z, act, need_dx, buffers=None):
        dz = act.backward(dy, z, y)
        dW = tf32(x).T @ tf32(dz)
        return (tf32(dz) @ tf32(W).T if need_dx else None), dW, np.sum(dz, axis=0)


def train(build, data, ops, epochs, batch_size):
    (x, y), (x_test, y_test) = data
    with fastnn.use("numpy", kernels=False):
        model = build()
        xd, yd = model.prepare(x, y)
        model.optimizer.build(model.params)
        engine = LayerEngine(model.backend, ops=ops(model.backend))
        rng = np.random.default_rng(0)
        for _ in range(epochs):
            logs = engine.run_epoch(model.spec, model.train_state(), xd, yd, batch_size, rng.permutation(len(x)))
        return logs["loss"], model.evaluate(x_test, y_test)["accuracy"]


def digits_mlp():
    model = fastnn.Sequential([Dense(64, "relu", input_dim=64), Dense(10, "softmax")], seed=0)
    model.compile(fastnn.optimizers.Adam(0.003), "categorical_crossentropy", ["accuracy"])
    return model


def moons_mlp():
    model = fastnn.Sequential([Dense(25, "relu", input_dim=2), Dense(50, "relu"), Dense(50, "relu"),
                               Dense(25, "relu"), Dense(1, "sigmoid")], seed=0)
    model.compile(fastnn.optimizers.Adam(0.01), "binary_crossentropy", ["accuracy"])
    return model


def product_errors(rows: int = 4096, k: int = 784, m: int = 512) -> tuple[float, float]:
    """Relative (Frobenius) error of one float32 and one TF32 product against float64."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((rows, k)).astype(np.float32), rng.standard_normal((k, m)).astype(np.float32)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    error = lambda got: float(np.linalg.norm(got - exact) / np.linalg.norm(exact))  # noqa: E731
    return error(a @ b), error(tf32(a) @ tf32(b))


def main() -> None:
    single, rounded = product_errors()
    print(f"one 4096x784 @ 784x512 product, relative error against float64: float32 {single:.1e}, TF32 {rounded:.1e}\n")
    x, y, x_test, y_test = datasets.digits()
    digits = ((x, y), (x_test, y_test))
    xm, ym, xm_test, ym_test = datasets.moons(n_samples=5000)
    moons = ((xm, ym), (xm_test, ym_test))
    print("| network | epochs | float32 loss | TF32 loss | float32 test accuracy | TF32 test accuracy |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, build, data, epochs, batch in (("digits 64-64-10", digits_mlp, digits, 100, 32),
                                              ("moons 2-25-50-50-25-1", moons_mlp, moons, 100, 64)):
        exact = train(build, data, ArrayOps, epochs, batch)
        rounded = train(build, data, TF32Ops, epochs, batch)
        print(f"| {label} | {epochs} | {exact[0]:.5f} | {rounded[0]:.5f} | {exact[1]:.4f} | {rounded[1]:.4f} |")


if __name__ == "__main__":
    main()
