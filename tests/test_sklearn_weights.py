"""fastnn.sklearn's sample weights mean what scikit-learn means: an integer weight k is the row
repeated k times, 0 the row removed — for the loss, the batches, the early-stopping split."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.utils.estimator_checks import (check_sample_weight_equivalence_on_dense_data,
                                            check_sample_weight_equivalence_on_sparse_data)

from fastnn.sklearn import MLPClassifier, MLPRegressor
from fastnn.sklearn_weights import as_repetition, split_repeated

pytestmark = [pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
              pytest.mark.filterwarnings("ignore:Got `batch_size` less than 1 or larger than sample size")]


def weighted_and_repeated(make_data, seed=0, n=60):
    x, y = make_data(n, 5, random_state=seed)
    weights = np.random.default_rng(seed).integers(0, 4, n)
    return (x, y, weights), (np.repeat(x, weights, axis=0), np.repeat(y, weights))


@pytest.mark.parametrize("check", [check_sample_weight_equivalence_on_dense_data,
                                   check_sample_weight_equivalence_on_sparse_data], ids=["dense", "sparse"])
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("make", [MLPClassifier, MLPRegressor], ids=["classifier", "regressor"])
def test_sklearns_own_equivalence_check_passes_for_every_solver(make, solver, check):
    check(make.__name__, make(solver=solver))


@pytest.mark.parametrize("settings", [dict(solver="lbfgs"), dict(solver="sgd", batch_size=1000),
                                      dict(solver="adam", batch_size=1000)],
                         ids=["lbfgs", "full-batch-sgd", "full-batch-adam"])
@pytest.mark.parametrize("make,data", [(MLPClassifier, make_classification), (MLPRegressor, make_regression)],
                         ids=["classifier", "regressor"])
def test_integer_weights_equal_repetition_to_1e_6(make, data, settings):
    (x, y, w), (x_rep, y_rep) = weighted_and_repeated(data)
    if make is MLPRegressor:
        y, y_rep = y / 100, y_rep / 100
    params = dict(hidden_layer_sizes=(8,), max_iter=60, random_state=0, **settings)
    weighted = make(**params).fit(x, y, sample_weight=w)
    repeated = make(**params).fit(x_rep, y_rep)
    assert weighted.n_iter_ == repeated.n_iter_ and weighted.t_ == repeated.t_
    for a, b in zip(weighted.coefs_ + weighted.intercepts_, repeated.coefs_ + repeated.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(weighted.loss_, repeated.loss_, rtol=1e-6)


def test_zero_weights_remove_rows():
    x, y = make_classification(80, 5, random_state=1)
    w = np.ones(80)
    w[::3] = 0
    params = dict(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=40, random_state=0)
    weighted = MLPClassifier(**params).fit(x, y, sample_weight=w)
    removed = MLPClassifier(**params).fit(x[w > 0], y[w > 0])
    np.testing.assert_allclose(weighted.predict_proba(x), removed.predict_proba(x), rtol=1e-9)


def test_adam_minibatches_see_weights_as_repetition_does():
    """Minibatches of weighted rows equal repeated rows in expectation (not batch for batch):
    the two models agree far more closely than either does with the unweighted one."""
    (x, y, w), (x_rep, y_rep) = weighted_and_repeated(make_classification, seed=3, n=600)
    params = dict(hidden_layer_sizes=(16,), batch_size=32, max_iter=40, random_state=0, learning_rate_init=0.003)
    weighted = MLPClassifier(**params).fit(x, y, sample_weight=w)
    repeated = MLPClassifier(**params).fit(x_rep, y_rep)
    unweighted = MLPClassifier(**params).fit(x, y)
    p_w, p_r, p_u = (m.predict_proba(x)[:, 1] for m in (weighted, repeated, unweighted))
    assert np.abs(p_w - p_r).mean() < 0.5 * np.abs(p_u - p_r).mean()
    assert np.abs(p_w - p_r).mean() < 0.02
    assert weighted.t_ == repeated.t_ == 40 * w.sum()
    assert abs(len(weighted.loss_curve_) - len(repeated.loss_curve_)) <= 5


def test_weighted_batches_take_as_many_steps_as_repeated_rows():
    w = np.array([0, 1, 2, 3, 4] * 20, dtype=float)
    rep = as_repetition(w, 100)
    assert rep.samples == 200 and rep.kept == 80 and rep.rows.tolist() == np.flatnonzero(w).tolist()
    np.testing.assert_allclose(rep.weights.mean(), 1.0)
    assert rep.batch_rows(200) == 80 and rep.batch_rows(20) == 8  # 200 / 20 = 10 steps either way
    assert as_repetition(np.full(10, 2.0), 10).weights is None  # equal weights: the unweighted fit
    with pytest.raises(ValueError, match="sample_weight is 0 for every sample"):
        as_repetition(np.zeros(5), 5)


def test_early_stopping_splits_the_repeated_rows():
    w = np.array([5, 1, 3, 0, 7, 2] * 50, dtype=float)
    labels = np.arange(300) % 2
    train, held = split_repeated(w, labels, 0.1, seed=0)
    np.testing.assert_array_equal(train + held, w)
    assert held.sum() == pytest.approx(0.1 * w.sum(), abs=2)
    for c in (0, 1):  # stratified: each class gives its share of copies
        assert held[labels == c].sum() == pytest.approx(0.1 * w[labels == c].sum(), abs=1)
    x, y = make_regression(300, 4, random_state=0)
    model = MLPRegressor((8,), early_stopping=True, max_iter=30, random_state=0).fit(x, y / 100, sample_weight=w)
    assert len(model.validation_scores_) == model.n_iter_ and model.best_validation_score_ is not None


def test_partial_fit_sees_weights_as_repetition_too():
    (x, y, w), (x_rep, y_rep) = weighted_and_repeated(make_classification, seed=5)
    params = dict(hidden_layer_sizes=(8,), solver="sgd", batch_size=1000, random_state=0, learning_rate_init=0.05)
    weighted, repeated = MLPClassifier(**params), MLPClassifier(**params)
    for _ in range(5):
        weighted.partial_fit(x, y, classes=[0, 1], sample_weight=w)
        repeated.partial_fit(x_rep, y_rep, classes=[0, 1])
    assert weighted.t_ == repeated.t_ == 5 * w.sum()
    for a, b in zip(weighted.coefs_, repeated.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
