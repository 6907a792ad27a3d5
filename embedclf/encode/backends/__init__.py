"""The backends that run a model: one module each (``torch``, ``onnx``, ``openvino``), one small interface.

An embedder is built from resolved :class:`~embedclf.encode.settings.EncoderSettings` and offers
``dimension``, ``token_counts(texts)`` and ``encode(texts, tokens)`` (texts sorted longest first,
vectors normalised as the settings say). To add a backend: a module with such a class, a name in
``settings.PRECISIONS``, and a branch in :func:`load_embedder`.

Loaded embedders are kept (the last two), keyed by their settings: encoders that are clones of one
another (a grid search's) load the model once between them.
"""

from __future__ import annotations

import functools


def load_embedder(settings, sample=None):
    """The embedder of resolved ``settings``; exports come from the per-user store (``encode/exports``).
    ``sample``: texts about to be encoded, which calibrate an int8 export made now (openvino)."""
    from embedclf.encode.exports import store_root

    if settings.backend == "openvino" and settings.precision == "int8":
        from embedclf.encode.backends.openvino import ensure_int8, require

        require("openvino")  # (nncf only where an export is to be made: importing it takes seconds)
        ensure_int8(settings, sample)  # made (or refused) here, where the texts are
    return _load(settings, settings.fingerprint, str(store_root()))


@functools.lru_cache(maxsize=2)
def _load(settings, fingerprint: str, store: str):
    if settings.backend == "onnx":
        from embedclf.encode.backends.onnx import load_onnx_embedder

        return load_onnx_embedder(settings)
    if settings.backend == "openvino":
        from embedclf.encode.backends.openvino import load_openvino_embedder

        return load_openvino_embedder(settings)
    from embedclf.encode.backends.torch import TorchEmbedder

    return TorchEmbedder(settings)


def forget_loaded() -> None:
    """Drop the kept embedders (their memory goes back once no encoder holds them)."""
    _load.cache_clear()
