"""Feature sets: what a head sees of a text.

``embedding`` is the sentence embedding (what every model folder before feature sets used); ``tfidf``
a word 1-2 gram TF-IDF matrix fitted on the training texts (``word+char``: character 2-5 grams too, see
:mod:`embedclf.features.tfidf`); ``hybrid`` both side by side, the embedding
for topic and tone, TF-IDF for the rare keywords a small frozen encoder misses. TF-IDF is sparse and
stays sparse, so only heads that take sparse input take it. ``auto``, the default, is ``hybrid`` for
the linear heads (ahead of the embedding alone and of a tuned TF-IDF baseline on every data set of the
feature-set benchmark) and ``embedding`` for the others.
"""

from __future__ import annotations

from embedclf.errors import EmbedclfError

FEATURE_SETS = ("embedding", "tfidf", "hybrid")
AUTO = "auto"
AUTO_HYBRID_HEADS = ("logreg", "svm")  # the heads ``auto`` gives hybrid features
SPARSE_HEADS = ("logreg", "svm", "knn")
FEATURES_FILE = "features.skops"
DEFAULT_TFIDF_WEIGHT = 1.0
# the weights ``fit`` tries when it tunes on validation data and no --tfidf-weight was given (see .weight)
TFIDF_WEIGHT_GRID = (0.5, 1.0, 2.0)


def check_feature_set(features: str, tfidf_weight: float = DEFAULT_TFIDF_WEIGHT) -> None:
    """One-line errors, naming the option, for a feature set or a TF-IDF weight out of range."""
    if features not in (AUTO, *FEATURE_SETS):
        raise EmbedclfError(f"--features must be one of {', '.join((AUTO, *FEATURE_SETS))}, not {features!r}")
    if isinstance(tfidf_weight, bool) or not isinstance(tfidf_weight, (int, float)) or not 0 < tfidf_weight <= 100:
        raise EmbedclfError(f"--tfidf-weight must be a number above 0 and at most 100, got {tfidf_weight!r}")


def resolve_features(features: str, head) -> str:
    """The feature set ``features`` means for ``head``: itself, or for ``auto`` hybrid for logreg and svm and
    the embedding for knn, mlp and chain."""
    if features != AUTO:
        return features
    from embedclf.heads import head_name

    return "hybrid" if head_name(head) in AUTO_HYBRID_HEADS else "embedding"


def check_head_takes(features: str, head) -> None:
    """Refuse, before any work, a head that cannot take ``features`` (the MLP and chains take dense input)."""
    from embedclf.heads import head_name

    name = head_name(head)
    if features != "embedding" and name not in SPARSE_HEADS:
        raise EmbedclfError(f"--features {features} is sparse and the {name} head takes dense input only; "
                            f"use --head {' / '.join(SPARSE_HEADS)} or --features embedding")


def feature_step(features: str, text_encoder, *, tfidf=None, tfidf_weight: float = DEFAULT_TFIDF_WEIGHT):
    """The pipeline's first step for ``features``: the ``TextEncoder`` itself, a TF-IDF vectoriser, or both.

    ``tfidf`` is a fitted vectoriser (a loaded model) or None for a new one.
    """
    check_feature_set(features, tfidf_weight)
    if features == "embedding":
        return text_encoder
    from embedclf.features.tfidf import tfidf_vectorizer

    tfidf = tfidf if tfidf is not None else tfidf_vectorizer()
    if features == "tfidf":
        return tfidf
    from embedclf.features.hybrid import HybridFeatures

    return HybridFeatures(text_encoder, tfidf, sparse_weight=tfidf_weight)
