"""fastnn.sklearn's estimators: scikit-learn's own estimator checks, and the ways users combine
them (Pipeline, GridSearchCV, clone, pickle, partial_fit, early stopping)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.neural_network import MLPRegressor as SklearnMLPRegressor
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import check_estimator, parametrize_with_checks

from conftest import backend_params
from fastnn.sklearn import MLPClassifier, MLPRegressor, expected_failed_checks

# Short runs on tiny data stop at max_iter, as sklearn's own MLPs do there: that warning is the point.
# check_estimator also warns for each check it skips (no pandas, say).
pytestmark = [pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
              pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")]


@parametrize_with_checks([MLPClassifier(), MLPRegressor()], expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("backend", list(backend_params(("array_api_strict", "torch", "jax"), slow=("jax",))))
@pytest.mark.parametrize("make", [MLPClassifier, MLPRegressor], ids=["classifier", "regressor"])
def test_check_estimator_passes_on_every_backend(make, backend):
    estimator = make(backend=backend, max_iter=50)
    results = check_estimator(estimator, on_fail=None, expected_failed_checks=expected_failed_checks(estimator))
    failed = {r["check_name"]: r["exception"] for r in results if r["status"] == "failed"}
    assert not failed
    assert sum(r["status"] == "passed" for r in results) > 50


def digits():
    x, y = load_digits(return_X_y=True)
    return train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)


def test_digits_accuracy_is_sklearns():
    x_train, x_test, y_train, y_test = digits()
    settings = dict(hidden_layer_sizes=(32,), max_iter=60, random_state=0)
    ours = make_pipeline(StandardScaler(), MLPClassifier(**settings)).fit(x_train, y_train)
    theirs = make_pipeline(StandardScaler(), SklearnMLPClassifier(**settings)).fit(x_train, y_train)
    assert ours.score(x_test, y_test) > 0.93  # seeds 0-2 here: ours 0.94-0.96, sklearn 0.96
    assert ours.score(x_test, y_test) == pytest.approx(theirs.score(x_test, y_test), abs=0.03)
    mlp = ours[-1]
    assert mlp.n_iter_ == len(mlp.loss_curve_) <= 60 and mlp.loss_curve_[-1] < mlp.loss_curve_[0] / 5
    proba = ours.predict_proba(x_test)
    assert proba.shape == (len(x_test), 10) and np.allclose(proba.sum(axis=1), 1)
    np.testing.assert_array_equal(mlp.classes_[proba.argmax(axis=1)], ours.predict(x_test))


def test_grid_search_over_a_pipeline_with_clone_and_pickle():
    x, y = make_classification(200, 6, random_state=0)
    search = GridSearchCV(make_pipeline(StandardScaler(), MLPClassifier(max_iter=30, random_state=0)),
                          {"mlpclassifier__hidden_layer_sizes": [(4,), (16,)], "mlpclassifier__alpha": [1e-4, 1e-1]},
                          cv=3)
    search.fit(x, y)
    assert set(search.best_params_) == {"mlpclassifier__hidden_layer_sizes", "mlpclassifier__alpha"}
    restored = pickle.loads(pickle.dumps(search.best_estimator_))
    np.testing.assert_array_equal(restored.predict_proba(x), search.best_estimator_.predict_proba(x))
    fresh = clone(search.best_estimator_)
    assert not hasattr(fresh[-1], "model_") and fresh.get_params()["mlpclassifier__max_iter"] == 30


def test_the_same_random_state_gives_the_same_model_and_another_does_not():
    x, y = make_regression(120, 4, noise=0.1, random_state=0)
    a, b, c = (MLPRegressor((8,), max_iter=20, random_state=s).fit(x, y) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    assert not np.array_equal(a.predict(x), c.predict(x))


def test_partial_fit_learns_with_string_labels_and_needs_classes_first():
    x, y = make_classification(300, 5, n_informative=4, n_redundant=0, n_classes=3, random_state=0)
    labels = np.array(["ant", "bee", "cat"])[y]
    clf = MLPClassifier((16,), random_state=0, learning_rate_init=0.01)
    with pytest.raises(ValueError, match="classes must be passed on the first call to partial_fit"):
        clf.partial_fit(x, labels)
    clf.partial_fit(x[:50], labels[:50], classes=["ant", "bee", "cat"])
    first = clf.score(x, labels)
    for _ in range(30):
        clf.partial_fit(x, labels)
    assert clf.n_iter_ == 1 and list(clf.classes_) == ["ant", "bee", "cat"]  # scikit-learn's: one per call
    assert clf.t_ == 50 + 30 * 300
    assert clf.score(x, labels) > max(first, 0.8)
    with pytest.raises(ValueError, match=r"`y` has classes not in `self.classes_`"):
        clf.partial_fit(x[:2], ["ant", "dog"])
    with pytest.raises(ValueError, match=r"is not the same as on last call to partial_fit"):
        clf.partial_fit(x[:2], ["ant", "bee"], classes=["ant", "bee"])


def test_early_stopping_holds_out_a_fraction_and_keeps_the_best_weights():
    x, y = make_classification(400, 8, random_state=0)
    clf = MLPClassifier((32,), early_stopping=True, validation_fraction=0.2, n_iter_no_change=3, max_iter=500,
                        learning_rate_init=0.05, random_state=0).fit(x, y)
    assert clf.n_iter_ < 500 and len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)


def test_no_convergence_warns_as_sklearn():
    x, y = make_classification(100, 4, random_state=0)
    with pytest.warns(ConvergenceWarning, match=r"Stochastic Optimizer: Maximum iterations \(2\) reached"):
        MLPClassifier((4,), max_iter=2, random_state=0).fit(x, y)
    with pytest.warns(ConvergenceWarning, match=r"lbfgs failed to converge after 2 iteration\(s\)"):
        MLPClassifier((4,), solver="lbfgs", max_iter=2, random_state=0).fit(x, y)


def test_multilabel_and_multi_output():
    x, y = make_classification(200, 6, random_state=0)
    both = np.column_stack([y, 1 - y])
    clf = MLPClassifier((16,), max_iter=100, random_state=0, learning_rate_init=0.01).fit(x, both)
    assert clf.predict(x).shape == (200, 2) and (clf.predict(x) == both).mean() > 0.85
    reg = MLPRegressor((16,), max_iter=50, random_state=0).fit(x, np.column_stack([y, 2.0 * y]))
    assert reg.predict(x).shape == (200, 2)


@pytest.mark.parametrize("params", [{"solver": "newton"}, {"activation": "gelu"}, {"batch_size": 0},
                                    {"max_iter": 0}, {"alpha": -1.0}, {"validation_fraction": 1.0},
                                    {"learning_rate": "cyclic"}, {"momentum": 1.5}, {"n_iter_no_change": 0}])
@pytest.mark.parametrize("make", [MLPClassifier, MLPRegressor, SklearnMLPClassifier, SklearnMLPRegressor],
                         ids=["fastnn-classifier", "fastnn-regressor", "sklearn-classifier", "sklearn-regressor"])
def test_bad_parameters_raise_sklearns_own_error(make, params):
    """The same error type and message as scikit-learn's MLPs (its parameter validation)."""
    name = next(iter(params))
    pattern = rf"The '{name}' parameter of {make.__name__} must be"
    with pytest.raises(InvalidParameterError, match=pattern):
        make(**params).fit([[0.0], [1.0], [2.0], [3.0]], [0, 1, 0, 1])


def test_an_unknown_backend_and_zero_hidden_units_are_clear_errors():
    with pytest.raises(ValueError, match="unknown backend 'tensorflow'"):
        MLPClassifier(backend="tensorflow").fit([[0.0], [1.0]], [0, 1])
    with pytest.raises(ValueError, match=r"hidden_layer_sizes must be > 0, got \[4, 0\]"):
        MLPClassifier(hidden_layer_sizes=(4, 0)).fit([[0.0], [1.0]], [0, 1])


@pytest.mark.parametrize("make", [MLPClassifier, SklearnMLPClassifier], ids=["fastnn", "sklearn"])
def test_bad_data_and_sample_weights_raise_as_sklearn(make):
    x, y = make_classification(20, 4, random_state=0)
    with pytest.raises(ValueError, match=r"sample_weight.shape == \(3,\), expected \(20,\)!"):
        make().fit(x, y, sample_weight=[1, 2, 3])
    for bad in (np.nan, np.inf):
        x_bad = x.copy()
        x_bad[3, 1] = bad
        with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
            make().fit(x_bad, y)


def test_negative_sample_weights_are_refused():
    # scikit-learn 1.9.1's MLPs train on them (a negative repetition has no meaning); fastnn refuses
    # them with scikit-learn's own checker and message
    x, y = make_classification(20, 4, random_state=0)
    with pytest.raises(ValueError, match="Negative values in data passed to `sample_weight`"):
        MLPClassifier().fit(x, y, sample_weight=-np.ones(20))


def test_partial_fit_is_only_for_stochastic_solvers_and_not_with_early_stopping():
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    assert hasattr(MLPRegressor(solver="sgd"), "partial_fit")
    x, y = make_regression(40, 3, random_state=0)
    model = MLPRegressor(early_stopping=True, max_iter=5, random_state=0).fit(x, y)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        model.partial_fit(x, y)
