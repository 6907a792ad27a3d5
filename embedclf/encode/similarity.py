"""Row-wise cosine similarity: the one measure of how close a cheaper encoding is to fp32.

Kept apart from ``fidelity`` (which runs encoders) so that the precision guard and the backends'
export checks can use it without importing the Encoder.
"""

from __future__ import annotations

import numpy as np


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity (whether or not the rows are normalised)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return (a * b).sum(axis=1) / norms
