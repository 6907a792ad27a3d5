"""Picking the rule threshold on validation data: the one that most improves a model's micro-F1.

:func:`select_threshold` sweeps a grid on label matrices (pair counts made once, each threshold
only filters them); :func:`tune_rule_threshold` runs it on a fitted model's own decisions. When
no threshold beats using no rules, the answer is an empty rule set that says so.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from embedclf.errors import EmbedclfError
from embedclf.labels import LabelSpace, labelled_matrix
from embedclf.postprocess.model_rules import multilabel_target
from embedclf.postprocess.rule_inputs import RuleSettings, check_names, label_matrix
from embedclf.postprocess.rules import CooccurrenceRules, pair_stats

DEFAULT_GRID = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0)


def select_threshold(Y_train, label_names: Sequence[str], Y_valid_true, Y_valid_pred,
                     grid: Sequence[float] = DEFAULT_GRID, min_support: int = 5) -> tuple[float | None, list[dict]]:
    """The rule threshold that maximises validation micro-F1, and the whole curve.

    ``curve[0]`` is the baseline without rules (``threshold`` None), then one entry per grid value,
    ascending: ``{threshold, n_rules, micro_f1, macro_f1}``. Ties go to the higher threshold (fewer
    rules) and the baseline counts as the highest, so the answer is None when no threshold beats
    using no rules at all.
    """
    grid = _check_grid(grid, min_support)
    names = check_names(label_names, "label names")
    train = label_matrix(Y_train, len(names), "training labels")
    truth = label_matrix(Y_valid_true, len(names), "validation labels")
    predicted = label_matrix(Y_valid_pred, len(names), "validation predictions")
    if truth.shape[0] != predicted.shape[0]:
        raise EmbedclfError(f"validation labels have {truth.shape[0]} rows but predictions {predicted.shape[0]}")

    stats = pair_stats(train, min_support)  # counted once; each threshold only filters
    curve = [{"threshold": None, "n_rules": 0, **_f1_scores(truth, predicted)}]
    for threshold in grid:
        rules = CooccurrenceRules(threshold, min_support).fit_pair_stats(names, stats, train.shape[0])
        curve.append({"threshold": threshold, "n_rules": len(rules.rules_),
                      **_f1_scores(truth, rules.closed(predicted))})
    best = max(curve, key=lambda p: (p["micro_f1"], math.inf if p["threshold"] is None else p["threshold"]))
    return best["threshold"], curve


def tune_rule_threshold(train, classifier, valid, min_support: int = 5, target: str | None = None,
                        grid: Sequence[float] = DEFAULT_GRID) -> tuple[CooccurrenceRules, list[dict]]:
    """Rules learnt on ``train`` at the threshold that maximises ``classifier``'s micro-F1 on ``valid``.

    When no threshold beats applying no rules, the rule set returned is empty, with the grid's
    highest threshold, the given ``min_support`` and a ``note_`` saying why.
    """
    grid = _check_grid(grid, min_support)  # refused before the model scores anything
    train_space = LabelSpace.from_dataset(train)
    chosen, train_block = multilabel_target(train_space, target, train.path)
    names, Y_train = chosen.classes, train_space.encode(train)[0][:, train_block]
    model_target, model_block = multilabel_target(classifier.space, target, "the model")
    position = {name: model_block.start + i for i, name in enumerate(model_target.classes)}
    if not set(position) & set(names):
        raise EmbedclfError(f"{train.path}: the model has none of these {len(names)} labels")
    # the candidates are judged against the head's own decisions, without any rules the model holds
    Y_pred = classifier.decide(classifier.scores(classifier.embed(valid.texts)), rules=False)[0]
    truth = labelled_matrix(classifier.space, valid)

    def in_rule_order(M: np.ndarray) -> np.ndarray:
        out = np.zeros((len(M), len(names)), dtype=np.int8)
        for j, name in enumerate(names):
            if name in position:
                out[:, j] = M[:, position[name]]
        return out

    best, curve = select_threshold(Y_train, names, in_rule_order(truth), in_rule_order(Y_pred), grid, min_support)
    rules = CooccurrenceRules(grid[-1] if best is None else best, min_support).fit(Y_train, names)
    if best is None:
        rules = rules.without_rules(f"none of thresholds {grid[0]:g} to {grid[-1]:g} (support >= {min_support}) "
                                    f"beat the model alone on validation micro-F1 ({curve[0]['micro_f1']:.4f})")
    rules.source_ = train.path
    return rules, curve


def _check_grid(grid: Sequence[float], min_support: int) -> list[float]:
    """The grid sorted and without repeats, every value a valid threshold."""
    values = [RuleSettings(threshold, min_support).threshold for threshold in grid]
    if not values:
        raise EmbedclfError("the co-occurrence threshold grid is empty")
    return sorted({float(t) for t in values})


def _f1_scores(truth: sp.csr_matrix, predicted: sp.csr_matrix) -> dict:
    """Micro- and macro-F1 of 0/1 CSR matrices; a label never true nor predicted scores 0 (as zero_division=0)."""
    tp = np.asarray(truth.multiply(predicted).sum(axis=0), dtype=float).ravel()
    wrong = np.asarray(truth.sum(axis=0) + predicted.sum(axis=0), dtype=float).ravel() - 2 * tp
    per_label = np.divide(2 * tp, 2 * tp + wrong, out=np.zeros_like(tp), where=2 * tp + wrong > 0)
    total = 2 * tp.sum() + wrong.sum()
    return {"micro_f1": float(2 * tp.sum() / total) if total else 0.0,
            "macro_f1": float(per_label.mean()) if per_label.size else 0.0}
