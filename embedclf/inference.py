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


def load_classifier(model_dir, *, encoder_overrides: dict | None = None, cache=None, cooccur=None) -> TextClassifier:
    """A model folder ready to predict: ``encoder_overrides`` (model, device, batch_size, backend, precision;
    None keeps the model's) change how it encodes, ``cooccur`` replaces its co-occurrence rules."""
    overrides = {k: v for k, v in (encoder_overrides or {}).items() if v is not None}
    classifier = TextClassifier.load(model_dir, cache=cache, **overrides)
    if cooccur is not None:
        from embedclf.postprocess.model_rules import check_rules_fit
        from embedclf.postprocess.rules import CooccurrenceRules

        classifier.rules = CooccurrenceRules.load(cooccur)
        check_rules_fit(classifier.rules, classifier.space, cooccur)
    return classifier


def data_options_for(classifier: TextClassifier, overrides: dict | None = None):
    """The data options the model was fitted with, with the given ``overrides`` (None: keep) on top."""
    from dataclasses import replace

    return replace(classifier.data_options, **{k: v for k, v in (overrides or {}).items() if v is not None})


def evaluate_file(model_dir, path, *, data_overrides: dict | None = None, encoder_overrides: dict | None = None,
                  cache=None, cooccur=None, report_path=None, say: Callable[[str], None] | None = None):
    """``embedclf evaluate``: ``(classifier, report)`` of the model folder on labelled data at ``path``;
    the report is also written as JSON to ``report_path`` when given."""
    import json

    from embedclf.io import atomic_write_text

    say = say or (lambda message: None)
    classifier = load_classifier(model_dir, encoder_overrides=encoder_overrides, cache=cache, cooccur=cooccur)
    dataset = data_options_for(classifier, data_overrides).load(path, require_labels=True).require_texts()
    say(dataset.summary())
    report = evaluate_dataset(classifier, dataset, say=say)
    say(f"embeddings: {classifier.encoding_line()}")
    if report_path is not None:
        atomic_write_text(report_path, json.dumps(report, indent=2))
        say(f"wrote report to {report_path}")
    return classifier, report
