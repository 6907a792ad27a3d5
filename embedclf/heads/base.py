"""What every head shares: the scikit-learn contract over a block-structured label matrix.

A head is fitted on embeddings ``X`` and labels given either the scikit-learn way (a 1-D array of
classes, or a 0/1 multi-label indicator matrix) or as embedclf's block matrix with its ``layout``
(one ``(kind, size)`` per target, see :mod:`embedclf.labels`), which also covers multi-output.
``predict_proba`` returns one probability column per label column; ``predict`` returns classes
for 1-D input and a 0/1 matrix (of the dtype ``y`` had) otherwise.

``X`` is validated by scikit-learn (2-D, finite, real; dense unless the head ``accepts_sparse``, when a
sparse matrix stays sparse as CSR) and used as float32, the precision embeddings come in. Rows whose
``sample_weight`` is 0 are dropped before fitting, as if absent.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

from embedclf.labels import MULTICLASS, block_decisions, iter_blocks, to_blocks


def fill_class_proba(out: np.ndarray, block: slice, estimator, X) -> None:
    """Write a multi-class estimator's probabilities into ``out[:, block]``; classes it never saw get 0."""
    out[:, block] = 0.0
    out[:, np.arange(block.start, block.stop)[estimator.classes_]] = estimator.predict_proba(X)


def single_class_columns(Y: np.ndarray) -> np.ndarray:
    """Columns that are constant: no estimator can learn them, their probability is their rate."""
    rate = Y.mean(axis=0)
    return (rate == 0) | (rate == 1)


def column_rates(Y: np.ndarray, sample_weight: np.ndarray | None) -> np.ndarray:
    """Each column's (weighted) rate: the probability of a label no estimator could learn."""
    if sample_weight is None:
        return Y.mean(axis=0).astype(np.float32)
    return np.average(Y, axis=0, weights=sample_weight).astype(np.float32)


def class_weight_by_index(class_weight, classes):
    """``class_weight`` for estimators fitted on class indices: a dict's keys are classes of 1-D ``y``."""
    if not isinstance(class_weight, dict):
        return class_weight
    if classes is None:
        raise ValueError("class_weight as a dict needs 1-D class labels y; use 'balanced' for block targets")
    index = {label: i for i, label in enumerate(classes.tolist())}
    unknown = [key for key in class_weight if key not in index]
    if unknown:
        raise ValueError(f"class_weight names classes not in y: {unknown!r}")
    return {index[key]: weight for key, weight in class_weight.items()}


def _targets(y, layout):
    """``y`` checked as classification targets: a column vector becomes 1-D (with scikit-learn's
    warning) unless a ``layout`` says it is a one-column block."""
    y = np.asarray(y)
    if layout is not None:
        if y.ndim != 2 or not np.isin(y, (0, 1)).all():
            raise ValueError("with layout=, y must be a 2-D 0/1 block matrix")
        return y
    check_classification_targets(y)  # continuous targets: "Unknown label type: continuous"
    if y.ndim == 2 and y.shape[1] == 1:
        y = column_or_1d(y, warn=True)
    if y.ndim == 1 and len(np.unique(y)) < 2:
        raise ValueError(f"y has only one class ({y[0]!r}); a classifier needs at least two")
    return y


class BlockHead(ClassifierMixin, BaseEstimator):
    """Base class: subclasses implement ``_fit_blocks(X, Y, sample_weight, **fit_params)`` and
    ``_predict_blocks(X)``, and set ``supports_sample_weight`` when they honour ``sample_weight``
    (their ``fit`` then names it, so that scikit-learn sees it) or else may say why not."""

    _parameter_constraints: dict = {}
    supports_sample_weight = False
    no_sample_weight_reason = ""
    accepts_sparse = False  # True: X may be a scipy.sparse matrix (CSR), kept sparse (TF-IDF features)

    def _sparse(self):
        return ("csr",) if self.accepts_sparse else False

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, layout=None, **fit_params):
        """Fit on ``X`` and ``y``: classes (1-D), a 0/1 indicator matrix, or a block matrix with its ``layout``."""
        sample_weight = fit_params.pop("sample_weight", None)
        if sample_weight is not None and not self.supports_sample_weight:
            raise TypeError(f"{type(self).__name__} does not support sample_weight{self.no_sample_weight_reason}")
        X, y = validate_data(self, X, y, dtype=np.float32, multi_output=True, accept_sparse=self._sparse())
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
            kept = sample_weight > 0
            if not kept.all():
                X, y, sample_weight = X[kept], np.asarray(y)[kept], sample_weight[kept]
        y = _targets(y, layout)
        Y, self.layout_, self.classes_ = to_blocks(y, layout)
        self.target_dtype_ = None if self.classes_ is not None else str(y.dtype)
        self._fit_blocks(X, Y, sample_weight=sample_weight, **fit_params)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """One probability per label column: each one-hot block sums to 1."""
        check_is_fitted(self, "layout_")
        return self._predict_blocks(validate_data(self, X, reset=False, dtype=np.float32, accept_sparse=self._sparse()))

    def predict(self, X):
        """Classes for a head fitted on 1-D ``y``; else a 0/1 matrix: argmax per one-hot block, 0.5 per label."""
        scores = self.predict_proba(X)
        if self.classes_ is not None:
            return self.classes_[scores.argmax(axis=1)]
        # heads saved by embedclf 0.1.0 have no target_dtype_: they always answered int8
        return block_decisions(scores, self.layout_).astype(getattr(self, "target_dtype_", None) or np.int8)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True  # a 0/1 indicator y; several targets go through layout=
        tags.input_tags.sparse = self.accepts_sparse
        tags.input_tags.allow_nan = False
        return tags


class EstimatorPerBlockHead(BlockHead):
    """A head holding ``estimators_``, one entry per block, and ``column_rates_`` (training rates, the
    probability of labels no estimator could learn). Prediction is the same loop for all of them: a
    multi-class block asks its classifier, a multi-label block the subclass's :meth:`_predict_labels`."""

    def _predict_blocks(self, X):
        out = np.tile(self.column_rates_, (X.shape[0], 1))
        for (kind, block), fitted in zip(iter_blocks(self.layout_), self.estimators_):
            if kind == MULTICLASS:
                fill_class_proba(out, block, fitted, X)
            else:
                self._predict_labels(out, np.arange(block.start, block.stop), fitted, X)
        return out

    def _predict_labels(self, out: np.ndarray, columns: np.ndarray, fitted, X) -> None:
        """Write the probabilities of one multi-label block's ``columns`` from its ``fitted`` entry."""
        raise NotImplementedError
