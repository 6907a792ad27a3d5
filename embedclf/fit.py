"""Fitting a head on a labelled data set: encode through the cache, split, fit, tune, score validation."""

from __future__ import annotations

import inspect
import time
from typing import Callable

import numpy as np

from embedclf.data import DataOptions, Dataset
from embedclf.encode.encoder import Encoder
from embedclf.errors import EmbedclfError
from embedclf.postprocess.thresholds import OBJECTIVES
from embedclf.labels import LabelSpace, labelled_matrix
from embedclf.model import TextClassifier


def validation_split(Y: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train/validation row indices, stratified over every label column (iterative stratification,
    Sechidis et al. 2011), so rare labels land on both sides where they can."""
    if not 0 < fraction < 1:
        raise EmbedclfError(f"--valid-split must be between 0 and 1, got {fraction}")
    n_valid = int(round(len(Y) * fraction))
    if n_valid < 1 or n_valid >= len(Y):
        raise EmbedclfError(f"--valid-split {fraction} leaves no rows on one side of {len(Y)}")
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    train, valid = next(splitter.split(np.zeros(len(Y)), Y))
    return np.sort(train), np.sort(valid)


def training_splits(train: Dataset, valid: Dataset | None = None, valid_split: float | None = None,
                    tune_thresholds: bool = False, seed: int = 0, say: Callable[[str], None] | None = None,
                    tune_for: str = "macro"):
    """``(space, texts, Y, valid_texts, Y_valid)``: the label space learnt from ``train`` and the texts
    and labels to train and validate on (``valid``, a stratified ``valid_split`` of train, or none)."""
    if valid is not None and valid_split:
        raise EmbedclfError("give either --valid or --valid-split, not both")
    if tune_thresholds and valid is None and not valid_split:
        raise EmbedclfError("--tune-thresholds needs validation data: --valid FILE or --valid-split 0.1")
    if tune_for not in OBJECTIVES:
        raise EmbedclfError(f"--tune-for must be {' or '.join(OBJECTIVES)}, not {tune_for!r}")
    space = LabelSpace.from_dataset(train)
    Y = labelled_matrix(space, train, say)
    texts = list(train.texts)
    if valid is not None:
        return space, texts, Y, list(valid.texts), labelled_matrix(space, valid, say)
    if valid_split:
        rows, valid_rows = validation_split(Y, valid_split, seed)
        return space, [texts[i] for i in rows], Y[rows], [texts[i] for i in valid_rows], Y[valid_rows]
    return space, texts, Y, None, None


def fit_classifier(train: Dataset, head, encoder: Encoder, *, data_options: DataOptions | None = None,
                   valid: Dataset | None = None, valid_split: float | None = None, threshold: float = 0.5,
                   tune_thresholds: bool = False, tune_for: str = "macro", at_least_one: bool = False, seed: int = 0,
                   rules=None, say: Callable[[str], None] | None = None) -> TextClassifier:
    """Fit ``head`` on ``train``'s embeddings and return a :class:`TextClassifier`.

    Validation data (``valid``, or a stratified ``valid_split`` of train) drives MLP early stopping
    and per-label threshold tuning, and its metrics are stored with the model. ``rules``
    (co-occurrence rules) are stored with the model and applied to every prediction.
    """
    say = say or (lambda message: None)
    space, texts, Y, valid_texts, Y_valid = training_splits(train, valid, valid_split, tune_thresholds, seed, say,
                                                            tune_for)
    X = encoder.encode(texts)
    say(f"train embeddings: {encoder.last_report.summary(encoder.max_length)}")
    X_valid = None
    if valid_texts is not None:
        X_valid = encoder.encode(valid_texts)
        say(f"validation embeddings: {encoder.last_report.summary(encoder.max_length)}")

    fit_params = {"layout": space.layout}
    if X_valid is not None and "validation" in inspect.signature(head.fit).parameters:  # the MLP stops early on it
        fit_params["validation"] = (X_valid, Y_valid)
    start = time.perf_counter()
    head.fit(X, Y, **fit_params)
    fit_seconds = time.perf_counter() - start
    say(f"fitted {type(head).__name__} on {len(X):,} x {X.shape[1]} in {fit_seconds:.1f}s")

    if rules is not None:
        from embedclf.postprocess.cooccur import check_rules_fit

        check_rules_fit(rules, space, rules.source_)
    classifier = TextClassifier(encoder, head, space, data_options=data_options, thresholds=threshold,
                                at_least_one=at_least_one, rules=rules,
                                info={"train_rows": len(X), "fit_seconds": round(fit_seconds, 3),
                                      "train_file": train.path})
    if X_valid is not None:
        score_validation(classifier, Y_valid, classifier.scores(X_valid), tune_thresholds, threshold, tune_for)
    return classifier


def score_validation(classifier: TextClassifier, Y_valid: np.ndarray, scores: np.ndarray, tune_thresholds: bool,
                     threshold: float, tune_for: str = "macro") -> None:
    """Tune ``classifier``'s thresholds on validation scores if asked, and keep its validation metrics."""
    from embedclf.evaluate import evaluate
    from embedclf.postprocess.thresholds import tune_thresholds as tune

    if tune_thresholds:
        classifier.thresholds = tune(Y_valid, scores, classifier.space.layout, default=threshold, objective=tune_for)
    report = evaluate(classifier.space, Y_valid, classifier.decide(scores)[0], scores)
    classifier.info["validation"] = {"rows": len(Y_valid), "tuned_thresholds": tune_thresholds,
                                      **({"tuned_for": tune_for} if tune_thresholds else {}), **_headline(report)}


def _headline(report: dict) -> dict:
    """The scalar metrics of a report, per target: what a manifest keeps of validation."""
    return {name: {k: v for k, v in metrics.items() if isinstance(v, (int, float)) or v is None}
            for name, metrics in report["targets"].items()}
