"""fastnn.sklearn against scikit-learn's own MLPs, the same parameters and random_state: 5-fold
accuracy (MLPClassifier on load_digits) and R² (MLPRegressor on load_diabetes, X and y
standardised), n_iter_, and fit time, per solver and with early_stopping. Prints the Markdown
table of docs/sklearn.md.

    python benchmarks/sklearn_parity.py
"""

from __future__ import annotations

import platform
import time
import warnings

import numpy as np
from sklearn.datasets import load_diabetes, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.neural_network import MLPClassifier as SkClassifier
from sklearn.neural_network import MLPRegressor as SkRegressor
from sklearn.preprocessing import StandardScaler

from fastnn.sklearn import MLPClassifier, MLPRegressor

SETTINGS = [("adam", {}), ("sgd", {}), ("lbfgs", {}), ("adam", {"early_stopping": True}),
            ("sgd", {"early_stopping": True, "learning_rate": "adaptive"})]


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def cross_validate(make, X, y, folds):
    scores, iters, seconds = [], [], 0.0
    for train, test in folds.split(X, y):
        scaler = StandardScaler().fit(X[train])
        model = make()
        start = time.perf_counter()
        model.fit(scaler.transform(X[train]), y[train])
        seconds += time.perf_counter() - start
        scores.append(model.score(scaler.transform(X[test]), y[test]))
        iters.append(model.n_iter_)
    return float(np.mean(scores)), float(np.mean(iters)), seconds


def main() -> None:
    warnings.simplefilter("ignore", ConvergenceWarning)
    digits = load_digits(return_X_y=True)
    X_d, y_d = load_diabetes(return_X_y=True)
    diabetes = (X_d, (y_d - y_d.mean()) / y_d.std())
    tasks = [("digits accuracy", MLPClassifier, SkClassifier, digits, StratifiedKFold(5, shuffle=True, random_state=0)),
             ("diabetes R²", MLPRegressor, SkRegressor, diabetes, KFold(5, shuffle=True, random_state=0))]
    MLPClassifier((16,), max_iter=5).fit(*digits)  # compile fastnn's kernels before timing
    print(f"host: {cpu_name()}, {platform.python_version()}\n")
    print("| task | solver | fastnn | scikit-learn | n_iter_ fastnn / sklearn | fit time fastnn / sklearn |")
    print("|---|---|---:|---:|---:|---:|")
    for title, ours, theirs, (X, y), folds in tasks:
        for solver, extra in SETTINGS:
            params = dict(hidden_layer_sizes=(64,), solver=solver, max_iter=300, random_state=0, **extra)
            a = cross_validate(lambda: ours(**params), X, y, folds)
            b = cross_validate(lambda: theirs(**params), X, y, folds)
            name = solver + "".join(f", {k}={v}" for k, v in extra.items())
            print(f"| {title} | {name} | {a[0]:.4f} | {b[0]:.4f} | {a[1]:.0f} / {b[1]:.0f} | {a[2] / b[2]:.2f}x |",
                  flush=True)


if __name__ == "__main__":
    main()
