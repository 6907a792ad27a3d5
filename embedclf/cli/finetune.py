"""``embedclf finetune``: train the whole transformer, for comparison with the heads."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from embedclf.cli import app
from embedclf.cli.options import (Cache, Columns, Device, Experiment, KeepNaLabels, LabelCol, LabelNames, LabelSep,
                                  Model, Strict, Task, TextCol, Threshold, Track, TuneFor, TuneThresholds, data_options,
                                  say, track_settings)

TRAINING = "Training options"


class PosWeight(str, Enum):
    balanced = "balanced"


def _training(help: str, *names: str):
    return typer.Option(*names, help=help, rich_help_panel=TRAINING)


@app.command()
def finetune(
    train: Annotated[Path, typer.Argument(help="Labelled training data.")],
    out: Annotated[Path, typer.Option(help="Model folder to write (predict/evaluate/--cooccur work on it).")],
    valid: Annotated[Optional[Path], typer.Option(help="Validation data, evaluated after each epoch.")] = None,
    valid_split: Annotated[Optional[float], typer.Option(help="Hold out this fraction of TRAIN for validation.")] = None,
    epochs: Annotated[int, _training("Passes over the training data.")] = 3,
    lr: Annotated[float, _training("Peak learning rate of the transformer (AdamW).")] = 2e-5,
    head_lr: Annotated[float, _training("Peak learning rate of the new classification layer.")] = 1e-3,
    batch_size: Annotated[int, _training("Texts per training step.")] = 16,
    max_length: Annotated[int, _training("Tokens per text.")] = 128,
    warmup: Annotated[float, _training("Fraction of steps with a linear warm-up.")] = 0.1,
    pos_weight: Annotated[Optional[PosWeight], _training("Weigh rare labels' positives up (BCE).")] = None,
    resume: Annotated[bool, _training("Continue an interrupted run from OUT.checkpoint.", "--resume")] = False,
    checkpoint_every: Annotated[int, _training("Also checkpoint every N steps (0: each epoch only).")] = 0,
    max_steps: Annotated[Optional[int], _training("Stop after N steps in total (a quick look).")] = None,
    seed: Annotated[int, _training("Random seed.")] = 0,
    threshold: Threshold = 0.5, tune_thresholds: TuneThresholds = False, tune_for: TuneFor = "macro",
    track: Track = False, experiment: Experiment = None,
    model: Model = None, device: Device = "auto", cache: Cache = None,
    columns: Columns = None, text_col: TextCol = None, label_col: LabelCol = None, label_sep: LabelSep = None,
    label_names: LabelNames = None, task: Task = None, strict: Strict = False,
    keep_na_labels: KeepNaLabels = False,
):
    """Fine-tune the whole transformer plus a classification layer on TRAIN; saves an ordinary model folder."""
    from embedclf.encode.models import DEFAULT_MODEL
    from embedclf.finetune import FineTuneSettings, finetune_files
    from embedclf.fit import FitSettings

    tracking = track_settings(track, experiment)
    settings = FineTuneSettings(model=model or DEFAULT_MODEL, epochs=epochs, lr=lr, head_lr=head_lr,
                                batch_size=batch_size, max_length=max_length, warmup=warmup,
                                pos_weight=pos_weight.value if pos_weight else None, seed=seed, device=device,
                                checkpoint_every=checkpoint_every, max_steps=max_steps)
    decide = FitSettings(valid_split=valid_split, threshold=threshold, tune_thresholds=tune_thresholds,
                         tune_for=tune_for, seed=seed)
    options = data_options(columns, text_col, label_col, label_sep, label_names, task, strict,
                           keep_na_labels=keep_na_labels)
    finetune_files(train, out, settings, decide, options, valid=valid, resume=resume, cache=cache, tracking=tracking,
                   say=say)
