"""Optimizers reproduce torch.optim's update rules (expected values computed once with
torch 2.13 in float64: p0 and three gradients below, then three steps)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import optimizers

import torch_references
from conftest import backend_params, to_np

P0 = [0.0012301533574825742, 0.2987455375084699, -0.2741378553622176, -0.8905918387572742]
GRADS = [
    [-0.45467078517172255, -0.9916465549964624, 0.060143602597438485, 1.3402152455545335],
    [-0.49220651855132963, -0.6204748998199404, 0.4898420501851982, 0.35688700816006075],
    [0.10541424899789856, -0.9304680447082047, -0.02925182246327349, 0.6953031944582878],
]
TORCH_RESULTS = {
    "sgd": ({"name": "sgd", "lr": 0.1},
            [0.08537645882999793, 0.5530044874609307, -0.32621123839415384, -1.1298323835745625]),
    "sgd_momentum": ({"name": "sgd", "lr": 0.1, "momentum": 0.9},
                     [0.20742374976398217, 0.7784187893491205, -0.38058157895498373, -1.3911290212987932]),
    "sgd_nesterov": ({"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
                     [0.2709506955958476, 0.984710414117516, -0.4220105896276435, -1.5803158478619292]),
    "adam": ({"name": "adam", "lr": 0.01, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6},
             [0.027340126343201522, 0.32804466548713646, -0.2984407486356841, -0.9171402573251605]),
}


@pytest.fixture(params=list(backend_params()))
def be64(request):
    with fastnn.use(request.param, dtype="float64") as be:
        yield be


@pytest.mark.parametrize("case", sorted(TORCH_RESULTS))
def test_optimizer_matches_torch(be64, case, kernels):
    config, expected = TORCH_RESULTS[case]
    be = be64.with_options(kernels=kernels)
    opt = optimizers.get(config)
    p = be.asarray(np.array(P0))
    opt.build([p])
    for g in GRADS:
        p, = opt.apply([p], [be.asarray(np.array(g))], be.ops)
    np.testing.assert_allclose(to_np(p), expected, rtol=1e-12, atol=1e-14)


def test_optimizer_names_and_bad_arguments():
    assert isinstance(optimizers.get("adam"), optimizers.Adam)
    assert isinstance(optimizers.get("SGD"), optimizers.SGD)
    with pytest.raises(ValueError, match="valid names: adagrad, adam, adamw, rmsprop, sgd"):
        optimizers.get("nadam")
    with pytest.raises(ValueError, match=r"SGD lr must be in \(0, inf\)"):
        optimizers.SGD(lr=0)
    with pytest.raises(ValueError, match="nesterov"):
        optimizers.SGD(nesterov=True)
    with pytest.raises(ValueError, match="beta_1"):
        optimizers.Adam(beta_1=1.0)


REFERENCES = json.loads((Path(__file__).parent / "data" / "torch_optimizers.json").read_text())["cases"]


def run_steps(be, config):
    """Twenty seeded steps on two parameters (tests/torch_references.py makes the same)."""
    params, grads = torch_references.data()
    opt = optimizers.get(config)
    ps = [be.asarray(p.copy()) for p in params]
    opt.build(ps)
    for step in grads:
        ps = opt.apply(ps, [be.asarray(g) for g in step], be.ops)
    return [to_np(p).ravel() for p in ps]


@pytest.mark.parametrize("case", sorted(REFERENCES))
def test_optimizers_and_clipping_match_torch_after_20_steps(be64, case, kernels):
    reference = REFERENCES[case]
    got = run_steps(be64.with_options(kernels=kernels), reference["config"])
    for p, expected in zip(got, reference["params"]):
        np.testing.assert_allclose(p, expected, rtol=1e-10, atol=1e-12)


def test_clipnorm_clips_each_gradient_to_its_norm(be64, kernels):
    """Keras's clipnorm, in closed form: g * c / max(|g|, c) for each gradient, then the step."""
    params, grads = torch_references.data()
    expected = [p.copy() for p in params]
    for step in grads:
        for p, g in zip(expected, step):
            p -= 0.1 * g * 1.5 / max(np.linalg.norm(g), 1.5)
    got = run_steps(be64.with_options(kernels=kernels), {"name": "sgd", "lr": 0.1, "clipnorm": 1.5})
    for p, e in zip(got, expected):
        np.testing.assert_allclose(p, e.ravel(), rtol=1e-12)


def test_learning_rate_is_an_alias_of_lr():
    for name in optimizers.OPTIMIZERS:
        assert optimizers.get({"name": name, "learning_rate": 0.123}).lr == 0.123


@pytest.mark.parametrize("make,error,message", [
    (lambda: optimizers.AdamW(weight_decay=-0.1), ValueError, r"AdamW weight_decay must be in \[0, inf\)"),
    (lambda: optimizers.RMSprop(rho=1.0), ValueError, r"RMSprop rho must be in \[0, 1\)"),
    (lambda: optimizers.SGD(clipnorm=1.0, clipvalue=0.5), ValueError, "set at most one of clipnorm, clipvalue"),
    (lambda: optimizers.SGD(global_clipnorm=0), ValueError, "global_clipnorm must be positive"),
    (lambda: optimizers.Adagrad(epsilon="tiny"), TypeError, "Adagrad epsilon must be a number"),
])
def test_new_optimizer_arguments_are_checked(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize("optimizer", [{"name": "rmsprop", "lr": 0.01, "centered": True, "momentum": 0.5},
                                       {"name": "adamw", "lr": 0.01}, {"name": "adagrad", "lr": 0.05},
                                       {"name": "adam", "lr": 0.01, "global_clipnorm": 0.5}],
                         ids=["rmsprop", "adamw", "adagrad", "adam-clipped"])
def test_small_batch_fits_with_new_optimizers_equal_the_pure_path(optimizer, tmp_path):
    """The compiled epoch does not cover these: fit trains them layer by layer, on kernels or not
    alike; a saved model keeps the optimizer and its state."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 3)), rng.integers(0, 2, 40)
    weights = []
    for kernels in (True, False):
        with fastnn.use("numpy", dtype="float64", kernels=kernels):
            model = fastnn.Sequential([fastnn.layers.Dense(5, "tanh"), fastnn.layers.Dense(1, "sigmoid")], seed=1)
            model.compile(optimizer, "binary_crossentropy")
            model.fit(x, y, epochs=3, batch_size=4, verbose=0)
            weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    loaded = fastnn.load(model.save(tmp_path / "m.npz"))
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations
    for a, b in zip(loaded.optimizer.state, model.optimizer.state):
        assert a.keys() == b.keys() and all(np.array_equal(to_np(a[k]), to_np(b[k])) for k in a)
