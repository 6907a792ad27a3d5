"""Soft co-occurrence: raise p(B) towards p(A)·P(B|A) instead of forcing B when A is predicted.

The hard rules (:mod:`.rules`) set B whenever A is decided and P(B|A) clears a high threshold; on data
whose labels rarely imply each other that strongly (GoEmotions has no rule at 0.9) they do nothing.
The soft mode uses every pair with enough support, weighted by its confidence, and leaves the
decision to the thresholds:

    p'(B) = max(p(B), strength · max_A p(A) · P(B|A))

``strength`` 0 changes nothing; 1 trusts the training co-occurrence fully. :func:`tune_strength` picks
it on validation scores, for the same objective the thresholds are tuned for.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator

from embedclf.errors import EmbedclfError

STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
ROWS_PER_STEP = 2048  # rows x labels x labels floats at a time


class SoftCooccurrence(BaseEstimator):
    """Learn ``conditional_[a, b] = P(b | a)`` from a 0/1 training label matrix (pairs whose antecedent has
    at least ``min_support`` rows; the diagonal is 0) and raise scores with :meth:`transform`."""

    def __init__(self, strength: float = 0.5, min_support: int = 5):
        self.strength = strength
        self.min_support = min_support

    def fit(self, Y) -> "SoftCooccurrence":
        _check(self.strength, self.min_support)
        Y = np.asarray(Y, dtype=np.float64)
        if Y.ndim != 2 or not np.isin(Y, (0, 1)).all():
            raise EmbedclfError("soft co-occurrence needs a 0/1 label matrix (rows x labels)")
        counts = Y.sum(axis=0)
        conditional = (Y.T @ Y) / np.maximum(counts[:, None], 1)
        conditional[counts < self.min_support] = 0.0
        np.fill_diagonal(conditional, 0.0)
        self.conditional_ = conditional.astype(np.float32)
        return self

    def transform(self, scores: np.ndarray, strength: float | None = None) -> np.ndarray:
        """``scores`` (rows x labels, probabilities) raised towards what co-occurring labels imply."""
        strength = self.strength if strength is None else strength
        scores = np.asarray(scores, dtype=np.float32)
        if scores.shape[1:] != self.conditional_.shape[:1]:
            raise EmbedclfError(f"scores have {scores.shape[1:]} columns, the co-occurrences "
                                f"{self.conditional_.shape[0]} labels")
        if strength == 0:
            return scores.copy()
        out = np.empty_like(scores)
        for at in range(0, len(scores), ROWS_PER_STEP):
            part = scores[at:at + ROWS_PER_STEP]
            implied = (part[:, :, None] * self.conditional_[None]).max(axis=1)
            out[at:at + ROWS_PER_STEP] = np.maximum(part, strength * implied)
        return out


def tune_strength(soft: SoftCooccurrence, Y_valid, scores_valid, score, strengths=STRENGTHS) -> tuple[float, list]:
    """The strength whose raised validation scores ``score(Y_valid, raised)`` rates best (ties to the
    weaker one), and every strength's rating, for the report."""
    ratings = [(float(s), float(score(Y_valid, soft.transform(scores_valid, s)))) for s in strengths]
    best = max(ratings, key=lambda pair: (pair[1], -pair[0]))
    return best[0], ratings


def _check(strength, min_support) -> None:
    if isinstance(strength, bool) or not isinstance(strength, Real) or not 0 <= strength <= 1:
        raise EmbedclfError(f"soft co-occurrence strength must be from 0 to 1, got {strength!r}")
    if isinstance(min_support, bool) or not isinstance(min_support, Integral) or min_support < 1:
        raise EmbedclfError(f"--min-support must be an integer of at least 1, got {min_support!r}")
