"""Sample weights as scikit-learn means them: an integer weight k is the row repeated k times and
a weight of 0 the row removed, for the loss, the minibatches, the early-stopping split and the
stopping rule alike.

fastnn's `fit` weights a batch's loss as Keras does, the mean over the batch's rows of weight x
loss. These helpers translate: drop the rows of weight 0; scale the others to a mean of 1 (so a
batch's loss is sum(w * loss) / sum(w) in expectation, as over repeated rows); and take batches
of batch_size * rows / sum(w) rows, so that an epoch makes as many steps as an epoch over the
repeated rows does. A full batch is then exactly the repeated data's batch; minibatches are
equal to it in expectation (docs/sklearn.md#sample-weights).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Repetition:
    """The rows to train on, fastnn's weights for them, and the repeated data's size."""

    rows: np.ndarray | None  # indices of the rows of weight > 0; None: every row
    weights: np.ndarray | None  # fastnn's per-row weights (mean 1); None: all equal
    samples: float  # sum of the weights: the number of rows repetition would give
    kept: int  # the number of rows trained on

    def take(self, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        return arrays if self.rows is None else tuple(a[self.rows] for a in arrays)

    def batch_rows(self, batch: float) -> int:
        """fastnn's batch size in rows for batches of `batch` repeated rows."""
        return int(min(self.kept, max(1, round(batch * self.kept / self.samples))))


def as_repetition(sample_weight: np.ndarray | None, n: int) -> Repetition:
    """The Repetition of n rows with these weights (checked by the caller: finite, >= 0)."""
    if sample_weight is None:
        return Repetition(None, None, n, n)
    total = float(np.sum(sample_weight))
    if not total > 0:
        raise ValueError("sample_weight is 0 for every sample: there is nothing to fit; give some "
                         "samples a positive weight")
    kept = np.flatnonzero(sample_weight > 0)
    weights = sample_weight[kept]
    rows = None if kept.size == n else kept
    if np.all(weights == weights[0]):  # equal weights are no weights: the unweighted fit, exactly
        return Repetition(rows, None, total, kept.size)
    return Repetition(rows, weights * (kept.size / total), total, kept.size)


def split_repeated(weights: np.ndarray | None, labels: np.ndarray | None, fraction: float,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training weights, validation weights) per row for early stopping's held-out split when
    the weights are integers: validation_fraction of the repeated rows drawn without
    replacement, per class where `labels` are given (stratified), as a split of the repeated
    data would draw them. A row may send some of its copies to each side."""
    rng = np.random.default_rng(seed)
    counts = np.rint(weights).astype(np.int64)
    held = np.zeros_like(counts)
    groups = [np.arange(counts.size)] if labels is None else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    total = counts.sum()
    wanted = math.ceil(fraction * total)  # train_test_split's rounding of a float test_size
    for group in groups:
        share = counts[group].sum()
        k = min(share, round(wanted * share / total)) if labels is not None else wanted
        if k:
            held[group] = rng.multivariate_hypergeometric(counts[group], k, method="marginals")
    return (counts - held).astype(weights.dtype), held.astype(weights.dtype)


def are_integers(weights: np.ndarray | None) -> bool:
    return weights is not None and bool(np.all(weights == np.rint(weights)))
