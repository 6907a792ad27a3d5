"""Heads built from scikit-learn estimators: logistic regression, linear SVM, k nearest neighbours.

Each target block gets its own estimator: a multi-class block one classifier on its class index, a
multi-label block one binary classifier per label (one-vs-rest). A label that is constant in the
training data cannot be learned and keeps its training rate as its probability.
"""

from __future__ import annotations

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import LinearSVC

from embedclf.heads.base import BlockHead, fill_class_proba, single_class_columns
from embedclf.labels import MULTICLASS, iter_blocks


class _PerBlockHead(BlockHead):
    """Fits one estimator per multi-class block (on the class index) and per multi-label column."""

    native_multilabel = False  # True: one estimator takes a whole multi-label block at once

    def _estimator(self):
        raise NotImplementedError

    def _fit_classes(self, X, y):
        """One multi-class target."""
        return self._estimator().fit(X, y)

    def _fit_label(self, X, y):
        """One binary label; ``None`` where it cannot be learned (its training rate is used)."""
        if y.min() == y.max():
            return None
        return self._estimator().fit(X, y)

    def _fit_blocks(self, X, Y, **_):
        self.estimators_, self.column_rates_ = [], Y.mean(axis=0).astype(np.float32)
        for kind, block in iter_blocks(self.layout_):
            part = Y[:, block]
            if kind == MULTICLASS:
                known = part.any(axis=1)  # rows whose class was unseen carry no label
                self.estimators_.append(self._fit_classes(X[known], part[known].argmax(axis=1)))
            elif self.native_multilabel:
                learnable = ~single_class_columns(part)
                fitted = self._estimator().fit(X, part[:, learnable]) if learnable.any() else None
                self.estimators_.append((learnable, fitted))
            else:
                self.estimators_.append([self._fit_label(X, part[:, j]) for j in range(part.shape[1])])

    def _predict_blocks(self, X):
        out = np.tile(self.column_rates_, (len(X), 1))
        for (kind, block), fitted in zip(iter_blocks(self.layout_), self.estimators_):
            columns = np.arange(block.start, block.stop)
            if kind == MULTICLASS:
                fill_class_proba(out, block, fitted, X)
            elif self.native_multilabel:
                learnable, estimator = fitted
                if estimator is not None:
                    proba = estimator.predict_proba(X)
                    proba = proba if isinstance(proba, list) else [proba]
                    out[:, columns[learnable]] = np.column_stack([p[:, -1] for p in proba])
            else:
                for column, estimator in zip(columns, fitted):
                    if estimator is not None:
                        out[:, column] = estimator.predict_proba(X)[:, 1]
        return out


class LogRegHead(_PerBlockHead):
    """Logistic regression per target (multinomial) or per label (one-vs-rest)."""

    def __init__(self, C=1.0, class_weight=None, max_iter=1000):
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter

    def _estimator(self):
        return LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=self.max_iter)


class SVMHead(_PerBlockHead):
    """Linear SVM with probabilities from Platt scaling on internal cross-validation folds.

    A label needs at least two positive examples to be calibrated; rarer labels keep their
    training rate as their probability (``uncalibrated_labels_`` counts them).
    """

    def __init__(self, C=0.5, class_weight=None, calibration_folds=3):
        self.C = C
        self.class_weight = class_weight
        self.calibration_folds = calibration_folds

    def _estimator(self, folds=None):
        return CalibratedClassifierCV(LinearSVC(C=self.C, class_weight=self.class_weight),
                                      method="sigmoid", cv=folds or self.calibration_folds)

    def _fit_blocks(self, X, Y, **fit_params):
        self.uncalibrated_labels_, self.in_sample_calibration_ = 0, False
        super()._fit_blocks(X, Y, **fit_params)

    def _fit_classes(self, X, y):
        # cross-validated calibration needs every class in every fold; with rarer classes the SVM is
        # fitted once and its margins calibrated on the training rows (optimistic, but every class stays)
        if np.bincount(y).min(initial=len(y)) >= self.calibration_folds or len(np.unique(y)) < 2:
            return super()._fit_classes(X, y)
        from sklearn.frozen import FrozenEstimator

        self.in_sample_calibration_ = True
        svm = LinearSVC(C=self.C, class_weight=self.class_weight).fit(X, y)
        return CalibratedClassifierCV(FrozenEstimator(svm), method="sigmoid").fit(X, y)

    def _fit_label(self, X, y):
        folds = int(min(self.calibration_folds, y.sum(), len(y) - y.sum()))
        if folds < 2:
            self.uncalibrated_labels_ += int(y.sum() > 0)
            return None
        return self._estimator(folds).fit(X, y)


class KNNHead(_PerBlockHead):
    """k nearest neighbours by cosine; one neighbour search serves every label of a block."""

    native_multilabel = True

    def __init__(self, n_neighbors=15, weights="distance", metric="cosine"):
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.metric = metric

    def _estimator(self):
        return KNeighborsClassifier(n_neighbors=self.n_neighbors, weights=self.weights, metric=self.metric,
                                    algorithm="brute")
