"""What co-occurrence rules are learnt with and from: their settings, label names and 0/1 label matrices.

Every check a caller's input goes through lives here, each raising one ``EmbedclfError`` line, so
the estimator, the threshold sweep and the rules file reader refuse the same things the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from embedclf.errors import EmbedclfError


@dataclass(frozen=True)
class RuleSettings:
    """The two settings of a rule set, checked once when made.

    ``threshold``: the least confidence P(B|A) of a rule A -> B, in (0, 1]. ``min_support``: the
    least number of rows holding A, a whole number >= 1. Build it before reading any data to
    refuse a bad ``--threshold`` or ``--min-support`` at once.
    """

    threshold: float = 0.9
    min_support: int = 5

    def __post_init__(self):
        check_settings(self.threshold, self.min_support)


def check_settings(threshold, min_support) -> None:
    """Refuse a threshold outside (0, 1] (NaN included) and a min support that is not a whole number >= 1."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)) \
            or math.isnan(threshold) or not 0 < threshold <= 1:
        raise EmbedclfError(f"co-occurrence threshold must be in (0, 1], got {threshold!r}")
    if isinstance(min_support, bool) or not isinstance(min_support, (int, np.integer)) or min_support < 1:
        raise EmbedclfError(f"co-occurrence min support must be a whole number >= 1, got {min_support!r}")


def check_names(label_names, what: str) -> list[str]:
    """``label_names`` as a list of distinct strings."""
    if isinstance(label_names, str):
        raise EmbedclfError(f"{what}: expected a list of label names, got one string")
    names = [str(name) for name in label_names]
    if len(set(names)) != len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        raise EmbedclfError(f"{what}: label {twice[0]!r} appears more than once")
    return names


def label_matrix(Y, n_labels: int, what: str) -> sp.csr_matrix:
    """``Y`` as a CSR matrix of int32 ones, after checking its shape and that it holds only 0/1."""
    if sp.issparse(Y):
        Y = sp.csr_matrix(Y)
        values = Y.data
    else:
        Y = np.asarray(Y)
        values = Y
    if Y.ndim != 2:
        raise EmbedclfError(f"{what}: expected a 2-d 0/1 label matrix, got {Y.ndim} dimension(s)")
    if Y.shape[1] != n_labels:
        raise EmbedclfError(f"{what}: {Y.shape[1]} label columns but {n_labels} label names")
    if values.dtype.kind not in "biuf" or not ((values == 0) | (values == 1)).all():
        raise EmbedclfError(f"{what}: a label matrix must hold only 0 and 1")
    Y = sp.csr_matrix(Y, dtype=np.int32)
    Y.eliminate_zeros()
    return Y


def make_rule(antecedent: str, consequent: str, confidence, support, joint) -> dict:
    """One rule A -> B as stored: confidence P(B|A), support |A|, joint |A and B|."""
    return {"antecedent": antecedent, "consequent": consequent, "confidence": float(confidence),
            "support": int(support), "joint": int(joint)}
