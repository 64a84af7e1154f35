"""scikit-learn estimators on fastnn: `MLPClassifier` and `MLPRegressor`, with sklearn's own
parameter names and behaviour (loss_curve_, partial_fit, early stopping on a held-out score,
ConvergenceWarning), plus `backend=` to train on any fastnn backend. They pass
`sklearn.utils.estimator_checks.check_estimator`.

    from fastnn.sklearn import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=50, backend="numpy").fit(X, y)

Inputs and outputs are NumPy arrays, as everywhere in scikit-learn; the network computes on
the backend. Needs scikit-learn (`pip install "fastnn[sklearn]"`).
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from fastnn import optimizers, regularizers
from fastnn.backend import resolve, to_numpy, use
from fastnn.callbacks import LambdaCallback
from fastnn.layers import Dense
from fastnn.model import Sequential

ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}  # sklearn's -> fastnn's
SOLVERS = ("adam", "sgd")


class _MLP(BaseEstimator):
    """What both estimators share: checking the parameters, building the network, the epoch
    loop with sklearn's stopping rules. Subclasses say what the output layer and loss are."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate_init=0.001, max_iter=200, shuffle=True, random_state=None,
                 tol=1e-4, verbose=False, warm_start=False, momentum=0.9, nesterovs_momentum=True,
                 early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, backend=None, device=None):
        self.hidden_layer_sizes, self.activation, self.solver, self.alpha = hidden_layer_sizes, activation, solver, alpha
        self.batch_size, self.learning_rate_init, self.max_iter = batch_size, learning_rate_init, max_iter
        self.shuffle, self.random_state, self.tol, self.verbose = shuffle, random_state, tol, verbose
        self.warm_start, self.momentum, self.nesterovs_momentum = warm_start, momentum, nesterovs_momentum
        self.early_stopping, self.validation_fraction = early_stopping, validation_fraction
        self.beta_1, self.beta_2, self.epsilon, self.n_iter_no_change = beta_1, beta_2, epsilon, n_iter_no_change
        self.backend, self.device = backend, device

    # -- what subclasses define ------------------------------------------------------------

    def _output(self, y: np.ndarray) -> tuple[str, str]:
        """(output activation, loss) for targets y as the network sees them."""
        raise NotImplementedError

    def _learn_targets(self, y: np.ndarray) -> None:
        """Learn what targets look like (the classes; whether y is one column) from y."""
        raise NotImplementedError

    def _targets(self, y: np.ndarray) -> np.ndarray:
        """y as the network's (n, outputs) targets."""
        raise NotImplementedError

    # -- sklearn's interface ---------------------------------------------------------------

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "_MLP":
        """Train from scratch (or on, with warm_start) for up to max_iter epochs."""
        self._check_parameters()
        fresh = not (self.warm_start and hasattr(self, "model_"))
        X, y = self._validate(X, y, reset=fresh)
        if fresh:
            self._learn_targets(y)
        targets = self._targets(y)
        if fresh:
            self._start(X, targets)
        self._train(X, targets, self._weights(sample_weight, X), epochs=self.max_iter, stop_early=True)
        return self

    def _partial_fit(self, X: Any, y: Any, sample_weight: Any = None, labels: Any = None) -> "_MLP":
        """One epoch; the first call learns the targets from `labels` (default: y)."""
        self._check_parameters()
        first = not hasattr(self, "model_")
        X, y = self._validate(X, y, reset=first)
        if first:
            self._learn_targets(y if labels is None else np.asarray(labels))
        targets = self._targets(y)
        if first:
            self._start(X, targets)
        self._train(X, targets, self._weights(sample_weight, X), epochs=1, stop_early=False)
        return self

    def _network_output(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        return to_numpy(self.model_.predict(X.astype(self._dtype, copy=False)))

    # -- the work --------------------------------------------------------------------------

    def _check_parameters(self) -> None:
        sizes = np.atleast_1d(np.asarray(self.hidden_layer_sizes, dtype=object))
        if sizes.ndim != 1 or not all(isinstance(s, numbers.Integral) and s > 0 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r} (fastnn has no 'lbfgs')")
        if not (self.batch_size == "auto" or isinstance(self.batch_size, numbers.Integral) and self.batch_size > 0):
            raise ValueError(f"batch_size must be 'auto' or a positive integer, got {self.batch_size!r}")
        for name in ("max_iter", "n_iter_no_change"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.alpha, numbers.Real) and self.alpha >= 0):
            raise ValueError(f"alpha must be a number >= 0, got {self.alpha!r}")
        if self.early_stopping and not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}")

    def _validate(self, X: Any, y: Any, reset: bool) -> tuple[np.ndarray, np.ndarray]:
        X, y = validate_data(self, X, y, reset=reset, multi_output=True, dtype=(np.float64, np.float32),
                             y_numeric=isinstance(self, RegressorMixin))
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if reset:
            self._dtype = X.dtype
        return X.astype(self._dtype, copy=False), y

    def _weights(self, sample_weight: Any, X: np.ndarray) -> np.ndarray | None:
        if sample_weight is None:
            return None
        weights = column_or_1d(np.asarray(sample_weight, dtype=np.float64))
        if weights.shape[0] != X.shape[0]:
            raise ValueError(f"sample_weight has {weights.shape[0]} values but X has {X.shape[0]} samples")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or not np.any(weights > 0):
            raise ValueError("sample_weight must be finite, >= 0 and not all zero")
        return weights

    def _start(self, X: np.ndarray, targets: np.ndarray) -> None:
        """A new network for X's width and the targets' columns, and fresh curves."""
        activation, loss = self._output(targets)
        penalty = regularizers.L2(self.alpha / 2 / self._batch(X.shape[0])) if self.alpha else None
        hidden = [int(s) for s in np.atleast_1d(self.hidden_layer_sizes)]
        layers = [Dense(units, ACTIVATIONS[self.activation], kernel_regularizer=penalty) for units in hidden]
        layers.append(Dense(targets.shape[1], activation, kernel_regularizer=penalty))
        seed = np.random.RandomState(self.random_state).randint(np.iinfo(np.int32).max)
        with use(resolve(self.backend or "numpy", dtype=self._dtype.name, device=self.device)):
            self.model_ = Sequential(layers, seed=int(seed))
        self.model_.compile(self._optimizer(), loss, metrics=[])  # sklearn scores on its own: no per-step accuracy
        self.model_.build(X.shape[1])
        self.loss_curve_, self.n_iter_, self.t_ = [], 0, 0
        self.best_loss_, self._no_improvement = np.inf, 0
        self.validation_scores_ = [] if self.early_stopping else None
        self.best_validation_score_ = -np.inf if self.early_stopping else None

    def _optimizer(self) -> optimizers.Optimizer:
        if self.solver == "sgd":
            return optimizers.SGD(self.learning_rate_init, momentum=self.momentum,
                                  nesterov=self.nesterovs_momentum and self.momentum > 0)
        return optimizers.Adam(self.learning_rate_init, self.beta_1, self.beta_2, self.epsilon)

    def _batch(self, n: int) -> int:
        return min(200, n) if self.batch_size == "auto" else min(int(self.batch_size), n)

    def _train(self, X: np.ndarray, targets: np.ndarray, weights: np.ndarray | None, epochs: int,
               stop_early: bool) -> None:
        """Epochs until max_iter, or until sklearn's rule says the loss (or the held-out score,
        with early_stopping) stopped improving by tol for n_iter_no_change epochs: one `fit`
        (the data checked and converted once), the rule applied after each epoch."""
        held_out = stop_early and self.early_stopping
        X_val = y_val = None
        if held_out:
            X, X_val, targets, y_val, weights = self._hold_out(X, targets, weights)
        stopped = []

        def after_epoch(epoch: int, logs: dict) -> None:
            if self._after_epoch(logs["loss"], X.shape[0], stop_early, X_val, y_val):
                stopped.append(epoch)
                self.model_.stop_training = True

        self.model_.fit(X, targets, epochs=epochs, batch_size=self._batch(X.shape[0]), shuffle=self.shuffle,
                        sample_weight=weights, verbose=0, nan_guard=False,
                        callbacks=[LambdaCallback(on_epoch_end=after_epoch)])
        if stop_early and not stopped and epochs == self.max_iter:
            warnings.warn(f"fastnn {type(self).__name__}: maximum iterations ({self.max_iter}) reached and the "
                          "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=3)
        if held_out:
            self.model_.set_weights(self._best_weights)

    def _after_epoch(self, loss: float, rows: int, stop_early: bool, X_val: np.ndarray | None,
                     y_val: np.ndarray | None) -> bool:
        """sklearn's bookkeeping of an epoch (loss_curve_, n_iter_, t_, verbose); whether to stop."""
        self.n_iter_ += 1
        self.t_ += rows
        self.loss_curve_.append(loss)
        if self.verbose:
            print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
        if not np.isfinite(loss):
            raise ValueError(f"the training loss became {loss} at iteration {self.n_iter_}; lower "
                             f"learning_rate_init (now {self.learning_rate_init}) or scale X")
        return stop_early and self._stalled(loss, X_val, y_val)

    def _hold_out(self, X, targets, weights):
        """The last validation_fraction of the rows for the early-stopping score (stratified
        for classifiers, as sklearn)."""
        stratify = None
        if isinstance(self, ClassifierMixin) and self._label_binarizer.y_type_ != "multilabel-indicator":
            stratify = np.argmax(targets, axis=1) if targets.shape[1] > 1 else targets
        parts = train_test_split(X, targets, *(() if weights is None else (weights,)), test_size=self.validation_fraction,
                                 random_state=np.random.RandomState(self.random_state), stratify=stratify)
        X, X_val, targets, y_val = parts[:4]
        self._best_weights = self.model_.get_weights()
        return X, X_val, targets, y_val, (None if weights is None else parts[4])

    def _stalled(self, loss: float, X_val: np.ndarray | None = None, y_val: np.ndarray | None = None) -> bool:
        """sklearn's rule: count the epochs without an improvement of tol; stop past n_iter_no_change."""
        if X_val is None:
            improved = loss <= self.best_loss_ - self.tol
            self.best_loss_ = min(self.best_loss_, loss)
        else:
            score = self._held_out_score(X_val, y_val)
            self.validation_scores_.append(score)
            improved = score >= self.best_validation_score_ + self.tol
            if score > self.best_validation_score_:
                self.best_validation_score_, self._best_weights = score, self.model_.get_weights()
        self._no_improvement = 0 if improved else self._no_improvement + 1
        return self._no_improvement > self.n_iter_no_change


def expected_failed_checks(estimator: BaseEstimator) -> dict[str, str]:
    """The check_estimator checks these estimators are known to fail, with the reason: pass it
    as `check_estimator(est, expected_failed_checks=expected_failed_checks(est))` or to
    `parametrize_with_checks` (scikit-learn 1.6 moved this list out of the estimator's tags)."""
    return {"check_sample_weight_equivalence_on_dense_data":
            "minibatch training: a weight of 2 is not the same as a repeated row, which changes the "
            "batches and the shuffling (sklearn's own MLPs fail it for the same reason)"}


class MLPClassifier(ClassifierMixin, _MLP):
    """A multi-layer perceptron classifier, sklearn.neural_network.MLPClassifier's parameters
    (no 'lbfgs' solver, no learning-rate schedules), trained by fastnn on `backend` ("numpy",
    "cupy", "torch", "jax"...; default "numpy") and `device`. Binary and multilabel targets
    get sigmoid outputs with binary cross-entropy, multiclass a softmax with categorical
    cross-entropy; `alpha` is the L2 penalty, alpha / 2 * ||W||² / batch_size as sklearn."""

    def _learn_targets(self, labels):
        check_classification_targets(labels)
        self._label_binarizer = LabelBinarizer().fit(labels)
        self.classes_ = self._label_binarizer.classes_

    def _targets(self, y):
        check_classification_targets(y)
        unknown = np.setdiff1d(unique_labels(y), self.classes_)
        if unknown.size:
            raise ValueError(f"y has labels {unknown.tolist()} that are not in classes_ {self.classes_.tolist()}; "
                             "a first partial_fit must name them all in classes=")
        return self._label_binarizer.transform(y).astype(self._dtype)

    def _output(self, y):
        if self._label_binarizer.y_type_ == "multiclass":
            return "softmax", "categorical_crossentropy"
        return "sigmoid", "binary_crossentropy"

    def partial_fit(self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None) -> "MLPClassifier":
        """One epoch over (X, y). The first call needs `classes`, every label there will be."""
        if classes is None and not hasattr(self, "model_"):
            raise ValueError("the first call to partial_fit needs classes=, every label y may hold")
        return self._partial_fit(X, y, sample_weight, labels=classes)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of classes_."""
        p = self._network_output(X)
        return np.hstack([1 - p, p]) if p.shape[1] == 1 and self._label_binarizer.y_type_ == "binary" else p

    def predict_log_proba(self, X: Any) -> np.ndarray:
        return np.log(np.clip(self.predict_proba(X), np.finfo(self._dtype).tiny, None))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class (per label, for multilabel targets)."""
        p = self._network_output(X)
        if self._label_binarizer.y_type_ == "multiclass":
            return self.classes_[np.argmax(p, axis=1)]
        return self._label_binarizer.inverse_transform(p, threshold=0.5)

    def _held_out_score(self, X_val, y_val):
        return self.score(X_val, self._label_binarizer.inverse_transform(y_val))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _MLP):
    """A multi-layer perceptron regressor, sklearn.neural_network.MLPRegressor's parameters (no
    'lbfgs' solver): a linear output with the mean squared error, trained by fastnn on
    `backend` and `device`; `alpha` is the L2 penalty, as sklearn's."""

    def _learn_targets(self, y):
        self._one_output = y.ndim == 1

    def _targets(self, y):
        return (y.reshape(-1, 1) if y.ndim == 1 else y).astype(self._dtype)

    def _output(self, y):
        return "linear", "mse"

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> "MLPRegressor":
        """One epoch over (X, y), from where the last call left off."""
        return self._partial_fit(X, y, sample_weight)

    def predict(self, X: Any) -> np.ndarray:
        out = self._network_output(X)
        return out.ravel() if self._one_output else out

    def _held_out_score(self, X_val, y_val):
        return self.score(X_val, y_val.ravel() if self._one_output else y_val)
