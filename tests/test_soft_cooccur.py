"""Soft co-occurrence: scores raised towards p(A)·P(B|A), strength tuned on validation."""

from __future__ import annotations

import numpy as np
import pytest

from embedclf.errors import EmbedclfError
from embedclf.postprocess.soft_cooccur import SoftCooccurrence, tune_strength


def labels(n=400, seed=0):
    """Label 1 follows label 0 in 80% of its rows; label 2 is independent."""
    rng = np.random.default_rng(seed)
    Y = np.zeros((n, 3), dtype=np.int8)
    Y[:, 0] = rng.random(n) < 0.3
    Y[:, 1] = (Y[:, 0] & (rng.random(n) < 0.8)) | (rng.random(n) < 0.05)
    Y[:, 2] = rng.random(n) < 0.2
    return Y


def test_conditional_probabilities_and_raised_scores():
    Y = labels()
    soft = SoftCooccurrence(strength=1.0).fit(Y)
    expected = (Y[:, 0] & Y[:, 1]).sum() / Y[:, 0].sum()
    assert soft.conditional_[0, 1] == pytest.approx(expected, rel=1e-6) and soft.conditional_[0, 0] == 0
    scores = np.array([[0.9, 0.1, 0.1], [0.1, 0.1, 0.1]], dtype=np.float32)
    raised = soft.transform(scores)
    assert raised[0, 1] == pytest.approx(0.9 * expected, rel=1e-5)  # pulled up by a confident label 0
    assert raised[1, 1] == pytest.approx(0.1, abs=0.02)  # a weak label 0 implies little
    assert (raised >= scores).all() and np.array_equal(soft.transform(scores, 0.0), scores)
    assert raised[0, 2] == pytest.approx(max(0.1, 0.9 * soft.conditional_[0, 2]), rel=1e-5)


def test_min_support_drops_rare_antecedents():
    Y = labels()
    counts = Y.sum(axis=0)
    soft = SoftCooccurrence(min_support=int(np.sort(counts)[1]) + 1).fit(Y)  # only the most frequent label is kept
    kept = counts > np.sort(counts)[1]
    assert kept.sum() == 1 and soft.conditional_[kept].any() and not soft.conditional_[~kept].any()


def test_strength_is_tuned_on_validation_and_helps_when_labels_follow():
    Y, rng = labels(2000, seed=1), np.random.default_rng(2)
    scores = np.clip(0.5 * Y + rng.normal(0.25, 0.15, Y.shape), 0, 1).astype(np.float32)
    scores[:, 1] = np.clip(0.15 * Y[:, 1] + rng.normal(0.3, 0.15, len(Y)), 0, 1)  # label 1 barely seen

    def micro_f1(truth, s):
        decided = s >= 0.5
        tp = (decided & (truth == 1)).sum()
        return 2 * tp / max(decided.sum() + truth.sum(), 1)

    soft = SoftCooccurrence().fit(labels(2000, seed=3))
    strength, ratings = tune_strength(soft, Y, scores, micro_f1)
    assert strength > 0 and dict(ratings)[strength] > dict(ratings)[0.0]
    assert [s for s, _ in ratings] == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_bad_settings_are_one_line():
    with pytest.raises(EmbedclfError, match="strength must be from 0 to 1"):
        SoftCooccurrence(strength=2).fit(labels())
    with pytest.raises(EmbedclfError, match="0/1 label matrix"):
        SoftCooccurrence().fit(np.full((3, 3), 0.5))
