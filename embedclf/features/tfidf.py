"""The TF-IDF block: scikit-learn's ``TfidfVectorizer`` with the settings that make it a strong baseline,
and its safe loading from a model folder.

Word unigrams and bigrams, sublinear term frequency (a word said ten times is not ten times the
evidence), terms in at least two training texts (a term seen once cannot generalise and only grows
the vocabulary), rows L2-normalised, float32 like the embeddings.
"""

from __future__ import annotations

import numpy as np

from embedclf.errors import EmbedclfError

DEFAULTS = dict(ngram_range=(1, 2), min_df=2, sublinear_tf=True, dtype=np.float32)


def tfidf_vectorizer(**overrides):
    """A new (unfitted) vectoriser with embedclf's defaults; ``overrides`` are ``TfidfVectorizer`` parameters."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(**(DEFAULTS | overrides))


def fit_terms(vectorizer, texts):
    """Fit ``vectorizer`` and return the TF-IDF block of ``texts``; on a handful of texts that share no word
    (``min_df`` prunes every term) every word is kept instead: beside an embedding that still carries meaning."""
    try:
        return vectorizer.fit_transform(texts)
    except ValueError as exc:
        if not pruned_every_term(exc, vectorizer):
            raise
        return vectorizer.set_params(min_df=1).fit_transform(texts)


def pruned_every_term(exc: ValueError, vectorizer) -> bool:
    """Whether fitting ``vectorizer`` failed only because ``min_df`` pruned every term (refit with ``min_df=1``)."""
    return "no terms remain" in str(exc) and vectorizer.min_df != 1


def load_tfidf(where, data: bytes):
    """A fitted vectoriser from skops bytes: only types skops trusts by default load, and it must be a
    fitted ``TfidfVectorizer`` (no custom analyser or tokenizer: those would be code)."""
    import skops.io as sio
    from sklearn.feature_extraction.text import TfidfVectorizer

    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:
        raise EmbedclfError(f"{where}: not a skops file ({' '.join(str(exc).split())[:120]})") from None
    if untrusted:
        raise EmbedclfError(f"{where}: holds types embedclf does not trust ({', '.join(untrusted[:5])}); "
                            "refusing to load it")
    try:
        vectorizer = sio.loads(data, trusted=[])
    except Exception as exc:
        raise EmbedclfError(f"{where}: cannot load it ({' '.join(str(exc).split())[:200]})") from None
    if type(vectorizer) is not TfidfVectorizer or not hasattr(vectorizer, "vocabulary_"):
        raise EmbedclfError(f"{where}: holds a {type(vectorizer).__name__}, not a fitted TfidfVectorizer")
    if not all(isinstance(getattr(vectorizer, name), str) or getattr(vectorizer, name) is None
               for name in ("analyzer", "tokenizer", "preprocessor")):
        raise EmbedclfError(f"{where}: the vectoriser names custom code (analyzer, tokenizer or preprocessor)")
    return vectorizer
