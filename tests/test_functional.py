"""fastnn.Input / fastnn.Model: a two-input model with Concatenate, normalization and a residual
Add trained by Adam equal to the same network in PyTorch step for step (float64, every
backend); one fit/evaluate/predict/save/load/to for graphs and Sequential; the Dense fast
paths for linear graphs; clear errors for every malformed graph and input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import fastnn
from conftest import backend_params, to_np
from fastnn.layers import (Activation, Add, BatchNormalization, Concatenate, Dense, Embedding, Flatten,
                           LayerNormalization)

BACKENDS = list(backend_params(("numpy", "array_api_strict", "torch", "jax")))
KINDS = ["Dense", "Embedding", "Flatten", "Concatenate", "BatchNormalization", "Dense", "Dense", "LayerNormalization",
         "Activation", "Add", "Dense"]


def two_input_model(dtype="float64", seed=0):
    """Numeric columns and a category id, joined, normalized, with one residual block."""
    num = fastnn.Input(shape=(5,), name="num")
    cat = fastnn.Input(shape=(), dtype="int64", name="cat")
    h = Concatenate()([Dense(8, "relu")(num), Flatten()(Embedding(6, 3)(cat))])
    h = Dense(8, "tanh")(BatchNormalization(momentum=0.9)(h))
    h = Add()([h, Activation("relu")(LayerNormalization()(Dense(8)(h)))])
    return fastnn.Model([num, cat], Dense(3, "softmax")(h), seed=seed, dtype=dtype)


def data(n=24, seed=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 5)), rng.integers(0, 6, n), rng.integers(0, 3, n)


@pytest.mark.parametrize("name", BACKENDS)
def test_two_inputs_concatenate_and_a_residual_block_match_torch_for_20_adam_steps(name, kernels):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    num, cat, labels = data()
    with fastnn.use(name, dtype="float64", kernels=kernels):
        model = two_input_model()
        assert [type(layer).__name__ for layer in model.layers] == KINDS  # running order: each after its inputs
        model.compile(fastnn.optimizers.Adam(0.01), "categorical_crossentropy")
        weights = [[torch.tensor(np.array(to_np(p)), requires_grad=True) for p in layer.params] for layer in model.layers]
        ours = [model.train_on_batch([num, cat], labels) for _ in range(20)]
    (W0, b0), (table,), _, _, (g0, be0), (W1, b1), (W2, b2), (g1, be1), _, _, (W3, b3) = weights
    optimizer = torch.optim.Adam([w for ws in weights for w in ws], lr=0.01)
    tn, tc, ty = torch.tensor(num), torch.tensor(cat), torch.tensor(labels)
    theirs = []
    for _ in range(20):
        h = torch.cat([torch.relu(tn @ W0 + b0), table[tc]], dim=1)
        h = torch.tanh(F.batch_norm(h, None, None, g0, be0, training=True, eps=1e-3) @ W1 + b1)
        h = h + torch.relu(F.layer_norm(h @ W2 + b2, (8,), g1, be1, eps=1e-3))
        loss = F.cross_entropy(h @ W3 + b3, ty)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        theirs.append(loss.item())
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    assert ours[-1] < 0.5 * ours[0]


def test_a_tensor_feeding_two_layers_gets_the_sum_of_their_gradients():
    """Finite differences through a residual Add, where the input of the block feeds both it and
    the Add."""
    x = fastnn.Input(shape=(3,))
    h = Dense(4, "tanh")(x)
    model = fastnn.Model(x, Dense(1)(Add()([h, Dense(4, "sigmoid")(h)])), seed=1, dtype="float64")
    model.compile("sgd", "mse")
    rng = np.random.default_rng(0)
    xs, ys = rng.standard_normal((7, 3)), rng.standard_normal(7)
    _, grads = model.loss_and_gradients(xs, ys)
    weights = model.get_weights()
    for k in range(len(weights)):
        numeric = np.zeros_like(weights[k])
        for index in np.ndindex(weights[k].shape):
            values = []
            for sign in (1, -1):
                moved = [w.copy() for w in weights]
                moved[k][index] += sign * 1e-6
                model.set_weights(moved)
                values.append(model.loss_and_gradients(xs, ys)[0])
            numeric[index] = (values[0] - values[1]) / 2e-6
        np.testing.assert_allclose(grads[k], numeric, rtol=1e-6, atol=1e-8)
    model.set_weights(weights)


@pytest.mark.parametrize("target", [b for b in BACKENDS if b.values[0] != "numpy"])
def test_a_graph_saved_on_numpy_loads_on_another_backend_with_its_batch_statistics(target, tmp_path):
    num, cat, labels = data(60)
    with fastnn.use("numpy", dtype="float64"):
        model = two_input_model()
        model.compile("adam", "categorical_crossentropy")
        model.fit({"num": num, "cat": cat}, labels, epochs=3, batch_size=16, verbose=0)
        moving_mean = to_np(model.layers[4].state[0])
        expected = to_np(model.predict([num, cat]))
        path = model.save(tmp_path / "graph.npz")
    assert not np.allclose(moving_mean, 0)
    loaded = fastnn.load(path, backend=target)
    assert isinstance(loaded, fastnn.Model) and not isinstance(loaded, fastnn.Sequential)
    assert loaded.input_names == ["num", "cat"] and loaded.input_shape == [(5,), ()]
    np.testing.assert_allclose(to_np(loaded.layers[4].state[0]), moving_mean, rtol=1e-12)
    np.testing.assert_allclose(to_np(loaded.predict([num, cat])), expected, rtol=1e-6, atol=1e-9)
    loaded.fit([num, cat], labels, epochs=1, batch_size=16, verbose=0)  # training goes on, optimizer state included


def test_pickling_moving_and_training_tools_work_on_graphs():
    num, cat, labels = data(80)
    model = two_input_model("float32")
    model.compile("adam", "categorical_crossentropy")
    history = model.fit([num, cat], labels, epochs=4, batch_size=16, validation_split=0.25, verbose=0,
                        sample_weight=np.linspace(0.5, 1.5, 80),
                        callbacks=[fastnn.EarlyStopping("val_loss", patience=10)])
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert set(model.evaluate([num, cat], labels)) == {"loss", "accuracy"}
    np.testing.assert_allclose(to_np(pickle.loads(pickle.dumps(model)).predict([num, cat])),
                               to_np(model.predict([num, cat])), rtol=1e-6)
    text = model.summary(print_fn=None)
    assert "3: Concatenate(axis=-1)" in text and "num" in text and "takes" in text
    assert np.asarray(model([num, cat])).shape == (80, 3)  # model(x) is predict
    clone = fastnn.Model.from_config(model.get_config())
    assert [type(a) for a in clone.layers] == [type(a) for a in model.layers] and clone.count_params() == 321


def test_a_linear_graph_of_dense_layers_takes_the_sequential_fast_paths():
    x = fastnn.Input(shape=(4,))
    graph = fastnn.Model(x, Dense(1, "sigmoid")(Dense(8, "relu")(x)), seed=0)
    stack = fastnn.Sequential([Dense(8, "relu", input_dim=4), Dense(1, "sigmoid")], seed=0)
    for model in (graph, stack):
        model.compile("sgd", "binary_crossentropy")
    assert graph.spec.dense_only and graph.spec.graph.linear
    chosen = [type(fastnn.engines.select(m.backend.engines, m.spec, 32)).__name__ for m in (graph, stack)]
    assert chosen[0] == chosen[1]
    branched = fastnn.Model(x, Add()([Dense(2)(x), Dense(2)(x)]))
    branched.compile("sgd", "mse")
    assert not branched.spec.dense_only  # all Dense, but not a chain: the layer engine trains it
    rng = np.random.default_rng(0)
    xs, ys = rng.standard_normal((64, 4)), rng.integers(0, 2, 64)
    np.testing.assert_allclose(graph.fit(xs, ys, epochs=3, verbose=0).history["loss"],
                               stack.fit(xs, ys, epochs=3, verbose=0).history["loss"], rtol=1e-6)


def test_a_graph_exports_to_onnx_with_one_input_per_model_input(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")

    num, cat, labels = data(30)
    model = two_input_model("float32")
    model.compile("adam", "categorical_crossentropy")
    model.fit([num, cat], labels, epochs=2, verbose=0)
    session = onnxruntime.InferenceSession(str(model.export_onnx(tmp_path / "g.onnx")))
    assert [i.name for i in session.get_inputs()] == ["num", "cat"]
    out = session.run(None, {"num": num.astype(np.float32), "cat": cat.astype(np.int64)})[0]
    np.testing.assert_allclose(out, to_np(model.predict([num, cat])), rtol=1e-5, atol=1e-6)


def test_malformed_graphs_are_clear_errors_before_any_work():
    x, c = fastnn.Input(shape=(3,), name="x"), fastnn.Input(shape=(), dtype="int64", name="c")
    stray = fastnn.Input(shape=(3,))
    with pytest.raises(ValueError, match=r"depends on an Input of shape \(3,\) that is not in the model's inputs"):
        fastnn.Model(x, Add()([Dense(3)(x), stray]))
    with pytest.raises(ValueError, match=r"input\(s\) \['c'\] feed no layer of the output"):
        fastnn.Model([x, c], Dense(1)(x))
    dense = Dense(3)
    with pytest.raises(ValueError, match=r"Dense\(3.*is called twice .* a cycle through its own output"):
        fastnn.Model(x, dense(dense(x)))
    shared = Dense(3)
    with pytest.raises(ValueError, match="called twice"):
        fastnn.Model(x, Add()([shared(x), shared(x)]))
    config = fastnn.Model(x, Dense(1)(Dense(2)(x))).get_config()
    config["graph"]["nodes"] = [[2], [1]]  # a file edited into a cycle: node 0 takes node 1's output
    with pytest.raises(ValueError, match="has a cycle or a forward reference"):
        fastnn.Model.from_config(config)
    with pytest.raises(ValueError, match="one output"):
        fastnn.Model(x, [Dense(1)(x), Dense(1)(x)])
    with pytest.raises(ValueError, match=r"Add sums tensors of one shape, got samples of shapes \[\(2,\), \(3,\)\]"):
        Add()([Dense(2)(x), Dense(3)(x)])
    with pytest.raises(ValueError, match="Concatenate.* joins samples that match except on that axis"):
        Concatenate()([x, Embedding(4, 2)(fastnn.Input(shape=(3,)))])
    with pytest.raises(TypeError, match="layers are called on fastnn.Input tensors"):
        Dense(2)(np.ones((4, 3)))
    with pytest.raises(TypeError, match="takes a list of two or more tensors"):
        Add()(x)
    with pytest.raises(TypeError, match="build a fastnn.Model with the functional API"):
        fastnn.Sequential([Dense(2, input_dim=2), Add()])
    with pytest.raises(ValueError, match="Dense.* takes flat samples"):
        Dense(2)(fastnn.Input(shape=(4, 4, 1)))
    with pytest.raises(ValueError, match="Input shape must be a tuple of positive ints"):
        fastnn.Input(shape=(0,))


def test_bad_inputs_to_fit_are_clear_errors_naming_the_input():
    num, cat, labels = data(10)
    model = two_input_model()
    model.compile("adam", "categorical_crossentropy")
    with pytest.raises(ValueError, match=r"x is a dict with keys \['num'\], but the model's inputs are \['num', "
                                         r"'cat'\]: missing \['cat'\]"):
        model.fit({"num": num}, labels, verbose=0)
    with pytest.raises(ValueError, match="the model has 2 inputs .* but x is a list of 3 arrays"):
        model.fit([num, cat, cat], labels, verbose=0)
    with pytest.raises(ValueError, match="give x as a list of 2 arrays"):
        model.predict(num)
    with pytest.raises(ValueError, match=r"different row counts \(num: 10, cat: 9\)"):
        model.fit([num, cat[:9]], labels, verbose=0)
    with pytest.raises(ValueError, match=r"x\['num'\] has 4 features but the model"):
        model.fit([num[:, :4], cat], labels, verbose=0)
    with pytest.raises(ValueError, match=r"x\['cat'\] feeds an integer Input \(ids\), but holds values that are not"):
        model.fit([num, cat + 0.5], labels, verbose=0)
    with pytest.raises(ValueError, match=r"Embedding\(6, 3\) got the id 9: ids must be whole numbers in \[0, 6\)"):
        model.fit([num, np.where(np.arange(10) == 4, 9, cat)], labels, verbose=0)
    with pytest.raises(ValueError, match="float32 cannot carry exactly"):
        two_input_model("float32").predict([num, np.full(10, 2 ** 25)])
    with pytest.raises(ValueError, match=r"x\['num'\] contains 1 NaN"):
        model.predict([np.where(num == num[0, 0], np.nan, num), cat])


def residual_graph():
    x = fastnn.Input(shape=(4,))
    h = Dense(6, "tanh")(x)
    h = Add()([h, Dense(6, "relu")(h)])
    return fastnn.Model(x, Dense(1)(Concatenate()([h, x])), seed=2, dtype="float64")


@pytest.mark.parametrize("name", BACKENDS)
def test_a_graph_trains_the_same_on_every_backend_and_moves_between_them(name):
    """On JAX the graph (no eager layers) trains through the jitted step."""
    rng = np.random.default_rng(5)
    xs, ys = rng.standard_normal((48, 4)), rng.standard_normal(48)
    with fastnn.use("numpy", dtype="float64"):
        reference = residual_graph()
        reference.compile("adam", "mse")
        expected = reference.fit(xs, ys, epochs=3, batch_size=16, shuffle=False, verbose=0).history["loss"]
    with fastnn.use(name, dtype="float64"):
        model = residual_graph()
        model.compile("adam", "mse")
        losses = model.fit(xs, ys, epochs=3, batch_size=16, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(losses, expected, rtol=1e-9)
    before = to_np(model.predict(xs))
    model.to("numpy")
    np.testing.assert_allclose(to_np(model.predict(xs)), before, rtol=1e-12)
    assert model.fit(xs, ys, epochs=1, verbose=0).history["loss"][0] < expected[0]
