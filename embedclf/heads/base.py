"""What every head shares: the scikit-learn contract over a block-structured label matrix.

A head is fitted on embeddings ``X`` and labels given either the scikit-learn way (a 1-D array of
classes, or a 0/1 multi-label indicator matrix) or as embedclf's block matrix with its ``layout``
(one ``(kind, size)`` per target, see :mod:`embedclf.labels`), which also covers multi-output.
``predict_proba`` returns one probability column per label column; ``predict`` returns classes
for 1-D input and a 0/1 matrix otherwise.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from embedclf.labels import block_decisions, to_blocks





def fill_class_proba(out: np.ndarray, block: slice, estimator, X) -> None:
    """Write a multi-class estimator's probabilities into ``out[:, block]``; classes it never saw get 0."""
    out[:, block] = 0.0
    out[:, np.arange(block.start, block.stop)[estimator.classes_]] = estimator.predict_proba(X)


def single_class_columns(Y: np.ndarray) -> np.ndarray:
    """Columns that are constant: no estimator can learn them, their probability is their rate."""
    rate = Y.mean(axis=0)
    return (rate == 0) | (rate == 1)


class BlockHead(ClassifierMixin, BaseEstimator):
    """Base class: subclasses implement ``_fit_blocks(X, Y, **fit_params)`` and ``_predict_blocks(X)``."""

    def fit(self, X, y, layout=None, **fit_params):
        X = np.asarray(X, dtype=np.float32)
        Y, self.layout_, self.classes_ = to_blocks(y, layout)
        if len(X) != len(Y):
            raise ValueError(f"X has {len(X)} rows, y has {len(Y)}")
        self.n_features_in_ = X.shape[1]
        self._fit_blocks(X, Y, **fit_params)
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "layout_")
        return self._predict_blocks(np.asarray(X, dtype=np.float32))

    def predict(self, X):
        scores = self.predict_proba(X)
        if self.classes_ is not None:
            return self.classes_[scores.argmax(axis=1)]
        return block_decisions(scores, self.layout_)

    def _more_tags(self):
        return {"multilabel": True}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags
