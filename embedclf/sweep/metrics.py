"""The ranking metric of a sweep (``--metric``): names on the command line, and one number per report.

Reports come from :func:`embedclf.evaluate.evaluate`; this module only picks from them. A metric
defined per target (micro-F1, accuracy, ...) is averaged over the targets of a multi-output task;
``exact-match`` is the multi-output report's own. A metric the task's targets do not have is
refused before any work, naming the ones that apply.
"""

from __future__ import annotations

from embedclf.errors import EmbedclfError
from embedclf.labels import MULTICLASS, MULTILABEL, MULTIOUTPUT, LabelSpace

# --metric name -> the report's key
METRICS = {"micro-f1": "micro_f1", "macro-f1": "macro_f1", "weighted-f1": "weighted_f1", "samples-f1": "samples_f1",
           "accuracy": "accuracy", "subset-accuracy": "subset_accuracy", "jaccard": "jaccard",
           "hamming-loss": "hamming_loss", "macro-roc-auc": "macro_roc_auc", "exact-match": "exact_match"}
LOWER_IS_BETTER = {"hamming_loss"}
BY_KIND = {
    MULTICLASS: {"micro_f1", "macro_f1", "weighted_f1", "accuracy", "macro_roc_auc"},
    MULTILABEL: {"micro_f1", "macro_f1", "weighted_f1", "samples_f1", "subset_accuracy", "jaccard", "hamming_loss",
                 "macro_roc_auc"},
}


def metric_key(name: str) -> str:
    if name not in METRICS:
        raise EmbedclfError(f"--metric {name!r} is not one of: {', '.join(METRICS)}")
    return METRICS[name]


def check_metric(space: LabelSpace, name: str) -> str:
    """The report key of ``--metric name``, or a one-line refusal if this task's targets lack it."""
    key = metric_key(name)
    if key == "exact_match":
        if space.task != MULTIOUTPUT:
            raise EmbedclfError(f"--metric exact-match is for multi-output tasks; this one is {space.task}")
        return key
    lacking = [t for t in space.targets if key not in BY_KIND[t.kind]]
    if lacking:
        usable = sorted(set.intersection(*(BY_KIND[t.kind] for t in space.targets)))
        names = [n for n, k in METRICS.items() if k in usable] + (["exact-match"] if space.task == MULTIOUTPUT else [])
        raise EmbedclfError(f"--metric {name} is not defined for the {lacking[0].kind} target {lacking[0].name!r}; "
                            f"use one of: {', '.join(names)}")
    return key


def metric_value(report: dict, key: str) -> float:
    """``key`` of an evaluation report, averaged over targets; negated when lower is better (so higher wins)."""
    if key == "exact_match":
        return float(report["exact_match"])
    values = [target.get(key) for target in report["targets"].values()]
    value = sum(v or 0.0 for v in values) / len(values)
    return -value if key in LOWER_IS_BETTER else value


def headline(report: dict) -> dict:
    """The scalar metrics of a report per target (and exact match): what a leaderboard row keeps."""
    out = {name: {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                  or v is None}
           for name, metrics in report["targets"].items()}
    if "exact_match" in report:
        out["exact_match"] = report["exact_match"]
    return out


def summary_metrics(metrics: dict) -> dict:
    """Headline metrics averaged over targets (a leaderboard's columns): ``{micro_f1: ..., ...}``."""
    targets = [m for m in metrics.values() if isinstance(m, dict)]
    keys = [k for k in ("micro_f1", "macro_f1", "weighted_f1", "accuracy", "samples_f1", "subset_accuracy")
            if all(k in t for t in targets)]
    out = {k: sum(t[k] or 0.0 for t in targets) / len(targets) for k in keys}
    if "exact_match" in metrics:
        out["exact_match"] = metrics["exact_match"]
    return out
