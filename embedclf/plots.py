"""Pictures of an evaluation (``evaluate --plots DIR``): PNGs a person reads at a glance.

Per target: F1 by label with its support; the confusion matrix (multi-class); precision-recall
curves of the most frequent labels; F1 against the threshold where thresholds were tuned (with the
tuned one marked); and, when co-occurrence rules are used, the label co-occurrence heat map with
the rules boxed. Everything is drawn on matplotlib ``Figure`` objects with the Agg canvas (no
pyplot state, no display) from the arrays the evaluation scored, and written atomically.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from embedclf.labels import MULTICLASS, MULTILABEL

MOST = 40  # labels in a bar chart
CURVES = 6  # labels with a precision-recall or threshold curve
CONFUSED = 20  # classes in a confusion matrix (the rest pooled as "(other)")
HEAT = 25  # labels in the co-occurrence heat map


def write_plots(directory, classifier, report: dict, Y_true: np.ndarray, scores: np.ndarray,
                Y_pred: np.ndarray) -> list[Path]:
    """Every picture that applies to this evaluation, in ``directory``; returns their paths."""
    directory = Path(directory)
    written = []
    tuned = bool(classifier.info.get("validation", {}).get("tuned_thresholds"))
    for target, block in zip(classifier.space.targets, classifier.space.slices):
        stats = report["targets"][target.name]
        per = stats.get("per_class") or stats.get("per_label") or {}
        T, S, P = Y_true[:, block], scores[:, block], Y_pred[:, block]
        name = _safe(target.name)
        written.append(_save(_f1_bars(target.name, per), directory / f"f1-{name}.png"))
        if target.kind == MULTICLASS:
            written.append(_save(_confusion(target.name, target.classes, T, P), directory / f"confusion-{name}.png"))
        written.append(_save(_pr_curves(target.name, target.classes, T, S), directory / f"pr-{name}.png"))
        if tuned and target.kind == MULTILABEL:
            figure = _threshold_curves(target.name, target.classes, T, S, classifier.thresholds[block])
            written.append(_save(figure, directory / f"thresholds-{name}.png"))
        if classifier.rules is not None and target.kind == MULTILABEL:
            figure = _cooccurrence(target.name, target.classes, T, classifier.rules)
            written.append(_save(figure, directory / f"cooccurrence-{name}.png"))
    return written


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: Path) -> Path:
    from embedclf.io import atomic_write_bytes

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "target"


def _clip(name: str, width: int = 28) -> str:
    return name if len(name) <= width else name[:width - 1] + "…"


def _f1_bars(target: str, per: dict):
    """F1 per label, the most supported first, with ``n=support`` beside each bar."""
    ordered = sorted(per.items(), key=lambda item: (-item[1]["support"], str(item[0])))[:MOST]
    figure = _figure(8, 1.0 + 0.26 * max(len(ordered), 1))
    ax = figure.add_subplot()
    rows = range(len(ordered))[::-1]
    ax.barh(list(rows), [s["f1"] for _, s in ordered], color="tab:blue")
    ax.set_yticks(list(rows), [_clip(str(label)) for label, _ in ordered], fontsize=8)
    for y, (_, stats) in zip(rows, ordered):
        ax.text(min(stats["f1"], 1.0) + 0.01, y, f"F1 {stats['f1']:.2f}  n={stats['support']:,}", va="center",
                fontsize=7)
    ax.set_xlim(0, 1.25)
    ax.set_ylim(-0.6, len(ordered) - 0.4)
    ax.set_xlabel("F1")
    more = f" (the {len(ordered)} most frequent of {len(per)})" if len(per) > len(ordered) else ""
    ax.set_title(f"{target}: F1 per label{more}; n = support", fontsize=10)
    return figure


def _square_heat_map(values: np.ndarray, names: list[str], cmap: str):
    """A label x label matrix of shares in [0, 1], sized so that its tick labels never overlap."""
    size = 2.5 + 0.42 * len(names)
    figure = _figure(size + 1.5, size)
    ax = figure.add_subplot()
    image = ax.imshow(values, cmap=cmap, vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    return figure, ax, image


def _confusion(target: str, classes, T: np.ndarray, P: np.ndarray):
    """Rows: true class, columns: predicted; shares of each true class, counts written in the cells."""
    known = T.any(axis=1) & P.any(axis=1)
    y_true, y_pred = T[known].argmax(axis=1), P[known].argmax(axis=1)
    order = np.argsort(-np.bincount(y_true, minlength=len(classes)), kind="stable")
    kept = order[:CONFUSED]
    index = np.full(len(classes), len(kept))
    index[kept] = np.arange(len(kept))
    names = [_clip(str(classes[i]), 22) for i in kept] + (["(other)"] if len(classes) > len(kept) else [])
    counts = np.zeros((len(names), len(names)), dtype=int)
    np.add.at(counts, (index[y_true], index[y_pred]), 1)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, ax, image = _square_heat_map(shares, names, "Blues")
    for (i, j), count in np.ndenumerate(counts):
        if count:
            ax.text(j, i, f"{count:,}", ha="center", va="center", fontsize=6 if len(names) > 12 else 8,
                    color="white" if shares[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ax.set_title(f"{target}: confusion matrix ({int(known.sum()):,} rows)", fontsize=10)
    return figure


def _frequent(T: np.ndarray, n: int) -> list[int]:
    support = T.sum(axis=0)
    return [int(j) for j in np.argsort(-support, kind="stable")[:n] if support[j] > 0]


def _pr_curves(target: str, classes, T: np.ndarray, S: np.ndarray):
    """Precision against recall for the most frequent labels, with average precision in the legend."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    figure = _figure(7, 5.5)
    ax = figure.add_subplot()
    for j in _frequent(T, CURVES):
        precision, recall, _ = precision_recall_curve(T[:, j], S[:, j])
        ap = average_precision_score(T[:, j], S[:, j])
        ax.plot(recall, precision, label=f"{_clip(str(classes[j]), 22)} (AP {ap:.2f}, n={int(T[:, j].sum()):,})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="label", title_fontsize=8)
    ax.set_title(f"{target}: precision-recall of the {min(CURVES, len(classes))} most frequent labels", fontsize=10)
    return figure


def _threshold_curves(target: str, classes, T: np.ndarray, S: np.ndarray, thresholds: np.ndarray):
    """F1 on this data against the decision threshold, for the most frequent labels; dots at the tuned thresholds."""
    grid = np.linspace(0.01, 0.99, 99)
    figure = _figure(7, 5.5)
    ax = figure.add_subplot()
    for j in _frequent(T, CURVES):
        truth = T[:, j].astype(bool)[:, None]
        decided = S[:, j][:, None] >= grid[None, :]
        tp = (decided & truth).sum(axis=0)
        f1 = 2 * tp / np.maximum(decided.sum(axis=0) + truth.sum(), 1)
        line, = ax.plot(grid, f1, label=f"{_clip(str(classes[j]), 22)} (tuned {thresholds[j]:.2f})")
        at = int(np.abs(grid - thresholds[j]).argmin())
        ax.plot([thresholds[j]], [f1[at]], "o", color=line.get_color())
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("decision threshold")
    ax.set_ylabel("F1 on this data")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="label (dot: tuned threshold)",
              title_fontsize=8)
    ax.set_title(f"{target}: F1 against threshold, thresholds tuned on validation", fontsize=10)
    return figure


def _cooccurrence(target: str, classes, T: np.ndarray, rules):
    """P(column label | row label) in this data's true labels; the model's rules A → B boxed."""
    from matplotlib.patches import Rectangle

    position = {str(c): i for i, c in enumerate(classes)}
    involved = [position[n] for n in sorted(rules._involved()) if n in position]
    support = T.sum(axis=0)
    shown = sorted(involved, key=lambda j: -support[j])[:HEAT]
    shown += [j for j in _frequent(T, HEAT) if j not in shown][:max(0, 12 - len(shown))]  # context for few rules
    names = [_clip(str(classes[j]), 22) for j in shown]
    sub = T[:, shown].astype(np.int64)
    joint = sub.T @ sub
    conditional = joint / np.maximum(np.diag(joint)[:, None], 1)
    np.fill_diagonal(conditional, np.nan)
    figure, ax, image = _square_heat_map(conditional, names, "viridis")
    index = {str(classes[j]): k for k, j in enumerate(shown)}
    boxed = 0
    for rule in rules.rules_:
        a, b = index.get(rule["antecedent"]), index.get(rule["consequent"])
        if a is not None and b is not None:
            ax.add_patch(Rectangle((b - 0.5, a - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5))
            boxed += 1
    ax.set_xlabel("B (co-occurring label)")
    ax.set_ylabel("A (given label)")
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="P(B | A) in the true labels")
    ax.set_title(f"{target}: label co-occurrence; red boxes: the {boxed} rule{'s' * (boxed != 1)} A → B among "
                 "these labels",
                 fontsize=10)
    return figure
