"""embedclf: text classifiers on cached sentence embeddings.

The pipeline, one sub-package per stage: ``data`` (reading tables) → ``encode`` (encoder +
embedding cache) → ``heads`` → ``postprocess`` (thresholds, co-occurrence) → ``evaluate`` →
reports. Names are imported lazily so that ``import embedclf`` does not pull in torch.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "Encoder": "embedclf.encode.encoder",
    "EncoderSettings": "embedclf.encode.settings",
    "TextEncoder": "embedclf.encode.text_encoder",
    "TextClassifier": "embedclf.model",
    "FitSettings": "embedclf.fit",
    "fit_classifier": "embedclf.fit",
    "make_head": "embedclf.heads",
    "EncodeReport": "embedclf.encode.encoder",
    "EmbeddingCache": "embedclf.encode.cache",
    "load_dataset": "embedclf.data",
    "Dataset": "embedclf.data",
    "EmbedclfError": "embedclf.errors",
}
__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'embedclf' has no attribute {name!r}")
