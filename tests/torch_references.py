"""Writes tests/data/torch_optimizers.json: what torch.optim does with two parameters and 20
seeded gradient steps in float64, for the optimizers and clipping modes fastnn mirrors.

    pip install torch==2.13.0 numpy && python tests/torch_references.py

The tests compare against the file, so they do not need torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

STEPS, SHAPES = 20, [(3, 2), (2,)]


def cases() -> dict:
    import torch  # only this generator needs it; the tests read its output

    return {
        "rmsprop": ({"name": "rmsprop", "lr": 0.01, "rho": 0.8, "epsilon": 1e-6},
                    lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.8, eps=1e-6)),
        "rmsprop_centered_momentum": ({"name": "rmsprop", "lr": 0.01, "rho": 0.9, "momentum": 0.5, "centered": True,
                                       "epsilon": 1e-7},
                                      lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, eps=1e-7, momentum=0.5,
                                                                     centered=True)),
        "adamw": ({"name": "adamw", "lr": 0.01, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6, "weight_decay": 0.1},
                  lambda ps: torch.optim.AdamW(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
        "adagrad": ({"name": "adagrad", "lr": 0.05, "initial_accumulator_value": 0.1, "epsilon": 1e-7},
                    lambda ps: torch.optim.Adagrad(ps, lr=0.05, initial_accumulator_value=0.1, eps=1e-7)),
    }


def data() -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    rng = np.random.default_rng(17)
    params = [rng.standard_normal(s) for s in SHAPES]
    grads = [[2 * rng.standard_normal(s) for s in SHAPES] for _ in range(STEPS)]
    return params, grads


def run(make, clip=None) -> list[list[float]]:
    import torch

    params, grads = data()
    ps = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in params]
    opt = make(ps)
    for step in grads:
        for p, g in zip(ps, step):
            p.grad = torch.tensor(g, dtype=torch.float64)
        if clip is not None:
            clip(ps)
        opt.step()
    return [p.detach().numpy().ravel().tolist() for p in ps]


def main() -> None:
    import torch

    out = {name: {"config": config, "params": run(make)} for name, (config, make) in cases().items()}
    sgd = lambda ps: torch.optim.SGD(ps, lr=0.1)  # noqa: E731
    out["global_clipnorm"] = {"config": {"name": "sgd", "lr": 0.1, "global_clipnorm": 1.5},
                              "params": run(sgd, lambda ps: torch.nn.utils.clip_grad_norm_(ps, 1.5))}
    out["clipvalue"] = {"config": {"name": "sgd", "lr": 0.1, "clipvalue": 0.5},
                        "params": run(sgd, lambda ps: torch.nn.utils.clip_grad_value_(ps, 0.5))}
    meta = {"torch": torch.__version__, "steps": STEPS, "shapes": SHAPES, "seed": 17}
    path = Path(__file__).parent / "data" / "torch_optimizers.json"
    path.write_text(json.dumps({"meta": meta, "cases": out}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
