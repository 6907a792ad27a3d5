"""Heads built from scikit-learn estimators: logistic regression, linear SVM, k nearest neighbours.

Each target block gets its own estimator: a multi-class block one classifier on its class index, a
multi-label block one binary classifier per label (one-vs-rest). A label that is constant in the
training data cannot be learned and keeps its training rate as its probability.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import LinearSVC
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import check_is_fitted

from embedclf.heads.base import EstimatorPerBlockHead, class_weight_by_index, column_rates, single_class_columns
from embedclf.labels import MULTICLASS, iter_blocks

CLASS_WEIGHT = [StrOptions({"balanced"}), dict, None]
N_JOBS = [Integral, None]  # joblib's: None or 1 one process, -1 every core


class _PerBlockHead(EstimatorPerBlockHead):
    """Fits one estimator per multi-class block (on the class index) and per multi-label column."""

    native_multilabel = False  # True: one estimator takes a whole multi-label block at once
    n_jobs = None  # the heads that take ``n_jobs`` set it; this default is what heads saved before it read
    accepts_sparse = True  # liblinear, lbfgs and brute-force cosine neighbours all take CSR as it is

    def _estimator(self):
        raise NotImplementedError

    def _fit_classes(self, X, y, sample_weight=None):
        """One multi-class target, ``y`` the class index."""
        return self._estimator().fit(X, y, **_weights(sample_weight))

    def _fit_label(self, X, y, sample_weight=None):
        """One binary label; ``None`` where it cannot be learned (its training rate is used)."""
        if y.min() == y.max():
            return None
        return self._estimator().fit(X, y, **_weights(sample_weight))

    def _fit_blocks(self, X, Y, sample_weight=None):
        self.estimators_, self.column_rates_ = [], column_rates(Y, sample_weight)
        for kind, block in iter_blocks(self.layout_):
            part = Y[:, block]
            if kind == MULTICLASS:
                known = part.any(axis=1)  # rows whose class was unseen carry no label
                weight = None if sample_weight is None else sample_weight[known]
                self.estimators_.append(self._fit_classes(X[known], part[known].argmax(axis=1), weight))
            elif self.native_multilabel:
                learnable = ~single_class_columns(part)
                fitted = self._estimator().fit(X, part[:, learnable]) if learnable.any() else None
                self.estimators_.append((learnable, fitted))
            else:
                self.estimators_.append(self._fit_labels(X, part, sample_weight))

    def _fit_labels(self, X, part, sample_weight=None) -> list:
        """One estimator per column of a multi-label block; over ``n_jobs`` processes where the head has them
        (liblinear holds the GIL, so threads would not help), each worker reading ``X`` memory-mapped."""
        n_jobs = getattr(self, "n_jobs", None)
        if n_jobs in (None, 1) or part.shape[1] < 2:
            return [self._fit_label(X, part[:, j], sample_weight) for j in range(part.shape[1])]
        from joblib import Parallel, delayed

        return Parallel(n_jobs=n_jobs)(delayed(self._fit_label)(X, part[:, j], sample_weight)
                                       for j in range(part.shape[1]))

    def _predict_labels(self, out, columns, fitted, X):
        if self.native_multilabel:
            learnable, estimator = fitted
            if estimator is not None:
                proba = estimator.predict_proba(X)
                proba = proba if isinstance(proba, list) else [proba]
                out[:, columns[learnable]] = np.column_stack([p[:, -1] for p in proba])
            return
        for column, estimator in zip(columns, fitted):
            if estimator is not None:
                out[:, column] = self._label_scores(estimator, X)

    def _label_scores(self, estimator, X) -> np.ndarray:
        """One fitted binary label's probability of its positive class."""
        return estimator.predict_proba(X)[:, 1]


def _weights(sample_weight) -> dict:
    return {} if sample_weight is None else {"sample_weight": sample_weight}


class LogRegHead(_PerBlockHead):
    """Logistic regression per target (multinomial) or per label (one-vs-rest; ``n_jobs`` processes fit the
    labels in parallel)."""

    _parameter_constraints = {"C": [Interval(Real, 0, None, closed="neither")], "class_weight": CLASS_WEIGHT,
                              "max_iter": [Interval(Integral, 1, None, closed="left")], "n_jobs": N_JOBS}
    supports_sample_weight = True

    def __init__(self, C=1.0, class_weight=None, max_iter=1000, n_jobs=None):
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.n_jobs = n_jobs

    def fit(self, X, y, layout=None, sample_weight=None):
        return super().fit(X, y, layout=layout, sample_weight=sample_weight)

    def _estimator(self):
        class_weight = class_weight_by_index(self.class_weight, self.classes_)
        return LogisticRegression(C=self.C, class_weight=class_weight, max_iter=self.max_iter)

    @property
    def n_iter_(self) -> int:
        """The most lbfgs iterations any of the fitted logistic regressions ran."""
        check_is_fitted(self, "estimators_")
        fitted = [e for entry in self.estimators_ for e in (entry if isinstance(entry, list) else [entry])]
        return max((int(np.max(e.n_iter_)) for e in fitted if e is not None), default=0)


class SVMHead(_PerBlockHead):
    """Linear SVM with probabilities from Platt scaling on internal cross-validation folds.

    A label needs at least two positive examples to be calibrated; rarer labels keep their
    training rate as their probability (``uncalibrated_labels_`` counts them). ``n_jobs`` processes fit a
    multi-label block's labels in parallel. ``random_state`` seeds liblinear's coordinate order (the dual
    solver it takes on wide, sparse features), so a refit gives the same model. ``class_weight``
    and ``sample_weight`` weigh the rows of both the SVM and its calibration: weighting only the
    SVM would shift its margins and the calibration would shift them back.
    """

    _parameter_constraints = {"C": [Interval(Real, 0, None, closed="neither")], "class_weight": CLASS_WEIGHT,
                              "calibration_folds": [Interval(Integral, 2, None, closed="left")], "n_jobs": N_JOBS,
                              "random_state": ["random_state"]}
    supports_sample_weight = True
    random_state = None  # what heads saved before it was a parameter read (they were fitted unseeded)

    def __init__(self, C=0.5, class_weight=None, calibration_folds=3, n_jobs=None, random_state=0):
        self.C = C
        self.class_weight = class_weight
        self.calibration_folds = calibration_folds
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X, y, layout=None, sample_weight=None):
        return super().fit(X, y, layout=layout, sample_weight=sample_weight)

    def _svm(self):
        return LinearSVC(C=self.C, random_state=self.random_state)

    def _estimator(self, folds=None):
        return CalibratedClassifierCV(self._svm(), method="sigmoid", cv=folds or self.calibration_folds)

    def _row_weights(self, y, sample_weight):
        """``sample_weight`` times the weight of each row's class (``None`` when neither is set)."""
        class_weight = class_weight_by_index(self.class_weight, self.classes_)
        if class_weight is None:
            return sample_weight
        classes = np.unique(y)
        per_class = compute_class_weight(class_weight, classes=classes, y=y, sample_weight=sample_weight)
        weight = per_class[np.searchsorted(classes, y)]
        return weight if sample_weight is None else weight * sample_weight

    def _fit_blocks(self, X, Y, sample_weight=None):
        self.in_sample_calibration_ = False
        super()._fit_blocks(X, Y, sample_weight)
        self.uncalibrated_labels_ = sum(  # labels with a positive row but too few on one side to calibrate
            int(Y[:, block][:, j].sum() > 0)
            for (kind, block), fitted in zip(iter_blocks(self.layout_), self.estimators_) if kind != MULTICLASS
            for j, estimator in enumerate(fitted) if estimator is None)

    def _fit_classes(self, X, y, sample_weight=None):
        # cross-validated calibration needs every class in every fold; with rarer classes the SVM is
        # fitted once and its margins calibrated on the training rows (optimistic, but every class stays)
        weight = self._row_weights(y, sample_weight)
        if np.bincount(y).min(initial=len(y)) >= self.calibration_folds or len(np.unique(y)) < 2:
            return self._estimator().fit(X, y, **_weights(weight))
        from sklearn.frozen import FrozenEstimator

        self.in_sample_calibration_ = True
        svm = self._svm().fit(X, y, **_weights(weight))
        with warnings.catch_warnings():  # the SVM is already fitted with these weights: the calibration uses them
            warnings.filterwarnings("ignore", "Since FrozenEstimator does not appear to accept sample_weight")
            # over a frozen SVM any partition gives its in-sample margins; the default 5 folds need 5 rows
            folds = None if len(y) >= 5 else [(np.arange(len(y)), np.arange(len(y)))]
            return CalibratedClassifierCV(FrozenEstimator(svm), method="sigmoid", cv=folds).fit(
                X, y, **_weights(weight))

    def _fit_label(self, X, y, sample_weight=None):
        folds = int(min(self.calibration_folds, y.sum(), len(y) - y.sum()))
        if folds < 2:
            return None
        return self._estimator(folds).fit(X, y, **_weights(self._row_weights(y, sample_weight)))

    def _label_scores(self, estimator, X) -> np.ndarray:
        return platt_scores(estimator, X)


def platt_scores(calibrated: CalibratedClassifierCV, X) -> np.ndarray:
    """``calibrated.predict_proba(X)[:, 1]`` for one binary label, from its folds' SVM margins and Platt sigmoids
    directly. The same numbers without scikit-learn's checks on every fold's call (``X`` was checked once by the
    head), which cost about half a millisecond each: with 3 folds a label they made scoring one text through 28
    labels take 46 ms instead of about 1 ms, and a batch of 5,000 twice as long. Anything fitted otherwise (not
    Platt's sigmoid over a binary linear model) goes through scikit-learn's own ``predict_proba``."""
    from scipy.special import expit
    from sklearn.utils.extmath import safe_sparse_dot

    folds = []
    for fold in getattr(calibrated, "calibrated_classifiers_", ()):
        model, calibrators = fold.estimator, getattr(fold, "calibrators", ())
        if (getattr(fold, "method", None) != "sigmoid" or len(calibrators) != 1 or len(fold.classes) != 2
                or getattr(model, "coef_", np.empty((0, 0))).shape[0] != 1 or not hasattr(calibrators[0], "a_")):
            return calibrated.predict_proba(X)[:, 1]
        folds.append((model.coef_[0], model.intercept_[0], calibrators[0].a_, calibrators[0].b_))
    if not folds:
        return calibrated.predict_proba(X)[:, 1]
    return np.mean([expit(-(a * (safe_sparse_dot(X, coef) + intercept) + b)) for coef, intercept, a, b in folds],
                   axis=0)


class KNNHead(_PerBlockHead):
    """k nearest neighbours by cosine; one neighbour search serves every label of a block.

    ``sample_weight`` is not supported: scikit-learn's neighbours vote by count or distance only.
    """

    _parameter_constraints = {"n_neighbors": [Interval(Integral, 1, None, closed="left")],
                              "weights": [StrOptions({"uniform", "distance"}), callable],
                              "metric": [str, callable]}
    native_multilabel = True

    def __init__(self, n_neighbors=15, weights="distance", metric="cosine"):
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.metric = metric

    no_sample_weight_reason = ": neighbours vote by count or distance, not by row weight"

    def _fit_blocks(self, X, Y, sample_weight=None):
        if self.n_neighbors > X.shape[0]:
            raise ValueError(f"n_neighbors={self.n_neighbors} is more than the {X.shape[0]} training rows; "
                             f"use at most {X.shape[0]}")
        super()._fit_blocks(X, Y, sample_weight)

    def _fit_classes(self, X, y, sample_weight=None):
        if self.n_neighbors > X.shape[0]:  # rows whose class was unseen are left out of a multi-class block
            raise ValueError(f"n_neighbors={self.n_neighbors} is more than the {X.shape[0]} rows with a known class")
        return super()._fit_classes(X, y, sample_weight)

    def _estimator(self):
        return KNeighborsClassifier(n_neighbors=self.n_neighbors, weights=self.weights, metric=self.metric,
                                    algorithm="brute")
