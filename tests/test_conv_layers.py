"""Convolution, pooling and reshaping layers: forward and backward equal to their torch.nn
twins to 1e-10 in float64 (strides 1 and 2, both paddings, odd and even sizes, one-sample
batches) on every backend, finite-difference checks, a CNN trained step for step as in
PyTorch, save/load across backends, and clear errors for bad shapes and arguments."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastnn
from conftest import backend_params, to_np
from fastnn.layers import (AveragePooling2D, Conv1D, Conv2D, Dense, Flatten, GlobalAveragePooling2D, MaxPooling2D,
                           Reshape)

BACKENDS = list(backend_params(("numpy", "array_api_strict", "torch", "jax")))
TOL = dict(rtol=1e-10, atol=1e-10)

# (height, width, channels, batch, kernel or pool size, strides, padding)
CONV_CASES = [(7, 7, 2, 3, 3, 1, "valid"), (8, 8, 2, 3, 3, 2, "same"), (6, 5, 1, 1, (2, 3), 2, "valid"),
              (7, 6, 3, 2, 4, 1, "same"), (5, 5, 1, 1, 5, 1, "valid"), (9, 8, 2, 2, 2, 2, "same"),
              (4, 4, 3, 1, 3, (1, 2), "same")]
POOL_CASES = [(8, 8, 2, 3, 2, None, "valid"), (7, 7, 3, 1, 3, 2, "valid"), (7, 6, 2, 2, 2, 2, "same"),
              (5, 5, 1, 2, 3, 1, "same"), (6, 7, 2, 1, (2, 3), (1, 2), "valid")]


def torch_same_pads(h, w, size, strides):
    """Keras's "same" padding as F.pad's (left, right, top, bottom)."""
    pads = []
    for n, k, s in zip((h, w), size, strides):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return (*pads[1], *pads[0])


def pairs(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def run_layer(name, layer, input_shape, x, dy, params=None, kernels=True):
    """(y, dx, grads) of `layer` on backend `name` in float64, as host arrays."""
    with fastnn.use(name, dtype="float64", kernels=kernels) as be:
        layer.build(input_shape, np.random.default_rng(0), be)
        if params is not None:
            layer.set_params([be.asarray(p) for p in params])
        y, backprop = layer.forward(be.asarray(x), need_dx=True, train=True)
        dx = backprop(be.asarray(dy))
        return to_np(y), to_np(dx), [to_np(g) for g in layer.grads]


def torch_grads(fn, x, *params, dy):
    import torch

    tx = torch.tensor(x, requires_grad=True)
    tps = [torch.tensor(p, requires_grad=True) for p in params]
    y = fn(tx, *tps)
    (y * torch.tensor(dy)).sum().backward()
    return y.detach().numpy(), tx.grad.numpy(), [p.grad.numpy() for p in tps]


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "pure"])
@pytest.mark.parametrize("case", CONV_CASES, ids=[f"{c[0]}x{c[1]}x{c[2]}-b{c[3]}-k{c[4]}-s{c[5]}-{c[6]}" for c in CONV_CASES])
@pytest.mark.parametrize("name", BACKENDS)
def test_conv2d_equals_torch_forward_and_backward(name, case, kernels):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    h, w, c, n, size, strides, padding = case
    size, strides, filters = pairs(size), pairs(strides), 3
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, h, w, c))
    kernel, bias = rng.standard_normal((*size, c, filters)), rng.standard_normal(filters)
    layer = Conv2D(filters, size, strides=strides, padding=padding, activation="tanh")
    out_h = math.ceil(h / strides[0]) if padding == "same" else (h - size[0]) // strides[0] + 1
    out_w = math.ceil(w / strides[1]) if padding == "same" else (w - size[1]) // strides[1] + 1
    dy = rng.standard_normal((n, out_h, out_w, filters))
    y, dx, grads = run_layer(name, layer, (h, w, c), x, dy, [kernel, bias], kernels)

    def reference(tx, tk, tb):
        image = tx.permute(0, 3, 1, 2)
        if padding == "same":
            image = F.pad(image, torch_same_pads(h, w, size, strides))
        return torch.tanh(F.conv2d(image, tk.permute(3, 2, 0, 1), tb, stride=strides)).permute(0, 2, 3, 1)

    y_ref, dx_ref, (dk_ref, db_ref) = torch_grads(reference, x, kernel, bias, dy=dy)
    assert layer.output_shape == y_ref.shape[1:]
    np.testing.assert_allclose(y, y_ref, **TOL)
    np.testing.assert_allclose(dx, dx_ref, **TOL)
    np.testing.assert_allclose(grads[0], dk_ref, **TOL)
    np.testing.assert_allclose(grads[1], db_ref, **TOL)


@pytest.mark.parametrize("case", [(9, 2, 3, 3, 1, "valid"), (10, 3, 1, 4, 2, "same"), (7, 1, 2, 2, 2, "valid"),
                                  (6, 2, 1, 3, 1, "same")], ids=["k3s1-valid", "k4s2-same", "k2s2-valid", "k3s1-same"])
@pytest.mark.parametrize("name", BACKENDS)
def test_conv1d_equals_torch_forward_and_backward(name, case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    steps, c, n, k, stride, padding = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal((n, steps, c))
    kernel, bias = rng.standard_normal((k, c, 4)), rng.standard_normal(4)
    out = math.ceil(steps / stride) if padding == "same" else (steps - k) // stride + 1
    dy = rng.standard_normal((n, out, 4))
    layer = Conv1D(4, k, strides=stride, padding=padding)
    y, dx, grads = run_layer(name, layer, (steps, c), x, dy, [kernel, bias])

    def reference(tx, tk, tb):
        seq = tx.permute(0, 2, 1)
        if padding == "same":
            seq = F.pad(seq, torch_same_pads(1, steps, (1, k), (1, stride))[:2])
        return F.conv1d(seq, tk.permute(2, 1, 0), tb, stride=stride).permute(0, 2, 1)

    y_ref, dx_ref, (dk_ref, db_ref) = torch_grads(reference, x, kernel, bias, dy=dy)
    assert layer.kernel_shape == (k, c, 4) and layer.output_shape == y_ref.shape[1:]
    for got, ref in zip((y, dx, *grads), (y_ref, dx_ref, dk_ref, db_ref)):
        np.testing.assert_allclose(got, ref, **TOL)


def pooling_reference(kind, h, w, size, strides, padding):
    import torch

    F = torch.nn.functional

    def reference(tx):
        image = tx.permute(0, 3, 1, 2)
        if kind == "max":
            if padding == "same":
                image = F.pad(image, torch_same_pads(h, w, size, strides), value=-math.inf)
            out = F.max_pool2d(image, size, strides)
        elif padding == "same":  # symmetric padding here: the mean over the real pixels
            out = F.avg_pool2d(image, size, strides, padding=(size[0] // 2, size[1] // 2), count_include_pad=False)
        else:
            out = F.avg_pool2d(image, size, strides)
        return out.permute(0, 2, 3, 1)

    return reference


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "pure"])
@pytest.mark.parametrize("kind", ["max", "average"])
@pytest.mark.parametrize("case", POOL_CASES, ids=[f"{c[0]}x{c[1]}-b{c[3]}-p{c[4]}-s{c[5]}-{c[6]}" for c in POOL_CASES])
@pytest.mark.parametrize("name", BACKENDS)
def test_pooling_equals_torch_forward_and_backward(name, case, kind, kernels):
    pytest.importorskip("torch")
    h, w, c, n, size, strides, padding = case
    size = pairs(size)
    strides = size if strides is None else pairs(strides)
    if kind == "average" and padding == "same" and (strides != (1, 1) or size[0] % 2 == 0):
        pytest.skip("torch's AvgPool2d pads both sides alike; the asymmetric case is checked by brute force below")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, h, w, c))
    layer = (MaxPooling2D if kind == "max" else AveragePooling2D)(size, strides=strides, padding=padding)
    import torch

    tx = torch.tensor(x, requires_grad=True)
    ty = pooling_reference(kind, h, w, size, strides, padding)(tx)
    dy = rng.standard_normal(tuple(ty.shape))
    (ty * torch.tensor(dy)).sum().backward()
    y, dx, _ = run_layer(name, layer, (h, w, c), x, dy, kernels=kernels)
    assert layer.output_shape == tuple(ty.shape[1:])
    np.testing.assert_allclose(y, ty.detach().numpy(), **TOL)
    np.testing.assert_allclose(dx, tx.grad.numpy(), **TOL)


@pytest.mark.parametrize("name", BACKENDS)
def test_average_pooling_same_with_uneven_padding_averages_the_real_pixels(name):
    x = np.random.default_rng(4).standard_normal((2, 5, 4, 3))
    layer = AveragePooling2D(2, strides=2, padding="same")  # pads one row at the bottom only
    y, _, _ = run_layer(name, layer, (5, 4, 3), x, np.ones((2, 3, 2, 3)))
    for i in range(3):
        for j in range(2):
            np.testing.assert_allclose(y[:, i, j], x[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean(axis=(1, 2)), **TOL)


@pytest.mark.parametrize("name", BACKENDS)
def test_global_average_pooling_flatten_and_reshape_equal_torch(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 5, 2))
    dy = rng.standard_normal((3, 2))
    y, dx, _ = run_layer(name, GlobalAveragePooling2D(), (4, 5, 2), x, dy)
    y_ref, dx_ref, _ = torch_grads(lambda t: torch.nn.AdaptiveAvgPool2d(1)(t.permute(0, 3, 1, 2)).flatten(1), x,
                                   dy=dy)
    np.testing.assert_allclose(y, y_ref, **TOL)
    np.testing.assert_allclose(dx, dx_ref, **TOL)
    dy = rng.standard_normal((3, 40))
    y, dx, _ = run_layer(name, Flatten(), (4, 5, 2), x, dy)
    y_ref, dx_ref, _ = torch_grads(torch.nn.Flatten(), x, dy=dy)
    np.testing.assert_allclose(y, y_ref, **TOL)
    np.testing.assert_allclose(dx, dx_ref, **TOL)
    layer = Reshape((-1, 8))
    y, dx, _ = run_layer(name, layer, (4, 5, 2), x, dy.reshape(3, 5, 8))
    assert layer.output_shape == (5, 8)
    np.testing.assert_array_equal(y, x.reshape(3, 5, 8))
    np.testing.assert_array_equal(dx, dy.reshape(x.shape))


def numeric_gradient(f, a, eps=1e-6):
    grad = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + eps
        up = f()
        a[i] = old - eps
        down = f()
        a[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize("make,shape", [
    (lambda: Conv2D(2, 3, strides=2, padding="same", activation="swish"), (5, 6, 2)),
    (lambda: Conv1D(3, 2, padding="same", activation="gelu"), (5, 2)),
    (lambda: MaxPooling2D(2, strides=1), (4, 3, 2)),
    (lambda: AveragePooling2D(3, strides=2, padding="same"), (5, 5, 1)),
    (lambda: GlobalAveragePooling2D(), (3, 2, 2)),
], ids=["conv2d", "conv1d", "maxpool", "avgpool", "global-avg"])
@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "pure"])
def test_finite_differences_agree_with_backprop(make, shape, kernels):
    rng = np.random.default_rng(6)
    layer = make()
    with fastnn.use("numpy", dtype="float64", kernels=kernels) as be:
        layer.build(shape, rng, be)
        x = rng.standard_normal((2, *shape))
        params = [np.array(p) for p in layer.params]
        dy = rng.standard_normal((2, *layer.output_shape))

        def value():
            layer.set_params([np.array(p) for p in params])
            return float(np.sum(to_np(layer.forward(x, need_dx=False)[0]) * dy))

        layer.set_params([np.array(p) for p in params])
        _, backprop = layer.forward(x.copy(), train=True)
        dx = to_np(backprop(dy))
        grads = [to_np(g) for g in layer.grads]
        np.testing.assert_allclose(dx, numeric_gradient(value, x), rtol=1e-6, atol=1e-7)
        for p, g in zip(params, grads):
            np.testing.assert_allclose(g, numeric_gradient(value, p), rtol=1e-6, atol=1e-7)


def small_cnn(seed=0):
    return fastnn.Sequential([Conv2D(4, 3, activation="relu"), MaxPooling2D(2),
                              Conv2D(5, 3, strides=2, padding="same", activation="tanh"), Flatten(),
                              Dense(10, "softmax")], input_shape=(9, 9, 2), seed=seed, dtype="float64")


@pytest.mark.parametrize("name", BACKENDS)
def test_a_cnn_trained_with_adam_matches_torch_step_for_step(name):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(7)
    x = rng.standard_normal((16, 9, 9, 2))
    labels = rng.integers(0, 10, 16)
    with fastnn.use(name, dtype="float64"):
        model = small_cnn()
        model.compile(fastnn.optimizers.Adam(0.01), "categorical_crossentropy")
        k1, b1, k2, b2, W, b = (torch.tensor(w, requires_grad=True) for w in model.get_weights())
        ours = [model.train_on_batch(x, labels) for _ in range(20)]
    optimizer = torch.optim.Adam([k1, b1, k2, b2, W, b], lr=0.01)
    tx, ty = torch.tensor(x).permute(0, 3, 1, 2), torch.tensor(labels)
    theirs = []
    for _ in range(20):
        h = F.max_pool2d(torch.relu(F.conv2d(tx, k1.permute(3, 2, 0, 1), b1)), 2)
        h = torch.tanh(F.conv2d(F.pad(h, torch_same_pads(3, 3, (3, 3), (2, 2))), k2.permute(3, 2, 0, 1), b2, stride=2))
        loss = F.cross_entropy(h.permute(0, 2, 3, 1).flatten(1) @ W + b, ty)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        theirs.append(loss.item())
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    assert ours[-1] < ours[0]


@pytest.mark.parametrize("target", [b for b in BACKENDS if b.values[0] != "numpy"])
def test_a_cnn_saved_on_numpy_loads_on_another_backend_and_predicts_the_same(target, tmp_path):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((20, 9, 9, 2))
    with fastnn.use("numpy", dtype="float64"):
        model = small_cnn()
        model.compile("adam", "categorical_crossentropy")
        model.fit(x, rng.integers(0, 10, 20), epochs=2, batch_size=8, verbose=0)
        expected = to_np(model.predict(x))
        path = model.save(tmp_path / "cnn.npz")
    loaded = fastnn.load(path, backend=target)
    assert [type(layer).__name__ for layer in loaded.layers] == ["Conv2D", "MaxPooling2D", "Conv2D", "Flatten", "Dense"]
    assert loaded.input_shape == (9, 9, 2)
    np.testing.assert_allclose(to_np(loaded.predict(x)), expected, rtol=1e-6, atol=1e-9)


def test_summary_shows_shapes_and_parameter_counts():
    text = small_cnn().summary(print_fn=None)
    assert "(None, 7, 7, 4)" in text and "(None, 3, 3, 4)" in text and "(None, 2, 2, 5)" in text
    assert "(None, 20)" in text and f"{3 * 3 * 2 * 4 + 4:>10,}" in text
    assert f"total params: {small_cnn().count_params():,}" in text


def test_weights_are_keras_ordered_kernel_then_bias():
    model = small_cnn()
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(3, 3, 2, 4), (4,), (3, 3, 4, 5), (5,), (20, 10), (10,)]
    assert Conv1D(3, 2).get_config()["kernel_size"] == [2]


# -- bad input: clear errors before any work ---------------------------------------------------


def test_images_of_the_wrong_shape_are_clear_errors():
    model = small_cnn()
    model.compile("adam", "categorical_crossentropy")
    with pytest.raises(ValueError, match=r"x must have shape \(n, 9, 9, 2\) for this model, got \(4, 9, 9, 3\)"):
        model.fit(np.zeros((4, 9, 9, 3)), np.zeros(4, int), verbose=0)
    with pytest.raises(ValueError, match=r"got \(4, 162\); reshape it with x.reshape\(-1, 9, 9, 2\)"):
        model.predict(np.zeros((4, 162)))
    with pytest.raises(ValueError, match=r"Conv2D takes samples of shape \(height, width, channels\), channels last"):
        fastnn.Sequential([Conv2D(2, 3)], input_shape=(9, 9))
    with pytest.raises(ValueError, match=r"Dense\(3\) takes flat samples .* put a Flatten\(\) layer before it"):
        fastnn.Sequential([Conv2D(2, 3), Dense(3)], input_shape=(9, 9, 1))


def test_a_kernel_larger_than_the_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"the window 5x5 is larger than the input 3x3 \(padding='valid'\)"):
        fastnn.Sequential([Conv2D(2, 5)], input_shape=(3, 3, 1))
    with pytest.raises(ValueError, match=r"the window 4x4 is larger than the input 3x3"):
        fastnn.Sequential([MaxPooling2D(4)], input_shape=(3, 3, 1))
    fastnn.Sequential([Conv2D(2, 5, padding="same")], input_shape=(3, 3, 1))  # padded: fine


@pytest.mark.parametrize("make,message", [
    (lambda: Conv2D(2, 3, strides=1.5), r"Conv2D strides must be a positive int or a pair of them, got 1.5"),
    (lambda: Conv2D(2, (3, 0)), r"Conv2D kernel_size must be a positive int or a pair of them"),
    (lambda: Conv2D(0, 3), r"Conv2D filters must be a positive integer"),
    (lambda: Conv2D(2, 3, padding="full"), r"Conv2D padding must be 'valid' or 'same', got 'full'"),
    (lambda: MaxPooling2D(2, strides=(1, 2, 3)), r"MaxPooling2D strides must be a positive int or a pair"),
    (lambda: Conv1D(2, 2.0), r"Conv1D kernel_size must be a positive int"),
    (lambda: Reshape((2, -1, -1)), r"at most one -1"),
])
def test_bad_layer_arguments_are_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_layer_before_any_shape_is_known_is_a_clear_error():
    model = fastnn.Sequential([Flatten(), Dense(3)])
    with pytest.raises(RuntimeError, match="the model is not built yet, so no layer knows its shapes"):
        model.summary()
    with pytest.raises(ValueError, match=r"Reshape\(\(3, 5\)\) cannot take samples of shape \(4, 4\)"):
        fastnn.Sequential([Reshape((3, 5))], input_shape=(4, 4))
    with pytest.raises(ValueError, match=r"the model outputs samples of shape \(7, 7, 2\).*end the model with Flatten"):
        model = fastnn.Sequential([Conv2D(2, 3)], input_shape=(9, 9, 1))
        model.compile("sgd", "mse")
        model.fit(np.zeros((2, 9, 9, 1)), np.zeros((2, 98)), verbose=0)


def case_window(case):
    """(the Window of a CONV_CASES or POOL_CASES entry, its window size)."""
    from fastnn.layers.windows import window

    h, w, _, _, size, strides, padding = case
    size = pairs(size)
    return window((h, w), size, size if strides is None else pairs(strides), padding, "test"), size


def kernel_tables(dtype):
    """(the Numba ops table, the pure Array-API one) on numpy in dtype."""
    from fastnn.kernels.cpu_ops import NumbaOps
    from fastnn.ops import ArrayOps

    be = fastnn.backend().with_options(dtype=dtype, kernels=True)
    return NumbaOps(be), ArrayOps(be)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CONV_CASES + POOL_CASES[:2], ids=[str(i) for i in range(len(CONV_CASES) + 2)])
def test_the_window_kernels_equal_their_pure_twins(case, dtype):
    h, w, c, n, size, strides, padding = case
    win, size = case_window(case)
    fused, pure = kernel_tables(dtype)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    for fill in (0.0, -np.inf):
        np.testing.assert_array_equal(fused.im2col(x, win, fill, {}), pure.im2col(x, win, fill))
    cols = rng.standard_normal((n * win.positions, size[0] * size[1] * c)).astype(dtype)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == "float32" else dict(rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(fused.col2im(cols, n, win, {}), pure.col2im(cols, n, win), **tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", POOL_CASES, ids=[str(i) for i in range(len(POOL_CASES))])
def test_the_max_pool_kernels_equal_their_pure_twins(case, dtype):
    h, w, c, n, size, strides, padding = case
    win, size = case_window(case)
    fused, pure = kernel_tables(dtype)
    rng = np.random.default_rng(10)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    y_fused, memo_fused = fused.max_pool(x, win, {})
    y_pure, memo_pure = pure.max_pool(x, win)
    np.testing.assert_array_equal(y_fused, y_pure)
    dy = rng.standard_normal(y_pure.shape).astype(dtype)
    np.testing.assert_allclose(fused.max_pool_backward(dy, memo_fused, win, {}),  # overlaps add in another order
                               pure.max_pool_backward(dy, memo_pure, win), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("target", [b for b in BACKENDS if b.values[0] != "numpy"])
def test_a_cnn_moves_to_another_backend_and_pickles_with_the_same_predictions(target):
    import pickle

    rng = np.random.default_rng(12)
    x = rng.standard_normal((6, 9, 9, 2))
    with fastnn.use("numpy", dtype="float64"):
        model = fastnn.Sequential([Conv2D(3, 3, padding="same", activation="relu"), AveragePooling2D(2, padding="same"),
                                   MaxPooling2D(2), GlobalAveragePooling2D(), Dense(2)], input_shape=(9, 9, 2), seed=0,
                                  dtype="float64")
        expected = to_np(model.predict(x))
        again = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(to_np(again.predict(x)), expected, rtol=1e-12)
    model.to(target)
    assert model.backend.name == target
    np.testing.assert_allclose(to_np(model.predict(x)), expected, rtol=1e-10, atol=1e-12)
