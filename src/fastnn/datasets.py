"""The tutorials' datasets as host NumPy arrays, plus scalable generators for benchmarks.

Two-moons and digits come from scikit-learn (`pip install "fastnn[datasets]"`); the small
tables are written out here exactly as the tutorials give them.
"""

from __future__ import annotations

import numpy as np

Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def neuron() -> tuple[np.ndarray, np.ndarray]:
    """The single-neuron tutorial's 8 points (2 features) and 0/1 targets."""
    x = np.array([[3, 1.5], [2, 1], [4, 1.5], [3, 4], [3.5, 0.5], [2, 0.5], [5.5, 1], [1, 1]])
    return x, np.array([0, 1, 0, 1, 0, 1, 1, 0], dtype=float)


def gender() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(weight - 135 lb, height - 66 in) of Alice, Bob, Charlie, Diana; 1 = female; and the two
    people the tutorial asks about afterwards."""
    x = np.array([[-2, -1], [25, 6], [17, 4], [-15, -6]], dtype=float)
    y = np.array([1, 0, 0, 1], dtype=float)
    return x, y, {"Emily": np.array([[-7, -3]], dtype=float), "Frank": np.array([[20, 2]], dtype=float)}


def logic(gate: str = "and") -> tuple[np.ndarray, np.ndarray]:
    """A two-input truth table: gate is "and", "or" or "xor"."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    tables = {"and": [0, 0, 0, 1], "or": [0, 1, 1, 1], "xor": [0, 1, 1, 0]}
    if gate not in tables:
        raise ValueError(f"unknown gate {gate!r}; choose one of {', '.join(tables)}")
    return x, np.array(tables[gate], dtype=float)


def _sklearn():
    try:
        import sklearn.datasets
        import sklearn.model_selection
    except ImportError as err:
        raise ImportError('this dataset needs scikit-learn: pip install "fastnn[datasets]"') from err
    return sklearn


def moons(n_samples: int = 1000, noise: float = 0.2, random_state: int = 100, test_size: float = 0.1,
          split_state: int = 42) -> Split:
    """Two interleaving half-moons, split as in the moons tutorial: (x_train, y_train, x_test, y_test)."""
    sklearn = _sklearn()
    x, y = sklearn.datasets.make_moons(n_samples=n_samples, noise=noise, random_state=random_state)
    x_train, x_test, y_train, y_test = sklearn.model_selection.train_test_split(
        x, y.astype(float), test_size=test_size, random_state=split_state)
    return x_train, y_train, x_test, y_test


def digits(test_size: float = 0.2, random_state: int = 42) -> Split:
    """scikit-learn's 1 797 handwritten digits (8x8 pixels, scaled to [0, 1]) with integer labels
    0-9: the available stand-in for the tutorial's 5 000 images of 20x20."""
    sklearn = _sklearn()
    data = sklearn.datasets.load_digits()
    x_train, x_test, y_train, y_test = sklearn.model_selection.train_test_split(
        data.data / 16.0, data.target, test_size=test_size, random_state=random_state, stratify=data.target)
    return x_train, y_train, x_test, y_test


def make_moons(n_samples: int, noise: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two-moons with any number of rows (float32), for benchmarks."""
    x, y = _sklearn().datasets.make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return x.astype(np.float32), y.astype(np.float32)


def make_digits_like(n_samples: int, n_features: int = 400, n_classes: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic data shaped like the tutorial's digits (400 pixel features in [0, 1], 10
    classes): each class is a noisy copy of its own random template, so it is learnable."""
    rng = np.random.default_rng(seed)
    templates = rng.random((n_classes, n_features))
    labels = rng.integers(0, n_classes, n_samples)
    x = np.clip(templates[labels] + 0.3 * rng.standard_normal((n_samples, n_features)), 0, 1)
    return x.astype(np.float32), labels
