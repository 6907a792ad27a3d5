"""The hybrid feature set: the L2-normalised sentence embedding beside a TF-IDF block, as one sparse matrix.

Both blocks have unit-length rows, so ``sparse_weight`` (and ``dense_weight``) say how much each counts
to a linear head: scaling a block scales its share of the margin against the same regularisation.
The embedding's few hundred columns go into the CSR matrix as they are; the TF-IDF block is never
densified.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin

from embedclf.features.tfidf import fit_terms


class HybridFeatures(TransformerMixin, BaseEstimator):
    """``[dense_weight * embedding / ||embedding||, sparse_weight * tfidf]`` as a float32 CSR matrix.

    ``encoder`` is a :class:`~embedclf.encode.text_encoder.TextEncoder`, ``tfidf`` a ``TfidfVectorizer``
    (see :func:`embedclf.features.tfidf.tfidf_vectorizer`); like ``FeatureUnion``, fitting fits them in place.
    """

    def __init__(self, encoder=None, tfidf=None, *, dense_weight=1.0, sparse_weight=1.0):
        self.encoder = encoder
        self.tfidf = tfidf
        self.dense_weight = dense_weight
        self.sparse_weight = sparse_weight

    def _parts(self):
        from embedclf.encode.text_encoder import TextEncoder
        from embedclf.features.tfidf import tfidf_vectorizer

        if self.encoder is None:
            self.encoder = TextEncoder()
        if self.tfidf is None:
            self.tfidf = tfidf_vectorizer()
        return self.encoder, self.tfidf

    def fit(self, X, y=None):
        self.fit_transform(X)
        return self

    def fit_transform(self, X, y=None, **fit_params):
        return self.join(*self.fit_blocks(X))

    def transform(self, X):
        return self.join(*self.transform_blocks(X))

    def fit_blocks(self, X) -> tuple[np.ndarray, sparse.csr_matrix]:
        """Fit both parts on ``X`` and return its two blocks unjoined: ``fit`` tries several weights on them
        without refitting the vectoriser or encoding again."""
        encoder, tfidf = self._parts()
        encoder.fit(X)
        return encoder.transform(X), fit_terms(tfidf, X)

    def transform_blocks(self, X) -> tuple[np.ndarray, sparse.csr_matrix]:
        encoder, tfidf = self._parts()
        return encoder.transform(X), tfidf.transform(X)

    def join(self, dense: np.ndarray, terms) -> sparse.csr_matrix:
        """The two blocks as this step's output, at its weights."""
        self.n_features_out_ = dense.shape[1] + terms.shape[1]
        return join_blocks(dense, terms, self.dense_weight, self.sparse_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags


def join_blocks(dense: np.ndarray, terms, dense_weight: float = 1.0, sparse_weight: float = 1.0) -> sparse.csr_matrix:
    """``[dense_weight * dense / ||dense||, sparse_weight * terms]`` as one float32 CSR matrix: the hybrid
    features from vectors and a TF-IDF matrix already at hand (the sweep and the benchmarks build it so)."""
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    dense = dense / np.where(norms > 0, norms, 1.0) * dense_weight
    return sparse.hstack([sparse.csr_matrix(dense.astype(np.float32)), terms * sparse_weight],
                         format="csr", dtype=np.float32)
