"""Scoring predictions: one function every command calls, so every number is computed the same way.

``evaluate`` takes the label space and the 0/1 matrices (truth, decisions) plus optional per-column
scores, and returns a plain JSON-serialisable dict with one entry per target. ``format_report``
and ``compare_reports`` turn such dicts into the text ``embedclf`` prints.

Conventions worth knowing:

* a multi-class row whose true block is all zeros (its label was unseen at fit time) is always an
  error: for accuracy and ``exact_match``, and for every averaged F1. It is counted in
  ``unseen_rows``, counts as a false positive of whichever class was predicted, and as a false
  negative of a pseudo-class ``UNSEEN`` ("(unseen)") that is never predicted. When there are such
  rows, that pseudo-class takes part in micro, macro and weighted F1 and in
  ``classification_report`` (its F1 is 0, its support the unseen rows), so the averages cannot
  exceed what the seen rows earn; ``per_class`` and the per-class ROC-AUCs stay the model's classes;
* in a multi-label block an unseen label has no column: it is dropped from the truth, not scored
  (a row whose only labels were unseen reads as a row with no labels);
  ``format_report`` says so with the counts in ``report["unseen_labels"]`` (set by
  :func:`embedclf.inference.evaluate_dataset`);
* undefined ratios are 0 (``zero_division=0``), except ROC-AUC, which is ``None`` for a column
  whose truth is constant and when no scores were given;
* values are full-precision floats; rounding happens only in the text.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn import metrics
from sklearn.exceptions import UndefinedMetricWarning

from embedclf.labels import MULTICLASS, MULTILABEL, MULTIOUTPUT, LabelSpace

UNSEEN = "(unseen)"  # the pseudo-class of multi-class rows whose true label was unseen at fit time

# Headline metrics per target kind, in the order they are printed and compared.
HEADLINE = {
    MULTICLASS: ("accuracy", "macro_f1", "weighted_f1", "micro_f1", "macro_roc_auc", "unseen_rows"),
    MULTILABEL: ("micro_f1", "macro_f1", "weighted_f1", "samples_f1", "subset_accuracy", "hamming_loss",
                 "jaccard", "micro_roc_auc", "macro_roc_auc", "rows_with_no_prediction"),
}


def evaluate(space: LabelSpace, Y_true: np.ndarray, Y_pred: np.ndarray,
             scores: np.ndarray | None = None) -> dict:
    """Metrics of ``Y_pred`` against ``Y_true``, per target and (multi-output) across targets."""
    Y_true, Y_pred = np.asarray(Y_true), np.asarray(Y_pred)
    expected = (Y_true.shape[0], space.n_columns)
    for name, array in (("Y_true", Y_true), ("Y_pred", Y_pred), ("scores", scores)):
        if array is not None and np.shape(array) != expected:
            raise ValueError(f"{name} has shape {np.shape(array)}; expected {expected}")
    if Y_true.shape[0] == 0:
        raise ValueError("nothing to evaluate: 0 rows")
    Y_true, Y_pred = (Y_true > 0).astype(np.int8), (Y_pred > 0).astype(np.int8)
    scores = None if scores is None else np.asarray(scores, dtype=float)

    report: dict = {"task": space.task, "n": int(Y_true.shape[0]), "targets": {}}
    rows_right = np.ones(Y_true.shape[0], dtype=bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for target, block in zip(space.targets, space.slices):
            score_block = None if scores is None else scores[:, block]
            score_target = _multiclass if target.kind == MULTICLASS else _multilabel
            result, right = score_target(target.classes, Y_true[:, block], Y_pred[:, block], score_block)
            report["targets"][target.name] = {"kind": target.kind, "n_classes": len(target.classes), **result}
            rows_right &= right
    if space.task == MULTIOUTPUT:
        report["exact_match"] = float(rows_right.mean())
    else:
        report["metrics"] = dict(report["targets"][space.targets[0].name])
    return report


def _multiclass(classes, T, P, S):
    """One-hot block: label vectors with the pseudo-class ``len(classes)`` for an unseen true label and -2
    for an empty prediction; the pseudo-class is scored (in the averages) only when some row has it."""
    n = len(classes)
    y_true = np.where(T.any(axis=1), T.argmax(axis=1), n)
    y_pred = np.where(P.any(axis=1), P.argmax(axis=1), -2)
    unseen_rows = int((y_true == n).sum())
    labels = list(range(n + 1 if unseen_rows else n))  # those the averages run over
    names = [str(c) for c in classes] + ([UNSEEN] if unseen_rows else [])
    right = y_true == y_pred
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(n)), average=None, zero_division=0)
    aucs = _column_aucs(T, S)
    per_class = {
        name: {"support": int(support[i]), "precision": float(precision[i]), "recall": float(recall[i]),
               "f1": float(f1[i]), "accuracy": float(recall[i]), "predicted": int((y_pred == i).sum()),
               "roc_auc": aucs[i]}
        for i, name in enumerate(classes)}
    averaged = {f"{avg}_f1": float(metrics.f1_score(y_true, y_pred, labels=labels, average=avg, zero_division=0))
                for avg in ("macro", "weighted", "micro")}
    result = {
        "accuracy": float(right.mean()),
        **averaged,
        "macro_roc_auc": _mean_defined(aucs),
        "unseen_rows": unseen_rows,
        "per_class": per_class,
        "classification_report": _plain(metrics.classification_report(
            y_true, y_pred, labels=labels, target_names=names, output_dict=True, zero_division=0)),
    }
    return result, right


def _multilabel(classes, T, P, S):
    """Multi-label block, scored with sklearn's indicator-matrix metrics."""
    k = len(classes)
    labels = list(range(k))
    # sklearn reads a one-column indicator as binary labels; an all-zero extra column, excluded
    # through ``labels``, keeps it multi-label without changing any count.
    Tk, Pk = (np.hstack([T, np.zeros((len(T), 1), np.int8)]), np.hstack([P, np.zeros((len(P), 1), np.int8)])) \
        if k == 1 else (T, P)

    def avg(fn, average):
        return float(fn(Tk, Pk, labels=labels, average=average, zero_division=0))

    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        Tk, Pk, labels=labels, average=None, zero_division=0)
    aucs = _column_aucs(T, S)
    predicted = P.sum(axis=0)
    per_label = {
        name: {"support": int(support[i]), "predicted": int(predicted[i]), "precision": float(precision[i]),
               "recall": float(recall[i]), "f1": float(f1[i]), "roc_auc": aucs[i]}
        for i, name in enumerate(classes)}
    micro_auc = None
    if S is not None and 0 < T.sum() < T.size:
        micro_auc = float(metrics.roc_auc_score(T.ravel(), S.ravel()))
    right = (T == P).all(axis=1)
    result = {
        "micro_f1": avg(metrics.f1_score, "micro"),
        "macro_f1": avg(metrics.f1_score, "macro"),
        "weighted_f1": avg(metrics.f1_score, "weighted"),
        "samples_f1": avg(metrics.f1_score, "samples"),
        "micro_precision": avg(metrics.precision_score, "micro"),
        "macro_precision": avg(metrics.precision_score, "macro"),
        "micro_recall": avg(metrics.recall_score, "micro"),
        "macro_recall": avg(metrics.recall_score, "macro"),
        "hamming_loss": float(metrics.hamming_loss(T.ravel(), P.ravel())),
        "subset_accuracy": float(right.mean()),
        "jaccard": avg(metrics.jaccard_score, "samples"),
        "micro_roc_auc": micro_auc,
        "macro_roc_auc": _mean_defined(aucs),
        "label_cardinality_true": float(T.sum(axis=1).mean()),
        "label_cardinality_pred": float(P.sum(axis=1).mean()),
        "rows_with_no_prediction": int((P.sum(axis=1) == 0).sum()),
        "per_label": per_label,
    }
    return result, right


def _column_aucs(T, S) -> list[float | None]:
    """One-vs-rest ROC-AUC per column; None where there are no scores or the truth is constant."""
    if S is None:
        return [None] * T.shape[1]
    return [float(metrics.roc_auc_score(T[:, j], S[:, j])) if 0 < T[:, j].sum() < len(T) else None
            for j in range(T.shape[1])]


def _mean_defined(values) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def _plain(value):
    """numpy scalars and containers as built-in types, so ``json.dumps`` takes the report."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


# --- text -------------------------------------------------------------------------------------

def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{value:.4f}"


def _table(header: list[str], rows: list[list[str]], indent: str = "  ", left: int = 1) -> list[str]:
    """Columns aligned: the first ``left`` ones to the left (names), the rest to the right (numbers)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [indent + "  ".join(cell.ljust(w) if i < left else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
            for row in [header, *rows]]


def _clip(name: str, width: int = 32) -> str:
    return name if len(name) <= width else name[:width - 2] + ".."


def format_report(report: dict, top: int = 30) -> str:
    """The report as text: headline metrics per target, then its largest classes by support."""
    head = f"task: {report['task']}  rows: {report['n']}"
    if "exact_match" in report:
        head += f"  exact_match: {_fmt(report['exact_match'])}"
    lines = [head]
    for name, target in report["targets"].items():
        kind = target["kind"]
        lines += ["", f"{name} ({kind}, {target['n_classes']} classes)"]
        keys = [k for k in HEADLINE[kind] if k in target]
        for start in range(0, len(keys), 6):
            chunk = keys[start:start + 6]
            lines += _table(chunk, [[_fmt(target[k]) for k in chunk]], left=0)
        lines += _unseen_lines(kind, (report.get("unseen_labels") or {}).get(name), target.get("unseen_rows"))
        per = target.get("per_class") or target.get("per_label") or {}
        ordered = sorted(per.items(), key=lambda item: (-item[1]["support"], str(item[0])))
        columns = ["support", "predicted", "precision", "recall", "f1"]
        columns += ["accuracy"] if kind == MULTICLASS else []
        columns += ["roc_auc"]
        rows = [[_clip(str(label))] + [_fmt(stats.get(c)) for c in columns] for label, stats in ordered[:top]]
        lines += [""] + _table(["class" if kind == MULTICLASS else "label", *columns], rows)
        if len(ordered) > top:
            noun = "classes" if kind == MULTICLASS else "labels"
            lines.append(f"  ... {len(ordered) - top} of {len(ordered)} {noun} left out (smallest support)")
    return "\n".join(lines)


def _unseen_lines(kind: str, counts: dict | None, unseen_rows: int | None, shown: int = 8) -> list[str]:
    """What became of labels unseen at fit time: errors (multi-class) or not scored (multi-label)."""
    if not counts and not unseen_rows:
        return []
    if counts:
        ordered = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
        more = f" and {len(ordered) - shown} more" if len(ordered) > shown else ""
        listed = ": " + ", ".join(f"{_clip(str(label))} ({n:,})" for label, n in ordered[:shown]) + more
        total = sum(counts.values())
    else:
        listed, total = "", unseen_rows
    if kind == MULTICLASS:
        return [f"  {unseen_rows or total:,} rows with a label unseen at fit time, counted as errors in every "
                f"metric (pseudo-class {UNSEEN!r} in the F1 averages){listed}"]
    return [f"  {total:,} labels unseen at fit time have no column and are not scored{listed}"]


def compare_reports(before: dict, after: dict) -> str:
    """Headline metrics of two reports side by side, with the change (after - before)."""
    rows = []

    def add(target, metric, a, b):
        delta = None if a is None or b is None else b - a
        shown = "-" if delta is None else f"{delta:+d}" if isinstance(delta, int) else f"{delta:+.4f}"
        rows.append([target, metric, _fmt(a), _fmt(b), shown])

    if "exact_match" in before or "exact_match" in after:
        add("(all)", "exact_match", before.get("exact_match"), after.get("exact_match"))
    for name, target in before["targets"].items():
        other = after["targets"].get(name, {})
        for metric in HEADLINE[target["kind"]]:
            add(name, metric, target.get(metric), other.get(metric))
    return "\n".join(_table(["target", "metric", "before", "after", "delta"], rows, indent="", left=2))


def format_evaluation(report: dict, rules=None, top: int = 30) -> str:
    """What ``embedclf evaluate`` prints: the report, and with co-occurrence rules the before/after table."""
    text = format_report(report, top=top)
    if "before_rules" in report:
        changed = report["rules"]
        text += (f"\n\nco-occurrence rules ({rules.summary() if rules is not None else 'stored with the model'}): "
                 f"added {changed['labels_added']:,} labels on {changed['rows_changed']:,} rows\n")
        text += compare_reports(report["before_rules"], report)
    return text
