"""The TF-IDF block: scikit-learn's ``TfidfVectorizer`` with the settings that make it a strong baseline,
and its safe loading from a model folder.

Word unigrams and bigrams, sublinear term frequency (a word said ten times is not ten times the
evidence), terms in at least two training texts (a term seen once cannot generalise and only grows
the vocabulary), rows L2-normalised, float32 like the embeddings.

``word+char`` adds character 2-5 grams within word boundaries (``char_wb``) beside the words: they catch
misspellings, inflections and emoji that whole words miss. It pays on short, noisy texts and costs fit and
prediction time everywhere (see the README's measurements), so it is asked for, not the default. The two
blocks are a ``FeatureUnion``, each L2-normalised and weighted 1/sqrt(2), so the TF-IDF block keeps unit
length beside the embedding, as the word block alone has.
"""

from __future__ import annotations

import numpy as np

from embedclf.errors import EmbedclfError

DEFAULTS = dict(ngram_range=(1, 2), min_df=2, sublinear_tf=True, dtype=np.float32)
CHAR_DEFAULTS = DEFAULTS | dict(analyzer="char_wb", ngram_range=(2, 5))
NGRAMS = ("word", "word+char")
_HALF = 0.5 ** 0.5


def check_ngrams(ngrams) -> None:
    if ngrams not in NGRAMS:
        raise EmbedclfError(f"--tfidf-ngrams must be one of {', '.join(NGRAMS)}, not {ngrams!r}")


def tfidf_vectorizer(ngrams: str = "word"):
    """A new (unfitted) vectoriser with embedclf's defaults: word 1-2 grams, or (``word+char``) those and
    character 2-5 grams side by side."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    check_ngrams(ngrams)
    if ngrams == "word":
        return TfidfVectorizer(**DEFAULTS)
    return FeatureUnion([("word", TfidfVectorizer(**DEFAULTS)), ("char", TfidfVectorizer(**CHAR_DEFAULTS))],
                        transformer_weights={"word": _HALF, "char": _HALF})


def _parts(vectorizer) -> list:
    """The ``TfidfVectorizer`` objects a vectoriser is made of: itself, or a union's two."""
    if hasattr(vectorizer, "transformer_list"):
        return [part for _, part in vectorizer.transformer_list]
    return [vectorizer]


def ngrams_of(vectorizer) -> str:
    return "word+char" if len(_parts(vectorizer)) == 2 else "word"


def term_count(vectorizer) -> int:
    """The columns a fitted vectoriser gives: its terms, both blocks' for ``word+char``."""
    return sum(len(part.vocabulary_) for part in _parts(vectorizer))


def fit_terms(vectorizer, texts):
    """Fit ``vectorizer`` and return the TF-IDF block of ``texts``; on a handful of texts that share no word
    (``min_df`` prunes every term) every word is kept instead: beside an embedding that still carries meaning."""
    try:
        return vectorizer.fit_transform(texts)
    except ValueError as exc:
        if not pruned_every_term(exc, vectorizer):
            raise
        return keep_every_term(vectorizer).fit_transform(texts)


def pruned_every_term(exc: ValueError, vectorizer) -> bool:
    """Whether fitting ``vectorizer`` failed only because ``min_df`` pruned every term (see ``keep_every_term``)."""
    return "no terms remain" in str(exc) and any(part.min_df != 1 for part in _parts(vectorizer))


def keep_every_term(vectorizer):
    """``vectorizer`` set to keep terms seen once (``min_df=1``), in place, to be refitted."""
    for part in _parts(vectorizer):
        part.set_params(min_df=1)
    return vectorizer


def load_tfidf(where, data: bytes):
    """A fitted vectoriser from skops bytes: only types skops trusts by default load, and it must be a
    fitted ``TfidfVectorizer``, or the ``word+char`` union of two (no custom analyser or tokenizer: those
    would be code)."""
    import skops.io as sio
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

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
    union = type(vectorizer) is FeatureUnion and [name for name, _ in vectorizer.transformer_list] == ["word", "char"]
    parts = _parts(vectorizer) if union else [vectorizer]
    if not (union or type(vectorizer) is TfidfVectorizer) or any(
            type(part) is not TfidfVectorizer or not hasattr(part, "vocabulary_") for part in parts):
        raise EmbedclfError(f"{where}: holds a {type(vectorizer).__name__}, not a fitted TfidfVectorizer "
                            "(or a word and char union of two)")
    if not all(isinstance(getattr(part, name), str) or getattr(part, name) is None
               for part in parts for name in ("analyzer", "tokenizer", "preprocessor")):
        raise EmbedclfError(f"{where}: the vectoriser names custom code (analyzer, tokenizer or preprocessor)")
    return vectorizer
