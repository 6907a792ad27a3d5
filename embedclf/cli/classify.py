"""``embedclf fit``, ``embedclf predict`` and ``embedclf evaluate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from embedclf.cli import app
from embedclf.cli.options import (DECIDE, Actors, Address, Backend, Cache, Columns, Device, Engine, GpusPerActor,
                                  LabelCol, LabelNames, LabelSep, MaxLength, Model, ModelBackend, ModelPrecision,
                                  NoCache, Normalize, Pooling, Precision, Strict, Task, TextCol, TuneFor, check_engine,
                                  data_options, encoder_options, say)

HEAD = "Head options"
EncodeBatch = Annotated[int, typer.Option(help="Texts per forward pass when encoding.", rich_help_panel="Encoder options")]


@app.command()
def fit(
    train: Annotated[Path, typer.Argument(help="Labelled training data (CSV, TSV, JSON lines, Parquet).")],
    out: Annotated[Path, typer.Option(help="Model folder to write.")],
    head: Annotated[str, typer.Option(help="logreg, svm, knn, mlp or chain.", rich_help_panel=HEAD)] = "logreg",
    valid: Annotated[Optional[Path], typer.Option(help="Validation data, read with the same data options.")] = None,
    valid_split: Annotated[Optional[float], typer.Option(
        help="Hold out this fraction of TRAIN for validation (stratified over labels).")] = None,
    c: Annotated[Optional[float], typer.Option("--C", help="Inverse regularisation (logreg, svm, chain).",
                                               rich_help_panel=HEAD)] = None,
    class_weight: Annotated[Optional[str], typer.Option(help="'balanced' to weight rare classes up (logreg, svm, mlp).",
                                                        rich_help_panel=HEAD)] = None,
    neighbors: Annotated[Optional[int], typer.Option(help="k for knn.", rich_help_panel=HEAD)] = None,
    hidden: Annotated[Optional[list[int]], typer.Option(help="MLP hidden layer size; repeat for more layers.",
                                                        rich_help_panel=HEAD)] = None,
    dropout: Annotated[Optional[float], typer.Option(help="MLP dropout.", rich_help_panel=HEAD)] = None,
    epochs: Annotated[Optional[int], typer.Option(help="MLP maximum epochs.", rich_help_panel=HEAD)] = None,
    lr: Annotated[Optional[float], typer.Option(help="MLP learning rate.", rich_help_panel=HEAD)] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="MLP training batch size.", rich_help_panel=HEAD)] = None,
    patience: Annotated[Optional[int], typer.Option(help="MLP early-stopping patience (epochs).",
                                                    rich_help_panel=HEAD)] = None,
    loss: Annotated[Optional[str], typer.Option(help="MLP multi-label loss: bce or focal.", rich_help_panel=HEAD)] = None,
    gamma: Annotated[Optional[float], typer.Option(help="Focal loss gamma.", rich_help_panel=HEAD)] = None,
    alpha: Annotated[Optional[float], typer.Option(help="Focal loss alpha.", rich_help_panel=HEAD)] = None,
    base: Annotated[Optional[str], typer.Option(help="Chain base classifier: logreg or svm.", rich_help_panel=HEAD)] = None,
    order: Annotated[Optional[str], typer.Option(help="Chain order: random, frequency or cooccurrence.",
                                                 rich_help_panel=HEAD)] = None,
    ensemble: Annotated[Optional[int], typer.Option(help="Number of chains averaged.", rich_help_panel=HEAD)] = None,
    seed: Annotated[int, typer.Option(help="Random seed (splits, MLP, chains).")] = 0,
    cooccur: Annotated[Optional[Path], typer.Option(help="Co-occurrence rules (from embedclf cooccur) to store with "
                                                         "the model and apply to its predictions.",
                                                    rich_help_panel=DECIDE)] = None,
    threshold: Annotated[float, typer.Option(help="Global multi-label decision threshold.", rich_help_panel=DECIDE)] = 0.5,
    tune_thresholds: Annotated[bool, typer.Option("--tune-thresholds", help="Tune the multi-label thresholds on the "
                                                  "validation data (see --tune-for).", rich_help_panel=DECIDE)] = False,
    tune_for: TuneFor = "macro",
    at_least_one: Annotated[bool, typer.Option("--at-least-one", help="A row with no label above threshold takes "
                                               "its top label.", rich_help_panel=DECIDE)] = False,
    columns: Columns = None, text_col: TextCol = None, label_col: LabelCol = None, label_sep: LabelSep = None,
    label_names: LabelNames = None, task: Task = None, strict: Strict = False,
    model: Model = None, encode_batch_size: EncodeBatch = 32, max_length: MaxLength = None, pooling: Pooling = None,
    normalize: Normalize = True, device: Device = "auto", precision: Precision = "auto", backend: Backend = "torch",
    cache: Cache = None, no_cache: NoCache = False,
):
    """Fit a head on TRAIN's embeddings (encoded through the cache) and save it to --out."""
    from embedclf.encode.encoder import Encoder
    from embedclf.fit import fit_classifier
    from embedclf.heads import make_head
    from embedclf.postprocess.cooccur import CooccurrenceRules

    options = data_options(columns, text_col, label_col, label_sep, label_names, task, strict)
    estimator = make_head(head, C=c, class_weight=class_weight, n_neighbors=neighbors,
                          hidden=tuple(hidden) if hidden else None, dropout=dropout, epochs=epochs, lr=lr,
                          batch_size=batch_size, patience=patience, loss=loss, gamma=gamma, alpha=alpha, base=base,
                          order=order, ensemble=ensemble, random_state=seed)
    encoder = Encoder(**encoder_options(model, encode_batch_size, max_length, pooling, normalize, device, precision,
                                        backend, cache, no_cache))  # checks the settings, loads nothing
    train_data = options.load(train, require_labels=True)
    say(train_data.summary())
    valid_data = options.load(valid, require_labels=True) if valid else None
    if valid_data is not None:
        say(valid_data.summary())
    classifier = fit_classifier(train_data, estimator, encoder, data_options=options, valid=valid_data,
                                valid_split=valid_split, threshold=threshold, tune_thresholds=tune_thresholds,
                                tune_for=tune_for, at_least_one=at_least_one, seed=seed, say=say,
                                rules=CooccurrenceRules.load(cooccur) if cooccur else None)
    _say_validation(classifier.info.get("validation"))
    classifier.save(out)
    say(f"saved {head} model for {classifier.space.task} ({', '.join(map(str, classifier.space.sizes))} labels) "
        f"to {out}")


def _say_validation(validation: dict | None) -> None:
    if not validation:
        return
    for target, metrics in validation.items():
        if isinstance(metrics, dict):
            shown = {k: metrics[k] for k in ("micro_f1", "macro_f1", "accuracy") if metrics.get(k) is not None}
            say(f"validation {target}: " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()))


def _load(model_dir, model, cache, no_cache, device, encode_batch_size, cooccur, backend=None, precision=None):
    from embedclf.model import TextClassifier

    classifier = TextClassifier.load(model_dir, model=model, cache=False if no_cache else cache, device=device,
                                     batch_size=encode_batch_size, backend=backend, precision=precision)
    if cooccur is not None:
        from embedclf.postprocess.cooccur import CooccurrenceRules, check_rules_fit

        classifier.rules = CooccurrenceRules.load(cooccur)
        check_rules_fit(classifier.rules, classifier.space, cooccur)
    return classifier


def _data(classifier, columns, text_col, label_col, label_sep, label_names):
    """The model's data options, with whatever the user gave on the command line on top."""
    from dataclasses import replace

    stored = classifier.data_options
    return replace(stored, columns=[c.strip() for c in columns.split(",")] if columns else stored.columns,
                   text_cols=list(text_col) if text_col else stored.text_cols,
                   label_cols=list(label_col) if label_col else stored.label_cols,
                   label_sep=label_sep if label_sep is not None else stored.label_sep,
                   label_names=[str(p) for p in label_names] if label_names else stored.label_names)


@app.command()
def predict(
    model_dir: Annotated[Path, typer.Argument(help="A model folder written by fit or finetune.")],
    data: Annotated[Path, typer.Argument(help="Texts to classify.")],
    out: Annotated[Path, typer.Option(help="Predictions: .csv, .tsv, .jsonl or .parquet; with --engine ray a "
                                           "directory of Parquet shards.")],
    cooccur: Annotated[Optional[Path], typer.Option(help="Co-occurrence rules to apply (from embedclf cooccur).")] = None,
    columns: Columns = None, text_col: TextCol = None,
    model: Model = None, encode_batch_size: Annotated[Optional[int], typer.Option(help="Texts per forward pass.")] = None,
    device: Device = "auto", backend: ModelBackend = None, precision: ModelPrecision = None, cache: Cache = None,
    no_cache: NoCache = False,
    engine: Engine = "local", address: Address = None, actors: Actors = 2, gpus_per_actor: GpusPerActor = 0,
):
    """Label the texts of DATA; writes label names and a probability per label. Data options default to the model's."""
    from embedclf.errors import EmbedclfError
    from embedclf.inference import predict_dataset, predictions_frame
    from embedclf.io import TABLE_FORMATS, check_table_path, write_table

    if check_engine(engine, address, actors, gpus_per_actor):
        from embedclf.inference_ray import predict_with_ray

        if out.suffix in TABLE_FORMATS:
            raise EmbedclfError(f"{out}: with --engine ray, --out is a directory (of Parquet shards)")
        report = predict_with_ray(model_dir, data, out, address=address, actors=actors, gpus_per_actor=gpus_per_actor,
                                  encode_batch_size=encode_batch_size, text_cols=text_col or None,
                                  columns=[c.strip() for c in columns.split(",")] if columns else None,
                                  cooccur=cooccur, model=model, backend=backend, precision=precision)
        for line in report.lines(data):
            say(line)
        return
    check_table_path(out)
    classifier = _load(model_dir, model, cache, no_cache, device, encode_batch_size, cooccur, backend, precision)
    options = _data(classifier, columns, text_col, None, None, None)
    dataset = options.load(data, labels=False)
    say(dataset.summary())
    scores, Y, added = predict_dataset(classifier, dataset)
    say(f"embeddings: {classifier.encoder.last_report.summary(classifier.encoder.max_length)}")
    write_table(predictions_frame(classifier, dataset, Y, scores, added), out)
    extra = f"; rules added {int(added.sum()):,} labels" if added is not None else ""
    say(f"wrote {len(dataset.texts):,} predictions to {out}{extra}")


@app.command()
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="A model folder written by fit or finetune.")],
    test: Annotated[Path, typer.Argument(help="Labelled test data.")],
    report: Annotated[Optional[Path], typer.Option(help="Write the full report as JSON here.")] = None,
    cooccur: Annotated[Optional[Path], typer.Option(help="Co-occurrence rules to apply; shows before and after.")] = None,
    top: Annotated[int, typer.Option(help="Rows of the per-label table to print.")] = 30,
    columns: Columns = None, text_col: TextCol = None, label_col: LabelCol = None, label_sep: LabelSep = None,
    label_names: LabelNames = None,
    model: Model = None, encode_batch_size: Annotated[Optional[int], typer.Option(help="Texts per forward pass.")] = None,
    device: Device = "auto", backend: ModelBackend = None, precision: ModelPrecision = None, cache: Cache = None,
    no_cache: NoCache = False,
):
    """Score the model on labelled TEST data: prints a readable report, --report writes it as JSON."""
    from embedclf.evaluate import compare_reports, format_report
    from embedclf.inference import evaluate_dataset
    from embedclf.io import atomic_write_text

    classifier = _load(model_dir, model, cache, no_cache, device, encode_batch_size, cooccur, backend, precision)
    options = _data(classifier, columns, text_col, label_col, label_sep, label_names)
    dataset = options.load(test, require_labels=True)
    say(dataset.summary())
    result = evaluate_dataset(classifier, dataset, say=say)
    say(f"embeddings: {classifier.encoder.last_report.summary(classifier.encoder.max_length)}")
    typer.echo(format_report(result, top=top))
    if "before_rules" in result:
        typer.echo(f"\nco-occurrence rules ({classifier.rules.summary()}): added {result['rules']['labels_added']:,} "
                   f"labels on {result['rules']['rows_changed']:,} rows")
        typer.echo(compare_reports(result["before_rules"], result))
    if report is not None:
        atomic_write_text(report, json.dumps(result, indent=2))
        say(f"wrote report to {report}")
