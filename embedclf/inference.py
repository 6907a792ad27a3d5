"""Applying a fitted classifier to a data set: prediction tables and evaluation reports."""

from __future__ import annotations

from typing import Callable

import numpy as np

from embedclf.data import Dataset
from embedclf.labels import labelled_matrix_and_unseen
from embedclf.model import TextClassifier


def predictions_frame(classifier: TextClassifier, dataset: Dataset, Y: np.ndarray, scores: np.ndarray,
                      added: np.ndarray | None = None, sep: str = "|"):
    """One row per text: its row in the input, the labels per target, then a probability per label."""
    import pandas as pd

    space = classifier.space
    columns = {"row": dataset.rows + 1}
    for target, labels in zip(space.targets, space.decode(Y)):
        columns[target.name] = [sep.join(row) for row in labels]
    if added is not None:
        for target, labels in zip(space.targets, space.decode(added)):
            if target.kind == "multilabel":
                columns[f"{target.name} (added by rules)"] = [sep.join(row) for row in labels]
    names = space.column_names()
    for column, name in enumerate(names):
        columns[f"p({name})"] = np.round(scores[:, column].astype(np.float64), 5)
    return pd.DataFrame(columns)


def predict_dataset(classifier: TextClassifier, dataset: Dataset):
    """Scores, decisions and the labels co-occurrence rules added (or None)."""
    X = classifier.embed(dataset.texts)
    scores = classifier.scores(X)
    Y, added = classifier.decide(scores)
    return scores, Y, added


def evaluate_dataset(classifier: TextClassifier, dataset: Dataset, say: Callable[[str], None] | None = None) -> dict:
    """The evaluation report; with co-occurrence rules also the report before they were applied."""
    from embedclf.evaluate import evaluate

    Y_true, unseen = labelled_matrix_and_unseen(classifier.space, dataset, say)
    X = classifier.embed(dataset.texts)
    scores = classifier.scores(X)
    Y_pred, added = classifier.decide(scores)
    report = evaluate(classifier.space, Y_true, Y_pred, scores)
    if added is not None:
        before, _ = classifier.decide(scores, rules=False)
        report["before_rules"] = evaluate(classifier.space, Y_true, before, scores)
        report["rules"] = {"labels_added": int(added.sum()), "rows_changed": int(added.any(axis=1).sum())}
    report["unseen_labels"] = {t: dict(c) for t, c in unseen.items()}
    return report
