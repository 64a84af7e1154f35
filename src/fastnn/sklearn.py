"""scikit-learn estimators on fastnn: `MLPClassifier` and `MLPRegressor`, drop-ins for
scikit-learn's own (1.9): the same parameters with their meaning (the three solvers, the
learning-rate schedules, early stopping), the same fitted attributes (`coefs_`,
`intercepts_`, `loss_curve_`...), the same stopping rule, warnings and parameter errors, and
sample weights as repetition. fastnn adds `backend=` and `device=` to train on any backend.

    from fastnn.sklearn import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=50).fit(X, y)

Inputs and outputs are NumPy arrays, as everywhere in scikit-learn; the network computes on
the backend through fastnn's engines. `coefs_` and `intercepts_` are the model's state, as in
scikit-learn: set them and the next `partial_fit` or `predict` uses them. Needs scikit-learn
(`pip install "fastnn[sklearn]"`); docs/sklearn.md compares the two.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.optimize
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions  # scikit-learn's own rules and messages
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

from fastnn import optimizers, regularizers
from fastnn.backend import resolve, to_numpy, use
from fastnn.callbacks import LambdaCallback
from fastnn.layers import Dense
from fastnn.model import Sequential
from fastnn.sklearn_weights import Repetition, are_integers, as_repetition, split_repeated

ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu", "softmax": "softmax",
               "exp": "exponential"}  # scikit-learn's names -> fastnn's
STOCHASTIC_SOLVERS = ("sgd", "adam")
MIN_ADAPTIVE_RATE = 1e-6  # scikit-learn's: 'adaptive' stops once the rate would fall below it


class _MLP(BaseEstimator):
    """What both estimators share: the parameters, the network, the solvers and scikit-learn's
    bookkeeping. Subclasses say what the targets, the output layer and the score are."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "backend": "no_validation",  # a name or a fastnn Backend: resolve() checks it
        "device": [None, str],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, backend=None, device=None):
        self.hidden_layer_sizes, self.activation, self.solver, self.alpha = hidden_layer_sizes, activation, solver, alpha
        self.batch_size, self.learning_rate, self.learning_rate_init = batch_size, learning_rate, learning_rate_init
        self.power_t, self.max_iter, self.shuffle, self.random_state = power_t, max_iter, shuffle, random_state
        self.tol, self.verbose, self.warm_start, self.momentum = tol, verbose, warm_start, momentum
        self.nesterovs_momentum, self.early_stopping = nesterovs_momentum, early_stopping
        self.validation_fraction, self.beta_1, self.beta_2, self.epsilon = validation_fraction, beta_1, beta_2, epsilon
        self.n_iter_no_change, self.max_fun, self.backend, self.device = n_iter_no_change, max_fun, backend, device

    # -- what subclasses define ------------------------------------------------------------

    def _learn_targets(self, y: np.ndarray) -> None:
        """Learn the classes (or the output count) from y at a first fit."""
        raise NotImplementedError

    def _targets(self, y: np.ndarray) -> np.ndarray:
        """y as the network's (n, outputs) float targets."""
        raise NotImplementedError

    def _head(self) -> tuple[str, str, float, float]:
        """(out_activation_, fastnn loss, loss scale, gradient scale): fastnn's loss and its
        gradient are these multiples of scikit-learn's (a mean over outputs where it sums)."""
        raise NotImplementedError

    def _score_predictions(self, y: np.ndarray, outputs: np.ndarray, weights: np.ndarray | None) -> float:
        raise NotImplementedError

    # -- scikit-learn's interface ----------------------------------------------------------

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "_MLP":
        """Train for up to max_iter epochs (L-BFGS: iterations), from scratch or, with
        warm_start, from the current coefficients. Integer sample weights mean repetition."""
        self._validate_params()
        return self._fit(X, y, sample_weight, incremental=False)

    def _partial_fit(self, X: Any, y: Any, sample_weight: Any) -> "_MLP":
        self._validate_params()
        return self._fit(X, y, sample_weight, incremental=True)

    def _check_solver(self) -> bool:
        if self.solver not in STOCHASTIC_SOLVERS:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is not "
                                 "stochastic.")
        return True

    def _outputs(self, X: Any) -> np.ndarray:
        """The network's output for X (probabilities, or the regression values)."""
        check_is_fitted(self, "coefs_")
        X = _dense(validate_data(self, X, reset=False, accept_sparse=["csr", "csc"], dtype=(np.float64, np.float32)))
        dtype = self.coefs_[0].dtype
        return to_numpy(self._network(dtype).predict(X.astype(dtype, copy=False)))

    # -- the work --------------------------------------------------------------------------

    def _fit(self, X: Any, y: Any, sample_weight: Any, incremental: bool) -> "_MLP":
        sizes = [int(s) for s in np.atleast_1d(self.hidden_layer_sizes)]
        if np.any(np.array(sizes) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        if self.early_stopping and incremental and self.solver in STOCHASTIC_SOLVERS:
            raise ValueError("partial_fit does not support early_stopping=True")
        first = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = validate_data(self, X, y, reset=first, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), y_numeric=isinstance(self, RegressorMixin))
        X = _dense(X)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
            sample_weight = None if np.all(sample_weight == 1) else sample_weight
        self._check_classes(y, first, incremental)
        targets = self._targets(y).astype(X.dtype)
        self._random_state = check_random_state(self.random_state)
        if first:
            self._initialize(targets.shape[1], [X.shape[1], *sizes, targets.shape[1]], X.dtype)
        else:  # on from the coefficients there are, whoever set them
            self._dtype = self.coefs_[0].dtype
            X, targets = X.astype(self._dtype, copy=False), targets.astype(self._dtype, copy=False)
        if self.solver == "lbfgs":
            self._fit_lbfgs(X, targets, as_repetition(sample_weight, X.shape[0]))
        else:
            self._fit_stochastic(X, y, targets, sample_weight, incremental)
        if not all(np.isfinite(p).all() for p in (*self.coefs_, *self.intercepts_)):
            raise ValueError("Solver produced non-finite parameter weights. The input data may contain large values "
                             "and need to be preprocessed.")
        return self

    def _check_classes(self, y: np.ndarray, first: bool, incremental: bool) -> None:
        """Classifiers learn or check their classes; regressors their output count."""
        if first:
            self._learn_targets(y)

    def _initialize(self, outputs: int, units: list[int], dtype: np.dtype) -> None:
        """scikit-learn's first-fit state: Glorot-uniform coefficients drawn from random_state as
        scikit-learn draws them, and fresh curves."""
        self.n_iter_, self.t_, self.n_outputs_, self.n_layers_ = 0, 0, outputs, len(units)
        self.out_activation_ = self._head()[0]
        factor = 2.0 if self.activation == "logistic" else 6.0
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in zip(units[:-1], units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            self.coefs_.append(self._random_state.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype))
            self.intercepts_.append(self._random_state.uniform(-bound, bound, fan_out).astype(dtype))
        self._dtype = np.dtype(dtype)
        self._solver_state = None  # the fastnn optimizer, kept between partial_fit calls
        if self.solver in STOCHASTIC_SOLVERS:
            self.loss_curve_, self._no_improvement_count = [], 0
            self.validation_scores_ = [] if self.early_stopping else None
            self.best_validation_score_ = -np.inf if self.early_stopping else None
            self.best_loss_ = None if self.early_stopping else np.inf
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = self.best_validation_score_ = None

    def _network(self, dtype: np.dtype, penalty: float | None = None) -> Sequential:
        """The fastnn model that computes for this estimator, its weights set from coefs_ and
        intercepts_: rebuilt when the shapes, dtype, backend or the L2 penalty (None: any)
        changed."""
        shapes = [c.shape for c in self.coefs_]
        key = (tuple(shapes), np.dtype(dtype).name, self.activation, self.out_activation_, self.backend, self.device)
        same = getattr(self, "_network_key", None) == key and penalty in (None, self._network_penalty)
        if not same:
            penalty = penalty or 0.0
            reg = regularizers.L2(penalty) if penalty else None
            layers = [Dense(out, ACTIVATIONS[self.activation], kernel_regularizer=reg) for _, out in shapes[:-1]]
            layers.append(Dense(shapes[-1][1], ACTIVATIONS[self.out_activation_], kernel_regularizer=reg))
            with use(resolve(self.backend or "numpy", dtype=np.dtype(dtype).name, device=self.device)):
                self.model_ = Sequential(layers, seed=int(self._seed()))
            self.model_.build(shapes[0][0])
            self._network_key, self._network_penalty = key, penalty
        self.model_.set_weights([p for pair in zip(self.coefs_, self.intercepts_) for p in pair])
        return self.model_

    def _seed(self) -> int:
        rng = getattr(self, "_random_state", None) or check_random_state(self.random_state)
        return rng.randint(np.iinfo(np.int32).max)

    def _read_back(self, network: Sequential) -> None:
        weights = network.get_weights()
        self.coefs_ = [w.astype(self._dtype, copy=False) for w in weights[0::2]]
        self.intercepts_ = [b.astype(self._dtype, copy=False) for b in weights[1::2]]

    # -- L-BFGS ----------------------------------------------------------------------------

    def _fit_lbfgs(self, X: np.ndarray, targets: np.ndarray, weighting: Repetition) -> None:
        """SciPy's L-BFGS-B on the whole data, as scikit-learn runs it (maxiter, maxfun, gtol=tol);
        fastnn computes the loss and its gradient."""
        _, loss_name, loss_scale, grad_scale = self._head()
        X, targets = weighting.take(X, targets)
        network = self._network(X.dtype, penalty=grad_scale * self.alpha / (2 * weighting.samples))
        network.compile(optimizers.SGD(1.0), loss_name, metrics=[])  # only for its loss: L-BFGS steps
        shapes = [p.shape for pair in zip(self.coefs_, self.intercepts_) for p in pair]
        splits = np.cumsum([int(np.prod(s)) for s in shapes])[:-1]

        def unpack(theta: np.ndarray) -> list[np.ndarray]:
            return [part.reshape(s) for part, s in zip(np.split(theta, splits), shapes)]

        def loss_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
            network.set_weights(unpack(theta))
            loss, grads = network.loss_and_gradients(X, targets, sample_weight=weighting.weights)
            return loss / grad_scale, np.concatenate([g.ravel() for g in grads]).astype(np.float64) / grad_scale

        start = np.concatenate([p.ravel() for pair in zip(self.coefs_, self.intercepts_) for p in pair])
        iterations = []

        def report(intermediate_result: Any) -> None:
            iterations.append(intermediate_result.fun)
            if self.verbose:
                print(f"Iteration {len(iterations)}, loss = {intermediate_result.fun:.8f}")

        result = scipy.optimize.minimize(loss_and_gradient, start.astype(np.float64), method="L-BFGS-B", jac=True,
                                         callback=report,
                                         options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol})
        self.n_iter_ = min(result.nit, self.max_iter)
        if result.status != 0:
            warnings.warn(f"lbfgs failed to converge after {self.n_iter_} iteration(s) (status={result.status}):\n"
                          f"{result.message}\n\nIncrease the number of iterations to improve the convergence "
                          f"(max_iter={self.max_iter}).", ConvergenceWarning, stacklevel=4)
        network.set_weights(unpack(result.x))
        self._read_back(network)
        self.loss_ = float(result.fun) * grad_scale / loss_scale
        self.t_ += weighting.samples * self.n_iter_

    # -- SGD and Adam ----------------------------------------------------------------------

    def _fit_stochastic(self, X: np.ndarray, y: np.ndarray, targets: np.ndarray, sample_weight: np.ndarray | None,
                        incremental: bool) -> None:
        """Epochs of minibatch SGD or Adam through fastnn's fit, with scikit-learn's schedule,
        bookkeeping and stopping rule after each epoch."""
        _, loss_name, loss_scale, grad_scale = self._head()
        validation = None
        if self.early_stopping:
            X, targets, sample_weight, validation = self._hold_out(X, y, targets, sample_weight)
        weighting = as_repetition(sample_weight, X.shape[0])
        X, targets = weighting.take(X, targets)
        batch = self._batch(weighting.samples, X.shape[0])
        network = self._network(X.dtype, penalty=grad_scale * self.alpha / (2 * batch))
        if not incremental or getattr(self, "_solver_state", None) is None:
            self._rate = self.learning_rate_init
            self._solver_state = self._new_optimizer(grad_scale)
        if network.optimizer is not self._solver_state:
            network.compile(self._solver_state, loss_name, metrics=[])  # scikit-learn scores on its own
        self._solver_state.lr = self._fastnn_rate(grad_scale)
        self.n_iter_, self._best_weights, stopped = 0, network.get_weights(), []

        def end_of_epoch(epoch: int, logs: dict) -> None:
            if self._end_iteration(network, float(logs["loss"]) / loss_scale, weighting.samples, validation):
                stopped.append(epoch)
                network.stop_training = True
            network.optimizer.lr = self._fastnn_rate(grad_scale)

        network.fit(X, targets, epochs=1 if incremental else self.max_iter, batch_size=weighting.batch_rows(batch),
                    shuffle=self.shuffle, sample_weight=weighting.weights, verbose=0, nan_guard=False,
                    callbacks=[LambdaCallback(on_epoch_end=end_of_epoch)])
        if not incremental and not stopped and self.n_iter_ == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the optimization "
                          "hasn't converged yet.", ConvergenceWarning, stacklevel=4)
        if validation is not None:
            network.set_weights(self._best_weights)
        self._read_back(network)

    def _batch(self, samples: float, rows: int) -> float:
        """The batch size in samples (repeated rows), as scikit-learn clips it."""
        if self.batch_size == "auto":
            return min(200, samples)
        if self.batch_size > rows:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
                          stacklevel=5)
        return float(np.clip(self.batch_size, 1, samples))

    def _new_optimizer(self, grad_scale: float) -> optimizers.Optimizer:
        """The fastnn optimizer whose steps on fastnn's loss are scikit-learn's on its own loss:
        SGD's rate and Adam's epsilon scaled by how much larger fastnn's gradient is."""
        if self.solver == "sgd":
            return optimizers.SGD(self.learning_rate_init / grad_scale, momentum=self.momentum,
                                  nesterov=self.nesterovs_momentum and self.momentum > 0)
        return optimizers.Adam(self.learning_rate_init, self.beta_1, self.beta_2, self.epsilon * grad_scale)

    def _fastnn_rate(self, grad_scale: float) -> float:
        return self._rate / grad_scale if self.solver == "sgd" else self._rate

    def _hold_out(self, X, y, targets, sample_weight):
        """early_stopping's validation split: validation_fraction of the samples, stratified
        for single-output classifiers, as scikit-learn splits; integer weights split their
        repeated rows. Returns the training part and (X_val, y_val, weights_val)."""
        # scikit-learn stratifies single-output classifiers on their binarized targets
        stratify = targets.astype(bool) if isinstance(self, ClassifierMixin) and self.n_outputs_ == 1 else None
        if are_integers(sample_weight):
            train_w, val_w = split_repeated(sample_weight, None if stratify is None else stratify[:, 0],
                                            self.validation_fraction,
                                            self._random_state.randint(np.iinfo(np.int32).max))
            val_rows = np.flatnonzero(val_w)
            X_val, y_val, w_val, sample_weight = X[val_rows], y[val_rows], val_w[val_rows], train_w
        else:
            parts = train_test_split(X, targets, y, *(() if sample_weight is None else (sample_weight,)),
                                     random_state=self._random_state, test_size=self.validation_fraction,
                                     stratify=stratify)
            X, X_val, targets, _, _, y_val = parts[:6]
            sample_weight, w_val = (parts[6], parts[7]) if sample_weight is not None else (None, None)
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of your "
                             "dataset.")
        return X, targets, sample_weight, (X_val, y_val, w_val)

    def _validation_score(self, network: Sequential, validation: tuple) -> float:
        X_val, y_val, w_val = validation
        outputs = to_numpy(network.predict(X_val))
        if not np.all(np.isfinite(outputs)):
            return np.nan
        return float(self._score_predictions(y_val, outputs, w_val))

    def _end_iteration(self, network: Sequential, loss: float, samples: float, validation: tuple | None) -> bool:
        """scikit-learn's end of an iteration, after each fastnn epoch: n_iter_, t_, loss_curve_,
        verbose, the tol / n_iter_no_change rule (on the loss, or on the held-out score), the
        learning-rate schedule. Returns whether to stop, as scikit-learn would."""
        self.loss_ = loss
        self.n_iter_ += 1
        self.t_ += int(samples) if float(samples).is_integer() else samples
        self.loss_curve_.append(loss)
        if self.verbose:
            print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
        self._count_no_improvement(network, validation)
        adaptive = self.solver == "sgd" and self.learning_rate == "adaptive"
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            self._rate = self.learning_rate_init / (self.t_ + 1) ** self.power_t
        if self._no_improvement_count <= self.n_iter_no_change:
            return False
        what = "Validation score" if validation is not None else "Training loss"
        message = f"{what} did not improve more than tol={self.tol:f} for {self.n_iter_no_change} consecutive epochs."
        if adaptive and self._rate / 5 > MIN_ADAPTIVE_RATE:
            self._rate /= 5.0
            self._no_improvement_count = 0
            if self.verbose:
                print(f"{message} Setting learning rate to {self._rate:f}")
            return False
        if self.verbose:
            print(f"{message} Learning rate too small. Stopping." if adaptive else message)
        return True

    def _count_no_improvement(self, network: Sequential, validation: tuple | None) -> None:
        if validation is not None:
            score = self._validation_score(network, validation)
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            self._no_improvement_count = self._no_improvement_count + 1 \
                if score < self.best_validation_score_ + self.tol else 0
            if score > self.best_validation_score_:
                self.best_validation_score_, self._best_weights = score, network.get_weights()
        else:
            self._no_improvement_count = self._no_improvement_count + 1 if self.loss_ > self.best_loss_ - self.tol else 0
            self.best_loss_ = min(self.best_loss_, self.loss_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _dense(X: Any) -> np.ndarray:
    """fastnn computes on dense arrays: a sparse X is densified (as its products would be)."""
    return X.toarray() if hasattr(X, "toarray") else X


def expected_failed_checks(estimator: BaseEstimator) -> dict[str, str]:
    """The check_estimator checks these estimators are known to fail: none. Kept so that
    `check_estimator(est, expected_failed_checks=expected_failed_checks(est))` still runs."""
    return {}


class MLPClassifier(ClassifierMixin, _MLP):
    """A multi-layer perceptron classifier with sklearn.neural_network.MLPClassifier's
    parameters, attributes and behaviour, trained by fastnn on `backend` ("numpy", "cupy",
    "torch", "jax"...; default "numpy") and `device`. Binary and multilabel targets get
    logistic outputs with the log loss, multiclass a softmax; `alpha` is the L2 penalty,
    alpha / 2 * ||W||² / the batch's weight, as scikit-learn's."""

    def _check_classes(self, y, first, incremental):
        if first and not (incremental and hasattr(self, "classes_")):
            self._learn_targets(y)
            return
        classes = unique_labels(y)
        if self.warm_start and not incremental:
            if set(classes) != set(self.classes_):
                raise ValueError("warm_start can only be used where `y` has the same classes as in the previous "
                                 f"call to fit. Previously got {self.classes_}, `y` has {classes}")
        elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
            raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                             f"'y' has {classes}.")

    def _learn_targets(self, y):
        self._label_binarizer = LabelBinarizer().fit(y)
        self.classes_ = self._label_binarizer.classes_

    def _targets(self, y):
        return self._label_binarizer.transform(y)

    def _head(self):
        outputs = getattr(self, "n_outputs_", 1)
        if self._label_binarizer.y_type_ == "multiclass":
            return "softmax", "categorical_crossentropy", 1.0, 1.0
        return "logistic", "binary_crossentropy", 1.0 / outputs, 1.0 / outputs  # fastnn: a mean over the labels

    @available_if(_MLP._check_solver)
    def partial_fit(self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None) -> "MLPClassifier":
        """One epoch over (X, y). The first call needs `classes`: every label y may hold."""
        if not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y if type_of_target(y).startswith("multilabel") else classes)
            self.classes_ = self._label_binarizer.classes_
        elif classes is not None and not np.array_equal(self.classes_, unique_labels(classes)):
            raise ValueError(f"`classes={classes!r}` is not the same as on last call to partial_fit, was: "
                             f"{self.classes_!r}")
        return self._partial_fit(X, y, sample_weight)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of classes_."""
        p = self._outputs(X)
        if self.n_outputs_ == 1:
            p = p.ravel()
        return np.vstack([1 - p, p]).T if p.ndim == 1 else p

    def predict_log_proba(self, X: Any) -> np.ndarray:
        return np.log(self.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class (per label, for multilabel targets)."""
        p = self._outputs(X)
        return self._label_binarizer.inverse_transform(p.ravel() if self.n_outputs_ == 1 else p)

    def _score_predictions(self, y, outputs, weights):
        labels = self._label_binarizer.inverse_transform(outputs.ravel() if self.n_outputs_ == 1 else outputs)
        return accuracy_score(y, labels, sample_weight=weights)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _MLP):
    """A multi-layer perceptron regressor with sklearn.neural_network.MLPRegressor's parameters,
    attributes and behaviour: `loss="squared_error"` (an identity output) or `"poisson"` (an
    exponential one), trained by fastnn on `backend` and `device`."""

    _parameter_constraints: dict = {**_MLP._parameter_constraints, "loss": [StrOptions({"squared_error", "poisson"})]}

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
                 loss="squared_error", shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, backend=None, device=None):
        super().__init__(hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
                         learning_rate=learning_rate, learning_rate_init=learning_rate_init, power_t=power_t,
                         max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
                         warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
                         early_stopping=early_stopping, validation_fraction=validation_fraction, beta_1=beta_1,
                         beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
                         backend=backend, device=device)
        self.loss = loss

    def _learn_targets(self, y):
        pass

    def _targets(self, y):
        return y.reshape(-1, 1) if y.ndim == 1 else y

    def _head(self):
        if self.loss == "poisson":
            return "exp", "poisson", 1.0 / self.n_outputs_, 1.0 / self.n_outputs_
        # scikit-learn reports mean((y - p)²) / 2 but steps along sum over outputs of (p - y) / n
        return "identity", "mse", 2.0, 2.0 / self.n_outputs_

    @available_if(_MLP._check_solver)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> "MLPRegressor":
        """One epoch over (X, y), from where the last call left off."""
        return self._partial_fit(X, y, sample_weight)

    def predict(self, X: Any) -> np.ndarray:
        out = self._outputs(X)
        return out.ravel() if out.shape[1] == 1 else out

    def _score_predictions(self, y, outputs, weights):
        return r2_score(y, outputs.ravel() if outputs.shape[1] == 1 else outputs, sample_weight=weights)
