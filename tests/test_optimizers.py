"""Optimizers reproduce torch.optim's update rules (expected values computed once with
torch 2.13 in float64: p0 and three gradients below, then three steps)."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import optimizers

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
        opt.apply([p], [be.asarray(np.array(g))], be.ops)
    np.testing.assert_allclose(to_np(p), expected, rtol=1e-12, atol=1e-14)


def test_optimizer_names_and_bad_arguments():
    assert isinstance(optimizers.get("adam"), optimizers.Adam)
    assert isinstance(optimizers.get("SGD"), optimizers.SGD)
    with pytest.raises(ValueError, match="valid names: adam, sgd"):
        optimizers.get("rmsprop")
    with pytest.raises(ValueError, match=r"SGD lr must be in \(0, inf\)"):
        optimizers.SGD(lr=0)
    with pytest.raises(ValueError, match="nesterov"):
        optimizers.SGD(nesterov=True)
    with pytest.raises(ValueError, match="beta_1"):
        optimizers.Adam(beta_1=1.0)
