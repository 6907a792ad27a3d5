"""``embedclf fit``, ``embedclf predict`` and ``embedclf evaluate``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from embedclf.cli import app
from embedclf.cli.options import (DECIDE, ENCODER, Actors, Address, AtLeastOne, BackendOption, Cache,
                                  ChunkPoolingOption, ChunkSize, Columns, Device, Engine, Experiment, GpusPerActor, IdCol,
                                  KeepNaLabels, LabelCol, LabelNames, LabelSep, LongTextOption, MaxBatchTokens,
                                  MaxLength, Model, ModelBackend, ModelPrecision, NoCache, Normalize, PoolingOption,
                                  PrecisionOption, Strict, Task, TextCol, Threshold, Track, TuneFor, TuneThresholds,
                                  cache_option, data_options, encoder_settings, long_text_settings, say, split_columns,
                                  track_settings)
from embedclf.features import AUTO, DEFAULT_TFIDF_WEIGHT, FEATURE_SETS, TFIDF_WEIGHT_GRID
from embedclf.features.tfidf import NGRAMS
from embedclf.heads import HEAD_NAMES

HEAD = "Head options"
HeadName = Enum("HeadName", {name: name for name in HEAD_NAMES}, type=str)
FeatureSet = Enum("FeatureSet", {name: name for name in (AUTO, *FEATURE_SETS)}, type=str)
TfidfNgrams = Enum("TfidfNgrams", {name: name for name in NGRAMS}, type=str)


class Loss(str, Enum):
    bce = "bce"
    focal = "focal"


class ClassWeight(str, Enum):
    balanced = "balanced"


class ChainBase(str, Enum):
    logreg = "logreg"
    svm = "svm"


class ChainOrder(str, Enum):
    random = "random"
    frequency = "frequency"
    cooccurrence = "cooccurrence"


def _head_option(help: str, *names: str):
    return typer.Option(*names, help=help, rich_help_panel=HEAD)


EncodeBatch = Annotated[int, typer.Option(min=1, help="Texts per forward pass when encoding.",
                                          rich_help_panel=ENCODER)]
ModelBatch = Annotated[Optional[int], typer.Option(min=1, help="Texts per forward pass. [default: the model's]",
                                                   rich_help_panel=ENCODER)]


@app.command()
def fit(
    train: Annotated[Path, typer.Argument(help="Labelled training data (CSV, TSV, JSON lines, Parquet).")],
    out: Annotated[Path, typer.Option(help="Model folder to write.")],
    head: Annotated[HeadName, _head_option(
        "The classifier fitted on the features. svm (Platt-calibrated linear SVM) is ahead of the tuned TF-IDF "
        "baseline on every benchmark data set at its defaults; logreg is quicker on large multi-label data.")] = "svm",
    features: Annotated[FeatureSet, _head_option(
        "What the head sees: the sentence embedding, a word 1-2 gram TF-IDF fitted on TRAIN, or both side by side "
        "(hybrid; tfidf and hybrid need logreg, svm or knn). auto: hybrid for logreg and svm, the embedding for "
        "knn, mlp and chain.")] = AUTO,
    tfidf_weight: Annotated[Optional[float], _head_option(
        f"Weight of the TF-IDF block beside the unit-length embedding (hybrid). Not given: "
        f"{DEFAULT_TFIDF_WEIGHT:g}, or with --tune-thresholds the best on validation of "
        f"{', '.join(f'{w:g}' for w in TFIDF_WEIGHT_GRID)} (one more head fit per weight).")] = None,
    tfidf_ngrams: Annotated[TfidfNgrams, _head_option(
        "The TF-IDF block's n-grams (tfidf, hybrid): word 1-2 grams, or word+char to add character 2-5 grams "
        "within words (misspellings, emoji; pays on short texts, slower to fit and predict).")] = "word",
    valid: Annotated[Optional[Path], typer.Option(help="Validation data, read with the same data options.")] = None,
    valid_split: Annotated[Optional[float], typer.Option(
        help="Hold out this fraction of TRAIN for validation (stratified over labels).")] = None,
    c: Annotated[Optional[float], _head_option("Inverse regularisation (logreg, svm, chain).", "--C")] = None,
    class_weight: Annotated[Optional[ClassWeight], _head_option("Weight rare classes up (logreg, svm, mlp).")] = None,
    neighbors: Annotated[Optional[int], _head_option("k for knn.")] = None,
    hidden: Annotated[Optional[list[int]], _head_option("MLP hidden layer size; repeat for more layers.")] = None,
    dropout: Annotated[Optional[float], _head_option("MLP dropout.")] = None,
    epochs: Annotated[Optional[int], _head_option("MLP maximum epochs.")] = None,
    lr: Annotated[Optional[float], _head_option("MLP learning rate.")] = None,
    batch_size: Annotated[Optional[int], _head_option("MLP training batch size.")] = None,
    patience: Annotated[Optional[int], _head_option("MLP early-stopping patience (epochs).")] = None,
    loss: Annotated[Optional[Loss], _head_option("MLP multi-label loss.")] = None,
    gamma: Annotated[Optional[float], _head_option("Focal loss gamma.")] = None,
    alpha: Annotated[Optional[float], _head_option("Focal loss alpha.")] = None,
    base: Annotated[Optional[ChainBase], _head_option("Chain base classifier.")] = None,
    order: Annotated[Optional[ChainOrder], _head_option("Chain order.")] = None,
    ensemble: Annotated[Optional[int], _head_option("Number of chains averaged.")] = None,
    jobs: Annotated[Optional[int], _head_option("Processes fitting a multi-label target's labels in parallel "
                                                "(logreg, svm; -1: every core).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (splits, MLP, chains, the svm's solver).")] = 0,
    cooccur: Annotated[Optional[Path], typer.Option(
        help="Co-occurrence rules (from embedclf cooccur) to store with the model and apply to its predictions.",
        rich_help_panel=DECIDE)] = None,
    threshold: Threshold = 0.5, tune_thresholds: TuneThresholds = False, tune_for: TuneFor = "macro",
    at_least_one: AtLeastOne = False, track: Track = False, experiment: Experiment = None,
    columns: Columns = None, text_col: TextCol = None, label_col: LabelCol = None, label_sep: LabelSep = None,
    label_names: LabelNames = None, task: Task = None, strict: Strict = False,
    keep_na_labels: KeepNaLabels = False,
    model: Model = None, encode_batch_size: EncodeBatch = 32, max_batch_tokens: MaxBatchTokens = None,
    chunk_size: ChunkSize = 1024, max_length: MaxLength = None, pooling: PoolingOption = None,
    normalize: Normalize = True, device: Device = "auto", precision: PrecisionOption = "auto",
    backend: BackendOption = "torch", cache: Cache = None, no_cache: NoCache = False,
    long_text: LongTextOption = "truncate", chunk_pooling: ChunkPoolingOption = "mean",
):
    """Fit a head on TRAIN's embeddings (encoded through the cache) and save it to --out."""
    from embedclf.fit import FitSettings, fit_files
    from embedclf.heads import head_params, make_head

    tracking = track_settings(track, experiment)
    given = dict(C=c, class_weight=class_weight, n_neighbors=neighbors, hidden=tuple(hidden) if hidden else None,
                 dropout=dropout, epochs=epochs, lr=lr, batch_size=batch_size, patience=patience, loss=loss,
                 gamma=gamma, alpha=alpha, base=base, order=order, ensemble=ensemble, n_jobs=jobs)
    settings = FitSettings(valid_split=valid_split, threshold=threshold, tune_thresholds=tune_thresholds,
                           tune_for=tune_for, at_least_one=at_least_one, seed=seed, features=features,
                           tfidf_weight=tfidf_weight, tfidf_ngrams=tfidf_ngrams)
    given = {k: v.value if isinstance(v, Enum) else v for k, v in given.items()}
    if "random_state" in head_params(head.value):
        given["random_state"] = seed
    estimator = make_head(head.value, **given)
    encoder = encoder_settings(model, encode_batch_size, max_length, pooling, normalize, device, precision, backend,
                               max_batch_tokens, chunk_size)
    options = data_options(columns, text_col, label_col, label_sep, label_names, task, strict,
                           keep_na_labels=keep_na_labels)
    fit_files(train, out, estimator, encoder, settings, options, valid=valid, cooccur=cooccur,
              cache=cache_option(cache, no_cache), tracking=tracking, say=say,
              long_text=long_text_settings(long_text, chunk_pooling))


@app.command()
def predict(
    model_dir: Annotated[Path, typer.Argument(help="A model folder written by fit or finetune.")],
    data: Annotated[Path, typer.Argument(help="Texts to classify.")],
    out: Annotated[Path, typer.Option(help="Predictions: .csv, .tsv, .jsonl or .parquet; with --engine ray a "
                                           "directory of Parquet shards.")],
    cooccur: Annotated[Optional[Path], typer.Option(help="Co-occurrence rules to apply (from embedclf cooccur).")] = None,
    columns: Columns = None, text_col: TextCol = None, id_col: IdCol = None,
    model: Model = None, encode_batch_size: ModelBatch = None, device: Device = "auto", backend: ModelBackend = None,
    precision: ModelPrecision = None, cache: Cache = None, no_cache: NoCache = False,
    engine: Engine = "local", address: Address = None, actors: Actors = 2, gpus_per_actor: GpusPerActor = 0,
):
    """Label the texts of DATA; writes label names and a probability per label. Data options default to the model's."""
    from embedclf.engines import EngineSettings, predict_data

    engine_settings = EngineSettings(engine, address=address, actors=actors, gpus_per_actor=gpus_per_actor)
    result = predict_data(model_dir, data, out, engine_settings,
                          data_overrides=dict(columns=split_columns(columns), text_cols=tuple(text_col or ()) or None,
                                              id_col=id_col),
                          encoder_overrides=dict(model=model, device=device, batch_size=encode_batch_size,
                                                 backend=backend, precision=precision),
                          cache=cache_option(cache, no_cache), cooccur=cooccur)
    for line in result.lines(data):
        say(line)


@app.command()
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="A model folder written by fit or finetune.")],
    test: Annotated[Path, typer.Argument(help="Labelled test data.")],
    report: Annotated[Optional[Path], typer.Option(help="Write the full report as JSON here.")] = None,
    cooccur: Annotated[Optional[Path], typer.Option(help="Co-occurrence rules to apply; shows before and after.")] = None,
    top: Annotated[int, typer.Option(min=1, help="Rows of the per-label table to print.")] = 30,
    plots: Annotated[Optional[Path], typer.Option(
        help="Write pictures here: F1 per label, confusion matrix, precision-recall curves, F1 against threshold "
             "(tuned thresholds), label co-occurrence (rules).")] = None,
    track: Track = False, experiment: Experiment = None,
    columns: Columns = None, text_col: TextCol = None, label_col: LabelCol = None, label_sep: LabelSep = None,
    label_names: LabelNames = None,
    model: Model = None, encode_batch_size: ModelBatch = None, device: Device = "auto", backend: ModelBackend = None,
    precision: ModelPrecision = None, cache: Cache = None, no_cache: NoCache = False,
):
    """Score the model on labelled TEST data: prints a readable report, --report writes it as JSON."""
    from embedclf.evaluate import format_evaluation
    from embedclf.inference import evaluate_file

    tracking = track_settings(track, experiment)
    overrides = dict(columns=split_columns(columns), text_cols=tuple(text_col or ()) or None,
                     label_cols=tuple(label_col or ()) or None, label_sep=label_sep,
                     label_names=tuple(str(p) for p in label_names or ()) or None)
    classifier, result = evaluate_file(model_dir, test, data_overrides=overrides,
                                       encoder_overrides=dict(model=model, device=device, batch_size=encode_batch_size,
                                                              backend=backend, precision=precision),
                                       cache=cache_option(cache, no_cache), cooccur=cooccur, report_path=report,
                                       plots_dir=plots, tracking=tracking, say=say)
    typer.echo(format_evaluation(result, classifier.rules, top=top))
