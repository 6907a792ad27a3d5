"""Raw texts to embeddings as a scikit-learn transformer, so a text classifier is a plain ``Pipeline``.

    >>> from sklearn.pipeline import Pipeline
    >>> from sklearn.linear_model import LogisticRegression
    >>> clf = Pipeline([("encode", TextEncoder()), ("head", LogisticRegression())]).fit(texts, y)

Every :class:`TextEncoder` encodes through the on-disk cache, so the clones a ``GridSearchCV`` or
``cross_val_score`` makes share what any of them encoded: a search encodes each distinct text once,
and a second search encodes nothing and never loads the model. Its parameters are the fields of
:class:`~embedclf.encode.settings.EncoderSettings` plus ``cache``, ``progress``, and ``long_text``
(``truncate`` or ``chunk``) with ``chunk_pooling`` (see :mod:`embedclf.encode.long_text`).
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from embedclf.encode.models import DEFAULT_MODEL
from embedclf.encode.settings import EncoderSettings

SETTINGS_FIELDS = tuple(f.name for f in fields(EncoderSettings) if f.name != "ref")


class TextEncoder(TransformerMixin, BaseEstimator):
    """Encode texts with a BERT-family model through the embedding cache (see :class:`~embedclf.encode.encoder.Encoder`).

    ``fit`` checks the settings and finds the model's files (it learns nothing from the texts);
    ``transform`` returns a ``(n_texts, dim)`` float32 matrix. ``cache=None`` is ``$EMBEDCLF_CACHE`` or
    ``./cache``, ``False`` no cache. Fitted attributes: ``encoder_`` (the :class:`Encoder`, whose
    ``last_report`` says what the last call cached and encoded) and ``n_features_out_`` once known.
    """

    def __init__(self, model=DEFAULT_MODEL, *, pooling=None, max_length=None, normalize=True, backend="torch",
                 precision="auto", device="auto", batch_size=32, max_batch_tokens=None, chunk_size=1024, cache=None,
                 progress=False, long_text="truncate", chunk_pooling="mean"):
        self.model = model
        self.pooling = pooling
        self.max_length = max_length
        self.normalize = normalize
        self.backend = backend
        self.precision = precision
        self.device = device
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.chunk_size = chunk_size
        self.cache = cache
        self.progress = progress
        self.long_text = long_text
        self.chunk_pooling = chunk_pooling

    @classmethod
    def from_settings(cls, settings: EncoderSettings, **params) -> "TextEncoder":
        return cls(**{name: getattr(settings, name) for name in SETTINGS_FIELDS}, **params)

    def settings(self) -> EncoderSettings:
        """These parameters as validated :class:`EncoderSettings` (raises ``EmbedclfError`` if they are not)."""
        return EncoderSettings(**{name: getattr(self, name) for name in SETTINGS_FIELDS})

    def long_text_settings(self):
        from embedclf.encode.long_text import LongTextSettings

        return LongTextSettings(self.long_text, self.chunk_pooling)

    def fit(self, X, y=None):
        from embedclf.encode.encoder import Encoder

        _texts(X)
        self.long_text_settings()  # checked at fit, like the encoder settings
        encoder = Encoder(self.settings(), cache=self.cache, progress=self.progress)
        if not _same_encoder(getattr(self, "encoder_", None), encoder):  # refitting keeps the resolved one
            self.encoder_ = encoder
        self.encoder_.settings  # resolves the model now: a wrong path fails at fit, not at transform
        return self

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "encoder_")
        if self.long_text != "truncate":  # texts beyond the model's window: chunked and pooled
            from embedclf.encode.long_text import LongTextEncoder

            vectors = LongTextEncoder(self.encoder_, self.long_text_settings()).encode(_texts(X))
        else:
            vectors = self.encoder_.encode(_texts(X))
        self.n_features_out_ = vectors.shape[1]
        return vectors

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "n_features_out_")
        return np.asarray([f"embedding{i}" for i in range(self.n_features_out_)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = True
        tags.transformer_tags.preserves_dtype = []
        return tags


def _same_encoder(current, new) -> bool:
    """Whether ``current`` (an Encoder, or None) already encodes as ``new`` would, into the same cache."""
    def root(encoder):
        return None if encoder.cache is None else encoder.cache.root.resolve()

    return current is not None and current.requested == new.requested and root(current) == root(new)


def _texts(X) -> list[str]:
    """``X`` as a list of strings: a sequence, a 1-D array, or a pandas Series of texts."""
    if isinstance(X, str):
        raise ValueError("TextEncoder takes a sequence of texts, not a single string; wrap it in a list")
    array = np.asarray(X, dtype=object)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"TextEncoder takes a 1-D sequence of texts, got an array of shape {array.shape}")
    wrong = [type(t).__name__ for t in array if not isinstance(t, str)]
    if wrong:
        raise ValueError(f"TextEncoder takes texts (str); got {len(wrong)} of type {wrong[0]}")
    return list(array)
