"""The matrices a sweep fits its heads on: one pair (train, validation) per feature set and fold, built once.

The embedding comes from the cache; a TF-IDF vectoriser (one per ``tfidf_ngrams`` kind) is fitted on each
fold's training texts only (its vocabulary and idf never see the fold's validation rows, as ``fit`` learns
it from TRAIN alone),
and ``hybrid`` joins the two with :func:`~embedclf.features.hybrid.join_blocks`. Each feature set's
matrices are shared by every head configuration that uses it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FoldFeatures:
    """One fold's training and validation matrices, and what turning validation texts into them cost
    beyond the embedding (the vectoriser's transform, per 1,000 rows): part of a head's predict time."""

    train: object
    valid: object
    transform_ms_per_1k: float = 0.0


def fold_features(configurations, X: np.ndarray, texts: list[str], folds) -> dict[str, list[FoldFeatures]]:
    """``{configuration.feature_key: [FoldFeatures per fold]}`` for every feature set ``configurations`` use."""
    wanted = {c.feature_key: (c.features, c.tfidf_weight, c.tfidf_ngrams) for c in configurations}
    out: dict[str, list[FoldFeatures]] = {key: [] for key in wanted}
    vectorizers = sorted({ngrams for features, _, ngrams in wanted.values() if features != "embedding"})
    for train_rows, valid_rows in folds:
        terms = {ngrams: _tfidf(texts, train_rows, valid_rows, ngrams) for ngrams in vectorizers}
        for key, (features, weight, ngrams) in wanted.items():
            out[key].append(_one(features, weight, X, train_rows, valid_rows, terms.get(ngrams)))
    return out


def _tfidf(texts, train_rows, valid_rows, ngrams: str):
    from embedclf.features.tfidf import fit_terms, tfidf_vectorizer

    vectorizer = tfidf_vectorizer(ngrams)
    train = fit_terms(vectorizer, [texts[i] for i in train_rows])  # as ``fit`` learns it, tiny folds included
    valid_texts = [texts[i] for i in valid_rows]
    start = time.perf_counter()
    valid = vectorizer.transform(valid_texts)
    ms_per_1k = (time.perf_counter() - start) * 1e6 / max(len(valid_texts), 1)
    return train, valid, ms_per_1k


def _one(features, weight, X, train_rows, valid_rows, terms) -> FoldFeatures:
    if features == "embedding":
        return FoldFeatures(X[train_rows], X[valid_rows])
    train_terms, valid_terms, ms_per_1k = terms
    if features == "tfidf":
        return FoldFeatures(train_terms, valid_terms, ms_per_1k)
    from embedclf.features.hybrid import join_blocks

    return FoldFeatures(join_blocks(X[train_rows], train_terms, sparse_weight=weight),
                        join_blocks(X[valid_rows], valid_terms, sparse_weight=weight), ms_per_1k)
