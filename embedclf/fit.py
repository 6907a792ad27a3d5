"""Fitting a head on a labelled data set: split, encode through the cache, fit, tune, score validation.

The classifier is a scikit-learn ``Pipeline`` (``TextEncoder`` → head) and fitting it is
``pipeline.fit(texts, Y, head__layout=..., head__validation=...)``; what this module adds is the
label space, the validation data and the decision rule around it.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from embedclf.data import DataOptions, Dataset
from embedclf.encode.encoder import Encoder
from embedclf.errors import EmbedclfError
from embedclf.features import AUTO, DEFAULT_TFIDF_WEIGHT, check_feature_set, check_head_takes, resolve_features
from embedclf.features.tfidf import check_ngrams, keep_every_term, pruned_every_term, tfidf_vectorizer
from embedclf.heads import check_fits_rows
from embedclf.labels import LabelSpace, labelled_matrix
from embedclf.model import TextClassifier
from embedclf.postprocess.thresholds import OBJECTIVES


@dataclass(frozen=True)
class FitSettings:
    """How to validate and decide, shared by ``fit`` and ``finetune``; validated once, here.

    ``features`` is what the head sees (``embedding``, ``tfidf``, ``hybrid``; ``auto``: see :mod:`embedclf.features`)
    and ``tfidf_weight`` the TF-IDF block's weight in ``hybrid``; None (not given) is the default weight, or,
    when thresholds are tuned, the best on validation of a small grid (:mod:`embedclf.features.weight`); a
    given weight is always kept; ``tfidf_ngrams`` the TF-IDF block's n-grams (``word`` or ``word+char``, see
    :mod:`embedclf.features.tfidf`). ``valid_split`` holds out a stratified
    fraction of the training data (when no validation file is given); ``threshold`` is the multi-label
    decision threshold, or the default the tuning starts from; ``tune_thresholds`` tunes them on validation
    data for ``tune_for`` (macro: one per label, micro: one per target); ``at_least_one`` gives a row with
    no label its top label.
    """

    valid_split: float | None = None
    threshold: float = 0.5
    tune_thresholds: bool = False
    tune_for: str = "macro"
    at_least_one: bool = False
    seed: int = 0
    features: str = AUTO
    tfidf_weight: float | None = None
    tfidf_ngrams: str = "word"

    def __post_init__(self):
        for name in ("tune_for", "features", "tfidf_ngrams"):  # typer's enum members to their values
            object.__setattr__(self, name, getattr(getattr(self, name), "value", getattr(self, name)))
        check_feature_set(self.features, self.tfidf_weight_or_default)
        check_ngrams(self.tfidf_ngrams)
        if self.valid_split is not None and not 0 < self.valid_split < 1:
            raise EmbedclfError(f"--valid-split must be between 0 and 1 (a fraction of TRAIN), got {self.valid_split}")
        if not 0 < self.threshold < 1:
            raise EmbedclfError(f"--threshold must be between 0 and 1, got {self.threshold}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise EmbedclfError(f"--seed must be an integer from 0 to 2**32 - 1, got {self.seed!r}")
        if self.tune_for not in OBJECTIVES:
            raise EmbedclfError(f"--tune-for must be {' or '.join(OBJECTIVES)}, not {self.tune_for!r}")

    @property
    def tfidf_weight_or_default(self) -> float:
        """The weight hybrid starts from: the one given, else the default (``None`` means "not given")."""
        return DEFAULT_TFIDF_WEIGHT if self.tfidf_weight is None else self.tfidf_weight

    def tunes_tfidf_weight(self, features: str) -> bool:
        """Whether ``fit`` chooses hybrid's TF-IDF weight on validation data: tuning is asked, no weight given."""
        return features == "hybrid" and self.tune_thresholds and self.tfidf_weight is None

    def check_validation(self, valid: Dataset | None) -> None:
        if valid is not None and self.valid_split:
            raise EmbedclfError("give either --valid or --valid-split, not both")
        if self.tune_thresholds and valid is None and not self.valid_split:
            raise EmbedclfError("--tune-thresholds needs validation data: --valid FILE or --valid-split 0.1")


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
    settings = FitSettings(valid_split=valid_split, tune_thresholds=tune_thresholds, tune_for=tune_for, seed=seed)
    settings.check_validation(valid)
    space = LabelSpace.from_dataset(train)
    Y = labelled_matrix(space, train, say)
    texts = list(train.texts)
    if valid is not None:
        return space, texts, Y, list(valid.texts), labelled_matrix(space, valid, say)
    if valid_split:
        rows, valid_rows = validation_split(Y, valid_split, seed)
        return space, [texts[i] for i in rows], Y[rows], [texts[i] for i in valid_rows], Y[valid_rows]
    return space, texts, Y, None, None


def fit_classifier(train: Dataset, head, encoder: Encoder, settings: FitSettings | None = None, *,
                   data_options: DataOptions | None = None, valid: Dataset | None = None, rules=None,
                   say: Callable[[str], None] | None = None, long_text=None, **fields) -> TextClassifier:
    """Fit ``head`` on ``train``'s embeddings and return a :class:`TextClassifier`.

    ``settings`` (or its fields as keywords: ``valid_split=0.1, tune_thresholds=True``) say how to
    validate and decide. Validation data (``valid``, or a stratified ``valid_split`` of train) drives
    MLP early stopping and threshold tuning, and its metrics are stored with the model. ``rules``
    (co-occurrence rules) are stored with the model and applied to every prediction. ``long_text``
    (:class:`~embedclf.encode.long_text.LongTextSettings`) chunks texts longer than the model's window.
    The fitted head is ``classifier.head``: ``head`` itself, or, when hybrid's TF-IDF weight is tuned
    (``FitSettings.tunes_tfidf_weight``), the clone of it fitted at the chosen weight.
    """
    settings = settings or FitSettings(**fields)
    features = resolve_features(settings.features, head)
    check_head_takes(features, head)
    say = say or (lambda message: None)
    for line in train.absent_label_names_lines():
        say(line)
    space, texts, Y, valid_texts, Y_valid = training_splits(train, valid, settings.valid_split,
                                                            settings.tune_thresholds, settings.seed, say,
                                                            settings.tune_for)
    if rules is not None:
        from embedclf.postprocess.model_rules import check_rules_fit

        check_rules_fit(rules, space, rules.source_)
    check_fits_rows(head, len(texts))
    classifier = TextClassifier(encoder, head, space, data_options=data_options, thresholds=settings.threshold,
                                at_least_one=settings.at_least_one, rules=rules, info={"train_file": train.path},
                                features=features, long_text=long_text,
                                tfidf=None if features == "embedding" else tfidf_vectorizer(settings.tfidf_ngrams),
                                tfidf_weight=settings.tfidf_weight_or_default)
    fit_params = {"head__layout": space.layout}
    X_valid = None
    if valid_texts is not None and features == "embedding":  # TF-IDF is learnt from train first
        X_valid = classifier.embed(valid_texts)
        say(f"validation embeddings: {encoder.last_report.summary(encoder.max_length)}")
        if "validation" in inspect.signature(head.fit).parameters:  # the MLP stops early on it
            fit_params["head__validation"] = (X_valid, Y_valid)
    tune_weight = settings.tunes_tfidf_weight(features) and valid_texts is not None
    start = time.perf_counter()
    try:
        if tune_weight:
            X_valid, fit_seconds = _fit_tuning_weight(classifier, texts, Y, valid_texts, Y_valid, settings, say)
        else:
            _fit_pipeline(classifier, texts, Y, fit_params)
    except ValueError as exc:  # the head refused these data (scikit-learn's own checks): say so in one line
        raise EmbedclfError(f"cannot fit the {type(head).__name__}: {' '.join(str(exc).split())[:300]}") from None
    if not tune_weight:
        encoded = encoder.last_report
        say(f"train embeddings: {classifier.encoding_line()}")
        fit_seconds = time.perf_counter() - start - (encoded.seconds if encoded is not None else 0.0)
    tried = f" at {len(classifier.info['tfidf_weight']['tried'])} TF-IDF weights" if tune_weight else ""
    say(f"fitted {type(head).__name__} on {len(texts):,} x {classifier.head.n_features_in_}{tried} "
        f"in {fit_seconds:.1f}s")
    uncalibrated = getattr(classifier.head, "uncalibrated_labels_", 0)
    if uncalibrated:
        say(f"{uncalibrated} label(s) have fewer than 2 examples on one side: the svm cannot calibrate them, so they "
            f"keep their training rate (--head logreg fits them)")
    classifier.info |= {"train_rows": len(texts), "fit_seconds": round(fit_seconds, 3)}
    if valid_texts is not None and X_valid is None:
        X_valid = classifier.embed(valid_texts)
        say(f"validation embeddings: {classifier.encoding_line()}")
    if X_valid is not None:
        score_validation(classifier, Y_valid, classifier.scores(X_valid), settings.tune_thresholds,
                         settings.threshold, settings.tune_for)
    return classifier


def _fit_pipeline(classifier: TextClassifier, texts, Y, fit_params: dict) -> None:
    """Fit the features step and the head; a ``tfidf`` step whose ``min_df`` prunes every term of a handful of
    texts that share no word keeps every term instead, as hybrid's does (see ``fit_terms``)."""
    try:
        classifier.pipeline.fit(texts, Y, **fit_params)
    except ValueError as exc:
        if classifier.features != "tfidf" or not pruned_every_term(exc, classifier.tfidf):
            raise
        keep_every_term(classifier.tfidf)
        classifier.pipeline.fit(texts, Y, **fit_params)


def _fit_tuning_weight(classifier: TextClassifier, texts, Y, valid_texts, Y_valid, settings: FitSettings,
                       say: Callable[[str], None]):
    """Fit a hybrid model at the TF-IDF weight that scores best on validation (see :mod:`embedclf.features.weight`):
    the embeddings and the vectoriser once, a head per weight. ``(X_valid at that weight, fit seconds)``."""
    from embedclf.features.weight import choose_tfidf_weight, metric_label, target_metrics, validation_value

    step = classifier.pipeline.named_steps["encode"]
    start = time.perf_counter()
    train_blocks = step.fit_blocks(texts)
    encoded = classifier.encoder.last_report
    vectorise_seconds = time.perf_counter() - start - (encoded.seconds if encoded is not None else 0.0)
    say(f"train embeddings: {classifier.encoding_line()}")
    valid_blocks = step.transform_blocks(valid_texts)
    say(f"validation embeddings: {classifier.encoding_line()}")
    metrics = target_metrics(classifier.space, settings.tune_for)

    def score(head, X_valid) -> float:
        classifier.pipeline.steps[-1] = ("head", head)
        score_validation(classifier, Y_valid, classifier.scores(X_valid), settings.tune_thresholds,
                         settings.threshold, settings.tune_for)
        return validation_value(classifier.info["validation"], metrics)

    choice = choose_tfidf_weight(classifier.head, train_blocks, valid_blocks, Y, {"layout": classifier.space.layout},
                                 score, metric_label(metrics))
    classifier.pipeline.steps[-1] = ("head", choice.head)
    classifier.tfidf_weight = step.sparse_weight = choice.weight
    classifier.info["tfidf_weight"] = choice.record()
    say(choice.summary())
    return step.join(*valid_blocks), vectorise_seconds + sum(choice.fit_seconds.values())


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


def read_training_files(out, data_options: DataOptions, train_path, valid_path, say: Callable[[str], None]):
    """``(train, valid)`` for ``fit`` and ``finetune``, each summarised; refused before reading if ``out``
    cannot become a folder, or after if TRAIN holds nothing to learn from."""
    from embedclf.io import check_output_dir

    check_output_dir(out)
    train = data_options.load(train_path, require_labels=True).require_texts()
    say(train.summary())
    valid = data_options.load(valid_path, require_labels=True) if valid_path is not None else None
    if valid is not None:
        say(valid.summary())
    return train, valid


def fit_files(train_path, out, head, encoder_settings, settings: FitSettings, data_options: DataOptions, *,
              valid=None, cooccur=None, cache=None, tracking=None,
              say: Callable[[str], None] | None = None, long_text=None) -> TextClassifier:
    """``embedclf fit``: read TRAIN (and ``valid``), fit ``head`` through the cache, save the folder ``out``.

    Every setting was validated when it was built, so a mistake fails here before any model loads.
    ``tracking`` (:class:`~embedclf.tracking.TrackSettings`) records the run with MLflow.
    """
    say = say or (lambda message: None)
    check_head_takes(resolve_features(settings.features, head), head)
    rules = None
    if cooccur is not None:
        from embedclf.postprocess.rules import CooccurrenceRules

        rules = CooccurrenceRules.load(cooccur)
    encoder = Encoder(encoder_settings, cache=cache)
    encoder.settings  # the model's files found and the settings checked against them, before any data is read
    train, valid_data = read_training_files(out, data_options, train_path, valid, say)
    classifier = fit_classifier(train, head, encoder, settings, data_options=data_options, valid=valid_data,
                                rules=rules, say=say, long_text=long_text)
    for target, metrics in classifier.info.get("validation", {}).items():
        if isinstance(metrics, dict):
            shown = {k: metrics[k] for k in ("micro_f1", "macro_f1", "accuracy") if metrics.get(k) is not None}
            say(f"validation {target}: " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()))
    classifier.save(out)
    from embedclf.heads import head_name

    say(f"saved {head_name(head)} model for {classifier.space.task} "
        f"({', '.join(map(str, classifier.space.sizes))} labels) to {out}")
    if tracking is not None:
        from dataclasses import asdict

        from embedclf.track_runs import track_fit

        chosen = classifier.tfidf_weight if classifier.features == "hybrid" else None  # the weight fitted with
        params = asdict(settings) | {"tfidf_weight": chosen}
        run_id = track_fit(tracking, "fit", classifier, out, train_path, valid, params)
        say(f"tracked as MLflow run {run_id}")
    return classifier
