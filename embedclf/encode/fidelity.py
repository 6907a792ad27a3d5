"""How close an encoder's vectors are to the reference: the same model in fp32 with torch.

A cheaper backend or precision (onnx, int8, bf16) is only worth its speed if its vectors point where
the reference's do. :func:`check_fidelity` encodes a sample both ways and reports the cosine
similarity per text; the reference run never touches the cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from embedclf.encode.encoder import Encoder
from embedclf.encode.similarity import cosines  # noqa: F401  (re-exported: fidelity.cosines)
from embedclf.errors import EmbedclfError


@dataclass(frozen=True)
class Fidelity:
    """Cosine similarity between an encoder's vectors and the fp32 torch reference, over ``texts`` texts."""

    texts: int
    mean: float
    min: float
    setting: str  # the encoder's backend and precision, e.g. "onnx int8"

    def summary(self) -> str:
        return (f"fidelity of {self.setting} against torch fp32 on {self.texts:,} texts: "
                f"mean cosine {self.mean:.5f}, min {self.min:.5f}")


def check_fidelity(encoder: Encoder, texts: Sequence[str], vectors: np.ndarray | None = None) -> Fidelity:
    """Encode ``texts`` with fp32 torch (uncached) and compare with ``encoder``'s vectors for them.

    ``vectors`` are the encoder's vectors of ``texts`` if the caller has them already; otherwise the
    encoder computes them (through its cache, like any of its runs).
    """
    texts = list(texts)
    if not texts:
        raise EmbedclfError("no texts to check fidelity on")
    reference = encoder.derive(backend="torch", precision="fp32", cache=False, progress=False)
    expected = reference.encode(texts)
    actual = encoder.encode(texts) if vectors is None else np.asarray(vectors)
    if actual.shape != expected.shape:
        raise EmbedclfError(f"fidelity check: {actual.shape[0]} vectors for {len(texts)} texts")
    similarity = cosines(expected, actual)
    return Fidelity(texts=len(texts), mean=float(similarity.mean()), min=float(similarity.min()),
                    setting=encoder.describe())
