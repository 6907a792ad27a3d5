"""The torch backend: sentence-transformers' Transformer and Pooling modules, fp32, fp16 or bf16, CPU or CUDA."""

from __future__ import annotations

import os
import threading
from typing import Sequence

import numpy as np

from embedclf.encode.batching import capped_batches
from embedclf.errors import EmbedclfError


def load_sentence_transformer(settings):
    """Load resolved ``settings``' model as Transformer → Pooling; normalisation is applied at encode time.

    The model's own Pooling module is replaced by one of ``settings.pooling``, so the pooling is the
    one in the cache key whatever the folder says.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    ref = settings.ref
    try:
        loaded = SentenceTransformer(str(ref.path), device="cpu", local_files_only=True)
    except Exception as exc:
        raise EmbedclfError(f"cannot load model {ref.name}: {' '.join(str(exc).split())[:300]}") from None
    transformer = next((m for m in loaded if isinstance(m, Transformer)), None)
    if transformer is None:
        raise EmbedclfError(f"{ref.name}: no transformer module; embedclf encodes with BERT-family models")
    dimension = transformer.get_embedding_dimension() if hasattr(transformer, "get_embedding_dimension") \
        else transformer.get_word_embedding_dimension()
    model = SentenceTransformer(modules=[transformer, Pooling(dimension, pooling_mode=settings.pooling)],
                                device=settings.device)
    model.max_seq_length = settings.max_length
    if settings.precision == "fp16":
        model.half()
    elif settings.precision == "bf16":
        model.to(torch.bfloat16)
    model.eval()
    return model


class TorchEmbedder:
    """Sorted texts to vectors with a SentenceTransformer, one forward pass per capped batch; on CPU its
    Linear layers are prepacked for oneDNN (``backends/prepack``) and a BERT model runs without padding
    (``backends/unpadded``)."""

    packed_layers = 0
    unpadded = None  # the padding-free pass, where it covers the model

    def __init__(self, settings):
        self.settings = settings
        self.model = load_sentence_transformer(settings)
        if self.model.device.type == "cpu":
            from embedclf.encode.backends.prepack import prepack_linears
            from embedclf.encode.backends.unpadded import UnpaddedBert

            unpadded = UnpaddedBert.build(self.model)
            self.packed_layers = prepack_linears(self.model)
            if unpadded is not None and unpadded.reproduces_model():
                self.unpadded = unpadded
            elif unpadded is not None:
                unpadded.remove()
        self.tokenizer = self.model.tokenizer
        # a fast tokenizer switching truncation between two threads fails ("Already borrowed"); the
        # server's workers run passes at once, so tokenising takes turns (forward passes do not)
        self._tokenizing = threading.Lock()
        self.device = self.model.device
        self.dimension = int(self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension")
                             else self.model.get_sentence_embedding_dimension())

    def token_counts(self, texts: Sequence[str]) -> np.ndarray:
        """Tokens per text, special tokens included and before truncation."""
        counts = []
        for start in range(0, len(texts), 4096):
            with self._tokenizing:
                encoded = self.tokenizer(list(texts[start:start + 4096]), add_special_tokens=True,
                                         truncation=False, verbose=False)["input_ids"]
            counts.extend(len(ids) for ids in encoded)
        return np.asarray(counts, dtype=np.int64)

    def encode(self, texts: list[str], tokens: np.ndarray) -> np.ndarray:
        """Vectors of ``texts``, which arrive sorted longest first with their ``tokens``.

        One forward pass per capped batch, through the model's modules (tokenise, Transformer, Pooling)
        rather than ``SentenceTransformer.encode``: that re-sorts a batch and, per call, puts every module
        in eval mode and looks the device up over all parameters, which a pass of a few short texts (a
        server's) feels (measured here: one 12-token text 12.6 ms through ``encode``, 11.0 ms this way).
        """
        import torch

        s = self.settings
        with torch.inference_mode():
            vectors = torch.cat([self._forward(list(texts[batch]))
                                 for batch in capped_batches(tokens, s.batch_size, s.max_length, s.batch_tokens)]
                                ).float()
            if s.normalize:
                vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
        return vectors.cpu().numpy().astype(np.float32, copy=False)

    def _forward(self, texts: list[str]):
        """Sentence embeddings of one batch (in the model's dtype, on its device)."""
        with self._tokenizing:
            features = self.model.preprocess(texts)
        features = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in features.items()}
        if self.unpadded is not None:
            return self.unpadded(features)
        return self.model(features)["sentence_embedding"]
