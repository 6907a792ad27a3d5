"""Hybrid's TF-IDF weight chosen on validation data, when ``fit`` tunes (``--tune-thresholds``) and no
``--tfidf-weight`` was given.

Each weight of :data:`~embedclf.features.TFIDF_WEIGHT_GRID` gets one head fit on the same embeddings and
the same fitted vectoriser (a weight only scales the TF-IDF block), scored on validation the way ``fit``
scores its model; the best is kept, fitted. What to score by, per target, is what its decision maximises:
the ``--tune-for`` F1 of a multi-label target, the accuracy of a multi-class one (averaged over targets).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

from embedclf.features import DEFAULT_TFIDF_WEIGHT, TFIDF_WEIGHT_GRID
from embedclf.features.hybrid import join_blocks
from embedclf.labels import MULTILABEL, LabelSpace

SHOWN = {"micro_f1": "micro-F1", "macro_f1": "macro-F1", "accuracy": "accuracy"}


def target_metrics(space: LabelSpace, tune_for: str) -> dict[str, str]:
    """Per target name, the validation metric a weight is chosen by."""
    return {t.name: f"{tune_for}_f1" if t.kind == MULTILABEL else "accuracy" for t in space.targets}


def validation_value(validation: dict, metrics: dict[str, str]) -> float:
    """The mean over targets of each one's metric in ``validation`` (``fit``'s per-target headline metrics)."""
    return sum(validation[name].get(key) or 0.0 for name, key in metrics.items()) / len(metrics)


def metric_label(metrics: dict[str, str]) -> str:
    label = "/".join(sorted({SHOWN[key] for key in metrics.values()}))
    return label if len(metrics) == 1 else f"{label} (mean of {len(metrics)} targets)"


@dataclass
class WeightChoice:
    """The chosen ``weight`` with its ``head`` fitted at it, and each weight's validation score and fit time."""

    weight: float
    head: object
    metric: str
    scores: dict[float, float] = field(default_factory=dict)
    fit_seconds: dict[float, float] = field(default_factory=dict)

    def summary(self) -> str:
        """e.g. ``tfidf weight: 2 (validation micro-F1 0.571; 0.5: 0.560, 1: 0.566)``."""
        others = ", ".join(f"{w:g}: {s:.3f}" for w, s in self.scores.items() if w != self.weight)
        return f"tfidf weight: {self.weight:g} (validation {self.metric} {self.scores[self.weight]:.3f}; {others})"

    def record(self) -> dict:
        """What the model folder keeps (``info.tfidf_weight``): the choice, the metric, every weight tried."""
        return {"chosen": self.weight, "metric": self.metric,
                "tried": [{"weight": w, "validation": round(s, 4), "fit_seconds": round(self.fit_seconds[w], 3)}
                          for w, s in self.scores.items()]}


def choose_tfidf_weight(head, train_blocks, valid_blocks, Y, fit_params: dict,
                        score: Callable[[object, object], float], metric: str,
                        grid: tuple[float, ...] | None = None) -> WeightChoice:
    """Fit a clone of ``head`` (its settings, ``n_jobs`` included) on ``train_blocks`` (embeddings, TF-IDF) joined
    at each weight of ``grid``, ``score(fitted_head, X_valid)`` it, and keep the best; ties go to the weight
    nearest the default."""
    from sklearn.base import clone

    dense, terms = train_blocks
    choice = WeightChoice(weight=math.nan, head=None, metric=metric)
    best = None
    for weight in grid or TFIDF_WEIGHT_GRID:
        candidate = clone(head)
        start = time.perf_counter()
        candidate.fit(join_blocks(dense, terms, sparse_weight=weight), Y, **fit_params)
        choice.fit_seconds[weight] = time.perf_counter() - start
        choice.scores[weight] = score(candidate, join_blocks(*valid_blocks, sparse_weight=weight))
        rank = (choice.scores[weight], -abs(math.log(weight / DEFAULT_TFIDF_WEIGHT)))
        if best is None or rank > best:
            best, choice.weight, choice.head = rank, weight, candidate
    return choice
