"""Applying a fitted classifier to a data set: prediction tables and evaluation reports."""

from __future__ import annotations

from typing import Callable

import numpy as np

from embedclf.data import Dataset
from embedclf.labels import labelled_matrix_and_unseen
from embedclf.model import TextClassifier


def predictions_frame(classifier: TextClassifier, dataset: Dataset, Y: np.ndarray, scores: np.ndarray,
                      added: np.ndarray | None = None, sep: str = "|"):
    """One row per text: its row in the input (and id), the labels per target, then a probability per label."""
    import pandas as pd

    space = classifier.space
    labels, probabilities = prediction_columns(space, Y, scores, added)
    columns = {"row": dataset.rows + 1}
    ids = dataset.ids()
    if ids is not None and dataset.id_col not in [t.name for t in space.targets] + ["row"]:
        columns[dataset.id_col] = ids
    columns |= {name: [sep.join(row) for row in rows] for name, rows in labels.items()}
    return pd.DataFrame(columns | probabilities)


def prediction_columns(space, Y: np.ndarray, scores: np.ndarray, added: np.ndarray | None = None):
    """The columns of a prediction row, shared by ``predict``'s table and ``serve``'s ``/v1/predict``:
    the labels per target (and, with co-occurrence rules, those the rules added), as lists per row;
    then ``p(label)`` per label column, rounded to 5 places."""
    labels = {}
    for target, rows in zip(space.targets, space.decode(Y)):
        labels[target.name] = rows
    if added is not None:
        for target, rows in zip(space.targets, space.decode(added)):
            if target.kind == "multilabel":
                labels[f"{target.name} (added by rules)"] = rows
    probabilities = {f"p({name})": np.round(scores[:, column].astype(np.float64), 5)
                     for column, name in enumerate(space.column_names())}
    return labels, probabilities


def predict_dataset(classifier: TextClassifier, dataset: Dataset):
    """Scores, decisions and the labels co-occurrence rules added (or None)."""
    X = classifier.embed(dataset.texts)
    scores = classifier.scores(X)
    Y, added = classifier.decide(scores)
    return scores, Y, added


def evaluate_dataset(classifier: TextClassifier, dataset: Dataset, say: Callable[[str], None] | None = None) -> dict:
    """The evaluation report; with co-occurrence rules also the report before they were applied."""
    return evaluate_arrays(classifier, dataset, say)[0]


def evaluate_arrays(classifier: TextClassifier, dataset: Dataset, say: Callable[[str], None] | None = None):
    """``(report, Y_true, scores, Y_pred)``: the report of :func:`evaluate_dataset` and what it scored
    (the pictures of ``evaluate --plots`` are drawn from the same arrays)."""
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
    return report, Y_true, scores, Y_pred


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
    """The data options the model was fitted with, with the given ``overrides`` (None: keep) on top. The id
    column is the file's business, not the model's: ``id_col`` comes from the overrides (or a column named id)."""
    from dataclasses import replace

    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    return replace(classifier.data_options, **({"id_col": None} | given))


def evaluate_file(model_dir, path, *, data_overrides: dict | None = None, encoder_overrides: dict | None = None,
                  cache=None, cooccur=None, report_path=None, plots_dir=None, tracking=None,
                  say: Callable[[str], None] | None = None):
    """``embedclf evaluate``: ``(classifier, report)`` of the model folder on labelled data at ``path``;
    the report is also written as JSON to ``report_path`` when given, and pictures to ``plots_dir``."""
    import json

    from embedclf.io import atomic_write_text

    say = say or (lambda message: None)
    if plots_dir is not None:
        from embedclf.io import check_output_dir

        check_output_dir(plots_dir, "--plots")
    classifier = load_classifier(model_dir, encoder_overrides=encoder_overrides, cache=cache, cooccur=cooccur)
    dataset = data_options_for(classifier, data_overrides).load(path, require_labels=True).require_texts()
    say(dataset.summary())
    report, Y_true, scores, Y_pred = evaluate_arrays(classifier, dataset, say=say)
    say(f"embeddings: {classifier.encoding_line()}")
    if plots_dir is not None:
        from embedclf.plots import write_plots

        written = write_plots(plots_dir, classifier, report, Y_true, scores, Y_pred)
        say(f"wrote {len(written)} pictures to {plots_dir}")
    if report_path is not None:
        atomic_write_text(report_path, json.dumps(report, indent=2))
        say(f"wrote report to {report_path}")
    if tracking is not None:
        from embedclf.track_runs import track_evaluate

        run_id = track_evaluate(tracking, classifier, report, model_dir, path, report_path, plots_dir)
        say(f"tracked as MLflow run {run_id}")
    return classifier, report
